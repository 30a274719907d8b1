// The command line's side of isoflopd: find the daemon of a state directory, start it when none
// runs, stop it. `isoflop submit`, `run`, `resume`, `cancel` and `daemon start|stop|status` use it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "coordinator/daemon/state_dir.h"
#include "coordinator/protocol/daemon_client.h"

namespace isoflop {

// How to start isoflopd when none runs (ignored when one does: it keeps its own settings).
struct DaemonLaunchFlags {
  std::string worker;              // --worker
  int cpu_slots = 0;               // --cpu-slots
  std::string listen;              // --listen
  std::vector<std::string> extra;  // further isoflopd arguments, passed as given
};

// Connects to the state directory's daemon.
Result<DaemonClient> ConnectToDaemon(const StateDir& state);
// Connects, first starting `isoflopd --daemonize` for the state directory when no daemon holds
// its lock. Two clients racing to start one end up sharing whichever daemon won.
Result<DaemonClient> ConnectOrStartDaemon(const StateDir& state, const DaemonLaunchFlags& flags);
// Starts the daemon (FailedPrecondition if one runs already) and returns once it listens.
Status StartDaemon(const StateDir& state, const DaemonLaunchFlags& flags);
// Asks the daemon to stop and waits until it has released its lock. Workers keep running.
// NotFound when no daemon runs.
Status StopDaemon(const StateDir& state);
// The pid of the daemon holding the state directory's lock, if any.
std::optional<pid_t> RunningDaemon(const StateDir& state);

}  // namespace isoflop
