# Coordinator benchmarks (system.md section 10 targets): submit to first step, idle time between runs,
# `isoflop status` at 10,000 runs and 10 million metric rows, ingest rate. fake_worker (tests/) stands
# in for the worker, so the build needs the tests. Results: bench/results/coordinator.{json,md}.
if(TARGET fake_worker)
  add_executable(coordinator_bench ${CMAKE_CURRENT_LIST_DIR}/coordinator_bench.cpp)
  target_link_libraries(coordinator_bench PRIVATE isoflop_coordinator SQLite::SQLite3
    isoflop_warnings)
  target_compile_definitions(coordinator_bench PRIVATE
    ISOFLOP_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    ISOFLOP_CLI_BIN="$<TARGET_FILE:isoflop>"
    FAKE_WORKER_BIN="$<TARGET_FILE:fake_worker>")
  add_dependencies(coordinator_bench isoflop isoflopd fake_worker)
endif()
