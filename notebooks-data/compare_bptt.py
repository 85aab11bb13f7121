#!/usr/bin/env python3
"""e-prop (random and symmetric feedback) against BPTT in the same engine: learning curves on the
tutorial and on evidence accumulation over several seeds, how the e-prop gradient aligns with the
BPTT gradient during training (--compare-gradients), and time and peak memory per iteration as
the sequence grows. Writes docs/figures/eprop_vs_bptt.png and prints the README's tables.

    .venv/bin/python notebooks-data/compare_bptt.py [--seeds 3] [--out docs/figures]

Needs the release binary (swift build -c release) and matplotlib (bash scripts/setup.sh).
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINE = os.path.join(ROOT, ".build", "release", "eprop-dense")
METHODS = {  # label: options
    "e-prop, random feedback": [],
    "e-prop, symmetric feedback": ["--feedback", "symmetric"],
    "BPTT": ["--gradient", "bptt"],
}
TASKS = {  # task: (options, iterations)
    "infinite-loop": (["--task", "infinite-loop"], 1000),
    "evidence-accumulation": (["--task", "evidence-accumulation", "--threads", "2"], 150),
}
SEQUENCES = [500, 1000, 2000, 4000]
SCALING = {"e-prop (adjoint)": [], "e-prop (traces)": ["--gradient", "traces"], "BPTT": ["--gradient", "bptt"]}


def run(work, name, args):
    out = os.path.join(work, name)
    subprocess.run([ENGINE, "--out", out, "--quiet", "--record-iterations", "none"] + args, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(out, "run.json")) as f:
        record = json.load(f)
    result = {"loss": np.load(os.path.join(out, "loss.npy")), "record": record}
    for extra in ("accuracy", "gradient_cosine"):
        path = os.path.join(out, f"{extra}.npy")
        if os.path.exists(path):
            result[extra] = np.load(path)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "figures"))
    args = ap.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves, cosines, scaling = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="eprop-vs-bptt-") as work:
        for task, (task_args, iterations) in TASKS.items():
            for label, method_args in METHODS.items():
                runs = []
                for seed in range(1, args.seeds + 1):
                    compare = ["--compare-gradients"] if seed == 1 and "--gradient" not in method_args else []
                    r = run(work, f"{task}-{len(curves)}-{seed}", task_args + method_args + compare +
                            ["--iterations", str(iterations), "--seed", str(seed)])
                    runs.append(r)
                    if "gradient_cosine" in r:
                        cosines[(task, label)] = r["gradient_cosine"]
                curves[(task, label)] = runs
                print(f"{task:22s} {label:27s} done", flush=True)
        for T in SEQUENCES:
            for label, method_args in SCALING.items():
                r = run(work, f"scale-{T}-{len(scaling)}", method_args + ["--sequence", str(T), "--iterations", "10"])
                scaling[(T, label)] = (r["record"]["timings"]["per_iteration_median_s"], r["record"]["peak_memory_mb"])

    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2), dpi=110)
    colors = {"e-prop, random feedback": "#1f77b4", "e-prop, symmetric feedback": "#2ca02c", "BPTT": "#d62728"}
    for ax, task in zip(axes[:2], TASKS):
        for label in METHODS:
            losses = np.array([r["loss"] for r in curves[(task, label)]])
            it = np.arange(1, losses.shape[1] + 1)
            ax.plot(it, np.median(losses, 0), c=colors[label], label=label)
            ax.fill_between(it, losses.min(0), losses.max(0), color=colors[label], alpha=0.2)
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss (median, min-max over seeds)")
        ax.set_title(task)
        ax.legend(fontsize=8)
    ax = axes[2]
    for (task, label), c in cosines.items():
        style = "-" if task == "infinite-loop" else "--"
        ax.plot(np.arange(1, len(c) + 1), c[:, 1], style, c=colors[label], label=f"{label}, {task}: W_rec")
        ax.plot(np.arange(1, len(c) + 1), c[:, 0], style, c=colors[label], alpha=0.45, label=f"{label}, {task}: W_in")
    ax.set_xlabel("iteration (seed 1)")
    ax.set_ylabel("cosine(g_e-prop, g_BPTT)")
    ax.set_title("alignment with the BPTT gradient")
    ax.legend(fontsize=6)
    ax = axes[3]
    scale_colors = dict(zip(SCALING, ["#1f77b4", "#ff7f0e", "#d62728"]))
    for label, marker in zip(SCALING, "os^"):
        ax.plot(SEQUENCES, [scaling[(T, label)][0] * 1e3 for T in SEQUENCES], marker=marker, c=scale_colors[label], label=f"{label}: time")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T (steps)")
    ax.set_ylabel("ms per iteration (tutorial network)")
    ax2 = ax.twinx()
    for label, marker in zip(SCALING, "os^"):
        ax2.plot(SEQUENCES, [scaling[(T, label)][1] for T in SEQUENCES], ls=":", marker=marker, c=scale_colors[label], alpha=0.6, label=f"{label}: memory")
    ax2.set_ylabel("peak memory (MB, dotted)")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("cost as T grows")
    fig.tight_layout()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "eprop_vs_bptt.png")
    fig.savefig(path)
    print(f"wrote {path}")

    print("\n| task | method | loss at the last iteration (median, min-max over seeds) | accuracy, last 20 iterations |")
    print("|---|---|---|---|")
    for (task, label), runs in curves.items():
        last = np.array([r["loss"][-1] for r in runs])
        acc = [np.mean(r["accuracy"][-20:]) for r in runs if "accuracy" in r]
        acc_text = f"{np.median(acc):.3f} ({min(acc):.3f}-{max(acc):.3f})" if acc else "-"
        print(f"| {task} ({len(runs[0]['loss'])} it.) | {label} | {np.median(last):.4g} ({last.min():.4g}-{last.max():.4g}) | {acc_text} |")
    print("\n| T (steps) | " + " | ".join(f"{m}: ms/iteration, peak MB" for m in SCALING) + " |")
    print("|---|" + "---|" * len(SCALING))
    for T in SEQUENCES:
        print(f"| {T} | " + " | ".join(f"{scaling[(T, m)][0] * 1e3:.2f}, {scaling[(T, m)][1]:.0f}" for m in SCALING) + " |")
    print("\n| task | cosine with BPTT, seed 1, first / last 10 iterations (W_in, W_rec) |")
    print("|---|---|")
    for (task, label), c in cosines.items():
        print(f"| {task}, {label} | {c[:10, 0].mean():.2f}, {c[:10, 1].mean():.2f} / {c[-10:, 0].mean():.2f}, {c[-10:, 1].mean():.2f} |")


if __name__ == "__main__":
    main()
