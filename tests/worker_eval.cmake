# Zero-shot benchmarks (worker/eval/). worker_benchmark_test: the JSONL formats, their errors and the
# metrics, without a model. worker_eval_test: the batched scorer against log-likelihoods computed by
# hand on a tiny model, a random model at chance on the shared files, and isoflop-worker writing
# NAME/acc records (the executable's path comes in as ISOFLOP_WORKER_BIN).
if(TARGET isoflop_benchmarks)
  isoflop_test(worker_benchmark_test SOURCES worker_benchmark_test.cpp LIBS isoflop_benchmarks)
endif()
if(TARGET isoflop_eval AND TARGET isoflop_runtime)
  isoflop_test(worker_eval_test ONE_PROCESS SOURCES worker_eval_test.cpp
    LIBS isoflop_eval isoflop_runtime)
  target_precompile_headers(worker_eval_test REUSE_FROM isoflop_models)
  target_compile_definitions(worker_eval_test PRIVATE
    ISOFLOP_WORKER_BIN="$<TARGET_FILE:isoflop-worker>")
  add_dependencies(worker_eval_test isoflop-worker)
endif()
