#include "worker/models/decode_ops.h"

#include <cmath>
#include <cstdint>
#include <limits>

#ifdef ISOFLOP_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>

#include "worker/kernels/decode_attention.h"
#include "worker/kernels/gemv_bf16.h"
#endif

namespace isoflop {

namespace {

torch::Tensor PlainMatVec(const torch::Tensor& x, const torch::Tensor& w) {
  return torch::mm(x.reshape({1, -1}), w.t());  // (1, in) x (in, out) -> (1, out)
}

torch::Tensor PlainSwiGlu(const torch::Tensor& h) {
  const torch::Tensor x = h.reshape({1, -1});
  const int64_t f = x.size(1) / 2;
  return torch::silu(x.narrow(1, 0, f)) * x.narrow(1, f, f);
}

// DecodeAttention's contract on shapes (host-side sizes only: no synchronisation).
void CheckAttentionShapes(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          const torch::Tensor& cache, int64_t heads, int64_t kv_heads) {
  TORCH_CHECK(heads > 0 && kv_heads > 0 && heads % kv_heads == 0,
              "DecodeAttention: heads must be a multiple of kv_heads, got ", heads, " and ",
              kv_heads);
  TORCH_CHECK(cache.dim() == 4 && cache.size(0) == 1 && cache.size(1) == 2 * kv_heads,
              "DecodeAttention: cache must be (1, 2 kv_heads, capacity, hs), got ", cache.sizes());
  const int64_t hs = cache.size(3);
  TORCH_CHECK(q.numel() == heads * hs && k.numel() == kv_heads * hs && v.numel() == kv_heads * hs,
              "DecodeAttention: batch 1, one position: q ", q.sizes(), ", k ", k.sizes(), ", v ",
              v.sizes(), " for ", heads, " heads on ", kv_heads, " of ", hs);
}

// The cache's rows after pos are multiplied by zero weights: they must hold finite values (the
// caches are allocated zeroed).
torch::Tensor PlainAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             torch::Tensor& cache, const torch::Tensor& pos, int64_t heads,
                             int64_t kv_heads) {
  const int64_t capacity = cache.size(2), hs = cache.size(3), G = heads / kv_heads;
  // K[:, :, pos] = k and V[:, :, pos] = v in one copy: (1, 2 kv, 1, hs)
  cache.index_copy_(2, pos, torch::cat({k, v}, 1).view({1, 2 * kv_heads, 1, hs}));
  const torch::Tensor keys = cache[0].narrow(0, 0, kv_heads);           // (kv, capacity, hs)
  const torch::Tensor values = cache[0].narrow(0, kv_heads, kv_heads);  // (kv, capacity, hs)
  torch::Tensor scores = torch::bmm(q.reshape({kv_heads, G, hs}), keys.transpose(1, 2)) /
                         std::sqrt(static_cast<double>(hs));                 // (kv, G, capacity)
  const torch::Tensor later = torch::arange(capacity, pos.options()) > pos;  // (capacity)
  scores = scores.masked_fill(later, -std::numeric_limits<double>::infinity());
  return torch::bmm(torch::softmax(scores, -1), values).reshape({1, heads * hs});
}

}  // namespace

#ifdef ISOFLOP_CUDA_KERNELS

namespace {

bool Aligned(const torch::Tensor& t) {
  return reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 16 == 0;
}

bool KernelOperands(std::initializer_list<const torch::Tensor*> tensors) {
  for (const torch::Tensor* t : tensors) {
    if (!t->is_cuda() || t->scalar_type() != torch::kBFloat16 || !t->is_contiguous() ||
        !Aligned(*t)) {
      return false;
    }
  }
  return true;
}

const uint16_t* Bits(const torch::Tensor& t) {
  return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>());
}

uint16_t* MutableBits(torch::Tensor& t) {
  return reinterpret_cast<uint16_t*>(t.data_ptr<at::BFloat16>());
}

cudaStream_t Stream(const torch::Tensor& t) {
  return at::cuda::getCurrentCUDAStream(t.device().index()).stream();
}

}  // namespace

bool DecodeKernelsAvailable(const torch::Device& device) {
  return device.is_cuda();
}

torch::Tensor DecodeMatVec(const torch::Tensor& x, const torch::Tensor& w) {
  const torch::Tensor xc = x.contiguous();
  if (!KernelOperands({&xc, &w}) || w.size(1) % 8 != 0 || xc.numel() != w.size(1)) {
    return PlainMatVec(x, w);
  }
  torch::Tensor y = torch::empty({1, w.size(0)}, w.options());
  const cudaError_t status =
      kernels::GemvBf16(Bits(w), Bits(xc), MutableBits(y), w.size(0), w.size(1), Stream(w));
  TORCH_CHECK(status == cudaSuccess, "GemvBf16: ", cudaGetErrorString(status));
  return y;
}

torch::Tensor DecodeSwiGlu(const torch::Tensor& h) {
  const torch::Tensor hc = h.contiguous();
  const int64_t f = hc.numel() / 2;
  if (!KernelOperands({&hc}) || f % 8 != 0) return PlainSwiGlu(h);
  torch::Tensor out = torch::empty({1, f}, hc.options());
  const cudaError_t status = kernels::SwiGluBf16(Bits(hc), MutableBits(out), f, Stream(hc));
  TORCH_CHECK(status == cudaSuccess, "SwiGluBf16: ", cudaGetErrorString(status));
  return out;
}

torch::Tensor DecodeAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, torch::Tensor& cache,
                              const torch::Tensor& pos, int64_t heads, int64_t kv_heads) {
  CheckAttentionShapes(q, k, v, cache, heads, kv_heads);
  const torch::Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  const int64_t hs = cache.size(3);
  if (!KernelOperands({&qc, &kc, &vc, &cache}) || hs % 8 != 0 || hs > 256 || !pos.is_cuda() ||
      pos.scalar_type() != torch::kInt64) {
    return PlainAttention(q, k, v, cache, pos, heads, kv_heads);
  }
  torch::Tensor out = torch::empty({1, heads * hs}, q.options());
  const cudaError_t status = kernels::DecodeAttentionBf16(
      Bits(qc), Bits(kc), Bits(vc), MutableBits(cache), MutableBits(out), pos.data_ptr<int64_t>(),
      static_cast<int>(heads), static_cast<int>(kv_heads), static_cast<int>(hs), cache.size(2),
      Stream(q));
  TORCH_CHECK(status == cudaSuccess, "DecodeAttentionBf16: ", cudaGetErrorString(status));
  return out;
}

#else  // a build without the CUDA kernels

bool DecodeKernelsAvailable(const torch::Device&) {
  return false;
}

torch::Tensor DecodeMatVec(const torch::Tensor& x, const torch::Tensor& w) {
  return PlainMatVec(x, w);
}

torch::Tensor DecodeSwiGlu(const torch::Tensor& h) {
  return PlainSwiGlu(h);
}

torch::Tensor DecodeAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, torch::Tensor& cache,
                              const torch::Tensor& pos, int64_t heads, int64_t kv_heads) {
  CheckAttentionShapes(q, k, v, cache, heads, kv_heads);
  return PlainAttention(q, k, v, cache, pos, heads, kv_heads);
}

#endif

}  // namespace isoflop
