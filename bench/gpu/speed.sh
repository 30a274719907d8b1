#!/usr/bin/env bash
# Training throughput of isoflop-worker against its PyTorch peer on one GPU (issue 9, items 1 and 2).
#
#   bench/gpu/speed.sh BUILD_DIR OUT_DIR [STEPS] [CONFIG...]
#
# Resolves bench/gpu/speed.yaml into run configs (isoflop plan --write-configs), then for each config
# (all, or the named ones, e.g. gpu-speed_gpt_gpt2-b32) trains STEPS optimizer steps (default 50) with
#   worker-graph   isoflop-worker (fused head loss, whole-step CUDA graph)
#   worker-eager   isoflop-worker --no-cuda-graph
#   worker-graph-B isoflop-worker --attention B (B: flash, cudnn, efficient), when named
#   torch-compile  bench/gpu/gpt_reference.py --mode compile (unless ISOFLOP_SPEED_NO_REFERENCE=1)
#   torch-eager    bench/gpu/gpt_reference.py --mode eager
#   torch-compile-random, torch-eager-random   the same on random token ids, when named
# ISOFLOP_SPEED_WORKER (default "graph eager"; also "streams": pgpt with a CUDA stream per path,
# "unfused-ln": LibTorch's float32 LayerNorm in place of the worker's kernel, "f32-wgrad":
# --float32-weight-grads) and
# ISOFLOP_SPEED_TORCH (default "compile eager"; set but empty: none) pick the measurements, ISOFLOP_SPEED_SWEEP
# another sweep file (bench/gpu/pgpt_speed.yaml). ISOFLOP_SPEED_PROFILE=1: every measurement also records
# the GPU kernels of one step after its timed ones (worker: --profile-step; peer: --profile) into
# OUT_DIR/NAME-PEER.profile.json, and OUT_DIR/NAME.profile.md compares the worker's (graph) with
# torch.compile's by kind of kernel (bench/gpu/profile_summary.py).
# one after another on the same GPU, and writes OUT_DIR/speed.jsonl (one record per measurement) and
# OUT_DIR/speed.md (bench/gpu/speed_summary.py: tokens/s, MFU, peak memory, ratios to the peers).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$1" OUT="$2" STEPS="${3:-50}"
shift $(($# < 3 ? $# : 3))
mkdir -p "$OUT"
CONFIGS="$OUT/configs"
rm -rf "$CONFIGS"
"$BUILD/coordinator/isoflop" plan "${ISOFLOP_SPEED_SWEEP:-$ROOT/bench/gpu/speed.yaml}" \
  --write-configs "$CONFIGS" >/dev/null
names=("$@")
((${#names[@]})) || mapfile -t names < <(cd "$CONFIGS" && ls *.json | sed 's/\.json$//')
: >"$OUT/speed.jsonl"
for name in "${names[@]}"; do
  config="$CONFIGS/$name.json"
  for mode in ${ISOFLOP_SPEED_WORKER-graph eager}; do
    dir="/tmp/isoflop-speed/$name-$mode"
    rm -rf "$dir"
    flags=(--stop-after-steps "$STEPS")
    # The profiled step comes after the timed ones, whose intervals it must not slow.
    [ "${ISOFLOP_SPEED_PROFILE:-0}" = 1 ] &&
      flags=(--stop-after-steps "$((STEPS + 1))" --profile-step "$((STEPS + 1))")
    case "$mode" in
      graph) ;;
      eager) flags+=(--no-cuda-graph) ;;
      graph-*) flags+=(--attention "${mode#graph-}") ;;  # e.g. graph-cudnn
      streams) flags+=(--path-streams) ;;                 # pgpt: a CUDA stream per path
      unfused-ln) flags+=(--no-fused-layer-norm) ;;       # LibTorch's float32 LayerNorm
      f32-wgrad) flags+=(--float32-weight-grads) ;;       # LinearMap's float32 weight gradients
    esac
    status=0
    "$BUILD/worker/isoflop-worker" --config "$config" --run-dir "$dir" "${flags[@]}" \
      >"$OUT/$name-$mode.log" 2>&1 || status=$?
    [ -f "$dir/kernel_profile.json" ] && cp "$dir/kernel_profile.json" "$OUT/$name-worker-$mode.profile.json"
    # 75: stopped after --stop-after-steps with a checkpoint, as asked.
    python3 - "$dir/metrics.jsonl" "$name" "worker-$mode" "$status" "$STEPS" >>"$OUT/speed.jsonl" <<'PY'
import json, sys
path, name, peer, status, steps = sys.argv[1:6]
try:
    records = [json.loads(line) for line in open(path)]
except OSError:
    records = []
train = [r for r in records if r.get("type") == "train"]
timed = [r for r in train if 20 < r["step"] <= int(steps)] or train[-1:]
out = {"config": name, "peer": peer, "exit": int(status)}
if timed:
    out.update(tokens_per_s=sum(r["tokens_per_s"] for r in timed) / len(timed),
               mfu=sum(r["mfu"] for r in timed) / len(timed),
               peak_memory_bytes=max(r.get("peak_memory_bytes", 0) for r in train),
               loss=train[-1]["train_loss"], steps=train[-1]["step"])
print(json.dumps(out))
PY
    tail -1 "$OUT/speed.jsonl"
  done
  if [ "${ISOFLOP_SPEED_NO_REFERENCE:-0}" != 1 ]; then
    for mode in ${ISOFLOP_SPEED_TORCH-compile eager}; do
      # compile-random / eager-random: the peer on random ids instead of the run's train shard.
      peer=(--mode "${mode%-random}")
      [ "$mode" = "${mode%-random}" ] || peer+=(--random-tokens)
      [ "${ISOFLOP_SPEED_PROFILE:-0}" = 1 ] && peer+=(--profile "$OUT/$name-torch-$mode.profile.json")
      python3 "$ROOT/bench/gpu/gpt_reference.py" --config "$config" "${peer[@]}" \
        --steps "$((STEPS - 20 > 10 ? STEPS - 20 : 10))" 2>"$OUT/$name-torch-$mode.log" |
        python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r.pop("mode"); r["peer"]=sys.argv[2]; r["config"]=sys.argv[1]; print(json.dumps(r))' "$name" "torch-$mode" \
        >>"$OUT/speed.jsonl" || echo "{\"config\": \"$name\", \"peer\": \"torch-$mode\", \"exit\": 1}" >>"$OUT/speed.jsonl"
      tail -1 "$OUT/speed.jsonl"
    done
  fi
  if [ -f "$OUT/$name-worker-graph.profile.json" ] && [ -f "$OUT/$name-torch-compile.profile.json" ]; then
    python3 "$ROOT/bench/gpu/profile_summary.py" "$OUT/$name-worker-graph.profile.json" \
      "$OUT/$name-torch-compile.profile.json" >"$OUT/$name.profile.md" || true
  fi
done
python3 "$ROOT/bench/gpu/speed_summary.py" "$OUT/speed.jsonl" | tee "$OUT/speed.md"
