# The worker's model zoo (worker/models): every variant against the accountant, equivalences of the
# seed papers, and short overfitting runs. CPU only, small shapes. Reuses the models' precompiled
# <torch/torch.h>: the test sources include torch too, and parsing it is most of their compile time.
if(TARGET isoflop_models)
  isoflop_test(worker_models_test ONE_PROCESS
    SOURCES worker_models_test.cpp worker_structured_linear_test.cpp worker_weight_removal_test.cpp
    LIBS isoflop_models)
  target_precompile_headers(worker_models_test REUSE_FROM isoflop_models)
endif()
