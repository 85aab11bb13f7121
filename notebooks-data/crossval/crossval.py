#!/usr/bin/env python3
"""Cross-validate the Swift engine (eprop-dense) against NEST 3.10, configuration by configuration.

For every configuration in CONFIGS this script
  (a) runs nest_export.py (NEST 3.10) into <work>/<name>/nest,
  (b) runs `eprop-dense --init <work>/<name>/nest --out <work>/<name>/engine --precision double ...`
      with the matching options,
  (c) compares loss per sequence, final weights and recurrent spikes, and prints a table.
It exits non-zero if any configuration fails.

Usage (from the repository root, after scripts/setup-python.sh and `swift build -c release`):

    .venv/bin/python notebooks-data/crossval/crossval.py [--quick] [--engine PATH] [--keep DIR]

--self-test checks the comparison code without the engine: each NEST export is turned into a fake
engine output, which must pass, and into deliberately perturbed copies, which must fail.
"""

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
NEST_EXPORT = os.path.join(HERE, "nest_export.py")
DEFAULT_ENGINE = os.path.join(REPO_ROOT, ".build", "release", "eprop-dense")

# Tolerances. Both sides compute in double precision, but in a different order (NEST: per-synapse
# online traces; the engine: dense BLAS sums and possibly backward recursions), so the results differ
# by rounding only: about 1e-13 relative in the loss and 1e-15 ... 1e-12 absolute in the weights
# (the spec's independent re-implementation). Adam divides m by sqrt(v), which magnifies rounding for
# synapses with tiny gradients, and the differences grow over iterations; 1e-9 leaves three orders of
# magnitude of room for that, while every known modelling mistake is far larger (e.g. the missing
# L(T-1) term of spec section 6.2 gives ~1e-6 in W_in after 3 iterations, a wrong surrogate or
# timing gives > 1e-3).
LOSS_RTOL = 1e-9  # max |loss_engine - loss_nest| / |loss_nest| over all sequences
WEIGHT_ATOL = 1e-9  # max |W_engine - W_nest| per matrix (weights are O(0.1), so ~1e-8 relative)
# Spikes are compared exactly: a spike is a threshold crossing, and any flip changes everything after it.

WEIGHT_MATRICES = ["w_in_rec", "w_rec_rec", "w_rec_out"]

# The configurations. "nest" holds nest_export.py options (argparse dest names); anything not set
# is the tutorial's default. The engine gets the same values through engine_args().
CONFIGS = [
    ("seed", "the tutorial: ALIF, Adam, 5 iterations", {}),
    ("lif", "non-adaptive eprop_iaf_bsshslm_2020", {"model": "lif"}),
    ("gradient_descent", "plain gradient descent, eta 5e-3", {"optimizer": "gradient_descent"}),
    ("batch2", "batch_size 2 (consecutive sequences, one Adam step per batch)", {"batch_size": 2}),
    ("batch4", "batch_size 4, 3 iterations", {"batch_size": 4, "iterations": 3}),
    ("window600", "learning window = last 600 of 1258 steps", {"learning_window": 600}),
    ("average_gradient", "average_gradient = True (gradient / learning window)", {"average_gradient": True}),
    ("seed7_rec50_iter20", "seed 7, 50 recurrent neurons, 20 iterations", {"seed": 7, "n_rec": 50, "iterations": 20}),
]
QUICK = 2  # --quick runs only the first QUICK configurations

# nest_export.py defaults, needed to fill in the engine's options
DEFAULTS = {
    "seed": 1, "n_in": 100, "n_rec": 200, "n_out": 2, "iterations": 5, "batch_size": 1, "model": "alif",
    "optimizer": "adam", "eta": 5e-3, "sequence": 1258, "learning_window": None, "average_gradient": False,
    "c_reg": 150.0, "f_target": 20.0, "surrogate": "piecewise_linear",
}


def full_config(overrides):
    cfg = dict(DEFAULTS, **overrides)
    if cfg["learning_window"] is None:
        cfg["learning_window"] = cfg["sequence"]
    return cfg


def nest_args(cfg):
    """Command-line options of nest_export.py for one configuration."""
    out = []
    for key, value in cfg.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if value:
                out.append(flag)
        else:
            out += [flag, str(value)]
    return out


def engine_args(cfg):
    """Command-line options of the Swift engine for one configuration (its spelling differs a bit)."""
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
        "--seed", str(cfg["seed"]),
    ]
    if cfg["average_gradient"]:
        out.append("--average-gradient")
    return out


# ---------------------------------------------------------------------------------------------
# comparison


def load(folder, name):
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"missing {path}")
    return np.load(path)


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


def first_spike_difference(nest_sp, eng_sp):
    """First (stamp, neuron, which side has it) where the two sorted spike lists differ, or None."""
    a = list(zip(*[x.tolist() for x in nest_sp]))
    b = list(zip(*[x.tolist() for x in eng_sp]))
    for i in range(max(len(a), len(b))):
        ea = a[i] if i < len(a) else None
        eb = b[i] if i < len(b) else None
        if ea != eb:
            # the smaller event is the one missing on the other side
            if eb is None or (ea is not None and ea < eb):
                return ea[0], ea[1], "only in NEST"
            return eb[0], eb[1], "only in engine"
    return None


def compare(nest_dir, eng_dir, cfg):
    """Compare one engine run with its NEST export. Returns (ok, row dict, list of problems)."""
    n_iter, batch, seq = cfg["iterations"], cfg["batch_size"], cfg["sequence"]
    problems = []
    row = {}

    # loss: NEST's loss.npy is per sequence; the engine has loss_per_sequence [iterations, batch]
    # and loss = its mean over the batch
    loss_nest = load(nest_dir, "loss.npy").reshape(n_iter, batch)
    loss_eng_seq = np.asarray(load(eng_dir, "loss_per_sequence.npy"), dtype=np.float64)
    loss_eng = np.asarray(load(eng_dir, "loss.npy"), dtype=np.float64)
    if loss_eng_seq.shape != (n_iter, batch) or loss_eng.shape != (n_iter,):
        problems.append(f"loss shapes {loss_eng_seq.shape}/{loss_eng.shape}, expected ({n_iter}, {batch})/({n_iter},)")
        row["loss_rel"] = float("nan")
    else:
        rel_seq = np.abs(loss_eng_seq - loss_nest) / np.abs(loss_nest)
        rel_mean = np.abs(loss_eng - loss_nest.mean(axis=1)) / np.abs(loss_nest.mean(axis=1))
        row["loss_rel"] = float(max(rel_seq.max(), rel_mean.max()))
        if not row["loss_rel"] <= LOSS_RTOL:  # also catches NaN
            it, b = np.unravel_index(np.argmax(rel_seq), rel_seq.shape)
            problems.append(f"loss rel. diff {row['loss_rel']:.3g} > {LOSS_RTOL:g} (worst sequence: iteration "
                            f"{it}, batch element {b}: NEST {float(loss_nest[it, b])!r}, engine {float(loss_eng_seq[it, b])!r})")

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

    # recurrent spikes, exactly
    n_seq = n_iter * batch
    sp_nest = training_spikes(nest_dir, n_seq, seq)
    sp_eng = training_spikes(eng_dir, n_seq, seq)
    row["spikes"] = f"{len(sp_nest[0])}/{len(sp_eng[0])}"
    first = first_spike_difference(sp_nest, sp_eng)
    if first is None:
        row["spikes"] += " equal"
    else:
        stamp, neuron, side = first
        k, s = divmod(stamp - 3, seq)  # sequence index, step in the sequence
        where = f"iteration {k // batch}" + (f" (batch element {k % batch})" if batch > 1 else "")
        row["spikes"] += f" first diff: it {k // batch} step {s} neuron {neuron}"
        problems.append(f"spikes differ first at {where}, step {s}, neuron {neuron} (stamp {stamp} ms, {side}); "
                        f"NEST {len(sp_nest[0])} spikes, engine {len(sp_eng[0])}")
    return not problems, row, problems


# ---------------------------------------------------------------------------------------------
# self-test: a NEST export rewritten as the engine would write it, then perturbed


def fake_engine_output(nest_dir, out_dir, cfg, perturb=None):
    """Write what a perfect engine would write for this NEST export, optionally perturbed."""
    os.makedirs(out_dir, exist_ok=True)
    n_iter, batch, seq = cfg["iterations"], cfg["batch_size"], cfg["sequence"]
    loss_seq = load(nest_dir, "loss.npy").reshape(n_iter, batch).copy()
    weights = {name: load(nest_dir, f"{name}_final.npy").copy() for name in WEIGHT_MATRICES}
    times, senders = training_spikes(nest_dir, n_iter * batch, seq)
    times, senders = times.astype(np.float64), senders.astype(np.int32)
    if perturb == "loss":
        loss_seq[-1, -1] *= 1.0 + 10 * LOSS_RTOL
    elif perturb == "weight":
        weights["w_rec_rec"][3, 7] += 10 * WEIGHT_ATOL
    elif perturb == "spike":  # move the 10th spike to another neuron
        senders[10] = (senders[10] + 1) % cfg["n_rec"]
    elif perturb == "missing_spike":
        times, senders = np.delete(times, 20), np.delete(senders, 20)
    np.save(os.path.join(out_dir, "loss_per_sequence.npy"), loss_seq)
    np.save(os.path.join(out_dir, "loss.npy"), loss_seq.mean(axis=1))
    for name, w in weights.items():
        np.save(os.path.join(out_dir, f"{name}_final.npy"), w)
    np.save(os.path.join(out_dir, "spikes_rec_times_ms.npy"), times[::-1])  # unsorted on purpose
    np.save(os.path.join(out_dir, "spikes_rec_senders.npy"), senders[::-1])


def self_test(nest_dir, run_dir, cfg):
    """Returns (table row of the exact copy, problems with the comparison code itself (empty = fine))."""
    problems = []
    exact_row = {}
    for perturb in [None, "loss", "weight", "spike", "missing_spike"]:
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
    return exact_row, problems


# ---------------------------------------------------------------------------------------------


def run_cmd(cmd, log_path):
    """Run a command, output to log_path; returns (ok, seconds)."""
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        log.write("$ " + shlex.join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    return proc.returncode == 0, time.perf_counter() - t0


def tail(path, n=15):
    with open(path) as f:
        return "".join(f.readlines()[-n:])


def run_configs(configs, work, engine, self_test_only, extra_engine_args=()):
    """Export, run and compare every configuration; returns the result tuples."""
    # The engine records only the first and last iteration unless asked for all.
    extra = ["--record-iterations", "all"] + list(extra_engine_args)
    results = []  # (name, ok, row, problems, t_nest, t_engine)
    for name, what, overrides in configs:
        cfg = full_config(overrides)
        folder = os.path.join(work, name)
        nest_dir, eng_dir = os.path.join(folder, "nest"), os.path.join(folder, "engine")
        os.makedirs(folder, exist_ok=True)
        for stale in (nest_dir, eng_dir):  # a --keep folder from an earlier run (the engine refuses a full --out)
            shutil.rmtree(stale, ignore_errors=True)
        print(f"[{name}] {what}", flush=True)

        cmd = [sys.executable, NEST_EXPORT, "--out", nest_dir, "--no-recordings", "--quiet"] + nest_args(cfg)
        ok, t_nest = run_cmd(cmd, os.path.join(folder, "nest.log"))
        if not ok:
            results.append((name, False, {}, ["NEST export failed:\n" + tail(os.path.join(folder, "nest.log"))],
                            t_nest, 0.0))
            continue

        if self_test_only:
            row, problems = self_test(nest_dir, folder, cfg)
            results.append((name, not problems, row, problems, t_nest, 0.0))
            continue

        cmd = [engine, "--init", nest_dir, "--out", eng_dir, "--precision", "double"] + engine_args(cfg) + extra + ["--quiet"]
        ok, t_eng = run_cmd(cmd, os.path.join(folder, "engine.log"))
        if not ok:
            results.append((name, False, {}, ["engine failed:\n" + tail(os.path.join(folder, "engine.log"))],
                            t_nest, t_eng))
            continue
        try:
            ok, row, problems = compare(nest_dir, eng_dir, cfg)
        except (OSError, ValueError) as e:  # missing or malformed engine output
            ok, row, problems = False, {}, [f"engine output unusable: {e}"]
        results.append((name, ok, row, problems, t_nest, t_eng))

    return results


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"only the first {QUICK} configurations")
    p.add_argument("--engine", default=DEFAULT_ENGINE, help="path of the eprop-dense executable")
    p.add_argument("--keep", metavar="DIR", help="keep NEST exports and engine runs in DIR/<config>/{nest,engine}")
    p.add_argument("--only", metavar="NAMES", help="comma-separated configuration names to run")
    p.add_argument("--engine-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for the engine, repeatable (e.g. --engine-arg=--gradient --engine-arg=traces)")
    p.add_argument("--self-test", action="store_true",
                   help="do not run the engine; test the comparison against exact and perturbed NEST copies")
    args = p.parse_args()

    configs = CONFIGS[:QUICK] if args.quick else CONFIGS
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - {c[0] for c in CONFIGS}
        if unknown:
            p.error(f"unknown configuration(s) {sorted(unknown)}; known: {[c[0] for c in CONFIGS]}")
        configs = [c for c in CONFIGS if c[0] in wanted]

    engine = os.path.abspath(args.engine)
    if not args.self_test and not os.access(engine, os.X_OK):
        sys.exit(f"crossval: engine not found at {engine}\n"
                 f"Build it first:  swift build -c release   (in {REPO_ROOT}), or pass --engine PATH.")

    work = os.path.abspath(args.keep) if args.keep else tempfile.mkdtemp(prefix="eprop-crossval-")
    os.makedirs(work, exist_ok=True)
    print(f"crossval: {len(configs)} configuration(s), work folder {work}"
          + (" (self-test, no engine)" if args.self_test else f", engine {engine}"))
    print(f"tolerances: loss rel {LOSS_RTOL:g}, weights abs {WEIGHT_ATOL:g}, spikes exact\n")

    try:
        results = run_configs(configs, work, engine, args.self_test, args.engine_arg)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    # --- table ---------------------------------------------------------------------------------------
    fmt = lambda x: "-" if x is None else f"{x:.2e}"  # noqa: E731
    header = f"{'configuration':<20} {'result':<6} {'loss rel':>9} {'w_in_rec':>9} {'w_rec_rec':>9} {'w_rec_out':>9}  " \
             f"{'spikes NEST/engine':<24} {'t NEST':>7} {'t eng':>7}"
    print("\n" + header + "\n" + "-" * len(header))
    for name, ok, row, problems, t_nest, t_eng in results:
        print(f"{name:<20} {'PASS' if ok else 'FAIL':<6} {fmt(row.get('loss_rel')):>9} {fmt(row.get('w_in_rec')):>9} "
              f"{fmt(row.get('w_rec_rec')):>9} {fmt(row.get('w_rec_out')):>9}  {row.get('spikes', '-'):<24} "
              f"{t_nest:6.1f}s {t_eng:6.1f}s")
    failures = [r for r in results if not r[1]]
    for name, _, _, problems, _, _ in failures:
        print(f"\n{name}: FAIL")
        for line in problems:
            print("  - " + line.rstrip().replace("\n", "\n    "))
    if args.keep:
        print(f"\noutputs kept in {work}")
    print(f"\n{len(results) - len(failures)} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
