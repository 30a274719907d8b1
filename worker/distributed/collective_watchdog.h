// CollectiveWatchdog: a collective that does not finish in time ends the process, instead of
// hanging.
//
// A data-parallel rank waits in every collective for all the others. When one of them hangs (a
// stopped process, a wedged GPU, a deadlock) or dies while the launcher lets the rest live (srun
// without --kill-on-bad-exit), that wait never ends, and the coordinator would notice only after
// its heartbeat timeout, with no clue why. The watchdog bounds every wait: its own thread checks
// the collectives in flight, and one still unfinished after `timeout` ends the process with
// kExitCollectiveTimeout and a message naming the rank, the collective and the wait. Exiting is
// the only way out: the training thread is blocked inside MPI or behind a CUDA stream and cannot be
// unwound. mpirun then ends the other ranks, and the coordinator retries the run as an
// infrastructure fault (a peer's failure says nothing about the run).
//
// A collective is watched from the moment it starts, by the thread that starts it, until that
// thread calls Finish (blocking collectives), or until `finished` returns true when the watchdog's
// thread polls it (asynchronous ones, such as a CUDA event behind an NCCL kernel).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace isoflop {

// The worker's exit status after a collective timeout (worker/main.cpp): EX_UNAVAILABLE, since a
// peer rank or the interconnect, not the run, is at fault.
inline constexpr int kExitCollectiveTimeout = 69;

class CollectiveWatchdog {
 public:
  // Called once, on the watchdog's thread, with the message; it must not return to a process that
  // is meant to go on. The default writes the message to stderr and _Exit(kExitCollectiveTimeout)s.
  using TimeoutAction = std::function<void(const std::string& message)>;
  using Id = uint64_t;

  // `rank` of `world` names this process in the message; `timeout` > 0.
  CollectiveWatchdog(int rank, int world, std::chrono::milliseconds timeout,
                     TimeoutAction on_timeout = {});
  ~CollectiveWatchdog();  // stops the thread; collectives still in flight are no longer watched
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  // Watches collective `name` ("all-reduce of gradient bucket 2 at step 17"), started now, until
  // Finish(id) or until `finished` (if given; called on the watchdog's thread) returns true.
  Id Start(std::string name, std::function<bool()> finished = {});
  void Finish(Id id);

  // Watches a blocking collective for the lifetime of the scope.
  class Scope {
   public:
    Scope(CollectiveWatchdog& watchdog, std::string name)
        : watchdog_(watchdog), id_(watchdog.Start(std::move(name))) {}
    ~Scope() { watchdog_.Finish(id_); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    CollectiveWatchdog& watchdog_;
    Id id_;
  };

  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  struct Collective {
    std::string name;
    std::chrono::steady_clock::time_point started;
    std::function<bool()> finished;
  };
  void Watch();

  const int rank_;
  const int world_;
  const std::chrono::milliseconds timeout_;
  const TimeoutAction on_timeout_;

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  Id next_id_ = 0;
  std::map<Id, Collective> in_flight_;  // by start order: the oldest times out first
  std::thread thread_;                  // last: starts once everything above exists
};

}  // namespace isoflop
