# Workers reporting to the coordinator over its socket (coordinator/protocol/daemon_reporter.h):
# heartbeats and records beside metrics.jsonl.

# Units: the worker messages of the protocol, the launcher's settings, the reporter against a real
# ApiServer, and the ingestor storing both ways in once. A few seconds.
isoflop_test(coordinator_report_test
  SOURCES coordinator_report_test.cpp
  LIBS isoflop_coordinator)
target_compile_definitions(coordinator_report_test PRIVATE
  ISOFLOPD_BIN="$<TARGET_FILE:isoflopd>"
  ISOFLOP_CLI_BIN="$<TARGET_FILE:isoflop>"
  FAKE_WORKER_BIN="$<TARGET_FILE:fake_worker>")

# End to end: isoflopd with fake_worker, which runs the real reporter (coordinator.cmake).
coordinator_e2e_test(coordinator_report_e2e_test e2e coordinator_report_e2e_test.cpp)
