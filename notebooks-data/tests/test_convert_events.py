"""Tests of convert_events.py (SHD and N-MNIST to the event-list format) and digits_events.py.

    .venv/bin/python -m unittest discover -s notebooks-data/tests -v

The inputs are small synthetic files in the real on-disk layouts: an SHD-style .h5 written with
h5py (variable-length float16 times in s, variable-length uint16 units, labels) and N-MNIST
folders of .bin files whose 5-byte events are written out byte by byte. Expected outputs are
worked out by hand in the comments next to them.
"""

import contextlib
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import zipfile
from unittest import mock

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.dirname(HERE)
sys.path.insert(0, SCRIPTS)

import convert_events  # noqa: E402

try:
    import h5py
except ImportError:
    h5py = None
try:
    import sklearn
except ImportError:
    sklearn = None
try:
    import resource
except ImportError:
    resource = None

MEMBERS = {"times", "units", "offsets", "labels", "n_in", "n_classes", "sequence", "dt_ms"}


def load_event_list(test, path):
    """Load `path` and check every rule of docs/event-format.md, plus what the converters
    promise beyond it: events sorted by (step, unit) with no duplicate within a sample, none at
    step 0. Returns a dict of the members (scalars as Python numbers)."""
    with zipfile.ZipFile(path) as z:  # uncompressed members, as the engine requires
        test.assertTrue(all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist()))
    with np.load(path, allow_pickle=False) as f:
        test.assertEqual(set(f.files), MEMBERS)
        d = {k: f[k] for k in f.files}
    for k in MEMBERS - {"dt_ms"}:
        test.assertEqual(d[k].dtype.kind, "i", k)
    test.assertEqual(d["dt_ms"].dtype, np.float64)
    for k in ("n_in", "n_classes", "sequence", "dt_ms"):
        test.assertEqual(d[k].shape, (), k)
        d[k] = d[k].item()
    times, units, offsets, labels = d["times"], d["units"], d["offsets"], d["labels"]
    test.assertEqual(times.shape, units.shape)
    test.assertGreaterEqual(len(labels), 1)
    test.assertEqual(offsets.shape, (len(labels) + 1,))
    test.assertEqual(offsets[0], 0)
    test.assertEqual(offsets[-1], len(times))
    test.assertTrue(np.all(np.diff(offsets) >= 0))
    test.assertTrue(np.all((labels >= 0) & (labels < d["n_classes"])))
    test.assertTrue(np.all((units >= 0) & (units < d["n_in"])))
    test.assertTrue(np.all((times >= 1) & (times < d["sequence"])))
    key = times.astype(np.int64) * d["n_in"] + units
    for k in range(len(labels)):
        test.assertTrue(np.all(np.diff(key[offsets[k]:offsets[k + 1]]) > 0), f"sample {k}")
    return d


def samples_of(d):
    """[(list of (step, unit), label)] per sample, for comparisons with hand-made values."""
    o = d["offsets"]
    return [(list(zip(d["times"][o[k]:o[k + 1]].tolist(), d["units"][o[k]:o[k + 1]].tolist())),
             int(d["labels"][k])) for k in range(len(d["labels"]))]


def run_main(argv):
    """convert_events.main in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = convert_events.main(argv)
        except SystemExit as e:  # argparse
            status = e.code
    return status, out.getvalue(), err.getvalue()


class TempDirTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name
        self.out_dir = os.path.join(self.tmp, "out")
        os.mkdir(self.out_dir)
        self.out = os.path.join(self.out_dir, "events.npz")

    def tearDown(self):
        self._tmp.cleanup()

    def convert(self, *argv):
        """Convert to self.out (a fresh file unless argv has --force), expect success, return
        the checked event list."""
        if "--force" not in argv and os.path.exists(self.out):
            os.remove(self.out)
        status, stdout, stderr = run_main([*argv, self.out])
        self.assertEqual((status, stderr), (0, ""))
        self.assertEqual(stdout.count("\n"), 1)
        self.assertIn(self.out, stdout)
        return load_event_list(self, self.out), stdout

    def assert_refused(self, argv, file, *fragments, sample=None):
        """Conversion fails with one line `convert_events.py: error: <file>[: sample N]: ...`,
        exit status 2, and leaves nothing in the output folder."""
        status, stdout, stderr = run_main([*argv, self.out])
        self.assertEqual(status, 2, stderr)
        self.assertEqual(stdout, "")
        where = file if sample is None else f"{file}: sample {sample}"
        self.assertTrue(stderr.startswith(f"convert_events.py: error: {where}: "), stderr)
        self.assertEqual(stderr.count("\n"), 1, stderr)
        for fragment in fragments:
            self.assertIn(fragment, stderr)
        self.assertEqual(os.listdir(self.out_dir), [])
        return stderr


# ---------------------------------------------------------------------------------------------
# SHD


def write_shd(path, samples, *, times_dtype=np.float16, skip=()):
    """An SHD-style .h5 file as the dataset ships: spikes/times (vlen float16, s), spikes/units
    (vlen uint16), labels (uint16). samples = [(times_s, units, label)]; `skip` leaves out the
    named datasets."""
    with h5py.File(path, "w") as f:
        n = len(samples)
        if "spikes/times" not in skip:
            ds = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(times_dtype))
            for k, (t, _, _) in enumerate(samples):
                ds[k] = np.asarray(t, dtype=times_dtype)
        if "spikes/units" not in skip:
            ds = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
            for k, (_, u, _) in enumerate(samples):
                ds[k] = np.asarray(u, dtype=np.uint16)
        if "labels" not in skip:
            f.create_dataset("labels", data=np.array([l for _, _, l in samples], dtype=np.uint16))
        f.create_dataset("extra/speaker", data=np.zeros(n, dtype=np.uint16))  # as in the real files


# Times are float16 values: 2^-9 s = 1.953125 ms, 2^-10 s = 0.9765625 ms, 0.999 -> 0.99902344 s,
# 0.01 -> 0.010002136 s.
SHD_SAMPLES = [
    # events out of order, a duplicate (1.95 ms, unit 5) and two at or past 1000 ms
    ([0.5, 0.0, 0.0, 2**-9, 2**-9, 0.25, 1.0, 1.25], [699, 3, 2, 5, 5, 0, 10, 11], 3),
    ([], [], 19),  # no spike at all
    ([2**-10, 0.999], [7, 8], 0),
    ([0.01], [1], 3),
]


@unittest.skipIf(h5py is None, "h5py is not installed")
class ShdTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.src = os.path.join(self.tmp, "shd.h5")
        write_shd(self.src, SHD_SAMPLES)

    def test_default_binning(self):
        # step = 1 + floor(t_ms / 1): 0 -> 1, 1.95 -> 2, 250 -> 251, 500 -> 501, 0.98 -> 1,
        # 999.02 -> 1000, 10.002 -> 11; 1000 and 1250 ms dropped; sequence 1 + 1000.
        d, stdout = self.convert("shd", self.src)
        self.assertEqual(samples_of(d), [
            ([(1, 2), (1, 3), (2, 5), (251, 0), (501, 699)], 3),
            ([], 19),
            ([(1, 7), (1000, 8)], 0),
            ([(11, 1)], 3),
        ])
        self.assertEqual((d["n_in"], d["n_classes"], d["sequence"], d["dt_ms"]), (700, 20, 1001, 1.0))
        self.assertIn("4 samples, 8 events kept, 2 dropped past 1000 ms, 1 duplicates merged", stdout)
        # the smallest integer types that hold steps < 1001 and units < 700
        self.assertEqual((d["times"].dtype, d["units"].dtype), (np.int16, np.int16))

    def test_coarser_bin_and_shorter_max(self):
        # bin 2 ms, max 300 ms: 0 -> 1, 1.95 -> 1 (unit 5 twice: one merge), 250 -> 126,
        # 10.002 -> 6; 500, 1000, 1250 and 999.02 ms dropped; sequence 1 + 150.
        d, stdout = self.convert("shd", self.src, "--bin-ms", "2", "--max-ms", "300")
        self.assertEqual(samples_of(d), [
            ([(1, 2), (1, 3), (1, 5), (126, 0)], 3),
            ([], 19),
            ([(1, 7)], 0),
            ([(6, 1)], 3),
        ])
        self.assertEqual((d["sequence"], d["dt_ms"]), (151, 2.0))
        self.assertIn("6 events kept, 4 dropped past 300 ms, 1 duplicates merged", stdout)

    def test_sequence_rounds_up(self):
        # 1000 / 3 = 333.3 bins -> 334; 999.02 ms -> 1 + floor(333.007) = 334, the last step.
        d, _ = self.convert("shd", self.src, "--bin-ms", "3")
        self.assertEqual(d["sequence"], 335)
        self.assertEqual(samples_of(d)[2], ([(1, 7), (334, 8)], 0))

    def test_limit_per_class(self):
        d, _ = self.convert("shd", self.src, "--limit", "1")
        self.assertEqual(d["labels"].tolist(), [3, 19, 0])  # the second sample of class 3 is left out

    def test_existing_output_is_kept_unless_forced(self):
        with open(self.out, "wb") as f:
            f.write(b"old")
        status, stdout, stderr = run_main(["shd", self.src, self.out])
        self.assertEqual((status, stdout), (2, ""))
        self.assertEqual(stderr, f"convert_events.py: error: {self.out}: exists; pass --force to replace it, or choose another output file\n")
        with open(self.out, "rb") as f:
            self.assertEqual(f.read(), b"old")
        self.convert("shd", self.src, "--force")
        self.assertEqual(sorted(os.listdir(self.out_dir)), ["events.npz"])

    def refuse(self, samples, *fragments, sample=None, **write_options):
        src = os.path.join(self.tmp, "bad.h5")
        write_shd(src, samples, **write_options)
        return self.assert_refused(["shd", src], src, *fragments, sample=sample)

    def test_missing_dataset(self):
        for name in ("spikes/times", "spikes/units", "labels"):
            with self.subTest(name):
                self.refuse(SHD_SAMPLES, f"{name} is missing", "required", skip=(name,))

    def test_mismatched_lengths_in_sample(self):
        samples = [([0.1], [1], 0), ([0.1, 0.2], [1], 0)]
        self.refuse(samples, "2 times but 1 units", sample=1)

    def test_negative_time(self):
        self.refuse([([0.1], [1], 0), ([0.1, -0.5], [1, 2], 0)], "spike 1", "-0.5", ">= 0",
                    sample=1)

    def test_non_finite_time(self):
        for bad in (np.inf, np.nan):
            with self.subTest(bad):
                self.refuse([([0.1, bad], [1, 2], 0)], "spike 1", "finite", sample=0)

    def test_unit_out_of_range(self):
        self.refuse([([0.1], [1], 0), ([0.1, 0.2], [699, 700], 0)], "unit 700", "< 700", sample=1)

    def test_label_out_of_range(self):
        self.refuse([([0.1], [1], 0), ([0.1], [1], 20)], "label 20", "< 20", sample=1)

    def test_sample_count_mismatch(self):
        with h5py.File(self.src, "a") as f:
            del f["labels"]
            f.create_dataset("labels", data=np.zeros(3, dtype=np.uint16))
        self.assert_refused(["shd", self.src], self.src, "4, 4 and 3 entries")

    def test_not_hdf5(self):
        src = os.path.join(self.tmp, "noise.h5")
        with open(src, "wb") as f:
            f.write(b"\x00" * 1000)
        self.assert_refused(["shd", src], src, "cannot open as HDF5")

    def test_gzipped(self):
        import gzip
        src = os.path.join(self.tmp, "shd.h5.gz")
        with open(self.src, "rb") as f, gzip.open(src, "wb") as g:
            g.write(f.read())
        self.assert_refused(["shd", src], src, "gunzip")

    def test_missing_file(self):
        src = os.path.join(self.tmp, "nope.h5")
        self.assert_refused(["shd", src], src, "no such file")

    def test_failed_conversion_keeps_old_output(self):
        with open(self.out, "wb") as f:
            f.write(b"old")
        src = os.path.join(self.tmp, "bad.h5")
        write_shd(src, [([0.1], [700], 0)])
        status, _, _ = run_main(["shd", src, self.out])
        self.assertEqual(status, 2)
        self.assertEqual(os.listdir(self.out_dir), ["events.npz"])
        with open(self.out, "rb") as f:
            self.assertEqual(f.read(), b"old")

    def test_command_line_process(self):
        """The real process: exit status 2 and one line on stderr, no traceback."""
        src = os.path.join(self.tmp, "bad.h5")
        write_shd(src, [([0.1], [1], 25)])
        run = subprocess.run([sys.executable, os.path.join(SCRIPTS, "convert_events.py"), "shd",
                              src, self.out], capture_output=True, text=True)
        self.assertEqual(run.returncode, 2)
        self.assertEqual(run.stderr,
                         f"convert_events.py: error: {src}: sample 0: label 25 is out of range; "
                         "0 <= label < 20 is required\n")
        self.assertEqual(os.listdir(self.out_dir), [])


@unittest.skipIf(h5py is None, "h5py is not installed")
class ShdIsolationTest(TempDirTest):
    """SHD is read in a child process so that a crash or hang of the HDF5 library becomes a
    one-line error. The failures are provoked with the converter's test hook
    (CONVERT_EVENTS_TEST_HOOK=kind:sample, read only by the child) just before the child reads
    sample 1, after it has appended sample 0 to the raw temporaries, which must go too."""

    def setUp(self):
        super().setUp()
        self.src = os.path.join(self.tmp, "shd.h5")
        write_shd(self.src, SHD_SAMPLES)

    def refuse_with_hook(self, hook, *fragments, stall=None):
        env = {convert_events.TEST_HOOK_ENV: hook}
        if stall is not None:
            env[convert_events.STALL_ENV] = str(stall)
        with mock.patch.dict(os.environ, env):
            return self.assert_refused(["shd", self.src], self.src, *fragments, sample=1)

    def test_crash(self):
        self.refuse_with_hook("segv:1", f"the HDF5 library crashed reading it (signal "
                              f"{int(signal.SIGSEGV)}: SIGSEGV); the file is damaged, download it "
                              "again")

    def test_stall(self):
        start = time.monotonic()
        self.refuse_with_hook("hang:1", "the HDF5 library stopped responding reading it (no "
                              "progress for 0.5 s)", "download it again", stall=0.5)
        self.assertLess(time.monotonic() - start, 10)  # the child sleeps for an hour unless killed

    def test_out_of_memory(self):
        self.refuse_with_hook("memory:1", "the HDF5 library ran out of memory reading it")

    def test_hook_on_another_sample_is_harmless(self):
        with mock.patch.dict(os.environ, {convert_events.TEST_HOOK_ENV: "segv:9"}):
            d, _ = self.convert("shd", self.src)
        self.assertEqual(len(d["labels"]), 4)

    def test_bad_stall_setting(self):
        with mock.patch.dict(os.environ, {convert_events.STALL_ENV: "0"}):
            self.assert_refused(["shd", self.src], convert_events.STALL_ENV, "seconds > 0")

    def test_crash_command_line_process(self):
        """The real process: exit status 2 and exactly one line on stderr."""
        env = dict(os.environ, **{convert_events.TEST_HOOK_ENV: "segv:1"})
        run = subprocess.run([sys.executable, os.path.join(SCRIPTS, "convert_events.py"), "shd",
                              self.src, self.out], capture_output=True, text=True, env=env)
        self.assertEqual(run.returncode, 2)
        self.assertEqual(run.stderr, f"convert_events.py: error: {self.src}: sample 1: the HDF5 "
                                     f"library crashed reading it (signal {int(signal.SIGSEGV)}: "
                                     "SIGSEGV); the file is damaged, download it again\n")
        self.assertEqual(os.listdir(self.out_dir), [])


# ---------------------------------------------------------------------------------------------
# N-MNIST

# One file of digit 3, byte by byte: x, y, polarity << 7 | t >> 16, t >> 8 & 0xff, t & 0xff.
NMNIST_DIGIT3 = bytes([
    0x21, 0x21, 0x00, 0x00, 0x00,  # x 33, y 33, off, t 0 µs
    0x21, 0x21, 0x00, 0x03, 0xE7,  # x 33, y 33, off, t 999 µs: same step and channel as above
    0x01, 0x02, 0x81, 0x11, 0x70,  # x 1, y 2, on, t 0x011170 = 70000 µs (needs the third byte)
    0x05, 0x00, 0x04, 0x93, 0xDF,  # x 5, y 0, off, t 0x0493DF = 299999 µs: the last step
    0x00, 0x00, 0xFF, 0xFF, 0xFF,  # x 0, y 0, on, t 0x7FFFFF = 8388607 µs: past 300 ms
])
# Two files of digit 7: a.bin has two events in pixels (0, 0) and (1, 1) in step 1 (one 2x2 pool
# cell); b.bin is empty.
NMNIST_DIGIT7_A = bytes([0x00, 0x00, 0x00, 0x00, 0x64,    # x 0, y 0, off, t 100 µs
                         0x01, 0x01, 0x00, 0x00, 0xC8])   # x 1, y 1, off, t 200 µs


def write_nmnist(root, files, split="Train"):
    """SRC_DIR/<split>/<digit>/<name> for every digit 0-9; files = {(digit, name): bytes}."""
    for digit in range(10):
        os.makedirs(os.path.join(root, split, str(digit)), exist_ok=True)
    for (digit, name), content in files.items():
        with open(os.path.join(root, split, str(digit), name), "wb") as f:
            f.write(content)


class NmnistTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.src = os.path.join(self.tmp, "nmnist")
        write_nmnist(self.src, {(7, "b.bin"): b"", (7, "a.bin"): NMNIST_DIGIT7_A,
                                (3, "00001.bin"): NMNIST_DIGIT3, (3, "notes.txt"): b"ignored"})

    def test_default_pool_1(self):
        # channel = p * 34^2 + y * 34 + x: (33,33,off) 1155, (1,2,on) 1156 + 68 + 1 = 1225,
        # (5,0,off) 5, (0,0) 0, (1,1) 35. Steps 1 + floor(t / 1000 µs): 1, 1, 71, 300; sequence 301.
        d, stdout = self.convert("nmnist", self.src)
        self.assertEqual(samples_of(d), [
            ([(1, 1155), (71, 1225), (300, 5)], 3),
            ([(1, 0), (1, 35)], 7),
            ([], 7),
        ])
        self.assertEqual((d["n_in"], d["n_classes"], d["sequence"], d["dt_ms"]), (2312, 10, 301, 1.0))
        self.assertIn("3 samples, 5 events kept, 1 dropped past 300 ms, 1 duplicates merged", stdout)

    def test_pooling(self):
        # S = 34 / pool; channel = p * S^2 + (y // pool) * S + x // pool.
        cases = {
            2: (578, [(1, 16 * 17 + 16), (71, 289 + 17), (300, 2)], [(1, 0)], 2),
            17: (8, [(1, 3), (71, 4), (300, 0)], [(1, 0)], 2),
            34: (2, [(1, 0), (71, 1), (300, 0)], [(1, 0)], 2),
        }
        for pool, (n_in, digit3, digit7a, merged) in cases.items():
            with self.subTest(pool=pool):
                d, stdout = self.convert("nmnist", self.src, "--pool", str(pool))
                self.assertEqual(d["n_in"], n_in)
                self.assertEqual(samples_of(d)[:2], [(digit3, 3), (digit7a, 7)])
                self.assertIn(f"{merged} duplicates merged", stdout)

    def test_bin_and_max(self):
        # bin 10 ms, max 80 ms: 0 and 0.999 -> 1 (merged), 70 ms -> 8; 300 and 8388 ms dropped.
        d, stdout = self.convert("nmnist", self.src, "--bin-ms", "10", "--max-ms", "80")
        self.assertEqual(samples_of(d)[0], ([(1, 1155), (8, 1225)], 3))
        self.assertEqual((d["sequence"], d["dt_ms"]), (9, 10.0))
        self.assertIn("2 dropped past 80 ms", stdout)

    def test_limit_and_split(self):
        write_nmnist(self.src, {(4, "x.bin"): NMNIST_DIGIT7_A}, split="Test")
        d, _ = self.convert("nmnist", self.src, "--limit", "1")
        self.assertEqual(d["labels"].tolist(), [3, 7])
        self.assertEqual(len(samples_of(d)[1][0]), 2)  # a.bin comes before b.bin
        d, _ = self.convert("nmnist", self.src, "--split", "Test")
        self.assertEqual(samples_of(d), [([(1, 0), (1, 35)], 4)])

    def refuse_file(self, content, *fragments):
        path = os.path.join(self.src, "Train", "5", "bad.bin")
        with open(path, "wb") as f:
            f.write(content)
        return self.assert_refused(["nmnist", self.src], path, *fragments)

    def test_truncated_file(self):
        self.refuse_file(NMNIST_DIGIT3[:12], "size 12 bytes", "multiple of 5")

    def test_pixel_out_of_range(self):
        self.refuse_file(NMNIST_DIGIT7_A + bytes([0x22, 0x00, 0x00, 0x00, 0xC8]),
                         "event 2", "x 34", "< 34")
        self.refuse_file(bytes([0x00, 0x22, 0x00, 0x00, 0x00]), "event 0", "y 34", "< 34")

    def test_decreasing_timestamp(self):
        # 0x011170 = 70000 µs, then 0x001170 = 4464 µs
        self.refuse_file(bytes([0x01, 0x02, 0x81, 0x11, 0x70, 0x01, 0x02, 0x00, 0x11, 0x70]),
                         "event 1", "4464 µs", "70000 µs", "non-decreasing")

    def test_missing_split(self):
        self.assert_refused(["nmnist", self.src, "--split", "Test"],
                            os.path.join(self.src, "Test"), "no such folder")

    def test_missing_digit_folder(self):
        os.rmdir(os.path.join(self.src, "Train", "9"))
        self.assert_refused(["nmnist", self.src], os.path.join(self.src, "Train", "9"),
                            "no such folder")

    def test_no_samples(self):
        empty = os.path.join(self.tmp, "empty")
        write_nmnist(empty, {})
        self.assert_refused(["nmnist", empty], os.path.join(empty, "Train"), "no samples")

    def test_output_folder_missing(self):
        out = os.path.join(self.tmp, "nowhere", "x.npz")
        status, _, stderr = run_main(["nmnist", self.src, out])
        self.assertEqual(status, 2)
        self.assertTrue(stderr.startswith(f"convert_events.py: error: {out}: output folder"))

    def test_bad_options(self):
        for argv in (["--pool", "3"], ["--bin-ms", "0"], ["--max-ms", "nan"], ["--limit", "0"]):
            with self.subTest(argv):
                status, _, stderr = run_main(["nmnist", self.src, self.out, *argv])
                self.assertEqual(status, 2)
                self.assertIn("error:", stderr)
                self.assertEqual(os.listdir(self.out_dir), [])


# The child that converts and reports its own peak resident set size in bytes (ru_maxrss is in
# kB on Linux, in bytes on macOS).
PEAK_MEMORY_DRIVER = """
import resource, sys
sys.path.insert(0, sys.argv[1])
import convert_events
status = convert_events.main(["nmnist", sys.argv[2], sys.argv[3]])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(status, peak if sys.platform == "darwin" else peak * 1024)
"""


@unittest.skipIf(resource is None, "no resource module (peak memory is measured with getrusage)")
class PeakMemoryTest(unittest.TestCase):
    """The converter's peak memory does not grow with the number of samples: converting 2000
    N-MNIST files of ~3000 events each takes no more memory than 200 of them."""

    # Allowed growth of the converting process's peak resident set from 200 to 2000 samples.
    # Measured on Linux (numpy 2.4, Python 3.11): +0.35 to +0.45 MB (about 33.4 -> 33.8 MB) in
    # three runs, of which the in-memory index (16 bytes a sample) is 29 kB and the rest
    # allocator noise; the former converter, which kept every sample's events until the end,
    # grew by 169 MB (49 -> 218 MB). Keeping the 1800 extra samples' ~3000 events at all, even as
    # two int16 arrays, would add 1800 * 3000 * 4 B = 21.6 MB. 4 MiB is about 10 times the
    # measured noise and under a fifth of that smallest possible leak.
    PEAK_GROWTH_TOLERANCE = 4 << 20
    EVENTS_PER_FILE = 3000

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        rng = np.random.default_rng(0)
        cls.contents = []  # four different files, 5-byte events as in write_nmnist's tests
        for _ in range(4):
            n = cls.EVENTS_PER_FILE
            x, y, p = rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n)
            t = np.sort(rng.integers(0, 300_000, n))  # µs, all within the default 300 ms
            ev = np.stack([x, y, p << 7 | t >> 16, t >> 8 & 0xFF, t & 0xFF], axis=1)
            cls.contents.append(ev.astype(np.uint8).tobytes())

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def peak_bytes(self, n_files):
        """Peak RSS of a process converting a folder of `n_files` files (n_files / 10 a digit)."""
        src = os.path.join(self._tmp.name, f"nmnist-{n_files}")
        write_nmnist(src, {(i % 10, f"{i:05d}.bin"): self.contents[i % 4] for i in range(n_files)})
        out = os.path.join(self._tmp.name, f"out-{n_files}.npz")
        run = subprocess.run([sys.executable, "-c", PEAK_MEMORY_DRIVER, SCRIPTS, src, out],
                             capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stderr)
        lines = run.stdout.splitlines()
        self.assertIn(f"{n_files} samples", lines[0])
        status, peak = map(int, lines[-1].split())
        self.assertEqual(status, 0)
        with np.load(out) as f:  # the events really are in the file
            self.assertEqual(len(f["labels"]), n_files)
            self.assertGreater(len(f["times"]), n_files * self.EVENTS_PER_FILE * 0.9)
        return peak

    def test_peak_memory_does_not_grow_with_samples(self):
        small, large = self.peak_bytes(200), self.peak_bytes(2000)
        self.assertLess(large - small, self.PEAK_GROWTH_TOLERANCE,
                        f"peak RSS {small / 2**20:.1f} MB for 200 samples, "
                        f"{large / 2**20:.1f} MB for 2000")


class BinEventsTest(unittest.TestCase):
    def test_boundary_rounding_stays_in_sequence(self):
        # t a hair below max_ms whose quotient rounds up to max_ms / bin_ms: last step, not past it
        max_ms, bin_ms = 0.3, 0.1
        sequence = convert_events.sequence_length(bin_ms, max_ms)
        t = np.array([np.nextafter(max_ms, 0)])
        steps, units, dropped, merged = convert_events.bin_events(t, np.array([0]), 1, bin_ms,
                                                                  max_ms, sequence)
        self.assertEqual((steps.tolist(), dropped, merged), ([sequence - 1], 0, 0))


# ---------------------------------------------------------------------------------------------
# digits_events.py


@unittest.skipIf(sklearn is None, "scikit-learn is not installed")
class DigitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.process = subprocess.run([sys.executable, os.path.join(SCRIPTS, "digits_events.py"),
                                  cls._tmp.name], capture_output=True, text=True)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def load(self, name):
        return load_event_list(self, os.path.join(self._tmp.name, name))

    def test_files(self):
        self.assertEqual(self.process.returncode, 0, self.process.stderr)
        self.assertIn("1437 train samples", self.process.stdout)
        self.assertIn("360 test samples", self.process.stdout)
        for name in ("digits_train.npz", "digits_test.npz"):
            d = self.load(name)
            self.assertEqual((d["n_in"], d["n_classes"], d["sequence"], d["dt_ms"]), (64, 10, 101, 1.0))

    def test_stratified_split(self):
        from sklearn.datasets import load_digits
        all_counts = np.bincount(load_digits().target, minlength=10)
        test_counts = np.bincount(self.load("digits_test.npz")["labels"], minlength=10)
        train_counts = np.bincount(self.load("digits_train.npz")["labels"], minlength=10)
        np.testing.assert_array_equal(train_counts + test_counts, all_counts)
        self.assertLessEqual(np.max(np.abs(test_counts - 0.2 * all_counts)), 1.0)

    def test_rate(self):
        # expected spikes = sum of intensity / 16 * 100 Hz * 100 ms; ~350k Bernoulli draws with
        # p <= 0.1, so the relative standard deviation is about 0.2%
        from sklearn.datasets import load_digits
        expected = load_digits().data.sum() / 16 * 100 * 0.1
        total = sum(len(self.load(n)["times"]) for n in ("digits_train.npz", "digits_test.npz"))
        self.assertLess(abs(total / expected - 1), 0.01)

    def test_reproducible(self):
        import digits_events
        train, test = digits_events.make_digits_events()
        d = self.load("digits_train.npz")
        np.testing.assert_array_equal(train.times, d["times"])
        np.testing.assert_array_equal(train.units, d["units"])
        np.testing.assert_array_equal(test.offsets, self.load("digits_test.npz")["offsets"])


if __name__ == "__main__":
    unittest.main()
