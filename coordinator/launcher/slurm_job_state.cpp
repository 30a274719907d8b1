#include "coordinator/launcher/slurm_job_state.h"

#include <fmt/format.h>
#include <signal.h>

#include <algorithm>
#include <cctype>

namespace isoflop {
namespace {

constexpr std::string_view kWaitingStates[] = {"PENDING",      "CONFIGURING", "REQUEUED",
                                               "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD",
                                               "SUSPENDED"};
constexpr std::string_view kEndedStates[] = {
    "COMPLETED", "FAILED",   "CANCELLED",     "TIMEOUT", "PREEMPTED",    "NODE_FAIL",
    "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY", "REVOKED", "SPECIAL_EXIT", "LAUNCH_FAILED"};

template <size_t N>
bool OneOf(std::string_view state, const std::string_view (&states)[N]) {
  return std::find(std::begin(states), std::end(states), state) != std::end(states);
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  return text;
}

// "CANCELLED by 0" -> "CANCELLED"; a trailing '+' (sacct's "CANCELLED+") goes too.
std::string FirstWord(std::string_view text) {
  text = Trim(text);
  text = text.substr(0, text.find(' '));
  while (!text.empty() && text.back() == '+') text.remove_suffix(1);
  return std::string(text);
}

}  // namespace

SlurmPhase PhaseOf(std::string_view state) {
  if (OneOf(state, kWaitingStates)) return SlurmPhase::kWaiting;
  if (OneOf(state, kEndedStates)) return SlurmPhase::kEnded;
  return SlurmPhase::kRunning;
}

Result<std::vector<SlurmJobStatus>> ParseSqueue(std::string_view output) {
  std::vector<SlurmJobStatus> jobs;
  while (!output.empty()) {
    const size_t newline = output.find('\n');
    const std::string_view line = Trim(output.substr(0, newline));
    output = newline == std::string_view::npos ? std::string_view() : output.substr(newline + 1);
    if (line.empty()) continue;
    // id|state|reason|work dir|nodes: the first three fields hold no '|', nor does the node list;
    // the working directory, a path, might.
    std::vector<std::string_view> fields;
    std::string_view rest = line;
    for (int i = 0; i < 3; ++i) {
      const size_t bar = rest.find('|');
      if (bar == std::string_view::npos) break;
      fields.push_back(rest.substr(0, bar));
      rest = rest.substr(bar + 1);
    }
    const size_t last_bar = rest.rfind('|');
    if (fields.size() != 3 || last_bar == std::string_view::npos || Trim(fields[0]).empty() ||
        Trim(fields[1]).empty()) {
      return Status::InvalidArgument(
          fmt::format("squeue: expected '{}' fields, got '{}'", kSqueueFormat, line));
    }
    jobs.push_back({std::string(Trim(fields[0])), FirstWord(fields[1]),
                    std::string(Trim(fields[2])), std::string(rest.substr(0, last_bar)),
                    std::string(Trim(rest.substr(last_bar + 1)))});
  }
  return jobs;
}

Result<std::string> ParseSbatchJobId(std::string_view output) {
  const std::string_view line = Trim(output.substr(0, output.find('\n')));
  const std::string_view id = line.substr(0, line.find(';'));
  const bool digits = !id.empty() && std::all_of(id.begin(), id.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c));
  });
  if (!digits) {
    return Status::IOError(
        fmt::format("sbatch --parsable: expected a job id, got '{}'", std::string(Trim(output))));
  }
  return std::string(id);
}

JobExit SlurmJobExit(const SlurmJobStatus& status, std::optional<int> worker_status) {
  JobExit exit;
  const std::string& state = status.state;
  const bool said_reason = !status.reason.empty() && status.reason != "None";
  exit.detail = said_reason
                    ? fmt::format("Slurm job {}: {}, {}", status.job_id, state, status.reason)
                    : fmt::format("Slurm job {}: {}", status.job_id, state);
  if ((state == "COMPLETED" || state == "FAILED") && worker_status.has_value()) {
    exit.status_known = true;
    if (*worker_status > 128) {
      exit.signal = *worker_status - 128;
    } else {
      exit.exit_code = *worker_status;
    }
    return exit;
  }
  if (state == "COMPLETED") {
    // The batch script exited 0 yet left no status: it ran, so srun did too.
    exit.status_known = true;
    return exit;
  }
  if (state == "CANCELLED") {
    // scancel: Slurm signals the job with SIGTERM (then SIGKILL after KillWait).
    exit.status_known = true;
    exit.signal = SIGTERM;
    return exit;
  }
  // FAILED without a worker status (srun itself could not start the worker), TIMEOUT, NODE_FAIL,
  // PREEMPTED, ...: the job ended for reasons outside the worker; how the worker ended is unknown.
  return exit;
}

}  // namespace isoflop
