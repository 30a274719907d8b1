// RunCommand: a short-lived helper program (sbatch, squeue, scancel, ...) run to completion, its
// output captured. No shell: argv[0] is looked up in PATH like execvp does, and arguments reach the
// program as they are, so run ids and paths need no quoting.
//
// It blocks the caller, so every command gets a timeout: a wedged slurmctld must cost the
// coordinator's event loop seconds, not forever. On timeout the program is killed (SIGKILL) and
// reaped.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace isoflop {

struct CommandOptions {
  std::vector<std::string> argv;
  // Added to (or replacing) the caller's own environment.
  std::vector<std::pair<std::string, std::string>> env;
  std::chrono::milliseconds timeout{30000};
};

struct CommandOutput {
  int exit_code = 0;  // 128 + N when signal N ended it
  std::string out;    // stdout
  std::string err;    // stderr
};

// IOError when the program could not start or ran past the timeout. A nonzero exit is not an error
// here: the caller decides (squeue exits 1 for a job id it no longer knows).
Result<CommandOutput> RunCommand(const CommandOptions& options);

// "squeue: error: ...", the program's name and the first line of its stderr (or of its stdout, when
// stderr is empty), for error messages.
std::string DescribeFailure(const CommandOptions& options, const CommandOutput& output);

}  // namespace isoflop
