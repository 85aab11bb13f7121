#!/usr/bin/env bash
# The project's test command: the Swift tests in release (the shipped flags) and in debug
# (preconditions and assertions on), the check that another package can depend on EProp by
# version, the build without Open MPI, then the live cross-validations against NEST 3.10 of both generations (short forms), the
# dataset converters' tests, the offline event-dataset demonstration (digits, a held-out accuracy floor)
# and the tutorial notebook when the Python environment exists (scripts/setup.sh creates it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# With Open MPI's development files the build is MPI-enabled, and the MPI tests must run.
if compgen -G "/usr/lib/*/pkgconfig/ompi-c.pc" >/dev/null && [ "${EPROP_DENSE_MPI:-1}" != 0 ]; then export EPROP_DENSE_REQUIRE_MPI=1; fi
swift build -c release --product eprop-dense
swift test -c release
swift build --build-tests
swift test --skip-build
bash scripts/check-consumer.sh
bash scripts/check-without-mpi.sh
if [ -x .venv/bin/python ]; then
    .venv/bin/python notebooks-data/crossval/crossval.py --quick
    .venv/bin/python notebooks-data/crossval/crossval.py --bptt
    .venv/bin/python notebooks-data/crossval/crossval_online.py --quick
    .venv/bin/python -m unittest discover -s notebooks-data/tests
    bash notebooks-data/digits_demo.sh "$(mktemp -d)/digits"
    bash notebooks-data/check_notebook.sh
else
    echo "test.sh: .venv missing, live NEST cross-validation skipped (run scripts/setup.sh)" >&2
    exit 1
fi
