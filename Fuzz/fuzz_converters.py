#!/usr/bin/env python3
"""Fuzz the two readers of notebooks-data/convert_events.py with arbitrary bytes.

    .venv/bin/python Fuzz/fuzz_converters.py SECONDS nmnist|shd

nmnist  the bytes are one N-MNIST .bin file: decode_nmnist, then nmnist_channels and bin_events
        for every pool size.
shd     the bytes are an SHD .h5 file: convert_shd reads it with h5py.

Every input must either convert to a valid event list (events in range, sorted by (step, unit)
without duplicates within a sample, offsets consistent) or raise convert_events.ConversionError;
any other exception, or a broken invariant, is a crash.

The fuzzer is atheris (Google's coverage-guided fuzzer for Python, built on libFuzzer; `pip
install atheris`), with coverage of convert_events.py's control flow (see
instrument_control_flow); h5py and the HDF5 library are not instrumented, so the shd target relies on mutations of its seeds. Without atheris a plain
mutation fuzzer runs instead (random byte flips, insertions, deletions and truncations of the
seeds, numpy default_rng(0), no coverage feedback). Seeds (valid small files made here with
numpy and h5py) and the inputs atheris finds go to .build-fuzz/python-<target>/corpus; a crashing
input is saved as .build-fuzz/python-<target>/crash-* and the exit status is non-zero.
"""

import os
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
    """The bytes as an SHD .h5 file through convert_shd."""
    path = os.path.join(SCRATCH, "input.h5")
    with open(path, "wb") as f:
        f.write(data)
    try:
        events = convert_events.convert_shd(path)
    except ConversionError:
        return
    o = events.offsets
    assert o[0] == 0 and o[-1] == len(events.times) and np.all(np.diff(o) >= 0)
    assert np.all((events.labels >= 0) & (events.labels < events.n_classes))
    for k in range(len(events.labels)):
        check_binned(events.times[o[k]:o[k + 1]].astype(np.int64),
                     events.units[o[k]:o[k + 1]].astype(np.int64), events.n_in, events.sequence)


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


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in TARGETS:
        print("usage: fuzz_converters.py SECONDS nmnist|shd", file=sys.stderr)
        return 2
    seconds, (target, make_seeds) = float(sys.argv[1]), TARGETS[sys.argv[2]]
    work = os.path.join(ROOT, ".build-fuzz", f"python-{sys.argv[2]}")
    corpus = os.path.join(work, "corpus")
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(SCRATCH, exist_ok=True)
    seeds = make_seeds()
    for i, seed in enumerate(seeds):
        with open(os.path.join(corpus, f"seed-{i}"), "wb") as f:
            f.write(seed)
    if atheris is None:
        run_mutation_fuzzer(target, seeds, seconds, work)
        return 0
    atheris.Setup([sys.argv[0], f"-max_total_time={int(seconds)}", "-timeout=20",
                   "-rss_limit_mb=4096", f"-artifact_prefix={work}/", corpus], target)
    atheris.Fuzz()  # exits the process
    return 0


if __name__ == "__main__":
    sys.exit(main())
