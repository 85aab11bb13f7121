#!/usr/bin/env python3
"""Side-by-side benchmark: NEST 3.10 (event-based) against eprop-dense (dense, time-stepped).

Runs the same configurations in both engines, alternating NEST and eprop-dense run by run, and
computes every speed ratio pair by pair (NEST run i against the eprop-dense run right after it).
eprop-dense starts from NEST's exported initial state (--init), so both train the same network.

    .venv/bin/python Benchmarks/side_by_side.py [--quick] [--rounds N] [--out Benchmarks/results]

Writes a Markdown table and a JSON file with the machine's description and the exact commands.
Requires the release binary (swift build -c release) and the project's venv (bash scripts/setup.sh).
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

# The targets (ratios measured side by side; never weakened to be met).
TARGET_TUTORIAL_RATIO = 100.0     # s/iteration, batch 1, Float32, one thread each
TARGET_BATCH32_RATIO = 300.0      # sequences/s, batch 32, eprop-dense on both cores
TARGET_800_RATIO = 100.0          # s/iteration, n_rec 800
TARGET_5000_SECONDS = 30.0        # whole 5000-iteration tutorial on both cores
TARGET_GEMM_FRACTION = 0.5        # dense work at >= half the measured SGEMM peak
TARGET_MEMORY_MB = 50.0           # peak memory of the tutorial run


def run_measured(cmd):
    """Runs cmd; returns its wall time (s) and its own peak RSS (MB). The RSS comes from GNU time:
    a child forked from this Python process would count Python's pages in its high-water mark."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name] + cmd, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
        return wall, float(rss.read().split()[-1]) / 1024.0


def nest(out, n_rec, iterations, batch=1):
    cmd = [sys.executable, NEST_EXPORT, "--out", out, "--n-rec", str(n_rec), "--iterations", str(iterations),
           "--batch-size", str(batch), "--no-recordings", "--quiet"]
    wall, peak = run_measured(cmd)
    with open(os.path.join(out, "summary.json")) as f:
        s = json.load(f)
    per_sequence = s["timings"]["simulate_s"] / (iterations * batch)
    return {"cmd": cmd, "wall_s": wall, "peak_mb": peak, "s_per_sequence": per_sequence,
            "s_per_iteration": s["timings"]["simulate_s"] / iterations}


def engine(init, out, iterations, batch=1, threads=1, precision="float", extra=(), record="none"):
    """Timing runs record nothing (--record-iterations none): in a short run the default
    first-and-last recording would weigh far more than in a real one."""
    cmd = [ENGINE, "--init", init, "--out", out, "--force", "--quiet", "--iterations", str(iterations),
           "--batch-size", str(batch), "--threads", str(threads), "--precision", precision,
           "--record-iterations", record] + list(extra)
    wall, peak = run_measured(cmd)
    with open(os.path.join(out, "run.json")) as f:
        r = json.load(f)
    per_iter = r["timings"]["per_iteration_mean_s"]
    return {"cmd": cmd, "wall_s": wall, "peak_mb": peak, "s_per_iteration": per_iter,
            "s_per_sequence": per_iter / batch, "loss": np.load(os.path.join(out, "loss.npy")).tolist()}


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


def machine():
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        info["lscpu"] = {k.strip(): v.strip() for k, v in (l.split(":", 1) for l in lscpu.splitlines() if ":" in l)
                         if k.strip() in ("Model name", "CPU(s)", "L2 cache", "L3 cache", "Flags") and k.strip() != "Flags"}
    except OSError:
        pass
    info["load_average_at_start"] = os.getloadavg()
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="NEST/eprop-dense pairs per configuration")
    ap.add_argument("--quick", action="store_true", help="one round, no n_rec 800, no 5000-iteration run")
    ap.add_argument("--out", default=os.path.join(ROOT, "Benchmarks", "results"))
    ap.add_argument("--render", metavar="JSON", help="only print the table of an earlier run's JSON file")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            print(table(json.load(f)))
        return
    if not os.access(ENGINE, os.X_OK):
        sys.exit(f"side_by_side: {ENGINE} missing; run: swift build -c release")
    rounds = 1 if args.quick else args.rounds
    work = tempfile.mkdtemp(prefix="eprop-bench-")
    results = {"date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), "command": sys.argv, "rows": []}
    rows = results["rows"]
    try:
        results["sgemm_peak_gflops_1thread"] = sgemm_peak()
        print(f"SGEMM peak (numpy OpenBLAS, 1 thread, 1024^3): {results['sgemm_peak_gflops_1thread']:.1f} GFLOP/s", flush=True)

        sizes = [(200, 5, 50), (100, 5, 50), (400, 3, 20)] + ([] if args.quick else [(800, 2, 10)])
        exports = {}
        for n_rec, nest_iters, eng_iters in sizes:
            pairs = []
            for r in range(rounds):
                d = os.path.join(work, f"nest_{n_rec}_{r}")
                nr = nest(d, n_rec, nest_iters)
                exports[n_rec] = d
                er = engine(d, os.path.join(work, f"eng_{n_rec}_{r}"), eng_iters)
                pairs.append((nr, er))
                print(f"n_rec {n_rec} round {r}: NEST {nr['s_per_iteration']:.3f} s/it, eprop-dense "
                      f"{er['s_per_iteration'] * 1e3:.2f} ms/it, ratio {nr['s_per_iteration'] / er['s_per_iteration']:.0f}x", flush=True)
            ratios = [n["s_per_iteration"] / e["s_per_iteration"] for n, e in pairs]
            wall_ratios = [n["wall_s"] / e["wall_s"] for n, e in pairs]
            target = TARGET_TUTORIAL_RATIO if n_rec == 200 else TARGET_800_RATIO if n_rec == 800 else None
            rows.append({"what": f"s/iteration, n_rec {n_rec}, batch 1, Float32, 1 thread each",
                         "nest": statistics.median(n["s_per_iteration"] for n, _ in pairs),
                         "eprop": statistics.median(e["s_per_iteration"] for _, e in pairs),
                         "ratio": statistics.median(ratios), "ratios": ratios, "target": target,
                         "wall_ratio": statistics.median(wall_ratios),
                         "nest_wall_s": statistics.median(n["wall_s"] for n, _ in pairs),
                         "eprop_wall_s": statistics.median(e["wall_s"] for _, e in pairs),
                         "nest_peak_mb": max(n["peak_mb"] for n, _ in pairs),
                         "eprop_peak_mb": max(e["peak_mb"] for _, e in pairs),
                         "nest_cmd": pairs[0][0]["cmd"], "eprop_cmd": pairs[0][1]["cmd"]})

        # Throughput: batch 32 sequences; eprop-dense on both cores.
        d = os.path.join(work, "nest_b32")
        nr = nest(d, 200, 1, batch=32)
        er = engine(d, os.path.join(work, "eng_b32"), 5, batch=32, threads=2)
        er1 = engine(d, os.path.join(work, "eng_b32_t1"), 5, batch=32, threads=1)
        same = all(open(os.path.join(work, "eng_b32", f), "rb").read() == open(os.path.join(work, "eng_b32_t1", f), "rb").read()
                   for f in ("w_in_rec_final.npy", "w_rec_rec_final.npy", "w_rec_out_final.npy", "loss.npy"))
        rows.append({"what": "sequences/s, batch 32, n_rec 200, Float32 (NEST 1 thread, eprop-dense 2 threads)",
                     "nest": 1 / nr["s_per_sequence"], "eprop": 1 / er["s_per_sequence"],
                     "ratio": nr["s_per_sequence"] / er["s_per_sequence"], "target": TARGET_BATCH32_RATIO,
                     "eprop_1thread_seq_per_s": 1 / er1["s_per_sequence"],
                     "bitwise_identical_1_vs_2_threads": same,
                     "nest_cmd": nr["cmd"], "eprop_cmd": er["cmd"]})
        print(f"batch 32: NEST {1 / nr['s_per_sequence']:.2f} seq/s, eprop-dense {1 / er['s_per_sequence']:.0f} seq/s "
              f"(1 thread {1 / er1['s_per_sequence']:.0f}); bitwise identical 1 vs 2 threads: {same}", flush=True)

        # Dense work against the SGEMM peak: the BLAS kernel does the dense flops.
        peak = results["sgemm_peak_gflops_1thread"]
        for batch in (1, 32):
            e = engine(exports[200], os.path.join(work, f"eng_blas_{batch}"), 5 if batch == 32 else 20,
                       batch=batch, threads=1, extra=["--kernel", "blas"])
            gf = dense_flops(100, 200, 2, 1258, batch) / e["s_per_iteration"] / 1e9
            es = engine(exports[200], os.path.join(work, f"eng_sparse_{batch}"), 5 if batch == 32 else 20, batch=batch, threads=1)
            gfs = dense_flops(100, 200, 2, 1258, batch) / es["s_per_iteration"] / 1e9
            rows.append({"what": f"dense GFLOP/s, batch {batch}, 1 thread (BLAS kernel; sparse kernel's dense-equivalent rate in notes)",
                         "nest": None, "eprop": gf, "ratio": gf / peak, "target": TARGET_GEMM_FRACTION,
                         "sparse_equivalent_gflops": gfs, "eprop_cmd": e["cmd"]})
            print(f"batch {batch}: BLAS kernel {gf:.1f} GFLOP/s = {gf / peak:.2f} of peak; sparse kernel dense-equivalent {gfs:.1f} GFLOP/s", flush=True)

        # Memory of the tutorial run (5 iterations, default recording of the first and last), both engines.
        tut = [r for r in rows if r["what"].startswith("s/iteration, n_rec 200")][0]
        e = engine(exports[200], os.path.join(work, "eng_memory"), 5, record="first-last")
        rows.append({"what": "peak memory of the tutorial run (MB), 5 iterations, default recordings",
                     "nest": tut["nest_peak_mb"], "eprop": e["peak_mb"],
                     "ratio": tut["nest_peak_mb"] / e["peak_mb"], "target": TARGET_MEMORY_MB, "target_is_limit": True,
                     "eprop_cmd": e["cmd"]})

        if not args.quick:
            # The whole 5000-iteration tutorial on both cores, from NEST's initial state.
            d = os.path.join(work, "eng_5000")
            e = engine(exports[200], d, 5000, threads=2)
            curve = np.loadtxt(NEST_CURVE, delimiter=",", skiprows=1)
            nest_800 = curve[-1, 1]
            rows.append({"what": "whole 5000-iteration tutorial, wall s (both cores), and its loss against NEST's curve at NEST's last iteration (800)", "nest": None, "eprop": e["wall_s"],
                         "ratio": None, "target": TARGET_5000_SECONDS, "target_is_limit": True,
                         "loss_at_800": e["loss"][799], "nest_loss_at_800": nest_800, "final_loss": e["loss"][-1],
                         "eprop_cmd": e["cmd"]})
            print(f"5000 iterations: {e['wall_s']:.1f} s; loss at 800 {e['loss'][799]:.3f} (NEST {nest_800:.3f}), at 5000 {e['loss'][-1]:.3f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    os.makedirs(args.out, exist_ok=True)
    stamp = results["date_utc"][:10]
    with open(os.path.join(args.out, f"side_by_side-{stamp}.json"), "w") as f:
        json.dump(results, f, indent=1)
    md = table(results)
    with open(os.path.join(args.out, f"side_by_side-{stamp}.md"), "w") as f:
        f.write(md)
    print(md)


def fmt(x):
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x)
    return f"{x:.4g}"


def table(results):
    m = results["machine"]
    lines = [f"# Side-by-side: NEST 3.10 vs eprop-dense ({results['date_utc']})", "",
             f"Machine: {m.get('lscpu', {}).get('Model name', '?')}, {m['cpus']} CPUs, {m['platform']}; "
             f"load average at start {m['load_average_at_start'][0]:.2f}. "
             f"SGEMM peak measured in this run: {results['sgemm_peak_gflops_1thread']:.1f} GFLOP/s (1 thread, 1024^3).", "",
             f"Command: `{' '.join(results['command'])}`", "",
             "| measurement | NEST | eprop-dense | ratio | target | met |", "|---|---|---|---|---|---|"]
    for r in results["rows"]:
        t = r.get("target")
        if r.get("target_is_limit"):
            value = r["eprop"]
            met = value is not None and value < t
            if "loss_at_800" in r:  # and no worse than NEST's loss curve at its last iteration
                met = met and r["loss_at_800"] <= r["nest_loss_at_800"]
            ratio = fmt(r["ratio"])
        else:
            met = r["ratio"] is not None and t is not None and r["ratio"] >= t
            ratio = fmt(r["ratio"]) + ("x" if r["nest"] is not None else "")
        verdict = "-" if t is None else ("yes" if met else "NO")
        extra = []
        if "wall_ratio" in r:
            extra.append(f"whole-run wall {fmt(r['nest_wall_s'])} s vs {fmt(r['eprop_wall_s'])} s ({fmt(r['wall_ratio'])}x); peak {fmt(r['nest_peak_mb'])} vs {fmt(r['eprop_peak_mb'])} MB; pair ratios {', '.join(fmt(x) for x in r['ratios'])}")
        if "bitwise_identical_1_vs_2_threads" in r:
            extra.append(f"1 thread {fmt(r['eprop_1thread_seq_per_s'])} seq/s; bitwise identical 1 vs 2 threads: {r['bitwise_identical_1_vs_2_threads']}")
        if "sparse_equivalent_gflops" in r:
            extra.append(f"sparse kernel dense-equivalent {fmt(r['sparse_equivalent_gflops'])} GFLOP/s")
        if "loss_at_800" in r:
            extra.append(f"loss at 800 {fmt(r['loss_at_800'])} (NEST {fmt(r['nest_loss_at_800'])}), at 5000 {fmt(r['final_loss'])}")
        what = r["what"] + ("<br>" + "; ".join(extra) if extra else "")
        lines.append(f"| {what} | {fmt(r['nest'])} | {fmt(r['eprop'])} | {ratio} | {'' if t is None else ('< ' if r.get('target_is_limit') else '>= ')}{fmt(t)} | {verdict} |")
    lines += ["", "Commands (first pair of each row):", ""]
    for r in results["rows"]:
        for key in ("nest_cmd", "eprop_cmd"):
            if key in r:
                lines.append(f"- {r['what']} ({key[:-4]}): `{' '.join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in r[key])}`")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
