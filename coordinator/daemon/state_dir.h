// StateDir: where one coordinator keeps everything it owns (system.md section 8).
//
//   STATE/isoflop.db        the results database (isoflopd is its only writer)
//   STATE/isoflopd.sock     the API socket, mode 0600
//   STATE/token             the TCP access token, mode 0600
//   STATE/isoflopd.pid      the daemon's pid, flock-ed while it runs (one daemon per state)
//   STATE/logs/isoflopd.log the daemon's log
//   STATE/runs/<run id>/    run.json, metrics.jsonl, worker.log, checkpoints/
//
// Resolution order: --state-dir, then $ISOFLOP_STATE_DIR, then ./.isoflop (a local directory next
// to the sweeps, so a first `isoflop run` needs no configuration). The root is made absolute, so a
// daemon started from one directory and a client started from another agree on it.
#pragma once

#include <string>

#include "common/status.h"

namespace isoflop {

struct StateDir {
  std::string root;

  std::string database() const { return root + "/isoflop.db"; }
  std::string runs() const { return root + "/runs"; }
  std::string run(const std::string& run_id) const { return runs() + "/" + run_id; }
  std::string logs() const { return root + "/logs"; }
  std::string socket() const { return root + "/isoflopd.sock"; }
  std::string token() const { return root + "/token"; }
  std::string pid_file() const { return root + "/isoflopd.pid"; }
  std::string daemon_log() const { return logs() + "/isoflopd.log"; }

  static StateDir Resolve(const std::string& flag_value);
  // Creates root (mode 0700: it holds the token), runs/ and logs/ if missing.
  Status Create() const;
};

}  // namespace isoflop
