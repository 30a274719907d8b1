# Sweep files (common/sweep/*): located YAML and includes, the schema and its agreement with the
# planner, expressions, expansion, and the corpus of bad files that each state their exact first error.
isoflop_test(sweep_test
  SOURCES
    sweep_yaml_test.cpp
    sweep_schema_test.cpp
    sweep_expression_test.cpp
    sweep_expander_test.cpp
    sweep_bad_corpus_test.cpp
  LIBS isoflop_sweep)

# libFuzzer target: LoadSweepFromString on arbitrary bytes must return a Status, never crash, hang or
# trip a sanitizer (includes disabled, runs capped). It compiles the sweep and core sources itself, so
# the parser is instrumented for coverage without instrumenting the libraries every other test links.
#   CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DISOFLOP_FUZZ=ON -DISOFLOP_WORKER=OFF
#   cmake --build build-fuzz --target sweep_fuzzer
#   mkdir -p /tmp/sweep_corpus   # libFuzzer writes what it finds into the first directory only
#   build-fuzz/tests/sweep_fuzzer -dict=tests/fuzz/sweep.dict /tmp/sweep_corpus tests/sweeps/good \
#       tests/sweeps/bad
# The good and bad sweeps are the seed corpus; ctest replays them through the fuzzer as a regression.
if(ISOFLOP_FUZZ)
  set(SWEEP_FUZZ_SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz/sweep_fuzzer.cpp)
  foreach(lib isoflop_core isoflop_sweep)
    get_target_property(lib_sources ${lib} SOURCES)
    get_target_property(lib_dir ${lib} SOURCE_DIR)
    foreach(source ${lib_sources})
      if(NOT IS_ABSOLUTE ${source})
        set(source ${lib_dir}/${source})
      endif()
      list(APPEND SWEEP_FUZZ_SOURCES ${source})
    endforeach()
  endforeach()
  add_executable(sweep_fuzzer ${SWEEP_FUZZ_SOURCES})
  target_include_directories(sweep_fuzzer PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(sweep_fuzzer PRIVATE -fsanitize=fuzzer,address,undefined -g -O1)
  target_link_options(sweep_fuzzer PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(sweep_fuzzer PRIVATE nlohmann_json::nlohmann_json fmt::fmt yaml-cpp
                                             PkgConfig::MUPARSER isoflop_warnings)
  file(GLOB SWEEP_FUZZ_SEEDS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/sweeps/good/*.yaml
       ${CMAKE_CURRENT_LIST_DIR}/sweeps/bad/*.yaml)
  add_test(NAME sweep_fuzzer_seeds COMMAND sweep_fuzzer ${SWEEP_FUZZ_SEEDS})
  # CI's bounded fuzzing pass (cluster/test.sh): 60 s of new inputs from the seeds and the dictionary.
  set(SWEEP_FUZZ_CORPUS ${CMAKE_CURRENT_BINARY_DIR}/sweep_fuzz_corpus)
  add_test(NAME sweep_fuzzer_run
           COMMAND sh -c "mkdir -p '${SWEEP_FUZZ_CORPUS}' && exec '$<TARGET_FILE:sweep_fuzzer>' \
             -max_total_time=60 -timeout=10 -rss_limit_mb=2048 \
             -dict='${CMAKE_CURRENT_LIST_DIR}/fuzz/sweep.dict' '${SWEEP_FUZZ_CORPUS}' \
             '${CMAKE_CURRENT_LIST_DIR}/sweeps/good' '${CMAKE_CURRENT_LIST_DIR}/sweeps/bad'")
  set_tests_properties(sweep_fuzzer_seeds sweep_fuzzer_run PROPERTIES LABELS fuzz TIMEOUT 300)
  add_dependencies(fuzz_targets sweep_fuzzer)
endif()

# Every example sweep shipped in sweeps/ and cluster/ plans without an error (the README promises they
# run as written). Data that is not prepared yet only warns, so this needs no corpus.
file(GLOB EXAMPLE_SWEEPS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/sweeps/*.yaml
  ${PROJECT_SOURCE_DIR}/cluster/*.yaml)
foreach(sweep ${EXAMPLE_SWEEPS})
  get_filename_component(sweep_name ${sweep} NAME_WE)
  add_test(NAME example_sweep_plans_${sweep_name} COMMAND isoflop plan ${sweep} --format csv)
endforeach()
