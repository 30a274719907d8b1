# The results database (common/store/): RunStore and the result formats used by `isoflop results/query`.
isoflop_test(run_store_test SOURCES run_store_test.cpp results_format_test.cpp
  LIBS isoflop_store SQLite::SQLite3 fmt::fmt)
