"""Training and evaluation throughput and peak memory on event datasets of the real datasets' sizes.

The datasets cannot be downloaded here, so this writes synthetic event-list files
(docs/event-format.md) with the real splits' sample counts, channels and sequence lengths, and a
stated number of events per sample, then runs eprop-dense on them:

- SHD-sized: 8156 training and 2264 test samples, 700 channels, 20 classes, 1001 steps of 1 ms;
- N-MNIST-sized: 60000 training and 10000 test samples, 2 x 34 x 34 = 2312 channels, 10 classes,
  301 steps of 1 ms.

For each: samples per second of training (batch 32, one optimizer step per batch) and of
held-out evaluation, with 1 and 2 threads, the time to open and check the files, and the peak
memory (VmHWM) of the same run on the full split and on one eighth of it, which must be equal up
to the index (16 bytes a sample) if memory does not grow with the split.

Usage: .venv/bin/python Benchmarks/event_datasets.py [--quick] [--events-shd N] [--events-nmnist N]
Writes Benchmarks/results/event_datasets-<date>.{md,json}. Run on an idle machine (2 threads).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINE = os.path.join(ROOT, ".build", "release", "eprop-dense")


def write_events(path, samples, n_in, n_classes, sequence, events_per_sample, seed):
    """A synthetic split: per sample, Poisson(events_per_sample) events at uniform steps 1..sequence-1
    and channels, sorted by (step, channel); labels in turn. Written in blocks (bounded memory)."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(events_per_sample, samples)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    times = np.empty(offsets[-1], np.int16 if sequence < 32768 else np.int32)
    units = np.empty(offsets[-1], np.int16)
    block = 2048
    for start in range(0, samples, block):
        stop = min(start + block, samples)
        n = offsets[stop] - offsets[start]
        t = rng.integers(1, sequence, n)
        u = rng.integers(0, n_in, n)
        sample = np.repeat(np.arange(start, stop), counts[start:stop])
        order = np.lexsort((u, t, sample))
        times[offsets[start]:offsets[stop]] = t[order]
        units[offsets[start]:offsets[stop]] = u[order]
    labels = (np.arange(samples) % n_classes).astype(np.int16)
    np.savez(path, times=times, units=units, offsets=offsets, labels=labels, n_in=np.int64(n_in),
             n_classes=np.int64(n_classes), sequence=np.int64(sequence), dt_ms=np.float64(1.0))
    return int(offsets[-1])


def run_engine(train, test, threads, iterations, out):
    args = [ENGINE, "--train-data", train, "--iterations", str(iterations), "--batch-size", "32", "--threads", str(threads),
            "--record-iterations", "none", "--quiet", "--out", out, "--force"]
    if test:
        args += ["--test-data", test]
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"event_datasets.py: {' '.join(args)} failed:\n{done.stderr}")
    record = json.load(open(os.path.join(out, "run.json")))
    row = {"threads": threads, "iterations": iterations, "wall_s": wall,
           "train_s": record["timings"]["total_s"],
           "per_iteration_median_s": record["timings"]["per_iteration_median_s"],
           "train_samples_per_s": 32 / record["timings"]["per_iteration_median_s"],
           "peak_memory_mb": record["peak_memory_mb"]}
    if test:
        table = np.genfromtxt(os.path.join(out, "evaluation.csv"), delimiter=",", names=True, ndmin=1)
        row["eval_samples"] = int(table["samples"][-1])
        row["eval_s"] = float(table["seconds"][-1])
        row["eval_samples_per_s"] = row["eval_samples"] / row["eval_s"]
        row["test_accuracy"] = float(table["accuracy"][-1])
    # What is neither training nor evaluation: start-up, opening and checking the files, writing.
    row["other_s"] = wall - row["train_s"]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one tenth of the samples and 3 iterations (a smoke test)")
    parser.add_argument("--events-shd", type=int, default=8000, help="mean events per SHD-sized sample (assumed; default 8000)")
    parser.add_argument("--events-nmnist", type=int, default=4000, help="mean events per N-MNIST-sized sample (assumed; default 4000)")
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args()
    if not os.access(ENGINE, os.X_OK):
        sys.exit("event_datasets.py: build first: swift build -c release")
    scale = 10 if args.quick else 1
    iterations = 3 if args.quick else args.iterations
    kinds = [("SHD-sized", 8156, 2264, 700, 20, 1001, args.events_shd),
             ("N-MNIST-sized", 60000, 10000, 2312, 10, 301, args.events_nmnist)]
    results = []
    with tempfile.TemporaryDirectory(prefix="eprop-events-bench-") as tmp:
        for name, n_train, n_test, n_in, n_classes, sequence, events in kinds:
            n_train, n_test = n_train // scale, n_test // scale
            train, test, eighth = (os.path.join(tmp, f"{name}-{s}.npz") for s in ("train", "test", "eighth"))
            start = time.perf_counter()
            e_train = write_events(train, n_train, n_in, n_classes, sequence, events, 1)
            write_events(test, n_test, n_in, n_classes, sequence, events, 2)
            write_events(eighth, n_train // 8, n_in, n_classes, sequence, events, 3)
            print(f"{name}: wrote {n_train} + {n_test} samples ({e_train} training events, {os.path.getsize(train) / 1e6:.0f} MB) "
                  f"in {time.perf_counter() - start:.1f} s", file=sys.stderr)
            entry = {"dataset": name, "train_samples": n_train, "test_samples": n_test, "n_in": n_in, "classes": n_classes,
                     "sequence": sequence, "events_per_sample": events, "train_file_mb": os.path.getsize(train) / 1e6, "runs": []}
            for threads in (1, 2):
                row = run_engine(train, test, threads, iterations, os.path.join(tmp, "run"))
                entry["runs"].append(row)
                print(f"  {threads} thread(s): {row}", file=sys.stderr)
            full = entry["runs"][0]["peak_memory_mb"]
            small = run_engine(eighth, test, 1, iterations, os.path.join(tmp, "run"))["peak_memory_mb"]
            entry["peak_memory_mb_full_split"], entry["peak_memory_mb_eighth_split"] = full, small
            results.append(entry)

    date = datetime.date.today().isoformat()
    lines = [f"# Event datasets: throughput and memory ({date})", "",
             f"Command: `.venv/bin/python Benchmarks/event_datasets.py{' --quick' if args.quick else ''}`; synthetic event-list files of the "
             "real splits' sizes (events per sample assumed as stated), default event-classification network (150 LIF, "
             f"batch 32, Float32, sparse kernel), {iterations} iterations, evaluation of the whole test split after the last.", "",
             "| dataset | samples train/test | events/sample | train file | threads | training samples/s | evaluation samples/s | open, check, write (s) | peak memory (MB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for e in results:
        for r in e["runs"]:
            lines.append(f"| {e['dataset']} | {e['train_samples']}/{e['test_samples']} | {e['events_per_sample']} | {e['train_file_mb']:.0f} MB | "
                         f"{r['threads']} | {r['train_samples_per_s']:.1f} | {r['eval_samples_per_s']:.1f} | {r['other_s']:.1f} | {r['peak_memory_mb']:.1f} |")
    lines += ["", "Peak memory against the size of the training split (1 thread):", "",
              "| dataset | full split | one eighth | difference |", "|---|---|---|---|"]
    for e in results:
        lines.append(f"| {e['dataset']} | {e['peak_memory_mb_full_split']:.1f} MB | {e['peak_memory_mb_eighth_split']:.1f} MB | "
                     f"{e['peak_memory_mb_full_split'] - e['peak_memory_mb_eighth_split']:+.1f} MB |")
    os.makedirs(os.path.join(ROOT, "Benchmarks", "results"), exist_ok=True)
    stem = os.path.join(ROOT, "Benchmarks", "results", f"event_datasets-{date}{'-quick' if args.quick else ''}")
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(stem + ".json", "w") as f:
        json.dump({"date": date, "iterations": iterations, "results": results}, f, indent=1)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
