// ProcessReaper: tells the coordinator's event loop when worker processes end.
//
// Two kinds of process, two mechanisms, one callback:
//   - children (started by this coordinator): SIGCHLD through an asio signal_set, then waitpid on
//     each watched pid, so the exit status is known and a freed slot is refilled at once, with no
//     poll interval;
//   - adopted processes (started by a previous coordinator that was killed): not our children, so
//     no SIGCHLD and no exit status; a pidfd that becomes readable when the process ends, or, on a
//     kernel without pidfd_open, a check of /proc once per `poll_interval`.
// Only pids registered here are waited for: the reaper never reaps a child it was not given.
// One ProcessReaper per process (it owns SIGCHLD); every process launcher shares it.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <map>
#include <memory>

#include "coordinator/launcher/launcher.h"
#include "coordinator/launcher/process.h"

namespace isoflop {

class ProcessReaper {
 public:
  explicit ProcessReaper(boost::asio::io_context& io,
                         std::chrono::milliseconds poll_interval = std::chrono::seconds(1));
  ~ProcessReaper();
  ProcessReaper(const ProcessReaper&) = delete;
  ProcessReaper& operator=(const ProcessReaper&) = delete;

  // Calls on_exit (posted to the event loop) with the exit status once child `pid` ends.
  void WatchChild(pid_t pid, ExitCallback on_exit);
  // Calls on_exit (status unknown) once the process `identity` names ends. False when it has
  // already ended; on_exit is then never called.
  bool WatchAdopted(const ProcessIdentity& identity, ExitCallback on_exit);
  // Processes still watched.
  size_t watched() const { return children_.size() + adopted_.size(); }

 private:
  struct Adopted;
  void AwaitSignal();
  void ReapChildren();
  void AwaitPidfd(const std::shared_ptr<Adopted>& adopted);
  void SchedulePoll(const std::shared_ptr<Adopted>& adopted);
  void Finish(const std::shared_ptr<Adopted>& adopted);

  boost::asio::io_context& io_;
  boost::asio::signal_set sigchld_;
  std::chrono::milliseconds poll_interval_;
  std::map<pid_t, ExitCallback> children_;
  std::map<pid_t, std::shared_ptr<Adopted>> adopted_;
};

}  // namespace isoflop
