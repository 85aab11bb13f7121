#!/usr/bin/env python3
"""Draw the five figures of NEST's tutorial "learning to generate an infinite loop with e-prop"
from a run folder of eprop-dense (or from a NEST export folder, which uses the same file names).

    python notebooks-data/plot_run.py RUN_DIR [--out DIR] [--format png]

Writes into RUN_DIR (or --out DIR):
    pattern.png               readout (y0, -y1) against the target, last recorded iteration
    training_error.png        loss E and its parts E_0, E_1 per iteration (+ mean firing rate)
    dynamics_first.png        spikes and dynamic variables of the first recorded iteration
    dynamics_last.png         ... and of the last recorded iteration
    weight_time_courses.png   weight-recorder traces, one panel per projection
    weight_matrices.png       the three weight matrices before and after training

The functions (load_run, plot_pattern, plot_training_error, plot_dynamics,
plot_weight_time_courses, plot_weight_matrices, render_all) can also be imported, e.g. from
tutorial.ipynb. A figure whose input files are missing is skipped with a message naming the file;
the exit status is then 1. A run that recorded no iteration (--record-iterations none) gets only
the training error and the weight matrices, with exit status 0. Missing numpy or matplotlib: a
one-line message and exit status 2.

Time stamps follow NEST (resolution 1 ms, T steps per sequence, batch_size sequences per
iteration): recurrent samples and spikes of sequence k, step s carry stamp 3 + k*T + s, readout
samples 5 + k*T + s, input (parrot) spikes 2 + k*T + s.
"""

import argparse
import json
import os
import sys

try:
    import numpy as np
    import matplotlib

    if __name__ == "__main__":
        matplotlib.use("Agg")  # files only, no display needed; a notebook keeps its own backend
    import matplotlib.pyplot as plt
    from matplotlib.colors import LinearSegmentedColormap
except ImportError as err:
    message = (f"plot_run.py: Python package '{err.name}' is missing; run `bash scripts/setup.sh` "
               "(or `pip install matplotlib numpy`)")
    if __name__ == "__main__":
        print(message, file=sys.stderr)
        sys.exit(2)
    raise ImportError(message) from err

# Colors of the NEST tutorial.
BLUE = "#2854c5"
RED = "#e04b40"
DPI = 130

# Offsets of the NEST time stamps (ms) at step 0 of iteration 0, per kind of record.
OFFSET_IN = 2  # input (parrot) spikes
OFFSET_REC = 3  # recurrent multimeter samples and recurrent spikes
OFFSET_OUT = 5  # readout multimeter samples (NEST's legacy generation)
OFFSET_OUT_ONLINE = 3  # readout multimeter samples of NEST's online generation (its readout has no lag)

# The three trained projections: name, label, (sender pop, target pop) codes of the weight
# recorder, and the axis names of the matrix [post, pre].
PROJECTIONS = [
    ("in_rec", r"$W_\mathrm{in}$", (0, 0), "recurrent", "input"),
    ("rec_rec", r"$W_\mathrm{rec}$", (1, 0), "recurrent", "recurrent"),
    ("rec_out", r"$W_\mathrm{out}$", (1, 1), "readout", "recurrent"),
]


class MissingFile(Exception):
    """A file a figure needs is not in the run folder."""

    def __init__(self, path, what=None):
        self.path = path
        super().__init__(f"missing file {path}" + (f" (needed for {what})" if what else ""))


class NotRecorded(Exception):
    """The run recorded no iteration (eprop-dense --record-iterations none): nothing to draw."""


class Run:
    """A run folder: loads arrays on demand and knows the sequence length T."""

    def __init__(self, path):
        if not os.path.isdir(path):
            raise FileNotFoundError(f"run folder {path} does not exist")
        self.path = os.path.abspath(path)
        self.config = {}
        self.eta_per_iteration = None  # online classification runs: the eta of each iteration (0: a test iteration)
        self.offset_out = OFFSET_OUT
        run_json = os.path.join(self.path, "run.json")
        if os.path.exists(run_json):
            try:
                with open(run_json) as f:
                    record = json.load(f)
            except (OSError, ValueError) as err:  # fall back to the arrays' shapes
                print(f"plot_run.py: ignoring unreadable {run_json}: {err}", file=sys.stderr)
            else:
                self.config = record.get("config", {})
                if str(record.get("generation", "")).startswith("online"):  # eprop-dense --model eprop_iaf...
                    # An iteration is group_size sequences (the N-MNIST example; 1 otherwise).
                    self.config = {"sequence": record["sequence_steps"] * record.get("group_size", 1)}
                    self.eta_per_iteration = record.get("eta_per_iteration")
                    self.offset_out = OFFSET_OUT_ONLINE
        self._cache = {}

    def has(self, name):
        return os.path.exists(os.path.join(self.path, name))

    def load(self, name, what=None):
        """np.load of RUN_DIR/name; raises MissingFile naming the file if it is absent."""
        if name not in self._cache:
            full = os.path.join(self.path, name)
            if not os.path.exists(full):
                raise MissingFile(full, what)
            self._cache[name] = np.load(full)
        return self._cache[name]

    @property
    def T(self):
        """Time steps (1 ms each) per sequence, i.e. per iteration with batch size 1."""
        if "sequence" in self.config:
            return int(self.config["sequence"])
        for name in ("target_signal_seq.npy", "input_spike_bool_seq.npy"):
            if self.has(name):
                return int(self.load(name).shape[1])
        raise MissingFile(os.path.join(self.path, "target_signal_seq.npy"),
                          "the sequence length T (or run.json with config.sequence)")

    @property
    def batch_size(self):
        """Sequences per iteration: config.optimizer.batchSize of an eprop-dense run, else 1 (a NEST
        export counts sequences: its loss.npy has one value per sequence)."""
        return int(self.config.get("optimizer", {}).get("batchSize", 1))

    @property
    def steps_per_iteration(self):
        return self.T * self.batch_size

    @property
    def n_iter(self):
        return len(self.load("loss.npy", "the number of iterations"))

    def recorded_iterations(self):
        """0-based iterations with recordings: recorded_iterations.npy (eprop-dense), else the
        iterations covered by the readout multimeter (a NEST export records all of them)."""
        if self.has("recorded_iterations.npy"):  # stored 1-based
            recorded = [int(i) - 1 for i in self.load("recorded_iterations.npy")]
        else:
            times = self.load("out_times_ms.npy", "the recorded iterations")
            recorded = sorted(set(int(i) for i in (times - self.offset_out) // self.steps_per_iteration))
        if not recorded:
            raise NotRecorded("no iteration recorded (run with --record-iterations first-last, all or a list)")
        return recorded

    def in_iteration(self, times, offset, n):
        """Boolean mask of the time stamps that belong to iteration n."""
        return (times - offset) // self.steps_per_iteration == n


def load_run(path):
    return Run(path)


def _as_run(run):
    return run if isinstance(run, Run) else Run(run)


# ---------------------------------------------------------------------------------------------
# Figure 1: the pattern drawn by the two readouts


def plot_pattern(run, iteration=None):
    run = _as_run(run)
    y = run.load("out_readout_signal.npy", "the pattern figure")
    y_star = run.load("out_target_signal.npy", "the pattern figure")
    times = run.load("out_times_ms.npy", "the pattern figure")
    n = run.recorded_iterations()[-1] if iteration is None else iteration
    sel = np.flatnonzero(run.in_iteration(times, run.offset_out, n))[-run.T:]  # its last sequence

    if y.shape[0] != 2 or run.has("accuracy.npy"):
        # Not a figure eight (one readout, more than two, or classification): readouts over time.
        fig, ax = plt.subplots(figsize=(7, 4), dpi=DPI)
        t = times[sel] - times[sel][0]
        for k in range(y.shape[0]):
            ax.plot(t, y_star[k, sel], c=BLUE, lw=2, alpha=0.6, label=f"target $y^*_{k}$" if k < 4 else None)
            ax.plot(t, y[k, sel], c=RED, lw=1, label=f"readout $y_{k}$" if k < 4 else None)
        ax.set_xlabel("time in the last recorded sequence (ms)")
        ax.set_ylabel("readout and target (unitless)")
        ax.set_title(f"readouts, iteration {n + 1} of {run.n_iter}")
        ax.legend(loc="upper right", fontsize=8)
        fig.tight_layout()
        return fig

    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=DPI)
    # As in the tutorial: readout 0 is the horizontal, minus readout 1 the vertical coordinate.
    ax.plot(y_star[0, sel], -y_star[1, sel], c=BLUE, lw=2, label="target $y^*$")
    ax.plot(y[0, sel], -y[1, sel], c=RED, lw=1.2, label="readout $y$")
    ax.set_xlabel(r"$y_0$ and $y^*_0$ (unitless)")
    ax.set_ylabel(r"$-y_1$ and $-y^*_1$ (unitless)")
    ax.set_title(f"pattern, iteration {n + 1} of {run.n_iter}")
    ax.axis("equal")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Figure 2: training error per iteration


def _rate_hz(run):
    """Mean recurrent firing rate per iteration (Hz): rate_rec_hz.npy, or, for a NEST export
    (every iteration recorded), counted from the recurrent spikes."""
    if run.has("rate_rec_hz.npy"):
        return run.load("rate_rec_hz.npy")
    if run.has("recorded_iterations.npy") or not run.has("spikes_rec_times_ms.npy"):
        return None
    times = run.load("spikes_rec_times_ms.npy")
    n_rec = run.load("w_rec_rec_init.npy").shape[0] if run.has("w_rec_rec_init.npy") else None
    if n_rec is None:
        return None
    it = (times - OFFSET_REC) // run.steps_per_iteration  # the forced final-update spikes fall outside 0..n_iter-1
    counts = np.bincount(it[(it >= 0) & (it < run.n_iter)].astype(int), minlength=run.n_iter)
    return counts / (n_rec * run.steps_per_iteration * 1e-3)


def plot_training_error(run):
    run = _as_run(run)
    loss = run.load("loss.npy", "the training-error figure")
    iters = np.arange(1, len(loss) + 1)
    rate = _rate_hz(run)

    if rate is not None:
        fig, (ax, ax_rate) = plt.subplots(2, 1, sharex=True, figsize=(7, 5.5), dpi=DPI,
                                          gridspec_kw={"height_ratios": [3, 1.3]})
    else:
        fig, ax = plt.subplots(figsize=(7, 4), dpi=DPI)
    marker = "o" if len(loss) <= 30 else None
    if run.has("loss_per_readout.npy"):
        styles = ["--", ":", "-.", (0, (5, 1))]
        # eprop-dense: [iterations, n_out]; NEST's exports: [n_out, iterations]
        per_readout = run.load("loss_per_readout.npy")
        for k, loss_k in enumerate(per_readout.T if run.has("run.json") else per_readout):
            ax.plot(iters, loss_k, c=BLUE, alpha=0.8, ls=styles[k % len(styles)], label=f"$E_{k}$")
    ax.plot(iters, loss, c=BLUE, marker=marker, ms=3, label="$E$")
    # Log scale only when the loss spans more than a decade (long runs).
    if np.all(loss > 0) and loss.max() / loss.min() > 10:
        ax.set_yscale("log")
    ax.set_ylabel("training error (unitless)")
    if run.has("error.npy"):  # the online N-MNIST example: MSE, and the classification error on a second axis
        ax.set_title(r"loss $E = \frac{1}{2} \langle \sum_{t \in window} \sum_k (y_k^t - y_k^{*,t})^2 \rangle$ "
                     "and classification error", fontsize=10)
        ax_err = ax.twinx()
        ax_err.plot(iters, run.load("error.npy"), c=RED, alpha=0.7, lw=0.8, marker=marker, ms=3, label="error")
        ax_err.set_ylabel("classification error (fraction)", color=RED)
        ax_err.set_ylim(0, 1.02)
        if run.eta_per_iteration:  # test iterations (eta 0) shaded
            for n, e in enumerate(run.eta_per_iteration):
                if e == 0:
                    ax.axvspan(n + 0.5, n + 1.5, color="0.85", alpha=0.5, lw=0)
            ax.text(0.99, 0.02, "shaded: test iterations (eta 0)", transform=ax.transAxes, ha="right", fontsize=8)
    elif run.has("accuracy.npy"):  # classification: cross entropy, and the accuracy on a second axis
        ax.set_title(r"cross entropy $E = -\langle \sum_k \pi_k^* \log \pi_k \rangle$ (recall window) and accuracy",
                     fontsize=10)
        ax_acc = ax.twinx()
        ax_acc.plot(iters, run.load("accuracy.npy"), c=RED, alpha=0.7, lw=0.8, label="accuracy")
        ax_acc.set_ylabel("accuracy (fraction)", color=RED)
        ax_acc.set_ylim(0, 1.02)
    else:
        ax.set_title(r"training error $E = \frac{1}{2} \sum_{t,k} (y_k^t - y_k^{*,t})^2$, $E_k$: part of readout $k$",
                     fontsize=10)
    if run.has("accuracy.npy") or run.has("error.npy"):
        ax.legend(loc="lower left", fontsize=8)
    else:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.xaxis.get_major_locator().set_params(integer=True)
    last = ax
    if rate is not None:
        ax_rate.plot(iters, rate, c=RED, marker=marker, ms=3)
        ax_rate.set_ylabel("mean rate\nrecurrent (Hz)")
        last = ax_rate
    last.set_xlabel("training iteration")
    last.set_xlim(1, max(len(loss), 2))
    fig.align_ylabels()
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Figure 3: spikes and dynamic variables of one iteration


def _input_spikes(run):
    """(times ms, senders) of the input neurons: spikes_in_*.npy if present, else rebuilt from the
    frozen pattern input_spike_bool_seq.npy, which repeats identically every iteration."""
    if run.has("spikes_in_times_ms.npy") and run.has("spikes_in_senders.npy"):
        return run.load("spikes_in_times_ms.npy"), run.load("spikes_in_senders.npy")
    if run.has("input_spike_steps.npy"):  # the online N-MNIST example: every input spike's stamp (1 ms steps)
        return run.load("input_spike_steps.npy").astype(float), run.load("input_spike_senders.npy")
    pattern = run.load("input_spike_bool_seq.npy", "the input raster (or spikes_in_times_ms.npy)")
    senders, steps = np.nonzero(pattern)
    T = pattern.shape[1]
    n_seq = run.n_iter * run.batch_size
    times = np.concatenate([steps + OFFSET_IN + n * T for n in range(n_seq)]).astype(float)
    return times, np.tile(senders, n_seq)


def _raster(ax, times, senders, color, ylabel):
    ax.scatter(times, senders, s=1.5, c=color, marker=".", linewidths=0)
    ax.set_ylabel(ylabel)
    if len(senders):
        ax.set_ylim(-0.5, senders.max() + 0.5)


def _traces(ax, times, values, ylabel, color=BLUE, labels=None):
    for i, v in enumerate(values):
        ax.plot(times, v, lw=0.7, c=color, alpha=1.0 if len(values) == 1 else 0.7,
                label=None if labels is None else labels[i])
    ax.set_ylabel(ylabel)


def plot_dynamics(run, iteration):
    """Spikes and dynamic variables of 0-based iteration `iteration` (must be recorded)."""
    run = _as_run(run)
    what = "the dynamics figure"
    n = iteration
    t_in, s_in = _input_spikes(run)
    t_spk = run.load("spikes_rec_times_ms.npy", what)
    s_spk = run.load("spikes_rec_senders.npy", what)
    t_rec = run.load("rec_times_ms.npy", what)
    # The threshold and adaptation panels only for models that record them (not NEST's online eprop_iaf).
    traces = [("V_m", "$v_j$\n(mV)"), ("V_th_adapt", "$A_j$ threshold\n(mV)"), ("adaptation", "$a_j$ adaptation\n(unitless)"),
              ("surrogate_gradient", r"$\psi_j$" + "\n(1/mV)"), ("learning_signal", "$L_j$\n(pA)")]
    if not run.has("rec_V_th_adapt.npy") and run.config.get("recurrent") is None:
        traces = [t for t in traces if t[0] not in ("V_th_adapt", "adaptation")]
    rec = {name: run.load(f"rec_{name}.npy", what) for name, _ in traces}
    t_out = run.load("out_times_ms.npy", what)
    y = run.load("out_readout_signal.npy", what)
    y_star = run.load("out_target_signal.npy", what)
    err = run.load("out_error_signal.npy", what)

    m_in = run.in_iteration(t_in, OFFSET_IN, n)
    m_spk = run.in_iteration(t_spk, OFFSET_REC, n)
    m_rec = run.in_iteration(t_rec, OFFSET_REC, n)
    m_out = run.in_iteration(t_out, run.offset_out, n)
    if not m_rec.any() or not m_out.any():
        raise ValueError(f"iteration {n} (0-based) is not recorded in {run.path}; "
                         f"recorded: {run.recorded_iterations()}")

    fig, axs = plt.subplots(4 + len(traces), 1, sharex=True, figsize=(9, 4.5 + 1.6 * len(traces)), dpi=DPI,
                            gridspec_kw={"height_ratios": [1.3, 1.6] + [1] * len(traces) + [1.2, 1.2]})
    _raster(axs[0], t_in[m_in], s_in[m_in], BLUE, "$z_i$ input\n(neuron)")
    _raster(axs[1], t_spk[m_spk], s_spk[m_spk], BLUE, "$z_j$ recurrent\n(neuron)")
    n_record = rec["V_m"].shape[0]
    who = "neuron 0" if n_record == 1 else f"neurons 0-{n_record - 1}"
    for ax, (name, label) in zip(axs[2:], traces):
        _traces(ax, t_rec[m_rec], rec[name][:, m_rec], label)
    axs[2].set_title(f"recurrent {who}", fontsize=8, loc="right")
    # Readouts: one color per readout k, the target dashed.
    colors = [BLUE, RED, "#2a9d3c", "#8e44ad"]
    for k in range(y.shape[0]):
        c = colors[k % len(colors)]
        axs[-2].plot(t_out[m_out], y_star[k, m_out], c=c, lw=1.6, ls="--", alpha=0.6,
                     label=f"$y^*_{k}$")
        axs[-2].plot(t_out[m_out], y[k, m_out], c=c, lw=0.9, label=f"$y_{k}$")
        axs[-1].plot(t_out[m_out], err[k, m_out], c=c, lw=0.8, label=f"$y_{k}-y^*_{k}$")
    axs[-2].set_ylabel("$y_k$, $y^*_k$\n(unitless)")
    axs[-1].set_ylabel("$y_k - y^*_k$\n(unitless)")
    axs[-2].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    axs[-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    for ax in axs:
        ax.tick_params(labelsize=8)
    start = n * run.steps_per_iteration
    axs[-1].set_xlim(start + OFFSET_IN, start + run.steps_per_iteration + run.offset_out)
    axs[-1].set_xlabel("$t$ (ms, NEST time stamps)")
    batch = f" ({run.batch_size} sequences)" if run.batch_size > 1 else ""
    fig.suptitle(f"spikes and dynamic variables, iteration {n + 1} of {run.n_iter}{batch}")
    fig.align_ylabels()
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Figure 4: weight time courses from the weight recorder


def _recorded_blocks(run):
    """Runs of consecutive recorded iterations as [first, last] (0-based). A NEST export (no
    recorded_iterations.npy) records every iteration: one block."""
    if not run.has("recorded_iterations.npy"):
        return [[0, run.n_iter - 1]]
    run.recorded_iterations()  # raises NotRecorded if there is none
    blocks = []
    for n in run.recorded_iterations():
        if blocks and blocks[-1][1] == n - 1:
            blocks[-1][1] = n
        else:
            blocks.append([n, n])
    return blocks


def _iterations_label(a, b):
    return f"iteration {a + 1}" if a == b else f"iterations {a + 1}-{b + 1}"


def plot_weight_time_courses(run, max_columns=4):
    """Weights of the recorded synapses against time. With gaps in the recording (eprop-dense
    records only some iterations), each run of recorded iterations gets its own column (a broken
    time axis); with more than max_columns such runs, one axis with the gaps shaded grey."""
    run = _as_run(run)
    what = "the weight time-course figure"
    t = run.load("wr_times_ms.npy", what)
    w = run.load("wr_weights.npy", what)
    s_pop = run.load("wr_sender_pop.npy", what)
    s_idx = run.load("wr_sender_idx.npy", what)
    t_pop = run.load("wr_target_pop.npy", what)
    t_idx = run.load("wr_target_idx.npy", what)
    T, n_iter = run.steps_per_iteration, run.n_iter
    t_end = n_iter * T + run.offset_out  # includes NEST's forced final update after the last iteration

    def window(a, b):  # time span (ms) of iterations a..b; the first starts at 0 (initial weights)
        return (0.0 if a == 0 else OFFSET_REC + a * T - 0.5, t_end if b == n_iter - 1 else OFFSET_REC + (b + 1) * T)

    blocks = _recorded_blocks(run)
    broken = 1 < len(blocks) <= max_columns
    windows = [window(a, b) for a, b in blocks] if broken else [(0.0, t_end)]
    n_col = len(windows)
    fig, axs = plt.subplots(3, n_col, sharey="row", squeeze=False, dpi=DPI,
                            figsize=(8 + 1.2 * (n_col - 1), 6.5))
    for row, (name, label, (sp, tp), post, pre) in enumerate(PROJECTIONS):
        w_init = run.load(f"w_{name}_init.npy", what)
        sel = (s_pop == sp) & (t_pop == tp)
        synapses = sorted(set(zip(s_idx[sel].tolist(), t_idx[sel].tolist())))
        for col, (x0, x1) in enumerate(windows):
            ax = axs[row, col]
            for i, (s, j) in enumerate(synapses):
                m = sel & (s_idx == s) & (t_idx == j)
                # The recorder logs a weight only when the synapse transmits a spike, so, as in
                # the tutorial, the trace starts with the initial weight at t = 0.
                times = np.concatenate([[0.0], t[m], [t_end]])
                weights = np.concatenate([[w_init[j, s]], w[m], [w[m][-1] if m.any() else w_init[j, s]]])
                ax.step(times, weights, where="post", lw=0.9, c=plt.cm.tab10(i % 10), label=f"{s}$\\to${j}")
            if not broken:
                for a, b in _unrecorded_spans(blocks, T, n_iter):
                    ax.axvspan(a, b, color="0.9", lw=0)
            ax.set_xlim(x0, x1)
            ax.tick_params(labelsize=8)
            if row == 2 and broken:
                ax.set_xlabel(_iterations_label(*blocks[col]), fontsize=9)
            if row < 2:
                ax.tick_params(labelbottom=False)
        axs[row, 0].set_ylabel(f"{label}\n(pA)")
        last = axs[row, -1]
        if synapses:  # which synapse is which: "pre -> post" indices
            last.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=6, frameon=False,
                        ncol=1 + (len(synapses) - 1) // 6, title="pre$\\to$post", title_fontsize=6)
        last.text(1.0, 1.02, f"{pre} -> {post}: {len(synapses)} recorded synapses", fontsize=8,
                  ha="right", va="bottom", transform=last.transAxes)
    if broken:
        xlabel = "$t$ (ms); time axis broken between the recorded iterations"
    elif len(blocks) > 1:
        xlabel = "$t$ (ms); grey: iterations not recorded"
    else:
        xlabel = "$t$ (ms)"
    fig.supxlabel(xlabel, fontsize=10)
    fig.suptitle("weight time courses (weight recorder)")
    fig.align_ylabels(axs[:, 0])
    fig.tight_layout(w_pad=0.4)
    return fig


def _unrecorded_spans(blocks, T, n_iter):
    """(start, stop) in ms of the gaps between the recorded blocks of iterations."""
    spans, covered = [], 0
    for a, b in blocks + [[n_iter, n_iter]]:
        if a > covered:
            spans.append((OFFSET_REC + covered * T, OFFSET_REC + a * T))
        covered = b + 1
    return spans


# ---------------------------------------------------------------------------------------------
# Figure 5: weight matrices before and after training


def plot_weight_matrices(run):
    run = _as_run(run)
    what = "the weight-matrix figure"
    mats = {(name, when): run.load(f"w_{name}_{when}.npy", what)
            for name, *_ in PROJECTIONS for when in ("init", "final")}
    # One diverging color scale for all six panels, white at 0 pA.
    vmax = max(float(np.abs(m).max()) for m in mats.values()) or 1.0
    cmap = LinearSegmentedColormap.from_list("bwr_nest", [BLUE, "#ffffff", RED])
    args = {"cmap": cmap, "vmin": -vmax, "vmax": vmax, "rasterized": True}

    n_rec, n_in = mats[("in_rec", "init")].shape
    n_out = mats[("rec_out", "init")].shape[0]
    fig, axs = plt.subplots(3, 2, sharex=True, sharey="row", figsize=(9, 7.5), dpi=DPI,
                            gridspec_kw={"height_ratios": [n_in, n_rec, max(n_out, 0.12 * n_rec)]})
    for col, (when, title) in enumerate([("init", "before training"), ("final", "after training")]):
        # Rows as in the tutorial: recurrent neurons along x everywhere, so W_in is transposed.
        axs[0, col].pcolormesh(mats[("in_rec", when)].T, **args)
        axs[1, col].pcolormesh(mats[("rec_rec", when)], **args)
        mesh = axs[2, col].pcolormesh(mats[("rec_out", when)], **args)
        axs[0, col].set_title(title)
        axs[2, col].set_xlabel("recurrent neuron (index)")
    axs[0, 0].set_ylabel("$W_\\mathrm{in}$\ninput neuron\n(pre, index)")
    axs[1, 0].set_ylabel("$W_\\mathrm{rec}$\nrecurrent neuron\n(post, index)")
    axs[2, 0].set_ylabel("$W_\\mathrm{out}$\nreadout\n(post, index)")
    # Readout rows are cells [k, k+1): tick their centres with the index k.
    axs[2, 0].set_yticks(np.arange(n_out) + 0.5, [str(k) for k in range(n_out)])
    fig.align_ylabels(axs[:, 0])
    fig.tight_layout()
    fig.colorbar(mesh, ax=axs, label="weight (pA)", fraction=0.04, pad=0.02)
    fig.text(0.01, 0.005, "x: recurrent neuron, presynaptic in W_rec and W_out, postsynaptic in W_in",
             fontsize=7, color="0.3")
    return fig


# ---------------------------------------------------------------------------------------------
# Held-out evaluation: accuracy over training and the last confusion matrix


def plot_evaluation(run):
    run = _as_run(run)
    if not run.has("evaluation.csv"):
        if run.has("error.npy"):
            raise NotRecorded("the online N-MNIST example's test iterations are in the training-error figure (shaded)")
        raise NotRecorded("no held-out split evaluated (run with --test-data)")
    table = np.genfromtxt(os.path.join(run.path, "evaluation.csv"), delimiter=",", names=True, ndmin=1)
    confusion = run.load("confusion_matrix.npy", "the evaluation figure")[-1]  # [C, C]: row = class, column = class given
    fig, (ax, ax_cm) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=DPI, gridspec_kw={"width_ratios": [1.3, 1]})
    if run.has("accuracy.npy"):
        train = run.load("accuracy.npy")
        iters = np.arange(1, len(train) + 1)
        ax.plot(iters, train, c=BLUE, alpha=0.35, lw=0.8, label="training batch")
        window = max(1, len(train) // 20)
        if window > 1:
            smooth = np.convolve(train, np.ones(window) / window, mode="valid")
            ax.plot(iters[window - 1:], smooth, c=BLUE, lw=1.5, label=f"training, mean of {window}")
    ax.plot(table["iteration"], table["accuracy"], c=RED, marker="o", ms=4, label=f"held-out ({int(table['samples'][-1])} samples)")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("training iteration")
    ax.set_ylabel("accuracy (fraction)")
    ax.set_title(f"accuracy; last held-out {table['accuracy'][-1]:.3f}", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    rows = confusion.sum(axis=1, keepdims=True)
    shares = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    image = ax_cm.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    C = confusion.shape[0]
    if C <= 12:
        for i in range(C):
            for j in range(C):
                ax_cm.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=7,
                           color="white" if shares[i, j] > 0.6 else "black")
    ticks = range(C) if C <= 20 else range(0, C, max(1, C // 10))
    ax_cm.set_xticks(ticks)
    ax_cm.set_yticks(ticks)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax_cm.set_xlabel("class given")
    ax_cm.set_ylabel("class")
    ax_cm.set_title(f"confusion after iteration {int(table['iteration'][-1])} (row shares, counts)", fontsize=10)
    fig.colorbar(image, ax=ax_cm, fraction=0.046, label="share of the class")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# All figures


def figures(run):
    """(file stem, function making the figure) for every figure, in the tutorial's order."""
    run = _as_run(run)
    if run.has("evaluation.csv") and not run.has("loss.npy"):  # an evaluation-only folder (--evaluate)
        return [("evaluation", lambda: plot_evaluation(run))]

    def dynamics(which):
        def make():
            recorded = run.recorded_iterations()
            return plot_dynamics(run, recorded[0] if which == "first" else recorded[-1])
        return make

    return [
        ("pattern", lambda: plot_pattern(run)),
        ("training_error", lambda: plot_training_error(run)),
        ("dynamics_first", dynamics("first")),
        ("dynamics_last", dynamics("last")),
        ("weight_time_courses", lambda: plot_weight_time_courses(run)),
        ("weight_matrices", lambda: plot_weight_matrices(run)),
        ("evaluation", lambda: plot_evaluation(run)),
    ]


def render_all(run_dir, out_dir=None, fmt="png", log=print):
    """Save every figure into out_dir (default run_dir). Returns (written paths, problems)."""
    run = Run(run_dir)
    out_dir = out_dir or run_dir
    os.makedirs(out_dir, exist_ok=True)
    written, problems = [], []
    for stem, make in figures(run):
        try:
            fig = make()
        except NotRecorded as err:  # not an error: the run was asked not to record
            log(f"plot_run.py: {stem}: not drawn: {err}")
            continue
        except (MissingFile, ValueError) as err:
            problems.append(f"{stem}: skipped: {err}")
            log(f"plot_run.py: {problems[-1]}")
            continue
        path = os.path.join(out_dir, f"{stem}.{fmt}")
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
        log(f"wrote {path}")
    return written, problems


def main(argv=None):
    parser = argparse.ArgumentParser(description="Draw the e-prop tutorial figures of a run folder.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="eprop-dense run folder or NEST export folder")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: RUN_DIR)")
    parser.add_argument("--format", default="png", choices=["png", "pdf", "svg"], help="file format (default png)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.run_dir):
        print(f"plot_run.py: run folder {args.run_dir} does not exist", file=sys.stderr)
        return 1
    written, problems = render_all(args.run_dir, args.out, args.format,
                                   log=lambda msg: print(msg, file=sys.stdout if msg.startswith("wrote") else sys.stderr))
    return 1 if problems or not written else 0


if __name__ == "__main__":
    sys.exit(main())
