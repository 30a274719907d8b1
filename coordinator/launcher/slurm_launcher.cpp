#include "coordinator/launcher/slurm_launcher.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cctype>
#include <fstream>
#include <sstream>

#include "common/embedded.h"  // isoflop_slurm_templates: cluster/slurm_job.sbatch.in
#include "coordinator/launcher/process_launcher.h"
#include "coordinator/protocol/daemon_reporter.h"

namespace isoflop {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr char kTemplateName[] = "slurm_job.sbatch.in";
constexpr int64_t kDefaultSignalBeforeS = 300;
// squeue lists a job from the moment sbatch returns; one poll without it could still be a
// controller that answered from a stale view, two in a row is a job Slurm no longer has.
constexpr int kVanishedAfterPolls = 2;

// `text` as one shell word.
std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::string ReadFile(const std::string& path, bool* ok) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  *ok = static_cast<bool>(in) || in.eof();
  return text.str();
}

// A resources.slurm value as #SBATCH text: strings as they are, numbers printed.
std::string SettingText(const json& settings, const char* key) {
  auto it = settings.find(key);
  if (it == settings.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

Result<int64_t> SettingInt(const json& settings, const char* key, int64_t fallback) {
  auto it = settings.find(key);
  if (it == settings.end() || it->is_null()) return fallback;
  if (!it->is_number_integer() || it->get<int64_t>() < 0) {
    return Status::InvalidArgument(
        fmt::format("resources.slurm.{}: expected a count, got {}", key, it->dump()));
  }
  return it->get<int64_t>();
}

// Replaces every @KEY@ in `text` by its value; a line whose key has an empty value is left out.
// InvalidArgument names a key the template uses that `values` does not define (a typo in a
// template must not submit a job without its setting).
Result<std::string> Substitute(const std::string& text,
                               const std::map<std::string, std::string>& values) {
  std::string rendered;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::string out;
    bool drop = false;
    size_t at = 0;
    while (at < line.size()) {
      const size_t open = line.find('@', at);
      if (open == std::string::npos) {
        out += line.substr(at);
        break;
      }
      size_t end = open + 1;
      while (end < line.size() &&
             (std::isupper(static_cast<unsigned char>(line[end])) || line[end] == '_' ||
              std::isdigit(static_cast<unsigned char>(line[end])))) {
        ++end;
      }
      if (end == open + 1 || end >= line.size() || line[end] != '@') {
        out += line.substr(at, open + 1 - at);  // a lone '@' ("TERM@@KEY@"): text
        at = open + 1;
        continue;
      }
      const std::string key = line.substr(open + 1, end - open - 1);
      auto value = values.find(key);
      if (value == values.end()) {
        return Status::InvalidArgument(fmt::format("slurm job template: unknown key @{}@", key));
      }
      if (value->second.empty()) drop = true;
      out += line.substr(at, open - at) + value->second;
      at = end + 1;
    }
    if (!drop) rendered += out + "\n";
  }
  return rendered;
}

}  // namespace

SlurmLauncher::SlurmLauncher(boost::asio::io_context& io, SlurmLauncherOptions options)
    : io_(io), options_(std::move(options)), poll_timer_(io), interval_(options_.poll_min) {
  if (options_.template_path.empty()) {
    for (int i = 0; i < isoflop_slurm_templates::kFileCount; ++i) {
      if (isoflop_slurm_templates::kFiles[i].name == kTemplateName) {
        template_text_ = std::string(isoflop_slurm_templates::kFiles[i].text);
      }
    }
    if (template_text_.empty()) template_error_ = "the compiled-in batch script template is empty";
  } else {
    bool ok = false;
    template_text_ = ReadFile(options_.template_path, &ok);
    if (!ok || template_text_.empty()) {
      template_error_ =
          fmt::format("{}: cannot read the batch script template", options_.template_path);
    }
  }
}

SlurmLauncher::~SlurmLauncher() {
  poll_timer_.cancel();
}

std::string SlurmLauncher::Program(const char* name) const {
  return options_.slurm_bin_dir.empty() ? name : options_.slurm_bin_dir + "/" + name;
}

Result<std::string> SlurmLauncher::RenderScript(const LaunchRequest& request,
                                                const json& settings) const {
  if (!template_error_.empty()) return Status::InvalidArgument(template_error_);
  if (!settings.is_object()) {
    return Status::InvalidArgument(
        fmt::format("resources.slurm: expected a map, got {}", settings.dump()));
  }
  const int64_t ranks = std::max<int64_t>(1, request.ranks);
  Result<int64_t> gpus_per_node = SettingInt(settings, "gpus_per_node", 0);
  if (!gpus_per_node.ok()) return gpus_per_node.status();
  const int64_t nodes_needed =
      *gpus_per_node > 0 ? (ranks + *gpus_per_node - 1) / *gpus_per_node : 1;
  Result<int64_t> nodes = SettingInt(settings, "nodes", nodes_needed);
  if (!nodes.ok()) return nodes.status();
  if (*nodes == 0 || ranks % *nodes != 0) {
    return Status::InvalidArgument(fmt::format(
        "resources.slurm.nodes: {} ranks do not spread evenly over {} nodes", ranks, *nodes));
  }
  const int64_t tasks_per_node = ranks / *nodes;
  if (*gpus_per_node > 0 && tasks_per_node > *gpus_per_node) {
    return Status::InvalidArgument(
        fmt::format("resources.slurm: {} ranks per node need more than gpus_per_node {}",
                    tasks_per_node, *gpus_per_node));
  }
  Result<int64_t> signal_before = SettingInt(settings, "signal_before_s", kDefaultSignalBeforeS);
  if (!signal_before.ok()) return signal_before.status();

  std::string extra;
  const json extra_setting = settings.value("extra", json::array());
  for (const json& line : extra_setting.is_array() ? extra_setting : json::array({extra_setting})) {
    if (!line.is_string() || line.get<std::string>().find('\n') != std::string::npos) {
      return Status::InvalidArgument(fmt::format(
          "resources.slurm.extra: expected #SBATCH arguments, one per line, got {}", line.dump()));
    }
    extra += (extra.empty() ? "" : "\n") + ("#SBATCH " + line.get<std::string>());
  }

  const std::string mpi = settings.contains("mpi") ? SettingText(settings, "mpi")
                          : ranks > 1              ? std::string("pmix")
                                                   : std::string();
  std::string srun = "srun --kill-on-bad-exit=1";
  if (!mpi.empty()) srun += " --mpi=" + ShellQuote(mpi);
  srun += fmt::format(" {} --config {} --run-dir {}", ShellQuote(options_.worker_path),
                      ShellQuote(request.config_path), ShellQuote(request.run_dir));

  const std::map<std::string, std::string> values = {
      {"RUN_ID", request.run_id},
      {"ATTEMPT", std::to_string(request.attempt)},
      {"JOB_NAME", SlurmJobName(request.run_id, request.attempt)},
      {"LOG_PATH", request.log_path},
      {"NODES", std::to_string(*nodes)},
      {"TASKS_PER_NODE", std::to_string(tasks_per_node)},
      {"GPUS_PER_NODE", *gpus_per_node > 0 ? std::to_string(tasks_per_node) : ""},
      {"PARTITION", SettingText(settings, "partition")},
      {"ACCOUNT", SettingText(settings, "account")},
      {"TIME", SettingText(settings, "time")},
      {"SIGNAL_BEFORE_S", *signal_before > 0 ? std::to_string(*signal_before) : ""},
      {"EXTRA_SBATCH", extra},
      {"RUN_DIR_Q", ShellQuote(request.run_dir)},
      {"SRUN_COMMAND", srun},
  };
  for (const auto& [key, value] : values) {
    // One value, one line: a newline would start a directive or a command of its own.
    if (key != "EXTRA_SBATCH" && value.find('\n') != std::string::npos) {
      return Status::InvalidArgument(
          fmt::format("slurm job: the value of {} holds a line break: '{}'", key, value));
    }
  }
  return Substitute(template_text_, values);
}

Result<LaunchedJob> SlurmLauncher::Launch(const LaunchRequest& request, ExitCallback on_exit) {
  bool read = false;
  const std::string config_text = ReadFile(request.config_path, &read);
  const json config = json::parse(config_text, nullptr, /*allow_exceptions=*/false);
  if (!read || config.is_discarded()) {
    return Status::IOError(fmt::format("{}: cannot read the run's config", request.config_path));
  }
  const json settings = config.value("resources", json::object()).value("slurm", json::object());
  Result<std::string> script = RenderScript(request, settings);
  if (!script.ok()) return script.status();
  const std::string script_path =
      fmt::format("{}/slurm-attempt-{}.sbatch", request.run_dir, request.attempt);
  {
    std::ofstream out(script_path, std::ios::binary | std::ios::trunc);
    out << *script;
    if (!out.flush()) return Status::IOError(fmt::format("{}: cannot write", script_path));
  }

  CommandOptions submit;
  submit.argv = {Program("sbatch"), "--parsable", "--chdir=" + request.run_dir, script_path};
  // What a local worker gets (process_launcher.h), through sbatch's --export=ALL. Not
  // CUDA_VISIBLE_DEVICES: Slurm assigns the node's GPUs itself.
  submit.env.emplace_back("ISOFLOP_RUN_ID", request.run_id);
  const std::string marker = AttemptMarker(request.run_id, request.attempt);
  submit.env.emplace_back(marker.substr(0, marker.find('=')), marker.substr(marker.find('=') + 1));
  if (std::getenv("NCCL_NVLS_ENABLE") == nullptr) submit.env.emplace_back("NCCL_NVLS_ENABLE", "0");
  for (auto& entry : ReportingEnvironment(request.reporting)) submit.env.push_back(entry);
  submit.timeout = options_.command_timeout;
  Result<CommandOutput> submitted = RunCommand(submit);
  if (!submitted.ok()) return submitted.status();
  if (submitted->exit_code != 0) return Status::IOError(DescribeFailure(submit, *submitted));
  Result<std::string> job_id = ParseSbatchJobId(submitted->out);
  if (!job_id.ok()) return job_id.status();

  if (slurm_version_.empty()) {
    // Once, at the first launch: a coordinator that never submits should not ask.
    CommandOptions version{{Program("sbatch"), "--version"}, {}, options_.command_timeout};
    Result<CommandOutput> answer = RunCommand(version);
    slurm_version_ = answer.ok() && answer->exit_code == 0 && !answer->out.empty()
                         ? answer->out.substr(0, answer->out.find('\n'))
                         : "unknown";
  }

  json handle = {{"job_id", *job_id},
                 {"job_name", SlurmJobName(request.run_id, request.attempt)},
                 {"run_dir", request.run_dir}};
  Job job;
  job.run_dir = request.run_dir;
  job.on_exit = std::move(on_exit);
  job.last = {*job_id, "PENDING", "", request.run_dir, ""};
  Follow(*job_id, std::move(job));
  return LaunchedJob{std::move(handle), 0, std::move(submit.argv), {{"slurm", slurm_version_}}};
}

Result<std::vector<SlurmJobStatus>> SlurmLauncher::Query(const std::vector<std::string>& job_ids) {
  std::string list;
  for (const std::string& id : job_ids) list += (list.empty() ? "" : ",") + id;
  CommandOptions query{{Program("squeue"), "--noheader", "--states=all", "--jobs=" + list,
                        std::string("--format=") + kSqueueFormat},
                       {},
                       options_.command_timeout};
  Result<CommandOutput> answer = RunCommand(query);
  if (!answer.ok()) return answer.status();
  if (answer->exit_code != 0) {
    // Asked for one job id it no longer knows, squeue fails; asked for several, it lists the
    // others. Either way the job is absent, which is the answer.
    if (answer->err.find("Invalid job id") != std::string::npos) {
      return std::vector<SlurmJobStatus>();
    }
    return Status::IOError(DescribeFailure(query, *answer));
  }
  return ParseSqueue(answer->out);
}

void SlurmLauncher::Follow(const std::string& job_id, Job job) {
  jobs_[job_id] = std::move(job);
  // A new job: look soon, and often again until it settles.
  interval_ = options_.poll_min;
  ArmPoll(options_.poll_min);
}

void SlurmLauncher::ArmPoll(milliseconds delay) {
  // Re-arming cancels the wait in progress; its handler sees operation_aborted and does nothing.
  poll_timer_.expires_after(delay);
  poll_timer_.async_wait([this](const boost::system::error_code& error) {
    if (!error) Poll();
  });
}

void SlurmLauncher::Poll() {
  if (jobs_.empty()) return;
  std::vector<std::string> ids;
  for (const auto& [id, job] : jobs_) ids.push_back(id);
  Result<std::vector<SlurmJobStatus>> answer = Query(ids);
  if (!answer.ok()) {
    // Slurm did not answer: nothing is known, nothing is concluded; ask again, less often.
    spdlog::warn("slurm: polling {} jobs: {}", ids.size(), answer.status().message());
    interval_ = std::min(interval_ * 2, options_.poll_max);
    ArmPoll(interval_);
    return;
  }
  std::map<std::string, SlurmJobStatus> listed;
  for (SlurmJobStatus& status : *answer) listed[status.job_id] = std::move(status);

  bool changed = false;
  for (const std::string& id : ids) {
    Job& job = jobs_.at(id);
    auto it = listed.find(id);
    if (it == listed.end()) {
      if (++job.missing_polls < kVanishedAfterPolls) continue;
      JobExit exit;
      exit.detail = fmt::format("Slurm job {} vanished: squeue no longer lists it", id);
      Conclude(id, exit);
      changed = true;
      continue;
    }
    job.missing_polls = 0;
    if (it->second.state != job.last.state) changed = true;
    job.last = it->second;
    if (PhaseOf(job.last.state) != SlurmPhase::kEnded) continue;
    std::optional<int> worker_status;
    bool read = false;
    const std::string text = ReadFile(fmt::format("{}/slurm-{}.exit", job.run_dir, id), &read);
    int value = 0;
    if (read && std::sscanf(text.c_str(), "%d", &value) == 1) worker_status = value;
    Conclude(id, SlurmJobExit(job.last, worker_status));
  }
  interval_ = changed ? options_.poll_min : std::min(interval_ * 2, options_.poll_max);
  if (!jobs_.empty()) ArmPoll(interval_);
}

void SlurmLauncher::Conclude(const std::string& job_id, const JobExit& exit) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  ExitCallback on_exit = std::move(it->second.on_exit);
  jobs_.erase(it);
  boost::asio::post(io_, [on_exit = std::move(on_exit), exit] { on_exit(exit); });
}

Result<bool> SlurmLauncher::Reattach(const json& handle, ExitCallback on_exit) {
  const std::string job_id = handle.value("job_id", std::string());
  if (job_id.empty()) {
    return Status::InvalidArgument(fmt::format("not a Slurm job handle: {}", handle.dump()));
  }
  Job job;
  job.run_dir = handle.value("run_dir", std::string());
  job.on_exit = std::move(on_exit);
  job.last = {job_id, "PENDING", "", job.run_dir, ""};
  Result<std::vector<SlurmJobStatus>> answer = Query({job_id});
  if (!answer.ok()) {
    // Slurm cannot say now. Declaring the job gone would start the run twice if it still runs;
    // follow it, and let the polls decide.
    spdlog::warn("slurm: job {}: {}; following it until squeue answers", job_id,
                 answer.status().message());
    Follow(job_id, std::move(job));
    return true;
  }
  if (answer->empty()) return false;
  // Followed even when it has ended meanwhile: the next poll reports how, from Slurm's state and
  // the worker's exit status, which is more than a vanished job would tell.
  job.last = answer->front();
  Follow(job_id, std::move(job));
  return true;
}

json SlurmLauncher::Find(const std::string& run_id, int64_t attempt) {
  const std::string name = SlurmJobName(run_id, attempt);
  CommandOptions query{{Program("squeue"), "--noheader", "--states=all", "--name=" + name,
                        std::string("--format=") + kSqueueFormat},
                       {},
                       options_.command_timeout};
  Result<CommandOutput> answer = RunCommand(query);
  if (!answer.ok() || answer->exit_code != 0) return nullptr;
  Result<std::vector<SlurmJobStatus>> jobs = ParseSqueue(answer->out);
  if (!jobs.ok() || jobs->empty()) return nullptr;
  // One sbatch per attempt; should there be more (a retried submission), the newest.
  const SlurmJobStatus& newest = *std::max_element(
      jobs->begin(), jobs->end(), [](const SlurmJobStatus& a, const SlurmJobStatus& b) {
        return std::make_pair(a.job_id.size(), a.job_id) <
               std::make_pair(b.job_id.size(), b.job_id);
      });
  return {{"job_id", newest.job_id}, {"job_name", name}, {"run_dir", newest.work_dir}};
}

Status SlurmLauncher::Cancel(const json& handle, bool graceful) {
  const std::string job_id = handle.value("job_id", std::string());
  if (job_id.empty()) {
    return Status::InvalidArgument(fmt::format("not a Slurm job handle: {}", handle.dump()));
  }
  // The newest poll may predate the job's start: ask Slurm now, since signalling a job that still
  // waits does nothing and cancelling a running one outright costs its checkpoint.
  std::string state;
  if (auto it = jobs_.find(job_id); it != jobs_.end()) state = it->second.last.state;
  if (graceful) {
    Result<std::vector<SlurmJobStatus>> answer = Query({job_id});
    if (answer.ok() && !answer->empty()) state = answer->front().state;
  }
  const bool running = PhaseOf(state) == SlurmPhase::kRunning && !state.empty();
  CommandOptions cancel;
  cancel.argv = {Program("scancel")};
  // SIGTERM to the job's steps only: the worker checkpoints and exits 75, and the batch script
  // ends the job. A job still waiting has nothing to save and is cancelled outright.
  if (graceful && running) cancel.argv.push_back("--signal=TERM");
  cancel.argv.push_back(job_id);
  cancel.timeout = options_.command_timeout;
  Result<CommandOutput> answer = RunCommand(cancel);
  if (!answer.ok()) return answer.status();
  if (answer->exit_code != 0 &&
      answer->err.find("already completing or completed") == std::string::npos &&
      answer->err.find("Invalid job id") == std::string::npos) {
    return Status::IOError(DescribeFailure(cancel, *answer));
  }
  return Status::OK();
}

std::string SlurmLauncher::Describe(const json& handle) const {
  const std::string job_id = handle.value("job_id", std::string("?"));
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return fmt::format("Slurm job {}", job_id);
  const SlurmJobStatus& last = it->second.last;
  return last.nodes.empty()
             ? fmt::format("Slurm job {} ({})", job_id, last.state)
             : fmt::format("Slurm job {} ({} on {})", job_id, last.state, last.nodes);
}

bool SlurmLauncher::Waiting(const json& handle) const {
  auto it = jobs_.find(handle.value("job_id", std::string()));
  return it != jobs_.end() && PhaseOf(it->second.last.state) == SlurmPhase::kWaiting;
}

std::string SlurmJobName(const std::string& run_id, int64_t attempt) {
  return fmt::format("isoflop-{}-a{}", run_id, attempt);
}

}  // namespace isoflop
