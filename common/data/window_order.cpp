#include "common/data/window_order.h"

#include <bit>
#include <cassert>

namespace isoflop {

namespace {

// SplitMix64's finaliser (Steele, Lea and Flood 2014): a cheap, well-mixed 64-bit hash, used both
// for the round keys and as the Feistel round function.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A bijection of [0, 2^(2*half_bits)): four balanced Feistel rounds keyed by `key`.
uint64_t Feistel(uint64_t x, int half_bits, uint64_t key) {
  const uint64_t mask = (uint64_t{1} << half_bits) - 1;
  uint64_t left = x >> half_bits;
  uint64_t right = x & mask;
  for (uint64_t round = 0; round < 4; ++round) {
    const uint64_t next = left ^ (Mix(key ^ Mix(round ^ (right << 8))) & mask);
    left = right;
    right = next;
  }
  return (left << half_bits) | right;
}

}  // namespace

int64_t WindowOrder::Map(int64_t window, int64_t windows) const {
  assert(window >= 0 && windows >= 1);
  const uint64_t w = static_cast<uint64_t>(window);
  const uint64_t n = static_cast<uint64_t>(windows);
  switch (kind_) {
    case Kind::kSequential:
      return static_cast<int64_t>(w % n);
    case Kind::kShuffled: {
      const uint64_t epoch = w / n;
      uint64_t x = w % n;
      if (n == 1) return 0;
      // Half of the smallest even bit width whose range holds n; cycle-walking stays inside [0, n)
      // and, since the domain is less than 4n, takes under 4 rounds on average.
      const int bits = std::bit_width(n - 1);
      const int half_bits = (bits + 1) / 2;
      const uint64_t key = Mix(parameter_ ^ Mix(epoch));
      do {
        x = Feistel(x, half_bits, key);
      } while (x >= n);
      return static_cast<int64_t>(x);
    }
    case Kind::kSpread: {
      const uint64_t count = parameter_ < n ? parameter_ : n;
      const unsigned __int128 j = w % count;  // j * n overflows 64 bits for long streams
      return static_cast<int64_t>(j * n / count);
    }
  }
  return 0;
}

}  // namespace isoflop
