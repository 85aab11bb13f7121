"""The engine's task defaults, the one source of the task settings of nest_export.py and crossval.py.

`task_defaults(task)` runs `eprop-dense --task TASK --print-config` (the engine's TrainingConfig.defaults(for:),
printed as JSON without training) and maps the JSON to the settings dict of nest_export.py: NEST-style names and
values ("gradient_descent", "cross_entropy"), floats where NEST takes doubles, None for the engine's "all" / "whole
sequence" / "none". What only the NEST script decides (recorders, NEST's flush interval, the evidence-accumulation
input structure) is not here but in nest_export.py.

The binary is .build/release/eprop-dense of this repository, or the path in the environment variable
EPROP_DENSE_ENGINE (crossval.py sets it to its --engine), or the `engine` argument.
"""

import functools
import json
import math
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DEFAULT_ENGINE = os.path.join(REPO_ROOT, ".build", "release", "eprop-dense")
ENGINE_ENV = "EPROP_DENSE_ENGINE"
TASKS = ["infinite-loop", "sine-waves", "evidence-accumulation"]


class EngineUnavailable(RuntimeError):
    """The eprop-dense binary is missing or cannot print its configuration."""


def engine_path(engine=None):
    """The binary to ask: `engine`, else $EPROP_DENSE_ENGINE, else the repository's release build."""
    return os.path.abspath(engine or os.environ.get(ENGINE_ENV) or DEFAULT_ENGINE)


@functools.lru_cache(maxsize=None)
def _print_config(engine, task):
    """The engine's resolved configuration (parsed JSON of --print-config) for `task` (None: no --task)."""
    if not os.access(engine, os.X_OK):
        raise EngineUnavailable(
            f"the engine binary {engine} is missing; the task defaults come from it. Build it first: "
            f"`swift build -c release` (in {REPO_ROOT}), or set {ENGINE_ENV} to an eprop-dense binary.")
    cmd = [engine] + ([] if task is None else ["--task", task]) + ["--print-config"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EngineUnavailable(f"`{' '.join(cmd)}` failed (exit {proc.returncode}); an old build without "
                                f"--print-config? Rebuild with `swift build -c release`.\n{proc.stderr.strip()}")
    return json.loads(proc.stdout)


def engine_config(task, engine=None):
    """The raw JSON configuration of the engine for `task` (None: the engine's default, no --task)."""
    return json.loads(json.dumps(_print_config(engine_path(engine), task)))  # a copy: the cache stays intact


def _finite_or_none(value):
    """A JSON number, or None for the engine's "-inf" / "inf" (no bound)."""
    value = float(value)
    return value if math.isfinite(value) else None


def task_defaults(task, engine=None):
    """The engine's defaults for `task` as nest_export.py settings (None: the engine without --task)."""
    c = engine_config(task, engine)
    rec, out, opt = c["recurrent"], c["readout"], c["optimizer"]
    maybe = lambda v, kind: None if v is None else kind(v)  # noqa: E731  (absent or null = the engine's "all")
    return {
        # sizes and timing
        "n_in": int(c["nIn"]),
        "n_rec": int(c["nRec"]),
        "n_out": int(c["nOut"]),
        "sequence": int(c["sequence"]),
        "learning_window": maybe(c.get("learningWindow"), int),  # None = the whole sequence
        "iterations": int(c["iterations"]),
        "input_spike_prob": float(c["inputSpikeProb"]),  # frozen Poisson input (infinite-loop, sine-waves)
        # recurrent neurons
        "model": rec["model"],  # "alif" or "lif"
        "n_adaptive": maybe(rec.get("nAdaptive"), int),  # None = all recurrent neurons adapt (with alif)
        "c_m_rec": float(rec["cM"]),
        "c_reg": float(rec["cReg"]),
        "e_l_rec": float(rec["eL"]),
        "f_target": float(rec["fTarget"]),  # spikes/s
        "gamma": float(rec["gamma"]),  # NEST 3.8 form: surrogate height = gamma / V_th, width = V_th
        "i_e_rec": float(rec["iE"]),
        "regular_spike_arrival": bool(rec["regularSpikeArrival"]),
        "surrogate": rec["surrogateGradient"],
        "t_ref": float(rec["tRef"]),
        "tau_m_rec_mean": float(rec["tauMMean"]),
        "tau_m_rec_std": float(rec["tauMStd"]),  # 0 = the same tau_m for every neuron
        "v_th": float(rec["vTh"]),
        "v_min": _finite_or_none(rec["vMin"]),  # None = no lower bound (NEST's default)
        "adapt_tau": float(rec["adaptTau"]),
        "adapt_beta": maybe(rec.get("adaptBeta"), float),  # None = the tutorial's formula of adapt_tau and tau_m
        # readouts
        "loss": out["loss"].replace("-", "_"),  # "mean_squared_error" or "cross_entropy" (NEST's names)
        "tau_out": float(out["tauM"]),
        "c_m_out": float(out["cM"]),
        "e_l_out": float(out["eL"]),
        "i_e_out": float(out["iE"]),
        "regular_spike_arrival_out": bool(out["regularSpikeArrival"]),
        # plasticity and optimizer
        "optimizer": opt["kind"].replace("-", "_"),  # "adam" or "gradient_descent" (NEST's names)
        "batch_size": int(opt["batchSize"]),
        "eta": float(opt["eta"]),
        "beta_1": float(opt["beta1"]),
        "beta_2": float(opt["beta2"]),
        "epsilon": float(opt["epsilon"]),
        "w_min": float(opt["wMin"]),
        "w_max": float(opt["wMax"]),
        "average_gradient": bool(c["averageGradient"]),
    }


if __name__ == "__main__":
    import sys

    for name in sys.argv[1:] or TASKS:
        print(name, json.dumps(task_defaults(name), indent=1))
