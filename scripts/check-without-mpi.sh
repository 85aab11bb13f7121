#!/usr/bin/env bash
# Checks that eprop-dense builds and trains without Open MPI (EPROP_DENSE_MPI=0: the package
# leaves its MPI target out, as on a machine without libopenmpi-dev), and that such a binary, started
# by mpirun, refuses with a clear message instead of running N independent trainings.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scratch=.build-nompi
EPROP_DENSE_MPI=0 swift build -c release --product eprop-dense --scratch-path "$scratch"
bin="$scratch/release/eprop-dense"
if nm -D "$bin" | grep -q " MPI_Init"; then
    echo "check-without-mpi.sh: error: the EPROP_DENSE_MPI=0 build still links MPI" >&2; exit 1
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$bin" --iterations 2 --n-rec 20 --n-in 10 --sequence 100 --quiet --out "$out/run"
test -f "$out/run/run.json"
if command -v mpirun >/dev/null; then
    set +e
    msg=$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 2 "$bin" --iterations 2 --out "$out/mpi" 2>&1)
    status=$?
    set -e
    if [ "$status" -eq 0 ] || ! grep -q "built without Open MPI" <<<"$msg" || [ -e "$out/mpi" ]; then
        echo "check-without-mpi.sh: error: a build without MPI under mpirun must refuse (status $status):" >&2
        echo "$msg" >&2; exit 1
    fi
fi
echo "check-without-mpi.sh: the build without MPI trains as one process and refuses mpirun"
