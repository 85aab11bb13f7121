#!/usr/bin/env bash
# Create (or refresh) the project's Python environment at <repo>/.venv with NEST 3.10,
# numpy, matplotlib, JAX (the autodiff reference of the BPTT check), h5py (the SHD converter) and
# scikit-learn (its 8x8 digits, the offline event-dataset demonstration). Safe to run repeatedly: an existing venv is reused and pip only
# installs what is missing. Used by notebooks-data/crossval/ (NEST export + cross-validation).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
PYTHON="${PYTHON:-python3}"
PACKAGES=(nest-simulator==3.10.0 numpy matplotlib nbclient nbformat ipykernel "jax[cpu]" h5py scikit-learn)

die() { echo "setup-python.sh: error: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found; install Python >= 3.10 (or set PYTHON=...)"

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "Creating virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV" || die "'$PYTHON -m venv' failed (on Debian: apt-get install python3-venv)"
fi

# Skip pip entirely when everything is already importable at the right version.
if "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as md, sys
ok = md.version("nest-simulator") == "3.10.0"
md.version("numpy"); md.version("matplotlib"); md.version("nbclient"); md.version("nbformat"); md.version("ipykernel"); md.version("jax")
md.version("h5py"); md.version("scikit-learn")
sys.exit(0 if ok else 1)
PY
then
    echo "Packages already installed."
else
    echo "Installing ${PACKAGES[*]} (this can take a few minutes)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip || die "pip self-upgrade failed"
    "$VENV/bin/python" -m pip install --quiet "${PACKAGES[@]}" || die "pip install ${PACKAGES[*]} failed"
fi

# Smoke test: NEST must import and report 3.10.0 (the pip wheel prints a banner; silence it).
version="$(cd /tmp && PYNEST_QUIET=1 "$VENV/bin/python" -c 'import nest; print(nest.__version__)' 2>/dev/null | tail -n 1)" \
    || die "'import nest' fails inside $VENV"
[[ "$version" == "3.10.0" ]] || die "expected NEST 3.10.0 in $VENV, found '$version'"

echo "OK: NEST $version, numpy, matplotlib in $VENV"
echo "Activate with:   source $VENV/bin/activate"
echo "or call directly: $VENV/bin/python notebooks-data/crossval/crossval.py"
