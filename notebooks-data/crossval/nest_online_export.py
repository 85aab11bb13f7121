#!/usr/bin/env python3
"""Export NEST 3.10's online e-prop regression test for the Swift tests.

NEST 3.10's `testsuite/pytests/synapses/test_eprop_plasticity.py::test_eprop_regression` trains four networks
(`eprop_iaf` with Adam, `eprop_iaf_adapt`, `eprop_iaf_psc_delta` and `eprop_iaf_psc_delta_adapt` with gradient
descent) on the sine-wave task with T = 100 steps, 5 iterations, and compares the loss per iteration with
reference values printed to 14 decimals. This script builds the same networks (same parameters, same numpy
draws in the same order, seed 1), runs them in NEST and writes, per model, into OUT/<model>/:

* w_in_rec_init.npy, w_rec_rec_init.npy, w_rec_out_init.npy, w_out_rec_feedback.npy: initial weights read back
  from NEST, layout [post, pre], stored as float32 (they are float32 draws, so this is exact: checked);
* w_in_rec_final.npy, w_rec_rec_final.npy, w_rec_out_final.npy: weights read back after Simulate (each as of
  its presynaptic neuron's last spike or flush event);
* input_spike_bool_seq.npy [n_in, T] (bool): the frozen input pattern, repeated every iteration;
* target_signal_seq.npy [T]: the target (identically 0 here, since every T // period is 0);
* loss.npy [5]: the loss as the test computes it; spikes_rec_times_ms.npy / spikes_rec_senders.npy: every
  recurrent spike (stamp in ms, 0-based neuron), sorted by time then neuron;
* params.json: the parameters set and the test's reference losses.

Usage (from the repository root, NEST 3.10 in .venv):

    .venv/bin/python notebooks-data/crossval/nest_online_export.py --out notebooks-data/reference/nest-3.10-online-regression-test
    .venv/bin/python notebooks-data/crossval/nest_online_export.py --variants --out notebooks-data/reference/nest-3.10-online-variants
    .venv/bin/python notebooks-data/crossval/nest_online_export.py --out DIR --config '{"model": "eprop_iaf", "n": 30}'

`--config` exports one configuration given as run()'s keyword arguments (crossval_online.py builds these): more
readouts (one target per readout), other sizes, seeds and targets, the sine-wave example's setup with its forced final
update (params.json then has "final_update": true), the input parrots' flush interval ("flush_event_send_interval_in").
A config with "setup": "nmnist" is NEST's N-MNIST example instead (nest_online_nmnist.py; the other keys are its run()'s
keyword arguments, plus "data": an N-MNIST folder, by default a synthetic one that nmnist_synthetic.py writes into
OUT/../nmnist-data, with "synthetic": {...} overriding NMNIST_SYNTHETIC's settings):

    .venv/bin/python notebooks-data/crossval/nest_online_export.py --out DIR --config '{"setup": "nmnist", "n_rec": 30, "group_size": 5, "n_iter_train": 3, "n_iter_test": 1}'
"""

import argparse
import json
import os

import numpy as np

MODELS = {
    # model: (optimizer, NEST's loss_nest_reference)
    "eprop_iaf": ("adam", [0.14000491891386, 0.28735818029752, 0.22263713699860, 0.23015072431384, 0.17565248170694]),
    "eprop_iaf_adapt": (
        "gradient_descent",
        [0.02242584487453, 0.01916753791522, 0.00571493935652, 0.00037875376195, 0.00037823157578],
    ),
    "eprop_iaf_psc_delta": (
        "gradient_descent",
        [0.27039631749159, 0.51390204375229, 0.53473859833866, 0.53608474802202, 0.49323580244201],
    ),
    "eprop_iaf_psc_delta_adapt": (
        "gradient_descent",
        [0.16416646182675, 0.27952159282830, 0.29937515524341, 0.26160957500433, 0.26384514215024],
    ),
}

# Further configurations on the test's network and task (smaller: 40 inputs, 40 recurrent neurons), each changing
# settings the four regression runs leave at one value. `--variants` exports them (no NEST reference values exist for
# these: the export itself is the reference). Keys: model, optimizer, n (n_in = n_rec), rec / out / opt: overrides of
# the recurrent, readout and optimizer parameters.
VARIANTS = {
    "iaf_adapt_adam_per_spike": dict(
        model="eprop_iaf_adapt", optimizer="adam", opt=dict(optimize_each_step=False)),
    "iaf_tref3_arctan_adam_batch7": dict(
        model="eprop_iaf", optimizer="adam", rec=dict(t_ref=3.0, surrogate_gradient_function="arctan_derivative"),
        opt=dict(batch_size=7)),
    "psc_delta_tref2_exponential_nocutoff_flush50_refractory_input": dict(
        model="eprop_iaf_psc_delta", optimizer="gradient_descent",
        rec=dict(t_ref=2.0, surrogate_gradient_function="exponential", eprop_isi_trace_cutoff=float("inf"),
                 flush_event_send_interval=50.0, refractory_input=True),
        out=dict(eprop_isi_trace_cutoff=float("inf"))),
    "psc_delta_adapt_tref2_fast_sigmoid_gd_batch50_per_spike": dict(
        model="eprop_iaf_psc_delta_adapt", optimizer="gradient_descent",
        rec=dict(t_ref=2.0, surrogate_gradient_function="fast_sigmoid_derivative"),
        opt=dict(batch_size=50, optimize_each_step=False)),
    "iaf_I_e_V_min_cutoff7_flush7": dict(
        model="eprop_iaf", optimizer="gradient_descent",
        rec=dict(I_e=0.0005, V_min=-0.05, eprop_isi_trace_cutoff=7.0, flush_event_send_interval=7.0),
        out=dict(I_e=0.0002, V_min=-0.3, eprop_isi_trace_cutoff=7.0)),
    "psc_delta_I_e_V_min_adam_batch3": dict(
        model="eprop_iaf_psc_delta", optimizer="adam", rec=dict(I_e=0.005, V_min=-0.6, t_ref=1.0),
        opt=dict(batch_size=3)),
    # Mixed populations (three models in one recurrent population) with a kappa per neuron.
    "mixed_psc_delta_adapt_psc_delta_iaf_adapt_kappa_per_neuron": dict(
        model="eprop_iaf_psc_delta_adapt", optimizer="gradient_descent", opt=dict(optimize_each_step=False),
        more_populations=[{"model": "eprop_iaf_psc_delta", "n": 10, "rec": {"t_ref": 2.0, "eprop_isi_trace_cutoff": 30}},
                          {"model": "eprop_iaf_adapt", "n": 10}],
        per_neuron={"kappa": [0.95 if j % 3 == 0 else 0.97 for j in range(40)]}),
}


def weights(nest, pre, post):
    """[post, pre] float64 matrix of the connections pre -> post (0 where there is none)."""
    conns = nest.GetConnections(source=pre, target=post)
    w = np.zeros((len(post), len(pre)))
    if len(conns) == 0:
        return w
    st = conns.get(["source", "target", "weight"])
    src = np.asarray(st["source"]) - pre[0].global_id
    tgt = np.asarray(st["target"]) - post[0].global_id
    w[tgt, src] = st["weight"]
    return w


def mask(nest, pre, post):
    """[post, pre] bool: True where an eprop_synapse pre -> post exists."""
    m = np.zeros((len(post), len(pre)), dtype=bool)
    conns = nest.GetConnections(source=pre, target=post, synapse_model="eprop_synapse")
    if len(conns):
        st = conns.get(["source", "target"])
        m[np.asarray(st["target"]) - post[0].global_id, np.asarray(st["source"]) - pre[0].global_id] = True
    return m


def initial_weights(nest, nrns_in, nrns_rec, nrns_out):
    """The four matrices of an export's initial state, read back from NEST: {name: [post, pre]}."""
    return {
        "w_in_rec_init": weights(nest, nrns_in, nrns_rec),
        "w_rec_rec_init": weights(nest, nrns_rec, nrns_rec),
        "w_rec_out_init": weights(nest, nrns_rec, nrns_out),
        "w_out_rec_feedback": weights(nest, nrns_out, nrns_rec),
    }


RECORD_N, RECORD_W = 2, 5  # recurrent neurons sampled by the multimeter, senders/targets of the weight recorder


def recordings(mm, nodes, names, prefix):
    """A multimeter's samples as eprop-dense writes them: {prefix_times_ms: [S], prefix_NAME: [len(nodes), S]}."""
    ev = mm.get("events")
    senders, times = np.asarray(ev["senders"]), np.asarray(ev["times"], dtype=np.float64)
    out = {}
    for name in names:
        out[f"{prefix}_{name}"] = np.array([np.asarray(ev[name])[senders == g] for g in nodes.tolist()], dtype=np.float64)
    out[f"{prefix}_times_ms"] = times[senders == nodes[0].global_id]
    return out


def run(model, out_dir, optimizer=None, n=100, rec=None, out=None, opt_overrides=None, *, n_in=None, n_rec=None,
        n_out=1, T=100, iterations=5, seed=1, setup="test", target_periods=None, final_update=None, flush_in=None,
        description=None, record=False, threads=1, more_populations=None, per_neuron=None, connection_probability=None):
    """Builds and simulates one configuration; without overrides, test_eprop_regression's for `model`. `threads`: NEST's
    virtual processes (1 for the cross-validation; Benchmarks/online_side_by_side.py also times 2).

    The keyword-only arguments (used by crossval_online.py through --config; their defaults keep the test's network):
    n_in, n_rec (default n each), n_out (readouts, one target per readout, drawn one after the other), T (steps per
    sequence), iterations, seed (numpy), setup "test" (test_eprop_regression's parameters and weight scaling) or
    "example" (eprop_supervised_regression_sine-waves.py's: its surrogate width, gradient descent once per spike,
    its per-model weight scaling, the forced final update), target_periods (the periods of the superimposed sines,
    default the test's [1000, 500, 333, 200], identically 0 for T < 200), final_update (default: True for the
    example), flush_in (flush_event_send_interval of the input parrots, default NEST's: none), more_populations (mixed
    populations: a list of {"model", "n", "rec"}, created after the first population, which keeps n_rec minus their
    sizes; each gets its model's settings of the setup, then "rec"), per_neuron ({name: [n_rec values]}, set on the
    recurrent neurons one by one after they are created, e.g. a tau_m per neuron), connection_probability ([p_in, p_rec,
    p_out]: sparse connectivity, masks drawn after the target as NEST's N-MNIST script draws them (create_mask with
    sparsity 1 - p), the plastic synapses then connected where the masked weights are non-zero, as that script does).
    """
    import nest

    the_test = (optimizer is None and n == 100 and rec is None and out is None and opt_overrides is None and n_in is None
                and n_rec is None and n_out == 1 and T == 100 and iterations == 5 and seed == 1 and setup == "test"
                and target_periods is None and not final_update and flush_in is None)
    loss_reference = MODELS[model][1] if the_test else None  # the test's reference losses apply to its network only
    if setup == "example":
        optimizer = optimizer or "gradient_descent"
        final_update = True if final_update is None else final_update
    optimizer = optimizer or MODELS[model][0]
    final_update = bool(final_update)
    nest.ResetKernel()
    nest.set(print_time=False, resolution=1.0, total_num_virtual_procs=threads)
    np.random.seed(seed)

    n_iter = iterations
    task = n_iter * T
    offset_gen, delay_in_rec, extension_sim = 1, 1, 3
    total_offset = offset_gen + delay_in_rec
    sim = task + total_offset + extension_sim
    n_in, n_rec = (n_in or n), (n_rec or n)

    params_out = {"C_m": 1.0, "E_L": 0.0, "eprop_isi_trace_cutoff": 100, "I_e": 0.0, "tau_m": 30.0, "V_m": 0.0}
    base_rec = {
        "C_m": 1.0,
        "c_reg": 300.0 / T,
        "E_L": 0.0,
        "eprop_isi_trace_cutoff": 100,
        "f_target": 10.0,
        "flush_event_send_interval": float(T),
        "I_e": 0.0,
        "kappa": 0.97,
        "kappa_reg": 0.97,
        "surrogate_gradient_function": "piecewise_linear",
        "surrogate_gradient_height": 10.0,
        "surrogate_gradient_width": 0.03,
        "t_ref": 0.0,
        "tau_m": 30.0,
        "V_m": 0.0,
        "V_th": 0.03,
    }
    if setup == "example":
        base_rec["surrogate_gradient_width"] = 1.0 / 33.3
    scale = 1.0 - base_rec["kappa"]

    def model_params(m, overrides):
        """The setup's parameters for recurrent model m, then `overrides`."""
        p = dict(base_rec)
        if m in ("eprop_iaf_psc_delta", "eprop_iaf_psc_delta_adapt"):
            p.update(V_reset=-0.5, c_reg=2.0 / T / scale**2, V_th=0.5)
        elif m == "eprop_iaf_adapt":
            if setup == "example":
                p.update(adapt_beta=0.0)
            else:
                p.update(adapt_beta=0.0174, adapt_tau=2000.0, adaptation=0.0)
        p.update(overrides or {})
        return p

    params_rec = model_params(model, rec)
    populations = [(model, n_rec - sum(g["n"] for g in more_populations or []), params_rec)]
    populations += [(g["model"], g["n"], model_params(g["model"], g.get("rec"))) for g in more_populations or []]
    assert populations[0][1] > 0, "more_populations leave no neuron to the first population"
    params_out.update(out or {})

    gen_in = nest.Create("spike_generator", n_in)
    nrns_in = nest.Create("parrot_neuron", n_in)
    if flush_in is not None:
        nrns_in.set(flush_event_send_interval=float(flush_in))
    nrns_rec = nest.Create(model, populations[0][1], params_rec)
    for m, k, p in populations[1:]:
        nrns_rec += nest.Create(m, k, p)
    for name, values in (per_neuron or {}).items():
        assert len(values) == n_rec, name
        nrns_rec.set({name: [float(v) for v in values]})
    nrns_out = nest.Create("eprop_readout", n_out, params_out)
    gen_target = nest.Create("step_rate_generator", n_out)
    gen_window = nest.Create("step_rate_generator")
    mm_out = nest.Create(
        "multimeter",
        params={
            "interval": 1.0,
            "record_from": ["readout_signal", "target_signal"] + (["V_m", "error_signal"] if record else []),
            "start": float(total_offset),
            "stop": float(total_offset + task),
        },
    )
    sr = nest.Create("spike_recorder")
    if record:
        # The recorders eprop-dense writes with `--record-iterations all --n-record 2 --n-record-w 5` (README "NEST's
        # online generation"): recurrent neurons 0-1 and every readout sampled over the task, NEST's weight recorder
        # on senders 0-4 of both populations onto recurrent targets 0-4 and every readout.
        rec_names = ["V_m", "surrogate_gradient", "learning_signal"] + (
            ["V_th_adapt", "adaptation"] if model in ("eprop_iaf_adapt", "eprop_iaf_psc_delta_adapt") else [])
        window = {"start": float(total_offset), "stop": float(total_offset + task)}
        mm_rec = nest.Create("multimeter", params=dict(window, interval=1.0, record_from=rec_names))
        wr = nest.Create("weight_recorder", params=dict(
            window, senders=nrns_in[:RECORD_W] + nrns_rec[:RECORD_W], targets=nrns_rec[:RECORD_W] + nrns_out))

    # The test's draws, in its order.
    f32 = np.float32
    w_in = np.array(np.random.randn(n_in, n_rec).T / np.sqrt(n_in), dtype=f32)
    w_rec = np.array(np.random.randn(n_rec, n_rec).T / np.sqrt(n_rec), dtype=f32)
    np.fill_diagonal(w_rec, 0.0)
    w_out = np.array(np.random.randn(n_rec, n_out).T / np.sqrt(n_rec), dtype=f32) * scale
    w_fb = np.array(np.random.randn(n_rec, n_out) / np.sqrt(n_rec), dtype=f32)
    # The test scales both eprop_iaf models; the example only eprop_iaf (eprop_iaf_adapt keeps its unscaled draws).
    scaled = ("eprop_iaf", "eprop_iaf_adapt") if setup == "test" else ("eprop_iaf",)
    if model in scaled:
        w_in *= scale
        w_rec *= scale
        w_fb *= scale
    elif model in ("eprop_iaf_psc_delta", "eprop_iaf_psc_delta_adapt"):
        w_fb /= scale

    opt = {"type": optimizer, "batch_size": 1, "eta": 1e-4 * scale**2, "optimize_each_step": setup != "example"}
    opt.update(Wmin=-100.0, Wmax=100.0)
    if optimizer == "adam":
        opt.update(beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    opt.update(opt_overrides or {})
    if not opt["Wmin"] <= 1.0 <= opt["Wmax"]:  # NEST checks the bounds against the default weight (1): set it to 0
        nest.SetDefaults("eprop_synapse", {"weight": 0.0})
    nest.SetDefaults("eprop_synapse", {"optimizer": opt})

    if record:
        nest.SetDefaults("eprop_synapse", {"weight_recorder": wr})
    syn = {"synapse_model": "eprop_synapse", "delay": 1.0}
    all_to_all = {"rule": "all_to_all", "allow_autapses": False}
    static = {"synapse_model": "static_synapse", "delay": 1.0}
    nest.Connect(gen_in, nrns_in, {"rule": "one_to_one"}, static)
    if connection_probability is None:
        nest.Connect(nrns_in, nrns_rec, all_to_all, dict(syn, weight=w_in))
        nest.Connect(nrns_rec, nrns_rec, all_to_all, dict(syn, weight=w_rec))
        nest.Connect(nrns_rec, nrns_out, all_to_all, dict(syn, weight=w_out))
    nest.Connect(
        nrns_out,
        nrns_rec,
        all_to_all,
        {"synapse_model": "eprop_learning_signal_connection", "delay": 1.0, "weight": w_fb},
    )
    rate = {"synapse_model": "rate_connection_delayed", "delay": 1.0}
    nest.Connect(gen_target, nrns_out, {"rule": "one_to_one"}, dict(rate, receptor_type=2))
    nest.Connect(gen_window, nrns_out, all_to_all, dict(rate, receptor_type=1))
    nest.Connect(nrns_rec, sr, all_to_all, static)
    nest.Connect(mm_out, nrns_out, all_to_all, static)
    if record:
        nest.Connect(mm_rec, nrns_rec[:RECORD_N], all_to_all, static)

    input_bools = (np.random.rand(T, n_in) < 0.05).swapaxes(0, 1)
    starts = np.arange(0.0, task, T) + offset_gen
    gen_params = []
    for row in input_bools:
        times = np.arange(0.0, T, 1.0)[row]
        gen_params.append({"spike_times": np.hstack([times + s for s in starts]).astype(np.float32)})
    gen_in.set(gen_params)

    # generate_superimposed_sines(T, [1000, 500, 333, 200]) of the test (identically 0 for T = 100, but its
    # draws advance the generator, so they are made); one target per readout, drawn in readout order.
    periods = target_periods or [1000, 500, 333, 200]
    targets = []
    for _ in range(n_out):
        amplitudes = np.random.uniform(low=0.5, high=2.0, size=len(periods))
        phases = np.random.uniform(low=0.0, high=2.0 * np.pi, size=len(periods))
        sines = [
            a * np.sin(np.linspace(phi, phi + 2.0 * np.pi * (T // p), T)) for a, phi, p in zip(amplitudes, phases, periods)
        ]
        target = sum(sines)
        target -= target[0]
        target /= max(np.abs(target).max(), 1e-6)
        targets.append(target)
    gen_target.set(
        [{"amplitude_times": np.arange(0.0, task, 1.0) + total_offset, "amplitude_values": np.tile(t, n_iter)}
         for t in targets]
    )
    gen_window.set({"amplitude_times": [float(total_offset)], "amplitude_values": [1.0]})
    if connection_probability is not None:
        # Sparse: after every other draw, the N-MNIST script's create_mask and sparsely_connect per projection.
        for w, p, pre, post in zip((w_in, w_rec, w_out), connection_probability, (nrns_in, nrns_rec, nrns_rec),
                                   (nrns_rec, nrns_rec, nrns_out)):
            w *= np.random.choice([0, 1], w.shape, p=[1.0 - p, p]).astype(w.dtype)
            targets_idx, sources_idx = np.where(w)
            if len(targets_idx):
                nest.Connect(np.array(pre.tolist())[sources_idx], np.array(post.tolist())[targets_idx], {"rule": "one_to_one"},
                             dict(syn, weight=w[targets_idx, sources_idx].astype(np.float64),
                                  delay=np.full(len(targets_idx), 1.0)))
    if final_update:
        # The examples' forced final update: one spike of weight 1000 at task + 1 ms into every parrot and recurrent
        # neuron, so that every presynaptic neuron's synapses are brought up to date at the end.
        gen_final = nest.Create("spike_generator", 1, {"spike_times": [float(task + delay_in_rec)]})
        nest.Connect(gen_final, nrns_in + nrns_rec, "all_to_all", {"weight": 1000.0})

    init = initial_weights(nest, nrns_in, nrns_rec, nrns_out)
    if connection_probability is not None:
        masks = {"mask_in_rec": mask(nest, nrns_in, nrns_rec), "mask_rec_rec": mask(nest, nrns_rec, nrns_rec),
                 "mask_rec_out": mask(nest, nrns_rec, nrns_out)}
    nest.Simulate(float(sim))

    ev = mm_out.get("events")
    by_readout = lambda key: np.array(  # noqa: E731  [n_out, n_iter * T], each readout's samples in time order
        [np.asarray(ev[key])[np.asarray(ev["senders"]) == g] for g in nrns_out.tolist()])
    y = by_readout("readout_signal").reshape(n_out, n_iter, 1, T)
    ystar = by_readout("target_signal").reshape(n_out, n_iter, 1, T)
    loss = 0.5 * np.mean(np.sum((y - ystar) ** 2, axis=3), axis=(0, 2))
    if loss_reference is not None:
        assert np.allclose(loss, loss_reference, rtol=1e-8), (loss, loss_reference)

    spk = sr.get("events")
    times = np.asarray(spk["times"], dtype=np.float64)
    senders = np.asarray(spk["senders"]) - nrns_rec[0].global_id
    order = np.lexsort((senders, times))

    os.makedirs(out_dir, exist_ok=True)
    arrays = dict(init)
    arrays.update(
        w_in_rec_final=weights(nest, nrns_in, nrns_rec),
        w_rec_rec_final=weights(nest, nrns_rec, nrns_rec),
        w_rec_out_final=weights(nest, nrns_rec, nrns_out),
        input_spike_bool_seq=input_bools,
        target_signal_seq=np.asarray(targets[0] if n_out == 1 else targets, dtype=np.float64),
        loss=loss,
        spikes_rec_times_ms=times[order],
        spikes_rec_senders=senders[order].astype(np.int32),
    )
    if record:
        arrays.update(recordings(mm_rec, nrns_rec[:RECORD_N], rec_names, "rec"))
        arrays.update(recordings(mm_out, nrns_out, ["V_m", "readout_signal", "target_signal", "error_signal"], "out"))
        wev = wr.get("events")
        first_in, first_rec = nrns_in[0].global_id, nrns_rec[0].global_id
        wsrc, wtgt = np.asarray(wev["senders"]), np.asarray(wev["targets"])
        arrays.update(
            wr_times_ms=np.asarray(wev["times"], dtype=np.float64), wr_weights=np.asarray(wev["weights"], dtype=np.float64),
            wr_sender_pop=(wsrc >= first_rec).astype(np.int32),
            wr_sender_idx=np.where(wsrc >= first_rec, wsrc - first_rec, wsrc - first_in).astype(np.int32),
            wr_target_pop=(wtgt >= nrns_out[0].global_id).astype(np.int32),
            wr_target_idx=np.where(wtgt >= nrns_out[0].global_id, wtgt - nrns_out[0].global_id, wtgt - first_rec).astype(np.int32))
    for name in init:
        # The initial weights are float32 draws (NEST holds them exactly in double): stored as float32, exactly.
        assert np.array_equal(arrays[name].astype(np.float32).astype(np.float64), arrays[name]), name
        arrays[name] = arrays[name].astype(np.float32)
    if connection_probability is not None:
        arrays.update(masks)
    for name, a in arrays.items():
        np.save(os.path.join(out_dir, name + ".npy"), a)
    extra = {}
    first = 0
    for q, (m, k, p) in enumerate(populations):
        # Per-neuron values as lists, each population its slice.
        p.update({name: [float(v) for v in values[first:first + k]] for name, values in (per_neuron or {}).items()})
        if q > 0:
            extra.setdefault("more_populations", []).append({"model": m, "n": k, "params_rec": p})
        first += k
    if final_update:
        extra["final_update"] = True
    if flush_in is not None:
        extra["flush_event_send_interval_in"] = float(flush_in)
    if description is not None:  # what crossval_online.py asked for (not read by the engine)
        extra["crossval"] = description
    with open(os.path.join(out_dir, "params.json"), "w") as f:
        json.dump(
            {
                **extra,
                "model": model,
                "n_in": n_in,
                "n_rec": n_rec,
                "n_out": n_out,
                "params_rec": params_rec,
                "params_out": params_out,
                "optimizer": opt,
                "sequence_steps": T,
                "iterations": n_iter,
                "simulated_steps": sim,
                "loss_nest_reference": loss_reference,
                "nest_version": nest.__version__,
                "numpy_version": np.__version__,
            },
            f,
            indent=1,
        )
    return loss, len(times)


# The synthetic N-MNIST dataset of a "setup": "nmnist" config without "data" (nmnist_synthetic.generate's arguments):
# 30 training and 20 test samples of 600 events.
NMNIST_SYNTHETIC = {"per_class_train": 3, "per_class_test": 2, "n_events": 600, "seed": 7}


def run_nmnist(out_dir, config):
    """--config with "setup": "nmnist": NEST's N-MNIST example (nest_online_nmnist.run) on config["data"], or on a
    synthetic dataset in OUT/../nmnist-data (generated unless it is there with the same settings)."""
    import nest_online_nmnist
    import nmnist_synthetic  # on the path since nest_online_nmnist

    kwargs = {k: v for k, v in config.items() if k not in ("setup", "data", "synthetic")}
    data = config.get("data")
    if data is None:
        synthetic = dict(NMNIST_SYNTHETIC, **config.get("synthetic", {}))
        data = os.path.join(os.path.dirname(os.path.abspath(out_dir)), "nmnist-data")
        marker = os.path.join(data, "synthetic.json")
        if os.path.exists(marker):
            with open(marker) as f:
                found = json.load(f)
            wanted = nmnist_synthetic.settings(synthetic["per_class_train"], synthetic["per_class_test"],
                                               synthetic["n_events"], synthetic["seed"])
            if any(found.get(k) != v for k, v in wanted.items()):
                raise SystemExit(f"{data} holds a synthetic dataset with other settings; remove it or pass \"data\"")
        else:
            nmnist_synthetic.generate(data, **synthetic)
    summary = nest_online_nmnist.run(out_dir, data, **kwargs)
    print(kwargs.get("model", "eprop_iaf"), "loss", summary["loss"].tolist(), "error", summary["error"].tolist(),
          "recurrent spikes", summary["recurrent_spikes"], "input spikes", summary["input_spikes"],
          "(coincident", summary["coincident_input_spikes"], "never emitted", summary["generator_spikes_never_emitted"],
          ")")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--models", nargs="*", default=list(MODELS))
    p.add_argument("--variants", action="store_true", help="export the VARIANTS instead of the test's four networks")
    p.add_argument("--only", nargs="*", help="with --variants: only these VARIANTS")
    p.add_argument("--config", metavar="JSON",
                   help="export one configuration into OUT: a JSON object with `model` and any of run()'s other "
                        "arguments (optimizer, n, rec, out, opt_overrides, n_in, n_rec, n_out, T, iterations, seed, "
                        "setup, target_periods, final_update, flush_in, description, record); used by crossval_online.py. "
                        "With \"setup\": \"nmnist\": nest_online_nmnist.run()'s arguments and \"data\" / \"synthetic\"")
    a = p.parse_args()
    if a.config:
        kwargs = json.loads(a.config)
        if kwargs.get("setup") == "nmnist":
            run_nmnist(a.out, kwargs)
            return
        model = kwargs.pop("model")
        loss, n = run(model, a.out, **kwargs)
        print(model, "loss", list(loss), "recurrent spikes", n)
        return
    if a.variants:
        for name, v in VARIANTS.items():
            if a.only and name not in a.only:
                continue
            loss, n = run(v["model"], os.path.join(a.out, name), optimizer=v["optimizer"], n=40, rec=v.get("rec"),
                          out=v.get("out"), opt_overrides=v.get("opt"), more_populations=v.get("more_populations"),
                          per_neuron=v.get("per_neuron"))
            print(name, "loss", list(loss), "recurrent spikes", n)
        return
    for m in a.models:
        loss, n = run(m, os.path.join(a.out, m))
        print(m, "loss", list(loss), "recurrent spikes", n)


if __name__ == "__main__":
    main()
