#include "coordinator/scheduler/scheduler.h"

#include <algorithm>
#include <deque>
#include <sstream>
#include <tuple>

namespace isoflop {

Scheduler::Scheduler(std::vector<Slot> slots) : slots_(std::move(slots)), holder_(slots_.size()) {}

int Scheduler::free_slots() const {
  return static_cast<int>(std::count(holder_.begin(), holder_.end(), std::string()));
}

std::vector<int> Scheduler::SlotsByDevice(const std::string& devices) const {
  std::vector<int> found;
  std::istringstream names(devices);
  std::string name;
  while (std::getline(names, name, ',')) {
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].device == name) found.push_back(static_cast<int>(i));
    }
  }
  return found;
}

std::string Scheduler::DeviceList(const std::vector<int>& slots) const {
  std::string list;
  for (int slot : slots) {
    if (!list.empty()) list += ',';
    list += slots_.at(static_cast<size_t>(slot)).device;
  }
  return list;
}

void Scheduler::Hold(const std::string& run_id, const std::vector<int>& slots) {
  for (int slot : slots) {
    if (slot >= 0 && static_cast<size_t>(slot) < holder_.size() && holder_[slot].empty()) {
      holder_[slot] = run_id;
    }
  }
}

void Scheduler::Release(const std::string& run_id) {
  for (std::string& holder : holder_) {
    if (holder == run_id) holder.clear();
  }
}

Scheduler::Decision Scheduler::Schedule(const std::vector<QueuedRun>& queued) {
  Decision decision;
  std::map<int64_t, std::deque<const QueuedRun*>> by_sweep;
  for (const QueuedRun& run : queued) by_sweep[run.sweep_id].push_back(&run);

  int free = free_slots();
  while (free > 0) {
    // The sweep whose turn it is: highest head priority, then least recently served, then oldest.
    auto next = by_sweep.end();
    for (auto it = by_sweep.begin(); it != by_sweep.end(); ++it) {
      if (it->second.empty()) continue;
      if (next == by_sweep.end()) {
        next = it;
        continue;
      }
      auto key = [this](const auto& entry) {
        return std::make_tuple(-entry.second.front()->priority, last_served_[entry.first],
                               entry.first);
      };
      if (key(*it) < key(*next)) next = it;
    }
    if (next == by_sweep.end()) break;
    const QueuedRun& run = *next->second.front();
    const int64_t needed = std::max<int64_t>(run.gpus, 1);
    if (needed > static_cast<int64_t>(slots_.size())) {
      decision.unplaceable.push_back(run.run_id);
      next->second.pop_front();
      continue;
    }
    if (needed > free) break;  // no backfill: see the header

    Placement placement{run.run_id, {}};
    for (size_t i = 0; i < holder_.size() && static_cast<int64_t>(placement.slots.size()) < needed;
         ++i) {
      if (holder_[i].empty()) {
        holder_[i] = run.run_id;
        placement.slots.push_back(static_cast<int>(i));
      }
    }
    free -= static_cast<int>(needed);
    last_served_[next->first] = ++turn_;
    next->second.pop_front();
    decision.start.push_back(std::move(placement));
  }
  return decision;
}

}  // namespace isoflop
