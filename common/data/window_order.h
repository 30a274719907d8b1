// WindowOrder: which of a token stream's windows a reader sees as its w-th window.
//
// A stream of W windows (token_stream.h) is read as an endless sequence of logical windows w = 0,
// 1, 2, ...; epoch e = w / W holds the logical windows e*W .. e*W + W - 1. An order maps each
// logical window to the physical window (0 <= p < W) whose tokens it reads:
//
//   Sequential()  p = w mod W: file order, the layout llm.c and nanoGPT stream.
//   Shuffled(s)   p = pi_{s,e}(w mod W): a permutation of the W windows drawn anew for every
//                 epoch e from the seed s. Every window is read exactly once per epoch, and runs
//                 of different lengths see the same mixture of documents from their first step on
//                 (a file-order stream of concatenated corpora gives a short run only the first).
//   Spread(n)     the n windows p_j = floor(j * W / n), j = 0 .. n-1 (all W when n >= W), read
//                 in that order and repeated: a validation sample drawn evenly from the whole
//                 stream rather than from its head.
//
// The permutation is a keyed bijection (a 4-round Feistel network on the smallest even number of
// bits that covers W, walked in cycles until it lands below W), so Map is O(1), needs no table of W
// entries, and is a pure function of (seed, epoch, index): a run resumed from a checkpoint's data
// position reads exactly what the uninterrupted run would have read, and data-parallel ranks that
// read disjoint logical windows read disjoint physical ones.
#pragma once

#include <cstdint>

namespace isoflop {

class WindowOrder {
 public:
  enum class Kind { kSequential, kShuffled, kSpread };

  static WindowOrder Sequential() { return WindowOrder(Kind::kSequential, 0); }
  static WindowOrder Shuffled(uint64_t seed) { return WindowOrder(Kind::kShuffled, seed); }
  static WindowOrder Spread(int64_t count) {
    return WindowOrder(Kind::kSpread, static_cast<uint64_t>(count < 1 ? 1 : count));
  }

  // The physical window (in [0, windows)) that logical window `window` (>= 0) reads.
  // Requires windows >= 1.
  int64_t Map(int64_t window, int64_t windows) const;

  Kind kind() const { return kind_; }

 private:
  WindowOrder(Kind kind, uint64_t parameter) : kind_(kind), parameter_(parameter) {}

  Kind kind_;
  uint64_t parameter_;  // the seed (kShuffled) or the sample size (kSpread)
};

}  // namespace isoflop
