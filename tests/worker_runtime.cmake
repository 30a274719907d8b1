# The worker's runtime (worker/runtime/): schedule, batch plan, token stream, metrics, checkpoints and
# AdamW as units, and isoflop-worker end to end on a tiny CPU model (the executable's path comes in as
# ISOFLOP_WORKER_BIN).
if(TARGET isoflop_runtime)
  isoflop_test(worker_runtime_test ONE_PROCESS SOURCES worker_runtime_test.cpp LIBS isoflop_runtime)
  target_precompile_headers(worker_runtime_test REUSE_FROM isoflop_models)
  target_compile_definitions(worker_runtime_test PRIVATE
    ISOFLOP_WORKER_BIN="$<TARGET_FILE:isoflop-worker>")
  add_dependencies(worker_runtime_test isoflop-worker)
endif()

# The worker's CUDA-only paths (fused head loss, whole-step CUDA graphs); every case skips without a
# GPU. cluster/gpu_checks.sh builds and runs it on the GPU machine.
if(TARGET isoflop_runtime)
  isoflop_test(worker_gpu_test ONE_PROCESS SOURCES worker_gpu_test.cpp LIBS isoflop_runtime)
  target_precompile_headers(worker_gpu_test REUSE_FROM isoflop_models)
endif()

# The decode benchmarks' own correctness checks (cached greedy decoding = the full forward), on the CPU.
if(TARGET isoflop-decode-bench)
  add_test(NAME decode_bench_check COMMAND isoflop-decode-bench --check --device cpu)
  set_tests_properties(decode_bench_check PROPERTIES LABELS unit TIMEOUT 120)
endif()
if(TARGET isoflop-lm-decode-bench)
  add_test(NAME lm_decode_bench_check COMMAND isoflop-lm-decode-bench --check --device cpu)
  set_tests_properties(lm_decode_bench_check PROPERTIES LABELS unit TIMEOUT 120)
endif()
