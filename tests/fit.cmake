# Scaling-law fits and figures (common/fit/, `isoflop curves`; system.md section 9): laws recovered
# from synthetic sweeps inside their own bootstrap intervals, IsoFLOP parabolas and their edge
# warnings, compute multipliers, gnuplot figures, and the command end to end on a database written
# through RunStore. Built only where Ceres is (isoflop_fit exists).
if(TARGET isoflop_fit)
  # The coverage tests fit 100 synthetic sweeps each, with bootstrap intervals: seconds here, minutes
  # under the sanitizers.
  isoflop_test(fit_test SOURCES fit_test.cpp LIBS isoflop_fit fmt::fmt
    SLOW "*IntervalsCover*:*IntervalCovers*")

  isoflop_test(fit_cli_test SOURCES fit_cli_test.cpp LIBS isoflop_fit isoflop_store
    nlohmann_json::nlohmann_json fmt::fmt)
  target_compile_definitions(fit_cli_test PRIVATE ISOFLOP_CLI_BIN="$<TARGET_FILE:isoflop>")
  add_dependencies(fit_cli_test isoflop)
endif()
