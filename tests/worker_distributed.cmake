# Data parallelism (worker/distributed/): its parts in one process (the watchdog; the gradient
# bucketer between two simulated ranks on threads), and isoflop-worker under `mpirun -np 2|3` on a
# tiny CPU model (labelled `mpi`, one ctest test per case; `ctest -LE mpi` leaves them out, and
# they are not registered where no mpirun was found).
if(TARGET isoflop_distributed)
  isoflop_test(worker_distributed_test ONE_PROCESS
    SOURCES worker_distributed_test.cpp LIBS isoflop_distributed)
  target_precompile_headers(worker_distributed_test REUSE_FROM isoflop_models)
  set_tests_properties(worker_distributed_test PROPERTIES TIMEOUT 60)
endif()

if(TARGET isoflop-worker AND MPIEXEC_EXECUTABLE)
  add_executable(worker_distributed_mpi_test worker_distributed_mpi_test.cpp)
  target_link_libraries(worker_distributed_mpi_test PRIVATE
    isoflop_core isoflop_data nlohmann_json::nlohmann_json GTest::gtest GTest::gtest_main
    isoflop_warnings)
  target_compile_definitions(worker_distributed_mpi_test PRIVATE
    ISOFLOP_WORKER_BIN="$<TARGET_FILE:isoflop-worker>"
    ISOFLOP_MPIEXEC="${MPIEXEC_EXECUTABLE}")
  add_dependencies(worker_distributed_mpi_test isoflop-worker)
  gtest_discover_tests(worker_distributed_mpi_test DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS "mpi;e2e" TIMEOUT 90)
endif()
