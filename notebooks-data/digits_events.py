#!/usr/bin/env python3
"""An offline demonstration dataset in eprop-dense's event-list format (docs/event-format.md):
scikit-learn's 8x8 handwritten digits (`sklearn.datasets.load_digits`: 1797 images, 10 classes,
pixel intensities 0..16, shipped inside the scikit-learn wheel, so nothing is downloaded),
spike-encoded into a train and a test file.

    python notebooks-data/digits_events.py OUT_DIR [--steps 100] [--max-rate-hz 100]
        [--test-fraction 0.2] [--seed 1]

writes OUT_DIR/digits_train.npz and OUT_DIR/digits_test.npz (each atomically) and prints the sample
counts.

Encoding: each of the 64 pixels is one input channel (n_in 64, n_classes 10). In each 1 ms step
(dt_ms 1, the engine's step) of steps 1..--steps, a pixel of intensity v spikes with probability
v / 16 * max_rate_hz * 1 ms (a Bernoulli approximation of a Poisson process), independently of
everything else; sequence = steps + 1 (step 0 carries no input). The defaults give a full-intensity
pixel about 10 spikes in 100 steps and an image about 200 input spikes. The split is stratified
(every class in the same proportion in both files) with random_state --seed, and the spikes are
drawn from numpy's default_rng(--seed) in dataset order, so the files are reproducible.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_events import ConversionError, EventList, write_event_list  # noqa: E402

PROG = "digits_events.py"
N_PIXELS = 64
N_CLASSES = 10
MAX_INTENSITY = 16.0
DT_MS = 1.0


def encode_spikes(images, steps, max_rate_hz, rng):
    """Bernoulli spike trains of the images.

    images  [K, 64] pixel intensities 0..16
    Returns (sample [E], step [E], unit [E]) int64, sorted by sample, then step, then unit, with
    1 <= step <= steps: unit u of sample k spikes in a step with probability
    images[k, u] / 16 * max_rate_hz * DT_MS / 1000.
    """
    p = images / MAX_INTENSITY * max_rate_hz * DT_MS / 1000.0  # [K, 64] per-step probability
    spikes = rng.random((len(images), steps, N_PIXELS), dtype=np.float32) < p[:, None, :]
    sample, step, unit = np.nonzero(spikes)  # row-major order: sorted as documented
    return sample, step + 1, unit


def event_list(sample, step, unit, labels, chosen, steps):
    """The EventList of the samples `chosen` ([K'] sorted indices into labels [K])."""
    mask = np.isin(sample, chosen)
    counts = np.bincount(sample[mask], minlength=len(labels))[chosen]
    return EventList(times=step[mask].astype(np.int32), units=unit[mask].astype(np.int32),
                     offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                     labels=labels[chosen].astype(np.int32), n_in=N_PIXELS, n_classes=N_CLASSES,
                     sequence=steps + 1, dt_ms=DT_MS)


def make_digits_events(steps=100, max_rate_hz=100.0, test_fraction=0.2, seed=1):
    """(train, test) EventLists of the encoded digits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images, labels = digits.data, digits.target  # [1797, 64] 0..16, [1797] 0..9
    sample, step, unit = encode_spikes(images, steps, max_rate_hz, np.random.default_rng(seed))
    train, test = train_test_split(np.arange(len(labels)), test_size=test_fraction,
                                   stratify=labels, random_state=seed)
    return (event_list(sample, step, unit, labels, np.sort(train), steps),
            event_list(sample, step, unit, labels, np.sort(test), steps))


def main(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", metavar="OUT_DIR")
    parser.add_argument("--steps", type=int, default=100, help="steps with input (default 100)")
    parser.add_argument("--max-rate-hz", type=float, default=100.0,
                        help="rate of a full-intensity pixel (default 100 Hz)")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps >= 1 required")
    if not 0 < args.max_rate_hz <= 1000.0 / DT_MS:
        parser.error(f"0 < --max-rate-hz <= {1000.0 / DT_MS:g} required (at most one spike a step)")
    if not 0 < args.test_fraction < 1:
        parser.error("0 < --test-fraction < 1 required")

    try:
        import sklearn  # noqa: F401
    except ImportError:
        print(f"{PROG}: error: the Python package scikit-learn is missing (pip install scikit-learn)",
              file=sys.stderr)
        return 2
    train, test = make_digits_events(args.steps, args.max_rate_hz, args.test_fraction, args.seed)
    try:
        os.makedirs(args.out_dir, exist_ok=True)
        for name, events in (("digits_train.npz", train), ("digits_test.npz", test)):
            write_event_list(os.path.join(args.out_dir, name), events)
    except (OSError, ConversionError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    print(f"{PROG}: {len(train.labels)} train samples ({len(train.times)} events), "
          f"{len(test.labels)} test samples ({len(test.times)} events) -> {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
