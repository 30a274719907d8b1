# Parameter and FLOP accounting (common/accountant.*) and the model specification it reads.
isoflop_test(model_spec_test SOURCES model_spec_test.cpp LIBS isoflop_core GTest::gmock)
isoflop_test(accountant_test SOURCES accountant_test.cpp LIBS isoflop_core)
