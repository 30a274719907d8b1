#include "coordinator/launcher/process_launcher.h"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>

namespace isoflop {
namespace {

std::string Join(const std::vector<std::string>& parts, const char* separator) {
  std::string joined;
  for (const std::string& part : parts) {
    if (!joined.empty()) joined += separator;
    joined += part;
  }
  return joined;
}

// `name` itself when it holds a '/', else its first match in PATH; empty when there is none.
std::string FindProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    const size_t colon = dirs.find(':');
    const std::string dir(dirs.substr(0, colon));
    dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

Result<ProcessIdentity> HandleIdentity(const nlohmann::json& handle) {
  return ProcessIdentity::FromJson(handle);
}

}  // namespace

std::string AttemptMarker(const std::string& run_id, int64_t attempt) {
  return fmt::format("ISOFLOP_ATTEMPT={}/{}", run_id, attempt);
}

ProcessLauncher::ProcessLauncher(ProcessReaper& reaper, std::string worker_path)
    : reaper_(reaper), worker_path_(std::move(worker_path)), host_(HostName()) {}

ProcessLauncher::Command ProcessLauncher::WorkerCommand(const LaunchRequest& request) const {
  Command command;
  command.argv = {worker_path_, "--config", request.config_path, "--run-dir", request.run_dir};
  if (!request.gpus.empty())
    command.env.emplace_back("CUDA_VISIBLE_DEVICES", Join(request.gpus, ","));
  if (std::getenv("NCCL_NVLS_ENABLE") == nullptr) command.env.emplace_back("NCCL_NVLS_ENABLE", "0");
  command.env.emplace_back("ISOFLOP_RUN_ID", request.run_id);
  const std::string marker = AttemptMarker(request.run_id, request.attempt);
  const size_t equals = marker.find('=');
  command.env.emplace_back(marker.substr(0, equals), marker.substr(equals + 1));
  for (auto& entry : ReportingEnvironment(request.reporting)) command.env.push_back(entry);
  return command;
}

Result<LaunchedJob> ProcessLauncher::Launch(const LaunchRequest& request, ExitCallback on_exit) {
  Result<Command> command = BuildCommand(request);
  if (!command.ok()) return command.status();
  SpawnOptions options;
  options.argv = std::move(command->argv);
  options.env = std::move(command->env);
  options.log_path = request.log_path;
  options.working_dir = request.run_dir;
  Result<pid_t> pid = SpawnProcessGroup(options);
  if (!pid.ok()) return pid.status();
  // Our unreaped child: its /proc entry exists even if it has already exited.
  Result<ProcessIdentity> identity = IdentifyProcess(*pid);
  if (!identity.ok()) {
    // Cannot happen for an unreaped child; stop it rather than run something we cannot find again.
    ::kill(-*pid, SIGKILL);
    reaper_.WatchChild(*pid, [](const JobExit&) {});
    return identity.status();
  }
  reaper_.WatchChild(*pid, std::move(on_exit));
  nlohmann::json handle = identity->ToJson();
  handle["host"] = host_;
  return LaunchedJob{std::move(handle), *pid, std::move(options.argv), LaunchProvenance()};
}

Result<bool> ProcessLauncher::Reattach(const nlohmann::json& handle, ExitCallback on_exit) {
  Result<ProcessIdentity> identity = HandleIdentity(handle);
  if (!identity.ok()) return identity.status();
  if (handle.value("host", host_) != host_) {
    return Status::FailedPrecondition(
        fmt::format("{} was started on host {}, and this coordinator runs on {}", Describe(handle),
                    handle.value("host", std::string()), host_));
  }
  return reaper_.WatchAdopted(*identity, std::move(on_exit));
}

nlohmann::json ProcessLauncher::Find(const std::string& run_id, int64_t attempt) {
  std::optional<pid_t> pid = FindProcessWithEnvironment(AttemptMarker(run_id, attempt));
  if (!pid) return nullptr;
  Result<ProcessIdentity> identity = IdentifyProcess(*pid);
  if (!identity.ok()) return nullptr;
  nlohmann::json handle = identity->ToJson();
  handle["host"] = host_;
  return handle;
}

Status ProcessLauncher::Cancel(const nlohmann::json& handle, bool graceful) {
  Result<ProcessIdentity> identity = HandleIdentity(handle);
  if (!identity.ok()) return identity.status();
  if (!IsRunning(*identity)) return Status::OK();
  if (graceful) {
    // The group only: mpirun forwards SIGTERM to its ranks itself, and a worker that got a second
    // SIGTERM would die without its checkpoint.
    if (::kill(-identity->pid, SIGTERM) != 0 && errno != ESRCH) {
      return Status::IOError(fmt::format("cannot stop {}: {}", Describe(handle), strerror(errno)));
    }
    return Status::OK();
  }
  return SignalProcessTree(identity->pid, SIGKILL);
}

std::string ProcessLauncher::Describe(const nlohmann::json& handle) const {
  const nlohmann::json pid = handle.value("pid", nlohmann::json());
  return fmt::format("pid {} on {}", pid.is_number() ? pid.dump() : "?",
                     handle.value("host", std::string("?")));
}

Result<ProcessLauncher::Command> LocalLauncher::BuildCommand(const LaunchRequest& request) const {
  return WorkerCommand(request);
}

MpiLauncher::MpiLauncher(ProcessReaper& reaper, std::string worker_path, std::string mpirun)
    : ProcessLauncher(reaper, std::move(worker_path)),
      mpirun_(FindProgram(mpirun)),
      mpirun_name_(std::move(mpirun)) {}

nlohmann::json MpiLauncher::LaunchProvenance() {
  if (mpi_version_.empty() && !mpirun_.empty()) {
    // Before the first launch, not at start-up: a coordinator that never runs an MPI job should
    // not pay for starting mpirun.
    std::string output;
    if (FILE* pipe = ::popen((mpirun_ + " --version 2>&1").c_str(), "r")) {
      char buffer[512];
      if (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) output = buffer;
      ::pclose(pipe);
    }
    while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
    mpi_version_ = output.empty() ? "unknown" : output;
  }
  return {{"mpi", mpi_version_}};
}

Result<ProcessLauncher::Command> MpiLauncher::BuildCommand(const LaunchRequest& request) const {
  if (mpirun_.empty()) {
    return Status::InvalidArgument(fmt::format(
        "launcher mpi: {} is not in PATH (install Open MPI, cluster/setup.sh)", mpirun_name_));
  }
  Command worker = WorkerCommand(request);
  Command command;
  command.env = worker.env;
  command.argv = {mpirun_, "-np", std::to_string(request.ranks)};
  if (::geteuid() == 0) command.argv.push_back("--allow-run-as-root");
  if (request.gpus.empty()) command.argv.push_back("--oversubscribe");
  command.argv.insert(command.argv.end(), {"--bind-to", "none"});
  // Exported to every rank: what the launcher set, and what NCCL, CUDA and the worker read from the
  // coordinator's own environment.
  std::set<std::string> exported;
  for (const auto& [key, value] : worker.env) exported.insert(key);
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const std::string key(text.substr(0, text.find('=')));
    for (const char* prefix : {"NCCL_", "CUDA_", "ISOFLOP_", "OMP_", "TORCH_"}) {
      if (key.rfind(prefix, 0) == 0) exported.insert(key);
    }
  }
  for (const std::string& key : exported) command.argv.insert(command.argv.end(), {"-x", key});
  command.argv.insert(command.argv.end(), worker.argv.begin(), worker.argv.end());
  return command;
}

}  // namespace isoflop
