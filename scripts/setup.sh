#!/usr/bin/env bash
# Installs what eprop-dense needs on Debian/Ubuntu: OpenBLAS and LAPACKE, and Open MPI for
# data-parallel runs (apt; eprop-dense also builds without Open MPI, as one process), then the
# Python environment with NEST 3.10, numpy and matplotlib (.venv, for cross-validation and plots).
# Swift 6 must already be installed (https://swift.org/install).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v swift >/dev/null 2>&1 || { echo "setup.sh: error: swift not found; install Swift 6 first (https://swift.org/install)" >&2; exit 1; }
if ! dpkg -s libopenblas-dev liblapacke-dev openmpi-bin libopenmpi-dev >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq libopenblas-dev liblapacke-dev openmpi-bin libopenmpi-dev python3-venv
fi
bash scripts/setup-python.sh
