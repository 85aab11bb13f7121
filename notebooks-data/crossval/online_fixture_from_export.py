#!/usr/bin/env python3
"""Copy what the Swift tests read from a NEST 3.10 online e-prop export into a small committed fixture.

The export (e.g. shared/refdata/nest-3.10-online/sine-waves_eprop_iaf_seed1, made with NEST 3.10.0 from NEST's
example eprop_supervised_regression_sine-waves.py, see its README.md and manifest.json) holds recordings the
tests do not need. This keeps: the initial weights (stored as float32: they are float32 draws, checked exact),
the frozen input pattern and target, the loss per iteration, every recurrent spike (stamps as int32 steps:
checked exact), the final weights (float64, unchanged), the weight-recorder events (stamps int32, populations uint8,
weights float64), the multimeters' samples (every readout recordable; V_m, surrogate_gradient and learning_signal of
recurrent neurons 0 and 1), script_params.json and summary.json; and writes params.json, the parameters of script_params.json
in the layout `eprop-dense --init` reads for the online generation (as nest_online_export.py writes it).

    python3 notebooks-data/crossval/online_fixture_from_export.py EXPORT_DIR OUT_DIR
"""

import json
import os
import shutil
import sys

import numpy as np


def main(src, out):
    os.makedirs(out, exist_ok=True)
    for name in ["w_in_rec_init", "w_rec_rec_init", "w_rec_out_init", "w_out_rec_feedback"]:
        a = np.load(os.path.join(src, name + ".npy"))
        assert np.array_equal(a.astype(np.float32).astype(np.float64), a), name
        np.save(os.path.join(out, name + ".npy"), a.astype(np.float32))
    for name in ["w_in_rec_final", "w_rec_rec_final", "w_rec_out_final", "input_spike_bool_seq", "target_signal_seq", "loss"]:
        shutil.copyfile(os.path.join(src, name + ".npy"), os.path.join(out, name + ".npy"))
    times = np.load(os.path.join(src, "spikes_rec_times_ms.npy"))
    stamps = np.rint(times).astype(np.int32)
    assert np.array_equal(stamps.astype(np.float64), times)
    np.save(os.path.join(out, "spikes_rec_stamps.npy"), stamps)
    shutil.copyfile(os.path.join(src, "spikes_rec_senders.npy"), os.path.join(out, "spikes_rec_senders.npy"))
    # The weight recorder: stamps as int32, populations as uint8 (both checked exact), weights unchanged.
    wr_t = np.load(os.path.join(src, "wr_times_ms.npy"))
    assert np.array_equal(np.rint(wr_t), wr_t)
    np.save(os.path.join(out, "wr_stamps.npy"), np.rint(wr_t).astype(np.int32))
    for name in ["wr_sender_pop", "wr_target_pop"]:
        a = np.load(os.path.join(src, name + ".npy"))
        assert set(np.unique(a)) <= {0, 1}
        np.save(os.path.join(out, name + ".npy"), a.astype(np.uint8))
    for name in ["wr_sender_idx", "wr_target_idx", "wr_weights"]:
        shutil.copyfile(os.path.join(src, name + ".npy"), os.path.join(out, name + ".npy"))
    # The multimeters: every readout recordable, and the recurrent recordables of neurons 0 and 1 (of the 10 exported).
    for name in ["rec_times_ms", "out_times_ms", "out_V_m", "out_readout_signal", "out_target_signal", "out_error_signal"]:
        shutil.copyfile(os.path.join(src, name + ".npy"), os.path.join(out, name + ".npy"))
    for name in ["rec_V_m", "rec_surrogate_gradient", "rec_learning_signal"]:
        np.save(os.path.join(out, name + ".npy"), np.load(os.path.join(src, name + ".npy"))[:2])
    for name in ["script_params.json", "summary.json"]:
        shutil.copyfile(os.path.join(src, name), os.path.join(out, name))
    with open(os.path.join(src, "script_params.json")) as f:
        sp = json.load(f)
    d = sp["duration_ms"]
    assert d["step"] == 1.0, "params.json counts steps of 1 ms"
    params = {
        "model": sp["model"], "n_in": sp["n_in"], "n_rec": sp["n_rec"], "n_out": sp["n_out"],
        "params_rec": sp["params_nrn_rec"], "params_out": sp["params_nrn_out"],
        "optimizer": sp["params_common_syn_eprop"]["optimizer"],
        "sequence_steps": int(d["sequence"]), "iterations": sp["n_iter"], "simulated_steps": int(d["sim"]),
        "final_update": bool(sp["final_update"]),
    }
    with open(os.path.join(out, "params.json"), "w") as f:
        json.dump(params, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
