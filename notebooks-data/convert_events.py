#!/usr/bin/env python3
"""Convert event datasets, as their authors distribute them, to eprop-dense's event-list `.npz`
format (docs/event-format.md).

    python notebooks-data/convert_events.py shd SRC.h5 OUT.npz [--bin-ms 1.0] [--max-ms 1000] [--limit N]
    python notebooks-data/convert_events.py nmnist SRC_DIR OUT.npz [--split Train|Test]
        [--bin-ms 1.0] [--max-ms 300] [--pool 1] [--limit N]

Datasets (download the files yourself; this script never fetches anything):

shd     Spiking Heidelberg Digits: B. Cramer, Y. Stradmann, J. Schemmel, F. Zenke, "The Heidelberg
        Spiking Data Sets for the Systematic Evaluation of Spiking Neural Networks", IEEE TNNLS
        33(7), 2022 (online 2020), doi 10.1109/TNNLS.2020.3044364. Files `shd_train.h5` and
        `shd_test.h5` (gzipped) from https://zenkelab.org/datasets/ . Each file holds
        `spikes/times` (one variable-length float16 array per sample: spike times in s),
        `spikes/units` (one variable-length uint16 array per sample: channel 0..699) and `labels`
        (20 classes: the digits 0-9 in English and German). n_in = 700, n_classes = 20.
nmnist  N-MNIST: G. Orchard, A. Jayawant, G. K. Cohen, N. Thakor, "Converting Static Image
        Datasets to Spiking Neuromorphic Datasets Using Saccades", Front. Neurosci. 9:437, 2015,
        doi 10.3389/fnins.2015.00437. `Train.zip` and `Test.zip` from
        https://www.garrickorchard.com/datasets/n-mnist , unzipped into SRC_DIR so that
        SRC_DIR/<Train|Test>/<digit 0-9>/*.bin exist. Each .bin file is a sequence of 5-byte events:
        byte 0 = x (0..33), byte 1 = y (0..33), bit 7 of byte 2 = polarity, and the low 23 bits of
        (byte2 << 16 | byte3 << 8 | byte4) = timestamp in µs (non-decreasing within a file).
        Channel = polarity * S^2 + (y // pool) * S + x // pool with S = 34 / pool, so
        n_in = 2 S^2 (2312 for pool 1); n_classes = 10; label = the digit folder.

Binning: an event at t ms goes to step 1 + floor(t / bin_ms) (step 0 carries no input, as the
format requires); events with t >= max_ms are dropped and counted; sequence = 1 + ceil(max_ms /
bin_ms); dt_ms = bin_ms. Each sample's events are sorted by (step, unit) and events of one unit in
one step are merged into one (inputs are 0/1); the merges are counted. Defaults: --bin-ms 1 because
eprop-dense simulates 1 ms steps (a coarser bin is recorded in dt_ms); --max-ms 1000 for SHD,
whose samples last up to about 1 s; --max-ms 300 for N-MNIST, whose samples are 3 saccades of about
100 ms each. --limit N keeps the first N samples of each class (file order) for quick runs.

Memory does not grow with the number of events: each sample's binned events are appended, as
the smallest signed integer type that holds them (int16 for SHD and N-MNIST at 1 ms), to two
temporary raw files in OUT's folder while the samples are read; only the index (offsets and
labels, 16 bytes a sample) stays in memory. At the end the .npz is written from those files a
megabyte at a time (the same zip and .npy layout as numpy.savez) and the raw files are removed.

SHD is read in a child process (this script in a hidden mode, SHD_READER_MODE), because the HDF5
library can crash, loop forever or allocate without bound on a damaged file, none of which Python
can catch in-process. The child reads and bins one sample at a time, appends to the raw files and
reports each sample on a pipe; it runs with at most SHD_READER_ADDRESS_SPACE bytes of address
space and is killed when its parent dies. The parent turns the child's death by a signal into
`the HDF5 library crashed reading it (signal N: NAME)`, and no report for STALL_SECONDS
(environment variable CONVERT_EVENTS_STALL_SECONDS overrides it) into `the HDF5 library stopped
responding` after killing the child, both as the usual one-line error below.

The output is written to a temporary file in OUT's folder and renamed over OUT, so OUT is either
the complete new file or untouched. Bad input (an unreadable or malformed file, values out of
range, decreasing N-MNIST timestamps, no samples, an SHD file that crashes or hangs the HDF5
library) ends with one line on stderr, `convert_events.py: error: <file>[: sample N]: <what is
wrong>` (N counts from 0 in file order), and exit status 2, with nothing written (no temporary
file is left behind either). On success one summary line goes to stdout.

Test hook: CONVERT_EVENTS_TEST_HOOK=segv:K, hang:K or memory:K makes the SHD reader child (and
only it) kill itself with SIGSEGV, sleep for an hour, or raise MemoryError just before it reads
sample K (a file index), so that the tests can check the crash, stall and out-of-memory handling
without a real HDF5 bug. It is for tests only.
"""

import argparse
import array
import contextlib
import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from dataclasses import dataclass

import numpy as np

PROG = "convert_events.py"

SHD_N_IN = 700
SHD_N_CLASSES = 20
NMNIST_SIZE = 34  # sensor width and height in pixels
NMNIST_N_CLASSES = 10
NMNIST_SPLITS = ("Train", "Test")
NMNIST_POOLS = (1, 2, 17, 34)  # the divisors of 34

# An SHD reader child that reports nothing (neither a sample nor an error) for this long is taken
# to hang inside the HDF5 library and killed. Reading one real SHD sample takes well under a
# millisecond and starting the child about 0.2 s, so 60 s is only ever reached by a hang, also on
# a slow or busy machine. CONVERT_EVENTS_STALL_SECONDS overrides it (the tests and the fuzzer
# lower it).
STALL_SECONDS = 60.0
STALL_ENV = "CONVERT_EVENTS_STALL_SECONDS"
# Address space of the SHD reader child (RLIMIT_AS). A damaged file can make the HDF5 library
# allocate whatever size it claims; with this limit that fails as a MemoryError (reported as one
# line) instead of taking the machine's memory. The child needs about 120 MB of address space
# (Python, numpy and h5py with one BLAS thread: VmPeak 117 MB measured) plus one sample (an SHD
# sample is a few kB); 4 GiB leaves a wide margin for other builds and platforms.
SHD_READER_ADDRESS_SPACE = 4 << 30
SHD_READER_MODE = "--shd-reader"  # hidden first argument: run as the SHD reader child
TEST_HOOK_ENV = "CONVERT_EVENTS_TEST_HOOK"  # see the module docstring; read only by the child
COPY_CHUNK = 1 << 20  # bytes copied at a time from a raw temporary into the .npz


class ConversionError(Exception):
    """Bad input: `file` (and, if known, the 0-based `sample`) with what is wrong and what is
    required. Printed by the command line as `convert_events.py: error: <str(err)>`."""

    def __init__(self, file, message, sample=None):
        super().__init__(message)
        self.file = str(file)
        self.message = message
        self.sample = sample

    def __str__(self):
        where = self.file if self.sample is None else f"{self.file}: sample {self.sample}"
        return f"{where}: {self.message}"


@dataclass
class EventList:
    """A dataset in the event-list format (docs/event-format.md), with K samples and E events.

    times    [E] int32, time step of each event, 1 <= times < sequence, sorted within a sample
    units    [E] int32, input channel of each event, 0 <= units < n_in
    offsets  [K+1] int64, sample k owns events offsets[k] ..< offsets[k+1]
    labels   [K] int32, 0 <= labels < n_classes
    dropped  events at or after max_ms (not in the file)
    merged   events merged into another one of the same unit and step (not in the file)
    """

    times: np.ndarray
    units: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    n_in: int
    n_classes: int
    sequence: int
    dt_ms: float
    dropped: int = 0
    merged: int = 0


@dataclass
class Summary:
    """What a conversion wrote: `samples` samples with `events` events; `dropped` events at or
    after max_ms and `merged` events of a (step, unit) already taken were left out."""

    samples: int
    events: int
    dropped: int
    merged: int


def smallest_int_dtype(max_value):
    """The smallest little-endian signed integer dtype that holds 0 ..= max_value."""
    for dtype in ("<i1", "<i2", "<i4", "<i8"):
        if max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"{max_value} does not fit in int64")


class EventListWriter:
    """Writes an event list to `path` sample by sample with memory that does not grow with the
    number of events: the binned events go to two raw temporaries in `path`'s folder (times and
    units as the smallest sufficient integer types, `dtypes`), only offsets and labels stay in
    memory, and finish() writes the .npz from the raw files. Use it as a context manager: on leaving the block the
    temporaries are removed, whether finish() ran or not.

    The raw files are `raw_paths["times"]` and `raw_paths["units"]`; another process may append
    to them instead of add()/append(), and then calls record() for each sample."""

    def __init__(self, path, n_in, n_classes, bin_ms, max_ms):
        self.path = path
        self.folder = output_folder(path)
        self.n_in, self.n_classes = n_in, n_classes
        self.bin_ms, self.max_ms = bin_ms, max_ms
        self.sequence = sequence_length(bin_ms, max_ms)
        self.dtypes = {"times": smallest_int_dtype(self.sequence - 1),
                       "units": smallest_int_dtype(n_in - 1)}
        self.offsets = array.array("q", [0])  # [K + 1] int64
        self.labels = array.array("q")  # [K] int64
        self.dropped = self.merged = 0
        self.raw_paths, self._files = {}, {}
        try:
            for name in ("times", "units"):
                fd, raw = tempfile.mkstemp(dir=self.folder, prefix=".convert_events-",
                                           suffix=f".{name}.raw")
                self.raw_paths[name] = raw
                self._files[name] = os.fdopen(fd, "wb")
        except OSError as err:
            self.discard()
            raise ConversionError(path, f"cannot write in {self.folder}: {err.strerror or err}") from err

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()

    def add(self, t_ms, units, label):
        """Bin one sample and append it: `t_ms` [n] float64 event times in ms (>= 0, finite),
        `units` [n] integer channels (0 <= units < n_in), `label` its class. See bin_events."""
        steps, kept_units, dropped, merged = bin_events(
            t_ms, units, self.n_in, self.bin_ms, self.max_ms, self.sequence)
        self.append(steps, kept_units, label, dropped, merged)

    def append(self, steps, units, label, dropped=0, merged=0):
        """Append one binned sample: steps [m] and units [m] integers, already checked."""
        try:
            self._files["times"].write(steps.astype(self.dtypes["times"]))
            self._files["units"].write(units.astype(self.dtypes["units"]))
        except OSError as err:
            raise ConversionError(self.path, f"cannot write: {err.strerror or err}") from err
        self.record(len(steps), label, dropped, merged)

    def record(self, count, label, dropped, merged):
        """Index one sample whose `count` events are already in the raw files."""
        self.offsets.append(self.offsets[-1] + count)
        self.labels.append(label)
        self.dropped += dropped
        self.merged += merged

    def finish(self, source):
        """Write the .npz atomically and remove the raw files; returns a Summary. `source` names
        the input in the error raised when there is no sample."""
        if not self.labels:
            raise ConversionError(source, "no samples found; at least one sample is required")
        n_events = self.offsets[-1]
        try:
            for f in self._files.values():
                f.close()
        except OSError as err:
            raise ConversionError(self.path, f"cannot write: {err.strerror or err}") from err
        for name, raw in self.raw_paths.items():
            size, expected = os.path.getsize(raw), n_events * self.dtypes[name].itemsize
            if size != expected:  # a bug, not bad input
                raise RuntimeError(f"{raw} holds {size} bytes, {expected} expected")
        with atomic_output(self.path) as f:
            # As numpy.savez writes it: uncompressed members NAME.npy, each a .npy file.
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
                for name in ("times", "units"):
                    with z.open(f"{name}.npy", "w", force_zip64=True) as member, \
                            open(self.raw_paths[name], "rb") as raw:
                        np.lib.format.write_array_header_1_0(member, {
                            "descr": np.lib.format.dtype_to_descr(self.dtypes[name]),
                            "fortran_order": False, "shape": (n_events,)})
                        shutil.copyfileobj(raw, member, COPY_CHUNK)
                for name, value in (
                        ("offsets", np.frombuffer(self.offsets, dtype=np.int64)),
                        ("labels", np.frombuffer(self.labels, dtype=np.int64).astype(np.int32)),
                        ("n_in", np.int64(self.n_in)), ("n_classes", np.int64(self.n_classes)),
                        ("sequence", np.int64(self.sequence)), ("dt_ms", np.float64(self.bin_ms))):
                    with z.open(f"{name}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
        self.discard()
        return Summary(samples=len(self.labels), events=n_events, dropped=self.dropped,
                       merged=self.merged)

    def discard(self):
        """Close and remove the raw files (again and again if need be)."""
        for f in self._files.values():
            with contextlib.suppress(OSError):
                f.close()
        for raw in self.raw_paths.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(raw)


def sequence_length(bin_ms, max_ms):
    """Steps per sample: step 0 (never used) plus ceil(max_ms / bin_ms) bins."""
    return 1 + math.ceil(max_ms / bin_ms)


def bin_events(t_ms, units, n_in, bin_ms, max_ms, sequence):
    """Bin one sample's events into steps, sorted by (step, unit), duplicates merged.

    t_ms   [n] float64, event times in ms, >= 0 and finite
    units  [n] integer, channels, 0 <= units < n_in
    Returns (steps [m] int64, units [m] int64, dropped, merged): step = 1 + floor(t_ms / bin_ms)
    for the events with t_ms < max_ms; `dropped` counts the others, `merged` the events that fell
    on a (step, unit) already taken.
    """
    keep = t_ms < max_ms
    steps = 1 + np.floor(t_ms[keep] / bin_ms).astype(np.int64)
    # Exactly, t < max_ms gives a step below `sequence`; the rounded quotient can land on the
    # boundary when t is a hair below max_ms, and that event belongs to the last bin.
    steps = np.minimum(steps, sequence - 1)
    # One sorted key per (step, unit): np.unique sorts by step, then unit, and merges duplicates.
    keys = np.unique(steps * n_in + units[keep].astype(np.int64))
    dropped = int(len(t_ms) - np.count_nonzero(keep))
    merged = int(np.count_nonzero(keep) - len(keys))
    return keys // n_in, keys % n_in, dropped, merged


def output_folder(path):
    """The folder `path` will be written in, after checking that it exists and `path` is no
    folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConversionError(path, f"output folder {folder} does not exist; create it first")
    if os.path.isdir(path):
        raise ConversionError(path, "is a folder; the output must be a file name")
    return folder


@contextlib.contextmanager
def atomic_output(path):
    """A binary file to write `path`'s content into: a temporary file in the same folder, renamed
    over `path` when the block ends normally and removed when it raises (an OSError becomes a
    ConversionError)."""
    folder = output_folder(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".convert_events-", suffix=".npz.tmp")
    except OSError as err:
        raise ConversionError(path, f"cannot write in {folder}: {err.strerror or err}") from err
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; give what open() would give
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise ConversionError(path, f"cannot write: {err.strerror or err}") from err
        raise


def write_event_list(path, events):
    """Write `events` (an EventList in memory) to `path` with numpy.savez (uncompressed, as the
    format requires), atomically: into a temporary file in the same folder, then renamed over
    `path`. (The converters stream with EventListWriter instead.)"""
    with atomic_output(path) as f:
        np.savez(f, times=events.times, units=events.units, offsets=events.offsets,
                 labels=events.labels, n_in=np.int64(events.n_in),
                 n_classes=np.int64(events.n_classes), sequence=np.int64(events.sequence),
                 dt_ms=np.float64(events.dt_ms))


def first_per_class(labels, limit):
    """Indices of the first `limit` samples of each class, in file order (all if limit is None).
    labels [K] integer -> [<= K] int64."""
    if limit is None:
        return np.arange(len(labels))
    rank = np.zeros(len(labels), dtype=np.int64)  # rank of each sample within its class
    for c in np.unique(labels):
        members = labels == c
        rank[members] = np.arange(np.count_nonzero(members))
    return np.flatnonzero(rank < limit)


# ---------------------------------------------------------------------------------------------
# SHD


# What h5py raises for a file that is not HDF5, is damaged, or holds something unexpected.
H5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError)


def open_shd(path):
    """Open an SHD .h5 file and check its layout. Returns (file, times, units, labels) where
    times and units are the variable-length datasets and labels [K] int64 the classes."""
    try:
        import h5py
    except ImportError as err:
        raise ConversionError(path, "reading SHD needs the Python package h5py "
                                    "(pip install h5py)") from err
    if not os.path.isfile(path):
        raise ConversionError(path, "no such file; the SHD .h5 file (unzipped) is required")
    try:
        with open(path, "rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"
        f = None if gzipped else h5py.File(path, "r")
    except H5_ERRORS as err:
        raise ConversionError(path, f"cannot open as HDF5 ({err}); an SHD .h5 file (unzipped) "
                                    "is required") from err
    if gzipped:
        raise ConversionError(path, "is gzip-compressed; unzip it first (gunzip), an .h5 file "
                                    "is required")
    try:
        times = shd_dataset(f, path, "spikes/times", "variable-length float")
        units = shd_dataset(f, path, "spikes/units", "variable-length integer")
        labels_ds = shd_dataset(f, path, "labels", "integer")
        try:
            times_base = h5py.check_vlen_dtype(times.dtype)
            units_base = h5py.check_vlen_dtype(units.dtype)
            labels = labels_ds[()]
        except H5_ERRORS as err:
            raise ConversionError(path, f"cannot read the datasets ({err})") from err
        if times_base is None or times_base.kind != "f":
            raise ConversionError(path, f"spikes/times has type {times.dtype}; "
                                        "variable-length float arrays are required")
        if units_base is None or units_base.kind not in "iu":
            raise ConversionError(path, f"spikes/units has type {units.dtype}; "
                                        "variable-length integer arrays are required")
        if labels.dtype.kind not in "iu":
            raise ConversionError(path, f"labels has type {labels.dtype}; integers are required")
        if not len(times) == len(units) == len(labels):
            raise ConversionError(path, f"spikes/times, spikes/units and labels have "
                                        f"{len(times)}, {len(units)} and {len(labels)} entries; "
                                        "one per sample in each is required")
        bad = np.flatnonzero((labels < 0) | (labels >= SHD_N_CLASSES))
        if len(bad):
            raise ConversionError(path, f"label {labels[bad[0]]} is out of range; 0 <= label < "
                                        f"{SHD_N_CLASSES} is required", sample=int(bad[0]))
        return f, times, units, labels.astype(np.int64)
    except BaseException:
        f.close()
        raise


def shd_dataset(f, path, name, kind):
    """The 1-D dataset `name` of the open file `f`, or a ConversionError naming what is missing."""
    import h5py
    try:
        ds = f.get(name)
    except H5_ERRORS as err:
        raise ConversionError(path, f"cannot read {name} ({err})") from err
    if not isinstance(ds, h5py.Dataset) or ds.ndim != 1:
        found = "missing" if ds is None else f"a {type(ds).__name__} of shape {getattr(ds, 'shape', '')}"
        raise ConversionError(path, f"{name} is {found}; a 1-D dataset of {kind} values, one per "
                                    "sample, is required (the SHD layout)")
    return ds


def read_shd_sample(path, times, units, k):
    """Sample `k` of an open SHD file: (t_ms [n] float64 in ms, units [n] int64), checked."""
    try:
        t_s, u = np.asarray(times[k]), np.asarray(units[k])
    except H5_ERRORS as err:
        raise ConversionError(path, f"cannot read ({err})", sample=k) from err
    if t_s.ndim != 1 or u.ndim != 1 or len(t_s) != len(u):
        raise ConversionError(path, f"{t_s.size} times but {u.size} units; one unit per spike "
                                    "time is required", sample=k)
    bad = np.flatnonzero(~np.isfinite(t_s) | (t_s < 0))
    if len(bad):
        raise ConversionError(path, f"spike {bad[0]} has time {t_s[bad[0]]} s; finite times "
                                    ">= 0 are required", sample=k)
    bad = np.flatnonzero((u < 0) | (u >= SHD_N_IN))
    if len(bad):
        raise ConversionError(path, f"spike {bad[0]} has unit {u[bad[0]]}; 0 <= unit < "
                                    f"{SHD_N_IN} is required", sample=k)
    # float16 * 1000 is exact in float64, so the binning sees the stored time itself.
    return t_s.astype(np.float64) * 1000.0, u.astype(np.int64)


def convert_shd(path, out, bin_ms=1.0, max_ms=1000.0, limit=None):
    """Convert an SHD .h5 file to the event list `out` (n_in 700, 20 classes); returns a Summary.
    The file is read in a child process (see run_shd_reader)."""
    stall = stall_seconds()
    with EventListWriter(out, SHD_N_IN, SHD_N_CLASSES, bin_ms, max_ms) as writer:
        run_shd_reader(path, writer, limit, stall)
        return writer.finish(path)


def stall_seconds():
    """STALL_SECONDS, or CONVERT_EVENTS_STALL_SECONDS if set (a number of seconds > 0)."""
    text = os.environ.get(STALL_ENV)
    if text is None:
        return STALL_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConversionError(STALL_ENV, f"{text!r}: a number of seconds > 0 is required")
    return value


def run_shd_reader(path, writer, limit, stall):
    """Read the SHD file `path` in a child process (this script in SHD_READER_MODE) that appends
    the binned samples to writer's raw files and reports each one on a pipe; index them in
    `writer`. The child's death by a signal, no report for `stall` seconds, and the child's
    errors become ConversionErrors; the child never outlives this call."""
    spec = {"src": path, "out": writer.path, "raw": writer.raw_paths,
            "dtypes": {k: v.str for k, v in writer.dtypes.items()},
            "bin_ms": writer.bin_ms, "max_ms": writer.max_ms, "limit": limit,
            "parent": os.getpid()}
    read_fd, write_fd = os.pipe()
    try:
        spec["fd"] = write_fd
        # One BLAS thread: numpy's BLAS reserves address space per thread, and the child has
        # an address-space limit.
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                   MKL_NUM_THREADS="1")
        child = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), SHD_READER_MODE, json.dumps(spec)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(write_fd,), env=env)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    try:
        follow_shd_reader(read_fd, child, path, writer, stall)
    finally:
        os.close(read_fd)
        if child.poll() is None:
            child.kill()
        child.wait()


def follow_shd_reader(fd, child, path, writer, stall):
    """Read the child's reports (one JSON object a line) from `fd` until it ends."""
    pending, next_sample, done = b"", None, False
    last = time.monotonic()
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, last + stall - time.monotonic()))
        if not ready:
            child.kill()
            child.wait()
            raise ConversionError(path, f"the HDF5 library stopped responding reading it (no "
                                        f"progress for {stall:g} s); the file is damaged, "
                                        "download it again", sample=next_sample)
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        last = time.monotonic()
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            report = json.loads(line)
            if "sample" in report:
                writer.record(*report["sample"])
                next_sample = report["next"]
            elif "open" in report:
                next_sample = report["next"]
            elif "error" in report:
                file, message, sample = report["error"]
                raise ConversionError(file, message, sample=sample)
            elif "bug" in report:
                raise RuntimeError(f"the SHD reader process failed:\n{report['bug']}")
            elif "done" in report:
                done = True
    try:
        status = child.wait(timeout=stall)
    except subprocess.TimeoutExpired:
        status = None
    if status is None:  # closed the pipe but does not end
        raise ConversionError(path, f"the HDF5 library stopped responding after reading it (no "
                                    f"exit in {stall:g} s); the file is damaged, download it again")
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = "unknown signal"
        if -status == signal.SIGKILL:
            raise ConversionError(path, f"the process reading it was killed (signal {-status}: "
                                        f"{name}; out of memory?)", sample=next_sample)
        raise ConversionError(path, f"the HDF5 library crashed reading it (signal {-status}: "
                                    f"{name}); the file is damaged, download it again",
                              sample=next_sample)
    if status != 0 or not done:
        raise RuntimeError(f"the SHD reader process ended with exit status {status} without "
                           "reporting the end of the file")


def shd_reader_main(spec_text):
    """The SHD reader child (SHD_READER_MODE): read and bin the file's samples one at a time,
    append them to the raw files and report each on the pipe. Returns the exit status."""
    spec = json.loads(spec_text)
    report_file = os.fdopen(spec["fd"], "w", buffering=1)

    def report(**fields):
        report_file.write(json.dumps(fields) + "\n")  # line-buffered: one write a report

    die_with_parent(spec["parent"])
    limit_address_space(SHD_READER_ADDRESS_SPACE)
    hook, hook_sample = test_hook()
    path, k = spec["src"], None
    try:
        f, times, units, labels = open_shd(path)
        with f:
            chosen = [int(i) for i in first_per_class(labels, spec["limit"])]
            bin_ms, max_ms = spec["bin_ms"], spec["max_ms"]
            sequence = sequence_length(bin_ms, max_ms)
            dtypes = {name: np.dtype(d) for name, d in spec["dtypes"].items()}
            report(open=len(chosen), next=chosen[0] if chosen else None)
            try:
                raw = {name: open(spec["raw"][name], "ab") for name in ("times", "units")}
            except OSError as err:
                raise ConversionError(spec["out"], f"cannot write: {err.strerror or err}") from err
            with raw["times"], raw["units"]:
                for i, k in enumerate(chosen):
                    if k == hook_sample:
                        run_test_hook(hook)
                    t_ms, u = read_shd_sample(path, times, units, k)
                    steps, kept, dropped, merged = bin_events(t_ms, u, SHD_N_IN, bin_ms, max_ms,
                                                              sequence)
                    try:
                        raw["times"].write(steps.astype(dtypes["times"]))
                        raw["units"].write(kept.astype(dtypes["units"]))
                        if i + 1 == len(chosen):
                            raw["times"].flush()
                            raw["units"].flush()
                    except OSError as err:
                        raise ConversionError(spec["out"], f"cannot write: {err.strerror or err}") \
                            from err
                    report(sample=[len(steps), int(labels[k]), dropped, merged],
                           next=chosen[i + 1] if i + 1 < len(chosen) else None)
            k = None
        report(done=True)
    except ConversionError as err:
        report(error=[err.file, err.message, err.sample])
    except MemoryError:
        report(error=[path, f"the HDF5 library ran out of memory reading it (limit "
                            f"{SHD_READER_ADDRESS_SPACE >> 30} GiB of address space); the file is "
                            "damaged, download it again", k])
    except OSError as err:
        report(error=[path, f"cannot read ({err})", k])
    except BaseException:
        report(bug=traceback.format_exc())
    report_file.close()
    return 0


def limit_address_space(limit):
    """Lower this process's RLIMIT_AS to `limit` bytes (where the resource module exists)."""
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft == resource.RLIM_INFINITY or soft > limit:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def die_with_parent(parent):
    """Have the kernel kill this process when its parent (pid `parent`) dies (Linux), so that a
    child stuck in the HDF5 library never outlives a killed converter."""
    if sys.platform.startswith("linux"):
        import ctypes
        PR_SET_PDEATHSIG = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(1)


def test_hook():
    """(kind, sample) from CONVERT_EVENTS_TEST_HOOK=kind:sample, or (None, None). Test hook:
    see the module docstring."""
    text = os.environ.get(TEST_HOOK_ENV, "")
    kind, _, sample = text.partition(":")
    if kind not in ("segv", "hang", "memory") or not sample.isdigit():
        return None, None
    return kind, int(sample)


def run_test_hook(kind):
    """Test hook: fail as the HDF5 library can on a damaged file."""
    if kind == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif kind == "hang":
        time.sleep(3600)
    elif kind == "memory":
        raise MemoryError


# ---------------------------------------------------------------------------------------------
# N-MNIST


def decode_nmnist(raw, path):
    """Decode the bytes of one N-MNIST .bin file.

    raw  [5n] uint8, the file's content
    Returns (x [n], y [n], polarity [n] (0 or 1), t_us [n] timestamps in µs), all int64, after
    checking the length, 0 <= x, y < 34 and non-decreasing timestamps.
    """
    if len(raw) % 5:
        raise ConversionError(path, f"size {len(raw)} bytes is not a multiple of 5; N-MNIST files "
                                    "are 5-byte events (truncated file?)")
    ev = raw.reshape(-1, 5).astype(np.int64)
    x, y = ev[:, 0], ev[:, 1]
    polarity = ev[:, 2] >> 7
    t_us = (ev[:, 2] & 0x7F) << 16 | ev[:, 3] << 8 | ev[:, 4]
    bad = np.flatnonzero((x >= NMNIST_SIZE) | (y >= NMNIST_SIZE))
    if len(bad):
        i = bad[0]
        raise ConversionError(path, f"event {i}: pixel (x {x[i]}, y {y[i]}) is outside the "
                                    f"sensor; 0 <= x, y < {NMNIST_SIZE} is required")
    bad = np.flatnonzero(np.diff(t_us) < 0)
    if len(bad):
        i = bad[0] + 1
        raise ConversionError(path, f"event {i}: timestamp {t_us[i]} µs is before the previous "
                                    f"{t_us[i - 1]} µs; non-decreasing timestamps are required")
    return x, y, polarity, t_us


def nmnist_channels(x, y, polarity, pool):
    """Input channel of each event: polarity * S^2 + (y // pool) * S + x // pool, S = 34 // pool.
    All [n] int64."""
    side = NMNIST_SIZE // pool
    return polarity * side * side + (y // pool) * side + x // pool


def nmnist_files(src_dir, split, limit=None):
    """(path, digit) of SRC_DIR/<split>/<digit>/*.bin, sorted by digit then file name, at most
    `limit` per digit. The folders are checked at once; the files of each digit are listed when
    the iteration reaches it (memory: one folder's names)."""
    split_dir = os.path.join(src_dir, split)
    if not os.path.isdir(split_dir):
        raise ConversionError(split_dir, f"no such folder; SRC_DIR/{split}/<digit 0-9>/*.bin "
                                         "(the unzipped N-MNIST archive) is required")
    digit_dirs = [os.path.join(split_dir, str(digit)) for digit in range(NMNIST_N_CLASSES)]
    for digit_dir in digit_dirs:
        if not os.path.isdir(digit_dir):
            raise ConversionError(digit_dir, "no such folder; one folder per digit 0-9 is "
                                             "required (incomplete archive?)")

    def files():
        for digit, digit_dir in enumerate(digit_dirs):
            try:
                names = sorted(n for n in os.listdir(digit_dir) if n.endswith(".bin"))
            except OSError as err:
                raise ConversionError(digit_dir, f"cannot list: {err.strerror or err}") from err
            for n in names[:limit]:
                yield os.path.join(digit_dir, n), digit
    return files()


def convert_nmnist(src_dir, out, split="Train", bin_ms=1.0, max_ms=300.0, pool=1, limit=None):
    """Convert the N-MNIST files of one split to the event list `out` (n_in 2 (34/pool)^2, 10
    classes), one file at a time; returns a Summary."""
    if pool not in NMNIST_POOLS:
        raise ConversionError(src_dir, f"pool {pool} does not divide 34; one of {NMNIST_POOLS} "
                                       "is required")
    side = NMNIST_SIZE // pool
    files = nmnist_files(src_dir, split, limit)
    with EventListWriter(out, 2 * side * side, NMNIST_N_CLASSES, bin_ms, max_ms) as writer:
        for path, digit in files:
            try:
                raw = np.fromfile(path, dtype=np.uint8)
            except OSError as err:
                raise ConversionError(path, f"cannot read: {err.strerror or err}") from err
            x, y, polarity, t_us = decode_nmnist(raw, path)
            writer.add(t_us / 1000.0, nmnist_channels(x, y, polarity, pool), digit)
        return writer.finish(os.path.join(src_dir, split))


# ---------------------------------------------------------------------------------------------
# Command line


def positive_ms(text):
    """argparse type: a finite duration > 0 in ms."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: a finite number of ms > 0 is required")
    return value


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: an integer >= 1 is required")
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog=PROG, description="Convert SHD or N-MNIST to eprop-dense's event-list .npz format "
                               "(docs/event-format.md).")
    sub = parser.add_subparsers(dest="dataset", required=True)

    shd = sub.add_parser("shd", help="Spiking Heidelberg Digits .h5 file")
    shd.add_argument("src", metavar="SRC.h5", help="shd_train.h5 or shd_test.h5 (unzipped)")
    shd.add_argument("--max-ms", type=positive_ms, default=1000.0,
                     help="drop events at or after this time (default 1000: samples last up to ~1 s)")

    nmnist = sub.add_parser("nmnist", help="N-MNIST folder of .bin files")
    nmnist.add_argument("src", metavar="SRC_DIR", help="folder holding Train/ and Test/")
    nmnist.add_argument("--split", choices=NMNIST_SPLITS, default="Train")
    nmnist.add_argument("--max-ms", type=positive_ms, default=300.0,
                        help="drop events at or after this time (default 300: 3 saccades of ~100 ms)")
    nmnist.add_argument("--pool", type=int, choices=NMNIST_POOLS, default=1,
                        help="merge pool x pool pixels into one channel (default 1)")

    for p in (shd, nmnist):
        p.add_argument("out", metavar="OUT.npz", help="output event-list file (must not exist unless --force)")
        p.add_argument("--force", action="store_true", help="replace OUT.npz if it exists")
        p.add_argument("--bin-ms", type=positive_ms, default=1.0,
                       help="width of one time step in ms (default 1: the engine's step)")
        p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                       help="keep only the first N samples of each class")
    args = parser.parse_args(argv)
    if not args.max_ms / args.bin_ms < np.iinfo(np.int32).max - 1:  # also catches inf
        parser.error(f"--max-ms {args.max_ms:g} / --bin-ms {args.bin_ms:g} gives more than 2^31 "
                     "steps; a coarser bin or a shorter --max-ms is required")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [SHD_READER_MODE]:  # hidden: the SHD reader child
        return shd_reader_main(argv[1])
    args = parse_args(argv)
    try:
        if os.path.lexists(args.out) and not args.force:
            raise ConversionError(args.out, "exists; pass --force to replace it, or choose another output file")
        if args.dataset == "shd":
            summary = convert_shd(args.src, args.out, args.bin_ms, args.max_ms, args.limit)
        else:
            summary = convert_nmnist(args.src, args.out, args.split, args.bin_ms, args.max_ms,
                                     args.pool, args.limit)
    except ConversionError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    print(f"{PROG}: {summary.samples} samples, {summary.events} events kept, "
          f"{summary.dropped} dropped past {args.max_ms:g} ms, {summary.merged} duplicates merged "
          f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
