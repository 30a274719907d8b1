#include "worker/models/model_registry.h"

#include <ATen/CPUGeneratorImpl.h>

#include "worker/models/gpt.h"
#include "worker/models/init.h"
#include "worker/models/lgpt.h"
#include "worker/models/pgpt.h"
#include "worker/models/skipless.h"

namespace isoflop {

namespace {

std::shared_ptr<LanguageModelImpl> Construct(const ModelSpec& spec) {
  switch (spec.arch) {
    case Arch::kGpt:
      return std::make_shared<GptImpl>(spec);
    case Arch::kPgpt:
      return std::make_shared<ParallelGptImpl>(spec);
    case Arch::kLgpt:
    case Arch::kCgpt:
      return std::make_shared<LinearGptImpl>(spec);
    case Arch::kSkipless:
      return std::make_shared<SkiplessGptImpl>(spec);
  }
  return nullptr;
}

}  // namespace

Result<std::shared_ptr<LanguageModelImpl>> BuildModel(const ModelSpec& spec, uint64_t seed) {
  ISOFLOP_RETURN_IF_ERROR(spec.Validate());
  std::shared_ptr<LanguageModelImpl> model = Construct(spec);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  InitializeParameters(*model, gen);
  model->SeedGuideSampler(seed);
  return model;
}

}  // namespace isoflop
