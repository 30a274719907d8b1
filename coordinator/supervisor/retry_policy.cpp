#include "coordinator/supervisor/retry_policy.h"

#include <fmt/format.h>
#include <signal.h>
#include <string.h>

#include <algorithm>
#include <cmath>

namespace isoflop {
namespace {

// The worker's exit codes (worker/main.cpp).
constexpr int kExitConfigError = 1;
constexpr int kExitCollectiveTimeout = 69;  // EX_UNAVAILABLE: a peer rank died or hangs
constexpr int kExitIoError = 74;            // EX_IOERR
constexpr int kExitStopped = 75;            // EX_TEMPFAIL: stopped on request after a checkpoint

struct CauseName {
  AttemptCause cause;
  const char* name;
};
constexpr CauseName kCauseNames[] = {
    {AttemptCause::kCompleted, "completed"},
    {AttemptCause::kConfigError, "config error"},
    {AttemptCause::kCodeFault, "code fault"},
    {AttemptCause::kInfrastructure, "infrastructure"},
    {AttemptCause::kHang, "hang"},
    {AttemptCause::kCancelled, "cancelled"},
};

std::string SignalName(int signal) {
  const char* abbrev = sigabbrev_np(signal);
  return abbrev ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", signal);
}

// Signals that someone outside the worker sends to end it, as opposed to the ones its own bugs
// raise (SIGSEGV, SIGBUS, SIGFPE, SIGABRT, SIGILL).
bool IsExternalSignal(int signal) {
  return signal == SIGKILL || signal == SIGTERM || signal == SIGINT || signal == SIGHUP ||
         signal == SIGQUIT || signal == SIGPIPE;
}

bool SpendsInfraBudget(AttemptCause cause) {
  return cause == AttemptCause::kInfrastructure || cause == AttemptCause::kHang;
}

}  // namespace

const char* ToString(AttemptCause cause) {
  for (const CauseName& entry : kCauseNames) {
    if (entry.cause == cause) return entry.name;
  }
  return "?";
}

bool ParseCause(const std::string& text, AttemptCause* out) {
  for (const CauseName& entry : kCauseNames) {
    const size_t length = strlen(entry.name);
    if (text.compare(0, length, entry.name) == 0 &&
        (text.size() == length || text[length] == ':')) {
      *out = entry.cause;
      return true;
    }
  }
  return false;
}

std::string AttemptOutcome::Text() const {
  return detail.empty() ? ToString(cause) : fmt::format("{}: {}", ToString(cause), detail);
}

AttemptOutcome Classify(const JobExit& exit, bool complete_record, StopRequest requested) {
  std::string how = !exit.status_known ? "ended while the coordinator could not wait for it"
                    : exit.signal != 0 ? fmt::format("killed by {}", SignalName(exit.signal))
                                       : fmt::format("exit status {}", exit.exit_code);
  if (!exit.detail.empty()) how = fmt::format("{} ({})", how, exit.detail);
  // A finished run is finished, whatever happened after its last record: a crash in teardown or a
  // cancel that arrived too late does not make the training unfinished.
  if (complete_record)
    return {AttemptCause::kCompleted,
            exit.status_known && exit.exit_code == 0 && exit.signal == 0 ? "" : how};
  if (requested == StopRequest::kCancel) return {AttemptCause::kCancelled, how};
  if (requested == StopRequest::kHang) {
    return {AttemptCause::kHang, fmt::format("no heartbeat for the timeout; {}", how)};
  }
  if (!exit.status_known) return {AttemptCause::kInfrastructure, how};
  if (exit.signal != 0) {
    return {
        IsExternalSignal(exit.signal) ? AttemptCause::kInfrastructure : AttemptCause::kCodeFault,
        how};
  }
  switch (exit.exit_code) {
    case 0:
      return {AttemptCause::kCodeFault, "exit status 0 without a \"complete\" record"};
    case kExitConfigError:
      return {AttemptCause::kConfigError, how};
    case kExitIoError:
      return {AttemptCause::kInfrastructure, fmt::format("{} (I/O error)", how)};
    case kExitCollectiveTimeout:
      return {AttemptCause::kInfrastructure,
              fmt::format("{} (a collective timed out: another rank died or hangs)", how)};
    case kExitStopped:
      return {AttemptCause::kInfrastructure, fmt::format("{} (stopped by someone else)", how)};
    default:
      return {AttemptCause::kCodeFault, how};
  }
}

RetryDecision DecideRetry(const AttemptOutcome& outcome, const std::vector<AttemptRow>& history,
                          int64_t max_code_retries, const RetryPolicyOptions& options) {
  RetryDecision decision;
  switch (outcome.cause) {
    case AttemptCause::kCompleted:
    case AttemptCause::kCancelled:
      return decision;
    case AttemptCause::kConfigError:
      decision.reason = "not retried: the worker rejected the run as configured (exit 1)";
      return decision;
    case AttemptCause::kCodeFault:
    case AttemptCause::kInfrastructure:
    case AttemptCause::kHang:
      break;
  }

  // Faults of this budget so far, this one included.
  const bool infra = SpendsInfraBudget(outcome.cause);
  int64_t faults = 0;
  for (const AttemptRow& attempt : history) {
    AttemptCause cause;
    if (!ParseCause(attempt.cause, &cause)) continue;
    if (infra ? SpendsInfraBudget(cause) : cause == AttemptCause::kCodeFault) ++faults;
  }
  const int64_t budget = infra ? options.max_infra_retries : max_code_retries;
  const char* budget_name = infra ? "infrastructure retries" : "max_retries";
  if (faults > budget) {
    decision.reason = fmt::format("not retried: {} {} faults, {} {} spent", faults,
                                  infra ? "infrastructure" : "code", budget, budget_name);
    return decision;
  }

  // Crash loop: the same outcome, quickly, several times in a row.
  const int64_t loop = options.crash_loop_attempts;
  if (loop > 0 && static_cast<int64_t>(history.size()) >= loop) {
    const std::string text = outcome.Text();
    bool looping = true;
    for (auto it = history.end() - loop; it != history.end(); ++it) {
      looping = looping && it->cause == text && it->duration_s < options.crash_loop_window_s;
    }
    if (looping) {
      decision.reason = fmt::format(
          "not retried: crash loop, the last {} attempts each ended within {:g} s with "
          "\"{}\"",
          loop, options.crash_loop_window_s, text);
      return decision;
    }
  }

  decision.retry = true;
  decision.delay_s =
      std::min(options.backoff_max_s,
               options.backoff_base_s * std::pow(2.0, static_cast<double>(faults - 1)));
  decision.reason =
      fmt::format("retry {} of {} ({}) in {:.3g} s", faults, budget, budget_name, decision.delay_s);
  return decision;
}

}  // namespace isoflop
