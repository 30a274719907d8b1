#include "worker/runtime/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/cuda.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <unordered_set>

#include "common/atomic_file.h"
#include "common/store/run_store.h"
#include "worker/models/model_registry.h"
#include "worker/models/pgpt.h"
#include "worker/runtime/kernel_profile.h"
#ifdef ISOFLOP_WORKER_BENCHMARKS
#include "worker/eval/continuation_scorer.h"
#endif
#include "worker/models/structured_linear.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The most device memory the caching allocator has handed out at once so far (CUDA; 0 on the CPU):
// activations, parameters, optimizer state and gradients, without the allocator's cached slack.
int64_t PeakMemoryBytes(const torch::Device& device) {
  if (!device.is_cuda()) return 0;
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
  return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)]
      .peak;
}

double UnixTime() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// "1h02m", "3m05s", "12s": for the ETA on stderr.
std::string Duration(double seconds) {
  const int64_t s = std::llround(std::max(0.0, seconds));
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

// bf16 autocast over one forward pass (PyTorch's `with torch.autocast(...)`): the casts of weights
// are cached while the scope is open and dropped when the outermost scope closes, since the next
// optimizer step changes the weights they were made from.
class AutocastScope {
 public:
  AutocastScope(bool enabled, c10::DeviceType device_type)
      : enabled_(enabled), device_type_(device_type) {
    if (!enabled_) return;
    was_enabled_ = at::autocast::is_autocast_enabled(device_type_);
    previous_dtype_ = at::autocast::get_autocast_dtype(device_type_);
    at::autocast::set_autocast_enabled(device_type_, true);
    at::autocast::set_autocast_dtype(device_type_, at::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device_type_, was_enabled_);
    at::autocast::set_autocast_dtype(device_type_, previous_dtype_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
  c10::DeviceType device_type_;
  bool was_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kBFloat16;
};

// Evaluation mode for the scope's duration (no dropout exists, but self-guided layers blend their
// guide deterministically and pre-merged layers may be used in eval mode).
class EvalModeScope {
 public:
  explicit EvalModeScope(torch::nn::Module& module) : module_(module) { module_.eval(); }
  ~EvalModeScope() { module_.train(); }
  EvalModeScope(const EvalModeScope&) = delete;
  EvalModeScope& operator=(const EvalModeScope&) = delete;

 private:
  torch::nn::Module& module_;
  torch::NoGradGuard no_grad_;
};

// Every parameter and buffer of the model once, by name: what a checkpoint stores.
NamedTensors ModelTensors(const torch::nn::Module& model) {
  NamedTensors tensors;
  std::unordered_set<const void*> seen;
  for (const auto& item : model.named_parameters()) {
    if (seen.insert(item.value().unsafeGetTensorImpl()).second) {
      tensors.emplace_back(item.key(), item.value());
    }
  }
  for (const auto& item : model.named_buffers()) {
    if (seen.insert(item.value().unsafeGetTensorImpl()).second) {
      tensors.emplace_back(item.key(), item.value());
    }
  }
  return tensors;
}

// torch.nn.utils.clip_grad_norm_ without its host synchronisation: the total norm stays a device
// scalar (read only when a record needs it), and the gradients are scaled by
// min(1, max_norm / (norm + 1e-6)) on the device. max_norm <= 0 only measures.
torch::Tensor ClipGradNorm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const torch::Tensor& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return torch::zeros({});
  const std::vector<torch::Tensor> norms = torch::_foreach_norm(grads, 2);
  torch::Tensor total = torch::linalg_vector_norm(torch::stack(norms), 2);
  if (max_norm > 0) {
    const torch::Tensor scale = ((total + 1e-6).reciprocal() * max_norm).clamp_max(1.0);
    torch::_foreach_mul_(grads, scale);
  }
  return total;
}

// The end-of-text id that starts a sample, and whether ids are bytes that print as themselves: from
// the data directory's manifest.json (data_prepare.h) when there is one, else from data.tokenizer.
Result<Trainer::SampleVocabulary> FindSampleVocabulary(const DataSpec& data, int64_t vocab_size) {
  Trainer::SampleVocabulary vocab;
  std::string tokenizer = data.tokenizer;
  vocab.eot = tokenizer == "bytes" ? 256 : 50256;  // the byte tokenizer's and GPT-2's EOT
  fs::path dir = data.train;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    Result<std::vector<std::string>> shards = ListShards(data.train);
    if (shards.ok() && !shards->empty()) dir = fs::path(shards->front()).parent_path();
  }
  std::ifstream in(dir / "manifest.json");
  if (in) {
    const json manifest = json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (manifest.is_object() && manifest.contains("tokenizer") &&
        manifest["tokenizer"].is_string() && manifest.contains("eot_token") &&
        manifest["eot_token"].is_number_integer()) {
      tokenizer = manifest["tokenizer"].get<std::string>();
      vocab.eot = manifest["eot_token"].get<int64_t>();
    }
  } else if (tokenizer != "gpt2" && tokenizer != "bytes") {
    return Status::InvalidArgument(fmt::format(
        "--sample: data.tokenizer \"{}\" has no known end-of-text id and {} holds no manifest.json",
        tokenizer, dir.string()));
  }
  vocab.bytes = tokenizer == "bytes";
  if (vocab.eot < 0 || vocab.eot >= vocab_size) {
    return Status::InvalidArgument(fmt::format(
        "--sample: the end-of-text id {} of tokenizer \"{}\" is outside the model's vocabulary "
        "(model.vocab_size {})",
        vocab.eot, tokenizer, vocab_size));
  }
  return vocab;
}

// Data parallel: rank 0's state of `generator` (the CPU's or a GPU's default) on every rank, so
// that every rank draws what one process would.
Status ShareGeneratorState(ProcessGroup& group, at::Generator generator, const std::string& what) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  const torch::Tensor state = generator.get_state();  // uint8, on the CPU
  std::string bytes(static_cast<const char*>(state.data_ptr()), state.nbytes());
  ISOFLOP_RETURN_IF_ERROR(group.BroadcastFromRankZero(&bytes, what));
  torch::Tensor shared = torch::empty({static_cast<int64_t>(bytes.size())}, torch::kUInt8);
  std::memcpy(shared.data_ptr(), bytes.data(), bytes.size());
  generator.set_state(shared);
  return Status::OK();
}

}  // namespace

Result<RunConfig> ReadRunConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument(fmt::format("{}: cannot open the run config", path));
  const json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument(fmt::format("{}: not valid JSON", path));
  Result<RunConfig> run = RunConfigFromJson(j);
  if (!run.ok()) {
    return Status::InvalidArgument(fmt::format("{}: {}", path, run.status().message()));
  }
  return run;
}

Trainer::Trainer(const RunConfig& run, const TrainerOptions& options)
    : run_(run), options_(options), attempt_start_(std::chrono::steady_clock::now()) {}

Trainer::~Trainer() = default;

Result<std::unique_ptr<Trainer>> Trainer::Create(const RunConfig& run,
                                                 const TrainerOptions& options) {
  std::unique_ptr<Trainer> trainer(new Trainer(run, options));
  ISOFLOP_RETURN_IF_ERROR(trainer->Init());
  return trainer;
}

Status Trainer::Init() {
  const ModelSpec& spec = run_.model;
  if (Status st = spec.Validate(); !st.ok()) {
    return Status::InvalidArgument(fmt::format("model: {}", st.message()));
  }
  if (run_.train.optimizer.name != "adamw") {
    return Status::InvalidArgument(fmt::format(
        "train.optimizer.name: \"{}\" is not supported (adamw)", run_.train.optimizer.name));
  }
  if (options_.threads < 1) {
    return Status::InvalidArgument(
        fmt::format("--threads: {} is not a positive thread count", options_.threads));
  }
  if (options_.run_dir.empty()) return Status::InvalidArgument("--run-dir: missing");
  if (run_.data.train.empty()) return Status::InvalidArgument("data.train: no training data named");
  if (options_.sample_tokens > 0) {
    // Checked before training, not after it: a sample must not be what fails a finished run.
    Result<SampleVocabulary> vocab = FindSampleVocabulary(run_.data, spec.vocab_size);
    if (!vocab.ok()) return vocab.status();
    sample_vocabulary_ = *vocab;
  }
  ProcessGroup* const group = options_.process_group;
  const DataSlice slice = group != nullptr ? DataSlice{group->rank(), group->size()} : DataSlice{};
  if (run_.resources.gpus > 1 && slice.world == 1) {
    spdlog::warn(
        "resources.gpus: {} requested, but this worker runs as a single process; data-parallel "
        "training needs it started by mpirun -np {} (or srun)",
        run_.resources.gpus, run_.resources.gpus);
  }
  if (!run_.eval.benchmarks.empty()) {
#ifdef ISOFLOP_WORKER_BENCHMARKS
    Result<BenchmarkSuite> benchmarks = BenchmarkSuite::Load(
        run_.eval.benchmarks, run_.data.tokenizer, options_.gpt2_dir, spec.vocab_size);
    if (!benchmarks.ok()) return benchmarks.status();
    benchmarks_.emplace(std::move(benchmarks).value());
#else
    return Status::InvalidArgument(
        "eval.benchmarks: this isoflop-worker was built without libpcre2-8, which its tokenizers "
        "need; rebuild it with libpcre2-dev installed to score benchmarks");
#endif
  }

  Result<DeviceInfo> device = SelectDevice(options_.device);
  if (!device.ok()) return device.status();
  device_ = *device;
  if (group != nullptr && group->device() != device_.device) {
    return Status::Internal(fmt::format("rank {} trains on {} but its process group is on {}",
                                        slice.rank, device_.device.str(), group->device().str()));
  }
  torch::set_num_threads(options_.threads);
  const bool cuda = device_.device.is_cuda();
  switch (run_.train.precision) {
    case Precision::kFp32:
      bf16_autocast_ = false;
      break;
    case Precision::kBf16:
      bf16_autocast_ = true;
      break;
    case Precision::kAuto:
      bf16_autocast_ = cuda;
      break;
  }
  if (cuda) {
    // TF32 for the float32 matmuls outside autocast (nanoGPT's setting); cuDNN is not used.
    at::globalContext().setFloat32MatmulPrecision("high");
  } else {
    at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/false);
  }

  const int64_t max_micro_tokens =
      cuda ? DefaultGpuMicroTokens(spec, device_.memory_bytes) : kCpuMaxMicroTokens;
  Result<TrainingPlan> plan = PlanTraining(run_, slice, max_micro_tokens);
  if (!plan.ok()) return plan.status();
  plan_ = *plan;
  Result<LrSchedule> schedule =
      LrSchedule::Create(run_.train.schedule, run_.train.optimizer.lr, plan_.total_steps);
  if (!schedule.ok()) return schedule.status();
  schedule_ = *schedule;

  Result<TokenStream> train = TokenStream::Open(run_.data.train, spec.seq_len, spec.vocab_size);
  if (!train.ok()) {
    return Status::InvalidArgument(fmt::format("data.train: {}", train.status().message()));
  }
  train_data_.emplace(std::move(train).value());
  // The run's seed draws the data order as it draws the initial weights: seeds measure both kinds
  // of noise, and every size and budget of one seed reads the same permutation.
  if (run_.data.order == DataOrder::kShuffled) {
    train_data_->set_order(WindowOrder::Shuffled(static_cast<uint64_t>(run_.seed)));
  }
  if (!run_.data.val.empty()) {
    Result<TokenStream> val = TokenStream::Open(run_.data.val, spec.seq_len, spec.vocab_size);
    if (!val.ok()) {
      return Status::InvalidArgument(fmt::format("data.val: {}", val.status().message()));
    }
    val_data_.emplace(std::move(val).value());
    // The same windows at every evaluation of every run, drawn evenly from the whole val stream:
    // its head alone is one document (or one corpus) of many.
    val_data_->set_order(WindowOrder::Spread(EvalWindows()));
  }

  torch::manual_seed(static_cast<uint64_t>(run_.seed));
  Result<std::shared_ptr<LanguageModelImpl>> model =
      BuildModel(spec, static_cast<uint64_t>(run_.seed));
  if (!model.ok()) return model.status();
  model_ = *model;
  model_->to(device_.device);
  if (auto* pgpt = dynamic_cast<ParallelGptImpl*>(model_.get())) {
    pgpt->set_path_streams(options_.path_streams && cuda);
  }
  model_->set_fused_layer_norm(options_.fused_layer_norm);
  model_->set_float32_weight_grads(options_.float32_weight_grads);
  for (const auto& [name, tensor] : ModelTensors(*model_)) {
    if (tensor.requires_grad()) params_.push_back(tensor);
  }
  const ModelParameterCount params = CountParameters(*model_);
  if (run_.accounting.params > 0 && params.total != run_.accounting.params) {
    spdlog::warn("the model has {} parameters, the plan's accounting {}", params.total,
                 run_.accounting.params);
  }
  optimizer_ = std::make_unique<AdamW>(model_->named_parameters(), run_.train.optimizer);
  if (slice.world > 1) bucketer_ = std::make_unique<GradientBucketer>(params_, *group);
  // Whole-step CUDA graphs (step_graph.h) where a step is the same kernels every time: one process
  // (collectives run on their own streams and watchdogs), no self-guided training (its alpha and
  // guide draws are host values that change per step).
  if (cuda && options_.cuda_graph && slice.world == 1 &&
      spec.self_guided.mode == SelfGuidedMode::kOff) {
    step_graph_ = std::make_unique<StepGraph>(
        device_.device,
        std::vector<int64_t>{plan_.micro_steps, plan_.micro_batch, spec.seq_len + 1});
    graph_warmup_left_ = kGraphWarmupSteps;
  }

  run_id_ = RunId(run_);
  if (!IsRankZero()) {
    // The ranks share one run directory, which rank 0 alone writes.
    metrics_.emplace(MetricsWriter::Discarding());
    return Status::OK();
  }

  std::error_code ec;
  fs::create_directories(options_.run_dir, ec);
  if (ec) {
    return Status::IOError(fmt::format("{}: cannot create: {}", options_.run_dir, ec.message()));
  }
  Result<MetricsWriter> metrics =
      MetricsWriter::Open((fs::path(options_.run_dir) / "metrics.jsonl").string());
  if (!metrics.ok()) return metrics.status();
  metrics_.emplace(std::move(metrics).value());
  metrics_->set_sink(options_.record_sink);  // rank 0 alone reports
  Result<CheckpointDir> checkpoints =
      CheckpointDir::Open((fs::path(options_.run_dir) / "checkpoints").string(), run_id_);
  if (!checkpoints.ok()) return checkpoints.status();
  checkpoints_.emplace(std::move(checkpoints).value());
  return Status::OK();
}

double Trainer::GuideAlphaAt(int64_t step) const {
  return plan_.guided_steps > 0 ? GuideAlpha(plan_.alpha_schedule, step, plan_.guided_steps) : 0.0;
}

double Trainer::ElapsedSeconds() const {
  return prior_seconds_ +
         std::chrono::duration<double>(std::chrono::steady_clock::now() - attempt_start_).count();
}

bool Trainer::StopRequested() const {
  return options_.stop_requested != nullptr && options_.stop_requested->load();
}

Status Trainer::Resume() {
  if (checkpoints_) ISOFLOP_RETURN_IF_ERROR(LoadNewestCheckpoint());
  if (options_.process_group != nullptr) ISOFLOP_RETURN_IF_ERROR(ShareStateFromRankZero());
  return Status::OK();
}

Status Trainer::LoadNewestCheckpoint() {
  torch::serialize::InputArchive archive;
  Result<CheckpointFile> file = checkpoints_->LoadNewest(&archive, device_.device);
  if (file.status().code() == Status::Code::kNotFound) return Status::OK();  // a fresh run
  if (!file.ok()) return file.status();

  ISOFLOP_RETURN_IF_ERROR(ReadTensors(archive, "model", ModelTensors(*model_)));
  ISOFLOP_RETURN_IF_ERROR(ReadTensors(archive, "optimizer", optimizer_->State()));
  c10::IValue position, elapsed, train_loss, guide_state;
  torch::Tensor cpu_rng, cuda_rng;
  try {
    archive.read("data_position", position);
    archive.read("elapsed_seconds", elapsed);
    archive.read("train_loss", train_loss);
    archive.read("guide_sampler", guide_state);
    archive.read("rng_cpu", cpu_rng, /*is_buffer=*/true);
    // Absent when the checkpoint was written on the CPU: a run may move between device kinds.
    if (device_.device.is_cuda()) archive.try_read("rng_cuda", cuda_rng, /*is_buffer=*/true);
  } catch (const c10::Error& e) {
    return Status::FailedPrecondition(
        fmt::format("{}: written by another version of the worker: {}", file->path,
                    e.what_without_backtrace()));
  }
  if (position.toInt() % plan_.seq_len != 0) {
    return Status::FailedPrecondition(
        fmt::format("{}: data position {} is not a window boundary of seq_len {}", file->path,
                    position.toInt(), plan_.seq_len));
  }
  step_ = file->step;
  data_window_ = position.toInt() / plan_.seq_len;
  prior_seconds_ = elapsed.toDouble();
  last_train_loss_ = train_loss.toDouble();
  last_checkpoint_step_ = step_;
  {
    at::Generator cpu = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(cpu.mutex());
    cpu.set_state(cpu_rng.to(torch::kCPU));
  }
  if (cuda_rng.defined()) {
    at::Generator gen = at::cuda::detail::getDefaultCUDAGenerator(device_.device.index());
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(cuda_rng.to(torch::kCPU));
  }
  if (const auto& sampler = model_->guide_sampler()) {
    if (!sampler->SetState(guide_state.toStringRef())) {
      return Status::Corruption(fmt::format("{}: unreadable guide sampler state", file->path));
    }
  }
  spdlog::info("resuming from {} (step {} of {})", file->path, step_, plan_.total_steps);
  return metrics_->Append({{"type", "resume"}, {"step", step_}});
}

Status Trainer::ShareStateFromRankZero() {
  ProcessGroup& group = *options_.process_group;
  std::vector<torch::Tensor> tensors;
  for (const auto& [name, tensor] : ModelTensors(*model_)) tensors.push_back(tensor);
  for (const auto& [name, tensor] : optimizer_->State()) tensors.push_back(tensor);
  ISOFLOP_RETURN_IF_ERROR(
      group.BroadcastFromRankZero(tensors, "broadcast of rank 0's model and optimizer state"));
  const auto& sampler = model_->guide_sampler();
  std::string progress = json{{"step", step_},
                              {"data_window", data_window_},
                              {"prior_seconds", prior_seconds_},
                              {"last_train_loss", last_train_loss_},
                              {"last_checkpoint_step", last_checkpoint_step_},
                              {"guide_sampler", sampler ? sampler->State() : std::string()}}
                             .dump();
  ISOFLOP_RETURN_IF_ERROR(group.BroadcastFromRankZero(&progress, "broadcast of rank 0's progress"));
  const json shared = json::parse(progress);
  step_ = shared["step"].get<int64_t>();
  data_window_ = shared["data_window"].get<int64_t>();
  prior_seconds_ = shared["prior_seconds"].get<double>();
  last_train_loss_ = shared["last_train_loss"].get<double>();
  last_checkpoint_step_ = shared["last_checkpoint_step"].get<int64_t>();
  if (sampler && !sampler->SetState(shared["guide_sampler"].get<std::string>())) {
    return Status::Internal("rank 0's guide sampler state does not parse");
  }
  ISOFLOP_RETURN_IF_ERROR(ShareGeneratorState(group, at::detail::getDefaultCPUGenerator(),
                                              "broadcast of rank 0's CPU RNG state"));
  if (device_.device.is_cuda()) {
    ISOFLOP_RETURN_IF_ERROR(ShareGeneratorState(
        group, at::cuda::detail::getDefaultCUDAGenerator(device_.device.index()),
        "broadcast of rank 0's CUDA RNG state"));
  }
  return Status::OK();
}

Status Trainer::WriteStartRecord() {
  const bool cuda = device_.device.is_cuda();
  json record = {
      {"type", "start"},
      {"attempt_time", UnixTime()},
      {"resumed_from_step", step_},
      {"device", device_.device.str()},
      {"gpu", cuda ? json(device_.name) : json(nullptr)},
      {"peak_flops", device_.peak_flops},
      {"torch", TORCH_VERSION},
      // Provenance for `isoflop reproduce`: the CUDA runtime and cuDNN this process loaded
      // (e.g. 13000 for CUDA 13.0), null on CPU.
      {"cuda", cuda ? json(at::detail::getCUDAHooks().versionCUDART()) : json(nullptr)},
      {"cudnn", cuda && at::detail::getCUDAHooks().hasCuDNN()
                    ? json(at::detail::getCUDAHooks().versionCuDNN())
                    : json(nullptr)},
      {"threads", options_.threads},
      {"params", CountParameters(*model_).total},
      {"micro_batch", plan_.micro_batch},
      {"micro_steps", plan_.micro_steps},
      {"precision", bf16_autocast_ ? "bf16" : "fp32"},
      {"run_id", run_id_},
      {"world_size", plan_.slice.world},
      {"collectives",
       options_.process_group ? json(options_.process_group->backend()) : json(nullptr)},
  };
  spdlog::info("run {} on {}{}: {} steps of {} tokens ({} x {} sequences of {}), {} parameters",
               run_.name, device_.device.str(), cuda ? " (" + device_.name + ")" : "",
               plan_.total_steps, plan_.batch_tokens, plan_.micro_steps, plan_.micro_batch,
               plan_.seq_len, record["params"].get<int64_t>());
  return metrics_->Append(record);
}

Status Trainer::TrainStep(TrainingObserver* observer, torch::Tensor* loss,
                          torch::Tensor* grad_norm) {
  const int64_t T = plan_.seq_len;
  const int64_t B = plan_.micro_batch;
  if (plan_.repeats_guided_data && step_ == plan_.unique_steps) {
    // fixedflop: the last G steps train on the first G steps' data again (papers.md 3.4).
    data_window_ = 0;
  }
  const int64_t per_epoch = train_data_->windows_per_epoch();
  const int64_t epoch_after = (data_window_ + plan_.sequences_per_step - 1) / per_epoch;
  if (epoch_after > data_window_ / per_epoch) {
    spdlog::warn("train data: all {} tokens used; step {} starts epoch {}", train_data_->size(),
                 step_ + 1, epoch_after + 1);
  }
  if (plan_.guided_steps > 0) model_->set_alpha(GuideAlphaAt(step_));

  // The step's windows, every micro-batch's, read ahead into pinned memory: the caching host
  // allocator recycles the buffer only once its asynchronous copy is done, so the host can read
  // the next step while the GPU works on this one.
  const bool cuda = device_.device.is_cuda();
  torch::Tensor windows =
      torch::empty({plan_.micro_steps, B, T + 1},
                   torch::TensorOptions().dtype(torch::kInt64).pinned_memory(cuda));
  for (int64_t micro = 0; micro < plan_.micro_steps; ++micro) {
    torch::Tensor micro_windows = windows[micro];  // (B, T + 1)
    ISOFLOP_RETURN_IF_ERROR(train_data_->ReadBatch(
        data_window_, micro * B, B, plan_.slice,
        std::span<int64_t>(micro_windows.data_ptr<int64_t>(), micro_windows.numel())));
    if (observer != nullptr) observer->OnMicroBatch(step_, micro, micro_windows);
  }
  const double lr = schedule_->At(step_);

  if (step_graph_ && !step_graph_->captured() && graph_warmup_left_ == 0) {
    Status captured =
        step_graph_->Capture([this](const torch::Tensor& batch, const torch::Tensor& lr_tensor) {
          std::pair<torch::Tensor, torch::Tensor> out;
          // Capture fails (with an exception) rather than returning an error: the body of a
          // single-process step has no collective that could.
          const Status st = StepKernels(batch, &lr_tensor, 0, &out.first, &out.second);
          TORCH_CHECK(st.ok(), st.message());
          return out;
        });
    if (!captured.ok()) {
      spdlog::warn("{}; training on with eager steps", captured.message());
      step_graph_.reset();
      optimizer_->ZeroGrad();  // whatever the aborted capture left in .grad is not a gradient
    } else {
      step_graph_captured_ = true;
      spdlog::info("training step captured as a CUDA graph at step {}", step_ + 1);
    }
  }
  if (step_graph_ && step_graph_->captured()) {
    step_graph_->Replay(windows, lr, loss, grad_norm);
  } else {
    const torch::Tensor batch = windows.to(device_.device, /*non_blocking=*/true);
    if (step_graph_) {
      // Warm-up before capture, on the stream the graph will be captured on (step_graph.h).
      torch::cuda::synchronize();  // the batch's copy and all earlier work, on the default stream
      c10::cuda::CUDAStreamGuard guard(step_graph_->stream());
      ISOFLOP_RETURN_IF_ERROR(StepKernels(batch, nullptr, lr, loss, grad_norm));
      --graph_warmup_left_;
      torch::cuda::synchronize();
    } else {
      ISOFLOP_RETURN_IF_ERROR(StepKernels(batch, nullptr, lr, loss, grad_norm));
    }
  }
  data_window_ += plan_.sequences_per_step;
  ++step_;
  return Status::OK();
}

Status Trainer::StepKernels(const torch::Tensor& batch, const torch::Tensor* lr_tensor, double lr,
                            torch::Tensor* loss, torch::Tensor* grad_norm) {
  const int64_t T = plan_.seq_len;
  torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions().device(device_.device));
  for (int64_t micro = 0; micro < plan_.micro_steps; ++micro) {
    const torch::Tensor inputs = batch[micro].narrow(1, 0, T);   // (B, T)
    const torch::Tensor targets = batch[micro].narrow(1, 1, T);  // (B, T): each input's next token
    torch::Tensor micro_loss;
    {
      AutocastScope autocast(bf16_autocast_, device_.device.type());
      micro_loss = model_->Loss(inputs, targets);
    }
    if (bucketer_ && micro == plan_.micro_steps - 1) bucketer_->BeginLastBackward(step_);
    // The mean over the whole batch: every micro-batch holds the same number of tokens.
    (micro_loss / static_cast<double>(plan_.micro_steps)).backward();
    loss_sum += micro_loss.detach().to(torch::kFloat32);
  }
  *loss = loss_sum / static_cast<double>(plan_.micro_steps);
  if (bucketer_) {
    // This rank's mean gradient and loss become the global batch's.
    ISOFLOP_RETURN_IF_ERROR(bucketer_->Finish());
    ISOFLOP_RETURN_IF_ERROR(options_.process_group->StartAverage(
        *loss, fmt::format("all-reduce of the train loss at step {}", step_ + 1)));
    ISOFLOP_RETURN_IF_ERROR(options_.process_group->FinishAverages());
  }
  *grad_norm = ClipGradNorm(params_, run_.train.grad_clip);
  if (lr_tensor != nullptr) {
    optimizer_->Step(*lr_tensor);
  } else {
    optimizer_->Step(lr);
  }
  optimizer_->ZeroGrad();
  return Status::OK();
}

Status Trainer::Checkpoint() {
  if (!checkpoints_) {  // a data-parallel rank other than 0, whose state rank 0 writes
    last_checkpoint_step_ = step_;
    return Status::OK();
  }
  torch::serialize::OutputArchive archive;
  WriteTensors(archive, "model", ModelTensors(*model_));
  WriteTensors(archive, "optimizer", optimizer_->State());
  archive.write("data_position", c10::IValue(data_window_ * plan_.seq_len));
  archive.write("elapsed_seconds", c10::IValue(ElapsedSeconds()));
  archive.write("train_loss", c10::IValue(last_train_loss_));
  const auto& sampler = model_->guide_sampler();
  archive.write("guide_sampler", c10::IValue(sampler ? sampler->State() : std::string()));
  {
    at::Generator cpu = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(cpu.mutex());
    archive.write("rng_cpu", cpu.get_state(), /*is_buffer=*/true);
  }
  if (device_.device.is_cuda()) {
    at::Generator gen = at::cuda::detail::getDefaultCUDAGenerator(device_.device.index());
    std::lock_guard<std::mutex> lock(gen.mutex());
    archive.write("rng_cuda", gen.get_state(), /*is_buffer=*/true);
  }
  Result<CheckpointFile> file = checkpoints_->Write(step_, archive);
  if (!file.ok()) return file.status();
  last_checkpoint_step_ = step_;
  ISOFLOP_RETURN_IF_ERROR(metrics_->Append(
      {{"type", "checkpoint"}, {"step", step_}, {"path", file->path}, {"bytes", file->bytes}}));
  return metrics_->Sync();
}

int64_t Trainer::EvalWindows() const {
  const int64_t T = plan_.seq_len;
  return std::min((run_.eval.val_tokens + T - 1) / T, val_data_->windows_per_epoch());
}

Result<double> Trainer::Evaluate() {
  const int64_t T = plan_.seq_len;
  const int64_t windows = EvalWindows();
  if (plan_.guided_steps > 0) model_->set_alpha(GuideAlphaAt(step_));
  EvalModeScope eval_mode(*model_);
  torch::Tensor loss_sum =
      torch::zeros({}, torch::TensorOptions().device(device_.device).dtype(torch::kFloat64));
  // Rank r of k evaluates windows r, r + k, r + 2k, ... (ReadBatch's slices of one big "step").
  const DataSlice& slice = plan_.slice;
  const int64_t rank_windows = (windows - slice.rank + slice.world - 1) / slice.world;
  for (int64_t first = 0; first < rank_windows; first += plan_.micro_batch) {
    const int64_t count = std::min(plan_.micro_batch, rank_windows - first);
    torch::Tensor host = torch::empty({count, T + 1}, torch::kInt64);
    ISOFLOP_RETURN_IF_ERROR(val_data_->ReadBatch(
        0, first, count, slice, std::span<int64_t>(host.data_ptr<int64_t>(), host.numel())));
    const torch::Tensor batch = host.to(device_.device);
    torch::Tensor loss;
    {
      AutocastScope autocast(bf16_autocast_, device_.device.type());
      loss = model_->Loss(batch.narrow(1, 0, T), batch.narrow(1, 1, T));
    }
    loss_sum += loss.to(torch::kFloat64) * static_cast<double>(count);
  }
  double total = loss_sum.item<double>();
  if (options_.process_group != nullptr) {
    ISOFLOP_RETURN_IF_ERROR(options_.process_group->SumOverRanks(
        std::span<double>(&total, 1), fmt::format("sum of validation losses at step {}", step_)));
  }
  return total / static_cast<double>(windows);
}

Status Trainer::EvaluateAndRecord() {
  if (!val_data_ || run_.eval.val_tokens <= 0) return Status::OK();
  Result<double> loss = Evaluate();
  if (!loss.ok()) return loss.status();
  last_val_loss_ = *loss;
  const int64_t windows = EvalWindows();
  const json base = {{"type", "eval"},
                     {"step", step_},
                     {"tokens", plan_.TokensAfter(step_)},
                     {"flops", plan_.FlopsAfter(step_)},
                     {"count", windows * plan_.seq_len}};
  json loss_record = base, ppl_record = base;
  loss_record["name"] = "val_loss";
  loss_record["value"] = *loss;
  ppl_record["name"] = "val_ppl";
  ppl_record["value"] = std::exp(*loss);
  ISOFLOP_RETURN_IF_ERROR(metrics_->Append(loss_record));
  ISOFLOP_RETURN_IF_ERROR(metrics_->Append(ppl_record));
  spdlog::info("step {}: val loss {:.4f} (ppl {:.2f}) over {} tokens", step_, *loss,
               std::exp(*loss), windows * plan_.seq_len);
  return Status::OK();
}

Status Trainer::ScoreBenchmarks() {
#ifdef ISOFLOP_WORKER_BENCHMARKS
  if (!benchmarks_) return Status::OK();
  if (plan_.guided_steps > 0) model_->set_alpha(GuideAlphaAt(step_));
  EvalModeScope eval_mode(*model_);
  ScorerOptions options;
  options.seq_len = plan_.seq_len;
  // The padded tokens of one training micro-batch: they fit with activations kept for backward,
  // so they fit without.
  options.batch_tokens = plan_.micro_batch * plan_.seq_len;
  options.device = device_.device;
  const LogitsFunction logits = [&](const torch::Tensor& ids) {
    AutocastScope autocast(bf16_autocast_, device_.device.type());
    return model_->forward(ids);
  };
  const ContinuationScorer scorer = [&](std::span<const TokenizedRequest> requests) {
    return ScoreContinuations(logits, requests, options);
  };
  for (size_t i = 0; i < benchmarks_->benchmarks().size(); ++i) {
    const auto start = std::chrono::steady_clock::now();
    Result<BenchmarkResult> result = benchmarks_->Evaluate(i, scorer);
    if (!result.ok()) return result.status();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::string summary;
    for (const auto& [metric, value] : result->metrics) {
      ISOFLOP_RETURN_IF_ERROR(metrics_->Append({{"type", "eval"},
                                                {"step", step_},
                                                {"tokens", plan_.TokensAfter(step_)},
                                                {"flops", plan_.FlopsAfter(step_)},
                                                {"name", result->name + "/" + metric},
                                                {"value", value},
                                                {"count", result->items}}));
      summary += fmt::format(" {} {:.4f}", metric, value);
    }
    spdlog::info("{}:{} over {} items ({} continuations) in {:.1f}s, {:.1f} items/s", result->name,
                 summary, result->items, result->requests, seconds,
                 static_cast<double>(result->items) / std::max(seconds, 1e-9));
  }
#endif
  return Status::OK();
}

Status Trainer::WriteSample() {
  const SampleVocabulary* vocab = &*sample_vocabulary_;
  if (plan_.guided_steps > 0) model_->set_alpha(GuideAlphaAt(step_));
  EvalModeScope eval_mode(*model_);
  std::vector<int64_t> ids = {vocab->eot};
  // The first seq_len positions decode through the KV caches, one position per step; past them the
  // window slides and each token needs the full forward of the last seq_len.
  std::optional<DecodeState> cache;
  if (model_->CanDecode()) cache = model_->NewDecodeState(plan_.seq_len);
  for (int64_t i = 0; i < options_.sample_tokens; ++i) {
    const int64_t n = static_cast<int64_t>(ids.size());
    AutocastScope autocast(bf16_autocast_, device_.device.type());
    torch::Tensor next;  // (V): the logits after the last token
    if (cache && n <= plan_.seq_len) {
      const torch::Tensor token = torch::tensor({ids.back()}, torch::kInt64).view({1, 1});
      next = model_->DecodeStep(token.to(device_.device), *cache)[0];
    } else {
      const int64_t context = std::min<int64_t>(n, plan_.seq_len);
      const torch::Tensor idx =
          torch::tensor(std::vector<int64_t>(ids.end() - context, ids.end()), torch::kInt64)
              .view({1, context})
              .to(device_.device);
      next = model_->forward(idx)[0][context - 1];  // (1, context, V) -> (V)
    }
    ids.push_back(next.argmax().item<int64_t>());
  }
  std::ostringstream out;
  for (size_t i = 1; i < ids.size(); ++i) out << (i > 1 ? " " : "") << ids[i];
  out << "\n";
  if (vocab->bytes) {
    out << "\n";
    for (size_t i = 1; i < ids.size(); ++i) {
      if (ids[i] == vocab->eot) {
        out << "<|endoftext|>";
      } else if (ids[i] < 256) {
        out << static_cast<char>(ids[i]);
      }
    }
    out << "\n";
  }
  const std::string path = (fs::path(options_.run_dir) / "sample.txt").string();
  // Whole or absent: a full disk or a kill mid-write leaves no truncated sample behind.
  ISOFLOP_RETURN_IF_ERROR(WriteFileAtomically(path, out.str()));
  spdlog::info("wrote {} sampled tokens to {}", options_.sample_tokens, path);
  return Status::OK();
}

Result<TrainingOutcome> Trainer::Run(TrainingObserver* observer) {
  ISOFLOP_RETURN_IF_ERROR(Resume());
  ISOFLOP_RETURN_IF_ERROR(WriteStartRecord());
  model_->train();

  auto stop = [&]() -> Result<TrainingOutcome> {
    if (last_checkpoint_step_ != step_) ISOFLOP_RETURN_IF_ERROR(Checkpoint());
    ISOFLOP_RETURN_IF_ERROR(metrics_->Sync());
    spdlog::info("stopped after step {} of {}; a later attempt resumes from its checkpoint", step_,
                 plan_.total_steps);
    return TrainingOutcome::kStopped;
  };

  auto interval_start = std::chrono::steady_clock::now();
  int64_t interval_first_step = step_;
  while (step_ < plan_.total_steps) {
    bool stop_now =
        StopRequested() || (options_.stop_after_steps > 0 && step_ >= options_.stop_after_steps);
    if (options_.process_group != nullptr) {
      // A signal may reach the ranks at different steps; they must all stop at the same one.
      Result<bool> any = options_.process_group->AnyRank(
          stop_now, fmt::format("agreement on stopping before step {}", step_ + 1));
      if (!any.ok()) return any.status();
      stop_now = *any;
    }
    if (stop_now) return stop();
    const int64_t step = step_;
    const double lr = schedule_->At(step);
    const double alpha = GuideAlphaAt(step);
    torch::Tensor loss, grad_norm;
    auto train_step = [&] { return TrainStep(observer, &loss, &grad_norm); };
    if (step + 1 == options_.profile_step) {
      const std::string path = (fs::path(options_.run_dir) / "kernel_profile.json").string();
      ISOFLOP_RETURN_IF_ERROR(KernelProfile::Record(train_step, path));
      spdlog::info("wrote the GPU activities of step {} to {}", step + 1, path);
    } else {
      ISOFLOP_RETURN_IF_ERROR(train_step());
    }

    const bool log = step_ % plan_.log_every == 0 || step_ == plan_.total_steps;
    if (log || observer != nullptr) {
      last_train_loss_ = loss.item<double>();  // waits for the step: the only sync of a step
      const double norm = grad_norm.item<double>();
      if (observer != nullptr) observer->OnStep(step, lr, alpha, last_train_loss_, norm);
      if (log) {
        const auto now = std::chrono::steady_clock::now();
        const double seconds = std::chrono::duration<double>(now - interval_start).count();
        const int64_t steps = step_ - interval_first_step;
        const double tokens_per_s =
            seconds > 0 ? static_cast<double>(plan_.TokensAfter(steps)) / seconds : 0;
        const double flops_per_s =
            seconds > 0
                ? (plan_.FlopsAfter(step_) - plan_.FlopsAfter(interval_first_step)) / seconds
                : 0;
        const double mfu =
            device_.peak_flops > 0 ? flops_per_s / (device_.peak_flops * plan_.slice.world) : 0;
        const double epoch = static_cast<double>(data_window_) /
                             static_cast<double>(train_data_->windows_per_epoch());
        const int64_t peak_memory = PeakMemoryBytes(device_.device);
        ISOFLOP_RETURN_IF_ERROR(metrics_->Append({{"type", "train"},
                                                  {"step", step_},
                                                  {"tokens", plan_.TokensAfter(step_)},
                                                  {"flops", plan_.FlopsAfter(step_)},
                                                  {"train_loss", last_train_loss_},
                                                  {"lr", lr},
                                                  {"grad_norm", norm},
                                                  {"tokens_per_s", tokens_per_s},
                                                  {"mfu", mfu},
                                                  {"epoch", epoch},
                                                  {"peak_memory_bytes", peak_memory},
                                                  {"time", UnixTime()}}));
        const double eta = steps > 0 ? seconds / static_cast<double>(steps) *
                                           static_cast<double>(plan_.total_steps - step_)
                                     : 0;
        spdlog::info(
            "step {}/{} | loss {:.4f} | lr {:.3e} | norm {:.3f} | {:.0f} tok/s | mfu {:.1f}% | "
            "ETA {}",
            step_, plan_.total_steps, last_train_loss_, lr, norm, tokens_per_s, 100 * mfu,
            Duration(eta));
        interval_start = std::chrono::steady_clock::now();
        interval_first_step = step_;
      }
      // A non-finite loss never recovers: the rest of the run's compute would be wasted and its
      // results recorded as if they meant something. Retrying the same config diverges again, so
      // this is a code fault (exit status 1), not an infrastructure one.
      if (!std::isfinite(last_train_loss_)) {
        return Status::FailedPrecondition(fmt::format(
            "training diverged: train loss {} at step {} (lr {:.3e}, grad norm {:.3g}); lower "
            "the learning rate or check the initialisation",
            last_train_loss_, step_, lr, norm));
      }
    }
    const bool last = step_ == plan_.total_steps;
    bool paused = false;  // evaluation and checkpoint time is not training throughput
    if (!last && plan_.eval_every > 0 && step_ % plan_.eval_every == 0) {
      ISOFLOP_RETURN_IF_ERROR(EvaluateAndRecord());
      paused = true;
    }
    if (last || step_ % plan_.checkpoint_every == 0) {
      ISOFLOP_RETURN_IF_ERROR(Checkpoint());
      paused = true;
    }
    if (paused) {
      interval_start = std::chrono::steady_clock::now();
      interval_first_step = step_;
    }
  }

  if (last_checkpoint_step_ != step_) ISOFLOP_RETURN_IF_ERROR(Checkpoint());
  // The graph's private pool holds a whole step's activations and gradients: give it back before
  // the final evaluation and benchmark scoring, which size their batches for the memory training
  // leaves free.
  if (step_graph_) {
    step_graph_.reset();
    c10::cuda::CUDACachingAllocator::emptyCache();
  }
  ISOFLOP_RETURN_IF_ERROR(EvaluateAndRecord());
  // Training is over: the structured layers' merged dense forms serve the short calls of
  // benchmark scoring and sampling (papers.md 3.3), the factors the long ones.
  model_->PremergeStructuredLayers();
  // Rank 0 alone: the other ranks would repeat its work on the same weights.
  if (IsRankZero()) ISOFLOP_RETURN_IF_ERROR(ScoreBenchmarks());
  if (options_.sample_tokens > 0 && IsRankZero()) ISOFLOP_RETURN_IF_ERROR(WriteSample());
  ISOFLOP_RETURN_IF_ERROR(
      metrics_->Append({{"type", "complete"},
                        {"step", step_},
                        {"tokens", plan_.TokensAfter(step_)},
                        {"flops", plan_.FlopsAfter(step_)},
                        {"final_train_loss", last_train_loss_},
                        {"final_val_loss", last_val_loss_ ? json(*last_val_loss_) : json(nullptr)},
                        {"seconds", ElapsedSeconds()}}));
  ISOFLOP_RETURN_IF_ERROR(metrics_->Sync());
  spdlog::info("run complete: {} steps, {} tokens, {:.3e} FLOPs", step_, plan_.TokensAfter(step_),
               plan_.FlopsAfter(step_));
  return TrainingOutcome::kComplete;
}

}  // namespace isoflop
