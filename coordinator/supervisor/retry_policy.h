// RetryPolicy: why an attempt ended, and whether its run is tried again (system.md section 8).
//
// Causes, as the worker's exit contract (worker/main.cpp) and the coordinator see them:
//   completed       the worker wrote its "complete" record (exit 0, or a crash after it)
//   config error    exit 1: the run cannot succeed as configured; retrying cannot help
//   code fault      exit 70 or any other unexpected code, a crash signal (SIGSEGV, SIGABRT, ...),
//                   or exit 0 without a "complete" record
//   infrastructure  the launch failed, exit 69 (a data-parallel collective timed out), exit 74
//                   (I/O error), exit 75 or SIGTERM/SIGKILL/SIGHUP/SIGINT
//                   that the coordinator did not send (preemption, the OOM killer, an operator), or
//                   a worker that ended while the coordinator could not see how
//   hang            no heartbeat (metrics.jsonl did not grow) for the heartbeat timeout; the
//                   coordinator killed it and the run is LOST
//   cancelled       the user asked (`isoflop cancel`)
// Code faults spend the run's resources.max_retries; infrastructure faults and hangs spend the
// coordinator's own budget (a node failure says nothing about the run). Waits grow exponentially.
// A crash loop (the same cause on the last `crash_loop_attempts` attempts, each shorter than
// `crash_loop_window_s`) stops retrying before the budget is spent, with the reason in the events.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/store/run_store.h"
#include "coordinator/launcher/launcher.h"

namespace isoflop {

enum class AttemptCause {
  kCompleted,
  kConfigError,
  kCodeFault,
  kInfrastructure,
  kHang,
  kCancelled
};
const char* ToString(AttemptCause cause);  // "completed", "config error", ...
// The cause an attempts.cause text starts with ("code fault: exit status 70" -> kCodeFault).
bool ParseCause(const std::string& text, AttemptCause* out);

// Why the coordinator itself stopped an attempt, if it did.
enum class StopRequest { kNone, kCancel, kHang };

struct AttemptOutcome {
  AttemptCause cause = AttemptCause::kCodeFault;
  std::string detail;        // "exit status 70", "killed by SIGKILL", ...
  std::string Text() const;  // "code fault: exit status 70", as stored in attempts.cause
};

// How an attempt ended, from its exit, whether the worker's "complete" record was stored, and any
// stop the coordinator requested.
AttemptOutcome Classify(const JobExit& exit, bool complete_record, StopRequest requested);

struct RetryPolicyOptions {
  int64_t max_infra_retries = 10;  // infrastructure faults and hangs, per run
  double backoff_base_s = 5;       // first wait; doubles with each fault of the same kind
  double backoff_max_s = 600;
  int64_t crash_loop_attempts = 3;
  double crash_loop_window_s = 60;
};

struct RetryDecision {
  bool retry = false;
  double delay_s = 0;
  std::string reason;  // the event text: "retry 2 of 10 in 10 s" or why not
};

// `history`: the run's attempts that count against its budgets (attempt > budget_from_attempt),
// oldest first, the one that just ended included, its cause set to outcome.Text().
// `max_code_retries`: the run's resources.max_retries.
RetryDecision DecideRetry(const AttemptOutcome& outcome, const std::vector<AttemptRow>& history,
                          int64_t max_code_retries, const RetryPolicyOptions& options);

}  // namespace isoflop
