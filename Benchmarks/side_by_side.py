#!/usr/bin/env python3
"""Side-by-side benchmark: NEST 3.10 (event-based) against eprop-dense (dense, time-stepped).

Runs the same configurations in both engines, alternating NEST and eprop-dense run by run, and
computes every speed ratio pair by pair (NEST run i against the eprop-dense run right after it); a
row's ratio is the median over the rounds. eprop-dense starts from NEST's exported initial state
(--init), so both train the same network. Every row carries its target (issue 15, or an earlier
issue's where the row is kept from it) and a verdict: "yes", or "NO" with the factor by which the
measurement is off.

    .venv/bin/python Benchmarks/side_by_side.py [--quick] [--rounds N] [--only GROUP[,GROUP]] [--out DIR]
    .venv/bin/python Benchmarks/side_by_side.py --render Benchmarks/results/side_by_side-DATE.json

Groups (--only runs a subset, e.g. to re-measure one; the output name then ends in -only-<groups>):
  tutorial  s/iteration, n_rec 200, batch 1, Float32, 1 thread each: >= 500x NEST (issue 15; the
            moonshot is 1000x). Without --quick also n_rec 100 and 400, informative (no target).
  batch32   sequences/s, batch 32, n_rec 200: NEST 1 thread against eprop-dense 2 threads, >= 1000x;
            the second core (eprop-dense 2 threads / 1 thread) >= 1.8x; final weights and loss.npy
            of 1 and 2 threads must be byte-equal.
  ea        evidence accumulation (NEST's example network, batch 32, 1 thread each): s/iteration
            >= 300x NEST, and peak memory < 100 MB of the run that draws its trials as it trains
            (as NEST's example does; default recordings), with the run from NEST's export, which
            also holds the export's 64 trials, beside it. eprop-dense runs
            --init <export> --task evidence-accumulation (the task gives the example's settings;
            without it the tutorial's apply) and uses the export's 64 trials in order, round robin.
  large     n_rec 1600 and 3200, the tutorial otherwise (batch 1, Float32, 1 thread each): >= 300x
            NEST per iteration; one NEST iteration (its setup excluded), eprop-dense choosing its
            kernel itself (run.json's "kernel": used and why, in the notes). --quick: n_rec 1600 only.
            A NEST run whose estimated memory does not fit in the machine's available memory is not
            started (n_rec 3200 needs about 40 GB); the row then says so and shows eprop-dense alone.
  float64   eprop-dense tutorial per-iteration time, Float32 / Float64 (the speed of Float64
            relative to Float32), >= 0.5; the two precisions alternate run by run.
  dense     dense GFLOP/s of the BLAS kernel, batch 1 and 32, >= 0.5 of the SGEMM peak measured
            in the same run (issue 5).
  memory    peak memory of the tutorial run (5 iterations, default recordings) < 50 MB (issue 5).
  long      (not with --quick) the whole 5000-iteration tutorial on both cores < 30 s, ending at a
            loss no worse than NEST's curve at its iteration 800 (issue 5).
Groups that need the tutorial's NEST export use the tutorial group's when it ran, otherwise the
committed one (notebooks-data/reference/nest-3.10-infinite-loop-seed1-iter5, the same network).

Duration: an estimate summed from single groups timed on the 2-core, 24 GB development machine
while it was shared (not a timed full run). Per round: tutorial 4 s at n_rec 200 (+10 s for n_rec 100
and 400), batch32 11 s, ea 11 s, large 110 s at n_rec 1600 (NEST's setup; it peaks at 10 GB), the
engine-only groups a few seconds, long about 10 s. --quick (one round): about 2.5 minutes; the full
run (3 rounds; NEST at n_rec 3200 not run, it would need about 40 GB): about 8 minutes. Where n_rec
3200 fits, add roughly 7 minutes per round.

Writes a Markdown table and a JSON file (the machine's description, the exact commands, every pair)
to --out as side_by_side-<date>[-only-<groups>].{md,json}. Requires the release binary
(swift build -c release) and the project's venv (bash scripts/setup.sh).
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# numpy's own OpenBLAS measures the SGEMM peak on one core: set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINE = os.path.join(ROOT, ".build", "release", "eprop-dense")
NEST_EXPORT = os.path.join(ROOT, "notebooks-data", "crossval", "nest_export.py")
NEST_CURVE = os.path.join(ROOT, "notebooks-data", "reference", "nest-3.10-infinite-loop-seed1-loss-curve-800.csv")
# NEST's tutorial export (n_rec 200, seed 1), for groups run without the tutorial group.
TUTORIAL_REFERENCE = os.path.join(ROOT, "notebooks-data", "reference", "nest-3.10-infinite-loop-seed1-iter5")

# Issue 15's targets (ratios measured side by side in one run; never weakened to be met).
TARGET_TUTORIAL_RATIO = 500.0     # s/iteration, n_rec 200, batch 1, Float32, one thread each
MOONSHOT_TUTORIAL_RATIO = 1000.0  # the same row's moonshot (shown in its notes, not judged)
TARGET_BATCH32_RATIO = 1000.0     # sequences/s, batch 32, NEST 1 thread, eprop-dense 2 threads
TARGET_SECOND_CORE = 1.8          # eprop-dense sequences/s, 2 threads / 1 thread, batch 32
TARGET_EA_RATIO = 300.0           # s/iteration, evidence accumulation, batch 32, one thread each
TARGET_EA_MEMORY_MB = 100.0       # peak memory of the evidence-accumulation run
TARGET_LARGE_RATIO = 300.0        # s/iteration, n_rec 1600 and 3200 (tutorial otherwise), one thread each
TARGET_FLOAT64_SPEED = 0.5        # Float64 speed relative to Float32 (Float32 s/it / Float64 s/it)
# Issue 5's targets, kept for the rows issue 15 does not replace.
TARGET_GEMM_FRACTION = 0.5        # dense work at >= half the measured SGEMM peak
TARGET_MEMORY_MB = 50.0           # peak memory of the tutorial run
TARGET_5000_SECONDS = 30.0        # whole 5000-iteration tutorial on both cores

GROUPS = ("tutorial", "batch32", "ea", "large", "float64", "dense", "memory", "long")
# NEST's peak memory per recurrent synapse (n_rec 800 peaked at 2791 MB in the 2026-11-29 run; n_rec 1600
# at 10249 MB, 4.1 kB per synapse, on 2026-12-02): estimates a large NEST run's memory before it is
# started, unless this run measured a size of at least 400 itself.
NEST_KB_PER_SYNAPSE = 4.4
# The share of the available memory a NEST run may be expected to take (the machine is shared).
NEST_MEMORY_SHARE = 0.8


def run_measured(cmd):
    """Runs cmd; returns its wall time (s) and its own peak RSS (MB). The RSS comes from GNU time:
    a child forked from this Python process would count Python's pages in its high-water mark."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name] + cmd, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            how = f"killed by signal {-p.returncode}" if p.returncode < 0 else f"exit {p.returncode}"
            # GNU time reports a signal as exit 128 + signal and notes it in its output file.
            rss_text = rss.read()
            if "signal" in rss_text:
                how = rss_text.splitlines()[0].strip()
            raise RuntimeError(f"command failed ({how}) after {wall:.0f} s: {' '.join(cmd)}\n{p.stderr[-2000:]}")
        return wall, float(rss.read().split()[-1]) / 1024.0


def nest(out, n_rec, iterations, batch=1, task=None):
    """n_rec None: the task's (the evidence-accumulation example's 100)."""
    cmd = [sys.executable, NEST_EXPORT, "--out", out] + (["--task", task] if task else []) \
        + (["--n-rec", str(n_rec)] if n_rec else []) \
        + ["--iterations", str(iterations), "--batch-size", str(batch), "--no-recordings", "--quiet"]
    wall, peak = run_measured(cmd)
    with open(os.path.join(out, "summary.json")) as f:
        s = json.load(f)
    per_sequence = s["timings"]["simulate_s"] / (iterations * batch)
    return {"cmd": cmd, "wall_s": wall, "peak_mb": peak, "s_per_sequence": per_sequence,
            "s_per_iteration": s["timings"]["simulate_s"] / iterations}


def engine(init, out, iterations, batch=1, threads=1, precision="float", extra=(), record="none"):
    """Timing runs record nothing (--record-iterations none): in a short run the default
    first-and-last recording would weigh far more than in a real one. init None: the engine's own
    generator (the tutorial task unless extra says otherwise)."""
    cmd = [ENGINE] + (["--init", init] if init else []) + [
        "--out", out, "--force", "--quiet", "--iterations", str(iterations), "--batch-size", str(batch),
        "--threads", str(threads), "--precision", precision, "--record-iterations", record] + list(extra)
    wall, peak = run_measured(cmd)
    with open(os.path.join(out, "run.json")) as f:
        r = json.load(f)
    per_iter = r["timings"]["per_iteration_mean_s"]
    return {"cmd": cmd, "wall_s": wall, "peak_mb": peak, "s_per_iteration": per_iter,
            "s_per_sequence": per_iter / batch, "loss": np.load(os.path.join(out, "loss.npy")).tolist(),
            "kernel": kernel_choice(r)}


def kernel_choice(run_json):
    """The kernel the engine used and why: run.json's "kernel" object ({"requested", "used", "reason"})
    where the engine writes one, else the configured kernel (engines before the automatic choice)."""
    k = run_json.get("kernel")
    if isinstance(k, dict):
        return {"requested": k.get("requested"), "used": k.get("used"), "reason": k.get("reason")}
    return {"requested": None, "used": run_json.get("config", {}).get("kernel"),
            "reason": "run.json has no \"kernel\" object (an engine before the automatic choice)"}


def bitwise_equal(dir_a, dir_b):
    """Final weights and loss.npy of two run folders are byte-equal."""
    files = ("w_in_rec_final.npy", "w_rec_rec_final.npy", "w_rec_out_final.npy", "loss.npy")
    for f in files:
        with open(os.path.join(dir_a, f), "rb") as a, open(os.path.join(dir_b, f), "rb") as b:
            if a.read() != b.read():
                return False
    return True


def sgemm_peak(n=1024, repeats=5):
    """Median single-thread SGEMM GFLOP/s of an n x n x n product (numpy's OpenBLAS)."""
    a = np.random.rand(n, n).astype(np.float32)
    b = np.random.rand(n, n).astype(np.float32)
    a @ b
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        rates.append(2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return statistics.median(rates)


def dense_flops(n_in, n_rec, n_out, steps, batch):
    """Flops of the dense formulation per iteration: forward products (inputs, recurrence, readout,
    learning signal) and the gradient GEMMs (spec 5.3, 5.4)."""
    per_step = 2 * n_rec * (n_in + n_rec) + 2 * 2 * n_out * n_rec
    gradient = 2 * n_rec * (n_in + n_rec) + 2 * n_out * n_rec
    return (per_step + gradient) * steps * batch


def available_memory_mb():
    """MemAvailable of /proc/meminfo (MB), or None where there is none."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def nest_memory_estimate_mb(n_rec, measured):
    """NEST's expected peak memory at n_rec (batch 1, the tutorial): the largest size measured in
    this run (>= 400) scaled by the number of synapses, else NEST_KB_PER_SYNAPSE per synapse."""
    known = {n: mb for n, mb in measured.items() if n >= 400}
    if known:
        n = max(known)
        return known[n] * (n_rec / n) ** 2, f"n_rec {n}'s measured {known[n]:.0f} MB scaled by (n_rec / {n})^2"
    return n_rec ** 2 * NEST_KB_PER_SYNAPSE / 1024.0, f"{NEST_KB_PER_SYNAPSE} kB per recurrent synapse"


def machine():
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        info["lscpu"] = {k.strip(): v.strip() for k, v in (l.split(":", 1) for l in lscpu.splitlines() if ":" in l)
                         if k.strip() in ("Model name", "CPU(s)", "L2 cache", "L3 cache")}
    except OSError:
        pass
    info["load_average_at_start"] = os.getloadavg()
    info["memory_available_mb_at_start"] = available_memory_mb()
    return info


def median(xs):
    return statistics.median(xs)


def pair_row(what, pairs, target, source, notes=()):
    """A row of NEST/eprop-dense pairs timed per iteration: medians and every pair's ratio."""
    ratios = [n["s_per_iteration"] / e["s_per_iteration"] for n, e in pairs]
    wall_ratios = [n["wall_s"] / e["wall_s"] for n, e in pairs]
    row = {"what": what, "nest": median(n["s_per_iteration"] for n, _ in pairs),
           "eprop": median(e["s_per_iteration"] for _, e in pairs),
           "ratio": median(ratios), "ratios": ratios, "target": target, "target_source": source,
           "wall_ratio": median(wall_ratios),
           "nest_wall_s": median(n["wall_s"] for n, _ in pairs),
           "eprop_wall_s": median(e["wall_s"] for _, e in pairs),
           "nest_peak_mb": max(n["peak_mb"] for n, _ in pairs),
           "eprop_peak_mb": max(e["peak_mb"] for _, e in pairs),
           "nest_cmd": pairs[0][0]["cmd"], "eprop_cmd": pairs[0][1]["cmd"]}
    row["notes"] = [f"pair ratios {', '.join(fmt(x) for x in ratios)}; whole-run wall {fmt(row['nest_wall_s'])} s vs "
                    f"{fmt(row['eprop_wall_s'])} s ({fmt(row['wall_ratio'])}x); peak {fmt(row['nest_peak_mb'])} vs "
                    f"{fmt(row['eprop_peak_mb'])} MB"] + list(notes)
    return row


def kernel_note(runs):
    """The kernels the engine chose in these runs, with its reasons."""
    seen = []
    for e in runs:
        k = e["kernel"]
        text = f"kernel used: {k['used']} ({k['reason']})"
        if text not in seen:
            seen.append(text)
    return "; ".join(seen)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="NEST/eprop-dense pairs per configuration")
    ap.add_argument("--quick", action="store_true",
                    help="one round, no n_rec 100/400, n_rec 1600 without 3200, no 5000-iteration run")
    ap.add_argument("--only", metavar="GROUP[,GROUP]", help=f"run only these groups: {','.join(GROUPS)}")
    ap.add_argument("--out", default=os.path.join(ROOT, "Benchmarks", "results"))
    ap.add_argument("--render", metavar="JSON", help="only print the table of an earlier run's JSON file")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            print(table(json.load(f)))
        return
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    selected = GROUPS
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in GROUPS]
        if unknown or not names:
            ap.error(f"--only: unknown group(s) {', '.join(unknown) or '(none given)'}; choose from {','.join(GROUPS)}")
        selected = tuple(g for g in GROUPS if g in names)  # in the order they run
    if args.quick:
        selected = tuple(g for g in selected if g != "long")
        if not selected:
            ap.error("--only long runs nothing with --quick (the 5000-iteration run is not part of it)")
    if not os.access(ENGINE, os.X_OK):
        sys.exit(f"side_by_side: {ENGINE} missing; run: swift build -c release")
    rounds = 1 if args.quick else args.rounds
    work = tempfile.mkdtemp(prefix="eprop-bench-")
    results = {"date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), "command": sys.argv, "groups": list(selected), "only": bool(args.only),
               "quick": args.quick, "rounds": rounds, "rows": []}
    rows = results["rows"]
    exports = {}       # n_rec -> NEST tutorial export folder (batch 1) of this run
    nest_peaks = {}    # n_rec -> NEST's peak MB (batch 1, tutorial), for the memory estimates
    t_start = time.perf_counter()

    def tutorial_export():
        return exports.get(200, TUTORIAL_REFERENCE)

    try:
        results["sgemm_peak_gflops_1thread"] = sgemm_peak()
        print(f"SGEMM peak (numpy OpenBLAS, 1 thread, 1024^3): {results['sgemm_peak_gflops_1thread']:.1f} GFLOP/s", flush=True)

        if "tutorial" in selected:
            # (n_rec, NEST iterations, eprop-dense iterations)
            sizes = [(200, 5, 50)] + ([] if args.quick else [(100, 5, 50), (400, 3, 20)])
            for n_rec, nest_iters, eng_iters in sizes:
                pairs = []
                for r in range(rounds):
                    d = os.path.join(work, f"nest_{n_rec}_{r}")
                    nr = nest(d, n_rec, nest_iters)
                    exports[n_rec] = d
                    nest_peaks[n_rec] = max(nest_peaks.get(n_rec, 0.0), nr["peak_mb"])
                    er = engine(d, os.path.join(work, f"eng_{n_rec}_{r}"), eng_iters)
                    pairs.append((nr, er))
                    print(f"tutorial n_rec {n_rec} round {r}: NEST {nr['s_per_iteration']:.3f} s/it, eprop-dense "
                          f"{er['s_per_iteration'] * 1e3:.3f} ms/it, ratio {nr['s_per_iteration'] / er['s_per_iteration']:.0f}x", flush=True)
                target = TARGET_TUTORIAL_RATIO if n_rec == 200 else None
                notes = ([f"moonshot (issue 15): {MOONSHOT_TUTORIAL_RATIO:.0f}x"] if n_rec == 200 else ["informative, no target"])
                rows.append(pair_row(f"s/iteration, n_rec {n_rec}, batch 1, Float32, 1 thread each", pairs, target,
                                     "issue 15" if target else None, notes + [kernel_note(e for _, e in pairs)]))
                if n_rec == 200:
                    rows[-1]["moonshot"] = MOONSHOT_TUTORIAL_RATIO

        if "batch32" in selected:
            # Throughput: batch 32 sequences; eprop-dense on both cores, then on one (the second core's share).
            pairs, cores, same = [], [], True
            for r in range(rounds):
                d = os.path.join(work, f"nest_b32_{r}")
                nr = nest(d, 200, 1, batch=32)
                e2 = engine(d, os.path.join(work, f"eng_b32_t2_{r}"), 10, batch=32, threads=2)
                e1 = engine(d, os.path.join(work, f"eng_b32_t1_{r}"), 10, batch=32, threads=1)
                same = same and bitwise_equal(os.path.join(work, f"eng_b32_t2_{r}"), os.path.join(work, f"eng_b32_t1_{r}"))
                pairs.append((nr, e2))
                cores.append((e1, e2))
                print(f"batch 32 round {r}: NEST {1 / nr['s_per_sequence']:.2f} seq/s, eprop-dense {1 / e2['s_per_sequence']:.0f} seq/s "
                      f"(1 thread {1 / e1['s_per_sequence']:.0f}), ratio {nr['s_per_sequence'] / e2['s_per_sequence']:.0f}x; "
                      f"bitwise identical 1 vs 2 threads so far: {same}", flush=True)
            ratios = [n["s_per_sequence"] / e["s_per_sequence"] for n, e in pairs]
            rows.append({"what": "sequences/s, batch 32, n_rec 200, Float32 (NEST 1 thread, eprop-dense 2 threads)",
                         "nest": median(1 / n["s_per_sequence"] for n, _ in pairs),
                         "eprop": median(1 / e["s_per_sequence"] for _, e in pairs),
                         "ratio": median(ratios), "ratios": ratios, "target": TARGET_BATCH32_RATIO, "target_source": "issue 15",
                         "nest_peak_mb": max(n["peak_mb"] for n, _ in pairs),
                         "notes": [f"pair ratios {', '.join(fmt(x) for x in ratios)}; NEST 1 iteration (its setup excluded), "
                                   f"eprop-dense 10 iterations"],
                         "nest_cmd": pairs[0][0]["cmd"], "eprop_cmd": pairs[0][1]["cmd"]})
            speedups = [e1["s_per_sequence"] / e2["s_per_sequence"] for e1, e2 in cores]
            rows.append({"what": "second core: eprop-dense sequences/s with 2 threads / 1 thread, batch 32, n_rec 200, Float32",
                         "nest": None, "eprop": median(1 / e2["s_per_sequence"] for _, e2 in cores),
                         "ratio": median(speedups), "ratios": speedups, "target": TARGET_SECOND_CORE, "target_source": "issue 15",
                         "eprop_1thread_seq_per_s": median(1 / e1["s_per_sequence"] for e1, _ in cores),
                         "bitwise_identical_1_vs_2_threads": same,
                         "notes": [f"eprop-dense column: 2 threads; 1 thread {fmt(median(1 / e1['s_per_sequence'] for e1, _ in cores))} seq/s; "
                                   f"pair ratios {', '.join(fmt(x) for x in speedups)}",
                                   "final weights and loss.npy of 1 and 2 threads byte-equal in every round: "
                                   + ("yes" if same else "NO (results depend on the thread count)")],
                         "eprop_cmd": cores[0][1]["cmd"], "eprop_1thread_cmd": cores[0][0]["cmd"]})

        if "ea" in selected:
            # NEST's evidence-accumulation example network. --task evidence-accumulation gives the
            # example's settings (the same resolved configuration as crossval.py's explicit options);
            # the export's K = 2 x 32 patterns are used in order, sequence k taking pattern k mod K,
            # so eprop-dense can time more iterations than NEST ran.
            pairs = []
            ea = ["--task", "evidence-accumulation"]
            for r in range(rounds):
                d = os.path.join(work, f"nest_ea_{r}")
                nr = nest(d, None, 2, batch=32, task="evidence-accumulation")
                er = engine(d, os.path.join(work, f"eng_ea_{r}"), 10, batch=32, extra=ea)
                pairs.append((nr, er))
                print(f"evidence accumulation round {r}: NEST {nr['s_per_iteration']:.2f} s/it, eprop-dense "
                      f"{er['s_per_iteration'] * 1e3:.1f} ms/it, ratio {nr['s_per_iteration'] / er['s_per_iteration']:.0f}x", flush=True)
            rows.append(pair_row("s/iteration, evidence accumulation (NEST's example: 40 in, 100 rec, 2 out, T 2250), batch 32, "
                                 "Float32, 1 thread each", pairs, TARGET_EA_RATIO, "issue 15",
                                 ["NEST 2 iterations, eprop-dense 10 (the export's 64 patterns in order)"]))
            # Memory: the run judged trains NEST's example network as NEST does, drawing its trials
            # as it goes (no --init). The --init run of the timing also holds the export's 64 trials
            # (Float64 [64, 40, 2250] = 46 MB, read through NPY): the stored data set, not the
            # engine's training state; it is shown beside it.
            e = engine(os.path.join(work, "nest_ea_0"), os.path.join(work, "eng_ea_memory"), 2, batch=32, extra=ea,
                       record="first-last")
            g = engine(None, os.path.join(work, "eng_ea_memory_generated"), 2, batch=32, extra=ea, record="first-last")
            nest_peak = max(n["peak_mb"] for n, _ in pairs)
            rows.append({"what": "peak memory of the evidence-accumulation run (MB), trials drawn as it trains (as NEST's example), "
                                 "2 iterations, batch 32, 1 thread, default recordings",
                         "nest": nest_peak, "eprop": g["peak_mb"], "ratio": nest_peak / g["peak_mb"],
                         "target": TARGET_EA_MEMORY_MB, "target_is_limit": True, "target_source": "issue 15",
                         "init_peak_mb": e["peak_mb"],
                         "notes": [f"from NEST's export (--init, which also holds the export's 64 trials as Float64 arrays, 46 MB) "
                                   f"{fmt(e['peak_mb'])} MB; the timing runs (no recordings) peaked at "
                                   f"{fmt(max(x['peak_mb'] for _, x in pairs))} MB"],
                         "eprop_cmd": g["cmd"], "eprop_init_cmd": e["cmd"]})
            print(f"evidence accumulation peak memory: {e['peak_mb']:.1f} MB from NEST's export, {g['peak_mb']:.1f} MB on "
                  f"generated trials (NEST {nest_peak:.0f} MB)", flush=True)

        if "large" in selected:
            # One NEST iteration (simulate_s excludes its setup); eprop-dense chooses its kernel.
            for n_rec, eng_iters in [(1600, 10)] + ([] if args.quick else [(3200, 5)]):
                pairs, solo, skipped = [], [], None
                for r in range(rounds):
                    d = os.path.join(work, f"nest_{n_rec}_{r}")
                    if skipped is None:
                        need, basis = nest_memory_estimate_mb(n_rec, nest_peaks)
                        avail = available_memory_mb()
                        if avail is not None and need > NEST_MEMORY_SHARE * avail:
                            skipped = (f"NEST not run: it would need about {need / 1024:.1f} GB ({basis}), more than "
                                       f"{NEST_MEMORY_SHARE:.0%} of the {avail / 1024:.1f} GB available")
                    if skipped is None:
                        print(f"large n_rec {n_rec} round {r}: NEST 1 iteration (about {need / 1024:.1f} GB expected) ...", flush=True)
                        try:
                            nr = nest(d, n_rec, 1)
                            nest_peaks[n_rec] = max(nest_peaks.get(n_rec, 0.0), nr["peak_mb"])
                        except RuntimeError as err:
                            skipped = f"NEST failed: {str(err).splitlines()[0]}"
                    if skipped is None:
                        er = engine(d, os.path.join(work, f"eng_{n_rec}_{r}"), eng_iters)
                        pairs.append((nr, er))
                        print(f"large n_rec {n_rec} round {r}: NEST {nr['s_per_iteration']:.2f} s/it, eprop-dense "
                              f"{er['s_per_iteration'] * 1e3:.1f} ms/it ({er['kernel']['used']} kernel), "
                              f"ratio {nr['s_per_iteration'] / er['s_per_iteration']:.0f}x", flush=True)
                    else:
                        # No export to start from: eprop-dense's own generator (the tutorial task, seed 1).
                        er = engine(None, os.path.join(work, f"eng_{n_rec}_{r}"), eng_iters, extra=["--n-rec", str(n_rec)])
                        solo.append(er)
                        print(f"large n_rec {n_rec} round {r}: {skipped}; eprop-dense alone {er['s_per_iteration'] * 1e3:.1f} ms/it "
                              f"({er['kernel']['used']} kernel)", flush=True)
                what = f"s/iteration, n_rec {n_rec}, tutorial otherwise, batch 1, Float32, 1 thread each"
                runs = [e for _, e in pairs] + solo
                notes = [f"NEST 1 iteration (its setup excluded), eprop-dense {eng_iters} iterations", kernel_note(runs)]
                if pairs:
                    row = pair_row(what, pairs, TARGET_LARGE_RATIO, "issue 15", notes)
                else:
                    row = {"what": what, "nest": None, "eprop": median(e["s_per_iteration"] for e in solo), "ratio": None,
                           "target": TARGET_LARGE_RATIO, "target_source": "issue 15", "notes": notes,
                           "eprop_cmd": solo[0]["cmd"]}
                if skipped:
                    row["not_measured"] = skipped.split(":")[0] + ", see the notes"
                    row["notes"].append(skipped + (f" (after {len(pairs)} pair(s))" if pairs else
                                                   "; eprop-dense ran from its own generator (seed 1), not NEST's export"))
                row["kernel"] = runs[0]["kernel"]
                rows.append(row)

        if "float64" in selected:
            # Float32 and Float64 alternate run by run; each pair gives Float32 s/it / Float64 s/it.
            pairs = []
            for r in range(rounds):
                e32 = engine(tutorial_export(), os.path.join(work, f"eng_f32_{r}"), 100)
                e64 = engine(tutorial_export(), os.path.join(work, f"eng_f64_{r}"), 100, precision="double")
                pairs.append((e32, e64))
                print(f"float64 round {r}: Float32 {e32['s_per_iteration'] * 1e3:.3f} ms/it, Float64 "
                      f"{e64['s_per_iteration'] * 1e3:.3f} ms/it, Float32/Float64 {e32['s_per_iteration'] / e64['s_per_iteration']:.2f}", flush=True)
            ratios = [a["s_per_iteration"] / b["s_per_iteration"] for a, b in pairs]
            rows.append({"what": "Float64 speed relative to Float32: eprop-dense s/iteration Float32 / Float64, tutorial n_rec 200, "
                                 "batch 1, 1 thread",
                         "nest": None, "eprop": median(b["s_per_iteration"] for _, b in pairs), "ratio": median(ratios),
                         "ratios": ratios, "target": TARGET_FLOAT64_SPEED, "target_source": "issue 15",
                         "eprop_float32_s_per_iteration": median(a["s_per_iteration"] for a, _ in pairs),
                         "notes": [f"eprop-dense column: Float64 s/iteration; Float32 {fmt(median(a['s_per_iteration'] for a, _ in pairs))} s; "
                                   f"pair ratios {', '.join(fmt(x) for x in ratios)}; 100 iterations each"],
                         "eprop_cmd": pairs[0][1]["cmd"], "eprop_float32_cmd": pairs[0][0]["cmd"]})

        if "dense" in selected:
            # Dense work against the SGEMM peak: the BLAS kernel does the dense flops.
            peak = results["sgemm_peak_gflops_1thread"]
            for batch in (1, 32):
                iters = 5 if batch == 32 else 20
                e = engine(tutorial_export(), os.path.join(work, f"eng_blas_{batch}"), iters, batch=batch, extra=["--kernel", "blas"])
                gf = dense_flops(100, 200, 2, 1258, batch) / e["s_per_iteration"] / 1e9
                es = engine(tutorial_export(), os.path.join(work, f"eng_sparse_{batch}"), iters, batch=batch, extra=["--kernel", "sparse"])
                gfs = dense_flops(100, 200, 2, 1258, batch) / es["s_per_iteration"] / 1e9
                rows.append({"what": f"dense GFLOP/s, batch {batch}, 1 thread, BLAS kernel, as a fraction of the SGEMM peak (issue 5's row)",
                             "nest": None, "eprop": gf, "ratio": gf / peak, "target": TARGET_GEMM_FRACTION, "target_source": "issue 5",
                             "sparse_equivalent_gflops": gfs,
                             "notes": [f"sparse kernel's dense-equivalent rate {fmt(gfs)} GFLOP/s ({fmt(gfs / peak)} of peak)"],
                             "eprop_cmd": e["cmd"], "eprop_sparse_cmd": es["cmd"]})
                print(f"batch {batch}: BLAS kernel {gf:.1f} GFLOP/s = {gf / peak:.2f} of peak; sparse kernel dense-equivalent {gfs:.1f} GFLOP/s", flush=True)

        if "memory" in selected:
            # Memory of the tutorial run (5 iterations, default recording of the first and last).
            e = engine(tutorial_export(), os.path.join(work, "eng_memory"), 5, record="first-last")
            nest_peak = nest_peaks.get(200)
            rows.append({"what": "peak memory of the tutorial run (MB), 5 iterations, default recordings (issue 5's row)",
                         "nest": nest_peak, "eprop": e["peak_mb"], "ratio": nest_peak / e["peak_mb"] if nest_peak else None,
                         "target": TARGET_MEMORY_MB, "target_is_limit": True, "target_source": "issue 5",
                         "notes": [] if nest_peak else ["NEST column: the tutorial group did not run"],
                         "eprop_cmd": e["cmd"]})
            print(f"tutorial peak memory: {e['peak_mb']:.1f} MB", flush=True)

        if "long" in selected:
            # The whole 5000-iteration tutorial on both cores, from NEST's initial state.
            e = engine(tutorial_export(), os.path.join(work, "eng_5000"), 5000, threads=2)
            curve = np.loadtxt(NEST_CURVE, delimiter=",", skiprows=1)
            nest_800 = curve[-1, 1]
            rows.append({"what": "whole 5000-iteration tutorial, wall s (both cores), and its loss against NEST's curve at NEST's "
                                 "last iteration (800) (issue 5's row)", "nest": None, "eprop": e["wall_s"],
                         "ratio": None, "target": TARGET_5000_SECONDS, "target_is_limit": True, "target_source": "issue 5",
                         "loss_at_800": e["loss"][799], "nest_loss_at_800": nest_800, "final_loss": e["loss"][-1],
                         "notes": [f"loss at 800 {fmt(e['loss'][799])} (NEST {fmt(nest_800)}), at 5000 {fmt(e['loss'][-1])}"],
                         "eprop_cmd": e["cmd"]})
            print(f"5000 iterations: {e['wall_s']:.1f} s; loss at 800 {e['loss'][799]:.3f} (NEST {nest_800:.3f}), at 5000 {e['loss'][-1]:.3f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["wall_s"] = time.perf_counter() - t_start

    os.makedirs(args.out, exist_ok=True)
    name = f"side_by_side-{results['date_utc'][:10]}" + (f"-only-{'+'.join(selected)}" if args.only else "")
    with open(os.path.join(args.out, name + ".json"), "w") as f:
        json.dump(results, f, indent=1)
    md = table(results)
    with open(os.path.join(args.out, name + ".md"), "w") as f:
        f.write(md)
    print(md)
    print(f"written: {os.path.join(args.out, name)}.{{md,json}} ({results['wall_s']:.0f} s)")


def fmt(x):
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x)
    return f"{x:.4g}"


def verdict(r):
    """'yes', 'NO (<factor> ...)' (how far off), 'not measured (...)', or '-' for rows without a target."""
    t = r.get("target")
    if t is None:
        return "-"
    if r.get("not_measured") and r.get("ratio") is None:
        return f"not measured ({r['not_measured']})"
    if r.get("target_is_limit"):
        value = r["eprop"]
        if value is None:
            return "not measured"
        off = [] if value < t else [f"{value / t:.3g}x the limit"]
        if "loss_at_800" in r and r["loss_at_800"] > r["nest_loss_at_800"]:  # no worse than NEST's loss curve
            off.append(f"loss at 800 {r['loss_at_800'] / r['nest_loss_at_800']:.3g}x NEST's")
    else:
        if r["ratio"] is None:
            return "not measured"
        off = [] if r["ratio"] >= t else [f"{r['ratio'] / t:.3g} of target"]
    return "yes" if not off else f"NO ({'; '.join(off)})"


def legacy_notes(r):
    """Notes of rows written before the notes were stored in the row (for --render of old files)."""
    extra = []
    if "wall_ratio" in r:
        extra.append(f"whole-run wall {fmt(r['nest_wall_s'])} s vs {fmt(r['eprop_wall_s'])} s ({fmt(r['wall_ratio'])}x); peak "
                     f"{fmt(r['nest_peak_mb'])} vs {fmt(r['eprop_peak_mb'])} MB; pair ratios {', '.join(fmt(x) for x in r['ratios'])}")
    if "bitwise_identical_1_vs_2_threads" in r:
        extra.append(f"1 thread {fmt(r['eprop_1thread_seq_per_s'])} seq/s; bitwise identical 1 vs 2 threads: {r['bitwise_identical_1_vs_2_threads']}")
    if "sparse_equivalent_gflops" in r:
        extra.append(f"sparse kernel dense-equivalent {fmt(r['sparse_equivalent_gflops'])} GFLOP/s")
    if "loss_at_800" in r:
        extra.append(f"loss at 800 {fmt(r['loss_at_800'])} (NEST {fmt(r['nest_loss_at_800'])}), at 5000 {fmt(r['final_loss'])}")
    return extra


def table(results):
    m = results["machine"]
    avail = m.get("memory_available_mb_at_start")
    lines = [f"# Side-by-side: NEST 3.10 vs eprop-dense ({results['date_utc']})", "",
             f"Machine: {m.get('lscpu', {}).get('Model name', '?')}, {m['cpus']} CPUs, {m['platform']}; "
             f"load average at start {m['load_average_at_start'][0]:.2f}"
             + (f"; {avail / 1024:.1f} GB memory available" if avail else "") + ". "
             f"SGEMM peak measured in this run: {results['sgemm_peak_gflops_1thread']:.1f} GFLOP/s (1 thread, 1024^3).", "",
             f"Command: `{' '.join(results['command'])}`"
             + (f" ({results['wall_s']:.0f} s)" if "wall_s" in results else ""), ""]
    if results.get("only"):
        lines += [f"Only the groups {', '.join(results['groups'])} (--only): not a full result.", ""]
    lines += ["Ratios are medians of the pair-by-pair ratios (NEST run i against the eprop-dense run right after it). "
              "met: yes, or NO with the measurement as a fraction of the target (or a multiple of a limit).", "",
              "| measurement | NEST | eprop-dense | ratio | target | met | notes |", "|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        t = r.get("target")
        ratio = fmt(r["ratio"]) + ("x" if r.get("nest") is not None and r["ratio"] is not None and not r.get("target_is_limit") else "")
        target = "" if t is None else ("< " if r.get("target_is_limit") else ">= ") + fmt(t) + (
            f" ({r['target_source']})" if r.get("target_source") else "")
        notes = r["notes"] if "notes" in r else legacy_notes(r)
        lines.append(f"| {r['what']} | {fmt(r['nest'])} | {fmt(r['eprop'])} | {ratio} | {target} | {verdict(r)} | {'; '.join(notes)} |")
    lines += ["", "Commands (first pair of each row):", ""]
    for r in results["rows"]:
        for key in [k for k in r if k.endswith("_cmd")]:
            lines.append(f"- {r['what']} ({key[:-4].replace('_', ' ')}): `{' '.join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in r[key])}`")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
