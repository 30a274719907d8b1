// Trainer: one attempt of one run, from run.json to a complete run directory (system.md section 7).
//
//   DIR/metrics.jsonl  records (metrics_writer.h): resume, start, train, eval, checkpoint, complete
//   DIR/checkpoints/   ckpt_<step>.pt (checkpoint.h); the newest whole one is resumed from
//   DIR/sample.txt     with --sample: greedy tokens after training
//
// An attempt resumes from the newest valid checkpoint, trains to budget.steps optimizer steps and
// ends complete, or stops early on request (SIGTERM/SIGINT, --stop-after-steps) after writing a
// checkpoint. Resuming continues the same loss curve: everything a step depends on is in the
// checkpoint (weights, AdamW moments and step counts, the data position, the torch and guide RNG
// streams), and on the CPU every kernel is deterministic with a fixed thread count, so k steps,
// a stop and a resume give the bit-identical losses of one uninterrupted run.
//
// Precision: float32 on the CPU; on a GPU bf16 autocast over float32 master weights (precision
// "auto" or "bf16"), TF32 for the float32 matmuls that remain.
//
// Data parallel (options.process_group; worker/distributed): every rank trains a replica on its
// own slice of each step's sequences (token_stream.h), the same train.batch_tokens over all ranks,
// and gradients are averaged once per step (gradient_bucketer.h), so k ranks follow the loss curve
// of one process up to float rounding. Rank 0 alone reads and writes checkpoints and reports;
// it broadcasts its state at the start (the checkpoint it resumed from, or its freshly built
// model), including the data position, so that a run may resume with another number of ranks.
// Evaluation windows are split over the ranks and their losses summed. A stop takes effect when
// any rank asks for it, at the same step boundary on all.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/run_config.h"
#include "common/status.h"
#include "worker/distributed/gradient_bucketer.h"
#include "worker/distributed/process_group.h"
#include "worker/eval/benchmark_suite.h"
#include "worker/models/language_model.h"
#include "worker/runtime/adamw.h"
#include "worker/runtime/checkpoint.h"
#include "worker/runtime/device.h"
#include "worker/runtime/lr_schedule.h"
#include "worker/runtime/metrics_writer.h"
#include "worker/runtime/step_graph.h"
#include "worker/runtime/token_stream.h"
#include "worker/runtime/training_plan.h"

namespace isoflop {

// Reads run.json strictly (RunConfigFromJson). InvalidArgument naming the file and the JSON path.
Result<RunConfig> ReadRunConfig(const std::string& path);

struct TrainerOptions {
  std::string run_dir;
  std::string device = "auto";   // SelectDevice (device.h)
  int threads = 1;               // CPU intra-op threads; fixed, so that CPU runs are deterministic
  int64_t stop_after_steps = 0;  // > 0: checkpoint after this step and stop (preemption drills)
  int64_t sample_tokens = 0;     // > 0: greedy-decode this many tokens into DIR/sample.txt
  std::string gpt2_dir;          // vocab.json and merges.txt, for eval.benchmarks of gpt2 runs
  bool cuda_graph = true;        // capture the training step as a CUDA graph where it can be
  bool path_streams = false;     // pgpt on CUDA: each path on its own stream (pgpt.h)
  bool fused_layer_norm = true;  // bf16 autocast on CUDA: the LayerNorm kernel (fused_layer_norm.h)
  bool float32_weight_grads = false;  // bf16 autocast on CUDA: LinearMap's (linear_map.h)
  // > 0: record the GPU work of this optimizer step (1-based) into DIR/kernel_profile.json
  // (kernel_profile.h). Its interval's tokens/s includes the profiler's overhead.
  int64_t profile_step = 0;
  // Set asynchronously (a signal handler) to stop at the next step boundary; may be null.
  const std::atomic<bool>* stop_requested = nullptr;
  // The data-parallel group this process is a rank of (not owned; outlives the trainer); null:
  // a single process.
  ProcessGroup* process_group = nullptr;
  // Rank 0 hands every record it appends to metrics.jsonl to this sink as well (MetricsWriter's):
  // worker/main.cpp's reporter to the coordinator's socket. Empty: none.
  MetricsWriter::Sink record_sink;
};

enum class TrainingOutcome {
  kComplete,  // every step done, final evaluation and "complete" record written
  kStopped,   // stopped on request after a checkpoint; a later attempt resumes
};

// What tests and tools may watch; called on the training thread.
class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  // Before micro-step `micro` of optimizer step `step` (0-based): its (micro_batch, seq_len + 1)
  // token windows, int64 on the CPU.
  virtual void OnMicroBatch(int64_t /*step*/, int64_t /*micro*/, const torch::Tensor& /*windows*/) {
  }
  // After optimizer step `step` (0-based) with the learning rate and self-guidance alpha it used,
  // its mean loss and its gradient norm before clipping.
  virtual void OnStep(int64_t /*step*/, double /*lr*/, double /*alpha*/, double /*loss*/,
                      double /*grad_norm*/) {}
};

class Trainer {
 public:
  // Validates the run (InvalidArgument naming the field), opens its data, builds the model on the
  // chosen device and the run directory's files. Resuming happens in Run().
  static Result<std::unique_ptr<Trainer>> Create(const RunConfig& run,
                                                 const TrainerOptions& options);
  ~Trainer();

  // Resumes from the newest valid checkpoint, then trains until complete or stopped. Errors that a
  // user must fix (data, configuration, a foreign checkpoint) are InvalidArgument /
  // FailedPrecondition / NotFound; IOError for the file system. LibTorch failures propagate as
  // c10::Error.
  Result<TrainingOutcome> Run(TrainingObserver* observer = nullptr);

  // What --sample needs to know of the tokenizer (found in the data's manifest.json, or by name).
  struct SampleVocabulary {
    int64_t eot = 0;     // the prompt: end-of-text, as at the start of every training document
    bool bytes = false;  // the bytes tokenizer: ids < 256 print as themselves
  };

  const TrainingPlan& plan() const { return plan_; }
  // Whether steps are replayed from a captured CUDA graph: true from the capture on, and still true
  // after training has released the graph (before the final evaluation).
  bool uses_step_graph() const { return step_graph_captured_; }
  const DeviceInfo& device() const { return device_; }
  LanguageModelImpl& model() { return *model_; }

 private:
  Trainer(const RunConfig& run, const TrainerOptions& options);
  Status Init();

  // Rank 0 (or the single process) loads the newest checkpoint; then every rank takes its state.
  Status Resume();
  Status LoadNewestCheckpoint();
  Status ShareStateFromRankZero();
  Status WriteStartRecord();
  // One optimizer step: micro-batches, clipping, update. Returns the loss (a device scalar) and the
  // pre-clip gradient norm, read only when a record or the observer needs them.
  Status TrainStep(TrainingObserver* observer, torch::Tensor* loss, torch::Tensor* grad_norm);
  // The step's device work on batch (micro_steps, B, T + 1): every micro-batch's forward and
  // backward, the data-parallel average, clipping, AdamW at lr (or at *lr_tensor, read on the
  // device, when not null) and dropping the gradients. What StepGraph captures.
  Status StepKernels(const torch::Tensor& batch, const torch::Tensor* lr_tensor, double lr,
                     torch::Tensor* loss, torch::Tensor* grad_norm);
  Status Checkpoint();
  // Validation windows per evaluation: eval.val_tokens' worth, spread evenly over the val stream
  // (WindowOrder::Spread), at most all of it.
  int64_t EvalWindows() const;
  Result<double> Evaluate();
  Status EvaluateAndRecord();
  // eval.benchmarks at the end of the run: NAME/acc, NAME/acc_norm, NAME/ppl eval records whose
  // count is the items scored. Each benchmark is scored once, on the final weights.
  Status ScoreBenchmarks();
  Status WriteSample();
  double GuideAlphaAt(int64_t step) const;
  double ElapsedSeconds() const;
  bool StopRequested() const;
  bool IsRankZero() const { return plan_.slice.rank == 0; }

  RunConfig run_;
  TrainerOptions options_;
  std::string run_id_;
  DeviceInfo device_;
  TrainingPlan plan_;
  std::optional<LrSchedule> schedule_;
  bool bf16_autocast_ = false;
  std::shared_ptr<LanguageModelImpl> model_;
  std::vector<torch::Tensor> params_;  // trainable, each once
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<GradientBucketer> bucketer_;  // data parallel only
  // Eager steps on the graph's stream before capture (PyTorch's whole-network capture recipe).
  static constexpr int64_t kGraphWarmupSteps = 3;
  std::unique_ptr<StepGraph> step_graph_;  // CUDA, one process, no self-guidance; null otherwise
  bool step_graph_captured_ = false;       // a capture succeeded (step_graph_ may be gone since)
  int64_t graph_warmup_left_ = 0;
  std::optional<TokenStream> train_data_;
  std::optional<TokenStream> val_data_;  // absent when data.val is empty: no evaluation
  std::optional<SampleVocabulary> sample_vocabulary_;  // with --sample
  std::optional<BenchmarkSuite> benchmarks_;           // with eval.benchmarks
  std::optional<MetricsWriter> metrics_;               // discarding on ranks other than 0
  std::optional<CheckpointDir> checkpoints_;           // rank 0 only

  // Progress; all of it is in the checkpoint.
  int64_t step_ = 0;            // optimizer steps done
  int64_t data_window_ = 0;     // global train window where the next step starts
  double prior_seconds_ = 0;    // training time of earlier attempts
  double last_train_loss_ = 0;  // of step step_ - 1
  std::optional<double> last_val_loss_;
  int64_t last_checkpoint_step_ = -1;

  std::chrono::steady_clock::time_point attempt_start_;
};

}  // namespace isoflop
