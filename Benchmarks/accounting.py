#!/usr/bin/env python3
"""Where the time of one training iteration goes, against what this machine can do (issue 15).

For the tutorial (n_rec 200, batch 1) and NEST's evidence-accumulation network (batch 32), both
Float32 on one thread, this script
1. measures the machine in the same run with likwid-bench (Debian package `likwid`): the
   single-precision FMA peak (`peakflops_sp_avx_fma`) and the load and store bandwidth of one core
   (`load_avx`, `store_avx`) in L1, L2, L3 and DRAM (working sets of half of each cache level per
   core, DRAM 1 GB);
2. runs eprop-dense with `--profile-phases` (each phase of every iteration timed) and, alternating,
   without it (the overhead of the clock reads), `--rounds` times each;
3. counts each phase's work from the shapes and the measured spike counts (run.json, rate_*_hz.npy):
   flops, and bytes read and written at the cache level its arrays live in (the level whose size
   per core holds them); and
4. gives each phase's bound, max(flops / peak, max over levels of reads / load bandwidth +
   writes / store bandwidth): a lower limit on its time on this machine. The sum of the bounds
   is "the limit"; the table reports measured / limit per phase and for the iteration.

    .venv/bin/python Benchmarks/accounting.py [--rounds 3] [--out Benchmarks/results]

Run it alone (2 cores: nothing else may run). About 1.5 minutes. Writes accounting-<date>.md and
.json. The work model is written out in `phase_work`; it counts the arithmetic of the sparse
kernel and the traffic a perfect implementation cannot avoid (weights rows per spike, histories
once written and once read, optimizer arrays once read and written), not the engine's own
instructions, so measured / limit is how far the engine is from this machine's limit.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINE = os.path.join(ROOT, ".build", "release", "eprop-dense")

# Issue 15: the goal is within this factor of the limit.
TARGET_FACTOR = 2.0

WORKLOADS = {
    # name: (engine options, iterations): the tutorial from the engine's seed 1 (300 iterations, so
    # the rate has risen from its initial 2.6 Hz towards the trained network's), and NEST's
    # evidence-accumulation example at its batch of 32.
    "tutorial": (["--task", "infinite-loop"], 300),
    "evidence accumulation": (["--task", "evidence-accumulation"], 20),
}

LEVELS = ["L1", "L2", "L3", "DRAM"]

# The phases timed once per time step (a clock read each); the others are timed a few times per sequence.
PER_STEP = ["synapticInput", "neurons", "readout", "learningSignal", "backwardScan", "gradientScatter"]

PHASES = ["synapticInput", "neurons", "readout", "learningSignal", "backwardScan", "gradientScatter",
          "readoutGradient", "loading", "exchange", "bookkeeping", "optimizer", "checks"]
PHASE_TITLES = {
    "synapticInput": "forward: synaptic input (weight rows gathered per spike)",
    "neurons": "forward: neuron update (membrane, adaptation, surrogate, spikes)",
    "readout": "forward: readout and error",
    "learningSignal": "forward: learning signal L = B err",
    "backwardScan": "backward scan (per-neuron recursion, regularizer)",
    "gradientScatter": "gradient scatter (W~ rows added per spike, final transpose)",
    "readoutGradient": "readout gradient",
    "loading": "loading sequences",
    "exchange": "gradient exchange (one process: the shard sum)",
    "bookkeeping": "bookkeeping (losses, spike counts)",
    "optimizer": "optimizer (Adam, clipping, transposed copies)",
    "checks": "checks (NaN and infinity in V_m, gradients, weights)",
}


def cache_sizes():
    """Bytes per core of L1d, L2, L3 (sysfs; L3 shared by all cores counts whole)."""
    sizes = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    for d in sorted(os.listdir(base)):
        if not d.startswith("index"):
            continue
        read = lambda f: open(os.path.join(base, d, f)).read().strip()
        if read("type") == "Instruction":
            continue
        s = read("size")
        sizes[f"L{read('level')}"] = int(s[:-1]) * (1024 if s.endswith("K") else 1024 * 1024)
    return sizes


def likwid(test, size_bytes):
    """One likwid-bench kernel on one core (hardware thread 0) over `size_bytes`."""
    out = subprocess.run(["likwid-bench", "-t", test, "-w", f"S0:{size_bytes // 1024}kB:1"],
                         capture_output=True, text=True, check=True).stdout
    value = lambda key: float(re.search(rf"^{key}:\s+([0-9.e+]+)", out, re.M).group(1))
    return {"mbyte_s": value("MByte/s"), "mflop_s": value("MFlops/s")}


def measure_machine(caches):
    if shutil.which("likwid-bench") is None:
        sys.exit("accounting: likwid-bench is missing; install it with: apt-get install likwid")
    sets = {"L1": caches["L1"] // 2, "L2": caches["L2"] // 2, "L3": caches["L3"] // 4, "DRAM": 1 << 30}
    m = {"working_set_bytes": sets, "peak_flops": likwid("peakflops_sp_avx_fma", 16 * 1024)["mflop_s"] * 1e6,
         "load_bytes_per_s": {}, "store_bytes_per_s": {}}
    for level, size in sets.items():
        m["load_bytes_per_s"][level] = likwid("load_avx", size)["mbyte_s"] * 1e6
        m["store_bytes_per_s"][level] = likwid("store_avx", size)["mbyte_s"] * 1e6
    return m


def level_of(nbytes, caches):
    """The cache level whose size per core holds `nbytes` (the L3 is shared: all of it)."""
    for level in ("L1", "L2", "L3"):
        if nbytes <= caches[level]:
            return level
    return "DRAM"


def phase_work(c, caches):
    """Flops and bytes per iteration of each phase, from the shapes and spike counts in `c`.
    Returns {phase: {"flops": f, "read": {level: bytes}, "write": {level: bytes}}}."""
    T, n_in, n_rec, n_out, B, w = c["T"], c["n_in"], c["n_rec"], c["n_out"], c["B"], c["scalar"]
    s_in, s_rec = c["input_spikes_per_sequence"], c["recurrent_spikes_per_sequence"]
    spikes = s_in + s_rec
    weights = (n_in + n_rec) * n_rec * w                       # W_in^T and W_rec^T, the rows a spike reads
    histories = T * (n_in + 3 * n_rec + 3 * n_out) * w + T * (n_in + n_rec) * 4   # x, z, psi, L, u, err, y*, spike lists
    optimizer_arrays = 6 * (n_in + n_rec + n_out) * n_rec * w  # W, W^T, g, m, v (and the copy of W^T)
    lw, lh, lo = level_of(weights, caches), level_of(histories, caches), level_of(optimizer_arrays, caches)
    n_syn = (n_in + n_rec + n_out) * n_rec

    def work(flops, read=(), write=()):
        r, wr = {}, {}
        for level, b in read:
            r[level] = r.get(level, 0) + b
        for level, b in write:
            wr[level] = wr.get(level, 0) + b
        return {"flops": flops, "read": r, "write": wr}

    per_sequence = {
        # c += W^T row per presynaptic spike; c zeroed every step.
        "synapticInput": work(spikes * n_rec, read=[(lw, spikes * n_rec * w), ("L1", spikes * n_rec * w), (lh, spikes * 4)],
                              write=[("L1", spikes * n_rec * w + T * n_rec * w)]),
        # ~17 flops per neuron and step: membrane (7), adaptation (2), threshold and distance (3),
        # surrogate (4), spike test (1); state and constants in L1, psi and z written to the history.
        "neurons": work(17 * T * n_rec, read=[("L1", T * n_rec * (8 * w + 4))],
                        write=[("L1", T * n_rec * 3 * w), (lh, T * n_rec * 2 * w)]),
        "readout": work(s_rec * n_out + 10 * T * n_out, read=[("L1", s_rec * n_out * w)], write=[(lh, 2 * T * n_out * w)]),
        "learningSignal": work(2 * T * n_out * n_rec, read=[("L1", T * n_out * n_rec * 2 * w)], write=[(lh, T * n_rec * w)]),
        # ~14 flops per neuron and step; psi and L read back from the history.
        "backwardScan": work(14 * T * n_rec, read=[(lh, 2 * T * n_rec * w), ("L1", 7 * T * n_rec * w)],
                             write=[("L1", 4 * T * n_rec * w)]),
        # G^T row += W~ per presynaptic spike; then G += (G^T)^T once per sequence.
        "gradientScatter": work(spikes * n_rec + (n_in + n_rec) * n_rec,
                                read=[(lw, spikes * n_rec * w + 2 * weights), ("L1", spikes * n_rec * w)],
                                write=[(lw, spikes * n_rec * w + weights)]),
        "readoutGradient": work(3 * T * n_out + s_rec * n_out, read=[(lh, T * n_out * w)], write=[("L1", s_rec * n_out * w)]),
    }
    per_iteration = {
        # Adam: ~13 flops per weight (moments 7, step 6 with sqrt and division counted as one each);
        # reads g, m, v, W and writes m, v, W; the gradient's finish and zeroing; W^T refreshed.
        "optimizer": work(13 * n_syn, read=[(lo, 4 * n_syn * w + n_syn * w + (n_in + n_rec) * n_rec * w)],
                          write=[(lo, 3 * n_syn * w + 2 * n_syn * w + (n_in + n_rec) * n_rec * w)]),
        "checks": work(0, read=[(lo, 2 * n_syn * w), ("L1", B * n_rec * w)]),
    }
    out = {}
    for p in PHASES:
        if p in per_sequence:
            x = per_sequence[p]
            out[p] = {"flops": x["flops"] * B, "read": {k: v * B for k, v in x["read"].items()},
                      "write": {k: v * B for k, v in x["write"].items()}}
        else:
            out[p] = per_iteration.get(p, work(0))
    return out, {"weights": lw, "histories": lh, "optimizer_arrays": lo}


def bound(work, m):
    """Lower limit on a phase's time: its flops at the peak, or its traffic at each level."""
    times = [work["flops"] / m["peak_flops"]]
    for level in LEVELS:
        t = work["read"].get(level, 0) / m["load_bytes_per_s"][level] + work["write"].get(level, 0) / m["store_bytes_per_s"][level]
        times.append(t)
    return max(times)


def run_engine(options, iterations, out, profile):
    cmd = [ENGINE, "--out", out, "--force", "--quiet", "--iterations", str(iterations), "--threads", "1",
           "--precision", "float", "--record-iterations", "none"] + options + (["--profile-phases"] if profile else [])
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with open(os.path.join(out, "run.json")) as f:
        r = json.load(f)
    return cmd, r, np.load(os.path.join(out, "rate_rec_hz.npy")), np.load(os.path.join(out, "rate_in_hz.npy"))


def account(name, options, iterations, rounds, m, caches, work_dir):
    profiled, plain = [], []
    for i in range(rounds):
        profiled.append(run_engine(options, iterations, os.path.join(work_dir, f"{i}-p"), True))
        plain.append(run_engine(options, iterations, os.path.join(work_dir, f"{i}-u"), False))
    cmd, r, rate_rec, rate_in = profiled[0]
    cfg = r["config"]
    T, B = cfg["sequence"], cfg["optimizer"]["batchSize"]
    counts = {"T": T, "n_in": cfg["nIn"], "n_rec": cfg["nRec"], "n_out": cfg["nOut"], "B": B, "scalar": 4,
              "input_spikes_per_sequence": float(np.mean(rate_in)) * cfg["nIn"] * T / 1000,
              "recurrent_spikes_per_sequence": float(np.mean(rate_rec)) * cfg["nRec"] * T / 1000}
    work, levels = phase_work(counts, caches)
    plain_s = statistics.median(x[1]["timings"]["per_iteration_mean_s"] for x in plain)
    profiled_s = statistics.median(x[1]["timings"]["per_iteration_mean_s"] for x in profiled)
    # The clock reads' own cost, from the profiled and plain runs, taken out of each per-step phase
    # (one read per phase and step): what the phase costs in a run that is not profiled.
    per_read = max(0.0, (profiled_s - plain_s) / (len(PER_STEP) * B * T))
    rows = []
    for p in PHASES:
        t = statistics.median(x[1]["timings"]["phases_per_iteration_mean_s"][p] for x in profiled)
        corrected = max(0.0, t - B * T * per_read) if p in PER_STEP else t
        b = bound(work[p], m)
        rows.append({"phase": p, "title": PHASE_TITLES[p], "measured_s": t, "corrected_s": corrected, "bound_s": b,
                     "flops": work[p]["flops"], "read_bytes": work[p]["read"], "write_bytes": work[p]["write"]})
    return {"workload": name, "command": cmd, "plain_command": plain[0][0], "counts": counts, "levels": levels,
            "kernel": r.get("kernel"), "rows": rows, "clock_read_s": per_read,
            "profiled_sum_s": sum(x["measured_s"] for x in rows), "corrected_sum_s": sum(x["corrected_s"] for x in rows),
            "plain_per_iteration_s": plain_s, "profiled_per_iteration_s": profiled_s,
            "limit_s": sum(x["bound_s"] for x in rows)}


def fmt_bytes(d):
    return ", ".join(f"{v / 1e6:.3g} MB {k}" for k, v in d.items() if v) or "-"


def table(results):
    m = results["machine"]
    gb = lambda x: f"{x / 1e9:.0f}"
    lines = [f"# Where an iteration's time goes ({results['date_utc']})", "",
             f"Command: `{' '.join(results['command'])}`; engine at {results['git_commit']}.", "",
             "Machine, one core, measured in this run with likwid-bench: single-precision FMA peak "
             f"{m['peak_flops'] / 1e9:.0f} GFLOP/s (`peakflops_sp_avx_fma`); load / store bandwidth (GB/s, `load_avx` / `store_avx`): "
             + "; ".join(f"{lv} {gb(m['load_bytes_per_s'][lv])} / {gb(m['store_bytes_per_s'][lv])}" for lv in LEVELS)
             + f" (working sets {', '.join(f'{lv} {v // 1024} KiB' for lv, v in m['working_set_bytes'].items())}).", ""]
    for w in results["workloads"]:
        c = w["counts"]
        lines += [f"## {w['workload']}", "",
                  f"n_in {c['n_in']}, n_rec {c['n_rec']}, n_out {c['n_out']}, T {c['T']}, batch {c['B']}, Float32, 1 thread; "
                  f"{c['input_spikes_per_sequence']:.0f} input and {c['recurrent_spikes_per_sequence']:.0f} recurrent spikes per sequence "
                  f"(mean of the run); kernel {(w['kernel'] or {}).get('used', '?')}. Arrays live in: weights {w['levels']['weights']}, "
                  f"histories {w['levels']['histories']}, optimizer arrays {w['levels']['optimizer_arrays']}. Command: `{' '.join(os.path.relpath(x, ROOT) if x.startswith(ROOT) else x for x in w['command'])}`.", "",
                  "| phase | profiled ms | without the clock, ms | work: MFLOP; bytes read; bytes written | bound ms | time / bound |",
                  "|---|---:|---:|---|---:|---:|"]
        for r in w["rows"]:
            ratio = f"{r['corrected_s'] / r['bound_s']:.1f}" if r["bound_s"] > 0 else "- (no modelled work)"
            lines.append(f"| {r['title']} | {r['measured_s'] * 1e3:.4f} | {r['corrected_s'] * 1e3:.4f} | {r['flops'] / 1e6:.3g}; "
                         f"{fmt_bytes(r['read_bytes'])}; {fmt_bytes(r['write_bytes'])} | {r['bound_s'] * 1e3:.4f} | {ratio} |")
        lines += [f"| **iteration** | **{w['profiled_sum_s'] * 1e3:.3f}** | **{w['corrected_sum_s'] * 1e3:.3f}** | | **{w['limit_s'] * 1e3:.4f}** (the limit) | **{w['corrected_sum_s'] / w['limit_s']:.1f}** |",
                  "", f"Per iteration without `--profile-phases`: {w['plain_per_iteration_s'] * 1e3:.3f} ms, "
                  f"**{w['plain_per_iteration_s'] / w['limit_s']:.1f}x the limit** (the goal: {TARGET_FACTOR:g}x); with it "
                  f"{w['profiled_per_iteration_s'] * 1e3:.3f} ms. The difference, {w['clock_read_s'] * 1e9:.0f} ns per clock read, "
                  "is taken out of each per-step phase in the third column.", ""]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="profiled and plain runs per workload (alternating)")
    ap.add_argument("--out", default=os.path.join(ROOT, "Benchmarks", "results"))
    ap.add_argument("--render", metavar="JSON", help="only print the table of an earlier run's JSON file")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            print(table(json.load(f)), end="")
        return
    if not os.access(ENGINE, os.X_OK):
        sys.exit(f"accounting: {ENGINE} missing; run: swift build -c release")
    caches = cache_sizes()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    results = {"date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "command": sys.argv, "git_commit": commit, "caches_per_core_bytes": caches,
               "load_average_at_start": os.getloadavg(), "machine": measure_machine(caches), "workloads": []}
    work_dir = tempfile.mkdtemp(prefix="eprop-accounting-")
    try:
        for name, (options, iterations) in WORKLOADS.items():
            results["workloads"].append(account(name, options, iterations, args.rounds, results["machine"], caches,
                                                os.path.join(work_dir, name.replace(" ", "-"))))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)
    stamp = results["date_utc"][:10]
    with open(os.path.join(args.out, f"accounting-{stamp}.json"), "w") as f:
        json.dump(results, f, indent=1)
    md = table(results)
    with open(os.path.join(args.out, f"accounting-{stamp}.md"), "w") as f:
        f.write(md)
    print(md, end="")


if __name__ == "__main__":
    main()
