# The coordinator (coordinator/): protocol, scheduler, launchers, supervision, the daemon and the
# CLI commands that talk to it. The end-to-end tests run isoflopd with fake_worker, a stand-in
# that keeps isoflop-worker's contract without LibTorch, so they take seconds.
add_executable(fake_worker ${CMAKE_CURRENT_LIST_DIR}/fake_worker.cpp)
# It reports over the daemon's socket with the real worker's reporter (isoflop_protocol).
target_link_libraries(fake_worker PRIVATE isoflop_protocol nlohmann_json::nlohmann_json
  isoflop_warnings)

# Units: protocol, slots and scheduler, retry policy, ingest and the store's supervision tables,
# processes and launchers. Fast.
isoflop_test(coordinator_test
  SOURCES
    coordinator_protocol_test.cpp
    coordinator_scheduler_test.cpp
    coordinator_supervision_test.cpp
    coordinator_process_test.cpp
  LIBS isoflop_coordinator)

# End to end: isoflopd (and the isoflop CLI) with fake_worker. Each test runs real processes for a
# few seconds (label e2e); the chaos test for up to a minute (label slow).
function(coordinator_e2e_test name labels)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE isoflop_coordinator GTest::gtest GTest::gtest_main
    isoflop_warnings)
  target_compile_definitions(${name} PRIVATE
    ISOFLOP_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    ISOFLOP_SHARED_DIR="${PROJECT_SOURCE_DIR}/../shared"
    ISOFLOPD_BIN="$<TARGET_FILE:isoflopd>"
    ISOFLOP_CLI_BIN="$<TARGET_FILE:isoflop>"
    FAKE_WORKER_BIN="$<TARGET_FILE:fake_worker>")
  add_dependencies(${name} isoflopd isoflop fake_worker)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS "${labels}" TIMEOUT 120)
endfunction()

# coordinator_test uses the test support header too (for scratch directories and sweeps).
target_compile_definitions(coordinator_test PRIVATE
  ISOFLOPD_BIN="$<TARGET_FILE:isoflopd>"
  ISOFLOP_CLI_BIN="$<TARGET_FILE:isoflop>"
  FAKE_WORKER_BIN="$<TARGET_FILE:fake_worker>")

coordinator_e2e_test(coordinator_daemon_test e2e coordinator_daemon_test.cpp)
coordinator_e2e_test(coordinator_cli_test e2e coordinator_cli_test.cpp)
coordinator_e2e_test(coordinator_chaos_test slow coordinator_chaos_test.cpp)

# libFuzzer target: the protocol decoders on arbitrary bytes (clang, -DISOFLOP_FUZZ=ON). It compiles
# the codec itself, so only the parser is instrumented. The ctest test fuzzes for 30 s from the seed
# corpus in tests/fuzz/corpus_protocol, writing what it finds to the build tree, not the sources.
#   CXX=clang++ cmake -S . -B build-fuzz -DISOFLOP_FUZZ=ON -DISOFLOP_WORKER=OFF
#   cmake --build build-fuzz --target protocol_fuzzer && ctest --test-dir build-fuzz -L fuzz
if(ISOFLOP_FUZZ)
  add_executable(protocol_fuzzer
    ${CMAKE_CURRENT_LIST_DIR}/fuzz/protocol_fuzzer.cpp
    ${PROJECT_SOURCE_DIR}/coordinator/protocol/protocol_codec.cpp
    ${PROJECT_SOURCE_DIR}/common/status.cpp)
  target_include_directories(protocol_fuzzer PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(protocol_fuzzer PRIVATE -fsanitize=fuzzer,address,undefined -g -O1)
  target_link_options(protocol_fuzzer PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(protocol_fuzzer PRIVATE nlohmann_json::nlohmann_json fmt::fmt
    isoflop_warnings)
  add_dependencies(fuzz_targets protocol_fuzzer)
  set(PROTOCOL_FUZZ_CORPUS ${CMAKE_CURRENT_BINARY_DIR}/corpus_protocol)
  file(MAKE_DIRECTORY ${PROTOCOL_FUZZ_CORPUS})
  add_test(NAME protocol_fuzzer
    COMMAND protocol_fuzzer -max_total_time=30 -dict=${CMAKE_CURRENT_LIST_DIR}/fuzz/protocol.dict
            ${PROTOCOL_FUZZ_CORPUS} ${CMAKE_CURRENT_LIST_DIR}/fuzz/corpus_protocol)
  set_tests_properties(protocol_fuzzer PROPERTIES LABELS fuzz TIMEOUT 120)
endif()

# With the real isoflop-worker, when this build has it (LibTorch found): a run trains on real text,
# its worker is killed, and it resumes from its checkpoint.
if(TARGET isoflop-worker)
  coordinator_e2e_test(coordinator_worker_e2e_test e2e coordinator_worker_e2e_test.cpp)
  target_link_libraries(coordinator_worker_e2e_test PRIVATE isoflop_data)
  target_compile_definitions(coordinator_worker_e2e_test PRIVATE
    ISOFLOP_WORKER_BIN="$<TARGET_FILE:isoflop-worker>")
  add_dependencies(coordinator_worker_e2e_test isoflop-worker)
endif()
