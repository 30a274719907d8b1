// TokenStream: the token shards a data path names (data.train or data.val: a file, a directory or a
// glob; ListShards in common/data/token_shard.h), memory-mapped and read as one logical stream.
//
// Windows. Training reads windows of seq_len + 1 tokens (inputs, and the same shifted by one as
// targets) that start every seq_len tokens, so each token is predicted exactly once per epoch and
// consecutive windows share one token (nanoGPT's and llm.c's layout). Logical window w reads
// physical window p = order.Map(w, windows_per_epoch), which starts at token p * seq_len; w /
// windows_per_epoch is the epoch. The order (common/data/window_order.h) is sequential (file
// order), shuffled (a seeded permutation per epoch: training) or spread (an even sample:
// validation). A window may straddle two shards: shards are one stream, as llm.c writes them.
//
// Steps and ranks. An optimizer step whose data starts at global window b reads the windows
// [b, b + W) for W sequences per step; rank r of w takes every w-th of them (global window
// b + i w + r for its local window i), so data-parallel ranks read disjoint slices whose union is
// the single-process batch. The trainer keeps b (the data position) and checkpoints it.
//
// Vocabulary. Every token read is checked against the model's vocabulary (one comparison per token
// while it is copied anyway): an id the embedding table does not have would otherwise read out of
// bounds on a GPU, or fail far from its cause.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/data/token_shard.h"
#include "common/data/window_order.h"
#include "common/status.h"
#include "worker/runtime/training_plan.h"

namespace isoflop {

class TokenStream {
 public:
  // Maps every shard `file_dir_or_glob` names, in ListShards' order. InvalidArgument when the
  // stream holds fewer than seq_len + 1 tokens (not one window); the shard's own errors otherwise.
  static Result<TokenStream> Open(const std::string& file_dir_or_glob, int64_t seq_len,
                                  int64_t vocab_size);

  int64_t size() const { return total_tokens_; }  // tokens in all shards
  int64_t seq_len() const { return seq_len_; }
  int64_t windows_per_epoch() const { return windows_per_epoch_; }
  const WindowOrder& order() const { return order_; }
  void set_order(WindowOrder order) { order_ = order; }
  const std::vector<TokenShard>& shards() const { return shards_; }

  // Logical window `window` (>= 0, wrapping around, through order()) as seq_len + 1 int64 ids into
  // out (that size). InvalidArgument naming the shard and offset of the first id >= vocab_size.
  Status ReadWindow(int64_t window, std::span<int64_t> out) const;

  // `count` of rank slice.rank's windows of the step whose global windows start at step_window,
  // beginning with its local window `first`, as a (count, seq_len + 1) row-major block into out.
  Status ReadBatch(int64_t step_window, int64_t first, int64_t count, DataSlice slice,
                   std::span<int64_t> out) const;

 private:
  TokenStream(std::vector<TokenShard> shards, int64_t seq_len, int64_t vocab_size);

  std::vector<TokenShard> shards_;
  std::vector<int64_t> shard_start_;  // stream offset of each shard's first token
  int64_t total_tokens_ = 0;
  int64_t seq_len_ = 0;
  int64_t vocab_size_ = 0;
  int64_t windows_per_epoch_ = 0;
  WindowOrder order_ = WindowOrder::Sequential();
};

}  // namespace isoflop
