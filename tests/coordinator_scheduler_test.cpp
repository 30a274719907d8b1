// Slots and the scheduler (coordinator/scheduler/): which GPUs a coordinator may use, and which
// runs start on them in which order.
#include <gtest/gtest.h>

#include "coordinator/scheduler/scheduler.h"
#include "coordinator/scheduler/slots.h"

namespace isoflop {
namespace {

constexpr const char* kNvidiaSmi =
    "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5c1a0b6e-0000-0000-0000-000000000000)\n"
    "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-77aa0b6e-0000-0000-0000-000000000001)\n"
    "  MIG 1g.10gb     Device  0: (UUID: MIG-1111)\n"
    "GPU 2: NVIDIA H100 80GB HBM3 (UUID: GPU-77bb0b6e-0000-0000-0000-000000000002)\n"
    "No devices were found\n";

TEST(SlotsTest, ParsesNvidiaSmiList) {
  const std::vector<GpuInfo> gpus = ParseNvidiaSmiList(kNvidiaSmi);
  ASSERT_EQ(gpus.size(), 3u);
  EXPECT_EQ(gpus[0].index, 0);
  EXPECT_EQ(gpus[0].name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(gpus[2].uuid, "GPU-77bb0b6e-0000-0000-0000-000000000002");
  EXPECT_TRUE(ParseNvidiaSmiList("").empty());
  EXPECT_TRUE(ParseNvidiaSmiList("NVIDIA-SMI has failed because it couldn't communicate").empty());
}

TEST(SlotsTest, CudaVisibleDevicesSelectsAndOrdersGpusAsCudaDoes) {
  const std::vector<GpuInfo> gpus = ParseNvidiaSmiList(kNvidiaSmi);
  auto indices = [&](const char* visible) {
    std::vector<int> out;
    for (const GpuInfo& gpu : VisibleGpus(gpus, visible)) out.push_back(gpu.index);
    return out;
  };
  EXPECT_EQ(indices(nullptr), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(indices("2,0"), (std::vector<int>{2, 0}));
  EXPECT_EQ(indices(" 1 "), (std::vector<int>{1}));
  EXPECT_EQ(indices("GPU-77bb"), (std::vector<int>{2}));  // a unique UUID prefix
  EXPECT_EQ(indices("GPU-77,0"), (std::vector<int>{}));   // ambiguous: CUDA stops there
  EXPECT_EQ(indices("0,7,1"), (std::vector<int>{0}));     // stops at the invalid entry
  EXPECT_EQ(indices(""), (std::vector<int>{}));
  EXPECT_EQ(indices("-1"), (std::vector<int>{}));
  EXPECT_EQ(indices("NoDevFiles"), (std::vector<int>{}));
  EXPECT_EQ(indices("1,1"), (std::vector<int>{1}));
}

TEST(SlotsTest, CpuSlotsWhenAskedOrWithoutGpus) {
  const std::vector<Slot> slots = DetectSlots({.cpu_slots = 3, .nvidia_smi = "false"});
  ASSERT_EQ(slots.size(), 3u);
  EXPECT_EQ(slots[2].device, "cpu2");
  EXPECT_FALSE(slots[0].gpu);
  // No nvidia-smi at all: one CPU slot per core.
  EXPECT_GE(DetectSlots({.cpu_slots = 0, .nvidia_smi = "/nonexistent/nvidia-smi"}).size(), 1u);
}

QueuedRun Queued(const std::string& id, int64_t sweep, int64_t priority = 0, int64_t gpus = 1) {
  return {id, sweep, priority, gpus};
}

std::vector<std::string> Started(const Scheduler::Decision& decision) {
  std::vector<std::string> ids;
  for (const Placement& placement : decision.start) ids.push_back(placement.run_id);
  return ids;
}

TEST(SchedulerTest, FillsFreeSlotsAndHoldsThemUntilReleased) {
  Scheduler scheduler(CpuSlots(2));
  std::vector<QueuedRun> queued = {Queued("a", 1), Queued("b", 1), Queued("c", 1)};
  Scheduler::Decision first = scheduler.Schedule(queued);
  EXPECT_EQ(Started(first), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(first.start[0].slots, (std::vector<int>{0}));
  EXPECT_EQ(first.start[1].slots, (std::vector<int>{1}));
  EXPECT_EQ(scheduler.free_slots(), 0);
  EXPECT_TRUE(scheduler.Schedule({Queued("c", 1)}).start.empty());

  scheduler.Release("a");
  Scheduler::Decision next = scheduler.Schedule({Queued("c", 1)});
  EXPECT_EQ(Started(next), (std::vector<std::string>{"c"}));
  EXPECT_EQ(next.start[0].slots, (std::vector<int>{0}));  // the slot "a" freed
}

TEST(SchedulerTest, SharesSlotsFairlyBetweenSweepsOfEqualPriority) {
  Scheduler scheduler(CpuSlots(4));
  // Sweep 1 was submitted first with many runs; sweep 2 must not wait for all of them.
  std::vector<QueuedRun> queued = {Queued("1a", 1), Queued("1b", 1), Queued("1c", 1),
                                   Queued("1d", 1), Queued("2a", 2), Queued("2b", 2)};
  EXPECT_EQ(Started(scheduler.Schedule(queued)),
            (std::vector<std::string>{"1a", "2a", "1b", "2b"}));
  // Whoever was served longest ago goes first when one slot frees.
  scheduler.Release("1a");
  EXPECT_EQ(Started(scheduler.Schedule({Queued("1c", 1), Queued("2c", 2)})),
            (std::vector<std::string>{"1c"}));  // sweep 1 was last served at turn 3, sweep 2 at 4
  scheduler.Release("2a");
  EXPECT_EQ(Started(scheduler.Schedule({Queued("1d", 1), Queued("2c", 2)})),
            (std::vector<std::string>{"2c"}));
}

TEST(SchedulerTest, HigherPriorityGoesFirstAcrossSweeps) {
  Scheduler scheduler(CpuSlots(2));
  // QueuedRuns order: priority descending.
  std::vector<QueuedRun> queued = {Queued("urgent1", 2, 5), Queued("urgent2", 2, 5),
                                   Queued("normal", 1, 0)};
  EXPECT_EQ(Started(scheduler.Schedule(queued)), (std::vector<std::string>{"urgent1", "urgent2"}));
}

TEST(SchedulerTest, ABigRunIsNotStarvedByBackfill) {
  Scheduler scheduler(CpuSlots(4));
  EXPECT_EQ(Started(scheduler.Schedule({Queued("small1", 1)})),
            (std::vector<std::string>{"small1"}));
  // The 4-slot run's turn: it does not fit in the 3 free slots, and nothing behind it jumps ahead.
  EXPECT_TRUE(scheduler.Schedule({Queued("big", 2, 0, 4), Queued("small2", 2)}).start.empty());
  scheduler.Release("small1");
  Scheduler::Decision decision = scheduler.Schedule({Queued("big", 2, 0, 4), Queued("small2", 2)});
  ASSERT_EQ(Started(decision), (std::vector<std::string>{"big"}));
  EXPECT_EQ(decision.start[0].slots, (std::vector<int>{0, 1, 2, 3}));
}

TEST(SchedulerTest, ARunLargerThanTheMachineIsReportedNotWaitedFor) {
  Scheduler scheduler(CpuSlots(2));
  Scheduler::Decision decision = scheduler.Schedule({Queued("huge", 1, 0, 8), Queued("fits", 1)});
  EXPECT_EQ(decision.unplaceable, (std::vector<std::string>{"huge"}));
  EXPECT_EQ(Started(decision), (std::vector<std::string>{"fits"}));
}

TEST(SchedulerTest, AdoptedRunsHoldTheirDevices) {
  Scheduler scheduler(CpuSlots(3));
  EXPECT_EQ(scheduler.SlotsByDevice("cpu2,cpu0,gpu9"), (std::vector<int>{2, 0}));
  EXPECT_EQ(scheduler.DeviceList({2, 0}), "cpu2,cpu0");
  scheduler.Hold("adopted", scheduler.SlotsByDevice("cpu0,cpu2"));
  EXPECT_EQ(scheduler.free_slots(), 1);
  scheduler.Hold("other", {0, 1});  // slot 0 is taken: only slot 1 is held
  EXPECT_EQ(scheduler.free_slots(), 0);
  scheduler.Release("adopted");
  EXPECT_EQ(scheduler.free_slots(), 2);
}

}  // namespace
}  // namespace isoflop
