#!/usr/bin/env bash
# The README's test command: set up (idempotent), build, run every test, then the sanitizer build of the
# non-torch code and a bounded fuzzing pass over the sweep parser. Exit status is non-zero on any failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/cluster/setup.sh"

# The tests labelled slurm need a Slurm cluster: as root, start the one-node cluster on localhost
# (installs slurm-wlm and munge once). Without one they skip, saying why.
if [ "$(id -u)" = 0 ] && [ "${ISOFLOP_SKIP_SLURM:-0}" != 1 ]; then
  "$ROOT/cluster/slurm_localhost.sh" start || echo "no localhost Slurm cluster: the slurm tests skip"
fi

echo "== unit and end-to-end tests (ctest) =="
ctest --test-dir "$ROOT/build" --output-on-failure -j"$(nproc)" --timeout 600

if [ "${ISOFLOP_SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== AddressSanitizer + UBSan build of the non-torch code =="
  SAN="$ROOT/build-asan"
  [ -f "$SAN/build.ninja" ] || cmake -S "$ROOT" -B "$SAN" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DISOFLOP_WORKER=OFF -DISOFLOP_SANITIZE=ON >/dev/null
  cmake --build "$SAN" -j"$(nproc)" | grep -vE '^\[[0-9]+/[0-9]+\] ' || true
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir "$SAN" --output-on-failure -j"$(nproc)" --timeout 600 -LE slow
fi

if [ "${ISOFLOP_SKIP_FUZZ:-0}" != 1 ]; then
  echo "== libFuzzer: bounded runs of every fuzz target =="
  FZ="$ROOT/build-fuzz"
  [ -f "$FZ/build.ninja" ] || CC=clang CXX=clang++ cmake -S "$ROOT" -B "$FZ" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DISOFLOP_WORKER=OFF -DISOFLOP_FUZZ=ON -DISOFLOP_TESTS=ON >/dev/null
  cmake --build "$FZ" -j"$(nproc)" --target fuzz_targets | grep -vE '^\[[0-9]+/[0-9]+\] ' || true
  ctest --test-dir "$FZ" --output-on-failure -L fuzz
fi
