// Bf16AutocastOn: whether autocast is on for a device type and casts to bf16 there.
//
// The worker's own kernels and GEMM paths (fused_layer_norm.h, linear_map.h, the fused head loss)
// replace what LibTorch's autocast would do, so each takes over only while that autocast is on.
#pragma once

#include <ATen/autocast_mode.h>

namespace isoflop {

inline bool Bf16AutocastOn(c10::DeviceType device) {
  return at::autocast::is_autocast_enabled(device) &&
         at::autocast::get_autocast_dtype(device) == at::kBFloat16;
}

}  // namespace isoflop
