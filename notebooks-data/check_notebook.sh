#!/usr/bin/env bash
# Executes notebooks-data/tutorial.ipynb headless (nbclient, the repository's .venv) and exits
# non-zero if any cell fails. The executed copy goes to a fresh folder under /tmp (the notebook
# in the repository stays without outputs); the engine's run folders go there too.
#
#   bash notebooks-data/check_notebook.sh            # engine: .build/release/eprop-dense
#   EPROP_DENSE=/path/to/eprop-dense bash notebooks-data/check_notebook.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/.." && pwd)"
PY="$REPO_ROOT/.venv/bin/python"

die() { echo "check_notebook.sh: error: $*" >&2; exit 1; }

[[ -x "$PY" ]] || die "$PY not found; run 'bash scripts/setup.sh' (or 'bash scripts/setup-python.sh') first"
ENGINE="${EPROP_DENSE:-$REPO_ROOT/.build/release/eprop-dense}"
[[ -x "$ENGINE" ]] || die "$ENGINE not found; run 'swift build -c release' first (or set EPROP_DENSE)"

# The notebook runner; an older .venv may predate it, so install it here if needed.
if ! "$PY" -c 'import nbclient, nbformat, ipykernel' 2>/dev/null; then
    echo "Installing nbclient, nbformat, ipykernel into $REPO_ROOT/.venv"
    "$PY" -m pip install --quiet nbclient nbformat ipykernel || die "pip install nbclient nbformat ipykernel failed"
fi

WORK="$(mktemp -d /tmp/eprop-notebook.XXXXXX)"
export EPROP_DENSE="$(cd "$(dirname "$ENGINE")" && pwd)/$(basename "$ENGINE")"
export EPROP_NOTEBOOK_RUNS="$WORK/runs"
export MPLBACKEND=Agg  # no display; the notebook's %matplotlib inline still captures the figures
echo "Executing $HERE/tutorial.ipynb (engine $EPROP_DENSE, work folder $WORK)"

"$PY" - "$HERE/tutorial.ipynb" "$WORK/tutorial.executed.ipynb" <<'PY'
import os
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

source, executed = sys.argv[1], sys.argv[2]
nb = nbformat.read(source, as_version=4)
nbformat.validate(nb)
# The notebook is kept without outputs in the repository.
stored = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
if stored:
    sys.exit(f"check_notebook.sh: error: {source} has stored outputs in code cells {stored}; clear them")

start = time.time()
# Run in the notebook's folder, as Jupyter does; 'python3' is the kernel of this .venv.
client = NotebookClient(nb, timeout=300, kernel_name="python3",
                        resources={"metadata": {"path": os.path.dirname(source)}})
try:
    client.execute()
except CellExecutionError as err:
    nbformat.write(nb, executed)
    print(err, file=sys.stderr)
    sys.exit(f"check_notebook.sh: FAILED after {time.time() - start:.1f} s; partial output in {executed}")
nbformat.write(nb, executed)
n_code = sum(c.cell_type == "code" for c in nb.cells)
print(f"OK: {n_code} code cells ran in {time.time() - start:.1f} s; executed notebook: {executed}")
PY

rm -rf "$WORK/runs"  # the run folders are only needed while the notebook runs
