#include "worker/distributed/collective_watchdog.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace isoflop {
namespace {

void ExitOnTimeout(const std::string& message) {
  std::fputs(message.c_str(), stderr);
  std::fputc('\n', stderr);
  std::fflush(stderr);
  // _Exit, not exit: the training thread is blocked in the collective, and static destructors
  // (MPI's, CUDA's) could block on the very same wait.
  std::_Exit(kExitCollectiveTimeout);
}

}  // namespace

CollectiveWatchdog::CollectiveWatchdog(int rank, int world, std::chrono::milliseconds timeout,
                                       TimeoutAction on_timeout)
    : rank_(rank),
      world_(world),
      timeout_(timeout),
      on_timeout_(on_timeout ? std::move(on_timeout) : TimeoutAction(ExitOnTimeout)),
      thread_([this] { Watch(); }) {}

CollectiveWatchdog::~CollectiveWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

CollectiveWatchdog::Id CollectiveWatchdog::Start(std::string name, std::function<bool()> finished) {
  std::lock_guard<std::mutex> lock(mutex_);
  const Id id = next_id_++;
  in_flight_.emplace(
      id, Collective{std::move(name), std::chrono::steady_clock::now(), std::move(finished)});
  return id;
}

void CollectiveWatchdog::Finish(Id id) {
  std::lock_guard<std::mutex> lock(mutex_);
  in_flight_.erase(id);
}

void CollectiveWatchdog::Watch() {
  // Often enough that a timeout fires within 5% of its time (or 200 ms), seldom enough to cost
  // nothing next to training.
  const auto poll = std::clamp<std::chrono::milliseconds>(
      timeout_ / 20, std::chrono::milliseconds(1), std::chrono::milliseconds(200));
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, poll, [this] { return stopping_; });
    if (stopping_) return;
    const auto now = std::chrono::steady_clock::now();
    for (auto it = in_flight_.begin(); it != in_flight_.end();) {
      const Collective& collective = it->second;
      if (collective.finished && collective.finished()) {
        it = in_flight_.erase(it);
        continue;
      }
      if (now - collective.started >= timeout_) {
        std::ostringstream message;
        message << "rank " << rank_ << " of " << world_ << ": collective \"" << collective.name
                << "\" did not finish within " << std::chrono::duration<double>(timeout_).count()
                << " s (--collective-timeout): another rank died or hangs; exiting with status "
                << kExitCollectiveTimeout << " so that the job ends and can be retried";
        lock.unlock();
        on_timeout_(message.str());
        return;  // once: the process is meant to be gone
      }
      ++it;
    }
  }
}

}  // namespace isoflop
