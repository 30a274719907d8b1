// What Slurm says about a batch job, parsed from its commands' output, and what that means for the
// coordinator: is the job waiting, running or over, and if over, how did it end.
//
// Only squeue is read: it answers for many jobs in one call, and without an accounting daemon
// (slurmdbd) it still shows finished jobs for MinJobAge seconds (--states=all), which is what sacct
// would need slurmdbd for. The worker's own exit status comes from a file the batch script writes
// (cluster/slurm_job.sbatch.in), because squeue does not print exit codes.
//
// Job states and what each means for the run (the retry class follows from the JobExit through
// RetryPolicy's Classify):
//   PENDING, CONFIGURING, REQUEUED, REQUEUE_HOLD, REQUEUE_FED, RESV_DEL_HOLD, SUSPENDED
//                         waiting: not a hang, no heartbeat expected
//   RUNNING, COMPLETING, SIGNALING, STAGE_OUT, RESIZING, STOPPED and any state this code does not
//                         know: running (nothing is concluded from a state not understood)
//   COMPLETED, FAILED     over; the worker's exit status decides (0 with its "complete" record:
//                         completed; 1: config error; 70: code fault; 75: infrastructure, ...)
//   CANCELLED             over: cancelled when the coordinator asked, else infrastructure (an
//                         operator's scancel), as if by SIGTERM
//   TIMEOUT, PREEMPTED, NODE_FAIL, BOOT_FAIL, DEADLINE, OUT_OF_MEMORY, REVOKED, LAUNCH_FAILED
//                         over: infrastructure, retried with the coordinator's own budget and the
//                         run resumes from its checkpoint. OUT_OF_MEMORY counts here too, as the
//                         kernel's OOM killer does for local workers; the crash-loop guard stops a
//                         run that runs out of memory on every attempt.
//   a job squeue no longer knows
//                         over, how unknown: infrastructure (LOST), unless the run's records say
//                         it completed
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "coordinator/launcher/launcher.h"

namespace isoflop {

// The squeue --format the parser reads: job id, state, reason, working directory, node list.
inline constexpr char kSqueueFormat[] = "%i|%T|%r|%Z|%N";

struct SlurmJobStatus {
  std::string job_id;
  std::string state;     // "RUNNING", "FAILED", ... (the first word of what squeue printed)
  std::string reason;    // "None", "Priority", "NonZeroExitCode", ...
  std::string work_dir;  // the job's working directory: the run directory, for isoflop's jobs
  std::string nodes;     // "node-[1-2]"; empty while pending
};

enum class SlurmPhase { kWaiting, kRunning, kEnded };
SlurmPhase PhaseOf(std::string_view state);

// Lines of `squeue --noheader --format=kSqueueFormat`. InvalidArgument names the first line that
// does not have the five fields.
Result<std::vector<SlurmJobStatus>> ParseSqueue(std::string_view output);

// The job id `sbatch --parsable` printed: "123", or "123;cluster" on a federation.
Result<std::string> ParseSbatchJobId(std::string_view output);

// How an ended job ended. `worker_status`: what the batch script recorded for srun (the worker's
// exit status, 128 + N for signal N), when the file exists.
JobExit SlurmJobExit(const SlurmJobStatus& status, std::optional<int> worker_status);

}  // namespace isoflop
