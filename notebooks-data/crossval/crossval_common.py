"""What crossval.py (the legacy generation) and crossval_online.py (the online generation) share: reading an
array of an export or run folder, and running a command with its output in a log."""

import os
import shlex
import subprocess
import time

import numpy as np

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def load(folder, name):
    """The array `name` of `folder`; a missing file is named."""
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"missing {path}")
    return np.load(path)


def run_cmd(cmd, log_path):
    """Run a command from the repository root with its output in log_path; returns (ok, seconds)."""
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        log.write("$ " + shlex.join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    return proc.returncode == 0, time.perf_counter() - t0


def tail(path, n=15):
    """The last n lines of a log."""
    with open(path) as f:
        return "".join(f.readlines()[-n:])
