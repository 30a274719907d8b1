#!/usr/bin/env bash
# The GPU machine's build and checks, in one call of the device tool.
#
#   cluster/gpu_checks.sh prepare          # here (Debian, network): what the GPU machine lacks -> cluster/.deps
#   cluster/gpu_checks.sh run CHECK...     # there (Ubuntu 24.04, one H100/H200, no network): build, run the
#                                          # checks, write summaries to $OUT (or bench/results/gpu when unset)
#
# The GPU machine has LibTorch (its python3's torch 2.11.0+cu130), CMake, Open MPI, NCCL, Boost, yaml-cpp,
# spdlog and the rest, but not sqlite3.h, muParser or PCRE2's headers: `prepare` downloads those as Debian
# .debs, which `run` unpacks under /tmp (never into /). It also prepares data/english (GPT-2 BPE shards of
# ../shared/data/corpus, which does not travel, and Debian's dict-gcide: cluster/prepare_english.sh).
# Carry both with the call:
#   device run: carry [cluster/.deps, data/english], command "cluster/gpu_checks.sh run variants ladder"
#
# Checks:
#   variants   every variant family of the three papers trains ~300 steps through the coordinator
#              (cluster/gpu-variants.yaml, on data/english); passes when each run
#              completes with falling validation loss.
#   ladder     sweeps/gpu-ladder.yaml through the coordinator (about 5 minutes); its database comes back
#              as ladder.db for `isoflop curves` (bench/results/gpu_ladder.md).
#   gputest    worker_gpu_test: the fused head loss and CUDA-graph steps, which only a GPU can run.
#   speed      issue 9's throughput table: the worker (graph and eager) against PyTorch (compiled and
#              eager) on bench/gpu/speed.yaml's shapes (bench/results/gpu_speed.md).
#   ffn        issue 9 item 3: structured FFN layers (worker against plain PyTorch), pre-merge thresholds.
#   decode     issue 9 item 4: batch-1 KV-cache decoding, Mistral-shaped skipless, with/without Q and P.
#   pgpt       issue 9 item 5: ParallelGPT with a CUDA stream per path against gpt at equal parameters:
#              training (worker) and batch-1 KV-cache decoding, both paths and pgpt-1 (drop a path).
#   nccl       after `ladder`: one of its runs again, as one plain process and under `mpirun -np 1` (the
#              NCCL data-parallel path with world size 1); same losses, and the step-time overhead of
#              the bucketed all-reduce (bench/results/gpu_nccl.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$ROOT/cluster/.deps"
say() { printf '== %s\n' "$*"; }

prepare() {
  local shared="${ISOFLOP_SHARED_DIR:-$ROOT/../shared}"
  mkdir -p "$DEPS/debs"
  say "downloading the Debian packages the GPU machine lacks"
  (cd "$DEPS/debs" && apt-get download -q libsqlite3-dev libsqlite3-0 libmuparser-dev libmuparser2v5 \
    libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3 2>&1 | { grep -v '^W: Download' || true; })
  ISOFLOP_SHARED_DIR="$shared" "$ROOT/cluster/prepare_english.sh"
  du -sh "$DEPS" "$ROOT/data/english"
}

# Unpacks the carried .debs into a private prefix and points CMake and pkg-config at it.
unpack_deps() {
  local prefix=/tmp/isoflop-deps
  rm -rf "$prefix" && mkdir -p "$prefix"
  for deb in "$DEPS"/debs/*.deb; do dpkg-deb -x "$deb" "$prefix"; done
  local libdir="$prefix/usr/lib/x86_64-linux-gnu"
  export PKG_CONFIG_PATH="$libdir/pkgconfig"
  export PKG_CONFIG_SYSROOT_DIR="$prefix"   # the .pc files say prefix=/usr
  export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  CMAKE_DEPS_ARGS=(-DSQLite3_INCLUDE_DIR="$prefix/usr/include" -DSQLite3_LIBRARY="$libdir/libsqlite3.so")
}

build() {
  local torch_prefix
  torch_prefix="$(python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
  BUILD="$ROOT/build-gpu"
  say "configuring (LibTorch $(python3 -c 'import torch; print(torch.__version__)'), $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1))"
  # Tests on (GoogleTest is there) for the one test binary that needs a GPU, worker_gpu_test.
  TORCH_CUDA_ARCH_LIST=9.0 cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DISOFLOP_TESTS=ON -DCMAKE_PREFIX_PATH="$torch_prefix" "${CMAKE_DEPS_ARGS[@]}" >"$LOG/configure.log" 2>&1 ||
    { tail -30 "$LOG/configure.log"; exit 1; }
  say "building isoflop, isoflopd, isoflop-worker, worker_gpu_test"
  local t0=$SECONDS
  cmake --build "$BUILD" -j"$(nproc)" --target isoflop isoflopd isoflop-worker worker_gpu_test isoflop-ffn-bench isoflop-decode-bench isoflop-lm-decode-bench \
    >"$LOG/build.log" 2>&1 || { grep -B2 -A12 -m3 'error' "$LOG/build.log"; exit 1; }
  echo "built in $((SECONDS - t0)) s"
}

# Runs a sweep through the coordinator (a fresh state directory per check) and prints its results.
# Runs a sweep through the coordinator (a fresh state directory per check), logging to $LOG/NAME.log.
# The device tool kills a command at its time limit and returns nothing of what was still in flight,
# so a sweep that would outlast ISOFLOP_GPU_DEADLINE (seconds since this script began) is cut short:
# its finished runs stay in the database, which the caller still copies back.
run_sweep() {
  local sweep="$1" state="$2" name="$3"
  rm -rf "$state"
  local left=$((DEADLINE - SECONDS - 30))
  ((left > 30)) || { echo "no time left for $name"; return 1; }
  local status=0
  ISOFLOP_STATE_DIR="$state" timeout -k 10 "$left" "$BUILD/coordinator/isoflop" run "$sweep" \
    >"$LOG/$name.log" 2>&1 || status=$?
  ((status != 124)) || echo "deadline: $name stopped after ${left} s; finished runs are kept"
  ISOFLOP_STATE_DIR="$state" "$BUILD/coordinator/isoflop" daemon stop >/dev/null 2>&1 || true
  tr '\r' '\n' <"$LOG/$name.log" | grep -v '^$' | grep -v '%  ETA' | tail -40
  # The first run's worker log shows where a run's time goes (start-up, steps, evaluations, checkpoints).
  local first_log
  first_log="$(ls "$state"/runs/*/worker.log 2>/dev/null | head -1)"
  [ -z "$first_log" ] || cp "$first_log" "$LOG/${name}_worker.log"
  return "$status"
}

# A self-contained copy of a state directory's database (SQLite's online backup: WAL content included).
copy_db() {
  python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))' \
    "$1/isoflop.db" "$2"
}

check_variants() {
  local state=/tmp/isoflop-variants
  say "check variants: cluster/gpu-variants.yaml through the coordinator"
  local t0=$SECONDS
  run_sweep "$ROOT/cluster/gpu-variants.yaml" "$state" variants || true
  echo "sweep took $((SECONDS - t0)) s"
  # First and last validation loss of every run, its throughput and state: the summary committed to
  # bench/results/gpu_variants.md.
  ISOFLOP_STATE_DIR="$state" "$BUILD/coordinator/isoflop" query --format csv "
    SELECT r.variant, r.state, r.params, r.steps,
           (SELECT value FROM evals e WHERE e.run_id = r.id AND e.name = 'val_loss'
              ORDER BY step ASC LIMIT 1) AS first_val_loss,
           (SELECT value FROM evals e WHERE e.run_id = r.id AND e.name = 'val_loss'
              ORDER BY step DESC LIMIT 1) AS last_val_loss,
           (SELECT count(*) FROM evals e WHERE e.run_id = r.id AND e.name = 'val_loss') AS evals,
           (SELECT round(avg(tokens_per_s)) FROM metrics m WHERE m.run_id = r.id AND m.step > 25)
              AS tokens_per_s,
           (SELECT round(avg(mfu), 4) FROM metrics m WHERE m.run_id = r.id AND m.step > 25) AS mfu
    FROM runs r ORDER BY r.rowid" | tee "$LOG/gpu_variants.csv"
  copy_db "$state" "$LOG/gpu_variants.db"
  python3 - "$LOG/gpu_variants.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
bad = [r["variant"] for r in rows
       if r["state"] != "COMPLETED" or not r["last_val_loss"]
       or float(r["last_val_loss"]) >= float(r["first_val_loss"])]
print(f"variants: {len(rows) - len(bad)}/{len(rows)} completed with falling validation loss"
      + (f"; failing: {', '.join(bad)}" if bad else ""))
sys.exit(1 if bad or not rows else 0)
EOF
}

check_ladder() {
  local state=/tmp/isoflop-ladder
  say "check ladder: sweeps/gpu-ladder.yaml through the coordinator"
  local t0=$SECONDS
  run_sweep "$ROOT/sweeps/gpu-ladder.yaml" "$state" ladder || true
  echo "sweep took $((SECONDS - t0)) s"
  copy_db "$state" "$LOG/ladder.db"
  ISOFLOP_STATE_DIR="$state" "$BUILD/coordinator/isoflop" query --format csv \
    "SELECT state, count(*) AS runs FROM runs GROUP BY state" | tee "$LOG/ladder_states.csv"
  ! grep -vqE '^(state,|COMPLETED,)' "$LOG/ladder_states.csv"
}

check_nccl() {
  say "check nccl: a ladder run as one process and under mpirun -np 1 (NCCL)"
  local config
  config="$(grep -l '"name": *"dense/s4/C5e+14/s0"' /tmp/isoflop-ladder/runs/*/run.json | head -1)"
  [ -n "$config" ] || config="$(ls /tmp/isoflop-ladder/runs/*/run.json | head -1)"
  [ -n "$config" ] || { echo "nccl: no ladder run to repeat"; return 1; }
  rm -rf /tmp/nccl-single /tmp/nccl-mpi1
  local worker="$BUILD/worker/isoflop-worker" t0=$SECONDS
  "$worker" --config "$config" --run-dir /tmp/nccl-single >"$LOG/nccl_single.log" 2>&1
  local single_s=$((SECONDS - t0))
  t0=$SECONDS
  NCCL_NVLS_ENABLE=0 mpirun -np 1 --allow-run-as-root --bind-to none -x NCCL_NVLS_ENABLE \
    -x LD_LIBRARY_PATH "$worker" --config "$config" --run-dir /tmp/nccl-mpi1 >"$LOG/nccl_mpi1.log" 2>&1
  local mpi_s=$((SECONDS - t0))
  cp /tmp/nccl-single/metrics.jsonl "$LOG/nccl_single_metrics.jsonl"
  cp /tmp/nccl-mpi1/metrics.jsonl "$LOG/nccl_mpi1_metrics.jsonl"
  echo "wall: single process ${single_s} s, mpirun -np 1 ${mpi_s} s"
  python3 - "$LOG/nccl_single_metrics.jsonl" "$LOG/nccl_mpi1_metrics.jsonl" <<'EOF'
import json, sys
def load(path):
    records = [json.loads(line) for line in open(path)]
    train = {r["step"]: r for r in records if r.get("type") == "train"}
    start = next((r for r in records if r.get("type") == "start"), {})
    return train, start
single, _ = load(sys.argv[1])
nccl, start = load(sys.argv[2])
steps = sorted(set(single) & set(nccl))
diff = max(abs(single[s]["train_loss"] - nccl[s]["train_loss"]) for s in steps)
def rate(train):
    rates = [train[s]["tokens_per_s"] for s in steps if s > steps[0]]
    return sum(rates) / len(rates)
print(f"nccl: world {start.get('world_size')}, collectives {start.get('collectives')}; "
      f"{len(steps)} logged steps, max |train loss difference| {diff:.3g}; "
      f"tokens/s single {rate(single):.0f}, NCCL {rate(nccl):.0f} "
      f"(all-reduce overhead {100 * (1 - rate(nccl) / rate(single)):.1f}% of step time)")
sys.exit(0 if diff < 1e-3 and start.get("world_size") == 1 else 1)
EOF
}

# The CUDA-only tests: the fused head loss against float64, CUDA-graph steps against eager ones.
check_gputest() {
  say "check gputest: worker_gpu_test"
  local status=0
  "$BUILD/tests/worker_gpu_test" >"$LOG/gputest.log" 2>&1 || status=$?
  grep -E '^\[  (FAILED|PASSED|SKIPPED) |OK \]|Failure' "$LOG/gputest.log" | head -30
  if ((status >= 128)) && command -v cuda-gdb >/dev/null; then
    echo "worker_gpu_test died (status $status); backtrace in gputest_gdb.log"
    timeout 60 cuda-gdb -q -batch -ex run -ex bt -ex "thread apply all bt 8" \
      --args "$BUILD/tests/worker_gpu_test" --gtest_filter="StepGraph.*" >"$LOG/gputest_gdb.log" 2>&1 || true
    grep -A25 -m1 "received signal\|Program terminated" "$LOG/gputest_gdb.log" | head -40
  fi
  ((status == 0)) && grep -q "^\[  PASSED  \] 8 tests" "$LOG/gputest.log"
}

# Issue 9's throughput table (bench/gpu/speed.sh); ISOFLOP_SPEED_CONFIGS names a subset,
# ISOFLOP_SPEED_STEPS the steps per measurement.
check_speed() {
  say "check speed: isoflop-worker against PyTorch (compiled and eager)"
  local left=$((DEADLINE - SECONDS - 20)) status=0
  ((left > 30)) || { echo "no time left for speed"; return 1; }
  # shellcheck disable=SC2086
  timeout -k 5 "$left" "$ROOT/bench/gpu/speed.sh" "$BUILD" "$LOG/speed" "${ISOFLOP_SPEED_STEPS:-50}" \
    ${ISOFLOP_SPEED_CONFIGS:-} || status=$?
  ((status != 124)) || echo "deadline: speed stopped after ${left} s; the finished measurements are kept"
  python3 "$ROOT/bench/gpu/speed_summary.py" "$LOG/speed/speed.jsonl" >"$LOG/speed.md" || true
  cat "$LOG/speed.md"
  cat "$LOG"/speed/*.profile.md 2>/dev/null || true
  return "$status"
}

# Issue 9 item 3: the worker's structured FFNs against plain PyTorch ones, forward + backward, bf16,
# 30K tokens, widths 2048/3072/5120; and the pre-merge thresholds.
check_ffn() {
  say "check ffn: structured FFN layers, worker against plain PyTorch"
  ((DEADLINE - SECONDS > 100)) || { echo "no time left for ffn"; return 1; }
  mkdir -p "$LOG/ffn_profiles"
  { "$BUILD/worker/isoflop-ffn-bench" --premerge --profile "$LOG/ffn_profiles"
    python3 "$ROOT/bench/gpu/ffn_reference.py"; } >"$LOG/ffn.jsonl" 2>"$LOG/ffn.log" || true
  python3 "$ROOT/bench/gpu/ffn_summary.py" "$LOG/ffn.jsonl" | tee "$LOG/ffn.md"
}

# Issue 9 item 4: batch-1 decoding of a Mistral-shaped skipless model with and without Q and P.
check_decode() {
  say "check decode: skipless weight removal at decode time (Mistral shape, bf16, CUDA graph)"
  "$BUILD/worker/isoflop-decode-bench" --check --device cuda | tee "$LOG/decode.jsonl"
  "$BUILD/worker/isoflop-decode-bench" | tee -a "$LOG/decode.jsonl"
}

# Issue 9 item 5: ParallelGPT with one stream and with a stream per path, against gpt at equal
# parameters (bench/gpu/pgpt_speed.yaml); no PyTorch peer.
check_pgpt() {
  say "check pgpt: ParallelGPT on one and on two CUDA streams against gpt"
  ISOFLOP_SPEED_SWEEP="$ROOT/bench/gpu/pgpt_speed.yaml" ISOFLOP_SPEED_WORKER="graph streams" \
    ISOFLOP_SPEED_TORCH="" "$ROOT/bench/gpu/speed.sh" "$BUILD" "$LOG/pgpt" 40
  cp "$LOG/pgpt/speed.md" "$LOG/pgpt.md"
  say "pgpt decoding: gpt, pgpt (one stream, a stream per path) and pgpt-1, batch 1, KV cache"
  "$BUILD/worker/isoflop-lm-decode-bench" --check --device cuda | tee "$LOG/pgpt_decode.jsonl"
  for shape in "--layers 12 --d 768 --heads 12" "--layers 6 --d 384 --heads 6"; do
    # shellcheck disable=SC2086
    "$BUILD/worker/isoflop-lm-decode-bench" $shape | tee -a "$LOG/pgpt_decode.jsonl"
  done
}

main() {
  case "${1:-}" in
    prepare) prepare ;;
    run)
      shift
      # The device tool returns at most 8 files from $OUT: everything goes into one folder there,
      # packed into $OUT/gpu.tgz when the script ends (also when a check fails or time runs out).
      if [ -n "${OUT:-}" ]; then
        LOG=/tmp/isoflop-gpu-out
        rm -rf "$LOG"
        trap 'tar -czf "$OUT/gpu.tgz" -C "$LOG" . && cp "$LOG"/*.md "$OUT/" 2>/dev/null || true' EXIT
      else
        LOG="$ROOT/bench/results/gpu"
      fi
      DEADLINE="${ISOFLOP_GPU_DEADLINE:-570}"
      mkdir -p "$LOG"
      { date -u; hostname; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
        python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
                    "nccl", ".".join(map(str, torch.cuda.nccl.version())))'; } | tee "$LOG/machine.txt"
      unpack_deps
      build
      local status=0
      for check in "$@"; do
        "check_$check" || status=1
      done
      exit "$status"
      ;;
    *) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 2 ;;
  esac
}
main "$@"
