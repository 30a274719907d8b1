// The device a run trains on, and what MFU is measured against.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace isoflop {

struct DeviceInfo {
  torch::Device device{torch::kCPU};
  std::string name = "cpu";  // the GPU's own name ("NVIDIA H100 80GB HBM3"), or "cpu"
  // Dense bf16 tensor-core peak in FLOP/s, the denominator of MFU; 0 on the CPU and for GPUs not in
  // the table (MFU is then reported as 0 rather than against a guessed peak).
  double peak_flops = 0;
  int64_t memory_bytes = 0;  // GPU memory; 0 on the CPU
};

// "auto" (the current CUDA device when there is one, else the CPU), "cpu", "cuda" or "cuda:N".
// InvalidArgument for another name or a CUDA device this process cannot see.
Result<DeviceInfo> SelectDevice(const std::string& choice);

// Dense (not 2:4 sparse) bf16 peak of a GPU by the vendor's data sheet, matched on its name; 0 when
// unknown. H100 SXM and H200 989 TFLOP/s, H100 PCIe 756, A100 312, ...
double PeakBf16Flops(std::string_view gpu_name);

}  // namespace isoflop
