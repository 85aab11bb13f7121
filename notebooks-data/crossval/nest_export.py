#!/usr/bin/env python3
"""Run a NEST 3.10 e-prop regression task for one configuration and export everything.

Two tasks (--task), both supervised regression with the eprop_*_bsshslm_2020 models:

* infinite-loop (default): the seed tutorial "learning to generate an infinite loop" (100 frozen-Poisson
  inputs, 200 ALIF neurons with tau_m ~ N(30, 2) drawn by NEST, 2 readouts with tau_m 50 drawing a
  figure eight, Adam, T = 1258).
* sine-waves: the network of NEST 3.10's own regression test, test_eprop_regression() in
  testsuite/pytests/synapses/test_eprop_bsshslm_2020_plasticity.py, which NEST checks against the
  original TensorFlow losses: 100 inputs, 100 LIF neurons (tau_m 30, C_m 1, c_reg 300, f_target 10 Hz,
  flush_event_send_interval = T), 1 readout (tau_m 30) learning a superposition of 4 sines with random
  amplitudes and phases, plain gradient descent with eta 1e-4, T = 1000, 5 iterations.

Each network is built in the same order with the same random draws as its script, with the NEST 3.10
parameter mapping of the surrogate gradient (surrogate_gradient_height = gamma / V_th,
surrogate_gradient_width = V_th, gamma = 0.3). Options left unset take the task's values.
The export folder has the layout of shared/refdata/nest-3.10/infinite-loop_seed1_iter5: initial and
final weights ([post, pre], float64), the NEST-drawn tau_m, the frozen input and targets, all
recordings, the loss, parameter dumps, manifest.json and summary.json.

Examples:

    .venv/bin/python notebooks-data/crossval/nest_export.py --out /tmp/seed1      # the tutorial, 5 iterations
    .venv/bin/python notebooks-data/crossval/nest_export.py --out /tmp/sine --task sine-waves

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
import sys
import time

import numpy as np

# Surrogate gradient of the seed script (NEST 3.8 "gamma"); mapped to the 3.10 height/width below.
# NEST's regression test uses the same numbers (height 0.3 / V_th, width 1.0 * V_th).
GAMMA = 0.3
V_TH = 0.03
TAU_M_MEAN = 30.0  # ms; mean of the per-neuron tau_m distribution (also used for adapt_beta)
INPUT_SPIKE_PROB = 0.05
N_RECORD = 1  # recurrent neurons recorded by the multimeter (tutorial value)
N_RECORD_W = 3  # senders/targets sampled by the weight recorder (tutorial value)

SURROGATES = ["piecewise_linear", "exponential", "fast_sigmoid_derivative", "arctan_derivative"]
TASKS = ["infinite-loop", "sine-waves"]

# Per-task values of the options (used where an option is not given on the command line) and of the
# settings that are not options. "tau_m_rec_std" 0 means a fixed tau_m (no NEST random draw).
TASK_DEFAULTS = {
    "infinite-loop": {
        "n_rec": 200, "n_out": 2, "model": "alif", "optimizer": "adam", "eta": 5e-3, "sequence": 1258,
        "c_reg": 150.0, "f_target": 20.0,
        "tau_m_rec_std": 2.0, "c_m_rec": 250.0, "tau_out": 50.0, "flush_event_send_interval": None,
    },
    # NEST 3.10, testsuite/pytests/synapses/test_eprop_bsshslm_2020_plasticity.py::test_eprop_regression
    "sine-waves": {
        "n_rec": 100, "n_out": 1, "model": "lif", "optimizer": "gradient_descent", "eta": 1e-4, "sequence": 1000,
        "c_reg": 300.0, "f_target": 10.0,
        "tau_m_rec_std": 0.0, "c_m_rec": 1.0, "tau_out": 30.0, "flush_event_send_interval": "sequence",
    },
}

# Losses that test_eprop_regression() asserts for the sine-waves task (seed 1, 5 iterations, batch 1):
# NEST's own reference (asserted with rtol 1e-8) and the original TensorFlow implementation's (INM-6 fork
# of eligibility_propagation@7df7d2627, TF 1.15, float32; asserted with rtol 1e-7).
SINE_WAVES_LOSS_NEST_REFERENCE = [101.964356999041, 103.466731126205, 103.340607074771, 103.680244037686,
                                  104.412775748752]
SINE_WAVES_LOSS_TF_REFERENCE = [101.964363098144, 103.466735839843, 103.340606689453, 103.680244445800,
                                104.412780761718]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--task", choices=TASKS, default="infinite-loop",
                   help="infinite-loop = the seed tutorial; sine-waves = NEST's test_eprop_regression network")
    p.add_argument("--seed", type=int, default=1, help="numpy seed and NEST rng_seed (default 1)")
    p.add_argument("--n-in", type=int, default=100)
    p.add_argument("--n-rec", type=int, default=None, help="default: 200 (infinite-loop), 100 (sine-waves)")
    p.add_argument("--n-out", type=int, default=None, help="default: 2 (infinite-loop), 1 (sine-waves)")
    p.add_argument("--iterations", type=int, default=5, help="optimizer steps (each = batch-size sequences)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--model", choices=["alif", "lif"], default=None,
                   help="alif = eprop_iaf_adapt_bsshslm_2020, lif = eprop_iaf_bsshslm_2020 "
                        "(default: alif for infinite-loop, lif for sine-waves)")
    p.add_argument("--optimizer", choices=["adam", "gradient_descent"], default=None,
                   help="default: adam (infinite-loop), gradient_descent (sine-waves)")
    p.add_argument("--eta", type=float, default=None, help="learning rate (default 5e-3; sine-waves 1e-4)")
    p.add_argument("--sequence", type=int, default=None,
                   help="steps per sequence (= update interval; default 1258; sine-waves 1000)")
    p.add_argument("--learning-window", type=int, default=None,
                   help="steps of the learning window (last LW steps of a sequence); default = --sequence")
    p.add_argument("--average-gradient", action="store_true", help="synapse average_gradient = True")
    p.add_argument("--c-reg", type=float, default=None,
                   help="firing-rate regularization strength (default 150; sine-waves 300)")
    p.add_argument("--f-target", type=float, default=None,
                   help="target firing rate in spikes/s (default 20; sine-waves 10)")
    p.add_argument("--surrogate", choices=SURROGATES, default="piecewise_linear",
                   help="surrogate_gradient_function of the recurrent neurons")
    p.add_argument("--no-recordings", action="store_true",
                   help="skip the recurrent multimeter and the weight recorder and record only "
                        "readout_signal/target_signal of the readouts (enough for the loss)")
    p.add_argument("--compact", action="store_true",
                   help="small export for committing: the initial and feedback weights (float32 values, see "
                        "dtype_weights) as float32 .npy; no arrays that others determine (spikes_in_*, "
                        "input_spike_seq_*, w_numpy_in_rec_float32) and no out_* recordings (loss.npy has the "
                        "loss); of the parameter dumps only the neurons' and script_params.json")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    args = p.parse_args(argv)
    for key, value in TASK_DEFAULTS[args.task].items():
        if key in vars(args) and getattr(args, key) is None:
            setattr(args, key, value)
    if args.learning_window is None:
        args.learning_window = args.sequence
    if not 1 <= args.learning_window <= args.sequence:
        p.error("--learning-window must be in 1 .. --sequence")
    if args.n_in < N_RECORD_W or args.n_rec < N_RECORD_W or args.n_out < 1:
        p.error(f"need n_in >= {N_RECORD_W}, n_rec >= {N_RECORD_W}, n_out >= 1")
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


# ---------------------------------------------------------------------------------------------
# the simulation


def run(args):
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    timings = {}
    memory = {}
    t_start = time.perf_counter()

    os.environ.setdefault("PYNEST_QUIET", "1")  # no NEST banner on stdout
    t0 = time.perf_counter()
    import nest

    timings["import_nest_s"] = time.perf_counter() - t0
    memory["after_import"] = memory_mb()
    level = "ERROR" if args.quiet else "WARNING"
    try:
        nest.verbosity = getattr(nest.VerbosityLevel, level)  # NEST >= 3.10
    except AttributeError:
        nest.set_verbosity("M_" + level)

    t_setup = time.perf_counter()
    seed = args.seed
    np.random.seed(seed)  # legacy RandomState: weights and input below are drawn in the tutorial's order

    # --- timing of the task, in steps and in ms (tutorial) ------------------------------------
    n_batch, n_iter = args.batch_size, args.iterations
    steps = {"sequence": args.sequence, "learning_window": args.learning_window}
    steps["task"] = n_iter * n_batch * steps["sequence"]
    steps.update({"offset_gen": 1, "delay_in_rec": 1, "delay_rec_out": 1, "delay_out_norm": 1, "extension_sim": 1})
    steps["delays"] = steps["delay_in_rec"] + steps["delay_rec_out"] + steps["delay_out_norm"]
    steps["total_offset"] = steps["offset_gen"] + steps["delays"]
    steps["sim"] = steps["task"] + steps["total_offset"] + steps["extension_sim"]
    duration = {"step": 1.0}
    duration.update({k: v * duration["step"] for k, v in steps.items()})
    seq = steps["sequence"]
    n_seq = n_iter * n_batch  # sequences (= update intervals) simulated

    nest.ResetKernel()
    nest.set(
        eprop_learning_window=duration["learning_window"],
        eprop_reset_neurons_on_update=True,
        eprop_update_interval=duration["sequence"],
        print_time=False,
        resolution=duration["step"],
        total_num_virtual_procs=1,  # single thread: NEST is then deterministic
        rng_seed=seed,
    )

    # --- neurons -------------------------------------------------------------------------------
    n_in, n_rec, n_out = args.n_in, args.n_rec, args.n_out
    task = TASK_DEFAULTS[args.task]
    adaptive = args.model == "alif"
    rec_model = "eprop_iaf_adapt_bsshslm_2020" if adaptive else "eprop_iaf_bsshslm_2020"
    params_nrn_rec = {
        "C_m": task["c_m_rec"],  # only matters with current input (none here)
        "c_reg": args.c_reg,
        "E_L": 0.0,
        "f_target": args.f_target,  # set in spikes/s, read back in spikes/ms
        # NEST 3.10 replaced 3.8's gamma by height and width: psi = h * max(0, 1 - |v - A| / w)
        "surrogate_gradient_height": GAMMA / V_TH,
        "surrogate_gradient_width": V_TH,
        "I_e": 0.0,
        "regular_spike_arrival": False,
        "surrogate_gradient_function": args.surrogate,
        "t_ref": 0.0,
        "V_m": 0.0,
        "V_th": V_TH,
    }
    if task["flush_event_send_interval"] == "sequence":
        params_nrn_rec["flush_event_send_interval"] = duration["sequence"]
    if adaptive:
        params_nrn_rec["adapt_tau"] = 2000.0
        params_nrn_rec["adapt_beta"] = (
            1.7 * (1.0 - np.exp(-1 / params_nrn_rec["adapt_tau"])) / (1.0 - np.exp(-1.0 / TAU_M_MEAN))
        )
    params_nrn_out = {
        "C_m": 1.0,
        "E_L": 0.0,
        "I_e": 0.0,
        "loss": "mean_squared_error",
        "regular_spike_arrival": False,
        "tau_m": task["tau_out"],
        "V_m": 0.0,
    }
    if task["tau_m_rec_std"] > 0:
        # tau_m is drawn per neuron by NEST's own generator (seeded with rng_seed) at Create
        tau_m_rule = nest.random.normal(mean=TAU_M_MEAN, std=task["tau_m_rec_std"])
        tau_m_text = f"nest.random.normal(mean={TAU_M_MEAN}, std={task['tau_m_rec_std']})"
    else:
        tau_m_rule = tau_m_text = TAU_M_MEAN  # the regression test: tau_m = 30 for every neuron
    params_create_rec = dict(params_nrn_rec, tau_m=tau_m_rule)

    gen_spk_in = nest.Create("spike_generator", n_in)
    nrns_in = nest.Create("parrot_neuron", n_in)
    nrns_rec = nest.Create(rec_model, n_rec, params_create_rec)
    nrns_out = nest.Create("eprop_readout_bsshslm_2020", n_out, params_nrn_out)
    gen_rate_target = nest.Create("step_rate_generator", n_out)
    memory["after_create_neurons"] = memory_mb()

    # --- recorders -----------------------------------------------------------------------------
    rec_recordables = ["V_m", "surrogate_gradient", "learning_signal"]
    if adaptive:
        rec_recordables += ["V_th_adapt", "adaptation"]
    out_recordables = ["V_m", "readout_signal", "readout_signal_unnorm", "target_signal", "error_signal"]
    if args.no_recordings:
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
        "senders": nrns_in[:N_RECORD_W] + nrns_rec[:N_RECORD_W],
        "targets": nrns_rec[:N_RECORD_W] + nrns_out,
        "start": duration["total_offset"],
        "stop": duration["total_offset"] + duration["task"],
    }
    # The tutorial's spike recorder has the window (total_offset, total_offset + task]; it gives the
    # counts and rates in summary.json. A second recorder without window (sr_all) records the whole
    # simulation, incl. the forced final-update spikes, for the spikes_*.npy export.
    params_sr = {"start": duration["total_offset"], "stop": duration["total_offset"] + duration["task"]}
    sr_window = (params_sr["start"], params_sr["stop"])

    mm_rec = None if args.no_recordings else nest.Create("multimeter", params_mm_rec)
    mm_out = nest.Create("multimeter", params_mm_out)
    sr = nest.Create("spike_recorder", params_sr)
    wr = None if args.no_recordings else nest.Create("weight_recorder", params_wr)
    sr_all = nest.Create("spike_recorder")

    # --- connections ---------------------------------------------------------------------------
    params_conn_all_to_all = {"rule": "all_to_all", "allow_autapses": False}
    params_conn_one_to_one = {"rule": "one_to_one"}
    dtype_weights = np.float32  # as in the tutorial: drawn in double, stored as float32 values
    weights_in_rec = np.array(np.random.randn(n_in, n_rec).T / np.sqrt(n_in), dtype=dtype_weights)
    weights_rec_rec = np.array(np.random.randn(n_rec, n_rec).T / np.sqrt(n_rec), dtype=dtype_weights)
    np.fill_diagonal(weights_rec_rec, 0.0)  # no autapses
    weights_rec_out = np.array(np.random.randn(n_rec, n_out).T / np.sqrt(n_rec), dtype=dtype_weights)
    weights_out_rec = np.array(np.random.randn(n_rec, n_out) / np.sqrt(n_rec), dtype=dtype_weights)

    optimizer = {"type": args.optimizer, "batch_size": n_batch, "eta": args.eta, "Wmin": -100.0, "Wmax": 100.0}
    if args.optimizer == "adam":
        optimizer.update({"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8})
    params_common_syn_eprop = {"optimizer": optimizer, "average_gradient": args.average_gradient}
    if wr is not None:
        params_common_syn_eprop["weight_recorder"] = wr

    params_syn_base = {
        "synapse_model": "eprop_synapse_bsshslm_2020",
        "delay": duration["step"],
        "tau_m_readout": params_nrn_out["tau_m"],  # must equal the readout tau_m (NEST does not check)
    }
    params_syn_in = dict(params_syn_base, weight=weights_in_rec)
    params_syn_rec = dict(params_syn_base, weight=weights_rec_rec)
    params_syn_out = dict(params_syn_base, weight=weights_rec_out)
    params_syn_feedback = {
        "synapse_model": "eprop_learning_signal_connection_bsshslm_2020",
        "delay": duration["step"],
        "weight": weights_out_rec,
    }
    params_syn_rate_target = {"synapse_model": "rate_connection_delayed", "delay": duration["step"], "receptor_type": 2}
    params_syn_static = {"synapse_model": "static_synapse", "delay": duration["step"]}

    nest.SetDefaults("eprop_synapse_bsshslm_2020", params_common_syn_eprop)
    nest.Connect(gen_spk_in, nrns_in, params_conn_one_to_one, params_syn_static)  # 1
    nest.Connect(nrns_in, nrns_rec, params_conn_all_to_all, params_syn_in)  # 2
    nest.Connect(nrns_rec, nrns_rec, params_conn_all_to_all, params_syn_rec)  # 3
    nest.Connect(nrns_rec, nrns_out, params_conn_all_to_all, params_syn_out)  # 4
    nest.Connect(nrns_out, nrns_rec, params_conn_all_to_all, params_syn_feedback)  # 5
    nest.Connect(gen_rate_target, nrns_out, params_conn_one_to_one, params_syn_rate_target)  # 6
    nest.Connect(nrns_in + nrns_rec, sr, params_conn_all_to_all, params_syn_static)
    nest.Connect(nrns_in + nrns_rec, sr_all, params_conn_all_to_all, params_syn_static)
    if mm_rec is not None:
        nest.Connect(mm_rec, nrns_rec[:N_RECORD], params_conn_all_to_all, params_syn_static)
    nest.Connect(mm_out, nrns_out, params_conn_all_to_all, params_syn_static)
    if args.optimizer == "adam" and args.task == "infinite-loop":
        # the tutorial initializes the Adam moments of two synapses explicitly (to their defaults)
        nest.GetConnections(nrns_rec[0], nrns_rec[1:3]).set([{"optimizer": {"m": 0.0, "v": 0.0}}] * 2)
    memory["after_connect"] = memory_mb()

    # --- input: frozen Poisson pattern, identical in every sequence -----------------------------
    input_spike_bools = (np.random.rand(seq, n_in) < INPUT_SPIKE_PROB).swapaxes(0, 1)
    input_spike_bools[:, 0] = 0  # a spike at sequence step 0 would be dropped by NEST anyway
    sequence_starts = np.arange(0.0, duration["task"], duration["sequence"]) + duration["offset_gen"]
    params_gen_spk_in = []
    for input_spike_bool in input_spike_bools:
        input_spike_times = np.arange(0.0, duration["sequence"], duration["step"])[input_spike_bool]
        input_spike_times_all = [input_spike_times + start for start in sequence_starts]
        params_gen_spk_in.append({"spike_times": np.hstack(input_spike_times_all).astype(np.float32)})
    gen_spk_in.set(params_gen_spk_in)

    # --- targets --------------------------------------------------------------------------------
    if args.task == "sine-waves":  # one target per readout, drawn in readout order (the test has one)
        target_signal_list = [generate_superimposed_sines(seq, [1000, 500, 333, 200]) for _ in range(n_out)]
    else:
        target_signal_list = target_signals(n_out, seq)
    gen_rate_target.set(
        [
            {
                "amplitude_times": np.arange(0.0, duration["task"], duration["step"]) + duration["total_offset"],
                "amplitude_values": np.tile(target_signal, n_seq),
            }
            for target_signal in target_signal_list
        ]
    )

    # --- forced final update: one strong spike into every presynaptic neuron of an e-prop synapse
    final_update_time = duration["task"] + duration["delays"]
    gen_spk_final_update = nest.Create("spike_generator", 1, {"spike_times": [final_update_time]})
    nest.Connect(gen_spk_final_update, nrns_in + nrns_rec, "all_to_all", {"weight": 1000.0})

    # --- state before training -------------------------------------------------------------------
    def get_weights(pop_pre, pop_post):
        """Weight matrix [post, pre] of all connections pop_pre -> pop_post (absent -> 0)."""
        conns = nest.GetConnections(pop_pre, pop_post).get(["source", "target", "weight"])
        pre = np.asarray(conns["source"]) - pop_pre[0].global_id
        post = np.asarray(conns["target"]) - pop_post[0].global_id
        w = np.zeros((len(pop_post), len(pop_pre)))
        w[post, pre] = conns["weight"]
        return w

    w_init = {
        "in_rec": get_weights(nrns_in, nrns_rec),
        "rec_rec": get_weights(nrns_rec, nrns_rec),
        "rec_out": get_weights(nrns_rec, nrns_out),
    }
    w_feedback_init = get_weights(nrns_out, nrns_rec)  # [n_rec, n_out] = B_jk
    tau_m_rec = np.asarray(nrns_rec.get("tau_m"), dtype=np.float64)
    params_rec_neuron = nrns_rec[0].get()
    params_out_neuron = nrns_out[0].get()
    rec_status_all = nrns_rec.get()
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
    memory["after_get_weights_pre"] = memory_mb()
    timings["setup_s"] = time.perf_counter() - t_setup

    # --- train ------------------------------------------------------------------------------------
    log(f"NEST {nest.__version__}: simulating {duration['sim']:.0f} ms "
        f"({n_iter} iterations x batch {n_batch} x {seq} steps, {rec_model}, {args.optimizer})")
    t0 = time.perf_counter()
    nest.Simulate(duration["sim"])
    timings["simulate_s"] = time.perf_counter() - t0
    timings["simulate_per_iteration_s"] = timings["simulate_s"] / n_iter
    memory["after_simulate"] = memory_mb()

    # --- read back ------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    w_final = {
        "in_rec": get_weights(nrns_in, nrns_rec),
        "rec_rec": get_weights(nrns_rec, nrns_rec),
        "rec_out": get_weights(nrns_rec, nrns_out),
    }
    w_feedback_final = get_weights(nrns_out, nrns_rec)
    syn_in0_rec0 = nest.GetConnections(nrns_in[0], nrns_rec[0]).get()
    kernel_keys = [
        "biological_time", "eprop_learning_window", "eprop_reset_neurons_on_update", "eprop_update_interval",
        "local_num_threads", "max_delay", "min_delay", "network_size", "num_connections", "resolution",
        "rng_seed", "rng_type", "total_num_virtual_procs",
    ]
    kernel_status = {k: nest.GetKernelStatus(k) for k in kernel_keys}
    events_mm_rec = mm_rec.get("events") if mm_rec is not None else None
    events_mm_out = mm_out.get("events")
    events_sr = sr_all.get("events")
    n_events_sr_window = {  # per population, from the tutorial's windowed recorder
        name: int(np.count_nonzero(np.isin(sr.get("events")["senders"], pop.tolist())))
        for name, pop in (("in", nrns_in), ("rec", nrns_rec))
    }
    events_wr = wr.get("events") if wr is not None else None
    memory["after_readout"] = memory_mb()
    timings["readout_s"] = time.perf_counter() - t0

    # --- loss exactly as the tutorial computes it -------------------------------------------------------
    out_senders = np.asarray(events_mm_out["senders"])
    readout_signal = np.asarray(events_mm_out["readout_signal"])
    target_signal = np.asarray(events_mm_out["target_signal"])
    loss_list = []
    for gid in nrns_out.tolist():  # readouts in index order
        idc = out_senders == gid
        error = (readout_signal[idc] - target_signal[idc]) ** 2
        loss_list.append(0.5 * np.add.reduceat(error, np.arange(0, steps["task"], steps["sequence"])))
    loss = np.sum(loss_list, axis=0)  # one value per sequence (per iteration for batch 1)

    # --- write everything ------------------------------------------------------------------------------
    t0 = time.perf_counter()
    out = args.out
    os.makedirs(out, exist_ok=True)
    arrays = {}  # file name -> (array, units, meaning)

    def put(name, array, units, meaning):
        arrays[name] = (array, units, meaning)

    layout = ("layout [post, pre] (row = postsynaptic neuron index, column = presynaptic neuron index, "
              "0-based in population)")
    pops = {"in_rec": ("input", "recurrent"), "rec_rec": ("recurrent", "recurrent"), "rec_out": ("recurrent", "readout")}
    for key, (pre_name, post_name) in pops.items():
        note = "; diagonal (autapses) absent -> 0" if key == "rec_rec" else ""
        put(f"w_{key}_init.npy", w_init[key], "pA",
            f"initial eprop_synapse_bsshslm_2020 weights {pre_name} -> {post_name} as read back from NEST before "
            f"Simulate, {layout}{note}")
        put(f"w_{key}_final.npy", w_final[key], "pA",
            f"weights {pre_name} -> {post_name} read back after Simulate (after the forced final update), {layout}")
    put("w_out_rec_feedback.npy", w_feedback_init, "pA",
        "feedback weights B_jk of eprop_learning_signal_connection_bsshslm_2020 readout -> recurrent (static, not "
        f"trained), {layout}, i.e. shape [n_rec, n_out]")
    put("w_numpy_in_rec_float32.npy", weights_in_rec, "pA",
        "weights_in_rec exactly as drawn by numpy in the script (float32, [post=rec, pre=in]); NEST stores them as "
        "float64 (identical values)")
    put("tau_m_rec.npy", tau_m_rec, "ms",
        ("membrane time constant of each recurrent neuron as drawn by NEST (nest.random.normal(30, 2)) and read back "
         "with nrns_rec.get('tau_m'); index = 0-based recurrent neuron") if task["tau_m_rec_std"] > 0 else
        (f"membrane time constant of each recurrent neuron (fixed {TAU_M_MEAN} ms), read back with "
         "nrns_rec.get('tau_m'); index = 0-based recurrent neuron"))
    put("input_spike_bool_seq.npy", np.asarray(input_spike_bools, dtype=bool), "1",
        f"frozen input pattern of one sequence [n_in, {seq}]: True if input neuron i has a generator spike at step k "
        "of the sequence; repeated identically in every sequence")
    in_neuron, in_step = np.nonzero(input_spike_bools)  # row-major: by neuron, then by step
    put("input_spike_seq_neuron.npy", in_neuron.astype(np.int32), "index",
        "one sequence of input spikes: 0-based input neuron index (paired with input_spike_seq_time_ms)")
    put("input_spike_seq_time_ms.npy", in_step.astype(np.float64) * duration["step"] + duration["offset_gen"], "ms",
        f"spike_generator spike times of the first sequence (step k -> k*1.0 + offset_gen(1.0) ms); sequence n adds "
        f"n*{seq} ms. The parrot neurons re-emit these 1 ms later, the recurrent neurons receive them another 1 ms "
        "later (delay 1 ms each)")
    put("target_signal_seq.npy", np.array(target_signal_list, dtype=np.float64), "1",
        (f"target signals of one sequence [n_out, {seq}]: readout k gets sin(linspace(0, 2 pi (k+1), {seq})); fed by "
         "step_rate_generator with amplitude_times k + total_offset(4) ms") if args.task == "infinite-loop" else
        (f"target signals of one sequence [n_out, {seq}]: generate_superimposed_sines({seq}, [1000, 500, 333, 200]) "
         "of NEST's test_eprop_regression (drawn after the input pattern, one per readout); fed by "
         "step_rate_generator with amplitude_times k + total_offset(4) ms"))
    per = "iteration" if n_batch == 1 else f"sequence (n_iter*batch_size = {n_seq} values; sequence n*{n_batch}+b " \
                                           f"is element b of the batch of iteration n)"
    put("loss.npy", loss, "1",
        f"seed loss per {per}: E = 0.5 * sum_k sum_t (y_k - y*_k)^2 over the {seq} recorded steps of the sequence "
        "(multimeter mm_out window)")
    put("loss_per_readout.npy", np.array(loss_list), "1", "seed loss split per readout neuron [n_out, n_sequences]")

    n_samples = steps["task"]
    out_times = np.asarray(events_mm_out["times"])[out_senders == nrns_out[0].global_id]
    put("out_times_ms.npy", out_times, "ms",
        f"time stamps of the readout multimeter samples (window ({params_mm_out['start']}, {params_mm_out['stop']}] "
        f"ms, one per step); sample n*{seq}+k belongs to sequence n, step k")
    for name in out_recordables:
        values = np.asarray(events_mm_out[name])
        mat = np.array([values[out_senders == gid] for gid in nrns_out.tolist()])
        put(f"out_{name}.npy", mat, "mV" if name == "V_m" else "1",
            f"readout neurons: recorded '{name}' [n_out, n_seq*{seq}] at out_times_ms")
    if events_mm_rec is not None:
        rec_senders = np.asarray(events_mm_rec["senders"])
        rec_ids = nrns_rec[:N_RECORD].tolist()
        put("rec_times_ms.npy", np.asarray(events_mm_rec["times"])[rec_senders == rec_ids[0]], "ms",
            f"time stamps of the recurrent-neuron multimeter samples (window ({params_mm_rec['start']}, "
            f"{params_mm_rec['stop']}] ms)")
        units = {"V_m": "mV", "V_th_adapt": "mV", "surrogate_gradient": "1/mV", "learning_signal": "pA", "adaptation": "1"}
        for name in rec_recordables:
            values = np.asarray(events_mm_rec[name])
            mat = np.array([values[rec_senders == gid] for gid in rec_ids])
            put(f"rec_{name}.npy", mat, units[name],
                f"recorded recurrent neuron(s) (0-based index {list(range(N_RECORD))}): '{name}' "
                f"[n_record, n_seq*{seq}] at rec_times_ms")

    # spikes: whole simulation, sorted by time then sender (stable), split by population
    sr_times = np.asarray(events_sr["times"], dtype=np.float64)
    sr_senders = np.asarray(events_sr["senders"])
    order = np.lexsort((sr_senders, sr_times))
    events_were_sorted = bool(np.all(order == np.arange(len(order))))
    sr_times, sr_senders = sr_times[order], sr_senders[order]
    spikes = {}
    for pop_name, pop in (("in", nrns_in), ("rec", nrns_rec)):
        first = pop[0].global_id
        sel = (sr_senders >= first) & (sr_senders < first + len(pop))
        spikes[pop_name] = (sr_times[sel], (sr_senders[sel] - first).astype(np.int32))
        put(f"spikes_{pop_name}_times_ms.npy", spikes[pop_name][0], "ms",
            f"all spikes of the {pop_name} population during the whole simulation (0, {duration['sim']}] ms, sorted "
            "by time then neuron; includes the forced 'final update' spikes near the end")
        put(f"spikes_{pop_name}_senders.npy", spikes[pop_name][1], "index",
            f"0-based index within the {pop_name} population of each spike in spikes_{pop_name}_times_ms")

    if events_wr is not None:
        # weight recorder events in NEST's order; population codes and 0-based indices
        s = np.asarray(events_wr["senders"])
        t = np.asarray(events_wr["targets"])
        in0, rec0, out0 = nrns_in[0].global_id, nrns_rec[0].global_id, nrns_out[0].global_id
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

    if args.compact:
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
    for name, (array, _, _) in arrays.items():
        np.save(os.path.join(out, name), array)

    # --- parameter dumps --------------------------------------------------------------------------------
    script_params = {
        "duration_ms": duration,
        "steps": steps,
        "final_update_spike_time_ms": final_update_time,
        "gamma_seed": GAMMA,
        "input_spike_prob": INPUT_SPIKE_PROB,
        "n_batch": n_batch, "n_in": n_in, "n_iter": n_iter, "n_out": n_out, "n_rec": n_rec,
        "recurrent_model": rec_model,
        "params_common_syn_eprop": {k: v for k, v in params_common_syn_eprop.items() if k != "weight_recorder"},
        "params_nrn_out": params_nrn_out,
        "params_nrn_rec": dict(params_nrn_rec, tau_m=tau_m_text),
        "task": args.task,
        "recorders": {
            "mm_out": params_mm_out,
            "mm_rec": None if mm_rec is None else params_mm_rec,
            "sr": params_sr,
            "sr_all": {"start": 0.0, "stop": "inf"},
            "wr_window": None if wr is None else [params_wr["start"], params_wr["stop"]],
        },
        "rng_seed": seed,
        "tau_m_readout": params_nrn_out["tau_m"],
    }
    json_files = {
        "params_rec_neuron.json": (params_rec_neuron,
            "full status (get()) of recurrent neuron 0 before Simulate (state + parameters in effect); tau_m differs "
            "per neuron, see tau_m_rec.npy. NOTE: f_target is set in spikes/s but read back in spikes/ms."),
        "params_rec_uniform_check.json": (params_rec_uniform,
            "for each recurrent-neuron parameter: whether all neurons share the value, and the value"),
        "params_out_neuron.json": (params_out_neuron, "full status (get()) of readout neuron 0"),
        "params_synapse_eprop_defaults.json": (params_syn_defaults,
            "defaults / common properties of eprop_synapse_bsshslm_2020 after SetDefaults and Connect (optimizer etc.)"),
        "params_synapse_in0_rec0_after.json": (syn_in0_rec0,
            "status of the synapse input 0 -> recurrent 0 after Simulate (incl. optimizer state)"),
        "kernel_status.json": (kernel_status, "selected NEST kernel status after Simulate"),
        "script_params.json": (script_params, "parameters as set by the script (before NEST conversion)"),
    }
    if args.compact:
        json_files = {k: v for k, v in json_files.items()
                      if k in ("params_rec_neuron.json", "params_out_neuron.json", "script_params.json")}
    for name, (obj, _) in json_files.items():
        write_json(os.path.join(out, name), obj)

    # --- summary -------------------------------------------------------------------------------------------
    rec_t = spikes["rec"][0]
    in_t = spikes["in"][0]
    in_window = lambda t, lo, hi: int(np.count_nonzero((t > lo) & (t <= hi)))  # noqa: E731
    n_rec_window = n_events_sr_window["rec"]
    # sanity: the windowed recorder saw exactly the unwindowed recorder's spikes in its window
    assert n_rec_window == in_window(rec_t, *sr_window)
    assert n_events_sr_window["in"] == in_window(in_t, *sr_window)
    iter_ms = n_batch * duration["sequence"]
    lo = sr_window[0]
    # rates as the reference export defines them (tutorial spike-recorder window, which puts the
    # forced final-update spikes at task + 4 ms into the last iteration) ...
    rate_per_iter = [in_window(rec_t, lo + n * iter_ms, lo + (n + 1) * iter_ms) / n_rec / (iter_ms / 1000.0)
                     for n in range(n_iter)]
    # ... and per sequence on the recurrent neurons' own clock: stamps (2 + kT, 2 + (k+1)T]
    shift = duration["offset_gen"] + duration["delay_in_rec"]
    rate_per_seq = [in_window(rec_t, shift + k * duration["sequence"], shift + (k + 1) * duration["sequence"])
                    / n_rec / (duration["sequence"] / 1000.0) for k in range(n_seq)]
    timings["export_s"] = time.perf_counter() - t0
    timings["total_wall_s"] = time.perf_counter() - t_start
    num_connections = nest.GetKernelStatus("num_connections")
    summary = {
        "nest_version": nest.__version__,
        "args": vars(args),
        "command_line": shlex.join([sys.executable] + sys.argv),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "recurrent_model": rec_model,
        "n_in": n_in, "n_rec": n_rec, "n_out": n_out, "n_iter": n_iter, "batch_size": n_batch,
        "n_sequences": n_seq,
        "sequence_steps": seq, "learning_window_steps": steps["learning_window"],
        "sim_duration_ms": duration["sim"],
        "num_connections": num_connections,
        "events_were_sorted": events_were_sorted,
        "loss": loss,
        "loss_is_per": "iteration" if n_batch == 1 else "sequence",
        "loss_per_readout": np.array(loss_list),
        "loss_nest310_definition": np.mean(loss_list, axis=0),
        "n_spikes_recorded_rec": n_rec_window,
        "n_spikes_recorded_in": n_events_sr_window["in"],
        "n_spikes_rec_training": int(np.count_nonzero(rec_t <= shift + n_seq * duration["sequence"])),
        "mean_rate_rec_hz": n_rec_window / n_rec / (duration["task"] / 1000.0),
        "rate_rec_hz_per_iteration": rate_per_iter,
        "rate_rec_hz_per_sequence": rate_per_seq,
        "timings": timings,
        "memory_mb": memory,
        "feedback_weights_unchanged": bool(np.array_equal(w_feedback_init, w_feedback_final)),
    }
    if args.task != "infinite-loop":
        summary["task"] = args.task
    # NEST's test_eprop_regression: the sine-waves task with the test's exact settings; the loss of iteration n
    # depends only on iterations < n, so any run of >= 5 iterations must start with the test's 5 losses
    test_settings = dict(TASK_DEFAULTS["sine-waves"], task="sine-waves", seed=1, n_in=100, batch_size=1,
                         learning_window=TASK_DEFAULTS["sine-waves"]["sequence"], average_gradient=False,
                         surrogate="piecewise_linear")
    if all(getattr(args, k, v) == v for k, v in test_settings.items()) and n_iter >= 5:
        loss5 = np.mean(loss_list, axis=0)[:5]  # the test's definition: 0.5 * mean over readouts of the sums
        ref_nest = np.array(SINE_WAVES_LOSS_NEST_REFERENCE)
        ref_tf = np.array(SINE_WAVES_LOSS_TF_REFERENCE)
        summary["nest_test_eprop_regression"] = {
            "loss_nest_reference": ref_nest, "loss_tf_reference": ref_tf,
            "max_rel_diff_nest_reference": float(np.max(np.abs(loss5 - ref_nest) / np.abs(ref_nest))),
            "max_rel_diff_tf_reference": float(np.max(np.abs(loss5 - ref_tf) / np.abs(ref_tf))),
            "passes_test_asserts": bool(np.allclose(loss5, ref_tf, rtol=1e-7)
                                        and np.allclose(loss5, ref_nest, rtol=1e-8)),
        }
        log(f"test_eprop_regression check: {summary['nest_test_eprop_regression']}")
    write_json(os.path.join(out, "summary.json"), summary)

    manifest = {
        "arrays": {
            name: {"shape": list(np.shape(a)), "dtype": str(np.asarray(a).dtype), "units": u, "meaning": m}
            for name, (a, u, m) in arrays.items()
        },
        "json": {name: what for name, (_, what) in json_files.items()},
        "description": (
            f"Reference data of NEST {nest.__version__} (eprop_*_bsshslm_2020 models, recurrent model {rec_model}) "
            + ("for the tutorial 'learning to generate an infinite loop with e-prop', generated by "
               if args.task == "infinite-loop" else
               "for the sine-waves regression network of NEST's test_eprop_regression "
               "(testsuite/pytests/synapses/test_eprop_bsshslm_2020_plasticity.py), generated by ") +
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
            f"Learning window: the last {steps['learning_window']} steps of each sequence (error, readout and "
            "target signals are 0 before it).",
            "readout_signal(t) = V_m of the readout at step t-1; error_signal = readout_signal - target_signal.",
            "Learning signal of recurrent neuron j at its step tau: sum_k B_jk * error_k(readout step tau+2) "
            "(rec_learning_signal sample m = sum_k B[0,k] * out_error_signal[k, m-3]).",
            f"Forced final update: a spike_generator at task+3 = {final_update_time} ms with weight 1000 makes all "
            "parrots spike at stamp task+4 and all recurrent neurons at task+4 and task+5; this applies the last "
            "iteration's weight update. Drop recurrent spikes with stamp > task+2 when comparing training spikes.",
            "loss.npy has one value per sequence (for batch_size 1: per iteration); reshape to "
            "[n_iter, batch_size] for per-iteration batches.",
        ],
        "args": vars(args),
        "summary": {k: summary[k] for k in ("loss", "loss_nest310_definition", "n_spikes_recorded_rec",
                                            "mean_rate_rec_hz", "num_connections", "nest_version")},
    }
    write_json(os.path.join(out, "manifest.json"), manifest)
    log(f"wrote {len(arrays)} arrays to {out}; loss {np.array2string(loss, precision=6)}; "
        f"simulate {timings['simulate_s']:.2f} s, total {time.perf_counter() - t_start:.2f} s")
    return summary


if __name__ == "__main__":
    run(parse_args())
