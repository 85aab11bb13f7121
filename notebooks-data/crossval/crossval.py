#!/usr/bin/env python3
"""Cross-validate the Swift engine (eprop-dense) against NEST 3.10, configuration by configuration.

For every configuration in CONFIGS this script
  (a) runs nest_export.py (NEST 3.10) into <work>/<name>/nest,
  (b) runs `eprop-dense --init <work>/<name>/nest --out <work>/<name>/engine --precision double
      --record-iterations all ...` with the matching options,
  (c) compares the loss per sequence, the final weights, the recurrent spikes, the recorded traces
      (rec_*, out_*) and the weight-recorder events with NEST's, and prints a table.
Some configurations also run the engine in Float32 (--precision float) from the same --init and compare
it with the Float64 run: exactly (spikes) and within rounding tolerances over a few iterations, or
statistically (a band on the smoothed loss curve) over 200 iterations. The sine-waves configuration is
NEST's own regression test; its losses are also checked against the NEST and TensorFlow reference
losses hard-coded in that test. The evidence_accumulation configuration (NEST's classification example,
cross-entropy loss, a different input and target in every sequence) also requires the same accuracy per
iteration, and its NEST export is checked against the example script itself (nest_export.py
--verify-example). The script exits non-zero if any configuration fails.

Usage (from the repository root, after scripts/setup-python.sh and
`swift build -c release --product eprop-dense`; run.sh in this folder does all three):

    .venv/bin/python notebooks-data/crossval/crossval.py [--quick] [--only a,b] [--keep DIR] [--engine PATH]

--quick runs the configurations marked quick (the tutorial and the sine-waves test network, with their
Float32 runs; about 20 s). --self-test checks the comparison code without running the engine: each NEST export
is turned into a fake engine output, which must pass, and into deliberately perturbed copies, which must fail.
The task defaults come from the engine binary in every mode (task_defaults.py: eprop-dense --print-config).
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from crossval_common import load, run_cmd, tail

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
NEST_EXPORT = os.path.join(HERE, "nest_export.py")
DEFAULT_ENGINE = os.path.join(REPO_ROOT, ".build", "release", "eprop-dense")

sys.path.insert(0, HERE)
import nest_export  # noqa: E402  (argument parsing and task settings only; NEST is imported by run())
import task_defaults  # noqa: E402  (the engine's task defaults, from eprop-dense --print-config)

# ---------------------------------------------------------------------------------------------
# Tolerances, Float64 engine vs NEST 3.10.
#
# Both sides compute in double precision, but in a different order (NEST: per-synapse online traces;
# the engine: dense BLAS sums and possibly backward recursions), so the results differ by rounding only:
# about 1e-15 ... 1e-13 relative in the loss and 1e-17 ... 1e-10 absolute in the weights (after 200 Adam
# iterations). Adam divides m by sqrt(v), which magnifies rounding for synapses with tiny gradients, and
# the differences grow over iterations; 1e-9 leaves room for that, while every known modelling mistake is
# far larger (e.g. the missing L(T-1) term of spec section 6.2 gives ~1e-6 in W_in after 3 iterations, a
# wrong surrogate or timing gives > 1e-3).
LOSS_RTOL = 1e-9  # max |loss_engine - loss_nest| / |loss_nest| over all sequences
WEIGHT_ATOL = 1e-9  # max |W_engine - W_nest| per matrix (weights are O(0.1), so ~1e-8 relative)
# Traces: max |x_engine - x_nest| / max |x_nest| per recorded variable (rec_V_m, rec_surrogate_gradient,
# rec_learning_signal, rec_V_th_adapt, rec_adaptation, out_V_m, out_readout_signal, ...). Same rationale
# and size as the weights: rounding differences measured <= 1e-14; a modelling error shows up as >= 1e-6.
# The time stamps (rec_times_ms, out_times_ms) must be identical.
TRACE_RTOL = 1e-9
# Weight recorder (wr_*): the same events (time, sender, target) and |w_engine - w_nest| <= WEIGHT_ATOL.
# Spikes are compared exactly: a spike is a threshold crossing, and any flip changes everything after it.

# ---------------------------------------------------------------------------------------------
# Tolerances, Float32 engine vs Float64 engine (same --init, same configuration).
#
# Few iterations (configurations with "float32": True, 5 iterations): the recurrent spikes must be
# identical. While they are, the two runs differ only by float32 rounding: measured loss differences
# grow from 5e-10 (iteration 0, identical weights) to 1.2e-7 (iteration 4) in the tutorial and are
# ~1.2e-7 in the sine-waves task; traces differ by up to 3e-5 relative (the surrogate gradient, which
# amplifies voltage rounding by |V|max / width ~ 4). One flipped spike changes the loss by ~1e-4 relative
# (measured at the tutorial's first flip, iteration 7) and a trace by ~0.1 (v_th / |V|max). The tolerances
# lie between the two, two orders of magnitude above the rounding level:
F32_LOSS_RTOL = 1e-5
F32_TRACE_RTOL = 1e-3
# Weights are reported, not checked: Adam normalizes each synapse's gradient, so a synapse whose gradient
# is at rounding level takes steps of up to ~eta in a direction that float32 rounding decides (measured
# max |dW| 1.8e-3 after 7 iterations, eta 5e-3). The effect of these weights is in the loss and traces.
#
# Many iterations (configuration "seed_iter200": the tutorial, 200 iterations, seed 1): float32 rounding
# flips a first spike at iteration 7 (step 36); from then on Float32 and Float64 follow different, equally
# valid trajectories (the network is chaotic), and only statistics can be compared. Statistic: the loss
# curve smoothed by a moving average over F32_SMOOTH iterations, M = max_t |S32(t) - S64(t)| / S64(t),
# and the mean loss over the second half of the run, D = |mean32 - mean64| / mean64. The bands come from
# an ensemble of 17 Float64 runs of the same configuration whose initial weights differ by a float32
# rounding (relative perturbations uniform in +-2^-24, numpy default_rng(100 + k)): these runs are all
# correct and differ from each other only by chaos, so Float32 cannot be required to be closer to Float64
# than they are to each other. Over their 272 ordered pairs, M had median 0.17, 99th percentile 0.42,
# maximum 0.495; D had median 0.06, 99th percentile 0.22, maximum 0.29. The bands are these maxima, rounded
# up; measured for Float32 vs Float64 (before the bands were set): M = 0.343, D = 0.028. What the band can
# and cannot detect: a Float32 path that stalls, diverges or learns at a visibly different speed fails
# (eta x 0.5: M = 7.5; eta x 2: M = 0.81); an error of 20 % in eta is at the edge (M = 0.54 ... 0.58), and
# anything smaller is below the chaotic spread: that is what the exact few-iteration checks are for.
F32_SMOOTH = 20
F32_BAND_SMOOTHED = 0.5  # band for M
F32_BAND_SECOND_HALF = 0.3  # band for D
F32_ENSEMBLE = 4  # Float64 runs from rounding-perturbed inits, for context in the output (not checked)

# NEST's test_eprop_regression asserts its losses with these tolerances; the sine-waves Float64 run must
# pass the same asserts (nest_export.SINE_WAVES_LOSS_*_REFERENCE hold the numbers).
SINE_TF_RTOL = 1e-7
SINE_NEST_RTOL = 1e-8

WEIGHT_MATRICES = ["w_in_rec", "w_rec_rec", "w_rec_out"]

# The configurations: "nest" holds nest_export.py options (argparse dest names); anything not set is the
# task's default. The engine gets the same values through engine_args().
CONFIGS = [
    {"name": "seed", "what": "the tutorial: ALIF, Adam, 5 iterations", "nest": {},
     "quick": True, "float32": True},
    {"name": "sine_waves", "what": "NEST's test_eprop_regression: 100 LIF, 1 readout (tau_m 30), GD eta 1e-4, "
                                   "T 1000, superimposed sines", "nest": {"task": "sine-waves"},
     "quick": True, "float32": True},
    {"name": "lif", "what": "non-adaptive eprop_iaf_bsshslm_2020", "nest": {"model": "lif"}},
    {"name": "gradient_descent", "what": "plain gradient descent, eta 5e-3", "nest": {"optimizer": "gradient_descent"}},
    {"name": "batch2", "what": "batch_size 2 (consecutive sequences, one Adam step per batch)",
     "nest": {"batch_size": 2}},
    {"name": "batch4", "what": "batch_size 4, 3 iterations", "nest": {"batch_size": 4, "iterations": 3}},
    {"name": "window600", "what": "learning window = last 600 of 1258 steps", "nest": {"learning_window": 600}},
    {"name": "average_gradient", "what": "average_gradient = True (gradient / learning window)",
     "nest": {"average_gradient": True}},
    {"name": "seed7_rec50_iter20", "what": "seed 7, 50 recurrent neurons, 20 iterations",
     "nest": {"seed": 7, "n_rec": 50, "iterations": 20}},
    {"name": "sg_exponential", "what": "surrogate_gradient_function exponential",
     "nest": {"surrogate": "exponential"}},
    {"name": "sg_fast_sigmoid", "what": "surrogate_gradient_function fast_sigmoid_derivative",
     "nest": {"surrogate": "fast_sigmoid_derivative"}},
    {"name": "sg_arctan", "what": "surrogate_gradient_function arctan_derivative",
     "nest": {"surrogate": "arctan_derivative"}},
    {"name": "seed_iter200", "what": "the tutorial, 200 iterations (NEST ~2 min), and the Float32 band",
     "nest": {"iterations": 200, "no_recordings": True}, "float32_long": True},
    {"name": "evidence_accumulation", "what": "NEST's evidence-accumulation example, training only: 40 inputs, "
                                              "50 LIF + 50 ALIF, 2 readouts, cross-entropy, Adam, batch 32, "
                                              "average_gradient, T 2250, window 150, 2 iterations (NEST ~20 s, "
                                              "+20 s to check the export against the example script itself)",
     "nest": {"task": "evidence-accumulation", "iterations": 2, "batch_size": 32, "verify_example": True}},
]


def full_config(overrides):
    """All nest_export.py settings of a configuration (its parser fills in the task's defaults)."""
    args = nest_export.parse_args(["--out", "unused"] + nest_args(overrides))
    cfg = vars(args)
    del cfg["out"], cfg["quiet"]
    return cfg


def nest_args(cfg):
    """Command-line options of nest_export.py for a (partial) configuration."""
    out = []
    for key, value in cfg.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if value:
                out.append(flag)
        elif value is not None:
            out += [flag, str(value)]
    return out


def engine_args(cfg):
    """Command-line options of the Swift engine for one configuration (its spelling differs a bit)."""
    task = nest_export.task_settings(cfg["task"])
    engine_default = task_defaults.task_defaults(None)  # the engine's configuration without --task (the tutorial's)
    out = [
        "--iterations", str(cfg["iterations"]),
        "--batch-size", str(cfg["batch_size"]),
        "--model", cfg["model"],
        "--optimizer", cfg["optimizer"].replace("_", "-"),  # gradient_descent -> gradient-descent
        "--eta", repr(cfg["eta"]),
        "--sequence", str(cfg["sequence"]),
        "--learning-window", str(cfg["learning_window"]),
        "--c-reg", repr(cfg["c_reg"]),
        "--f-target", repr(cfg["f_target"]),
        "--surrogate-gradient-function", cfg["surrogate"],
        "--tau-m-out", repr(task["tau_out"]),
        "--n-record", str(nest_export.N_RECORD),
        "--n-record-w", str(task["n_record_w"]),  # no --seed: the engine starts from --init
    ]
    if cfg["average_gradient"]:
        out.append("--average-gradient")
    # settings that only the evidence-accumulation task changes (the engine runs without --task: the tutorial's)
    if task["loss"] == "cross_entropy":
        out += ["--loss", "cross-entropy"]
    if 0 < cfg["n_adaptive"] < cfg["n_rec"]:  # the last n_adaptive recurrent neurons adapt
        out += ["--n-adaptive", str(cfg["n_adaptive"])]
    if task["regular_spike_arrival"]:
        out.append("--regular-spike-arrival")
    if task["t_ref"] != engine_default["t_ref"]:
        out += ["--t-ref", repr(task["t_ref"])]
    if task["v_th"] != engine_default["v_th"]:
        out += ["--v-th", repr(task["v_th"])]
    if task["tau_m_rec_mean"] != engine_default["tau_m_rec_mean"]:  # with --init only adapt_beta's default uses it
        out += ["--tau-m-mean", repr(task["tau_m_rec_mean"])]
    if cfg["task"] == "evidence-accumulation":  # no effect without current input; given for completeness
        out += ["--c-m", repr(task["c_m_rec"]), "--gamma", repr(task["gamma"])]
    return out


# ---------------------------------------------------------------------------------------------
# comparison



def training_spikes(folder, n_sequences, seq):
    """Recurrent spikes (stamp, neuron) of the training sequences, sorted by stamp then neuron.

    A spike of sequence k at step s has stamp 3 + k*T + s, so training spikes have stamps <= K*T + 2.
    The NEST export also contains the forced final-update spikes (stamps K*T + 4 and K*T + 5): dropped.
    """
    times = np.asarray(load(folder, "spikes_rec_times_ms.npy"), dtype=np.float64)
    senders = np.asarray(load(folder, "spikes_rec_senders.npy"), dtype=np.int64)
    keep = times <= n_sequences * seq + 2
    times, senders = times[keep], senders[keep]
    order = np.lexsort((senders, times))
    return np.round(times[order]).astype(np.int64), senders[order]


def first_spike_difference(ref_sp, other_sp):
    """First (stamp, neuron, which side has it) where the two sorted spike lists differ, or None."""
    n = min(len(ref_sp[0]), len(other_sp[0]))
    differ = np.nonzero((ref_sp[0][:n] != other_sp[0][:n]) | (ref_sp[1][:n] != other_sp[1][:n]))[0]
    if len(differ):
        i = differ[0]
        a = (int(ref_sp[0][i]), int(ref_sp[1][i]))
        b = (int(other_sp[0][i]), int(other_sp[1][i]))
        # the smaller event is the one missing on the other side
        return (*a, "only in reference") if a < b else (*b, "only in the compared run")
    if len(ref_sp[0]) > n:
        return int(ref_sp[0][n]), int(ref_sp[1][n]), "only in reference"
    if len(other_sp[0]) > n:
        return int(other_sp[0][n]), int(other_sp[1][n]), "only in the compared run"
    return None


def where(stamp, seq, batch):
    k, s = divmod(stamp - 3, seq)  # sequence index, step in the sequence
    return k // batch, s, (f" (batch element {k % batch})" if batch > 1 else "")


def compare_spikes(ref_dir, other_dir, cfg, names=("NEST", "engine")):
    """Returns (table text, problem or None, first differing iteration or None)."""
    n_iter, batch, seq = cfg["iterations"], cfg["batch_size"], cfg["sequence"]
    sp_ref = training_spikes(ref_dir, n_iter * batch, seq)
    sp_other = training_spikes(other_dir, n_iter * batch, seq)
    text = f"{len(sp_ref[0])}/{len(sp_other[0])}"
    first = first_spike_difference(sp_ref, sp_other)
    if first is None:
        return text + " equal", None, None
    stamp, neuron, side = first
    it, s, b = where(stamp, seq, batch)
    side = side.replace("reference", names[0]).replace("the compared run", names[1])
    problem = (f"spikes differ first at iteration {it}{b}, step {s}, neuron {neuron} (stamp {stamp} ms, {side}); "
               f"{names[0]} {len(sp_ref[0])} spikes, {names[1]} {len(sp_other[0])}")
    return text + f" first diff: it {it} step {s}", problem, it


def nest_losses(nest_dir, n_iter, batch):
    """NEST's loss per sequence [n_iter, batch] and per iteration [n_iter]."""
    if os.path.exists(os.path.join(nest_dir, "loss_per_sequence.npy")):  # loss.npy is per iteration
        return load(nest_dir, "loss_per_sequence.npy").reshape(n_iter, batch), load(nest_dir, "loss.npy")
    seq = load(nest_dir, "loss.npy").reshape(n_iter, batch)
    return seq, seq.mean(axis=1)


def compare_losses(ref_seq, other_seq):
    """max relative difference of per-sequence losses and of their batch means; ref_seq [n_iter, batch]."""
    rel_seq = np.abs(other_seq - ref_seq) / np.abs(ref_seq)
    rel_mean = np.abs(other_seq.mean(axis=1) - ref_seq.mean(axis=1)) / np.abs(ref_seq.mean(axis=1))
    return float(max(rel_seq.max(), rel_mean.max())), rel_seq


def trace_names(ref_dir):
    return sorted(f for f in os.listdir(ref_dir)
                  if f.startswith(("rec_", "out_")) and f.endswith(".npy") and not f.endswith("_times_ms.npy"))


def compare_traces(ref_dir, other_dir, rtol):
    """Max over the reference's recorded traces of max|diff| / max|ref|; returns (value or None, problems)."""
    problems = []
    names = trace_names(ref_dir)
    if not names:
        return None, problems
    for stamps in ("rec_times_ms.npy", "out_times_ms.npy"):
        if os.path.exists(os.path.join(ref_dir, stamps)):
            a, b = load(ref_dir, stamps), load(other_dir, stamps)
            if a.shape != b.shape or not np.array_equal(a, b):
                problems.append(f"{stamps}: time stamps differ (shapes {a.shape} / {b.shape})")
    worst = 0.0
    for name in names:
        a = np.asarray(load(ref_dir, name), dtype=np.float64)
        b = np.asarray(load(other_dir, name), dtype=np.float64)
        if a.shape != b.shape:
            problems.append(f"{name}: shape {b.shape}, reference {a.shape}")
            worst = float("nan")
            continue
        scale = np.abs(a).max()
        diff = np.abs(a - b)
        rel = float(diff.max() / scale) if scale > 0 else float(diff.max())
        worst = rel if not np.isfinite(rel) else max(worst, rel)
        if not rel <= rtol:
            i = np.unravel_index(np.argmax(diff), diff.shape)
            over = ~(diff <= rtol * (scale if scale > 0 else 1.0))  # also NaN
            f = np.unravel_index(np.argmax(np.any(over, axis=0)), diff.shape[1:])  # first sample over tolerance
            f = (int(np.argmax(over[(slice(None),) + f])),) + tuple(int(x) for x in f)
            problems.append(f"{name}: max|diff| / max|ref| = {rel:.3g} > {rtol:g} at {tuple(int(x) for x in i)} "
                            f"(reference {float(a[i])!r}, compared {float(b[i])!r}); first over tolerance at {f} "
                            f"(reference {float(a[f])!r}, compared {float(b[f])!r})")
    return worst, problems


def weight_recorder_events(folder):
    cols = [np.asarray(load(folder, f"wr_{n}.npy")) for n in
            ("times_ms", "sender_pop", "sender_idx", "target_pop", "target_idx", "weights")]
    order = np.lexsort(cols[4::-1])  # by time, then sender population, sender, target population, target
    return [c[order] for c in cols]


def final_update_cut(nest_dir, cfg):
    """Last stamp of the training when NEST's forced final update is not the tutorial's, else None.

    The engine writes the final update's weight-recorder events at task + 4 ms, where the tutorial's final
    update (a generator spike at task + 3) puts them. The evidence-accumulation example triggers it 3 ms
    later (generator at task + 6, parrot spikes at task + 7, outside the weight recorder's window (4, task + 4]),
    so there only the training events (stamps <= task + 2) are compared; w_*_final.npy holds the final weights.
    """
    path = os.path.join(nest_dir, "script_params.json")
    task_ms = cfg["iterations"] * cfg["batch_size"] * cfg["sequence"]
    if os.path.exists(path):
        with open(path) as f:
            t_final = json.load(f).get("final_update_spike_time_ms")
        if t_final is not None and t_final != task_ms + 3:
            return task_ms + 2
    return None


def compare_weight_recorder(nest_dir, eng_dir, cfg):
    """(max |dw| or None if NEST has no weight recorder, problems)."""
    if not os.path.exists(os.path.join(nest_dir, "wr_times_ms.npy")):
        return None, []
    a, b = weight_recorder_events(nest_dir), weight_recorder_events(eng_dir)
    cut = final_update_cut(nest_dir, cfg)
    if cut is not None:
        a, b = [[x[e[0] <= cut] for x in e] for e in (a, b)]
    if len(a[0]) != len(b[0]) or not all(np.array_equal(x, y) for x, y in zip(a[:5], b[:5])):
        n = min(len(a[0]), len(b[0]))
        differ = np.nonzero(np.any([x[:n] != y[:n] for x, y in zip(a[:5], b[:5])], axis=0))[0]
        i = differ[0] if len(differ) else n
        first = lambda e: tuple(float(x[i]) for x in e[:5]) if i < len(e[0]) else None  # noqa: E731
        return float("nan"), [f"weight recorder: the events (time, sender pop, sender, target pop, target) differ: "
                              f"NEST {len(a[0])}, engine {len(b[0])}; first difference at event {i}: NEST {first(a)}, "
                              f"engine {first(b)}"]
    d = float(np.abs(a[5] - b[5]).max()) if len(a[5]) else 0.0
    if not d <= WEIGHT_ATOL:
        return d, [f"weight recorder: max |w_engine - w_nest| = {d:.3g} > {WEIGHT_ATOL:g}"]
    return d, []


def compare(nest_dir, eng_dir, cfg):
    """Compare one Float64 engine run with its NEST export. Returns (ok, row dict, list of problems)."""
    n_iter, batch = cfg["iterations"], cfg["batch_size"]
    problems = []
    row = {}

    # loss: NEST's loss.npy is per sequence (regression tasks), or per iteration with loss_per_sequence.npy
    # beside it (evidence accumulation); the engine has loss_per_sequence [iterations, batch] and loss = its
    # mean over the batch
    loss_nest, loss_nest_iter = nest_losses(nest_dir, n_iter, batch)
    loss_eng_seq = np.asarray(load(eng_dir, "loss_per_sequence.npy"), dtype=np.float64)
    loss_eng = np.asarray(load(eng_dir, "loss.npy"), dtype=np.float64)
    if loss_eng_seq.shape != (n_iter, batch) or loss_eng.shape != (n_iter,):
        problems.append(f"loss shapes {loss_eng_seq.shape}/{loss_eng.shape}, expected ({n_iter}, {batch})/({n_iter},)")
        row["loss_rel"] = float("nan")
    else:
        row["loss_rel"], rel_seq = compare_losses(loss_nest, loss_eng_seq)
        rel_mean = np.abs(loss_eng - loss_nest_iter) / np.abs(loss_nest_iter)
        row["loss_rel"] = max(row["loss_rel"], float(rel_mean.max()))
        if not row["loss_rel"] <= LOSS_RTOL:  # also catches NaN
            it, b = np.unravel_index(np.argmax(rel_seq), rel_seq.shape)
            i = int(np.argmax(rel_mean))
            problems.append(f"loss rel. diff {row['loss_rel']:.3g} > {LOSS_RTOL:g} (worst sequence: iteration "
                            f"{it}, batch element {b}: NEST {float(loss_nest[it, b])!r}, engine {float(loss_eng_seq[it, b])!r}; "
                            f"worst iteration {i}: NEST {float(loss_nest_iter[i])!r}, engine {float(loss_eng[i])!r})")

    # accuracy (classification): the same value in every iteration
    if os.path.exists(os.path.join(nest_dir, "accuracy.npy")):
        acc_nest = load(nest_dir, "accuracy.npy")
        acc_eng = np.asarray(load(eng_dir, "accuracy.npy"), dtype=np.float64)
        row["accuracy"] = (acc_nest, acc_eng)
        if acc_eng.shape != acc_nest.shape or not np.array_equal(acc_eng, acc_nest):
            problems.append(f"accuracy differs: NEST {acc_nest.tolist()}, engine {acc_eng.tolist()}")

    # final weights
    for name in WEIGHT_MATRICES:
        w_nest = load(nest_dir, f"{name}_final.npy")
        w_eng = np.asarray(load(eng_dir, f"{name}_final.npy"), dtype=np.float64)
        if w_eng.shape != w_nest.shape:
            problems.append(f"{name}: shape {w_eng.shape}, NEST {w_nest.shape}")
            row[name] = float("nan")
            continue
        diff = np.abs(w_eng - w_nest)
        row[name] = float(diff.max())
        if not row[name] <= WEIGHT_ATOL:
            post, pre = np.unravel_index(np.argmax(diff), diff.shape)
            problems.append(f"{name}: max |dW| {row[name]:.3g} > {WEIGHT_ATOL:g} at [post {post}, pre {pre}] "
                            f"(NEST {float(w_nest[post, pre])!r}, engine {float(w_eng[post, pre])!r}); "
                            f"{int(np.count_nonzero(diff > WEIGHT_ATOL))} entries over tolerance")

    # recorded traces and weight-recorder events
    row["traces"], found = compare_traces(nest_dir, eng_dir, TRACE_RTOL)
    problems += found
    row["wr"], found = compare_weight_recorder(nest_dir, eng_dir, cfg)
    problems += found

    # recurrent spikes, exactly
    row["spikes"], problem, _ = compare_spikes(nest_dir, eng_dir, cfg)
    if problem:
        problems.append(problem)
    return not problems, row, problems


def compare_sine_references(eng_dir):
    """The engine's losses against the references of NEST's test_eprop_regression (first 5 iterations)."""
    loss = np.asarray(load(eng_dir, "loss.npy"), dtype=np.float64)[:5]
    out = {}
    for key, ref, rtol in (("nest", nest_export.SINE_WAVES_LOSS_NEST_REFERENCE, SINE_NEST_RTOL),
                           ("tf", nest_export.SINE_WAVES_LOSS_TF_REFERENCE, SINE_TF_RTOL)):
        ref = np.asarray(ref)
        rel = np.abs(loss - ref) / np.abs(ref)
        out[key] = (float(rel.max()), bool(np.allclose(loss, ref, rtol=rtol)), rtol)
    return loss, out


def compare_float32(f64_dir, f32_dir, cfg):
    """Few-iteration Float32 check against the Float64 run. Returns (ok, row, problems)."""
    problems, row = [], {}
    n_iter, batch = cfg["iterations"], cfg["batch_size"]
    l64 = np.asarray(load(f64_dir, "loss_per_sequence.npy"), dtype=np.float64).reshape(n_iter, batch)
    l32 = np.asarray(load(f32_dir, "loss_per_sequence.npy"), dtype=np.float64).reshape(n_iter, batch)
    row["loss_rel"], _ = compare_losses(l64, l32)
    if not row["loss_rel"] <= F32_LOSS_RTOL:
        problems.append(f"Float32 loss rel. diff {row['loss_rel']:.3g} > {F32_LOSS_RTOL:g}")
    row["traces"], found = compare_traces(f64_dir, f32_dir, F32_TRACE_RTOL)
    problems += [f"Float32 {p}" for p in found]
    row["dw"] = max(float(np.abs(np.asarray(load(f32_dir, f"{m}_final.npy"), dtype=np.float64)
                                 - load(f64_dir, f"{m}_final.npy")).max()) for m in WEIGHT_MATRICES)
    row["spikes"], problem, _ = compare_spikes(f64_dir, f32_dir, cfg, names=("Float64", "Float32"))
    if problem:
        problems.append(problem)
    return not problems, row, problems


def smoothed(x, w):
    return np.convolve(x, np.ones(w) / w, mode="valid")


def band_statistics(loss_other, loss_ref):
    """(M, D): max relative difference of the F32_SMOOTH-iteration moving averages, and relative difference
    of the mean loss over the second half of the run."""
    s_o, s_r = smoothed(loss_other, F32_SMOOTH), smoothed(loss_ref, F32_SMOOTH)
    m = float(np.max(np.abs(s_o - s_r) / np.abs(s_r)))
    h = len(loss_ref) // 2
    d = float(abs(loss_other[h:].mean() - loss_ref[h:].mean()) / abs(loss_ref[h:].mean()))
    return m, d


def perturbed_init(src, dst, k):
    """Copy of the --init folder src with the initial weights perturbed by a float32 rounding (relative
    uniform +-2^-24, numpy default_rng(100 + k)), as used to measure the bands."""
    shutil.copytree(src, dst)
    rng = np.random.default_rng(100 + k)
    for name in WEIGHT_MATRICES:
        w = np.load(os.path.join(dst, f"{name}_init.npy"))
        np.save(os.path.join(dst, f"{name}_init.npy"), w * (1.0 + rng.uniform(-1.0, 1.0, w.shape) * 2.0 ** -24))


# ---------------------------------------------------------------------------------------------
# self-test: a NEST export rewritten as the engine would write it, then perturbed


def fake_engine_output(nest_dir, out_dir, cfg, perturb=None):
    """Write what a perfect engine would write for this NEST export, optionally perturbed."""
    os.makedirs(out_dir, exist_ok=True)
    n_iter, batch, seq = cfg["iterations"], cfg["batch_size"], cfg["sequence"]
    loss_seq = nest_losses(nest_dir, n_iter, batch)[0].copy()
    accuracy = load(nest_dir, "accuracy.npy").copy() if os.path.exists(os.path.join(nest_dir, "accuracy.npy")) else None
    weights = {name: load(nest_dir, f"{name}_final.npy").copy() for name in WEIGHT_MATRICES}
    times, senders = training_spikes(nest_dir, n_iter * batch, seq)
    times, senders = times.astype(np.float64), senders.astype(np.int32)
    traces = {name: load(nest_dir, name).copy() for name in trace_names(nest_dir)}
    for name in ("rec_times_ms.npy", "out_times_ms.npy") + tuple(f"wr_{n}.npy" for n in (
            "times_ms", "sender_pop", "sender_idx", "target_pop", "target_idx", "weights")):
        if os.path.exists(os.path.join(nest_dir, name)):
            traces[name] = load(nest_dir, name).copy()
    if perturb == "loss":
        loss_seq[-1, -1] *= 1.0 + 10 * LOSS_RTOL
    elif perturb == "weight":
        weights["w_rec_rec"][3, 7] += 10 * WEIGHT_ATOL
    elif perturb == "spike":  # move the 10th spike to another neuron
        senders[10] = (senders[10] + 1) % cfg["n_rec"]
    elif perturb == "missing_spike":
        times, senders = np.delete(times, 20), np.delete(senders, 20)
    elif perturb == "trace":
        x = traces["out_readout_signal.npy"]
        x[0, len(x[0]) - 1] += 10 * TRACE_RTOL * np.abs(x).max()  # the last step is in every learning window
    elif perturb == "accuracy":
        accuracy[-1] += 1.0 / batch
    np.save(os.path.join(out_dir, "loss_per_sequence.npy"), loss_seq)
    np.save(os.path.join(out_dir, "loss.npy"), loss_seq.mean(axis=1))
    if accuracy is not None:
        np.save(os.path.join(out_dir, "accuracy.npy"), accuracy)
    for name, w in weights.items():
        np.save(os.path.join(out_dir, f"{name}_final.npy"), w)
    for name, x in traces.items():
        np.save(os.path.join(out_dir, name), x)
    np.save(os.path.join(out_dir, "spikes_rec_times_ms.npy"), times[::-1])  # unsorted on purpose
    np.save(os.path.join(out_dir, "spikes_rec_senders.npy"), senders[::-1])


def self_test(nest_dir, run_dir, cfg):
    """Returns (table row of the exact copy, problems with the comparison code itself (empty = fine))."""
    problems = []
    exact_row = {}
    perturbations = [None, "loss", "weight", "spike", "missing_spike", "trace"]
    if os.path.exists(os.path.join(nest_dir, "accuracy.npy")):
        perturbations.append("accuracy")
    for perturb in perturbations:
        out = os.path.join(run_dir, f"selftest_{perturb or 'exact'}")
        fake_engine_output(nest_dir, out, cfg, perturb)
        ok, row, found = compare(nest_dir, out, cfg)
        if perturb is None:
            exact_row = row
        expected_ok = perturb is None
        if ok != expected_ok:
            problems.append(f"self-test '{perturb or 'exact'}': compare() said ok={ok}, expected {expected_ok}")
        elif found:
            print(f"    self-test {perturb}: detected -> {found[0]}")
        shutil.rmtree(out)
    # the band statistics on a synthetic learning curve: against itself, a copy 1.6 times as large (outside
    # both bands) and a copy with +-20 % noise (inside both)
    curve = 600.0 * np.exp(-np.arange(200) / 40.0) + 4.0
    noisy = curve * (1.0 + 0.2 * np.sin(np.arange(200)))
    m_big, d_big = band_statistics(1.6 * curve, curve)
    m_noisy, d_noisy = band_statistics(noisy, curve)
    if (band_statistics(curve, curve) != (0.0, 0.0) or m_big <= F32_BAND_SMOOTHED or d_big <= F32_BAND_SECOND_HALF
            or m_noisy > F32_BAND_SMOOTHED or d_noisy > F32_BAND_SECOND_HALF):
        problems.append("self-test: band_statistics() is wrong")
    return exact_row, problems


# ---------------------------------------------------------------------------------------------




def run_engine(engine, init_dir, out_dir, cfg, precision, extra, log_path):
    cmd = [engine, "--init", init_dir, "--out", out_dir, "--precision", precision] + engine_args(cfg) \
        + ["--record-iterations", "all"] + list(extra) + ["--quiet"]
    ok, seconds = run_cmd(cmd, log_path)
    return ok, seconds, (None if ok else f"engine ({precision}) failed:\n" + tail(log_path))


def run_config(config, work, engine, self_test_only, extra):
    """Export, run and compare one configuration. Returns a result dict."""
    name = config["name"]
    cfg = full_config(config["nest"])
    folder = os.path.join(work, name)
    nest_dir, eng_dir = os.path.join(folder, "nest"), os.path.join(folder, "engine")
    res = {"name": name, "ok": False, "row": {}, "problems": [], "t_nest": 0.0, "t_eng": 0.0, "notes": []}
    if os.path.isdir(folder):  # a --keep folder from an earlier run (the engine refuses a full --out)
        shutil.rmtree(folder)
    os.makedirs(folder)
    print(f"[{name}] {config['what']}", flush=True)

    cmd = [sys.executable, NEST_EXPORT, "--out", nest_dir, "--quiet"] + nest_args(config["nest"])
    ok, res["t_nest"] = run_cmd(cmd, os.path.join(folder, "nest.log"))
    if not ok:
        res["problems"].append("NEST export failed:\n" + tail(os.path.join(folder, "nest.log")))
        return res

    if self_test_only:
        res["row"], res["problems"] = self_test(nest_dir, folder, cfg)
        res["ok"] = not res["problems"]
        return res

    ok, res["t_eng"], err = run_engine(engine, nest_dir, eng_dir, cfg, "double", extra, os.path.join(folder, "engine.log"))
    if not ok:
        res["problems"].append(err)
        return res
    try:
        ok, res["row"], res["problems"] = compare(nest_dir, eng_dir, cfg)
    except (OSError, ValueError) as e:  # missing or malformed engine output
        res["problems"] = [f"engine output unusable: {e}"]
        return res

    if cfg["task"] == "sine-waves" and cfg["iterations"] >= 5:
        loss, refs = compare_sine_references(eng_dir)
        res["sine"] = {"float64": (loss, refs)}
        for key, (rel, passed, rtol) in refs.items():
            if not passed:
                res["problems"].append(f"engine Float64 losses {loss} fail test_eprop_regression's assert against "
                                       f"the {key.upper()} reference (max rel {rel:.3g}, rtol {rtol:g})")

    if config.get("float32"):
        f32_dir = os.path.join(folder, "engine_float32")
        ok, t, err = run_engine(engine, nest_dir, f32_dir, cfg, "float", extra, os.path.join(folder, "engine_float32.log"))
        res["t_eng"] += t
        if not ok:
            res["problems"].append(err)
        else:
            ok32, res["f32"], found = compare_float32(eng_dir, f32_dir, cfg)
            res["problems"] += found
            if "sine" in res:
                res["sine"]["float32"] = compare_sine_references(f32_dir)

    if config.get("float32_long"):
        ok32, long_res, found, t = run_float32_long(engine, nest_dir, eng_dir, folder, cfg, extra)
        res["t_eng"] += t
        res["long"] = long_res
        res["problems"] += found

    res["ok"] = not res["problems"]
    return res


def run_float32_long(engine, nest_dir, f64_dir, folder, cfg, extra):
    """Float32 vs Float64 over the whole (long) run: first spike flip, band statistics, Float64 ensemble."""
    problems, out = [], {}
    t_total = 0.0
    f32_dir = os.path.join(folder, "engine_float32")
    ok, t, err = run_engine(engine, nest_dir, f32_dir, cfg, "float", extra, os.path.join(folder, "engine_float32.log"))
    t_total += t
    if not ok:
        return False, out, [err], t_total
    l64 = np.asarray(load(f64_dir, "loss.npy"), dtype=np.float64)
    l32 = np.asarray(load(f32_dir, "loss.npy"), dtype=np.float64)
    out["spikes"], _, out["first_flip_iteration"] = compare_spikes(f64_dir, f32_dir, cfg, names=("Float64", "Float32"))
    out["M"], out["D"] = band_statistics(l32, l64)
    out["final"] = (float(l64[-1]), float(l32[-1]))
    if not out["M"] <= F32_BAND_SMOOTHED:
        problems.append(f"Float32 vs Float64: smoothed loss max rel. diff {out['M']:.3f} > band {F32_BAND_SMOOTHED}")
    if not out["D"] <= F32_BAND_SECOND_HALF:
        problems.append(f"Float32 vs Float64: second-half mean loss rel. diff {out['D']:.3f} > band "
                        f"{F32_BAND_SECOND_HALF}")
    # context: Float64 runs from rounding-perturbed inits (not checked)
    ensemble = []
    for k in range(F32_ENSEMBLE):
        init_k = os.path.join(folder, f"init_perturbed{k}")
        out_k = os.path.join(folder, f"engine_perturbed{k}")
        perturbed_init(nest_dir, init_k, k)
        cmd = [engine, "--init", init_k, "--out", out_k, "--precision", "double"] + engine_args(cfg) \
            + ["--record-iterations", "none"] + list(extra) + ["--quiet"]
        ok, t = run_cmd(cmd, os.path.join(folder, f"engine_perturbed{k}.log"))
        t_total += t
        if ok:
            ensemble.append(band_statistics(np.asarray(load(out_k, "loss.npy"), dtype=np.float64), l64))
        shutil.rmtree(init_k, ignore_errors=True)
    out["ensemble"] = ensemble
    return not problems, out, problems, t_total


def measure_band(engine, n_runs, work):
    """Re-measure the statistics behind F32_BAND_*: Float64 runs of seed_iter200 from n_runs rounding-perturbed
    inits (plus the unperturbed one), all ordered pairs, and Float32 vs Float64. Engine only (the initial state
    is the committed NEST export of the tutorial; it does not depend on the number of iterations)."""
    init = os.path.join(REPO_ROOT, "notebooks-data", "reference", "nest-3.10-infinite-loop-seed1-iter5")
    config = next(c for c in CONFIGS if c["name"] == "seed_iter200")
    cfg = full_config(config["nest"])
    curves = []
    for k in range(-1, n_runs):  # -1: unperturbed
        init_k = init if k < 0 else os.path.join(work, f"init{k}")
        if k >= 0:
            perturbed_init(init, init_k, k)
        out = os.path.join(work, f"run{k}")
        cmd = [engine, "--init", init_k, "--out", out, "--precision", "double"] + engine_args(cfg) \
            + ["--record-iterations", "none", "--quiet"]
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            sys.exit(f"engine failed: {shlex.join(cmd)}")
        curves.append(np.load(os.path.join(out, "loss.npy")))
    out = os.path.join(work, "float32")
    cmd = [engine, "--init", init, "--out", out, "--precision", "float"] + engine_args(cfg) \
        + ["--record-iterations", "none", "--quiet"]
    subprocess.run(cmd, check=True, capture_output=True)
    l32 = np.load(os.path.join(out, "loss.npy"))
    pairs = np.array([band_statistics(curves[i], curves[j]) for i in range(len(curves))
                      for j in range(len(curves)) if i != j])
    print(f"{len(curves)} Float64 runs ({n_runs} from perturbed inits), {len(pairs)} ordered pairs, "
          f"{cfg['iterations']} iterations:")
    for col, name, band in ((0, "M", F32_BAND_SMOOTHED), (1, "D", F32_BAND_SECOND_HALF)):
        x = pairs[:, col]
        print(f"  {name}: median {np.median(x):.3f}, 90th percentile {np.percentile(x, 90):.3f}, 99th percentile "
              f"{np.percentile(x, 99):.3f}, max {x.max():.3f}   (band {band})")
    m, d = band_statistics(l32, curves[0])
    print(f"Float32 vs Float64: M = {m:.3f}, D = {d:.3f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="only the quick configurations: " + ", ".join(c["name"] for c in CONFIGS if c.get("quick")))
    p.add_argument("--engine", default=DEFAULT_ENGINE, help="path of the eprop-dense executable")
    p.add_argument("--keep", metavar="DIR", help="keep NEST exports and engine runs in DIR/<config>/")
    p.add_argument("--only", metavar="NAMES", help="comma-separated configuration names to run")
    p.add_argument("--list", action="store_true", help="list the configurations and exit")
    p.add_argument("--engine-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for the engine, repeatable (e.g. --engine-arg=--gradient --engine-arg=traces)")
    p.add_argument("--self-test", action="store_true",
                   help="do not run the engine; test the comparison against exact and perturbed NEST copies")
    p.add_argument("--measure-band", type=int, metavar="N",
                   help="re-measure the Float32 band statistics with N perturbed Float64 runs (engine only) and exit")
    p.add_argument("--bptt", action="store_true",
                   help="instead of the NEST configurations: check --gradient bptt against JAX autodiff (bptt_check.py)")
    args = p.parse_args()
    os.environ[task_defaults.ENGINE_ENV] = os.path.abspath(args.engine)  # task defaults: here and in nest_export.py
    if args.bptt:
        check = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bptt_check.py")
        sys.exit(subprocess.run([sys.executable, check, "--engine", args.engine] + (["--quick"] if args.quick else [])).returncode)
    if args.measure_band:
        with tempfile.TemporaryDirectory(prefix="eprop-band-") as work:
            measure_band(os.path.abspath(args.engine), args.measure_band, work)
        return

    if args.list:
        for c in CONFIGS:
            print(f"{c['name']:<22} {'quick ' if c.get('quick') else '      '}{c['what']}")
        return
    configs = [c for c in CONFIGS if c.get("quick")] if args.quick else CONFIGS
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - {c["name"] for c in CONFIGS}
        if unknown:
            p.error(f"unknown configuration(s) {sorted(unknown)}; known: {[c['name'] for c in CONFIGS]}")
        configs = [c for c in CONFIGS if c["name"] in wanted]
    if args.self_test:  # the 200-iteration export takes 2 minutes and adds nothing to the self-test
        configs = [c for c in configs if not c.get("float32_long")]

    engine = os.path.abspath(args.engine)
    if not os.access(engine, os.X_OK):  # also for --self-test: the task defaults come from the engine
        sys.exit(f"crossval: engine not found at {engine}\n"
                 f"Build it first:  swift build -c release --product eprop-dense   (in {REPO_ROOT}), "
                 "or pass --engine PATH.")

    work = os.path.abspath(args.keep) if args.keep else tempfile.mkdtemp(prefix="eprop-crossval-")
    os.makedirs(work, exist_ok=True)
    print(f"crossval: {len(configs)} configuration(s), work folder {work}"
          + (" (self-test, no engine)" if args.self_test else f", engine {engine}"))
    print(f"tolerances, Float64 engine vs NEST: loss rel {LOSS_RTOL:g}, weights abs {WEIGHT_ATOL:g}, "
          f"traces rel {TRACE_RTOL:g}, weight recorder abs {WEIGHT_ATOL:g}, spikes exact")
    print(f"Float32 vs Float64: loss rel {F32_LOSS_RTOL:g}, traces rel {F32_TRACE_RTOL:g}, spikes exact; long run: "
          f"smoothed ({F32_SMOOTH} it.) loss max rel <= {F32_BAND_SMOOTHED}, second-half mean rel <= "
          f"{F32_BAND_SECOND_HALF}\n", flush=True)

    t_start = time.perf_counter()
    results = []
    try:
        for config in configs:
            results.append(run_config(config, work, engine, args.self_test, args.engine_arg))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_report(results, args.self_test)
    if args.keep:
        print(f"\noutputs kept in {work}")
    failures = [r for r in results if not r["ok"]]
    print(f"\n{len(results) - len(failures)} passed, {len(failures)} failed "
          f"({time.perf_counter() - t_start:.0f} s)")
    sys.exit(1 if failures else 0)


def print_report(results, self_test_only):
    fmt = lambda x: "-" if x is None else f"{x:.2e}"  # noqa: E731
    print("\nFloat64 engine vs NEST 3.10 (loss: max relative difference; weights, wr: max absolute difference; "
          "traces: max |diff| / max |NEST|)")
    header = (f"{'configuration':<22} {'result':<6} {'loss rel':>9} {'w_in_rec':>9} {'w_rec_rec':>9} {'w_rec_out':>9} "
              f"{'traces':>9} {'wr':>9}  {'spikes NEST/engine':<26} {'t NEST':>7} {'t eng':>7}")
    print(header + "\n" + "-" * len(header))
    for r in results:
        row = r["row"]
        print(f"{r['name']:<22} {'PASS' if r['ok'] else 'FAIL':<6} {fmt(row.get('loss_rel')):>9} "
              f"{fmt(row.get('w_in_rec')):>9} {fmt(row.get('w_rec_rec')):>9} {fmt(row.get('w_rec_out')):>9} "
              f"{fmt(row.get('traces')):>9} {fmt(row.get('wr')):>9}  {row.get('spikes', '-'):<26} "
              f"{r['t_nest']:6.1f}s {r['t_eng']:6.1f}s")

    for r in results:
        if "accuracy" in r["row"]:
            a, b = r["row"]["accuracy"]
            print(f"{r['name']}: accuracy per iteration NEST {a.tolist()}, engine {b.tolist()}"
                  f"{' (equal)' if a.shape == b.shape and np.array_equal(a, b) else ' (DIFFERENT)'}")

    f32 = [r for r in results if "f32" in r]
    if f32:
        print("\nFloat32 engine vs Float64 engine, same --init (loss rel, traces: as above; max |dW| reported, "
              "not checked)")
        header = f"{'configuration':<22} {'loss rel':>9} {'traces':>9} {'max |dW|':>9}  {'spikes F64/F32':<26}"
        print(header + "\n" + "-" * len(header))
        for r in f32:
            row = r["f32"]
            print(f"{r['name']:<22} {fmt(row.get('loss_rel')):>9} {fmt(row.get('traces')):>9} "
                  f"{fmt(row.get('dw')):>9}  {row.get('spikes', '-'):<26}")

    for r in results:
        if "long" in r and r["long"]:
            lo = r["long"]
            print(f"\n{r['name']}: Float32 vs Float64 over the whole run: spikes {lo['spikes']}; "
                  f"smoothed ({F32_SMOOTH} it.) loss max rel diff M = {lo['M']:.3f} (band {F32_BAND_SMOOTHED}), "
                  f"second-half mean loss rel diff D = {lo['D']:.3f} (band {F32_BAND_SECOND_HALF}); final loss "
                  f"Float64 {lo['final'][0]:.4f}, Float32 {lo['final'][1]:.4f}")
            if lo["ensemble"]:
                ms = ", ".join(f"{m:.3f}" for m, _ in lo["ensemble"])
                ds = ", ".join(f"{d:.3f}" for _, d in lo["ensemble"])
                print(f"  for scale, {len(lo['ensemble'])} Float64 runs from inits perturbed by a float32 rounding: "
                      f"M = {ms}; D = {ds}")
        if "sine" in r:
            for prec, (loss, refs) in r["sine"].items():
                print(f"\n{r['name']}: engine {prec} losses {np.array2string(loss, precision=9, separator=', ')}")
                for key, (rel, passed, rtol) in refs.items():
                    print(f"  vs test_eprop_regression {key.upper():4s} reference: max rel {rel:.2e} "
                          f"(the test's rtol {rtol:g}: {'passes' if passed else 'does not pass'}"
                          f"{'' if prec == 'float64' else ', reported only'})")

    for r in results:
        if not r["ok"]:
            print(f"\n{r['name']}: FAIL")
            for line in r["problems"]:
                print("  - " + line.rstrip().replace("\n", "\n    "))


if __name__ == "__main__":
    main()
