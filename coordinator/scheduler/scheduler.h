// Scheduler: which queued runs start now, and on which slots (system.md section 3, step 4).
//
// Policy, in order:
//   1. priority: a run of higher resources.priority always goes before one of lower priority;
//   2. fair share between sweeps: among sweeps whose next run has the same (highest) priority, the
//      sweep served least recently goes first, one run per turn, so a 1000-run sweep submitted
//      first does not hold back a 10-run sweep submitted after it;
//   3. within a sweep, runs start in the order the store gives (expansion order).
// No backfill: when the run whose turn it is needs more slots than are free, nothing behind it
// starts either. Otherwise a 4-GPU run could wait forever behind a stream of 1-GPU runs.
//
// Pure bookkeeping, no I/O and no clock: the caller calls Schedule whenever a slot frees or a run
// is queued (there is no poll interval), and Release when a run's processes have ended.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/store/run_store.h"
#include "coordinator/scheduler/slots.h"

namespace isoflop {

struct Placement {
  std::string run_id;
  std::vector<int> slots;  // indices into Scheduler::slots()
};

class Scheduler {
 public:
  explicit Scheduler(std::vector<Slot> slots);

  const std::vector<Slot>& slots() const { return slots_; }
  int free_slots() const;
  // Slot indices named by devices ("0,1", "cpu3"), as stored in attempts.slots; names that match
  // no slot are left out.
  std::vector<int> SlotsByDevice(const std::string& devices) const;
  // "0,1": the devices of `slots`, as stored in attempts.slots.
  std::string DeviceList(const std::vector<int>& slots) const;

  // Marks slots as held by `run_id` (a run adopted after a restart). Slots already held are
  // skipped: two runs never hold one slot in the books, even if the machine was oversubscribed.
  void Hold(const std::string& run_id, const std::vector<int>& slots);
  // Frees every slot `run_id` holds; a no-op for a run that holds none.
  void Release(const std::string& run_id);

  struct Decision {
    std::vector<Placement> start;          // their slots are now held
    std::vector<std::string> unplaceable;  // need more slots than this machine has
  };
  // `queued` in the store's order (RunStore::QueuedRuns: priority, then age).
  Decision Schedule(const std::vector<QueuedRun>& queued);

 private:
  std::vector<Slot> slots_;
  std::vector<std::string> holder_;          // per slot: the run holding it, "" when free
  std::map<int64_t, uint64_t> last_served_;  // sweep id -> turn it was last served in
  uint64_t turn_ = 0;
};

}  // namespace isoflop
