#!/usr/bin/env python3
"""A small synthetic dataset in the on-disk layout of N-MNIST, for cross-validating NEST's N-MNIST e-prop example.

    python notebooks-data/nmnist_synthetic.py OUT [--per-class-train N] [--per-class-test M] [--events E] [--seed S]

writes OUT/Train/<digit>/<name>.bin (N files per digit 0-9) and OUT/Test/<digit>/<name>.bin (M per digit). Each file
is a sequence of E 5-byte events exactly as N-MNIST (G. Orchard et al., Front. Neurosci. 9:437, 2015) stores them:
byte 0 = x (0..33), byte 1 = y (0..33), bit 7 of byte 2 = polarity, low 23 bits of (byte2 << 16 | byte3 << 8 |
byte4) = timestamp in microseconds, non-decreasing within a file. Names are 5-digit running numbers per split
(00001.bin, ...), so sorting a digit folder's listing gives the order of writing.

The content is made for a learning test, not to look like real recordings:
  * class dependence: every digit has its own 6 "stroke" pixels (drawn among the pixels NEST's example keeps);
    90 % of a sample's ordinary events (on average) fall on them, the rest anywhere among the kept pixels. So few
    pixels, because the example's network (V_th 0.6, input weights ~ N(0, 1/1196), 25 % of the inputs connected)
    needs a pixel to fire often to make a neuron spike: with a few hundred events spread over many pixels (real
    N-MNIST samples have thousands) the recurrent neurons stay silent;
  * coincidences: about 5 % of the events are exact copies (same pixel, same timestamp) of another event of the
    sample, so after NEST's mapping (round(t_us * 300 / 336040) ms) a spike_generator holds the same time twice
    (more coincide by chance: events of a stroke pixel less than 1.1 ms apart often round to the same ms);
  * blocklisted pixels: about 3 % of the events are on pixels of NEST's NMNIST_pixels_blocklist.txt (NEST drops them).
Timestamps are uniform integers in [0, 336040] us (336040 us is the longest N-MNIST recording, which NEST's example
maps to 300 ms), then sorted (stable) within the file. Everything is drawn from numpy.random.RandomState(S): first
the ten pixel sets, then the Train samples (digit by digit), then the Test samples.

OUT/synthetic.json records the arguments and the stroke pixels (N-MNIST readers look only into Train/ and Test/).
The folder is written into a temporary folder beside OUT and renamed into place at the end. OUT must not exist or be
empty (exit status 2 otherwise).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np

N_X, N_Y, N_POLARITY = 34, 34, 2
N_PIXELS = N_X * N_Y * N_POLARITY  # 2312; pixel = polarity * 34 * 34 + y * 34 + x, as NEST's example numbers them
TIME_MAX_US = 336040  # the example's longest recording over the training and test set
N_STROKE = 6
P_STROKE, P_DUPLICATE, P_BLOCKED = 0.9, 0.05, 0.03

# NEST 3.10's pynest/examples/eprop_plasticity/NMNIST_pixels_blocklist.txt (1116 pixels that record few or no
# events in N-MNIST), as inclusive ranges; nest_online_nmnist.py checks it against the file NEST installs.
BLOCKLIST_RANGES = [
    (0, 62), (64, 151), (159, 180), (196, 212), (232, 245), (267, 278), (301, 312), (335, 345), (370, 379),
    (404, 413), (438, 442), (444, 447), (471, 481), (506, 514), (539, 549), (573, 582), (608, 617), (641, 650),
    (675, 684), (709, 718), (743, 752), (776, 786), (810, 820), (843, 854), (877, 889), (910, 923), (943, 958),
    (976, 993), (1009, 1028), (1042, 1064), (1074, 1218), (1220, 1275), (1277, 1288), (1290, 1305), (1316, 1335),
    (1353, 1368), (1388, 1391), (1393, 1401), (1424, 1433), (1457, 1457), (1459, 1459), (1461, 1467), (1492, 1501),
    (1526, 1533), (1560, 1568), (1593, 1598), (1600, 1602), (1627, 1636), (1662, 1670), (1696, 1704), (1730, 1738),
    (1763, 1772), (1797, 1806), (1831, 1839), (1866, 1873), (1899, 1907), (1933, 1941), (1966, 1975), (2000, 2010),
    (2033, 2043), (2067, 2079), (2100, 2109), (2111, 2113), (2133, 2149), (2165, 2182), (2198, 2219), (2230, 2256),
    (2259, 2259), (2261, 2311),
]


def blocklist():
    """The blocklisted pixel numbers, sorted."""
    return np.concatenate([np.arange(a, b + 1) for a, b in BLOCKLIST_RANGES])


def active_pixels():
    """The pixels NEST's example keeps (one spike_generator each), sorted: input index = position in this list."""
    return np.setdiff1d(np.arange(N_PIXELS), blocklist())


def encode(pixels, times_us):
    """N-MNIST bytes of events (pixel numbers, timestamps in us), in the given order."""
    pixels, t = np.asarray(pixels, dtype=np.int64), np.asarray(times_us, dtype=np.int64)
    if np.any(t < 0) or np.any(t >= 1 << 23):
        raise ValueError("timestamps must fit in 23 bits")
    polarity, rest = np.divmod(pixels, N_X * N_Y)
    y, x = np.divmod(rest, N_X)
    b = np.empty((len(pixels), 5), dtype=np.uint8)
    b[:, 0] = x
    b[:, 1] = y
    b[:, 2] = (polarity << 7) | ((t >> 16) & 0x7F)
    b[:, 3] = (t >> 8) & 0xFF
    b[:, 4] = t & 0xFF
    return b.tobytes()


def decode(data):
    """(pixel numbers, timestamps in us) of N-MNIST bytes."""
    b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 5).astype(np.int64)
    t = ((b[:, 2] << 16) | (b[:, 3] << 8) | b[:, 4]) & 0x7FFFFF
    return (b[:, 2] >> 7) * N_X * N_Y + b[:, 1] * N_X + b[:, 0], t


def sample_events(rs, stroke, active, blocked, n_events):
    """One sample: (pixels, timestamps) sorted by timestamp, n_events events in all."""
    n_dup = int(round(P_DUPLICATE * n_events))
    n_blocked = int(round(P_BLOCKED * n_events))
    n_base = n_events - n_dup - n_blocked
    if n_base < 1:
        raise ValueError("--events too small")
    on_stroke = rs.random_sample(n_base) < P_STROKE
    pixels = np.where(on_stroke, stroke[rs.randint(0, len(stroke), n_base)], active[rs.randint(0, len(active), n_base)])
    times = rs.randint(0, TIME_MAX_US + 1, n_base)
    copies = rs.randint(0, n_base, n_dup)  # exact duplicates: same pixel, same timestamp
    pixels = np.concatenate([pixels, pixels[copies], blocked[rs.randint(0, len(blocked), n_blocked)]])
    times = np.concatenate([times, times[copies], rs.randint(0, TIME_MAX_US + 1, n_blocked)])
    order = np.argsort(times, kind="stable")
    return pixels[order], times[order]


def settings(per_class_train, per_class_test, n_events, seed):
    """The arguments that determine the dataset (as synthetic.json records them)."""
    return {"per_class_train": per_class_train, "per_class_test": per_class_test, "events": n_events, "seed": seed,
            "stroke_pixels_per_digit": N_STROKE, "p_stroke": P_STROKE, "p_duplicate": P_DUPLICATE,
            "p_blocked": P_BLOCKED}


def generate(out, per_class_train=3, per_class_test=2, n_events=600, seed=7):
    """Writes the dataset into `out` (atomically); returns {split: number of files}."""
    out = os.path.abspath(out)
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise FileExistsError(f"{out} exists and is not an empty folder")
    rs = np.random.RandomState(seed)
    active, blocked = active_pixels(), blocklist()
    strokes = [np.sort(rs.choice(active, N_STROKE, replace=False)) for _ in range(10)]
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(out) + ".tmp-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
    counts = {}
    try:
        for split, per_class in (("Train", per_class_train), ("Test", per_class_test)):
            k = 0
            for digit in range(10):
                folder = os.path.join(tmp, split, str(digit))
                os.makedirs(folder)
                for _ in range(per_class):
                    k += 1
                    pixels, times = sample_events(rs, strokes[digit], active, blocked, n_events)
                    with open(os.path.join(folder, f"{k:05d}.bin"), "wb") as f:
                        f.write(encode(pixels, times))
            counts[split] = k
        with open(os.path.join(tmp, "synthetic.json"), "w") as f:
            json.dump({"generator": "notebooks-data/nmnist_synthetic.py", **settings(
                per_class_train, per_class_test, n_events, seed),
                "stroke_pixels": {str(d): strokes[d].tolist() for d in range(10)}, "samples": counts}, f, indent=1)
        if os.path.isdir(out):
            os.rmdir(out)  # empty (checked above)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="see the module docstring for the content of the samples")
    p.add_argument("out", metavar="OUT")
    p.add_argument("--per-class-train", type=int, default=3, metavar="N")
    p.add_argument("--per-class-test", type=int, default=2, metavar="M")
    p.add_argument("--events", type=int, default=600, metavar="E", help="events per sample (default 600)")
    p.add_argument("--seed", type=int, default=7, metavar="S", help="numpy RandomState seed (default 7)")
    a = p.parse_args()
    if a.per_class_train < 0 or a.per_class_test < 0 or a.events < 1:
        p.error("counts must be non-negative and --events positive")
    try:
        counts = generate(a.out, a.per_class_train, a.per_class_test, a.events, a.seed)
    except FileExistsError as e:
        print(f"nmnist_synthetic.py: {e}; give a new or empty folder", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {counts['Train']} Train and {counts['Test']} Test samples of {a.events} events into {a.out}")


if __name__ == "__main__":
    main()
