// isoflop-worker: trains one run of a sweep (system.md section 7). The coordinator launches exactly
//
//   isoflop-worker --config run.json --run-dir DIR [--device auto|cpu|cuda[:N]] [--threads N]
//                  [--stop-after-steps K] [--sample N]
//
// and reads the outcome from the exit status (the run directory holds the details):
//   0   the run is complete: every step trained, final evaluation and "complete" record written
//   1   the run cannot succeed as configured: bad run.json, bad data, a foreign checkpoint, ...
//       (the message on stderr names the cause); retrying does not help
//   74  an I/O error (disk full, unwritable run directory): the machine, not the run, is at fault
//   75  stopped early on request (SIGTERM/SIGINT or --stop-after-steps) after a checkpoint; a
//       later attempt resumes where this one stopped
//   70  an internal error (a LibTorch exception, CUDA out of memory, a bug)
// Any other status, or death by a signal, is a crash.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <string>

#include "worker/runtime/trainer.h"

namespace {

constexpr int kExitComplete = 0;
constexpr int kExitConfigError = 1;
constexpr int kExitInternalError = 70;  // EX_SOFTWARE
constexpr int kExitIoError = 74;        // EX_IOERR
constexpr int kExitStopped = 75;        // EX_TEMPFAIL

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
  app.add_option("--stop-after-steps", options.stop_after_steps,
                 "checkpoint after this optimizer step and exit 75 (preemption drills)");
  app.add_option("--sample", options.sample_tokens,
                 "after training, greedy-decode this many tokens into sample.txt");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitComplete : kExitConfigError;
  }

  std::signal(SIGTERM, RequestStop);
  std::signal(SIGINT, RequestStop);
  options.stop_requested = &stop_requested;
  // One inter-op thread: the training loop issues one operation at a time, and a fixed pool keeps
  // CPU runs reproducible. Settable only once per process, hence here and not in the library.
  at::set_num_interop_threads(1);

  try {
    isoflop::Result<isoflop::RunConfig> run = isoflop::ReadRunConfig(config_path);
    if (!run.ok()) return ExitCodeFor(run.status());
    auto trainer = isoflop::Trainer::Create(*run, options);
    if (!trainer.ok()) return ExitCodeFor(trainer.status());
    isoflop::Result<isoflop::TrainingOutcome> outcome = (*trainer)->Run();
    if (!outcome.ok()) return ExitCodeFor(outcome.status());
    return *outcome == isoflop::TrainingOutcome::kComplete ? kExitComplete : kExitStopped;
  } catch (const c10::Error& e) {
    spdlog::critical("LibTorch error: {}", e.what_without_backtrace());
  } catch (const std::exception& e) {
    spdlog::critical("internal error: {}", e.what());
  }
  return kExitInternalError;
}
