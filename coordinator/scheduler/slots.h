// Slots: the units the scheduler hands out (system.md section 3, step 4). A slot is one GPU, or, on
// a machine without GPUs, one CPU worker process. A run takes `resources.gpus` slots.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace isoflop {

struct Slot {
  // What a launched worker is given: for a GPU its UUID (CUDA_VISIBLE_DEVICES accepts UUIDs, and
  // unlike an index a UUID does not depend on CUDA_DEVICE_ORDER), or its index when nvidia-smi gave
  // none; for a CPU slot "cpu<i>".
  std::string device;
  std::string label;  // for people: "0 (NVIDIA H100 80GB HBM3)", "cpu3"
  bool gpu = false;
};

struct GpuInfo {
  int index = 0;
  std::string name;
  std::string uuid;  // "GPU-..." or "MIG-...", empty if not listed
};

// Parses `nvidia-smi -L`: "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5c1a...)", one per line. Other
// lines (MIG devices, warnings) are ignored.
std::vector<GpuInfo> ParseNvidiaSmiList(std::string_view text);

// The GPUs a process may use under CUDA_VISIBLE_DEVICES, in the order that variable lists them:
// entries are indices or UUIDs (a unique UUID prefix is enough, as for CUDA). A null variable means
// all; an empty one, or one whose first entry is invalid, means none (CUDA stops at the first entry
// it cannot use).
std::vector<GpuInfo> VisibleGpus(const std::vector<GpuInfo>& gpus,
                                 const char* cuda_visible_devices);

struct SlotOptions {
  // > 0: use this many CPU slots even when GPUs are present. 0: GPUs when any are visible, else one
  // CPU slot per core.
  int cpu_slots = 0;
  std::string nvidia_smi = "nvidia-smi";
};

// The slots of this machine: `nvidia-smi -L` filtered by this process's CUDA_VISIBLE_DEVICES, or
// CPU slots. Never empty.
std::vector<Slot> DetectSlots(const SlotOptions& options);

std::vector<Slot> CpuSlots(int count);

}  // namespace isoflop
