#!/usr/bin/env bash
# The offline demonstration of training on an event dataset: scikit-learn's 8x8 digits (shipped in
# its wheel, nothing downloaded) spike-encoded by digits_events.py (1437 training and 360 held-out
# samples, 64 channels, 101 steps), trained with e-prop (task event-classification: 150 LIF
# neurons, 10 softmax readouts, Adam, batch 32) for 300 iterations (6.7 epochs), evaluated on the
# held-out split every 25 iterations, with the figures. Fails if the final held-out accuracy is
# below MIN_ACCURACY. Usage: bash notebooks-data/digits_demo.sh [OUT_DIR] (default runs/digits).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-runs/digits}"
# Measured 0.9222 here (Float32, AVX2 build). Between iterations 200 and 1000 the held-out
# accuracy moved between 0.883 and 0.933 on this machine, and another CPU's rounding moves the
# trajectory, so the floor sits below that range.
MIN_ACCURACY=0.85
python=.venv/bin/python
mkdir -p "$out"
"$python" notebooks-data/digits_events.py "$out/data"
.build/release/eprop-dense --train-data "$out/data/digits_train.npz" --test-data "$out/data/digits_test.npz" \
    --iterations 300 --evaluate-every 25 --record-iterations none --out "$out/run" --force --quiet --plot
"$python" - "$out/run/evaluation.csv" "$MIN_ACCURACY" <<'PY'
import sys
import numpy as np
table = np.genfromtxt(sys.argv[1], delimiter=",", names=True, ndmin=1)
accuracy, minimum = float(table["accuracy"][-1]), float(sys.argv[2])
print(f"digits demo: held-out accuracy {accuracy:.4f} after {int(table['iteration'][-1])} iterations (required >= {minimum})")
sys.exit(0 if accuracy >= minimum else 1)
PY
