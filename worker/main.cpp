// isoflop-worker: trains one run of a sweep (system.md section 7). The coordinator launches exactly
//
//   isoflop-worker --config run.json --run-dir DIR [--device auto|cpu|cuda[:N]] [--threads N]
//                  [--stop-after-steps K] [--sample N] [--gpt2-dir DIR] [--collective-timeout S]
//
// alone, or as the k ranks of `mpirun -np k` (or srun) for data-parallel training: one device per
// rank, the same exit statuses (mpirun passes on the first non-zero one, and ends every rank when
// one fails). The coordinator reads the outcome from the exit status (the run directory holds the
// details):
//   0   the run is complete: every step trained, final evaluation and "complete" record written
//   1   the run cannot succeed as configured: bad run.json, bad data, a foreign checkpoint, ...
//       (the message on stderr names the cause); retrying does not help
//   74  an I/O error (disk full, unwritable run directory): the machine, not the run, is at fault
//   75  stopped early on request (SIGTERM/SIGINT or --stop-after-steps) after a checkpoint; a
//       later attempt resumes where this one stopped
//   70  an internal error (a LibTorch exception, CUDA out of memory, a bug)
//   69  data parallel: a collective did not finish within --collective-timeout, because another
//       rank died or hangs (collective_watchdog.h); an infrastructure fault, worth a retry
// Any other status, or death by a signal, is a crash.
//
// While it runs, rank 0 also sends heartbeats and every record to the coordinator over its socket
// when the launcher's environment says where (ISOFLOP_DAEMON, coordinator/protocol/
// daemon_reporter.h); the run directory's metrics.jsonl stays the durable record either way.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "coordinator/protocol/daemon_reporter.h"
#include "worker/distributed/mpi_world.h"
#include "worker/distributed/process_group.h"
#include "worker/runtime/trainer.h"

namespace {

constexpr int kExitComplete = 0;
constexpr int kExitConfigError = 1;
constexpr int kExitInternalError = 70;  // EX_SOFTWARE
constexpr int kExitIoError = 74;        // EX_IOERR
constexpr int kExitStopped = 75;        // EX_TEMPFAIL
static_assert(isoflop::kExitCollectiveTimeout == 69, "EX_UNAVAILABLE, as documented above");

// Set by SIGTERM/SIGINT; the trainer polls it between optimizer steps. A second signal takes the
// default action (the handler uninstalls itself), so an impatient Ctrl-C still ends the process.
std::atomic<bool> stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free, "must be async-signal-safe");

extern "C" void RequestStop(int signal) {
  stop_requested.store(true);
  std::signal(signal, SIG_DFL);
}

int ExitCodeFor(const isoflop::Status& status) {
  spdlog::error("{}", status.message());
  return status.code() == isoflop::Status::Code::kIOError ? kExitIoError : kExitConfigError;
}

// Data parallel: joins the MPI world that launched this process, gives it the device of its local
// rank (options->device) and builds the process group on that device.
isoflop::Status JoinWorld(double collective_timeout_s, isoflop::TrainerOptions* options,
                          std::unique_ptr<isoflop::MpiWorld>* world,
                          std::unique_ptr<isoflop::ProcessGroup>* group) {
  if (!(collective_timeout_s > 0)) {
    return isoflop::Status::InvalidArgument(fmt::format(
        "--collective-timeout: {} is not a positive number of seconds", collective_timeout_s));
  }
  auto joined = isoflop::MpiWorld::Init(
      std::chrono::milliseconds(static_cast<int64_t>(std::ceil(collective_timeout_s * 1000))));
  if (!joined.ok()) return joined.status();
  *world = std::move(joined).value();
  const int rank = (*world)->rank();
  // One copy of the progress lines (rank 0's); the others speak up for warnings and errors.
  spdlog::set_pattern(fmt::format("%Y-%m-%d %H:%M:%S [%^%l%$] [rank {}] %v", rank));
  if (rank != 0) spdlog::set_level(spdlog::level::warn);
  options->device = isoflop::DeviceForLocalRank(options->device, (*world)->local_rank());
  isoflop::Result<isoflop::DeviceInfo> device = isoflop::SelectDevice(options->device);
  if (!device.ok()) return device.status();
  auto created = isoflop::CreateProcessGroup(**world, device->device);
  if (!created.ok()) return created.status();
  *group = std::move(created).value();
  options->process_group = group->get();
  spdlog::info("data parallel: {} ranks ({} on this host), {} over {}; collective timeout {} s",
               (*world)->size(), (*world)->local_size(), device->device.str(), (*group)->backend(),
               collective_timeout_s);
  return isoflop::Status::OK();
}

// Rank 0 reports to the coordinator over its socket when the launcher says where
// (coordinator/protocol/daemon_reporter.h): heartbeats, and every record the trainer appends to
// metrics.jsonl. A malformed setting costs the reports, never the run: the file has every record.
std::unique_ptr<isoflop::DaemonReporter> StartReporter(isoflop::TrainerOptions* options) {
  auto reporter_options = isoflop::DaemonReporter::OptionsFromEnvironment();
  if (!reporter_options.ok()) {
    spdlog::warn("not reporting to isoflopd: {}", reporter_options.status().message());
    return nullptr;
  }
  if (!reporter_options->has_value()) return nullptr;
  auto reporter = std::make_unique<isoflop::DaemonReporter>(std::move(**reporter_options));
  options->record_sink = [sink = reporter.get()](const nlohmann::json& record) {
    sink->Report(record);
  };
  return reporter;
}

int Train(const std::string& config_path, const isoflop::TrainerOptions& options) {
  isoflop::Result<isoflop::RunConfig> run = isoflop::ReadRunConfig(config_path);
  if (!run.ok()) return ExitCodeFor(run.status());
  auto trainer = isoflop::Trainer::Create(*run, options);
  if (!trainer.ok()) return ExitCodeFor(trainer.status());
  isoflop::Result<isoflop::TrainingOutcome> outcome = (*trainer)->Run();
  if (!outcome.ok()) return ExitCodeFor(outcome.status());
  return *outcome == isoflop::TrainingOutcome::kComplete ? kExitComplete : kExitStopped;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("isoflop-worker"));
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S [%^%l%$] %v");

  CLI::App app{"isoflop-worker: trains one run of an isoflop sweep"};
  std::string config_path;
  isoflop::TrainerOptions options;
  app.add_option("--config", config_path, "the run's resolved config (run.json)")->required();
  app.add_option("--run-dir", options.run_dir,
                 "run directory: metrics.jsonl, checkpoints/, sample.txt")
      ->required();
  app.add_option("--device", options.device, "auto (CUDA when available), cpu, cuda or cuda:N")
      ->capture_default_str();
  app.add_option("--threads", options.threads,
                 "CPU intra-op threads (fixed for reproducible CPU runs)")
      ->capture_default_str();
  std::string attention = "auto";
  app.add_option("--attention", attention,
                 "scaled dot product attention backend on CUDA: auto (LibTorch's choice), flash, "
                 "cudnn or efficient")
      ->check(CLI::IsMember({"auto", "flash", "cudnn", "efficient"}))
      ->envname("ISOFLOP_ATTENTION")
      ->capture_default_str();
  app.add_flag("--path-streams", options.path_streams,
               "pgpt on CUDA: run each path on a CUDA stream of its own")
      ->envname("ISOFLOP_PATH_STREAMS");
  bool no_fused_layer_norm = false;
  app.add_flag("--no-fused-layer-norm", no_fused_layer_norm,
               "under bf16 autocast on CUDA, LibTorch's float32 LayerNorm instead of the worker's "
               "kernel (float32 in, bf16 out)")
      ->envname("ISOFLOP_NO_FUSED_LAYER_NORM");
  app.add_flag("--float32-weight-grads", options.float32_weight_grads,
               "under bf16 autocast on CUDA, gpt attention and dense FFN weight gradients written "
               "float32 by their GEMMs (no bf16 cast pass; not yet validated on the GPU)")
      ->envname("ISOFLOP_FLOAT32_WEIGHT_GRADS");
  bool no_cuda_graph = false;
  app.add_flag("--no-cuda-graph", no_cuda_graph,
               "step eagerly instead of replaying the training step as a captured CUDA graph")
      ->envname("ISOFLOP_NO_CUDA_GRAPH");
  app.add_option("--stop-after-steps", options.stop_after_steps,
                 "checkpoint after this optimizer step and exit 75 (preemption drills)");
  app.add_option("--profile-step", options.profile_step,
                 "record the GPU kernels of this optimizer step into kernel_profile.json")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--sample", options.sample_tokens,
                 "after training, greedy-decode this many tokens into sample.txt");
  // From the environment too: the coordinator launches workers with --config and --run-dir only,
  // and they inherit its environment.
  app.add_option("--gpt2-dir", options.gpt2_dir,
                 "GPT-2 vocab.json and merges.txt, to tokenize eval.benchmarks of gpt2 runs")
      ->envname("ISOFLOP_GPT2_DIR");
  double collective_timeout_s = 600;
  app.add_option("--collective-timeout", collective_timeout_s,
                 "data parallel: seconds a collective may wait for the other ranks before this "
                 "rank exits 69 (one that died or hangs)")
      ->envname("ISOFLOP_COLLECTIVE_TIMEOUT")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitComplete : kExitConfigError;
  }

  options.cuda_graph = !no_cuda_graph;
  options.fused_layer_norm = !no_fused_layer_norm;
  if (attention != "auto") {
    // Only the named backend (and the math fallback, for shapes it cannot take) stays enabled.
    at::globalContext().setSDPUseFlash(attention == "flash");
    at::globalContext().setSDPUseCuDNN(attention == "cudnn");
    at::globalContext().setSDPUseMemEfficient(attention == "efficient");
  }
  std::signal(SIGTERM, RequestStop);
  std::signal(SIGINT, RequestStop);
  options.stop_requested = &stop_requested;
  // One inter-op thread: the training loop issues one operation at a time, and a fixed pool keeps
  // CPU runs reproducible. Settable only once per process, hence here and not in the library.
  at::set_num_interop_threads(1);

  // A single process unless a launcher started this one as an MPI rank.
  std::unique_ptr<isoflop::MpiWorld> world;
  std::unique_ptr<isoflop::ProcessGroup> group;
  // Outlives the trainer, whose records it forwards.
  std::unique_ptr<isoflop::DaemonReporter> reporter;
  int code = kExitInternalError;
  try {
    if (isoflop::MpiWorld::Launched()) {
      if (isoflop::Status joined = JoinWorld(collective_timeout_s, &options, &world, &group);
          !joined.ok()) {
        return ExitCodeFor(joined);
      }
    }
    // Before the model is built: its heartbeats cover loading data and resuming from a checkpoint.
    if (world == nullptr || world->rank() == 0) reporter = StartReporter(&options);
    code = Train(config_path, options);
  } catch (const c10::Error& e) {
    spdlog::critical("LibTorch error: {}", e.what_without_backtrace());
  } catch (const std::exception& e) {
    spdlog::critical("internal error: {}", e.what());
  }
  // Delivers what is still queued (the "complete" record) before the process ends.
  reporter.reset();
  // Only ranks that end normally finalise MPI: MPI_Finalize waits for every rank, and the peers of
  // a failed rank may be waiting for it in a collective; mpirun ends them once this one exits.
  if (world != nullptr && (code == kExitComplete || code == kExitStopped)) {
    group.reset();
    if (isoflop::Status finalized = world->Finalize(); !finalized.ok()) {
      code = ExitCodeFor(finalized);
    }
  }
  return code;
}
