#!/usr/bin/env python3
"""Side-by-side benchmark of NEST 3.10's online e-prop generation: NEST against eprop-dense, per training sequence.

Both engines train the same network from the same initial state: NEST builds it with
notebooks-data/crossval/nest_online_export.py's run() (the script's outputs are not changed: this script only times
NEST's own Simulate timer, kernel status `time_simulate`), and eprop-dense trains that export through the command line
(eprop-dense --init EXPORT --out RUN --force --quiet --precision float|double --record-iterations none). NEST and
eprop-dense alternate run by run; a row's ratio is the median of the pair-by-pair ratios (NEST run i against the
eprop-dense run right after it), as Benchmarks/side_by_side.py does for the legacy generation. One thread each, and
two threads each.

    .venv/bin/python Benchmarks/online_side_by_side.py [--rounds N] [--quick] [--only GROUP[,GROUP]] [--out DIR]
    .venv/bin/python Benchmarks/online_side_by_side.py --render Benchmarks/results/online_side_by_side-DATE.json

Per training sequence means: NEST's Simulate wall time (kernel status `time_simulate`: the whole simulation, its
setup and Python excluded) divided
by the iterations; eprop-dense's run.json per_iteration_mean_s (the simulation alone, divided the same way). Both
include the steps of the forced final update after the last iteration.

Groups:
  example   NEST's online sine-wave example (eprop_supervised_regression_sine-waves.py's setup: eprop_iaf, 100 inputs,
            100 recurrent, 1 readout, T = 1000 steps, cutoff 100 ms, gradient descent once per spike, forced final
            update), 5 iterations: eprop-dense Float64 (checked bitwise against NEST's loss and final weights) and
            Float32. Target (issue 12): >= 100x NEST per training sequence.
  nmnist    NEST's N-MNIST example network (eprop_supervised_classification_neuromorphic_mnist.py, built by
            notebooks-data/crossval/nest_online_nmnist.py: n_in 1196 = 34 x 34 x 2 pixels minus its 1116-pixel
            blocklist, n_rec 150, n_out 10, sequence 300 steps, sparse connectivity 25 % / 1 % / 100 %, GD per spike)
            on a synthetic N-MNIST folder (notebooks-data/nmnist_synthetic.py: NMNIST_DATA below, N-MNIST's file
            format), 2 training and 1 test iteration of groups of 10 samples: 30 sequences.
            Target (issue 12): >= 100x NEST per training sequence.
  threads   the example and the N-MNIST network with 2 threads each (NEST: total_num_virtual_procs 2; eprop-dense:
            --threads 2, which starts no helper for networks below 131 072 synapses, these two among them: it then runs
            on one thread), Float64 and Float32.
  large     a network above eprop-dense's threshold for helper threads: NEST's test setup (eprop_iaf, Adam every step,
            cutoff 100) with 600 inputs and 600 recurrent neurons (720 600 synapses), T 100, 3 iterations; one thread
            each and 2 threads each.
  modes     eprop-dense alone: what the exact lazy semantics cost against the every-step path (spec §5.3). On the
            example's network and on the N-MNIST-sized one: (a) NEST's settings (cutoff 100, per spike), exact
            algorithm; (b) cutoff infinite, optimize_each_step, exact algorithm; (c) the same, every-step algorithm
            (export key "algorithm": "every-step"). (b) and (c) must give byte-equal outputs. Float64, alternating.

Writes online_side_by_side-<date>[-only-<groups>].{md,json} to --out (default Benchmarks/results): the machine,
the load average before every timed run, the exact commands, every pair. Run it on an otherwise idle machine:
the load is recorded and a warning printed above 0.5.
"""
import argparse
import datetime
import importlib.util
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINE = os.path.join(ROOT, ".build", "release", "eprop-dense")
NEST_ONLINE_EXPORT = os.path.join(ROOT, "notebooks-data", "crossval", "nest_online_export.py")
SELF = os.path.abspath(__file__)

TARGET_RATIO = 100.0  # issue 12: per training sequence, one thread each
GROUPS = ("example", "nmnist", "threads", "large", "modes")
# run() arguments of nest_online_export.py (its --config keys).
EXAMPLE = {"model": "eprop_iaf", "n": 100, "T": 1000, "iterations": 5, "setup": "example"}
# Large enough for eprop-dense's helper threads (nest_online_export.run's arguments).
LARGE = {"model": "eprop_iaf", "n": 600, "T": 100, "iterations": 3, "target_periods": [100, 50, 33, 20]}
# NEST's N-MNIST example (nest_online_nmnist.run's arguments): its sizes and sparsity, groups of 10 samples.
NMNIST = {"setup": "nmnist", "model": "eprop_iaf", "n_rec": 150, "group_size": 10, "n_iter_train": 2, "n_iter_test": 1}
# The synthetic N-MNIST folder it trains on (nmnist_synthetic.generate's arguments): 4000 events per sample.
NMNIST_DATA = {"per_class_train": 5, "per_class_test": 5, "n_events": 4000, "seed": 7}
NEST_NMNIST = os.path.join(ROOT, "notebooks-data", "crossval", "nest_online_nmnist.py")


def sequences(config):
    """Training sequences a configuration simulates."""
    if config.get("setup") == "nmnist":
        return (config["n_iter_train"] + config["n_iter_test"]) * config["group_size"]
    return config["iterations"]


def with_threads(config, threads):
    return dict(config, threads=threads)
LOAD_WARNING = 0.5


def _side_by_side():
    """Benchmarks/side_by_side.py's helpers (run_measured, machine, fmt), loaded by path."""
    spec = importlib.util.spec_from_file_location("side_by_side", os.path.join(ROOT, "Benchmarks", "side_by_side.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sbs = _side_by_side()
fmt = sbs.fmt
median = statistics.median


def load1():
    return os.getloadavg()[0]


def nest_worker(config_json, out):
    """Runs in a fresh process: nest_online_export.run() or nest_online_nmnist.run(); writes NEST's own Simulate timer
    (kernel status `time_simulate`, the wall time inside Simulate, summed over the calls) to OUT/simulate_timing.json."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import nest

    kwargs = json.loads(config_json)
    if kwargs.get("setup") == "nmnist":
        spec = importlib.util.spec_from_file_location("nest_online_nmnist", NEST_NMNIST)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        kwargs.pop("setup")
        data = kwargs.pop("data")
        # NEST's timer summed over the script's Simulate calls (kernel status time_simulate is the last call's).
        simulate_s = module.run(out, data, **kwargs)["simulate_s"]
    else:
        spec = importlib.util.spec_from_file_location("nest_online_export", NEST_ONLINE_EXPORT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = kwargs.pop("model")
        module.run(model, out, **kwargs)  # one Simulate call
        simulate_s = None
    status = nest.GetKernelStatus()
    with open(os.path.join(out, "simulate_timing.json"), "w") as f:
        json.dump({"simulate_s": simulate_s if simulate_s is not None else float(status["time_simulate"]),
                   "threads": status["total_num_virtual_procs"],
                   "biological_time_ms": status["biological_time"]}, f)


def nest_run(config, out):
    cmd = [sys.executable, SELF, "--nest-worker", json.dumps(config), out]
    load = load1()
    wall, peak = sbs.run_measured(cmd)
    with open(os.path.join(out, "simulate_timing.json")) as f:
        t = json.load(f)
    assert t["threads"] == config.get("threads", 1), t
    return {"cmd": cmd, "wall_s": wall, "peak_mb": peak, "load1": load, "simulate_s": t["simulate_s"],
            "s_per_sequence": t["simulate_s"] / sequences(config)}


def engine_run(init, out, precision, per_iteration=1, threads=1):
    """eprop-dense on an export; `per_iteration`: sequences in one iteration (the N-MNIST example's group size)."""
    cmd = [ENGINE, "--init", init, "--out", out, "--force", "--quiet", "--precision", precision,
           "--record-iterations", "none", "--threads", str(threads)]
    load = load1()
    wall, peak = sbs.run_measured(cmd)
    with open(os.path.join(out, "run.json")) as f:
        r = json.load(f)
    return {"cmd": cmd, "wall_s": wall, "peak_mb": peak, "load1": load,
            "s_per_sequence": r["timings"]["per_iteration_mean_s"] / per_iteration, "out": out}


def same_as_nest(nest_dir, run_dir):
    """Float64 against NEST: loss and final weights bitwise equal? (A short text.)"""
    problems = []
    for name in ("loss", "w_in_rec_final", "w_rec_rec_final", "w_rec_out_final"):
        a, b = np.load(os.path.join(nest_dir, name + ".npy")), np.load(os.path.join(run_dir, name + ".npy"))
        if a.shape != b.shape or not np.array_equal(a, b):
            d = np.max(np.abs(a - b)) if a.shape == b.shape else "shape"
            problems.append(f"{name} differs (max {d})")
    return "bitwise equal to NEST (loss, final weights)" if not problems else "; ".join(problems)


def byte_equal(dir_a, dir_b, names=("loss", "w_in_rec_final", "w_rec_rec_final", "w_rec_out_final", "spikes_rec_senders",
                                    "spikes_rec_times_ms")):
    return all(np.array_equal(np.load(os.path.join(dir_a, n + ".npy")), np.load(os.path.join(dir_b, n + ".npy")))
               for n in names)


def variant(export, out, algorithm=None, no_cutoff=False):
    """A copy of an export folder with params.json edited (eprop-dense only)."""
    shutil.copytree(export, out, dirs_exist_ok=True)
    path = os.path.join(out, "params.json")
    with open(path) as f:
        p = json.load(f)
    if no_cutoff:
        p["params_rec"]["eprop_isi_trace_cutoff"] = float("inf")
        p["params_out"]["eprop_isi_trace_cutoff"] = float("inf")
        p["optimizer"]["optimize_each_step"] = True
    if algorithm:
        p["algorithm"] = algorithm
    with open(path, "w") as f:
        json.dump(p, f, indent=1)
    return out


def pair_row(what, pairs, precision, check=None):
    ratios = [n["s_per_sequence"] / e["s_per_sequence"] for n, e in pairs]
    row = {"what": what, "precision": precision, "nest": median(n["s_per_sequence"] for n, _ in pairs),
           "eprop": median(e["s_per_sequence"] for _, e in pairs), "ratio": median(ratios), "ratios": ratios,
           "target": TARGET_RATIO, "target_source": "issue 12",
           "load1": [max(n["load1"], e["load1"]) for n, e in pairs],
           "nest_cmd": pairs[0][0]["cmd"], "eprop_cmd": pairs[0][1]["cmd"]}
    notes = [f"pair ratios {', '.join(fmt(x) for x in ratios)}",
             f"whole-run wall {fmt(median(n['wall_s'] for n, _ in pairs))} s vs {fmt(median(e['wall_s'] for _, e in pairs))} s",
             f"peak {fmt(max(n['peak_mb'] for n, _ in pairs))} vs {fmt(max(e['peak_mb'] for _, e in pairs))} MB",
             f"load average (1 min) before the runs {', '.join(f'{x:.2f}' for x in row['load1'])}"]
    if check:
        notes.append(check)
    row["notes"] = notes
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="NEST/eprop-dense pairs per row")
    ap.add_argument("--quick", action="store_true", help="one round")
    ap.add_argument("--only", help="comma-separated groups: " + ", ".join(GROUPS))
    ap.add_argument("--out", default=os.path.join(ROOT, "Benchmarks", "results"))
    ap.add_argument("--render", metavar="JSON", help="print the Markdown table of a results file")
    ap.add_argument("--nest-worker", nargs=2, metavar=("CONFIG", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.nest_worker:
        nest_worker(*a.nest_worker)
        return
    if a.render:
        with open(a.render) as f:
            print(table(json.load(f)))
        return
    groups = GROUPS if not a.only else tuple(g.strip() for g in a.only.split(","))
    for g in groups:
        if g not in GROUPS:
            ap.error(f"unknown group {g}")
    rounds = 1 if a.quick else a.rounds
    if not os.path.exists(ENGINE):
        sys.exit(f"{ENGINE} missing: swift build -c release")
    t_start = time.perf_counter()
    results = {"date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "command": [os.path.relpath(SELF, ROOT)] + sys.argv[1:], "machine": sbs.machine(), "rows": [],
               "groups": list(groups), "only": bool(a.only), "rounds": rounds,
               "engine_git": subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                                            text=True).stdout.strip()}
    if results["machine"]["load_average_at_start"][0] > LOAD_WARNING:
        print(f"warning: load average {results['machine']['load_average_at_start'][0]:.2f} > {LOAD_WARNING}: "
              "the timings are not those of an idle machine", file=sys.stderr)
    tmp = tempfile.mkdtemp(prefix="eprop-online-bench-")
    rows = results["rows"]
    try:
        exports = {}
        data = os.path.join(tmp, "nmnist-data")
        spec = importlib.util.spec_from_file_location("nmnist_synthetic", os.path.join(ROOT, "notebooks-data", "nmnist_synthetic.py"))
        synthetic = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(synthetic)
        synthetic.generate(data, **NMNIST_DATA)
        nmnist = dict(NMNIST, data=data)
        example_what = ("NEST's online sine-wave example (eprop_iaf, 100 in, 100 rec, 1 out, T 1000, cutoff 100, GD per spike), "
                        "5 iterations, s per training sequence")
        nmnist_what = ("NEST's N-MNIST example (1196 in, 150 rec, 10 out, T 300, sparse 25 %/1 %/100 %, GD per spike) on "
                       f"synthetic N-MNIST files ({NMNIST_DATA['n_events']} events each), 30 sequences, s per training sequence")
        large_what = ("600 in, 600 rec, 1 out (NEST's test setup: Adam every step, cutoff 100), T 100, 3 iterations, "
                      "s per training sequence")
        for name, group, config, what in (
                ("example", "example", EXAMPLE, example_what + ", 1 thread each"),
                ("nmnist", "nmnist", nmnist, nmnist_what + ", 1 thread each"),
                ("example_2threads", "threads", with_threads(EXAMPLE, 2), example_what + ", 2 threads each"),
                ("nmnist_2threads", "threads", with_threads(nmnist, 2), nmnist_what + ", 2 threads each"),
                ("large", "large", LARGE, large_what + ", 1 thread each"),
                ("large_2threads", "large", with_threads(LARGE, 2), large_what + ", 2 threads each")):
            if group not in groups and not ("modes" in groups and name in ("example", "nmnist")):
                continue
            pairs = {"double": [], "float": []}
            for r in range(rounds if group in groups else 1):
                n_dir = os.path.join(tmp, f"nest_{name}_{r}")
                nr = nest_run(config, n_dir)
                exports.setdefault(name, n_dir)
                if group not in groups:
                    break
                for precision in ("double", "float"):
                    er = engine_run(n_dir, os.path.join(tmp, f"eng_{name}_{precision}_{r}"), precision,
                                    config.get("group_size", 1), config.get("threads", 1))
                    pairs[precision].append((nr, er))
                    print(f"{name} round {r} {precision}: NEST {nr['s_per_sequence']:.4f} s/sequence, eprop-dense "
                          f"{er['s_per_sequence'] * 1e3:.3f} ms/sequence, ratio {nr['s_per_sequence'] / er['s_per_sequence']:.1f}x "
                          f"(load {er['load1']:.2f})", flush=True)
            if group in groups:
                check = same_as_nest(exports[name], pairs["double"][0][1]["out"])
                rows.append(pair_row(what + ", Float64", pairs["double"], "double", check))
                rows.append(pair_row(what + ", Float32", pairs["float"], "float"))
        if "modes" in groups:
            for name, label in (("example", "the example's network"), ("nmnist", "the N-MNIST network")):
                export = exports[name]
                a_dir = export
                b_dir = variant(export, os.path.join(tmp, f"{name}_nocut_exact"), no_cutoff=True)
                c_dir = variant(export, os.path.join(tmp, f"{name}_nocut_everystep"), "every-step", no_cutoff=True)
                runs = {"a": [], "b": [], "c": []}
                for r in range(max(rounds, 3)):
                    for key, d in (("a", a_dir), ("b", b_dir), ("c", c_dir)):
                        runs[key].append(engine_run(d, os.path.join(tmp, f"mode_{name}_{key}_{r}"), "double",
                                                    NMNIST["group_size"] if name == "nmnist" else 1))
                equal = byte_equal(runs["b"][0]["out"], runs["c"][0]["out"])
                a_t, b_t, c_t = (median(x["s_per_sequence"] for x in runs[k]) for k in "abc")
                b_over_c = [b["s_per_sequence"] / c["s_per_sequence"] for b, c in zip(runs["b"], runs["c"])]
                a_over_c = [x["s_per_sequence"] / c["s_per_sequence"] for x, c in zip(runs["a"], runs["c"])]
                rows.append({
                    "what": f"exact lazy semantics vs every-step, {label}, Float64, eprop-dense s per sequence",
                    "modes": True, "exact_nest_settings": a_t, "exact_no_cutoff": b_t, "every_step": c_t,
                    "exact_no_cutoff_over_every_step": median(b_over_c), "exact_nest_settings_over_every_step": median(a_over_c),
                    "byte_equal_b_c": equal, "load1": [x["load1"] for k in "abc" for x in runs[k]],
                    "cmds": {k: runs[k][0]["cmd"] for k in "abc"},
                    "notes": [f"(a) NEST's settings (cutoff 100, GD per spike), exact: {fmt(a_t)} s; (b) cutoff inf, "
                              f"optimize_each_step, exact: {fmt(b_t)} s; (c) the same, every-step: {fmt(c_t)} s",
                              f"(b)/(c) {fmt(median(b_over_c))} (pairs {', '.join(fmt(x) for x in b_over_c)}): the cost of "
                              f"the lazy bookkeeping where both are exact; (a)/(c) {fmt(median(a_over_c))}",
                              f"(b) and (c) outputs byte-equal (loss, spikes, final weights): {'yes' if equal else 'NO'}",
                              f"load average (1 min) max {max(x['load1'] for k in 'abc' for x in runs[k]):.2f}"]})
                print(rows[-1]["notes"][0], rows[-1]["notes"][1], flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["wall_s"] = time.perf_counter() - t_start
    date = results["date_utc"][:10]
    suffix = "-only-" + "-".join(groups) if a.only else ""
    os.makedirs(a.out, exist_ok=True)
    base = os.path.join(a.out, f"online_side_by_side-{date}{suffix}")
    for r in rows:
        for key in [k for k in r if k.endswith("_cmd")]:
            r[key] = [os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in r[key]]
    with open(base + ".json", "w") as f:
        json.dump(results, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(table(results))
    print(table(results))
    print(f"wrote {base}.md and .json")


def table(results):
    m = results["machine"]
    lines = [f"# Side-by-side, online e-prop generation: NEST 3.10 vs eprop-dense ({results['date_utc']})", "",
             f"Machine: {m.get('lscpu', {}).get('Model name', '?')}, {m['cpus']} CPUs, {m['platform']}; "
             f"load average at start {m['load_average_at_start'][0]:.2f} (the 1-minute load before every timed run is in "
             "the notes and the JSON; it counts this benchmark's own runs: NEST's runs of several seconds at one core "
             "raise it toward 1 on an otherwise idle machine). eprop-dense: " + results.get("engine_git", "?") + ".", "",
             f"Command: `{' '.join(results['command'])}` ({results['wall_s']:.0f} s, {results['rounds']} rounds)", ""]
    if results.get("only"):
        lines += [f"Only the groups {', '.join(results['groups'])} (--only): not a full result.", ""]
    lines += ["Per training sequence: NEST's Simulate time / iterations against eprop-dense's simulation time / "
              "iterations (run.json per_iteration_mean_s); ratios are medians of the pair-by-pair ratios.", "",
              "| measurement | NEST s/sequence | eprop-dense s/sequence | ratio | target | met | notes |",
              "|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        if r.get("modes"):
            continue
        met = "yes" if r["ratio"] >= r["target"] else f"NO ({r['ratio'] / r['target']:.3g} of target)"
        lines.append(f"| {r['what']} | {fmt(r['nest'])} | {fmt(r['eprop'])} | {fmt(r['ratio'])}x | >= {fmt(r['target'])} "
                     f"({r['target_source']}) | {met} | {'; '.join(r['notes'])} |")
    modes = [r for r in results["rows"] if r.get("modes")]
    if modes:
        lines += ["", "What the exact lazy semantics cost against the every-step path (eprop-dense alone, Float64, "
                  "s per sequence, medians):", "",
                  "| network | (a) exact, NEST's settings | (b) exact, cutoff inf, per step | (c) every-step | (b)/(c) | "
                  "(a)/(c) | (b) = (c) byte for byte |", "|---|---|---|---|---|---|---|"]
        for r in modes:
            lines.append(f"| {r['what']} | {fmt(r['exact_nest_settings'])} | {fmt(r['exact_no_cutoff'])} | {fmt(r['every_step'])} | "
                         f"{fmt(r['exact_no_cutoff_over_every_step'])} | {fmt(r['exact_nest_settings_over_every_step'])} | "
                         f"{'yes' if r['byte_equal_b_c'] else 'NO'} |")
    lines += ["", "Commands (first pair of each row; NEST: nest_online_export.py's run(), timed by NEST's `time_simulate`):", ""]
    for r in results["rows"]:
        cmds = r.get("cmds") or {k[:-4]: r[k] for k in r if k.endswith("_cmd")}
        for key, c in cmds.items():
            c = [os.path.relpath(x, ROOT) if isinstance(x, str) and x.startswith(ROOT) else x for x in c]
            lines.append(f"- {r['what']} ({key}): `{shlex.join(c)}`")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
