#!/usr/bin/env python3
"""Data-parallel training over Open MPI on this machine: throughput and the cost of the exchange.

Part 1, throughput: NEST's evidence-accumulation network (batch 32 and 64) as one process with
2 threads, one process with 1 thread, and under mpirun with 1 and 2 ranks of one thread each;
the modes alternate round by round, and each run's median iteration time (run.json) gives
sequences per second.

Part 2, the exchange: 2, 3 and 4 ranks (3 and 4 oversubscribe the 2 cores) on the tutorial
network, the evidence-accumulation network and an n_rec 2000 network, with 20-step sequences so
that the exchange dominates; rank 0's median time in the exchange and the bytes it receives per
iteration (run.json "processes"). A least-squares fit of time = a (P - 1) + bytes / b gives the
per-peer latency a and bandwidth b that README "Several processes" uses in its scaling model.

    python3 Benchmarks/mpi_scaling.py [--rounds 3] [--out Benchmarks/results]

Requires the release binary built with Open MPI (swift build -c release) and mpirun.
Writes mpi_scaling-<date>.md and .json. Run it alone: the machine has 2 cores.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINE = os.path.join(ROOT, ".build", "release", "eprop-dense")
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none")

EA = ["--task", "evidence-accumulation", "--record-iterations", "none", "--quiet"]
# name -> options; the gradient vector has n_rec (n_in + n_rec) + n_out n_rec scalars (Float32).
EXCHANGE_NETWORKS = {
    "tutorial (n_in 100, n_rec 200, n_out 2)": ["--record-iterations", "none", "--quiet"],
    "evidence accumulation (40, 100, 2)": EA,
    "n_rec 2000 (100, 2000, 2)": ["--n-rec", "2000", "--record-iterations", "none", "--quiet"],
}


def run(ranks, threads, options, iterations):
    """One run; returns run.json. ranks None: a plain process, no mpirun."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        cmd = [ENGINE] + options + ["--iterations", str(iterations), "--threads", str(threads), "--out", out]
        if ranks is not None:
            cmd = ["mpirun", "--oversubscribe", "-np", str(ranks)] + cmd
        p = subprocess.run(cmd, env=MPI_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
        with open(os.path.join(out, "run.json")) as f:
            record = json.load(f)
        record["command"] = " ".join(cmd)
        return record


def throughput(rounds, iterations):
    modes = [("1 process, 2 threads", None, 2), ("1 process, 1 thread", None, 1),
             ("mpirun -np 1, 1 thread", 1, 1), ("mpirun -np 2, 1 thread each", 2, 1)]
    rows = []
    for batch in (32, 64):
        seconds = {m[0]: [] for m in modes}
        commands = {}
        for _ in range(rounds):
            for name, ranks, threads in modes:
                r = run(ranks, threads, EA + ["--batch-size", str(batch)], iterations)
                seconds[name].append(r["timings"]["per_iteration_median_s"])
                commands[name] = r["command"]
        base = statistics.median(seconds["1 process, 1 thread"])
        for name, _, _ in modes:
            s = statistics.median(seconds[name])
            rows.append(dict(batch=batch, mode=name, seconds_per_iteration=s, sequences_per_s=batch / s,
                             speedup_vs_1_thread=base / s, runs=seconds[name], command=commands[name]))
    return rows


def exchange(rounds, iterations):
    rows = []
    for net, options in EXCHANGE_NETWORKS.items():
        for ranks in (2, 3, 4):
            times, record = [], None
            for _ in range(rounds):
                record = run(ranks, 1, options + ["--sequence", "20", "--batch-size", "32"], iterations)
                times.append(record["processes"]["exchange_median_s_rank0"])
            n = record["config"]["nRec"] * (record["config"]["nIn"] + record["config"]["nRec"]) + record["config"]["nOut"] * record["config"]["nRec"]
            rows.append(dict(network=net, ranks=ranks, gradient_scalars=n, shards=4,
                             received_bytes_rank0=record["processes"]["received_bytes_per_iteration_rank0"],
                             exchange_s=statistics.median(times), runs=times, command=record["command"]))
    # time = a (P - 1) + bytes / b, least squares over all rows
    xs = [(r["ranks"] - 1, r["received_bytes_rank0"]) for r in rows]
    ys = [r["exchange_s"] for r in rows]
    s11 = sum(x[0] * x[0] for x in xs); s12 = sum(x[0] * x[1] for x in xs); s22 = sum(x[1] * x[1] for x in xs)
    y1 = sum(x[0] * y for x, y in zip(xs, ys)); y2 = sum(x[1] * y for x, y in zip(xs, ys))
    det = s11 * s22 - s12 * s12
    a = (y1 * s22 - y2 * s12) / det
    inv_b = (s11 * y2 - s12 * y1) / det
    return rows, dict(latency_per_peer_s=a, bandwidth_bytes_per_s=1 / inv_b if inv_b > 0 else float("inf"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--out", default=os.path.join(ROOT, "Benchmarks", "results"))
    args = ap.parse_args()
    tp = throughput(args.rounds, args.iterations)
    ex, fit = exchange(args.rounds, 3 * args.iterations)
    mpirun = subprocess.run(["mpirun", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    date = datetime.date.today().isoformat()
    result = dict(date=date, machine=dict(cpus=os.cpu_count(), processor=platform.processor(), mpirun=mpirun),
                  throughput=tp, exchange=ex, fit=fit)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"mpi_scaling-{date}.json"), "w") as f:
        json.dump(result, f, indent=2)
    lines = [f"# Data-parallel training on this machine ({date}, {os.cpu_count()} cores, {mpirun})", "",
             "## Throughput: evidence accumulation (NEST's example network), Float32", "",
             "| batch | mode | s/iteration | sequences/s | vs 1 process, 1 thread |", "|---|---|---|---|---|"]
    for r in tp:
        lines.append(f"| {r['batch']} | {r['mode']} | {r['seconds_per_iteration']:.4f} | {r['sequences_per_s']:.1f} | {r['speedup_vs_1_thread']:.2f}x |")
    lines += ["", "## The exchange: rank 0, batch 32 (4 shards), 20-step sequences", "",
              "| network | gradient scalars | ranks | bytes received/iteration | exchange (ms) |", "|---|---|---|---|---|"]
    for r in ex:
        lines.append(f"| {r['network']} | {r['gradient_scalars']:,} | {r['ranks']} | {r['received_bytes_rank0']:,} | {r['exchange_s'] * 1e3:.3f} |")
    lines += ["", f"Fit time = a (P - 1) + bytes / b: a = {fit['latency_per_peer_s'] * 1e6:.1f} us per peer, "
              f"b = {fit['bandwidth_bytes_per_s'] / 1e9:.2f} GB/s.", "",
              "Commands: see the .json file (each row's `command`)."]
    with open(os.path.join(args.out, f"mpi_scaling-{date}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
