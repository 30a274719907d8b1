#include "worker/runtime/device.h"

#include <ATen/cuda/CUDAContext.h>
#include <fmt/format.h>

namespace isoflop {

double PeakBf16Flops(std::string_view gpu_name) {
  // First match wins: the more specific names come before the family name they contain.
  struct Peak {
    std::string_view name;
    double flops;
  };
  static constexpr Peak kPeaks[] = {
      {"H100 PCIe", 756e12}, {"H100 NVL", 835e12}, {"H100", 989e12},  // SXM (HBM3)
      {"H200", 989e12},      {"H800", 989e12},     {"B200", 2250e12}, {"B100", 1750e12},
      {"A100", 312e12},      {"A800", 312e12},     {"A10G", 70e12},   {"A10", 125e12},
      {"L40S", 362e12},      {"L40", 181e12},      {"L4", 121e12},    {"A6000", 155e12},
      {"RTX 4090", 165e12},  {"RTX 3090", 71e12},
  };
  for (const Peak& peak : kPeaks) {
    if (gpu_name.find(peak.name) != std::string_view::npos) return peak.flops;
  }
  return 0;
}

Result<DeviceInfo> SelectDevice(const std::string& choice) {
  DeviceInfo info;
  const bool cuda_available = torch::cuda::is_available();
  if (choice == "cpu" || (choice == "auto" && !cuda_available)) return info;
  if (choice != "auto" && choice != "cuda" && !choice.starts_with("cuda:")) {
    return Status::InvalidArgument(
        fmt::format("--device: \"{}\" is not auto, cpu, cuda or cuda:N", choice));
  }
  if (!cuda_available) {
    return Status::InvalidArgument(
        fmt::format("--device {}: no CUDA device is visible to this process", choice));
  }
  int index = static_cast<int>(at::cuda::current_device());
  if (choice.starts_with("cuda:")) {
    try {
      index = std::stoi(choice.substr(5));
    } catch (const std::exception&) {
      index = -1;
    }
    if (index < 0 || index >= static_cast<int>(torch::cuda::device_count())) {
      return Status::InvalidArgument(fmt::format("--device {}: this process sees {} CUDA device(s)",
                                                 choice, torch::cuda::device_count()));
    }
  }
  const cudaDeviceProp* props = at::cuda::getDeviceProperties(index);
  info.device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  info.name = props->name;
  info.peak_flops = PeakBf16Flops(info.name);
  info.memory_bytes = static_cast<int64_t>(props->totalGlobalMem);
  return info;
}

}  // namespace isoflop
