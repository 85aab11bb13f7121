#!/usr/bin/env python3
"""Fuzz the two readers of notebooks-data/convert_events.py with arbitrary bytes.

    .venv/bin/python Fuzz/fuzz_converters.py SECONDS nmnist|shd

nmnist  the bytes are one N-MNIST .bin file: decode_nmnist, then nmnist_channels and bin_events
        for every pool size.
shd     the bytes are an SHD .h5 file: convert_shd converts it to an .npz as the command line
        does, reading it with h5py in the converter's reader child process.

Every input must either convert to a valid event list (events in range, sorted by (step, unit)
without duplicates within a sample, offsets consistent; for shd, read back from the .npz written)
or raise convert_events.ConversionError, and for shd leave no temporary file behind; any other
exception, or a broken invariant, is a crash.

The fuzzer is atheris (Google's coverage-guided fuzzer for Python, built on libFuzzer; `pip
install atheris`), with coverage of convert_events.py's control flow (see
instrument_control_flow); h5py and the HDF5 library are not instrumented (and run in the
converter's child process), so the shd target relies on mutations of its seeds. Without atheris a
plain mutation fuzzer runs instead (random byte flips, insertions, deletions and truncations of
the seeds, numpy default_rng(0), no coverage feedback). Seeds (valid small files made here with
numpy and h5py) and the inputs atheris finds go to .build-fuzz/python-<target>/corpus.

Found with this harness before the converter isolated HDF5 (HDF5 2.0.0 inside the h5py 3.16
wheel): on some damaged .h5 files the HDF5 library itself loops forever
(H5HG__cache_heap_deserialize, reading a variable-length element), segfaults (H5VL_blob_put under
H5T__conv_vlen), or allocates whatever size the file claims (over 4 GB). The converter now reads
SHD in a child process and turns these into its one-line errors ("the HDF5 library crashed
reading it", "stopped responding", "ran out of memory"), so they are no longer findings: the shd
target counts them (ISOLATED, in the last line) and keeps one input of each message as
.build-fuzz/python-shd/isolated-*. The converter's stall limit is lowered to STALL_S here, below
the fuzzer's TIMEOUT_S, so that an HDF5 hang is the converter's error, not a fuzzer timeout.

atheris runs in worker processes under a supervisor; a worker stops at its first failing input,
saved as .build-fuzz/python-<target>/crash-* (a Python exception other than ConversionError, a
broken invariant, or a fatal signal), timeout-* (an input running longer than TIMEOUT_S) or oom-*
(over 4 GB). For shd every one of these is now a bug in the converter or its isolation, and the
run ends with status 1. For nmnist, a failure whose replay dies of a signal (inside numpy) is
counted in the last line and a new worker goes on from the corpus, as before; a Python exception
ends the run with status 1.
"""

import hashlib
import os
import re
import subprocess
import sys
import time
import types

import numpy as np
import h5py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "notebooks-data"))

try:
    import atheris
except ImportError:
    atheris = None

import convert_events  # noqa: E402


def instrument_control_flow(module):
    """Give atheris coverage of every function and method defined in `module`, without its
    dataflow (comparison) tracing: atheris 3.0.0's comparison hook leaks the result of every
    comparison that is not a bool (a numpy array here, ~1 KB a call, 15 MB/s), which
    atheris.instrument_imports would turn on."""
    for obj in list(vars(module).values()):
        functions = vars(obj).values() if isinstance(obj, type) else [obj]
        for f in functions:
            if isinstance(f, types.FunctionType) and f.__module__ == module.__name__:
                f.__code__ = atheris.patch_code(f.__code__, trace_dataflow=False)


if atheris is not None:
    instrument_control_flow(convert_events)

ConversionError = convert_events.ConversionError
NAME = "<fuzz input>"
SCRATCH = os.path.join(ROOT, ".build-fuzz", "python-scratch")  # the shd target's input file
TIMEOUT_S = 10  # an input that takes longer is a hang
STALL_S = 3  # the converter's stall limit while fuzzing (its reader child starts in ~0.2 s)
os.environ[convert_events.STALL_ENV] = str(STALL_S)
# The converter's errors for HDF5 failures that its child process isolates.
ISOLATED = {"crashed": "the HDF5 library crashed", "stalled": "the HDF5 library stopped responding",
            "memory": "the HDF5 library ran out of memory", "killed": "the process reading it was killed"}


def check_binned(steps, units, n_in, sequence):
    """The invariants of one binned sample: 1 <= steps < sequence, 0 <= units < n_in, strictly
    increasing (step, unit)."""
    assert np.all((steps >= 1) & (steps < sequence)), "step out of range"
    assert np.all((units >= 0) & (units < n_in)), "unit out of range"
    assert np.all(np.diff(steps * n_in + units) > 0), "not sorted or duplicates left"


def fuzz_nmnist(data):
    """One N-MNIST .bin file's bytes through decoding and binning, for every pool size."""
    try:
        x, y, polarity, t_us = convert_events.decode_nmnist(np.frombuffer(data, np.uint8), NAME)
    except ConversionError:
        return
    assert np.all(np.diff(t_us) >= 0) and np.all(t_us >= 0) and np.all(t_us < 2**23)
    for pool in convert_events.NMNIST_POOLS:
        side = convert_events.NMNIST_SIZE // pool
        channels = convert_events.nmnist_channels(x, y, polarity, pool)
        sequence = convert_events.sequence_length(1.0, 300.0)
        steps, units, dropped, merged = convert_events.bin_events(
            t_us / 1000.0, channels, 2 * side * side, 1.0, 300.0, sequence)
        check_binned(steps, units, 2 * side * side, sequence)
        assert len(steps) + dropped + merged == len(t_us)


def fuzz_shd(data):
    """The bytes as an SHD .h5 file through convert_shd, into an .npz that is read back."""
    path = os.path.join(SCRATCH, "input.h5")
    out = os.path.join(SCRATCH, "output.npz")
    with open(path, "wb") as f:
        f.write(data)
    if os.path.exists(out):
        os.unlink(out)
    try:
        convert_events.convert_shd(path, out)
    except ConversionError as err:
        left = [n for n in os.listdir(SCRATCH) if n.startswith(".convert_events-")]
        assert not left, f"temporary files left behind: {left}"
        assert not os.path.exists(out), "output written despite the error"
        note_isolated(err, data)
        return
    assert [n for n in os.listdir(SCRATCH) if n.startswith(".")] == [], "temporaries left"
    with np.load(out, allow_pickle=False) as f:
        times, units, o, labels = f["times"], f["units"], f["offsets"], f["labels"]
        n_in, n_classes, sequence = int(f["n_in"]), int(f["n_classes"]), int(f["sequence"])
    assert o[0] == 0 and o[-1] == len(times) == len(units) and np.all(np.diff(o) >= 0)
    assert len(o) == len(labels) + 1
    assert np.all((labels >= 0) & (labels < n_classes))
    for k in range(len(labels)):
        check_binned(times[o[k]:o[k + 1]].astype(np.int64), units[o[k]:o[k + 1]].astype(np.int64),
                     n_in, sequence)


def note_isolated(err, data):
    """Count a ConversionError that reports an HDF5 failure isolated by the converter's child
    process (a line in isolated.log); keep the first input of each message."""
    kind = next((k for k, text in ISOLATED.items() if text in err.message), None)
    if kind is None:
        return
    work = os.path.join(ROOT, ".build-fuzz", "python-shd")
    message = re.sub(r"\d+(\.\d+)? s\b", "N s", err.message)
    tag = hashlib.sha1(message.encode()).hexdigest()[:8]
    with open(os.path.join(work, "isolated.log"), "a") as log:
        log.write(f"{kind}\t{tag}\t{message}\n")
    keep = os.path.join(work, f"isolated-{kind}-{tag}")
    if not os.path.exists(keep):
        with open(keep, "wb") as f:
            f.write(data)


def nmnist_seeds():
    """Valid .bin files: a few events with both polarities, a timestamp above 2^16 µs, one past
    300 ms, a duplicate; and an empty file."""
    events = [(33, 33, 0, 0), (33, 33, 0, 999), (1, 2, 1, 70000), (5, 0, 0, 299999),
              (0, 0, 1, 8388607)]
    raw = bytes(b for x, y, p, t in events
                for b in (x, y, p << 7 | t >> 16, t >> 8 & 0xFF, t & 0xFF))
    return [raw, raw[:10], b""]


def shd_seeds():
    """Valid SHD-style .h5 files (as in the tests): contiguous and chunked + gzip layouts."""
    samples = [([0.5, 0.0, 2**-9, 2**-9, 1.25], [699, 3, 5, 5, 11], 3), ([], [], 19)]
    seeds = []
    for options in ({}, {"chunks": True, "compression": "gzip"}):
        path = os.path.join(SCRATCH, "seed.h5")
        with h5py.File(path, "w") as f:
            t = f.create_dataset("spikes/times", (len(samples),),
                                 dtype=h5py.vlen_dtype(np.float16), **options)
            u = f.create_dataset("spikes/units", (len(samples),),
                                 dtype=h5py.vlen_dtype(np.uint16), **options)
            for k, (ts, us, _) in enumerate(samples):
                t[k], u[k] = np.array(ts, np.float16), np.array(us, np.uint16)
            f.create_dataset("labels", data=np.array([l for *_, l in samples], np.uint16))
        with open(path, "rb") as f:
            seeds.append(f.read())
    return seeds


TARGETS = {"nmnist": (fuzz_nmnist, nmnist_seeds), "shd": (fuzz_shd, shd_seeds)}


def mutate(data, rng):
    """One to four random edits of `data`: flip a byte, insert random bytes, delete a range, or
    truncate."""
    b = bytearray(data)
    for _ in range(rng.integers(1, 5)):
        op, at = rng.integers(4), int(rng.integers(len(b) + 1))
        if op == 0 and b:
            b[min(at, len(b) - 1)] ^= 1 << int(rng.integers(8))
        elif op == 1:
            b[at:at] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
        elif op == 2:
            del b[at:at + int(rng.integers(1, 17))]
        else:
            del b[at:]
    return bytes(b)


def run_mutation_fuzzer(target, seeds, seconds, crash_dir):
    """Without atheris: mutate the seeds for `seconds`; save and re-raise the first crash."""
    rng = np.random.default_rng(0)
    deadline, runs = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        data = mutate(seeds[runs % len(seeds)], rng)
        runs += 1
        try:
            target(data)
        except BaseException:
            path = os.path.join(crash_dir, f"crash-{runs}")
            with open(path, "wb") as f:
                f.write(data)
            print(f"fuzz_converters.py: crash on input {runs}, saved as {path}", file=sys.stderr)
            raise
    print(f"fuzz_converters.py: {runs} inputs in {seconds:g} s, no crash", file=sys.stderr)


def run_atheris(target, seconds, work, corpus):
    """Fuzz with atheris in this process for `seconds`; exits the process."""
    atheris.Setup([sys.argv[0], f"-max_total_time={max(1, int(seconds))}", f"-timeout={TIMEOUT_S}",
                   "-rss_limit_mb=4096", f"-artifact_prefix={work}/", corpus], target)
    atheris.Fuzz()


def run_worker(script, seconds, name):
    """One atheris worker, its output passed on; returns (exit status, inputs it ran)."""
    worker = subprocess.Popen([sys.executable, script, "--worker", f"{seconds:.0f}", name],
                              stderr=subprocess.PIPE, text=True, errors="replace")
    runs = 0
    for line in worker.stderr:
        sys.stderr.write(line)
        # libFuzzer's status lines: "#N\tNEW ...", "#N\tpulse ...", "Done N runs in S second(s)"
        if m := re.match(r"(?:#(\d+)\s|Done (\d+) runs)", line):
            runs = max(runs, int(m.group(1) or m.group(2)))
    return worker.wait(), runs


def supervise(name, seconds):
    """Run atheris workers until `seconds` have passed or a failure of the converter is found.
    A worker stops at its first failing input and saves it as crash-*, timeout-* or oom-*. For
    shd each is a failure of the converter (HDF5 runs in the converter's child, whose failures
    must come out as ConversionError). For nmnist a crash whose replay dies of a signal is a
    fault inside a native library, counted like hangs and oom while a new worker goes on from
    the corpus, and a crash that replays as a Python exception ends the run. Returns the exit
    status."""
    work = os.path.join(ROOT, ".build-fuzz", f"python-{name}")
    script = os.path.abspath(__file__)
    isolated_log = os.path.join(work, "isolated.log")
    if os.path.exists(isolated_log):
        os.unlink(isolated_log)
    deadline, native, runs = time.monotonic() + seconds, [], 0
    while (left := deadline - time.monotonic()) >= 1:
        before = set(os.listdir(work))
        status, worker_runs = run_worker(script, left, name)
        runs += worker_runs
        new = sorted(f for f in set(os.listdir(work)) - before
                     if f.startswith(("crash-", "timeout-", "oom-", "leak-", "slow-unit-")))
        crashes = [f for f in new if f.startswith("crash-")]
        python_crashes = [f for f in crashes if subprocess.call(
            [sys.executable, script, "--replay", os.path.join(work, f), name],
            stderr=subprocess.DEVNULL) >= 0]
        failures = new if name == "shd" else python_crashes
        if failures or (status != 0 and not new):
            print(f"fuzz_converters.py: {name}: failure of the converter after {runs} inputs "
                  f"(worker exit status {status}): {', '.join(failures) or 'no input saved'} in "
                  f"{work}", file=sys.stderr)
            return 1
        native += new
    isolated = ""
    if name == "shd":
        counts = {}
        if os.path.exists(isolated_log):
            with open(isolated_log) as log:
                for line in log:
                    kind = line.split("\t", 1)[0]
                    counts[kind] = counts.get(kind, 0) + 1
        isolated = ("; HDF5 failures isolated by the converter (clean errors): "
                    f"{', '.join(f'{k} {v}' for k, v in sorted(counts.items())) or 'none'}")
    print(f"fuzz_converters.py: {name}: {seconds:g} s, {runs} inputs, no failure of the "
          f"converter; {len(native)} failure(s) inside native libraries "
          f"({', '.join(native) or 'none'}){isolated}; inputs in {work}", file=sys.stderr)
    return 0


def replay(name, path):
    """Run one saved input through the target: exit 0 if it passes, a Python traceback and
    exit 1 if it raises, death by a signal if native code faults."""
    with open(path, "rb") as f:
        TARGETS[name][0](f.read())
    return 0


def main():
    mode = sys.argv[1] if sys.argv[1:2] in (["--worker"], ["--replay"]) else None
    args = sys.argv[2:] if mode else sys.argv[1:]
    if len(args) != 2 or args[1] not in TARGETS:
        print("usage: fuzz_converters.py SECONDS nmnist|shd", file=sys.stderr)
        return 2
    os.makedirs(SCRATCH, exist_ok=True)
    if mode == "--replay":
        return replay(args[1], args[0])
    seconds, (target, make_seeds) = float(args[0]), TARGETS[args[1]]
    work = os.path.join(ROOT, ".build-fuzz", f"python-{args[1]}")
    corpus = os.path.join(work, "corpus")
    os.makedirs(corpus, exist_ok=True)
    seeds = make_seeds()
    for i, seed in enumerate(seeds):
        with open(os.path.join(corpus, f"seed-{i}"), "wb") as f:
            f.write(seed)
    if atheris is None:
        run_mutation_fuzzer(target, seeds, seconds, work)
        return 0
    if mode == "--worker":
        run_atheris(target, seconds, work, corpus)
    return supervise(args[1], seconds)


if __name__ == "__main__":
    sys.exit(main())
