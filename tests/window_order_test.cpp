// The order a token stream's windows are read in (common/data/window_order.h): shuffled orders are
// permutations of every epoch, drawn anew per epoch and per seed, and mix a stream of concatenated
// corpora from the first step; spread samples are even; all of it is a pure function.
#include "common/data/window_order.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace isoflop {
namespace {

std::vector<int64_t> Epoch(const WindowOrder& order, int64_t windows, int64_t epoch) {
  std::vector<int64_t> mapped;
  for (int64_t i = 0; i < windows; ++i) mapped.push_back(order.Map(epoch * windows + i, windows));
  return mapped;
}

bool IsPermutation(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] != static_cast<int64_t>(i)) return false;
  }
  return true;
}

TEST(WindowOrder, SequentialIsFileOrderWrappingAround) {
  const WindowOrder order = WindowOrder::Sequential();
  EXPECT_EQ(order.Map(0, 5), 0);
  EXPECT_EQ(order.Map(4, 5), 4);
  EXPECT_EQ(order.Map(6, 5), 1);
}

TEST(WindowOrder, ShuffledIsAPermutationOfEveryEpochForAnyStreamLength) {
  for (int64_t windows : {1, 2, 3, 4, 5, 7, 16, 17, 63, 64, 65, 1000, 4097, 65536, 100003}) {
    const WindowOrder order = WindowOrder::Shuffled(1234);
    for (int64_t epoch : {0, 1, 7}) {
      EXPECT_TRUE(IsPermutation(Epoch(order, windows, epoch)))
          << windows << " windows, epoch " << epoch;
    }
  }
}

TEST(WindowOrder, ShuffledDiffersByEpochAndSeedAndIsAPureFunction) {
  const int64_t windows = 1000;
  const std::vector<int64_t> e0 = Epoch(WindowOrder::Shuffled(1), windows, 0);
  EXPECT_EQ(e0, Epoch(WindowOrder::Shuffled(1), windows, 0));  // the same on every call: resumable
  EXPECT_NE(e0, Epoch(WindowOrder::Shuffled(1), windows, 1));
  EXPECT_NE(e0, Epoch(WindowOrder::Shuffled(2), windows, 0));
  // Not near the identity: few windows stay where they were (a random permutation fixes about one).
  int64_t fixed = 0;
  for (int64_t i = 0; i < windows; ++i) fixed += e0[i] == i;
  EXPECT_LT(fixed, 10);
}

// The failure this order exists to prevent: a stream whose first 20% is one corpus (A) and the rest
// another (B). In file order a short run reads only A; shuffled, every prefix of the epoch holds B
// in its proportion. Over 50 seeds, the B share of the first 2% of the epoch stays within a 5-sigma
// binomial bound of 0.8.
TEST(WindowOrder, ShuffledMixesConcatenatedCorporaFromTheFirstWindow) {
  const int64_t windows = 50000;
  const int64_t first_b = windows / 5;
  const int64_t prefix = windows / 50;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    const WindowOrder order = WindowOrder::Shuffled(seed);
    int64_t b = 0;
    for (int64_t i = 0; i < prefix; ++i) b += order.Map(i, windows) >= first_b;
    const double share = static_cast<double>(b) / prefix;
    const double sigma = std::sqrt(0.8 * 0.2 / prefix);
    EXPECT_NEAR(share, 0.8, 5 * sigma) << "seed " << seed;
  }
  int64_t b_sequential = 0;
  for (int64_t i = 0; i < prefix; ++i)
    b_sequential += WindowOrder::Sequential().Map(i, windows) >= first_b;
  EXPECT_EQ(b_sequential, 0);
}

// Data-parallel ranks read disjoint logical windows (token_stream.h), so they must map to disjoint
// physical ones: a bijection does that, checked here across an epoch boundary.
TEST(WindowOrder, DisjointLogicalWindowsReadDisjointPhysicalOnesWithinAnEpoch) {
  const int64_t windows = 97;
  const WindowOrder order = WindowOrder::Shuffled(5);
  std::vector<int> seen(windows, 0);
  for (int64_t w = 2 * windows; w < 3 * windows; w += 2) ++seen[order.Map(w, windows)];  // rank 0
  for (int64_t w = 2 * windows + 1; w < 3 * windows; w += 2)
    ++seen[order.Map(w, windows)];  // rank 1
  for (int count : seen) EXPECT_EQ(count, 1);
}

TEST(WindowOrder, SpreadSamplesEvenlyOverTheWholeStream) {
  const WindowOrder order = WindowOrder::Spread(4);
  EXPECT_EQ(Epoch(order, 4, 0), (std::vector<int64_t>{0, 1, 2, 3}));
  std::vector<int64_t> sample;
  for (int64_t j = 0; j < 4; ++j) sample.push_back(order.Map(j, 100));
  EXPECT_EQ(sample, (std::vector<int64_t>{0, 25, 50, 75}));
  EXPECT_EQ(order.Map(5, 100), 25);  // wraps around the sample, not the stream
  // More samples than windows: every window, once.
  EXPECT_TRUE(IsPermutation(Epoch(WindowOrder::Spread(1000), 10, 0)));
  // Long streams: j * W does not overflow.
  const int64_t huge = int64_t{1} << 40;
  EXPECT_EQ(WindowOrder::Spread(1 << 20).Map((1 << 20) - 1, huge), huge - (huge >> 20));
}

}  // namespace
}  // namespace isoflop
