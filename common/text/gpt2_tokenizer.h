// GPT-2's byte-level BPE (Radford et al. 2019), exact to the ids of the reference tokenizer.
//
// Encoding is three steps, as in OpenAI's encoder.py:
//   1. pre-tokenize: cut the text into pieces with the pattern
//        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//      (PCRE2 with Unicode properties, JIT-compiled where the platform allows);
//   2. each piece's bytes start as one token each (GPT-2's byte-to-unicode table names them in
//   vocab.json);
//   3. BPE: repeatedly merge the adjacent pair with the lowest rank in merges.txt, leftmost first.
// tests/gpt2_reference_test.cpp checks the ids against Hugging Face `tokenizers` on the whole
// shared corpus and on a list of hard strings (tests/tools/gpt2_reference_ids.py).
//
// Invalid UTF-8 (which GPT-2 never sees: Python decodes text first) is matched by no pattern
// alternative; each run of bytes between matches becomes a piece of its own, so such text still
// round-trips exactly.
#pragma once

#include <filesystem>
#include <memory>

#include "common/status.h"
#include "common/text/tokenizer.h"

namespace isoflop {

// Loads vocab.json (token -> id, 50,257 entries for GPT-2) and merges.txt ("#version" line, then
// one "left right" pair a line, highest priority first). These are Hugging Face's names; OpenAI's
// encoder.json and vocab.bpe are the same files. Fails with NotFound or IOError naming the file, or
// Corruption naming file:line when an entry is malformed or names a token the vocabulary lacks.
Result<std::unique_ptr<Tokenizer>> LoadGpt2Tokenizer(const std::filesystem::path& vocab_json,
                                                     const std::filesystem::path& merges_txt);

// Same, from dir/vocab.json and dir/merges.txt.
Result<std::unique_ptr<Tokenizer>> LoadGpt2Tokenizer(const std::filesystem::path& dir);

}  // namespace isoflop
