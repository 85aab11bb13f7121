#!/usr/bin/env bash
# Builds the libFuzzer targets (swiftc -sanitize=fuzzer,address) against the engine's sources and
# runs each for SECONDS seconds (default 600) on its seed corpus (leak detection off: the targets keep
# a lazily built global). Crashes are written to .build-fuzz/crash-*. Usage: Fuzz/run.sh [SECONDS] [target...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-600}"; shift || true
targets=("${@:-npy init checkpoint events nmnist}")
mkdir -p .build-fuzz
# The engine's release flags, as Package.swift sets them: -O, plus the AVX2/FMA target on x86-64
# unless EPROP_DENSE_PORTABLE=1 (bounds and overflow checks stay on, as in the shipped build).
flags=(-O)
if [ "$(uname -m)" = x86_64 ] && [ "${EPROP_DENSE_PORTABLE:-0}" != 1 ]; then flags+=(-target-cpu haswell -D EPROP_DENSE_AVX2); fi
for t in ${targets[@]}; do
    src="Fuzz/Fuzz$(echo "${t:0:1}" | tr a-z A-Z)${t:1}.swift"
    bin=".build-fuzz/fuzz-$t"
    swiftc -sanitize=fuzzer,address -parse-as-library "${flags[@]}" -module-name EPropFuzz \
        -Xcc -fmodule-map-file=Sources/COpenBLAS/module.modulemap -I Sources/COpenBLAS \
        "$src" Sources/EProp/*.swift Sources/EProp/Online/*.swift -o "$bin" -lopenblas -llapacke 2>&1 | grep -v "ld.gold: warning" || true
    mkdir -p ".build-fuzz/corpus-$t"
    echo "== fuzzing $t for $seconds s"
    ASAN_OPTIONS=detect_leaks=0 "$bin" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=4096 -detect_leaks=0 -artifact_prefix=.build-fuzz/ ".build-fuzz/corpus-$t" "Fuzz/corpus/$t" 2>&1 | tail -n 5
done
