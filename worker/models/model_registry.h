// The model registry: one function from a ModelSpec to an initialised model of its architecture.
//
//   gpt       GptImpl          gpt.h       pre-LN transformer (nanoGPT)
//   pgpt      ParallelGptImpl  pgpt.h      parallel paths, drop-a-path inference
//   lgpt      LinearGptImpl    lgpt.h      width halves per stage through Linear(d, d/2)
//   cgpt      LinearGptImpl    lgpt.h      ... through a causal Conv1d(d, d/2, k)
//   skipless  SkiplessGptImpl  skipless.h  no residuals, no block norms; weight_removal.h merges it
// Every variant takes the common options of the spec: tied or untied embeddings, learned or rotary
// positions, GELU / GELU-tanh / SwiGLU, MHA / MQA / GQA with its own attention width, structured
// FFN layers (structured_linear.h) with or without self-guided training.
#pragma once

#include <cstdint>
#include <memory>

#include "common/model_spec.h"
#include "common/status.h"
#include "worker/models/language_model.h"

namespace isoflop {

// Builds spec's model on the CPU in float32 and initialises it by init.h's rules from a generator
// seeded with `seed` (the same seed gives the same weights); the self-guided draw stream starts
// from `seed` too. Its parameters then number exactly Accountant::Params(spec) (guides in .guide).
// Fails with InvalidArgument when spec.Validate() does.
Result<std::shared_ptr<LanguageModelImpl>> BuildModel(const ModelSpec& spec, uint64_t seed);

}  // namespace isoflop
