#!/usr/bin/env bash
# The whole cross-validation against NEST 3.10 from a fresh clone, in one command:
#
#     bash notebooks-data/crossval/run.sh            # every configuration (about 4 minutes)
#     bash notebooks-data/crossval/run.sh --quick    # the short form CI runs (about 20 s)
#
# Creates .venv with NEST 3.10 if needed (scripts/setup-python.sh), builds the engine if needed
# (swift build -c release --product eprop-dense; Swift 6, OpenBLAS and LAPACKE must be installed:
# scripts/setup.sh installs them on Debian/Ubuntu), then runs crossval.py with the given arguments,
# which prints the tables and exits non-zero if any configuration fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
command -v swift >/dev/null 2>&1 || { echo "run.sh: swift not found; see scripts/setup.sh" >&2; exit 1; }
bash scripts/setup-python.sh >/dev/null
swift build -c release --product eprop-dense 2>&1 | tail -n 3
exec .venv/bin/python notebooks-data/crossval/crossval.py "$@"
