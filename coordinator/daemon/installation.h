// Where the isoflop programs are, and what this build is: the facts `isoflop` needs to start
// isoflopd, isoflopd needs to start workers, and every run records as provenance.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace isoflop {

// The directory of the running executable (/proc/self/exe), "" if unknown.
std::string ExecutableDirectory();

// The worker binary, first match of: `flag`, $ISOFLOP_WORKER, the build tree's
// worker/isoflop-worker beside this executable's directory (build/coordinator/../worker/),
// isoflop-worker next to this executable, isoflop-worker in PATH. Returns "isoflop-worker" when
// none exists, so the launch fails with a message that names it.
std::string FindWorkerBinary(const std::string& flag);

// isoflopd: $ISOFLOPD, next to this executable, or in PATH.
std::string FindDaemonBinary();

// {"isoflop_version", "git_commit", "git_dirty", "compiler"} of this build
// (cmake/build_info.cmake).
nlohmann::json BuildProvenance();
std::string VersionString();  // "0.1.0 (git 1a2b3c4d, modified)"

}  // namespace isoflop
