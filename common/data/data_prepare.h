// PrepareData: raw text files -> train and validation token shards, the library behind
// `isoflop data prepare`.
//
// Documents. Each input file is one document, and every document starts with EOT, as in the pgpt
// paper's data (papers.md 1.6) and llm.c's: the model sees where one text ends and an unrelated one
// begins. Files are the unit because they are what a user can name and check; splitting at blank
// lines would also cut a novel's chapters and a play's scenes apart.
//
// Split. The last val_fraction of every document (by bytes, moved forward to the start of a line)
// is validation data; the rest is training data. Every file therefore contributes to both sets,
// even when there are only a handful of files (the shared corpus has 8), and the split needs no
// seed: the same inputs always give the same shards. The validation part is a document of its own
// and starts with EOT too: EOT marks every place where the token stream jumps.
//
// Output in out_dir: train_000000.bin, train_000001.bin, ... and val_000000.bin, ...
// (token_shard.h's format; documents continue across shard boundaries, as in llm.c), then
// manifest.json, written last: a directory with a manifest holds a complete data set.
//
// Fingerprint. SHA-256 of the bytes of every shard file, train shards then val shards in order,
// i.e. `cat train_*.bin val_*.bin | sha256sum`. It becomes part of run ids (system.md section 3):
// runs on different data never share an id, and anyone can recompute it from the shards alone.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/text/tokenizer.h"

namespace isoflop {

struct PrepareProgress {
  std::string_view file;        // the input being read
  std::int64_t bytes_done;      // over all inputs
  std::int64_t bytes_total;     // over all inputs
  std::int64_t tokens_written;  // over all inputs, EOTs included
};

struct PrepareOptions {
  // Share of each document held out for validation, in [0, 1). 0.05 of the 3M-token shared corpus
  // is 150k validation tokens: a stable loss estimate without starving training.
  double val_fraction = 0.05;
  // Tokens per shard before the next one starts: llm.c and modded-nanogpt's 1e8 (200 MB of uint16).
  std::int64_t shard_tokens = 100'000'000;
  // Bytes read from an input at a time. Long inputs are encoded in pieces cut where the tokens
  // cannot change (LastSplitPoint), so memory stays bounded and the ids equal those of the whole
  // file.
  std::size_t read_bytes = std::size_t{16} << 20;
  // Called after every piece read; may be empty.
  std::function<void(const PrepareProgress&)> progress;
};

struct PreparedDocument {
  std::string path;  // as given, or as found under a given directory
  std::int64_t bytes = 0;
  std::int64_t train_tokens = 0;  // EOT included
  std::int64_t val_tokens = 0;    // EOT included; 0 when the file is too short to hold a line out
};

// What manifest.json records.
struct PreparedData {
  std::string tokenizer;  // Tokenizer::name()
  int vocab_size = 0;
  TokenId eot_token = 0;
  double val_fraction = 0;
  std::vector<std::string> train_shards;  // paths: out_dir joined with the file names
  std::vector<std::string> val_shards;
  std::int64_t train_tokens = 0;
  std::int64_t val_tokens = 0;
  std::string fingerprint;  // "sha256:" and 64 hex digits
  std::vector<PreparedDocument> documents;
};

// Tokenizes `inputs` (files, or directories searched recursively for *.txt, each sorted by path)
// into out_dir, which is created if missing. FailedPrecondition when out_dir already holds shards
// or a manifest (so stale shards never mix with new ones); InvalidArgument for bad options or no
// inputs; IOError naming the file otherwise. On failure no manifest is written.
Result<PreparedData> PrepareData(std::span<const std::string> inputs, const std::string& out_dir,
                                 Tokenizer& tokenizer, const PrepareOptions& options = {});

// Reads out_dir/manifest.json (shard paths come back joined with out_dir). NotFound when absent,
// Corruption naming the file when it is not a manifest.
Result<PreparedData> ReadDataManifest(const std::string& out_dir);

// The fingerprint defined above, for any list of shards: "sha256:<hex>". Users who bring their own
// shards get theirs from the same definition. IOError naming the shard that cannot be read.
Result<std::string> FingerprintShards(std::span<const std::string> shard_paths);

}  // namespace isoflop
