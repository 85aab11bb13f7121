#!/usr/bin/env python3
"""Run NEST 3.10's N-MNIST e-prop example network (online generation) on a dataset in the N-MNIST layout and export
everything eprop-dense needs to reproduce it.

The network, parameters, random draws and call sequence are those of NEST 3.10's
pynest/examples/eprop_plasticity/eprop_supervised_classification_neuromorphic_mnist.py (early stopping off), with
one virtual process instead of four; this file re-implements it, it is not a copy. In order:

* np.random.seed(seed); n_in = 1196 (the 2 x 34 x 34 pixels minus NEST's blocklist of 1116), one spike_generator and
  one parrot_neuron per kept pixel, n_rec recurrent neurons (`model`), n_out eprop_readout, n_out target and one
  learning-window step_rate_generator;
* draws: randn(n_in, n_rec).T / sqrt(n_in) (W_in), randn(n_rec, n_rec).T / sqrt(n_rec) with zero diagonal (W_rec),
  Glorot-uniform(n_rec, n_out).T * (1 - kappa) (W_out), randn(n_rec, n_out) / (1 - kappa) (feedback B), then the masks
  choice([0, 1], p=[s, 1 - s]) for W_in, W_rec, W_out (sparsity s each), multiplied in; an eprop_synapse exists where
  the masked weight is non-zero (connected with np.where, one_to_one, delay 1 ms);
* then the training and test loaders' permutations of their sample lists (Train first); each phase takes the next
  group_size samples of its loader's permutation (wrapping around);
* the phases: n_iter_train training phases with eta = 5e-3 (1 - kappa)^2, then n_iter_test test phases with eta 0;
  each sets eprop_synapse's optimizer defaults (with that eta) and the generators, simulates 2 ms, 1 ms (then
  evaluates the previous phase) and group_size * 300 - 3 ms; at the end 2 ms, 1 ms, the last evaluation, and the
  forced final update: a spike_generator (weight 1000 onto every parrot and recurrent neuron) fires at
  final_update_ms = iterations * group_size * 300 + 4 within a last Simulate of 3 ms.

Time line (1 ms = 1 step; N = iterations, G = group_size, phase n = 0..N-1, sample g = 0..G-1 of it): a sample's
event at t_us is mapped to r = round(t_us * 300 / 336040) in 0..300; its generator fires at n G 300 + g 300 + r + 1,
and the parrot relays it with stamp n G 300 + g 300 + r + 2 (the step in which the recurrent neurons integrate it).
A generator spike at exactly (n + 1) G 300 + 1 (r = 300 in the phase's last sample) is never emitted when another
phase follows, because that phase replaces the spike_times first. Readout k's target is 1 from n G 300 + g 300 + 2
when the sample's label is k, else 0; the learning window is 0 from n G 300 + g 300 + 2 and 1 from
n G 300 + g 300 + 292. Phase n's eta is set while the clock stands at n G 300 ms. Loss and error of iteration n come
from the readout multimeter's samples with times in (n G 300 + 2, (n + 1) G 300 + 2], the last 10 of every 300:
loss = 0.5 * mean over readouts and samples of sum over the window of (y - y*)^2; error = 1 - fraction of samples whose
argmax over readouts of the window-mean of y equals that of y*.

Outputs in OUT (layout [post, pre], as nest_online_export.py): params.json; input_spike_steps.npy and
input_spike_senders.npy (int64 [E]: parrot stamp and input index of every input spike of the task, sorted by (step,
sender), one entry per generator spike, so coincident spikes, which a parrot relays as one event of multiplicity n,
appear as n equal entries; the final update is not included); labels.npy (int64 [N G], in simulation order);
w_in_rec_init.npy, w_rec_rec_init.npy, w_rec_out_init.npy, w_out_rec_feedback.npy (float64, read back after Connect);
mask_in_rec.npy, mask_rec_rec.npy, mask_rec_out.npy (bool: an eprop_synapse exists); w_*_final.npy (float64);
loss.npy, error.npy (float64 [N]); spikes_rec_times_ms.npy (float64) and spikes_rec_senders.npy (int32, 0-based)
sorted by time then neuron, every recurrent spike of the run (the final update's included); with record=True the
recordings of nest_online_export.py (rec_*, out_* over the task (2, 2 + N G 300] ms, wr_* over the same window,
weight recorder on inputs 0-4 and recurrent 0-4 onto recurrent 0-4 and every readout).

Usage (from the repository root, NEST 3.10 in .venv):

    .venv/bin/python notebooks-data/crossval/nest_online_nmnist.py --out DIR --data NMNIST_DIR [--config JSON]

NMNIST_DIR must contain Train/<digit>/*.bin and Test/<digit>/*.bin (the real N-MNIST, or
notebooks-data/nmnist_synthetic.py's output); --config holds run()'s keyword arguments, e.g.
'{"n_rec": 30, "group_size": 5, "n_iter_train": 3, "n_iter_test": 1}'.
"""

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import nmnist_synthetic  # noqa: E402  (the pixel numbering and NEST's blocklist)
from nest_online_export import RECORD_N, RECORD_W, initial_weights, mask, recordings, weights  # noqa: E402

MODELS = ("eprop_iaf", "eprop_iaf_adapt", "eprop_iaf_psc_delta", "eprop_iaf_psc_delta_adapt")
SEQUENCE = 300  # steps (ms) per sample
LEARNING_WINDOW = 10  # last steps of every sample with a learning signal (and in the loss)
OFFSET_GEN, DELAY_IN_REC, EXTENSION_SIM, FINAL_UPDATE = 1, 1, 1, 3  # ms, the example's
TOTAL_OFFSET = OFFSET_GEN + DELAY_IN_REC
TIME_MAX_US = 336040  # the example's longest recording: mapped to SEQUENCE ms
ETA_DEFAULT = 1e-4  # NEST's default eta of eprop_synapse's optimizer (in force until the first phase sets its own)


def check_blocklist(nest):
    """NEST's installed NMNIST_pixels_blocklist.txt (if shipped) must equal nmnist_synthetic's copy."""
    path = os.path.join(os.path.dirname(nest.__file__), "doc", "examples", "pynest", "eprop_plasticity",
                        "NMNIST_pixels_blocklist.txt")
    if os.path.exists(path):
        installed = np.loadtxt(path)
        if not np.array_equal(installed, nmnist_synthetic.blocklist()):
            raise RuntimeError(f"{path} differs from nmnist_synthetic.BLOCKLIST_RANGES")
        return "<nest package>/" + os.path.relpath(path, os.path.dirname(nest.__file__))
    return None


def read_sample(path, active):
    """The example's load_image: per kept pixel (in `active` order), the event times mapped to 0..300 ms, in file
    order (float64)."""
    with open(path, "rb") as f:
        b = np.frombuffer(f.read(), dtype=np.uint8).astype(np.int64)
    x, y, b2, b3, b4 = (b[c::5] for c in range(5))
    t_us = ((b2 << 16) | (b3 << 8) | b4) & 0x7FFFFF
    t_ms = np.around(t_us * float(SEQUENCE) / TIME_MAX_US)  # multiply first, as the example does
    pixel = (b2 >> 7) * nmnist_synthetic.N_X * nmnist_synthetic.N_Y + y * nmnist_synthetic.N_X + x
    return [t_ms[pixel == p] for p in active], len(pixel), int(np.count_nonzero(~np.isin(pixel, active)))


class Samples:
    """One split (Train or Test): the sample files of labels 0..n_labels-1 (label by label, files in sorted order),
    a permutation drawn from numpy's global generator at construction, and groups taken from it in turn."""

    def __init__(self, folder, n_labels, group_size):
        self.paths, self.labels = [], []
        for label in range(n_labels):
            sub = os.path.join(folder, str(label))
            if not os.path.isdir(sub):
                raise FileNotFoundError(f"{sub} is missing")
            for name in sorted(os.listdir(sub)):
                self.paths.append(os.path.join(sub, name))
                self.labels.append(label)
        if not self.paths:
            raise FileNotFoundError(f"no samples in {folder}")
        self.group_size = group_size
        self.position = 0
        self.order = np.random.permutation(len(self.paths))

    def next_group(self):
        chosen = np.take(self.order, range(self.position, self.position + self.group_size), mode="wrap")
        self.position = (self.position + self.group_size) % len(self.paths)
        return [self.paths[i] for i in chosen], [self.labels[i] for i in chosen]


def glorot(fan_in, fan_out):
    limit = np.sqrt(3.0 * (1.0 / max(1.0, (fan_in + fan_out) / 2.0)))
    return np.random.uniform(low=-limit, high=limit, size=(fan_in, fan_out))


def run(out_dir, data_dir, *, model="eprop_iaf", n_rec=150, n_out=10, group_size=100, n_iter_train=10, n_iter_test=2,
        seed=1, sparsity=(0.75, 0.99, 0.0), record=False, description=None, threads=1):
    """Builds, simulates and exports one configuration (see the module docstring); returns a summary dict. `threads`:
    NEST's virtual processes (1 for the cross-validation; Benchmarks/online_side_by_side.py also times 2)."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}")
    if not 1 <= n_out <= 10:
        raise ValueError("n_out must be 1..10 (readout k stands for digit k)")
    for split in ("Train", "Test"):
        if not os.path.isdir(os.path.join(data_dir, split)):
            raise FileNotFoundError(f"{data_dir} has no {split}/ folder: give a folder with Train/<digit>/*.bin and "
                                    f"Test/<digit>/*.bin (N-MNIST, or notebooks-data/nmnist_synthetic.py's output)")
    import nest

    blocklist_file = check_blocklist(nest)
    nest.ResetKernel()
    nest.set(print_time=False, resolution=1.0, total_num_virtual_procs=threads)
    np.random.seed(seed)
    simulate_s = [0.0]  # NEST's own timer summed over the Simulate calls (time_simulate is the last call's)

    def simulate(ms):
        nest.Simulate(ms)
        simulate_s[0] += float(nest.GetKernelStatus("time_simulate"))

    active = nmnist_synthetic.active_pixels()
    n_in = len(active)
    G = group_size
    iterations = n_iter_train + n_iter_test
    task_ms = iterations * G * SEQUENCE  # the evaluated part: phases 0..N-1

    params_out = {"C_m": 1.0, "E_L": 0.0, "eprop_isi_trace_cutoff": 100, "I_e": 0.0, "tau_m": 100.0, "V_m": 0.0}
    params_rec = {
        "C_m": 1.0,
        "c_reg": 2.0 / SEQUENCE,
        "E_L": 0.0,
        "eprop_isi_trace_cutoff": 100,
        "f_target": 10.0,
        "flush_event_send_interval": float(SEQUENCE),
        "I_e": 0.0,
        "kappa": 0.99,
        "kappa_reg": 0.99,
        "surrogate_gradient_function": "piecewise_linear",
        "surrogate_gradient_height": 0.5,
        "surrogate_gradient_width": 1.0 / 1.7,
        "t_ref": 0.0,
        "tau_m": 30.0,
        "V_m": 0.0,
        "V_th": 0.6,
    }
    scale = 1.0 - params_rec["kappa"]
    params_rec["c_reg"] /= scale**2
    if model == "eprop_iaf_adapt":
        params_rec["adapt_beta"] = 0.0
    if model in ("eprop_iaf_psc_delta", "eprop_iaf_psc_delta_adapt"):
        params_rec.update(V_reset=-0.5, c_reg=2.0 / SEQUENCE / scale**2, V_th=0.5)

    gen_in = nest.Create("spike_generator", n_in)
    nrns_in = nest.Create("parrot_neuron", n_in)
    nrns_rec = nest.Create(model, n_rec, params_rec)
    nrns_out = nest.Create("eprop_readout", n_out, params_out)
    gen_target = nest.Create("step_rate_generator", n_out)
    gen_window = nest.Create("step_rate_generator")

    # The readout multimeter the example evaluates (from 2 ms on, never stopped).
    mm_out = nest.Create("multimeter", params={"interval": 1.0, "start": float(TOTAL_OFFSET),
                                                "record_from": ["V_m", "readout_signal", "target_signal", "error_signal"]})
    sr_in = nest.Create("spike_recorder")  # the parrots: checks the exported input spikes
    sr_rec = nest.Create("spike_recorder")
    if record:
        window = {"start": float(TOTAL_OFFSET), "stop": float(TOTAL_OFFSET + task_ms)}
        rec_names = ["V_m", "surrogate_gradient", "learning_signal"] + (
            ["V_th_adapt", "adaptation"] if model in ("eprop_iaf_adapt", "eprop_iaf_psc_delta_adapt") else [])
        mm_rec = nest.Create("multimeter", params=dict(window, interval=1.0, record_from=rec_names))
        mm_out_task = nest.Create("multimeter", params=dict(window, interval=1.0, record_from=[
            "V_m", "readout_signal", "target_signal", "error_signal"]))
        wr = nest.Create("weight_recorder", params=dict(
            window, senders=nrns_in[:RECORD_W] + nrns_rec[:RECORD_W], targets=nrns_rec[:RECORD_W] + nrns_out))

    # The example's draws, in its order (float64 throughout).
    w_in = np.array(np.random.randn(n_in, n_rec).T / np.sqrt(n_in))
    w_rec = np.array(np.random.randn(n_rec, n_rec).T / np.sqrt(n_rec))
    np.fill_diagonal(w_rec, 0.0)
    w_out = np.array(glorot(n_rec, n_out).T) * scale
    w_fb = np.array(np.random.randn(n_rec, n_out)) / scale
    s_in, s_rec, s_out = (float(s) for s in sparsity)
    for w, s in ((w_in, s_in), (w_rec, s_rec), (w_out, s_out)):
        w *= np.random.choice([0, 1], w.shape, p=[s, 1 - s])

    optimizer = {"type": "gradient_descent", "batch_size": 1, "optimize_each_step": False, "Wmin": -100.0,
                 "Wmax": 100.0}
    syn_defaults = {"optimizer": dict(optimizer)}
    if record:
        syn_defaults["weight_recorder"] = wr
    eta_train, eta_test = 5e-3 * scale**2, 0.0

    static = {"synapse_model": "static_synapse", "delay": 1.0}
    one_to_one, all_to_all = {"rule": "one_to_one"}, {"rule": "all_to_all", "allow_autapses": False}
    nest.SetDefaults("eprop_synapse", syn_defaults)
    nest.Connect(gen_in, nrns_in, one_to_one, static)

    def connect_sparse(w, pre, post):
        post_idx, pre_idx = np.where(w)
        values = w[post_idx, pre_idx].flatten()
        syn = {"synapse_model": "eprop_synapse", "weight": values, "delay": [1.0 for _ in values]}
        nest.Connect(np.array(pre.tolist())[pre_idx], np.array(post.tolist())[post_idx], one_to_one, syn)

    connect_sparse(w_in, nrns_in, nrns_rec)
    connect_sparse(w_rec, nrns_rec, nrns_rec)
    connect_sparse(w_out, nrns_rec, nrns_out)
    nest.Connect(nrns_out, nrns_rec, all_to_all,
                 {"synapse_model": "eprop_learning_signal_connection", "delay": 1.0, "weight": w_fb})
    rate = {"synapse_model": "rate_connection_delayed", "delay": 1.0}
    nest.Connect(gen_target, nrns_out, one_to_one, dict(rate, receptor_type=2))
    nest.Connect(gen_window, nrns_out, all_to_all, dict(rate, receptor_type=1))
    nest.Connect(nrns_in, sr_in, all_to_all, static)
    nest.Connect(nrns_rec, sr_rec, all_to_all, static)
    if record:
        nest.Connect(mm_rec, nrns_rec[:RECORD_N], all_to_all, static)
        nest.Connect(mm_out_task, nrns_out, all_to_all, static)
    nest.Connect(mm_out, nrns_out, all_to_all, static)

    train = Samples(os.path.join(data_dir, "Train"), n_out, G)
    test = Samples(os.path.join(data_dir, "Test"), n_out, G)

    gen_final = nest.Create("spike_generator", 1)
    nest.Connect(gen_final, nrns_in + nrns_rec, "all_to_all", {"weight": 1000.0})

    init = initial_weights(nest, nrns_in, nrns_rec, nrns_out)
    masks = {
        "mask_in_rec": mask(nest, nrns_in, nrns_rec),
        "mask_rec_rec": mask(nest, nrns_rec, nrns_rec),
        "mask_rec_out": mask(nest, nrns_rec, nrns_out),
    }
    # NEST holds exactly the float64 draws, and a synapse exactly where the masked draw is non-zero.
    for name, w in (("in_rec", w_in), ("rec_rec", w_rec), ("rec_out", w_out)):
        assert np.array_equal(init[f"w_{name}_init"], w), name
        assert np.array_equal(masks[f"mask_{name}"], w != 0), name
    assert np.array_equal(init["w_out_rec_feedback"], w_fb)

    state = {"n_iter_sim": 0}
    loss, error, labels, etas, emitted = [], [], [], [], []
    stats = {"events": 0, "events_blocklisted": 0}

    def evaluate():
        ev = mm_out.get("events")
        senders, times = np.asarray(ev["senders"]), np.asarray(ev["times"])
        n = state["n_iter_sim"]
        sel = (times > (n - 1) * G * float(SEQUENCE) + TOTAL_OFFSET) & (times <= n * G * float(SEQUENCE) + TOTAL_OFFSET)
        by_readout = lambda key: np.array(  # noqa: E731
            [np.asarray(ev[key])[sel][senders[sel] == i] for i in np.unique(senders)])
        y = by_readout("readout_signal").reshape((n_out, 1, G, SEQUENCE))[:, :, :, -LEARNING_WINDOW:]
        y_star = by_readout("target_signal").reshape((n_out, 1, G, SEQUENCE))[:, :, :, -LEARNING_WINDOW:]
        loss.extend(0.5 * np.mean(np.sum((y - y_star) ** 2, axis=3), axis=(0, 2)))
        hits = np.argmax(np.mean(y_star, axis=3), axis=0) == np.argmax(np.mean(y, axis=3), axis=0)
        error.extend(1.0 - np.mean(hits, axis=1))

    def phase(eta, loader):
        n = state["n_iter_sim"]
        nest.SetDefaults("eprop_synapse", dict(syn_defaults, optimizer=dict(optimizer, eta=eta)))
        etas.append(eta)
        paths, group_labels = loader.next_group()
        labels.extend(group_labels)
        offset = n * G * float(SEQUENCE)
        spike_times = [[] for _ in range(n_in)]
        targets = [{"amplitude_times": np.arange(0.0, G * float(SEQUENCE), float(SEQUENCE)) + offset + TOTAL_OFFSET,
                    "amplitude_values": np.zeros(G)} for _ in range(n_out)]
        for g, (path, label) in enumerate(zip(paths, group_labels)):
            targets[label]["amplitude_values"][g] = 1.0
            image, n_events, n_blocked = read_sample(path, active)
            stats["events"] += n_events
            stats["events_blocklisted"] += n_blocked
            for i, rel in enumerate(image):
                if len(rel) > 0:
                    spike_times[i].extend(offset + g * float(SEQUENCE) + np.array(rel) + OFFSET_GEN)
        window = {"amplitude_times": np.hstack([np.array([0.0, float(SEQUENCE - LEARNING_WINDOW)]) + offset
                                                + g * float(SEQUENCE) + TOTAL_OFFSET for g in range(G)]),
                  "amplitude_values": np.tile([0.0, 1.0], G)}
        gen_in.set([{"spike_times": st} for st in spike_times])
        gen_target.set(targets)
        gen_window.set(window)
        emitted.append(spike_times)
        simulate(float(TOTAL_OFFSET))
        simulate(float(EXTENSION_SIM))
        if n > 0:
            evaluate()
        simulate(G * float(SEQUENCE) - TOTAL_OFFSET - EXTENSION_SIM)
        state["n_iter_sim"] += 1

    for _ in range(n_iter_train):
        phase(eta_train, train)
    for _ in range(n_iter_test):
        phase(eta_test, test)
    simulate(float(TOTAL_OFFSET))
    simulate(float(EXTENSION_SIM))
    evaluate()
    final_update_ms = state["n_iter_sim"] * G * float(SEQUENCE) + TOTAL_OFFSET + EXTENSION_SIM + 1
    gen_final.set({"spike_times": [final_update_ms]})
    simulate(float(FINAL_UPDATE))
    simulated = nest.biological_time
    assert simulated == task_ms + TOTAL_OFFSET + EXTENSION_SIM + FINAL_UPDATE, simulated

    # The input spikes: phase n's generator spikes at s are emitted in step s - 1, which must come before the next
    # phase replaces the spike_times (at (n + 1) G 300 ms); the last phase's are all emitted. Parrot stamp = s + 1.
    steps, senders = [], []
    lost = 0
    for n, spike_times in enumerate(emitted):
        end = (n + 1) * G * SEQUENCE if n + 1 < len(emitted) else simulated
        for i, st in enumerate(spike_times):
            st = np.asarray(st, dtype=np.float64)
            keep = st - 1 < end
            lost += int(np.count_nonzero(~keep))
            steps.append(st[keep].astype(np.int64) + 1)
            senders.append(np.full(int(np.count_nonzero(keep)), i, dtype=np.int64))
    steps = np.concatenate(steps) if steps else np.zeros(0, dtype=np.int64)
    senders = np.concatenate(senders) if senders else np.zeros(0, dtype=np.int64)
    order = np.lexsort((senders, steps))
    steps, senders = steps[order], senders[order]
    # ... checked against what the parrots relayed (the spike recorder writes an event of multiplicity n n times).
    ev = sr_in.get("events")
    p_steps = np.rint(np.asarray(ev["times"], dtype=np.float64)).astype(np.int64)
    p_senders = np.asarray(ev["senders"], dtype=np.int64) - nrns_in[0].global_id
    final_relay = p_steps == int(final_update_ms) + 1
    assert np.count_nonzero(final_relay) == n_in, "every parrot relays the final update once"
    p_order = np.lexsort((p_senders[~final_relay], p_steps[~final_relay]))
    assert np.array_equal(p_steps[~final_relay][p_order], steps), "parrot stamps differ from the generators' + 1"
    assert np.array_equal(p_senders[~final_relay][p_order], senders), "parrot senders differ from the generators'"
    coincident = int(len(steps) - len({(a, b) for a, b in zip(steps.tolist(), senders.tolist())}))

    spk = sr_rec.get("events")
    times = np.asarray(spk["times"], dtype=np.float64)
    rec_senders = np.asarray(spk["senders"]) - nrns_rec[0].global_id
    order = np.lexsort((rec_senders, times))

    arrays = dict(init)
    arrays.update(masks)
    arrays.update(
        w_in_rec_final=weights(nest, nrns_in, nrns_rec),
        w_rec_rec_final=weights(nest, nrns_rec, nrns_rec),
        w_rec_out_final=weights(nest, nrns_rec, nrns_out),
        input_spike_steps=steps,
        input_spike_senders=senders,
        labels=np.asarray(labels, dtype=np.int64),
        loss=np.asarray(loss, dtype=np.float64),
        error=np.asarray(error, dtype=np.float64),
        spikes_rec_times_ms=times[order],
        spikes_rec_senders=rec_senders[order].astype(np.int32),
    )
    assert arrays["loss"].shape == arrays["error"].shape == (iterations,)
    assert arrays["labels"].shape == (iterations * G,)
    if record:
        arrays.update(recordings(mm_rec, nrns_rec[:RECORD_N], rec_names, "rec"))
        arrays.update(recordings(mm_out_task, nrns_out, ["V_m", "readout_signal", "target_signal", "error_signal"],
                                 "out"))
        wev = wr.get("events")
        first_in, first_rec, first_out = nrns_in[0].global_id, nrns_rec[0].global_id, nrns_out[0].global_id
        wsrc, wtgt = np.asarray(wev["senders"]), np.asarray(wev["targets"])
        arrays.update(
            wr_times_ms=np.asarray(wev["times"], dtype=np.float64),
            wr_weights=np.asarray(wev["weights"], dtype=np.float64),
            wr_sender_pop=(wsrc >= first_rec).astype(np.int32),
            wr_sender_idx=np.where(wsrc >= first_rec, wsrc - first_rec, wsrc - first_in).astype(np.int32),
            wr_target_pop=(wtgt >= first_out).astype(np.int32),
            wr_target_idx=np.where(wtgt >= first_out, wtgt - first_out, wtgt - first_rec).astype(np.int32))

    os.makedirs(out_dir, exist_ok=True)
    for name, a in arrays.items():
        np.save(os.path.join(out_dir, name + ".npy"), a)
    input_stats = {
        "events_read": stats["events"],
        "events_on_blocklisted_pixels": stats["events_blocklisted"],
        "input_spikes": int(len(steps)),
        "coincident_input_spikes": coincident,
        "generator_spikes_never_emitted": lost,
        "blocklist_checked_against": blocklist_file,
    }
    extra = {"crossval": description} if description is not None else {}
    with open(os.path.join(out_dir, "params.json"), "w") as f:
        json.dump(
            {
                **extra,
                "task": "classification",
                "model": model,
                "n_in": n_in,
                "n_rec": n_rec,
                "n_out": n_out,
                "params_rec": params_rec,
                "params_out": params_out,
                "optimizer": optimizer,
                "sequence_steps": SEQUENCE,
                "learning_window": LEARNING_WINDOW,
                "group_size": G,
                "iterations": iterations,
                "eta_per_iteration": etas,
                "simulated_steps": int(round(simulated)),
                "final_update_ms": final_update_ms,
                "nest_version": nest.__version__,
                "numpy_version": np.__version__,
                "dataset": data_dir,
                "sparsity": [s_in, s_rec, s_out],
                "seed": seed,
                "input_stats": input_stats,
            },
            f,
            indent=1,
        )
    return {"loss": arrays["loss"], "error": arrays["error"], "recurrent_spikes": int(len(times)),
            "simulate_s": simulate_s[0], **input_stats}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="export folder (created)")
    p.add_argument("--data", required=True, help="folder with Train/<digit>/*.bin and Test/<digit>/*.bin")
    p.add_argument("--config", metavar="JSON", default="{}",
                   help="run()'s keyword arguments: model, n_rec, n_out, group_size, n_iter_train, n_iter_test, seed, "
                        "sparsity, record, description")
    a = p.parse_args()
    if not all(os.path.isdir(os.path.join(a.data, s)) for s in ("Train", "Test")):
        print(f"nest_online_nmnist.py: {a.data} needs Train/ and Test/ folders (Train/<digit>/*.bin, "
              f"Test/<digit>/*.bin): the N-MNIST dataset or notebooks-data/nmnist_synthetic.py's output",
              file=sys.stderr)
        sys.exit(2)
    summary = run(a.out, a.data, **json.loads(a.config))
    print(json.dumps({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in summary.items()}))


if __name__ == "__main__":
    main()
