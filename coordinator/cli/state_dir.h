// StateDir: where the coordinator keeps its database, run directories, logs, socket and token.
//
// Resolution order: --state-dir, then $ISOFLOP_STATE_DIR, then ./.isoflop (the embedded default: a local
// SQLite file next to the sweeps, so a first `isoflop run` needs no configuration).
#pragma once

#include <string>

#include "common/status.h"

namespace isoflop {

struct StateDir {
  std::string root;
  std::string database() const { return root + "/isoflop.db"; }
  std::string runs() const { return root + "/runs"; }

  static StateDir Resolve(const std::string& flag_value);
  // Creates root (mode 0700: it will hold the coordinator's token) if missing.
  Status Create() const;
};

}  // namespace isoflop
