#include "coordinator/launcher/process_reaper.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <optional>
#include <utility>
#include <vector>

namespace isoflop {

namespace asio = boost::asio;

struct ProcessReaper::Adopted {
  Adopted(asio::io_context& io, ProcessIdentity identity, ExitCallback on_exit)
      : identity(std::move(identity)), on_exit(std::move(on_exit)), pidfd(io), timer(io) {}
  ProcessIdentity identity;
  ExitCallback on_exit;
  asio::posix::stream_descriptor pidfd;
  asio::steady_timer timer;
};

ProcessReaper::ProcessReaper(asio::io_context& io, std::chrono::milliseconds poll_interval)
    : io_(io), sigchld_(io, SIGCHLD), poll_interval_(poll_interval) {
  AwaitSignal();
}

ProcessReaper::~ProcessReaper() {
  boost::system::error_code ignored;
  sigchld_.cancel(ignored);
  for (auto& [pid, adopted] : adopted_) {
    adopted->pidfd.close(ignored);
    adopted->timer.cancel();
  }
}

void ProcessReaper::WatchChild(pid_t pid, ExitCallback on_exit) {
  children_[pid] = std::move(on_exit);
  // The child may have ended before it was registered, its SIGCHLD already consumed by an earlier
  // pass; look once now rather than wait for a signal that will not come.
  asio::post(io_, [this] { ReapChildren(); });
}

bool ProcessReaper::WatchAdopted(const ProcessIdentity& identity, ExitCallback on_exit) {
  auto adopted = std::make_shared<Adopted>(io_, identity, std::move(on_exit));
  Result<int> pidfd = OpenPidfd(identity);
  if (!pidfd.ok()) {
    if (pidfd.status().code() == Status::Code::kNotFound) return false;
    // No pidfd on this kernel: fall back to looking at /proc now and then.
    if (!IsRunning(identity)) return false;
    adopted_[identity.pid] = adopted;
    SchedulePoll(adopted);
    return true;
  }
  adopted->pidfd.assign(*pidfd);
  adopted_[identity.pid] = adopted;
  AwaitPidfd(adopted);
  return true;
}

void ProcessReaper::AwaitSignal() {
  sigchld_.async_wait([this](const boost::system::error_code& error, int) {
    if (error) return;  // cancelled: the reaper is going away
    ReapChildren();
    AwaitSignal();
  });
}

void ProcessReaper::ReapChildren() {
  // Signals coalesce: one SIGCHLD may stand for several exits, so every watched child is asked.
  std::vector<std::pair<ExitCallback, JobExit>> ended;
  for (auto it = children_.begin(); it != children_.end();) {
    int status = 0;
    const pid_t reaped = ::waitpid(it->first, &status, WNOHANG);
    if (reaped == 0 || (reaped < 0 && errno == EINTR)) {
      ++it;
      continue;
    }
    JobExit exit;
    if (reaped == it->first) {
      exit.status_known = true;
      if (WIFEXITED(status)) exit.exit_code = WEXITSTATUS(status);
      if (WIFSIGNALED(status)) exit.signal = WTERMSIG(status);
    }
    // reaped < 0 (ECHILD): someone else reaped it; it has ended, with its status unknown.
    ended.emplace_back(std::move(it->second), exit);
    it = children_.erase(it);
  }
  for (auto& [on_exit, exit] : ended) {
    asio::post(io_, [on_exit = std::move(on_exit), exit] { on_exit(exit); });
  }
}

void ProcessReaper::AwaitPidfd(const std::shared_ptr<Adopted>& adopted) {
  adopted->pidfd.async_wait(asio::posix::stream_descriptor::wait_read,
                            [this, adopted](const boost::system::error_code& error) {
                              if (error == asio::error::operation_aborted) return;
                              Finish(adopted);
                            });
}

void ProcessReaper::SchedulePoll(const std::shared_ptr<Adopted>& adopted) {
  adopted->timer.expires_after(poll_interval_);
  adopted->timer.async_wait([this, adopted](const boost::system::error_code& error) {
    if (error) return;
    if (IsRunning(adopted->identity)) {
      SchedulePoll(adopted);
    } else {
      Finish(adopted);
    }
  });
}

void ProcessReaper::Finish(const std::shared_ptr<Adopted>& adopted) {
  auto it = adopted_.find(adopted->identity.pid);
  if (it == adopted_.end() || it->second != adopted) return;
  adopted_.erase(it);
  boost::system::error_code ignored;
  adopted->pidfd.close(ignored);
  asio::post(io_, [adopted] { adopted->on_exit(JobExit{}); });
}

}  // namespace isoflop
