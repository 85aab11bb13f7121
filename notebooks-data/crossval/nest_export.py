#!/usr/bin/env python3
"""Run a NEST 3.10 e-prop task for one configuration and export everything.

Three tasks (--task), supervised learning with the eprop_*_bsshslm_2020 models:

* infinite-loop (default): the seed tutorial "learning to generate an infinite loop" (100 frozen-Poisson
  inputs, 200 ALIF neurons with tau_m ~ N(30, 2) drawn by NEST, 2 readouts with tau_m 50 drawing a
  figure eight, Adam, T = 1258).
* sine-waves: the network of NEST 3.10's own regression test, test_eprop_regression() in
  testsuite/pytests/synapses/test_eprop_bsshslm_2020_plasticity.py, which NEST checks against the
  original TensorFlow losses: 100 inputs, 100 LIF neurons (tau_m 30, C_m 1, c_reg 300, f_target 10 Hz,
  flush_event_send_interval = T), 1 readout (tau_m 30) learning a superposition of 4 sines with random
  amplitudes and phases, plain gradient descent with eta 1e-4, T = 1000, 5 iterations.
* evidence-accumulation: classification, NEST 3.10's example
  eprop_supervised_classification_evidence-accumulation_bsshslm_2020.py (doc/examples/pynest/eprop_plasticity):
  40 inputs in 4 groups (left cue, right cue, recall, background noise), 100 recurrent neurons = 50
  eprop_iaf_bsshslm_2020 (created first) + 50 eprop_iaf_adapt_bsshslm_2020 (tau_m 20, V_th 0.6, t_ref 5,
  regular_spike_arrival, C_m 1, c_reg 300, f_target 10 Hz), 2 readouts (tau_m 20) with the cross-entropy loss
  (softmax through rate_connection_delayed readout -> readout), Adam eta 5e-3, batch 32, average_gradient,
  T = 2250, learning window = the 150 recall steps; a new random batch of cue sequences every iteration.
  Simplified: training iterations only (no validation, early-stopping or test phases).

Each network is built in the same order with the same random draws as its script, with the NEST 3.10
parameter mapping of the surrogate gradient (surrogate_gradient_height = gamma / V_th,
surrogate_gradient_width = V_th, gamma = 0.3). Options left unset take the task's values, which are the
engine's: task_defaults.py reads them from `eprop-dense --task TASK --print-config` (so the engine must be built,
`swift build -c release`); what only this script decides is in NEST_SCRIPT_SETTINGS.
The export folder has the layout of shared/refdata/nest-3.10/infinite-loop_seed1_iter5: initial and
final weights ([post, pre], float64), the NEST-drawn tau_m, the frozen input and targets, all
recordings, the loss, parameter dumps, manifest.json and summary.json. For evidence-accumulation the input
and target arrays have one pattern per sequence ([K, n_in, T] and [K, n_out, T], K = iterations x batch),
loss.npy and accuracy.npy have one value per iteration (the example's definitions) and
loss_per_sequence.npy one per sequence.

Examples:

    .venv/bin/python notebooks-data/crossval/nest_export.py --out /tmp/seed1      # the tutorial, 5 iterations
    .venv/bin/python notebooks-data/crossval/nest_export.py --out /tmp/sine --task sine-waves
    .venv/bin/python notebooks-data/crossval/nest_export.py --out /tmp/ea --task evidence-accumulation  # 2 x 32

With the defaults the output reproduces notebooks-data/reference/nest-3.10-infinite-loop-seed1-iter5
exactly (weights bit for bit); with --task sine-waves the losses are those NEST's test asserts.
"""


import argparse
import datetime
import json
import math
import os
import resource
import shlex
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np

from task_defaults import TASKS, EngineUnavailable, task_defaults

SURROGATES = ["piecewise_linear", "exponential", "fast_sigmoid_derivative", "arctan_derivative"]

# ---------------------------------------------------------------------------------------------
# task settings
#
# The task defaults (sizes, timing, neuron, readout and optimizer parameters) are the engine's, read by
# task_defaults.py from `eprop-dense --task TASK --print-config`. The settings below are NEST-script settings,
# not task defaults: how this script builds and records the NEST network.

N_RECORD = 1  # NEST-script setting: recurrent neurons recorded by the multimeter (the tutorial's)
# NEST-script settings per task. "n_record_w": senders/targets sampled by the weight recorder (the tutorial 3,
# the example 5). "flush_event_send_interval": "sequence" sets the recurrent neurons' flush_event_send_interval to
# the sequence length (NEST's test and example do), None leaves NEST's default (the tutorial).
NEST_SCRIPT_SETTINGS = {
    "infinite-loop": {"n_record_w": 3, "flush_event_send_interval": None},
    "sine-waves": {"n_record_w": 3, "flush_event_send_interval": "sequence"},
    "evidence-accumulation": {"n_record_w": 5, "flush_event_send_interval": "sequence"},
}
# NEST-script defaults that deliberately differ from the engine's task defaults: for evidence-accumulation the
# engine runs the example's n_iter_train = 50 iterations, this script 2 unless --iterations is given (NEST takes
# about 10 s per iteration of 32 sequences).
NEST_SCRIPT_DEFAULT_OVERRIDES = {"evidence-accumulation": {"iterations": 2}}

# NEST-script settings of evidence-accumulation: the example's input structure (its "input" and "steps"
# dictionaries): 7 cues of 100 steps, each after a break of 50 steps, then 1050 steps of background noise and
# 150 recall steps. task_settings() requires the engine's sequence, learning window and input spike probability
# to agree with it.
EA_INPUT = {"n_symbols": 4, "n_cues": 7, "prob_group": 0.3, "spike_prob": 0.04}
EA_STEPS = {"cue": 100, "spacing": 50, "bg_noise": 1050, "recall": 150}
EA_STEPS["cues"] = EA_INPUT["n_cues"] * (EA_STEPS["cue"] + EA_STEPS["spacing"])
EA_STEPS["sequence"] = EA_STEPS["cues"] + EA_STEPS["bg_noise"] + EA_STEPS["recall"]  # 2250
EA_SIMPLIFICATIONS = [
    "Training iterations only: no validation phase (the example runs one before iteration 0 and every 10 "
    "iterations, each consuming a batch draw and simulating with eta 0), no early stopping, no test phase; "
    "iteration 0 therefore uses the first batch drawn after the weights.",
    "--iterations N training iterations (the example: up to n_iter_train = 50) with eta 5e-3, the only learning "
    "rate ever set (the example first sets eta_test = 0 for its validation phase; NEST 3.10's first optimizer step "
    "uses the first eta ever set, which is moot here).",
    "Loss and accuracy are computed after the simulation from the readout multimeter, with the example's formulas "
    "and windows (TrainingPipeline.evaluate), instead of during it.",
    "Recorders: one multimeter on recurrent neuron 0 (a LIF neuron; the example also records adaptive neuron 50), "
    "the readout multimeter limited to the training sequences, the example's weight recorder (5 senders/targets), "
    "spike recorders on the input and recurrent neurons.",
]

# Losses that test_eprop_regression() asserts for the sine-waves task (seed 1, 5 iterations, batch 1):
# NEST's own reference (asserted with rtol 1e-8) and the original TensorFlow implementation's (INM-6 fork
# of eligibility_propagation@7df7d2627, TF 1.15, float32; asserted with rtol 1e-7).
SINE_WAVES_LOSS_NEST_REFERENCE = [101.964356999041, 103.466731126205, 103.340607074771, 103.680244037686,
                                  104.412775748752]
SINE_WAVES_LOSS_TF_REFERENCE = [101.964363098144, 103.466735839843, 103.340606689453, 103.680244445800,
                                104.412780761718]


def task_settings(task):
    """The settings of a task: the engine's task defaults, then this script's NEST-script settings."""
    settings = task_defaults(task)
    settings.update(NEST_SCRIPT_SETTINGS[task])
    settings.update(NEST_SCRIPT_DEFAULT_OVERRIDES.get(task, {}))
    if task == "evidence-accumulation":
        example = {"sequence": EA_STEPS["sequence"], "learning_window": EA_STEPS["recall"],
                   "input_spike_prob": EA_INPUT["spike_prob"]}
        differ = {k: {"engine": settings[k], "EA_STEPS/EA_INPUT": v} for k, v in example.items() if settings[k] != v}
        if differ:
            raise RuntimeError(f"evidence-accumulation: the engine's task defaults disagree with this script's "
                               f"input structure: {differ}")
    return settings


def parse_args(argv=None):
    """Command-line options; those not given take the task's settings (task_settings)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--task", choices=TASKS, default="infinite-loop",
                   help="infinite-loop = the seed tutorial; sine-waves = NEST's test_eprop_regression network; "
                        "evidence-accumulation = NEST's classification example (training iterations only)")
    p.add_argument("--seed", type=int, default=1, help="numpy seed and NEST rng_seed (default 1)")
    p.add_argument("--n-in", type=int, default=None, help="default: 100; evidence-accumulation 40 (4 groups)")
    p.add_argument("--n-rec", type=int, default=None,
                   help="default: 200 (infinite-loop), 100 (sine-waves, evidence-accumulation)")
    p.add_argument("--n-out", type=int, default=None,
                   help="default: 2 (infinite-loop, evidence-accumulation), 1 (sine-waves)")
    p.add_argument("--iterations", type=int, default=None,
                   help="optimizer steps (each = batch-size sequences); default 5, evidence-accumulation 2")
    p.add_argument("--batch-size", type=int, default=None, help="default 1; evidence-accumulation 32")
    p.add_argument("--model", choices=["alif", "lif"], default=None,
                   help="alif = eprop_iaf_adapt_bsshslm_2020, lif = eprop_iaf_bsshslm_2020 "
                        "(default: alif for infinite-loop and evidence-accumulation, lif for sine-waves)")
    p.add_argument("--n-adaptive", type=int, default=None,
                   help="with --model alif: only the LAST n recurrent neurons are eprop_iaf_adapt_bsshslm_2020, the "
                        "first n_rec - n are eprop_iaf_bsshslm_2020, created first (default: all; evidence-accumulation "
                        "50 of 100, as the example)")
    p.add_argument("--optimizer", choices=["adam", "gradient_descent"], default=None,
                   help="default: adam (infinite-loop), gradient_descent (sine-waves)")
    p.add_argument("--eta", type=float, default=None, help="learning rate (default 5e-3; sine-waves 1e-4)")
    p.add_argument("--sequence", type=int, default=None,
                   help="steps per sequence (= update interval; default 1258; sine-waves 1000)")
    p.add_argument("--learning-window", type=int, default=None,
                   help="steps of the learning window (last LW steps of a sequence); default = --sequence; "
                        "evidence-accumulation 150 (the recall steps)")
    p.add_argument("--average-gradient", action=argparse.BooleanOptionalAction, default=None,
                   help="synapse average_gradient (default: False; evidence-accumulation True)")
    p.add_argument("--c-reg", type=float, default=None,
                   help="firing-rate regularization strength (default 150; sine-waves 300)")
    p.add_argument("--f-target", type=float, default=None,
                   help="target firing rate in spikes/s (default 20; sine-waves 10)")
    p.add_argument("--surrogate", choices=SURROGATES, default=None,
                   help="surrogate_gradient_function of the recurrent neurons (default: piecewise_linear)")
    p.add_argument("--no-recordings", action="store_true",
                   help="skip the recurrent multimeter and the weight recorder and record only "
                        "readout_signal/target_signal of the readouts (enough for the loss)")
    p.add_argument("--compact", action="store_true",
                   help="small export for committing: the initial and feedback weights (float32 values, see "
                        "dtype_weights) as float32 .npy; no arrays that others determine (spikes_in_*, "
                        "input_spike_seq_*, w_numpy_in_rec_float32) and no out_* recordings (loss.npy has the "
                        "loss); of the parameter dumps only the neurons' and script_params.json")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--verify-example", action="store_true",
                   help="evidence-accumulation only: afterwards run NEST's example script itself (from the installed "
                        "wheel, with batch_size, n_iter_train and rng_seed set to --batch-size, --iterations, --seed, "
                        "n_iter_test = 0, do_early_stopping = False, do_plotting = False) in a second process and "
                        "require its losses, errors, initial and final weights and recurrent spikes to equal this "
                        "export's bit for bit (result in summary.json -> example_check)")
    args = p.parse_args(argv)
    try:
        task = task_settings(args.task)
    except EngineUnavailable as e:
        p.exit(2, f"{p.prog}: error: {e}\n")
    for key, value in task.items():
        if key in vars(args) and getattr(args, key) is None and key != "n_adaptive":
            setattr(args, key, value)
    if args.learning_window is None:
        args.learning_window = args.sequence
    if not 1 <= args.learning_window <= args.sequence:
        p.error("--learning-window must be in 1 .. --sequence")
    n_record_w = task["n_record_w"]
    if args.n_in < n_record_w or args.n_rec < n_record_w or args.n_out < 1:
        p.error(f"need n_in >= {n_record_w}, n_rec >= {n_record_w}, n_out >= 1")
    if args.model == "lif":
        if args.n_adaptive:
            p.error("--n-adaptive needs --model alif")
        args.n_adaptive = 0
    elif args.n_adaptive is None:
        args.n_adaptive = task["n_adaptive"] or args.n_rec
    if not 0 <= args.n_adaptive <= args.n_rec:
        p.error("--n-adaptive must be in 0 .. n_rec")
    if args.verify_example:
        example_settings = dict(task_settings("evidence-accumulation"), task="evidence-accumulation",
                                surrogate="piecewise_linear")
        differ = [k for k, v in example_settings.items() if k in vars(args) and k not in ("iterations", "batch_size")
                  and getattr(args, k) != v]
        if differ:
            p.error(f"--verify-example needs the example's settings (only --seed, --iterations, --batch-size may "
                    f"change); different: {differ}")
    if args.task == "evidence-accumulation":
        if args.sequence != EA_STEPS["sequence"]:
            p.error(f"evidence-accumulation: the sequence is fixed by the task ({EA_STEPS['sequence']} steps)")
        if args.n_in < EA_INPUT["n_symbols"] or args.n_out != 2:
            p.error(f"evidence-accumulation: need n_in >= {EA_INPUT['n_symbols']} and n_out = 2")
    if args.iterations < 1 or args.batch_size < 1:
        p.error("--iterations and --batch-size must be >= 1")
    return args


# ---------------------------------------------------------------------------------------------
# small helpers


def memory_mb():
    """Current resident set size and its peak (MB), for the summary."""
    rss = float("nan")
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return {"rss_mb": rss, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def to_jsonable(x):
    """Convert NEST / numpy values to plain JSON; non-finite floats become strings ("inf")."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return [to_jsonable(v) for v in x.tolist()]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else str(x)
    if x is None or isinstance(x, str):
        return x
    return str(x)  # NodeCollection, SynapseCollection, ...


def write_json(path, obj):
    """Write obj (to_jsonable) as indented JSON."""
    with open(path, "w") as f:
        json.dump(to_jsonable(obj), f, indent=1)
        f.write("\n")


def target_signals(n_out, seq):
    """sin(linspace(0, 2 pi (k+1), T)) for readout k: 2 pi and 4 pi for the tutorial's two readouts."""
    return [np.sin(np.linspace(0.0, 2.0 * (k + 1) * np.pi, seq)) for k in range(n_out)]


def generate_superimposed_sines(steps_sequence, periods):
    """Target of NEST's test_eprop_regression (verbatim): 4 sines, amplitudes U(0.5, 2), phases U(0, 2 pi),
    drawn from numpy's global generator after the input pattern; shifted to start at 0 and normalized."""
    n_sines = len(periods)

    amplitudes = np.random.uniform(low=0.5, high=2.0, size=n_sines)
    phases = np.random.uniform(low=0.0, high=2.0 * np.pi, size=n_sines)

    sines = [
        A * np.sin(np.linspace(phi, phi + 2.0 * np.pi * (steps_sequence // T), steps_sequence))
        for A, phi, T in zip(amplitudes, phases, periods)
    ]

    superposition = sum(sines)
    superposition -= superposition[0]
    superposition /= max(np.abs(superposition).max(), 1e-6)
    return superposition


def calculate_glorot_dist(fan_in, fan_out):
    """Glorot-uniform draw of the evidence-accumulation example (readout weights), verbatim."""
    glorot_scale = 1.0 / max(1.0, (fan_in + fan_out) / 2.0)
    glorot_limit = np.sqrt(3.0 * glorot_scale)
    glorot_distribution = np.random.uniform(low=-glorot_limit, high=glorot_limit, size=(fan_in, fan_out))
    return glorot_distribution


def generate_evidence_accumulation_input_output(batch_size, n_in, steps, input):
    """The example's input and target of one batch (verbatim, numpy's global generator): returns
    input_spike_bools [batch, T, n_in] and the target class (0 = left, 1 = right) of each sequence."""
    n_pop_nrn = n_in // input["n_symbols"]

    prob_choices = np.array([input["prob_group"], 1 - input["prob_group"]], dtype=np.float32)
    idx = np.random.choice([0, 1], batch_size)
    probs = np.zeros((batch_size, 2), dtype=np.float32)
    probs[:, 0] = prob_choices[idx]
    probs[:, 1] = prob_choices[1 - idx]

    batched_cues = np.zeros((batch_size, input["n_cues"]), dtype=int)
    for b_idx in range(batch_size):
        batched_cues[b_idx, :] = np.random.choice([0, 1], input["n_cues"], p=probs[b_idx])

    input_spike_probs = np.zeros((batch_size, steps["sequence"], n_in))

    for b_idx in range(batch_size):
        for c_idx in range(input["n_cues"]):
            cue = batched_cues[b_idx, c_idx]

            step_start = c_idx * (steps["cue"] + steps["spacing"]) + steps["spacing"]
            step_stop = step_start + steps["cue"]

            pop_nrn_start = cue * n_pop_nrn
            pop_nrn_stop = pop_nrn_start + n_pop_nrn

            input_spike_probs[b_idx, step_start:step_stop, pop_nrn_start:pop_nrn_stop] = input["spike_prob"]

    input_spike_probs[:, -steps["recall"] :, 2 * n_pop_nrn : 3 * n_pop_nrn] = input["spike_prob"]
    input_spike_probs[:, :, 3 * n_pop_nrn :] = input["spike_prob"] / 4.0
    input_spike_bools = input_spike_probs > np.random.rand(input_spike_probs.size).reshape(input_spike_probs.shape)
    input_spike_bools[:, 0, :] = 0  # remove spikes in 0th time step of every sequence for technical reasons

    target_cues = np.zeros(batch_size, dtype=int)
    target_cues[:] = np.sum(batched_cues, axis=1) > int(input["n_cues"] / 2)

    return input_spike_bools, target_cues


# ---------------------------------------------------------------------------------------------
# the simulation: run() calls the steps below in this order


def run(args):
    """Build, train and export one configuration (the functions below, in order); returns the summary."""
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    timings = {}
    memory = {}
    t_start = time.perf_counter()

    t0 = time.perf_counter()
    nest = start_nest(args.quiet)
    timings["import_nest_s"] = time.perf_counter() - t0
    memory["after_import"] = memory_mb()

    # --- network, recorders, input and targets -----------------------------------------------------
    t_setup = time.perf_counter()
    cfg = plan_run(args)
    np.random.seed(args.seed)  # legacy RandomState: weights and input below are drawn in the tutorial's order
    reset_kernel(nest, cfg)
    nrn = neuron_params(nest, cfg)
    net = create_neurons(nest, cfg, nrn)
    memory["after_create_neurons"] = memory_mb()
    rec = create_recorders(nest, cfg, net)
    weights = draw_weights(cfg)
    syn = connect_network(nest, cfg, nrn, net, rec, weights)
    memory["after_connect"] = memory_mb()
    task_io = None if cfg.ea else set_frozen_input_and_targets(cfg, net)
    final = create_final_update(nest, cfg, net)
    init = read_initial_state(nest, net)
    memory["after_get_weights_pre"] = memory_mb()
    timings["setup_s"] = time.perf_counter() - t_setup

    # --- train ------------------------------------------------------------------------------------
    log(f"NEST {nest.__version__}: simulating {cfg.duration['sim']:.0f} ms "
        f"({cfg.n_iter} iterations x batch {cfg.n_batch} x {cfg.seq} steps, {cfg.rec_model}, {args.optimizer})")
    t0 = time.perf_counter()
    if cfg.ea:
        task_io = simulate_evidence_accumulation(nest, cfg, net, syn, final)
    else:
        nest.Simulate(cfg.duration["sim"])
    timings["simulate_s"] = time.perf_counter() - t0
    timings["simulate_per_iteration_s"] = timings["simulate_s"] / cfg.n_iter
    memory["after_simulate"] = memory_mb()

    # --- read back and evaluate ---------------------------------------------------------------------
    t0 = time.perf_counter()
    back = read_back(nest, net, rec)
    memory["after_readout"] = memory_mb()
    timings["readout_s"] = time.perf_counter() - t0
    ev = evaluate_classification(cfg, net, back, task_io, log) if cfg.ea else evaluate_regression(cfg, net, back)

    # --- write everything ---------------------------------------------------------------------------
    t0 = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    spikes, events_were_sorted = sorted_spikes(net, back.events_sr)
    arrays = collect_arrays(cfg, nrn, net, rec, weights, task_io, init, back, ev, spikes)
    if args.compact:
        compact_arrays(arrays, cfg.ea)
    for name, (array, _, _) in arrays.items():
        np.save(os.path.join(args.out, name), array)
    json_files = parameter_dumps(cfg, nrn, rec, syn, final, init, back)
    for name, (obj, _) in json_files.items():
        write_json(os.path.join(args.out, name), obj)
    rates = spike_counts_and_rates(cfg, net, rec, back, spikes)
    timings["export_s"] = time.perf_counter() - t0
    timings["total_wall_s"] = time.perf_counter() - t_start
    summary = build_summary(nest, cfg, task_io, ev, init, back, rates, events_were_sorted, timings, memory, log)
    write_json(os.path.join(args.out, "summary.json"), summary)
    write_json(os.path.join(args.out, "manifest.json"), build_manifest(nest, cfg, final, arrays, json_files, summary))
    log(f"wrote {len(arrays)} arrays to {args.out}; loss {np.array2string(ev.loss, precision=6)}; "
        f"simulate {timings['simulate_s']:.2f} s, total {time.perf_counter() - t_start:.2f} s")
    return summary


def start_nest(quiet):
    """Import NEST without its banner and set its verbosity; returns the nest module."""
    os.environ.setdefault("PYNEST_QUIET", "1")  # no NEST banner on stdout
    import nest

    level = "ERROR" if quiet else "WARNING"
    try:
        nest.verbosity = getattr(nest.VerbosityLevel, level)  # NEST >= 3.10
    except AttributeError:
        nest.set_verbosity("M_" + level)
    return nest


def plan_run(args):
    """The run's settings, sizes, populations and timing (steps and ms, the tutorial's offsets); no NEST calls."""
    settings = task_settings(args.task)
    n_batch, n_iter = args.batch_size, args.iterations
    steps = {"sequence": args.sequence, "learning_window": args.learning_window}
    steps["task"] = n_iter * n_batch * steps["sequence"]
    steps.update({"offset_gen": 1, "delay_in_rec": 1, "delay_rec_out": 1, "delay_out_norm": 1, "extension_sim": 1})
    steps["delays"] = steps["delay_in_rec"] + steps["delay_rec_out"] + steps["delay_out_norm"]
    steps["total_offset"] = steps["offset_gen"] + steps["delays"]
    steps["sim"] = steps["task"] + steps["total_offset"] + steps["extension_sim"]
    ea = args.task == "evidence-accumulation"
    if ea:  # the example: 3 more steps for the forced final update, which it triggers after the last batch
        steps["final_update"] = 3
        steps["sim"] += steps["final_update"]
    duration = {"step": 1.0}
    duration.update({k: v * duration["step"] for k, v in steps.items()})

    n_rec = args.n_rec
    n_ad = args.n_adaptive  # the last n_ad recurrent neurons adapt; the first n_rec - n_ad are plain LIF
    n_reg = n_rec - n_ad
    model_lif, model_alif = "eprop_iaf_bsshslm_2020", "eprop_iaf_adapt_bsshslm_2020"
    return SimpleNamespace(
        args=args, settings=settings, ea=ea, steps=steps, duration=duration,
        seq=steps["sequence"], n_batch=n_batch, n_iter=n_iter,
        n_seq=n_iter * n_batch,  # sequences (= update intervals) simulated
        n_in=args.n_in, n_rec=n_rec, n_out=args.n_out, n_ad=n_ad, n_reg=n_reg,
        adaptive=n_ad == n_rec,  # all recurrent neurons adapt
        adaptive0=n_reg == 0,  # recurrent neuron 0 (the one the multimeter records) adapts
        model_lif=model_lif, model_alif=model_alif,
        rec_model=(model_alif if n_ad == n_rec else model_lif if n_ad == 0
                   else f"{n_reg} {model_lif} (created first) + {n_ad} {model_alif}"),
        n_record_w=settings["n_record_w"],
    )


def reset_kernel(nest, cfg):
    """Reset NEST and set the kernel: resolution, e-prop update interval and learning window, one thread, seed."""
    nest.ResetKernel()
    nest.set(
        eprop_learning_window=cfg.duration["learning_window"],
        eprop_reset_neurons_on_update=True,
        eprop_update_interval=cfg.duration["sequence"],
        print_time=False,
        resolution=cfg.duration["step"],
        total_num_virtual_procs=1,  # single thread: NEST is then deterministic
        rng_seed=cfg.args.seed,
    )


def neuron_params(nest, cfg):
    """Parameters of the recurrent (LIF, ALIF) and readout neurons and the tau_m rule, as the scripts set them."""
    args, task = cfg.args, cfg.settings
    v_th, tau_m_mean = task["v_th"], task["tau_m_rec_mean"]
    params_nrn_rec = {
        "C_m": task["c_m_rec"],  # only matters with current input (none here)
        "c_reg": args.c_reg,
        "E_L": task["e_l_rec"],
        "f_target": args.f_target,  # set in spikes/s, read back in spikes/ms
        # NEST 3.10 replaced 3.8's gamma by height and width: psi = h * max(0, 1 - |v - A| / w)
        "surrogate_gradient_height": task["gamma"] / v_th,
        "surrogate_gradient_width": v_th,
        "I_e": task["i_e_rec"],
        "regular_spike_arrival": task["regular_spike_arrival"],
        "surrogate_gradient_function": args.surrogate,
        "t_ref": task["t_ref"],
        "V_m": 0.0,
        "V_th": v_th,
    }
    if task["v_min"] is not None:  # the engine's default is no bound, as NEST's
        params_nrn_rec["V_min"] = task["v_min"]
    if task["flush_event_send_interval"] == "sequence":
        params_nrn_rec["flush_event_send_interval"] = cfg.duration["sequence"]
    params_nrn_ad = dict(params_nrn_rec, adapt_tau=task["adapt_tau"])
    params_nrn_ad["adapt_beta"] = task["adapt_beta"] if task["adapt_beta"] is not None else (
        1.7 * (1.0 - np.exp(-1 / params_nrn_ad["adapt_tau"])) / (1.0 - np.exp(-1.0 / tau_m_mean))
    )
    if cfg.ea:
        params_nrn_ad["adaptation"] = 0.0  # as the example (the default)
    params_nrn_out = {
        "C_m": task["c_m_out"],
        "E_L": task["e_l_out"],
        "I_e": task["i_e_out"],
        "loss": task["loss"],
        "regular_spike_arrival": task["regular_spike_arrival_out"],
        "tau_m": task["tau_out"],
        "V_m": 0.0,
    }
    if task["tau_m_rec_std"] > 0:
        # tau_m is drawn per neuron by NEST's own generator (seeded with rng_seed) at Create
        tau_m_rule = nest.random.normal(mean=tau_m_mean, std=task["tau_m_rec_std"])
        tau_m_text = f"nest.random.normal(mean={tau_m_mean}, std={task['tau_m_rec_std']})"
    else:
        tau_m_rule = tau_m_text = tau_m_mean  # the regression test: 30 for every neuron; evidence accumulation 20
    return SimpleNamespace(rec=params_nrn_rec, ad=params_nrn_ad, out=params_nrn_out, tau_m_rule=tau_m_rule,
                           tau_m_text=tau_m_text)


def create_neurons(nest, cfg, nrn):
    """Create the input generators and parrots, the recurrent populations (LIF first), the readouts, the targets."""
    gen_spk_in = nest.Create("spike_generator", cfg.n_in)
    nrns_in = nest.Create("parrot_neuron", cfg.n_in)
    pops_rec = []
    if cfg.n_reg:
        pops_rec.append(nest.Create(cfg.model_lif, cfg.n_reg, dict(nrn.rec, tau_m=nrn.tau_m_rule)))
    if cfg.n_ad:
        pops_rec.append(nest.Create(cfg.model_alif, cfg.n_ad, dict(nrn.ad, tau_m=nrn.tau_m_rule)))
    nrns_rec = pops_rec[0] if len(pops_rec) == 1 else pops_rec[0] + pops_rec[1]
    nrns_out = nest.Create("eprop_readout_bsshslm_2020", cfg.n_out, nrn.out)
    gen_rate_target = nest.Create("step_rate_generator", cfg.n_out)
    return SimpleNamespace(gen_spk_in=gen_spk_in, nrns_in=nrns_in, nrns_rec=nrns_rec, nrns_out=nrns_out,
                           gen_rate_target=gen_rate_target)


def create_recorders(nest, cfg, net):
    """Create the multimeters, spike recorders and weight recorder with the tutorial's windows (not yet connected)."""
    duration = cfg.duration
    rec_recordables = ["V_m", "surrogate_gradient", "learning_signal"]
    if cfg.adaptive0:
        rec_recordables += ["V_th_adapt", "adaptation"]
    out_recordables = ["V_m", "readout_signal", "readout_signal_unnorm", "target_signal", "error_signal"]
    if cfg.args.no_recordings:
        out_recordables = ["readout_signal", "target_signal"]  # what the loss needs
    params_mm_rec = {
        "interval": duration["step"],
        "record_from": rec_recordables,
        "start": duration["offset_gen"] + duration["delay_in_rec"],
        "stop": duration["offset_gen"] + duration["delay_in_rec"] + duration["task"],
    }
    params_mm_out = {
        "interval": duration["step"],
        "record_from": out_recordables,
        "start": duration["total_offset"],
        "stop": duration["total_offset"] + duration["task"],
    }
    params_wr = {
        "senders": net.nrns_in[:cfg.n_record_w] + net.nrns_rec[:cfg.n_record_w],
        "targets": net.nrns_rec[:cfg.n_record_w] + net.nrns_out,
        "start": duration["total_offset"],
        "stop": duration["total_offset"] + duration["task"],
    }
    # The tutorial's spike recorder has the window (total_offset, total_offset + task]; it gives the
    # counts and rates in summary.json. A second recorder without window (sr_all) records the whole
    # simulation, incl. the forced final-update spikes, for the spikes_*.npy export.
    params_sr = {"start": duration["total_offset"], "stop": duration["total_offset"] + duration["task"]}

    mm_rec = None if cfg.args.no_recordings else nest.Create("multimeter", params_mm_rec)
    mm_out = nest.Create("multimeter", params_mm_out)
    sr = nest.Create("spike_recorder", params_sr)
    wr = None if cfg.args.no_recordings else nest.Create("weight_recorder", params_wr)
    sr_all = nest.Create("spike_recorder")
    return SimpleNamespace(mm_rec=mm_rec, mm_out=mm_out, sr=sr, wr=wr, sr_all=sr_all, params_mm_rec=params_mm_rec,
                           params_mm_out=params_mm_out, params_wr=params_wr, params_sr=params_sr,
                           sr_window=(params_sr["start"], params_sr["stop"]), rec_recordables=rec_recordables,
                           out_recordables=out_recordables)


def draw_weights(cfg):
    """Draw the initial weights with numpy in the scripts' order: input, recurrent, readout, feedback ([post, pre])."""
    n_in, n_rec, n_out = cfg.n_in, cfg.n_rec, cfg.n_out
    dtype_weights = np.float32  # as in the tutorial: drawn in double, stored as float32 values
    weights_in_rec = np.array(np.random.randn(n_in, n_rec).T / np.sqrt(n_in), dtype=dtype_weights)
    weights_rec_rec = np.array(np.random.randn(n_rec, n_rec).T / np.sqrt(n_rec), dtype=dtype_weights)
    np.fill_diagonal(weights_rec_rec, 0.0)  # no autapses
    if cfg.ea:  # the example: Glorot-uniform readout weights, feedback weights not scaled by 1/sqrt(n_rec)
        weights_rec_out = np.array(calculate_glorot_dist(n_rec, n_out).T, dtype=dtype_weights)
        weights_out_rec = np.array(np.random.randn(n_rec, n_out), dtype=dtype_weights)
    else:
        weights_rec_out = np.array(np.random.randn(n_rec, n_out).T / np.sqrt(n_rec), dtype=dtype_weights)
        weights_out_rec = np.array(np.random.randn(n_rec, n_out) / np.sqrt(n_rec), dtype=dtype_weights)
    return {"in_rec": weights_in_rec, "rec_rec": weights_rec_rec, "rec_out": weights_rec_out,
            "out_rec": weights_out_rec}


def connect_network(nest, cfg, nrn, net, rec, weights):
    """Set the e-prop synapse defaults (optimizer); make all connections, recorders included, in the scripts' order."""
    args, task, duration = cfg.args, cfg.settings, cfg.duration
    params_conn_all_to_all = {"rule": "all_to_all", "allow_autapses": False}
    params_conn_one_to_one = {"rule": "one_to_one"}
    optimizer = {"type": args.optimizer, "batch_size": cfg.n_batch, "eta": args.eta, "Wmin": task["w_min"],
                 "Wmax": task["w_max"]}
    if args.optimizer == "adam":
        optimizer.update({"beta_1": task["beta_1"], "beta_2": task["beta_2"], "epsilon": task["epsilon"]})
    params_common_syn_eprop = {"optimizer": optimizer, "average_gradient": args.average_gradient}
    if rec.wr is not None:
        params_common_syn_eprop["weight_recorder"] = rec.wr

    params_syn_base = {
        "synapse_model": "eprop_synapse_bsshslm_2020",
        "delay": duration["step"],
        "tau_m_readout": nrn.out["tau_m"],  # must equal the readout tau_m (NEST does not check)
    }
    params_syn_in = dict(params_syn_base, weight=weights["in_rec"])
    params_syn_rec = dict(params_syn_base, weight=weights["rec_rec"])
    params_syn_out = dict(params_syn_base, weight=weights["rec_out"])
    params_syn_feedback = {
        "synapse_model": "eprop_learning_signal_connection_bsshslm_2020",
        "delay": duration["step"],
        "weight": weights["out_rec"],
    }
    params_syn_rate_target = {"synapse_model": "rate_connection_delayed", "delay": duration["step"], "receptor_type": 2}
    # cross-entropy: every readout sends its unnormalized signal exp(V_m) to the others for the softmax
    params_syn_out_out = {"synapse_model": "rate_connection_delayed", "delay": duration["step"], "receptor_type": 1,
                          "weight": 1.0}
    params_syn_static = {"synapse_model": "static_synapse", "delay": duration["step"]}

    nrns_in, nrns_rec, nrns_out = net.nrns_in, net.nrns_rec, net.nrns_out
    nest.SetDefaults("eprop_synapse_bsshslm_2020", params_common_syn_eprop)
    nest.Connect(net.gen_spk_in, nrns_in, params_conn_one_to_one, params_syn_static)  # 1
    nest.Connect(nrns_in, nrns_rec, params_conn_all_to_all, params_syn_in)  # 2
    nest.Connect(nrns_rec, nrns_rec, params_conn_all_to_all, params_syn_rec)  # 3
    nest.Connect(nrns_rec, nrns_out, params_conn_all_to_all, params_syn_out)  # 4
    nest.Connect(nrns_out, nrns_rec, params_conn_all_to_all, params_syn_feedback)  # 5
    nest.Connect(net.gen_rate_target, nrns_out, params_conn_one_to_one, params_syn_rate_target)  # 6
    if task["loss"] == "cross_entropy":
        nest.Connect(nrns_out, nrns_out, params_conn_all_to_all, params_syn_out_out)  # 7
    nest.Connect(nrns_in + nrns_rec, rec.sr, params_conn_all_to_all, params_syn_static)
    nest.Connect(nrns_in + nrns_rec, rec.sr_all, params_conn_all_to_all, params_syn_static)
    if rec.mm_rec is not None:
        nest.Connect(rec.mm_rec, nrns_rec[:N_RECORD], params_conn_all_to_all, params_syn_static)
    nest.Connect(rec.mm_out, nrns_out, params_conn_all_to_all, params_syn_static)
    if args.optimizer == "adam" and args.task in ("infinite-loop", "evidence-accumulation"):
        # the tutorial and the example initialize the Adam moments of two synapses explicitly (to their defaults)
        nest.GetConnections(nrns_rec[0], nrns_rec[1:3]).set([{"optimizer": {"m": 0.0, "v": 0.0}}] * 2)
    return SimpleNamespace(common_eprop=params_common_syn_eprop, out_out=params_syn_out_out)


def set_frozen_input_and_targets(cfg, net):
    """infinite-loop, sine-waves: draw the frozen input pattern and the targets; set the generators for all sequences."""
    duration, seq, n_in, n_out = cfg.duration, cfg.seq, cfg.n_in, cfg.n_out
    # --- input: frozen Poisson pattern, identical in every sequence -----------------------------
    input_spike_bools = (np.random.rand(seq, n_in) < cfg.settings["input_spike_prob"]).swapaxes(0, 1)
    input_spike_bools[:, 0] = 0  # a spike at sequence step 0 would be dropped by NEST anyway
    sequence_starts = np.arange(0.0, duration["task"], duration["sequence"]) + duration["offset_gen"]
    params_gen_spk_in = []
    for input_spike_bool in input_spike_bools:
        input_spike_times = np.arange(0.0, duration["sequence"], duration["step"])[input_spike_bool]
        input_spike_times_all = [input_spike_times + start for start in sequence_starts]
        params_gen_spk_in.append({"spike_times": np.hstack(input_spike_times_all).astype(np.float32)})
    net.gen_spk_in.set(params_gen_spk_in)

    # --- targets --------------------------------------------------------------------------------
    if cfg.args.task == "sine-waves":  # one target per readout, drawn in readout order (the test has one)
        target_signal_list = [generate_superimposed_sines(seq, [1000, 500, 333, 200]) for _ in range(n_out)]
    else:
        target_signal_list = target_signals(n_out, seq)
    net.gen_rate_target.set(
        [
            {
                "amplitude_times": np.arange(0.0, duration["task"], duration["step"]) + duration["total_offset"],
                "amplitude_values": np.tile(target_signal, cfg.n_seq),
            }
            for target_signal in target_signal_list
        ]
    )
    return SimpleNamespace(input_spike_bools=input_spike_bools, target_signal_list=target_signal_list)


def create_final_update(nest, cfg, net):
    """Create the forced final update: one strong spike into every presynaptic neuron of an e-prop synapse."""
    duration = cfg.duration
    if cfg.ea:  # the example sets the spike time after the last batch: task + total_offset + extension_sim + 1
        time_ms = duration["task"] + duration["total_offset"] + duration["extension_sim"] + 1
        gen = nest.Create("spike_generator", 1)
    else:
        time_ms = duration["task"] + duration["delays"]
        gen = nest.Create("spike_generator", 1, {"spike_times": [time_ms]})
    nest.Connect(gen, net.nrns_in + net.nrns_rec, "all_to_all", {"weight": 1000.0})
    return SimpleNamespace(gen=gen, time=time_ms)


def get_weights(nest, pop_pre, pop_post):
    """Weight matrix [post, pre] of all connections pop_pre -> pop_post (absent -> 0)."""
    conns = nest.GetConnections(pop_pre, pop_post).get(["source", "target", "weight"])
    pre = np.asarray(conns["source"]) - pop_pre[0].global_id
    post = np.asarray(conns["target"]) - pop_post[0].global_id
    w = np.zeros((len(pop_post), len(pop_pre)))
    w[post, pre] = conns["weight"]
    return w


def trained_weights(nest, net):
    """The three trained weight matrices [post, pre] as NEST holds them now."""
    return {
        "in_rec": get_weights(nest, net.nrns_in, net.nrns_rec),
        "rec_rec": get_weights(nest, net.nrns_rec, net.nrns_rec),
        "rec_out": get_weights(nest, net.nrns_rec, net.nrns_out),
    }


def read_initial_state(nest, net):
    """Read back the state before training: weights, feedback weights, tau_m and the neuron and synapse parameters."""
    w_init = trained_weights(nest, net)
    w_feedback_init = get_weights(nest, net.nrns_out, net.nrns_rec)  # [n_rec, n_out] = B_jk
    tau_m_rec = np.asarray(net.nrns_rec.get("tau_m"), dtype=np.float64)
    params_rec_neuron = net.nrns_rec[0].get()
    params_out_neuron = net.nrns_out[0].get()
    rec_status_all = net.nrns_rec.get()
    uniform_keys = [
        "C_m", "E_L", "I_e", "V_min", "V_th", "adapt_beta", "adapt_tau", "c_reg", "f_target",
        "flush_event_send_interval", "regular_spike_arrival", "surrogate_gradient_function",
        "surrogate_gradient_height", "surrogate_gradient_width", "t_ref",
    ]
    params_rec_uniform = {}
    for key in uniform_keys:
        if key in rec_status_all:
            values = rec_status_all[key]
            params_rec_uniform[key] = {"all_equal": all(v == values[0] for v in values), "value": values[0]}
    params_syn_defaults = nest.GetDefaults("eprop_synapse_bsshslm_2020")
    return SimpleNamespace(w=w_init, w_feedback=w_feedback_init, tau_m_rec=tau_m_rec,
                           params_rec_neuron=params_rec_neuron, params_out_neuron=params_out_neuron,
                           params_rec_uniform=params_rec_uniform, params_syn_defaults=params_syn_defaults)


def simulate_evidence_accumulation(nest, cfg, net, syn, final):
    """evidence-accumulation: train as the example does, drawing and setting a new batch every iteration."""
    # The example's training phases (TrainingPipeline.run_phase): per iteration set the synapse defaults
    # (same eta every time), draw the batch, set the generators, simulate total_offset, extension_sim and
    # the rest of the batch; then total_offset and extension_sim once more, the final-update spike and
    # final_update steps. The draws are the example's, minus its validation phase before iteration 0.
    duration, seq, n_batch, n_in, n_out, n_seq = cfg.duration, cfg.seq, cfg.n_batch, cfg.n_in, cfg.n_out, cfg.n_seq
    input_batches, target_cues_all = [], []
    ea_steps = dict(EA_STEPS, learning_window=cfg.steps["learning_window"])
    for n in range(cfg.n_iter):
        nest.SetDefaults("eprop_synapse_bsshslm_2020", syn.common_eprop)
        input_spike_bools, target_cues = generate_evidence_accumulation_input_output(n_batch, n_in, ea_steps,
                                                                                     EA_INPUT)
        iteration_offset = n * n_batch * duration["sequence"]
        input_spike_bools_arr = np.array(input_spike_bools).reshape(n_batch * seq, n_in)
        timeline_task = (np.arange(0.0, n_batch * duration["sequence"], duration["step"]) + iteration_offset
                         + duration["offset_gen"])
        net.gen_spk_in.set([{"spike_times": timeline_task[input_spike_bools_arr[:, i]].astype(np.float32)}
                            for i in range(n_in)])
        target_rate_changes = np.zeros((n_out, n_batch))
        target_rate_changes[np.array(target_cues), np.arange(n_batch)] = 1
        net.gen_rate_target.set([
            {
                "amplitude_times": np.arange(0.0, n_batch * duration["sequence"], duration["sequence"])
                + iteration_offset + duration["total_offset"],
                "amplitude_values": target_rate_changes[k],
            }
            for k in range(n_out)
        ])
        input_batches.append(np.asarray(input_spike_bools, dtype=bool).swapaxes(1, 2))  # [batch, n_in, T]
        target_cues_all.append(np.asarray(target_cues))
        nest.Simulate(duration["total_offset"])
        nest.Simulate(duration["extension_sim"])
        nest.Simulate(n_batch * duration["sequence"] - duration["total_offset"] - duration["extension_sim"])
    nest.Simulate(duration["total_offset"])
    nest.Simulate(duration["extension_sim"])
    final.gen.set({"spike_times": [final.time]})
    nest.Simulate(duration["final_update"])
    input_spike_bools = np.concatenate(input_batches)  # [K, n_in, T]
    target_class = np.concatenate(target_cues_all).astype(np.int32)  # [K]
    target_signal_seq = np.zeros((n_seq, n_out, seq))
    target_signal_seq[np.arange(n_seq), target_class, :] = 1.0
    assert nest.biological_time == duration["sim"], (nest.biological_time, duration["sim"])
    return SimpleNamespace(input_spike_bools=input_spike_bools, target_class=target_class,
                           target_signal_seq=target_signal_seq)


def read_back(nest, net, rec):
    """Read back after training: final weights, a synapse's and the kernel's status, all recorder events."""
    kernel_keys = [
        "biological_time", "eprop_learning_window", "eprop_reset_neurons_on_update", "eprop_update_interval",
        "local_num_threads", "max_delay", "min_delay", "network_size", "num_connections", "resolution",
        "rng_seed", "rng_type", "total_num_virtual_procs",
    ]
    return SimpleNamespace(
        w=trained_weights(nest, net),
        w_feedback=get_weights(nest, net.nrns_out, net.nrns_rec),
        syn_in0_rec0=nest.GetConnections(net.nrns_in[0], net.nrns_rec[0]).get(),
        kernel_status={k: nest.GetKernelStatus(k) for k in kernel_keys},
        events_mm_rec=rec.mm_rec.get("events") if rec.mm_rec is not None else None,
        events_mm_out=rec.mm_out.get("events"),
        events_sr=rec.sr_all.get("events"),
        n_events_sr_window={  # per population, from the tutorial's windowed recorder
            name: int(np.count_nonzero(np.isin(rec.sr.get("events")["senders"], pop.tolist())))
            for name, pop in (("in", net.nrns_in), ("rec", net.nrns_rec))
        },
        events_wr=rec.wr.get("events") if rec.wr is not None else None,
    )


def readout_matrix(events, name, net):
    """The recorded variable `name` of every readout, [n_out, samples], from the readout multimeter's events."""
    senders = np.asarray(events["senders"])
    values = np.asarray(events[name])
    return np.array([values[senders == gid] for gid in net.nrns_out.tolist()])


def evaluate_regression(cfg, net, back):
    """infinite-loop, sine-waves: the loss exactly as the tutorial computes it, per readout and per sequence."""
    out_senders = np.asarray(back.events_mm_out["senders"])
    readout_signal = np.asarray(back.events_mm_out["readout_signal"])
    target_signal = np.asarray(back.events_mm_out["target_signal"])
    loss_list = []
    for gid in net.nrns_out.tolist():  # readouts in index order
        idc = out_senders == gid
        error = (readout_signal[idc] - target_signal[idc]) ** 2
        loss_list.append(0.5 * np.add.reduceat(error, np.arange(0, cfg.steps["task"], cfg.steps["sequence"])))
    loss = np.sum(loss_list, axis=0)  # one value per sequence (per iteration for batch 1)
    return SimpleNamespace(loss=loss, loss_list=loss_list)


def evaluate_classification(cfg, net, back, task_io, log):
    """evidence-accumulation: the example's loss and accuracy per iteration, and checks of the recorded signals."""
    # the example's TrainingPipeline.evaluate(), iteration by iteration: the readout samples of the
    # iteration (stamps (n*B*T + 4, (n+1)*B*T + 4]) reshaped to [n_out, 1, batch, T], last LW steps
    seq, n_batch, n_out, n_seq = cfg.seq, cfg.n_batch, cfg.n_out, cfg.n_seq
    events = back.events_mm_out
    lw = cfg.steps["learning_window"]
    rs_all = readout_matrix(events, "readout_signal", net)  # [n_out, K*T]
    ts_all = readout_matrix(events, "target_signal", net)
    loss, accuracy, loss_seq = [], [], []
    for n in range(cfg.n_iter):
        sl = slice(n * n_batch * seq, (n + 1) * n_batch * seq)
        rs = rs_all[:, sl].reshape((n_out, 1, n_batch, seq))[:, :, :, -lw:]
        ts = ts_all[:, sl].reshape((n_out, 1, n_batch, seq))[:, :, :, -lw:]
        loss.append(-np.mean(np.sum(ts * np.log(rs), axis=0), axis=(1, 2))[0])
        y_prediction = np.argmax(np.mean(rs, axis=3), axis=0)
        y_target = np.argmax(np.mean(ts, axis=3), axis=0)
        accuracy.append(np.mean((y_target == y_prediction), axis=1)[0])
        loss_seq.append(-np.mean(np.sum(ts * np.log(rs), axis=0), axis=2)[0])  # [batch]
    loss, accuracy, loss_seq = np.array(loss), np.array(accuracy), np.array(loss_seq)
    # the recorded target must be the one-hot class in the window and 0 before it; the readout signal
    # must be 0 before the window and the softmax over readouts in it
    win = np.zeros(seq, dtype=bool)
    win[-lw:] = True
    win_all = np.tile(win, n_seq)
    expected_target = task_io.target_signal_seq.transpose(1, 0, 2).reshape(n_out, -1) * win_all
    checks = {"target_signal_is_one_hot_class_in_window": bool(np.array_equal(ts_all, expected_target)),
              "readout_signal_zero_before_window": bool(np.all(rs_all[:, ~win_all] == 0.0)),
              "readout_signal_positive_in_window": bool(np.all(rs_all[:, win_all] > 0.0)),
              "readout_signal_sum_max_abs_dev_from_1": float(np.abs(rs_all[:, win_all].sum(axis=0) - 1.0).max())}
    if "readout_signal_unnorm" in events:
        # readout_signal(stamp s) = exp(V_m)(stamp s-1) / sum over readouts: the softmax of the previous step's
        # readout_signal_unnorm (the unnormalized signals travel 1 step over rate_connection_delayed)
        un = readout_matrix(events, "readout_signal_unnorm", net)
        idx = np.nonzero(win_all)[0]
        idx = idx[idx > 0]
        softmax = un[:, idx - 1] / un[:, idx - 1].sum(axis=0)
        checks["readout_signal_softmax_of_previous_unnorm_max_rel_dev"] = float(
            np.max(np.abs(rs_all[:, idx] - softmax) / softmax))
        v_m = readout_matrix(events, "V_m", net)
        checks["readout_signal_unnorm_is_exp_V_m_max_rel_dev"] = float(np.max(np.abs(un - np.exp(v_m)) / np.exp(v_m)))
    ok = (checks["target_signal_is_one_hot_class_in_window"] and checks["readout_signal_zero_before_window"]
          and checks["readout_signal_positive_in_window"] and checks["readout_signal_sum_max_abs_dev_from_1"] < 1e-12
          and checks.get("readout_signal_softmax_of_previous_unnorm_max_rel_dev", 0.0) < 1e-12
          and checks.get("readout_signal_unnorm_is_exp_V_m_max_rel_dev", 0.0) < 1e-12)
    if not ok:
        raise RuntimeError(f"evidence-accumulation: the recorded readout/target signals are not as expected: {checks}")
    log(f"readout checks: {checks}")
    return SimpleNamespace(loss=loss, loss_list=[loss], accuracy=accuracy, loss_seq=loss_seq, checks=checks)


def sorted_spikes(net, events_sr):
    """All recorded spikes sorted by time then sender, split into (times, 0-based index) per population."""
    sr_times = np.asarray(events_sr["times"], dtype=np.float64)
    sr_senders = np.asarray(events_sr["senders"])
    order = np.lexsort((sr_senders, sr_times))
    events_were_sorted = bool(np.all(order == np.arange(len(order))))
    sr_times, sr_senders = sr_times[order], sr_senders[order]
    spikes = {}
    for pop_name, pop in (("in", net.nrns_in), ("rec", net.nrns_rec)):
        first = pop[0].global_id
        sel = (sr_senders >= first) & (sr_senders < first + len(pop))
        spikes[pop_name] = (sr_times[sel], (sr_senders[sel] - first).astype(np.int32))
    return spikes, events_were_sorted


# ---------------------------------------------------------------------------------------------
# the export: arrays, parameter dumps, summary, manifest


def collect_arrays(cfg, nrn, net, rec, weights, task_io, init, back, ev, spikes):
    """Every exported array in manifest order: file name -> (array, units, meaning)."""
    arrays = {}

    def put(name, array, units, meaning):
        arrays[name] = (array, units, meaning)

    put_weight_arrays(put, cfg, weights, init, back)
    if cfg.ea:
        put_classification_arrays(put, cfg, task_io, ev)
    else:
        put_regression_arrays(put, cfg, task_io, ev)
    put_recording_arrays(put, cfg, net, rec, back)
    for pop_name in ("in", "rec"):
        put(f"spikes_{pop_name}_times_ms.npy", spikes[pop_name][0], "ms",
            f"all spikes of the {pop_name} population during the whole simulation (0, {cfg.duration['sim']}] ms, "
            "sorted by time then neuron; includes the forced 'final update' spikes near the end")
        put(f"spikes_{pop_name}_senders.npy", spikes[pop_name][1], "index",
            f"0-based index within the {pop_name} population of each spike in spikes_{pop_name}_times_ms")
    if back.events_wr is not None:
        put_weight_recorder_arrays(put, net, back.events_wr)
    return arrays


def put_weight_arrays(put, cfg, weights, init, back):
    """The initial, final and feedback weights as NEST holds them, numpy's drawn input weights, and tau_m."""
    task = cfg.settings
    layout = ("layout [post, pre] (row = postsynaptic neuron index, column = presynaptic neuron index, "
              "0-based in population)")
    pops = {"in_rec": ("input", "recurrent"), "rec_rec": ("recurrent", "recurrent"), "rec_out": ("recurrent", "readout")}
    for key, (pre_name, post_name) in pops.items():
        note = "; diagonal (autapses) absent -> 0" if key == "rec_rec" else ""
        put(f"w_{key}_init.npy", init.w[key], "pA",
            f"initial eprop_synapse_bsshslm_2020 weights {pre_name} -> {post_name} as read back from NEST before "
            f"Simulate, {layout}{note}")
        put(f"w_{key}_final.npy", back.w[key], "pA",
            f"weights {pre_name} -> {post_name} read back after Simulate (after the forced final update), {layout}")
    put("w_out_rec_feedback.npy", init.w_feedback, "pA",
        "feedback weights B_jk of eprop_learning_signal_connection_bsshslm_2020 readout -> recurrent (static, not "
        f"trained), {layout}, i.e. shape [n_rec, n_out]")
    put("w_numpy_in_rec_float32.npy", weights["in_rec"], "pA",
        "weights_in_rec exactly as drawn by numpy in the script (float32, [post=rec, pre=in]); NEST stores them as "
        "float64 (identical values)")
    put("tau_m_rec.npy", init.tau_m_rec, "ms",
        (f"membrane time constant of each recurrent neuron as drawn by NEST (nest.random.normal("
         f"{task['tau_m_rec_mean']:g}, {task['tau_m_rec_std']:g})) and read back with nrns_rec.get('tau_m'); "
         "index = 0-based recurrent neuron") if task["tau_m_rec_std"] > 0 else
        (f"membrane time constant of each recurrent neuron (fixed {task['tau_m_rec_mean']} ms), read back with "
         "nrns_rec.get('tau_m'); index = 0-based recurrent neuron"))


def put_classification_arrays(put, cfg, task_io, ev):
    """evidence-accumulation: the input and target of every sequence, the classes, loss and accuracy."""
    seq, n_seq, n_batch, n_iter, n_in = cfg.seq, cfg.n_seq, cfg.n_batch, cfg.n_iter, cfg.n_in
    put("input_spike_bool_seq.npy", task_io.input_spike_bools, "1",
        f"input pattern of every sequence [K={n_seq}, n_in, {seq}] in the order simulated (sequence n*{n_batch}+b "
        f"is element b of the batch of iteration n): True if input neuron i has a generator spike at step k of "
        f"sequence s, i.e. at {seq}*s + k + 1 ms; drawn by the example's generate_evidence_accumulation_input_output "
        f"(inputs 0-{n_in // 4 - 1} left cue, {n_in // 4}-{2 * (n_in // 4) - 1} right cue, "
        f"{2 * (n_in // 4)}-{3 * (n_in // 4) - 1} recall, the rest background noise); no spike at k = 0")
    put("target_signal_seq.npy", task_io.target_signal_seq, "1",
        f"target of every sequence [K={n_seq}, n_out, {seq}]: 1 for the readout of the sequence's class (0 = left, "
        "1 = right: more right cues than left), 0 for the other, over the whole sequence; fed by step_rate_generator "
        "with amplitude_times s*T + total_offset(4) ms (the readouts use it in the learning window only)")
    put("target_class.npy", task_io.target_class, "index", f"target class (readout index) of every sequence [K={n_seq}]")
    put("loss.npy", ev.loss, "1",
        f"the example's cross-entropy loss per iteration [{n_iter}]: -mean over the batch's sequences and the last "
        f"{cfg.steps['learning_window']} steps (learning window) of sum_k target_signal_k * log(readout_signal_k), "
        "from the readout multimeter (TrainingPipeline.evaluate)")
    put("loss_per_sequence.npy", ev.loss_seq, "1",
        f"the same per sequence [{n_iter}, {n_batch}] (mean over the learning window only); loss = its row mean")
    put("accuracy.npy", ev.accuracy, "1",
        f"the example's accuracy per iteration [{n_iter}]: fraction of the batch's sequences whose argmax over "
        "readouts of the learning-window mean of readout_signal equals that of target_signal (1 - 'error')")


def put_regression_arrays(put, cfg, task_io, ev):
    """infinite-loop, sine-waves: the frozen input pattern (also as spike lists), the targets, the loss."""
    seq, n_seq, n_batch, duration = cfg.seq, cfg.n_seq, cfg.n_batch, cfg.duration
    put("input_spike_bool_seq.npy", np.asarray(task_io.input_spike_bools, dtype=bool), "1",
        f"frozen input pattern of one sequence [n_in, {seq}]: True if input neuron i has a generator spike at step "
        "k of the sequence; repeated identically in every sequence")
    in_neuron, in_step = np.nonzero(task_io.input_spike_bools)  # row-major: by neuron, then by step
    put("input_spike_seq_neuron.npy", in_neuron.astype(np.int32), "index",
        "one sequence of input spikes: 0-based input neuron index (paired with input_spike_seq_time_ms)")
    put("input_spike_seq_time_ms.npy", in_step.astype(np.float64) * duration["step"] + duration["offset_gen"], "ms",
        f"spike_generator spike times of the first sequence (step k -> k*1.0 + offset_gen(1.0) ms); sequence n "
        f"adds n*{seq} ms. The parrot neurons re-emit these 1 ms later, the recurrent neurons receive them "
        "another 1 ms later (delay 1 ms each)")
    put("target_signal_seq.npy", np.array(task_io.target_signal_list, dtype=np.float64), "1",
        (f"target signals of one sequence [n_out, {seq}]: readout k gets sin(linspace(0, 2 pi (k+1), {seq})); fed "
         "by step_rate_generator with amplitude_times k + total_offset(4) ms") if cfg.args.task == "infinite-loop" else
        (f"target signals of one sequence [n_out, {seq}]: generate_superimposed_sines({seq}, [1000, 500, 333, "
         "200]) of NEST's test_eprop_regression (drawn after the input pattern, one per readout); fed by "
         "step_rate_generator with amplitude_times k + total_offset(4) ms"))
    per = "iteration" if n_batch == 1 else f"sequence (n_iter*batch_size = {n_seq} values; sequence n*{n_batch}+b " \
                                           f"is element b of the batch of iteration n)"
    put("loss.npy", ev.loss, "1",
        f"seed loss per {per}: E = 0.5 * sum_k sum_t (y_k - y*_k)^2 over the {seq} recorded steps of the sequence "
        "(multimeter mm_out window)")
    put("loss_per_readout.npy", np.array(ev.loss_list), "1", "seed loss split per readout neuron [n_out, n_sequences]")


def put_recording_arrays(put, cfg, net, rec, back):
    """The multimeter recordings of the readouts and of the recorded recurrent neuron(s), with their time stamps."""
    seq = cfg.seq
    events_mm_out = back.events_mm_out
    out_senders = np.asarray(events_mm_out["senders"])
    out_times = np.asarray(events_mm_out["times"])[out_senders == net.nrns_out[0].global_id]
    put("out_times_ms.npy", out_times, "ms",
        f"time stamps of the readout multimeter samples (window ({rec.params_mm_out['start']}, "
        f"{rec.params_mm_out['stop']}] ms, one per step); sample n*{seq}+k belongs to sequence n, step k")
    for name in rec.out_recordables:
        put(f"out_{name}.npy", readout_matrix(events_mm_out, name, net), "mV" if name == "V_m" else "1",
            f"readout neurons: recorded '{name}' [n_out, n_seq*{seq}] at out_times_ms")
    events_mm_rec = back.events_mm_rec
    if events_mm_rec is not None:
        rec_senders = np.asarray(events_mm_rec["senders"])
        rec_ids = net.nrns_rec[:N_RECORD].tolist()
        put("rec_times_ms.npy", np.asarray(events_mm_rec["times"])[rec_senders == rec_ids[0]], "ms",
            f"time stamps of the recurrent-neuron multimeter samples (window ({rec.params_mm_rec['start']}, "
            f"{rec.params_mm_rec['stop']}] ms)")
        units = {"V_m": "mV", "V_th_adapt": "mV", "surrogate_gradient": "1/mV", "learning_signal": "pA", "adaptation": "1"}
        for name in rec.rec_recordables:
            values = np.asarray(events_mm_rec[name])
            mat = np.array([values[rec_senders == gid] for gid in rec_ids])
            put(f"rec_{name}.npy", mat, units[name],
                f"recorded recurrent neuron(s) (0-based index {list(range(N_RECORD))}): '{name}' "
                f"[n_record, n_seq*{seq}] at rec_times_ms")


def put_weight_recorder_arrays(put, net, events_wr):
    """The weight recorder's events in NEST's order, with population codes and 0-based indices."""
    s = np.asarray(events_wr["senders"])
    t = np.asarray(events_wr["targets"])
    in0, rec0, out0 = net.nrns_in[0].global_id, net.nrns_rec[0].global_id, net.nrns_out[0].global_id
    s_is_rec = s >= rec0
    t_is_out = t >= out0
    put("wr_times_ms.npy", np.asarray(events_wr["times"], dtype=np.float64), "ms",
        "weight recorder: time of each recorded weight (spike transmission)")
    put("wr_weights.npy", np.asarray(events_wr["weights"], dtype=np.float64), "pA",
        "weight recorder: weight after the spike transmission at wr_times_ms")
    put("wr_sender_pop.npy", s_is_rec.astype(np.int32), "code", "weight recorder: sender population, 0 = input, 1 = recurrent")
    put("wr_sender_idx.npy", np.where(s_is_rec, s - rec0, s - in0).astype(np.int32), "index",
        "weight recorder: 0-based sender index within its population")
    put("wr_target_pop.npy", t_is_out.astype(np.int32), "code", "weight recorder: target population, 0 = recurrent, 1 = readout")
    put("wr_target_idx.npy", np.where(t_is_out, t - out0, t - rec0).astype(np.int32), "index",
        "weight recorder: 0-based target index within its population")


def compact_arrays(arrays, ea):
    """--compact: drop the arrays others determine and the readout recordings; initial weights as exact float32."""
    for name in ["spikes_in_times_ms.npy", "spikes_in_senders.npy", "input_spike_seq_neuron.npy",
                 "input_spike_seq_time_ms.npy", "w_numpy_in_rec_float32.npy"]:
        arrays.pop(name, None)
    for name in [n for n in arrays if n.startswith("out_")]:
        arrays.pop(name)
    for name in ["w_in_rec_init.npy", "w_rec_rec_init.npy", "w_rec_out_init.npy", "w_out_rec_feedback.npy"]:
        array, units, meaning = arrays[name]
        as32 = np.asarray(array, dtype=np.float32)
        assert np.array_equal(as32.astype(np.float64), array), f"{name} is not exactly representable in float32"
        arrays[name] = (as32, units, meaning + " (stored as float32: the script draws float32 values, so this "
                                               "is exact; NEST holds the same values as float64)")
    if ea:  # 0/1 values: exact in float32
        array, units, meaning = arrays["target_signal_seq.npy"]
        arrays["target_signal_seq.npy"] = (np.asarray(array, dtype=np.float32), units, meaning + " (stored as "
                                           "float32, exact for 0/1)")


def parameter_dumps(cfg, nrn, rec, syn, final, init, back):
    """The JSON parameter dumps: file name -> (object, what it is); --compact keeps the neurons' and the script's."""
    args, duration, task = cfg.args, cfg.duration, cfg.settings
    script_params = {
        "duration_ms": duration,
        "steps": cfg.steps,
        "final_update_spike_time_ms": final.time,
        "gamma_seed": task["gamma"],
        "input_spike_prob": task["input_spike_prob"],
        "n_batch": cfg.n_batch, "n_in": cfg.n_in, "n_iter": cfg.n_iter, "n_out": cfg.n_out, "n_rec": cfg.n_rec,
        "recurrent_model": cfg.rec_model,
        "params_common_syn_eprop": {k: v for k, v in syn.common_eprop.items() if k != "weight_recorder"},
        "params_nrn_out": nrn.out,
        "params_nrn_rec": dict(nrn.ad if cfg.adaptive else nrn.rec, tau_m=nrn.tau_m_text),
        "task": args.task,
        "recorders": {
            "mm_out": rec.params_mm_out,
            "mm_rec": None if rec.mm_rec is None else rec.params_mm_rec,
            "sr": rec.params_sr,
            "sr_all": {"start": 0.0, "stop": "inf"},
            "wr_window": None if rec.wr is None else [rec.params_wr["start"], rec.params_wr["stop"]],
        },
        "rng_seed": args.seed,
        "tau_m_readout": nrn.out["tau_m"],
    }
    if 0 < cfg.n_ad < cfg.n_rec:  # mixed population: params_nrn_rec above is the LIF neurons', these the adaptive ones'
        script_params["params_nrn_ad"] = dict(nrn.ad, tau_m=nrn.tau_m_text)
        script_params["n_adaptive"] = cfg.n_ad
    if cfg.ea:
        script_params.update({"ea_input": EA_INPUT, "ea_steps": EA_STEPS, "n_record_w": cfg.n_record_w,
                              "params_syn_out_out": syn.out_out})
        del script_params["input_spike_prob"]
    json_files = {
        "params_rec_neuron.json": (init.params_rec_neuron,
            "full status (get()) of recurrent neuron 0 before Simulate (state + parameters in effect); tau_m differs "
            "per neuron, see tau_m_rec.npy. NOTE: f_target is set in spikes/s but read back in spikes/ms."),
        "params_rec_uniform_check.json": (init.params_rec_uniform,
            "for each recurrent-neuron parameter: whether all neurons share the value, and the value"),
        "params_out_neuron.json": (init.params_out_neuron, "full status (get()) of readout neuron 0"),
        "params_synapse_eprop_defaults.json": (init.params_syn_defaults,
            "defaults / common properties of eprop_synapse_bsshslm_2020 after SetDefaults and Connect (optimizer etc.)"),
        "params_synapse_in0_rec0_after.json": (back.syn_in0_rec0,
            "status of the synapse input 0 -> recurrent 0 after Simulate (incl. optimizer state)"),
        "kernel_status.json": (back.kernel_status, "selected NEST kernel status after Simulate"),
        "script_params.json": (script_params, "parameters as set by the script (before NEST conversion)"),
    }
    if args.compact:
        json_files = {k: v for k, v in json_files.items()
                      if k in ("params_rec_neuron.json", "params_out_neuron.json", "script_params.json")}
    return json_files


def spike_counts_and_rates(cfg, net, rec, back, spikes):
    """Recurrent spike counts and rates per iteration and per sequence (evidence-accumulation: also per population)."""
    duration, n_batch, n_rec, n_seq, seq = cfg.duration, cfg.n_batch, cfg.n_rec, cfg.n_seq, cfg.seq
    rec_t = spikes["rec"][0]
    in_t = spikes["in"][0]
    in_window = lambda t, lo, hi: int(np.count_nonzero((t > lo) & (t <= hi)))  # noqa: E731
    n_rec_window = back.n_events_sr_window["rec"]
    # sanity: the windowed recorder saw exactly the unwindowed recorder's spikes in its window
    assert n_rec_window == in_window(rec_t, *rec.sr_window)
    assert back.n_events_sr_window["in"] == in_window(in_t, *rec.sr_window)
    iter_ms = n_batch * duration["sequence"]
    lo = rec.sr_window[0]
    # rates as the reference export defines them (tutorial spike-recorder window, which puts the
    # forced final-update spikes at task + 4 ms into the last iteration) ...
    rate_per_iter = [in_window(rec_t, lo + n * iter_ms, lo + (n + 1) * iter_ms) / n_rec / (iter_ms / 1000.0)
                     for n in range(cfg.n_iter)]
    # ... and per sequence on the recurrent neurons' own clock: stamps (2 + kT, 2 + (k+1)T]
    shift = duration["offset_gen"] + duration["delay_in_rec"]
    rate_per_seq = [in_window(rec_t, shift + k * duration["sequence"], shift + (k + 1) * duration["sequence"])
                    / n_rec / (duration["sequence"] / 1000.0) for k in range(n_seq)]
    rates = {
        "n_spikes_recorded_rec": n_rec_window,
        "n_spikes_recorded_in": back.n_events_sr_window["in"],
        "n_spikes_rec_training": int(np.count_nonzero(rec_t <= shift + n_seq * duration["sequence"])),
        "mean_rate_rec_hz": n_rec_window / n_rec / (duration["task"] / 1000.0),
        "rate_rec_hz_per_iteration": rate_per_iter,
        "rate_rec_hz_per_sequence": rate_per_seq,
    }
    if cfg.ea:  # the ALIF and LIF populations separately (per sequence, own clock)
        rec_s = spikes["rec"][1]
        n_reg, n_ad = cfg.n_reg, cfg.n_ad
        rates["rate_rec_hz_per_sequence_by_population"] = {
            name: [int(np.count_nonzero((rec_t > shift + k * seq) & (rec_t <= shift + (k + 1) * seq) & sel))
                   / max(n, 1) / (seq / 1000.0) for k in range(n_seq)]
            for name, sel, n in (("lif", rec_s < n_reg, n_reg), ("alif", rec_s >= n_reg, n_ad))}
    return rates


def build_summary(nest, cfg, task_io, ev, init, back, rates, events_were_sorted, timings, memory, log):
    """summary.json: the run's arguments, sizes, losses (and accuracy), spike counts and rates, timings, memory."""
    args, ea = cfg.args, cfg.ea
    summary = {
        "nest_version": nest.__version__,
        "args": vars(args),
        "command_line": shlex.join([sys.executable] + sys.argv),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "recurrent_model": cfg.rec_model,
        "n_in": cfg.n_in, "n_rec": cfg.n_rec, "n_out": cfg.n_out, "n_iter": cfg.n_iter, "batch_size": cfg.n_batch,
        "n_sequences": cfg.n_seq,
        "sequence_steps": cfg.seq, "learning_window_steps": cfg.steps["learning_window"],
        "sim_duration_ms": cfg.duration["sim"],
        "num_connections": nest.GetKernelStatus("num_connections"),
        "events_were_sorted": events_were_sorted,
        "loss": ev.loss,
        "loss_is_per": "iteration" if cfg.n_batch == 1 or ea else "sequence",
        "loss_per_readout": None if ea else np.array(ev.loss_list),
        "loss_nest310_definition": ev.loss if ea else np.mean(ev.loss_list, axis=0),
        **{k: v for k, v in rates.items() if k != "rate_rec_hz_per_sequence_by_population"},
        "timings": timings,
        "memory_mb": memory,
        "feedback_weights_unchanged": bool(np.array_equal(init.w_feedback, back.w_feedback)),
    }
    if args.task != "infinite-loop":
        summary["task"] = args.task
    if ea:
        summary.update({
            "n_adaptive": cfg.n_ad,
            "accuracy": ev.accuracy,
            "loss_per_sequence": ev.loss_seq,
            "target_class": task_io.target_class,
            "readout_checks": ev.checks,
            "rate_rec_hz_per_sequence_by_population": rates["rate_rec_hz_per_sequence_by_population"],
            "simplifications": EA_SIMPLIFICATIONS,
        })
    check = nest_test_eprop_regression_check(cfg, ev)
    if check is not None:
        summary["nest_test_eprop_regression"] = check
        log(f"test_eprop_regression check: {check}")
    return summary


def nest_test_eprop_regression_check(cfg, ev):
    """The first 5 losses against those NEST's test_eprop_regression asserts, if this run has the test's settings."""
    # the sine-waves task with the test's exact settings; the loss of iteration n depends only on iterations < n,
    # so any run of >= 5 iterations must start with the test's 5 losses
    sine_waves = task_settings("sine-waves")
    test_settings = {k: v for k, v in sine_waves.items() if k not in ("iterations", "n_adaptive")}
    test_settings.update(task="sine-waves", seed=1, n_in=100, batch_size=1, n_adaptive=0,
                         learning_window=sine_waves["sequence"], average_gradient=False,
                         surrogate="piecewise_linear")
    if not (all(getattr(cfg.args, k, v) == v for k, v in test_settings.items()) and cfg.n_iter >= 5):
        return None
    loss5 = np.mean(ev.loss_list, axis=0)[:5]  # the test's definition: 0.5 * mean over readouts of the sums
    ref_nest = np.array(SINE_WAVES_LOSS_NEST_REFERENCE)
    ref_tf = np.array(SINE_WAVES_LOSS_TF_REFERENCE)
    return {
        "loss_nest_reference": ref_nest, "loss_tf_reference": ref_tf,
        "max_rel_diff_nest_reference": float(np.max(np.abs(loss5 - ref_nest) / np.abs(ref_nest))),
        "max_rel_diff_tf_reference": float(np.max(np.abs(loss5 - ref_tf) / np.abs(ref_tf))),
        "passes_test_asserts": bool(np.allclose(loss5, ref_tf, rtol=1e-7)
                                    and np.allclose(loss5, ref_nest, rtol=1e-8)),
    }


def build_manifest(nest, cfg, final, arrays, json_files, summary):
    """manifest.json: every array's shape, dtype, unit and meaning, the JSON files, and the timing conventions."""
    args, seq, n_batch, n_seq = cfg.args, cfg.seq, cfg.n_batch, cfg.n_seq
    manifest = {
        "arrays": {
            name: {"shape": list(np.shape(a)), "dtype": str(np.asarray(a).dtype), "units": u, "meaning": m}
            for name, (a, u, m) in arrays.items()
        },
        "json": {name: what for name, (_, what) in json_files.items()},
        "description": (
            f"Reference data of NEST {nest.__version__} (eprop_*_bsshslm_2020 models, recurrent model {cfg.rec_model}) "
            + ({"infinite-loop": "for the tutorial 'learning to generate an infinite loop with e-prop', generated by ",
                "sine-waves": "for the sine-waves regression network of NEST's test_eprop_regression "
                              "(testsuite/pytests/synapses/test_eprop_bsshslm_2020_plasticity.py), generated by ",
                "evidence-accumulation": "for the training phase of NEST's example "
                              "eprop_supervised_classification_evidence-accumulation_bsshslm_2020.py (simplifications: "
                              + " ".join(EA_SIMPLIFICATIONS) + "), generated by "}[args.task]) +
            "notebooks-data/crossval/nest_export.py with the arguments in 'args'. All times in ms with resolution "
            "1 ms; neuron indices are 0-based within their population (input 0..n_in-1, recurrent 0..n_rec-1, "
            "readout 0..n_out-1). Weight matrices use [post, pre] layout."
        ),
        "conventions": [
            f"Resolution 1 ms = 1 step; every connection delay is 1 step; SEQ = {seq} steps per sequence "
            f"(update interval); one iteration = batch_size = {n_batch} consecutive sequences = one optimizer step; "
            f"{n_seq} sequences in total.",
            "A neuron updated in step t emits its spike with time stamp t+1 ms (the times in spikes_*); a spike "
            "with stamp s enters its targets' input in their update step s.",
            "Multimeter samples of step t carry time stamp t+1: rec_* sample m is recurrent step 2+m (stamp 3+m), "
            "out_* sample m is readout step 4+m (stamp 5+m); sequence n = samples [n*SEQ, (n+1)*SEQ).",
            "Input: spike_generator times k+1+n*SEQ ms (pattern step k, sequence n); parrot spike stamps "
            "k+2+n*SEQ; no pattern spike at k=0.",
            "A recurrent spike of sequence n at step s has stamp 3+n*SEQ+s.",
            "Recurrent update interval n = steps [n*SEQ+2, (n+1)*SEQ+1], state (V_m, adaptation, z) reset at its "
            "first step; readout interval n = steps [n*SEQ+3, (n+1)*SEQ+2], V_m reset at its first step.",
            f"Learning window: the last {cfg.steps['learning_window']} steps of each sequence (error, readout and "
            "target signals are 0 before it).",
            "readout_signal(t) = V_m of the readout at step t-1; error_signal = readout_signal - target_signal.",
            "Learning signal of recurrent neuron j at its step tau: sum_k B_jk * error_k(readout step tau+2) "
            "(rec_learning_signal sample m = sum_k B[0,k] * out_error_signal[k, m-3]).",
            f"Forced final update: a spike_generator at task+3 = {final.time} ms with weight 1000 makes all "
            "parrots spike at stamp task+4 and all recurrent neurons at task+4 and task+5; this applies the last "
            "iteration's weight update. Drop recurrent spikes with stamp > task+2 when comparing training spikes.",
            "loss.npy has one value per sequence (for batch_size 1: per iteration); reshape to "
            "[n_iter, batch_size] for per-iteration batches.",
        ],
        "args": vars(args),
        "summary": {k: summary[k] for k in ("loss", "loss_nest310_definition", "n_spikes_recorded_rec",
                                            "mean_rate_rec_hz", "num_connections", "nest_version")},
    }
    if cfg.ea:
        conv = manifest["conventions"]
        conv[3] = ("Input: spike_generator times k+1+s*SEQ ms (step k of sequence s, input_spike_bool_seq[s, :, k]); "
                   "parrot spike stamps k+2+s*SEQ; no pattern spike at k=0. Each iteration's generators are set "
                   "before it is simulated, as in the example.")
        conv[7] = ("Cross-entropy: readout_signal_unnorm(t) = exp(V_m(t)); readout_signal(t) = readout_signal_unnorm_k"
                   "(t-1) / sum_j readout_signal_unnorm_j(t-1), i.e. the softmax over readouts of V_m at step t-1 "
                   "(the other readouts' signals arrive over rate_connection_delayed, delay 1); error_signal = "
                   "readout_signal - target_signal (0 outside the learning window).")
        conv[9] = (f"Forced final update (the example's): after the last batch, simulate total_offset + extension_sim "
                   f"= 5 ms more, then a spike_generator spike at task+6 = {final.time} ms with weight 1000 into "
                   "all input and recurrent neurons, and final_update = 3 ms (total task+8): all parrots and all "
                   "recurrent neurons spike at stamp task+7, which applies the last iteration's weight update. Drop "
                   "recurrent spikes with stamp > task+2 when comparing training spikes.")
        conv[10] = ("loss.npy and accuracy.npy have one value per iteration (the example's definitions); "
                    "loss_per_sequence.npy [n_iter, batch_size] one per sequence.")
    return manifest


# ---------------------------------------------------------------------------------------------
# --verify-example: NEST's own example script against the export

EXAMPLE_PATH = os.path.join("doc", "examples", "pynest", "eprop_plasticity",
                            "eprop_supervised_classification_evidence-accumulation_bsshslm_2020.py")

# runs in a fresh Python process: argv = example path, seed, batch size, iterations, output .npz
EXAMPLE_RUNNER = r"""
import os, re, sys
import numpy as np
path, seed, batch, iters, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
src = open(path).read()
for name, value in (("rng_seed", seed), ("batch_size", batch), ("n_iter_train", iters), ("n_iter_test", 0),
                    ("do_early_stopping", False), ("do_plotting", False)):
    src, n = re.subn(r"^%s = [^#\n]*" % name, "%s = %r  " % (name, value), src, flags=re.M)
    assert n == 1, (name, n)
g = {"__name__": "__main__"}
try:
    exec(compile(src, path, "exec"), g)
except SystemExit:  # the script exits where the plotting starts
    pass
rd, rec0 = g["results_dict"], g["nrns_rec"][0].global_id
events = [g["events_sr_reg"], g["events_sr_ad"]]
t = np.concatenate([e["times"] for e in events]).astype(np.float64)
s = np.concatenate([e["senders"] for e in events]) - rec0
order = np.lexsort((s, t))
arrays = {"loss": rd["loss"], "error": rd["error"], "label": rd["label"].astype(str),
          "spikes_rec_times_ms": t[order], "spikes_rec_senders": s[order].astype(np.int32)}
for k in ("in_rec", "rec_rec", "rec_out"):
    arrays["w_%s_init" % k] = g["weights_pre_train"][k]["weight_matrix"]
    arrays["w_%s_final" % k] = g["weights_post_train"][k]["weight_matrix"]
np.savez(out, **arrays)
"""


def verify_example(args, log):
    """Run the example (patched as --verify-example says) and compare it with the export in args.out."""
    import tempfile
    import nest

    example = os.path.join(os.path.dirname(nest.__file__), EXAMPLE_PATH)
    with tempfile.TemporaryDirectory(prefix="ea-example-") as tmp:
        npz = os.path.join(tmp, "example.npz")
        env = dict(os.environ, MPLBACKEND="Agg", PYNEST_QUIET="1")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", EXAMPLE_RUNNER, example, str(args.seed), str(args.batch_size),
                               str(args.iterations), npz], capture_output=True, text=True, env=env, cwd=tmp)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"the example failed:\n{proc.stderr[-3000:]}")
        ex = dict(np.load(npz))
    out = args.out
    load = lambda name: np.load(os.path.join(out, name))  # noqa: E731
    checks = {
        "example": example,
        "changes": {"rng_seed": args.seed, "batch_size": args.batch_size, "n_iter_train": args.iterations,
                    "n_iter_test": 0, "do_early_stopping": False, "do_plotting": False},
        "seconds": seconds,
        "example_labels": ex["label"].tolist(),
        "example_loss": ex["loss"].tolist(),
        "loss_equal": bool(np.array_equal(ex["loss"], load("loss.npy"))),
        "accuracy_equal": bool(np.array_equal(1.0 - ex["error"], load("accuracy.npy"))),
        "spikes_rec_equal": bool(np.array_equal(ex["spikes_rec_times_ms"], load("spikes_rec_times_ms.npy"))
                                 and np.array_equal(ex["spikes_rec_senders"], load("spikes_rec_senders.npy"))),
        "n_spikes_rec": int(len(ex["spikes_rec_times_ms"])),
    }
    for k in ("in_rec", "rec_rec", "rec_out"):
        checks[f"w_{k}_init_equal"] = bool(np.array_equal(ex[f"w_{k}_init"], load(f"w_{k}_init.npy")))
        checks[f"w_{k}_final_equal"] = bool(np.array_equal(ex[f"w_{k}_final"], load(f"w_{k}_final.npy")))
    checks["all_equal"] = all(v for k, v in checks.items() if k.endswith("_equal"))
    summary_path = os.path.join(out, "summary.json")
    with open(summary_path) as f:
        summary = json.load(f)
    summary["example_check"] = checks
    write_json(summary_path, summary)
    log(f"example check ({seconds:.1f} s): {'all equal' if checks['all_equal'] else checks}")
    if not checks["all_equal"]:
        raise SystemExit(f"--verify-example: the example differs from the export: {checks}")
    return checks


if __name__ == "__main__":
    cli_args = parse_args()
    run(cli_args)
    if cli_args.verify_example:
        verify_example(cli_args, (lambda *a: None) if cli_args.quiet else (lambda *a: print(*a, flush=True)))
