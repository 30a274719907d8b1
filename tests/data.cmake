# Data path: token shards (common/data/token_shard.*), tokenizers (common/text/*) and data prepare
# (common/data/data_prepare.*).
isoflop_test(token_shard_test SOURCES token_shard_test.cpp window_order_test.cpp LIBS isoflop_data)

if(TARGET isoflop_text)
  isoflop_test(text_test SOURCES tokenizer_test.cpp data_prepare_test.cpp LIBS isoflop_text)

  # Exactness against the reference GPT-2 tokenizer on the whole shared corpus: the Python script writes
  # the reference ids (fixture setup), then gpt2_reference_test compares. Both exit 77 (skipped) when
  # their inputs are missing: no `tokenizers` package, no ../shared/data.
  set(GPT2_REFERENCE_DIR ${CMAKE_CURRENT_BINARY_DIR}/gpt2_reference)
  set(GPT2_SHARED_DATA ${PROJECT_SOURCE_DIR}/../shared/data)
  add_executable(gpt2_reference_test ${CMAKE_CURRENT_LIST_DIR}/gpt2_reference_test.cpp)
  target_link_libraries(gpt2_reference_test PRIVATE isoflop_text GTest::gtest isoflop_warnings)
  target_compile_definitions(gpt2_reference_test PRIVATE
    ISOFLOP_SHARED_DIR="${PROJECT_SOURCE_DIR}/../shared"
    GPT2_REFERENCE_DIR="${GPT2_REFERENCE_DIR}")

  file(GLOB_RECURSE GPT2_REFERENCE_CORPUS ${GPT2_SHARED_DATA}/corpus/*.txt)
  list(SORT GPT2_REFERENCE_CORPUS)
  # The project venv has `tokenizers` (cluster/setup.sh); another python3 runs the script only to
  # report the test as skipped when it lacks the package.
  if(EXISTS ${PROJECT_SOURCE_DIR}/.venv/bin/python)
    set(GPT2_REFERENCE_PYTHON ${PROJECT_SOURCE_DIR}/.venv/bin/python)
  else()
    find_program(GPT2_REFERENCE_PYTHON python3)
  endif()
  if(GPT2_REFERENCE_PYTHON AND GPT2_REFERENCE_CORPUS)
    add_test(NAME gpt2_reference_ids
      COMMAND ${GPT2_REFERENCE_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/tools/gpt2_reference_ids.py
        --tokenizer ${GPT2_SHARED_DATA}/tokenizer/gpt2 --out ${GPT2_REFERENCE_DIR}
        ${GPT2_REFERENCE_CORPUS})
    set_tests_properties(gpt2_reference_ids PROPERTIES
      FIXTURES_SETUP gpt2_reference SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS reference)
  endif()
  add_test(NAME gpt2_reference_test COMMAND gpt2_reference_test)
  set_tests_properties(gpt2_reference_test PROPERTIES
    FIXTURES_REQUIRED gpt2_reference SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS reference)
endif()
