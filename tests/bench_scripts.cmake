# The GPU benchmarks' summary scripts (bench/gpu/*.py) on committed GPU results: they only read
# JSON, so they run anywhere, and a change that breaks them shows here rather than after a device
# call.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  set(GPU_RESULTS ${PROJECT_SOURCE_DIR}/bench/results/gpu)
  add_test(NAME bench_profile_summary
    COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/bench/gpu/profile_summary.py
      ${GPU_RESULTS}/profiles/json/h100_2026-12-07_gpt2-b32_worker.json
      ${GPU_RESULTS}/profiles/json/h100_2026-12-07_gpt2-b32_peer_real.json)
  # The GEMMs of one GPT-2 B32 step: 66.94 ms in 366 kernels for the worker, 67.20 for the peer.
  set_tests_properties(bench_profile_summary PROPERTIES LABELS unit
    PASS_REGULAR_EXPRESSION "\\| GEMM \\| 66\\.94 \\| 366 \\| 67\\.20 \\| 366 \\|")
  add_test(NAME bench_speed_summary
    COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/bench/gpu/speed_summary.py
      ${GPU_RESULTS}/gpu_speed_h100_profile_2026-12-07.jsonl)
  set_tests_properties(bench_speed_summary PROPERTIES LABELS unit
    PASS_REGULAR_EXPRESSION "gpt2-b32_D1e\\+09_s0 \\| torch-compile \\| 511,168 \\| 44\\.2% \\| 15\\.60 GiB \\| 1\\.024x")
endif()
