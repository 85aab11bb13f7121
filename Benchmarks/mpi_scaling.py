#!/usr/bin/env python3
"""Data-parallel training over Open MPI on this machine: throughput and the cost of the exchange.

Part 1, throughput: NEST's evidence-accumulation network (batch 32 and 64) as one process with
2 threads, one process with 1 thread, and under mpirun with 1 and 2 ranks of one thread each;
the modes alternate round by round, and each run's median iteration time (run.json) gives
sequences per second.

Part 3, the compute: per network, one process and one thread at batch 8 and 16 with the full
sequences of T steps; the difference is 8 sequences' time (8 c). The per-iteration time that does
not grow with the batch (optimizer step, weight transposes, checks), which every rank repeats, is
measured with 20-step sequences at batch 8: t_fixed = t_20 - 8 c 20 / T.

The scaling model combines them: with P ranks of one thread, batch B (n = B / 8 shards),
  t_P = ceil(n / P) 8 c + t_fixed + a (P - 1) + bytes_P / b,
  efficiency = (B c + t_fixed) / (P t_P),
on an InfiniBand HDR cluster: a = 1.2 us per peer and a network rate of 23.8 GB/s (OSU latency
and bandwidth measured on Azure HBv2, MicrosoftDocs/azure-docs
articles/virtual-machines/hbv2-performance.md), plus the local rate b measured here (the bytes
still have to be summed and copied), i.e. bytes_P / b = bytes_P / 23.8 GB/s + bytes_P / b_here.
c and t_fixed are this machine's. It reports the efficiency at one shard per rank and the
smallest batch that keeps 80 %.

Part 2, the exchange: 2, 3 and 4 ranks (3 and 4 oversubscribe the 2 cores) on the tutorial
network, the evidence-accumulation network and an n_rec 2000 network, with 20-step sequences so
that the exchange dominates; rank 0's median time in the exchange and the bytes it receives per
iteration (run.json "processes"). With 3 and 4 ranks the cores are oversubscribed, so only the
2-rank runs enter the fit time = a + bytes / b: the fixed cost a and the rate b at which a rank
takes in (receives, sums, gathers) the exchanged bytes here.

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
# Open MPI's default shared-memory transport (with cross-memory attach, which works here: 22.8 ms
# against 32.6 ms with btl_vader_single_copy_mechanism=none for the n_rec 2000 exchange).
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")

EA = ["--task", "evidence-accumulation", "--record-iterations", "none", "--quiet"]
# name -> options; the gradient vector has n_rec (n_in + n_rec) + n_out n_rec scalars (Float32).
EXCHANGE_NETWORKS = {
    "tutorial (n_in 100, n_rec 200, n_out 2)": ["--record-iterations", "none", "--quiet"],
    "evidence accumulation (40, 100, 2)": EA + ["--learning-window", "10"],
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
    # time = a + bytes / b, least squares over the 2-rank rows
    xs = [(1, r["received_bytes_rank0"]) for r in rows if r["ranks"] == 2]
    ys = [r["exchange_s"] for r in rows if r["ranks"] == 2]
    s11 = sum(x[0] * x[0] for x in xs); s12 = sum(x[0] * x[1] for x in xs); s22 = sum(x[1] * x[1] for x in xs)
    y1 = sum(x[0] * y for x, y in zip(xs, ys)); y2 = sum(x[1] * y for x, y in zip(xs, ys))
    det = s11 * s22 - s12 * s12
    a = (y1 * s22 - y2 * s12) / det
    inv_b = (s11 * y2 - s12 * y1) / det
    if a < 0:  # no measurable fixed cost: the rate alone, through the origin
        a, inv_b = 0.0, y2 / s22
    return rows, dict(fixed_s=a, bytes_per_s=1 / inv_b if inv_b > 0 else float("inf"))


def compute(rounds):
    """Per network: seconds per sequence and per-iteration seconds independent of the batch."""
    def median_iteration(options):
        return statistics.median(run(None, 1, options, 3)["timings"]["per_iteration_median_s"] for _ in range(rounds))
    rows = {}
    for net, options in EXCHANGE_NETWORKS.items():
        full = [o for o in options if o not in ("--learning-window", "10")]
        T = json.loads(subprocess.run([ENGINE] + full + ["--print-config"], capture_output=True, text=True, check=True).stdout)["sequence"]
        t8, t16 = (median_iteration(full + ["--batch-size", str(b)]) for b in (8, 16))
        t20 = median_iteration(options + ["--batch-size", "8", "--sequence", "20"])
        c = (t16 - t8) / 8
        rows[net] = dict(steps=T, seconds_per_sequence=c, fixed_seconds=max(t20 - 8 * c * 20 / T, 0.0),
                         batch8_s=t8, batch16_s=t16, batch8_20_steps_s=t20)
    return rows


def received_bytes(V, n, P, scalar=4):
    """Bytes one rank receives per iteration (GradientExchange.receivedBytes, outcomes aside)."""
    owned = n // P
    return ((n - owned) * V / P + V * (1 - 1 / P)) * scalar


def model(comp, ex, fit):
    a, b = 1.2e-6, 1 / (1 / 23.8e9 + 1 / fit["bytes_per_s"])
    vectors = {r["network"]: r["gradient_scalars"] for r in ex}
    rows = []
    for net, c in comp.items():
        V, cs, tf = vectors[net], c["seconds_per_sequence"], c["fixed_seconds"]
        for P in (8, 64, 512):
            def efficiency(B):
                n = B // 8
                tP = -(-n // P) * 8 * cs + tf + a * (P - 1) + received_bytes(V, n, P) / b
                return (B * cs + tf) / (P * tP)
            need = next((B for B in (8 * P * m for m in range(1, 4097)) if efficiency(B) >= 0.8), None)
            rows.append(dict(network=net, ranks=P, efficiency_one_shard_per_rank=efficiency(8 * P), batch_for_80_percent=need))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--out", default=os.path.join(ROOT, "Benchmarks", "results"))
    args = ap.parse_args()
    tp = throughput(args.rounds, args.iterations)
    ex, fit = exchange(args.rounds, 3 * args.iterations)
    comp = compute(args.rounds)
    scaling = model(comp, ex, fit)
    mpirun = subprocess.run(["mpirun", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    date = datetime.date.today().isoformat()
    result = dict(date=date, machine=dict(cpus=os.cpu_count(), processor=platform.processor(), mpirun=mpirun),
                  throughput=tp, exchange=ex, fit=fit, compute=comp, model=scaling)
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
    lines += ["", "3 and 4 ranks oversubscribe the 2 cores (ranks wait for descheduled peers).", "",
              f"Fit over the 2-rank rows, time = a + bytes / b: a = {fit['fixed_s'] * 1e6:.1f} us, b = {fit['bytes_per_s'] / 1e9:.2f} GB/s.",
              "", "## Compute per network (1 process, 1 thread, batch 8 and 16, full sequences)", "",
              "| network | s per sequence | s per iteration not growing with the batch |", "|---|---|---|"]
    for net, c in comp.items():
        lines.append(f"| {net} | {c['seconds_per_sequence']:.4f} | {c['fixed_seconds']:.4f} |")
    lines += ["", "## Scaling model: InfiniBand HDR cluster, ranks of one thread each", "",
              "| network | ranks | efficiency at 8 sequences per rank | smallest batch for 80 % |", "|---|---|---|---|"]
    for r in scaling:
        need = f"{r['batch_for_80_percent']:,}" if r["batch_for_80_percent"] else "not reached"
        lines.append(f"| {r['network']} | {r['ranks']} | {r['efficiency_one_shard_per_rank']:.0%} | {need} |")
    lines += ["", "Commands: see the .json file (each row's `command`)."]
    with open(os.path.join(args.out, f"mpi_scaling-{date}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
