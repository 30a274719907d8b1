#include "common/data/data_prepare.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/data/token_shard.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kManifestName = "manifest.json";
constexpr std::string_view kManifestFormat = "isoflop.data/1";

// Files, then each directory's *.txt files (recursively, sorted), in the order given.
Result<std::vector<std::string>> ExpandInputs(std::span<const std::string> inputs) {
  std::vector<std::string> files;
  for (const std::string& input : inputs) {
    std::error_code error;
    if (fs::is_regular_file(input, error)) {
      files.push_back(input);
    } else if (fs::is_directory(input, error)) {
      std::vector<std::string> found;
      for (fs::recursive_directory_iterator it(input, error), end; !error && it != end;
           it.increment(error)) {
        if (it->is_regular_file() && it->path().extension() == ".txt") {
          found.push_back(it->path().string());
        }
      }
      if (error) {
        return Status::IOError(
            fmt::format("{}: cannot list directory: {}", input, error.message()));
      }
      if (found.empty()) {
        return Status::InvalidArgument(fmt::format("{}: no .txt files in this directory", input));
      }
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      return Status::NotFound(fmt::format("{}: no such file or directory", input));
    }
  }
  if (files.empty()) return Status::InvalidArgument("no input files given");
  return files;
}

// One of the two token streams ("train" or "val"): starts a new shard every shard_tokens tokens.
class ShardSequence {
 public:
  ShardSequence(fs::path dir, std::string prefix, std::int64_t shard_tokens)
      : dir_(std::move(dir)), prefix_(std::move(prefix)), shard_tokens_(shard_tokens) {}

  Status Append(std::span<const TokenId> tokens) {
    while (!tokens.empty()) {
      if (!writer_) {
        std::string path = (dir_ / fmt::format("{}_{:06d}.bin", prefix_, paths_.size())).string();
        Result<TokenShardWriter> writer = TokenShardWriter::Create(path);
        if (!writer.ok()) return writer.status();
        writer_.emplace(std::move(writer).value());
        paths_.push_back(path);
      }
      auto room = static_cast<std::size_t>(shard_tokens_ - writer_->size());
      std::size_t n = std::min(room, tokens.size());
      ISOFLOP_RETURN_IF_ERROR(writer_->Append(tokens.first(n)));
      tokens = tokens.subspan(n);
      total_ += static_cast<std::int64_t>(n);
      if (writer_->size() == shard_tokens_) ISOFLOP_RETURN_IF_ERROR(FinishShard());
    }
    return Status::OK();
  }

  Status Finish() { return writer_ ? FinishShard() : Status::OK(); }

  // After a failure: removes the shards finished so far (an unfinished one removes itself), so a
  // failed run leaves nothing a later run would mistake for data.
  void Discard() {
    writer_.reset();
    std::error_code ignored;
    for (const std::string& path : paths_) fs::remove(path, ignored);
    paths_.clear();
    total_ = 0;
  }

  const std::vector<std::string>& paths() const { return paths_; }
  std::int64_t total() const { return total_; }

 private:
  Status FinishShard() {
    Status status = writer_->Finish();
    writer_.reset();
    return status;
  }

  fs::path dir_;
  std::string prefix_;
  std::int64_t shard_tokens_;
  std::optional<TokenShardWriter> writer_;  // the shard being filled; none between shards
  std::vector<std::string> paths_;
  std::int64_t total_ = 0;
};

// Reads, tokenizes and appends the documents of one run of PrepareData, reporting progress.
class DocumentEncoder {
 public:
  DocumentEncoder(Tokenizer& tokenizer, const PrepareOptions& options, std::int64_t bytes_total)
      : tokenizer_(tokenizer), options_(options), bytes_total_(bytes_total) {}

  // Encodes bytes [begin, end) of `file` as one document (EOT first) into `out`; returns its
  // tokens.
  Result<std::int64_t> EncodeDocument(std::ifstream& file, const std::string& path,
                                      std::int64_t begin, std::int64_t end, ShardSequence& out) {
    if (begin == end) return std::int64_t{0};
    file.clear();
    file.seekg(begin);
    const TokenId eot = tokenizer_.eot_token();
    ISOFLOP_RETURN_IF_ERROR(out.Append(std::span<const TokenId>(&eot, 1)));
    std::int64_t tokens = 1;
    tokens_written_ += 1;
    std::string pending;  // read but not yet encoded: everything after the last split point
    for (std::int64_t left = end - begin; left > 0;) {
      std::size_t old_size = pending.size();
      auto want = static_cast<std::size_t>(std::min<std::int64_t>(left, options_.read_bytes));
      pending.resize(old_size + want);
      if (!file.read(pending.data() + old_size, static_cast<std::streamsize>(want))) {
        return Status::IOError(fmt::format("{}: read failed at byte {}", path, end - left));
      }
      left -= static_cast<std::int64_t>(want);
      bytes_done_ += static_cast<std::int64_t>(want);

      // The bytes kept from last time hold no split point (the last one was used), so only the new
      // bytes and the one before them need searching.
      std::size_t cut = pending.size();
      if (left > 0) {
        std::size_t from = old_size == 0 ? 0 : old_size - 1;
        std::size_t p = LastSplitPoint(std::string_view(pending).substr(from));
        cut = p == 0 ? 0 : from + p;
      }
      if (cut > 0) {
        ids_.clear();
        tokenizer_.Encode(std::string_view(pending).substr(0, cut), SpecialTokens::kAsText, &ids_);
        ISOFLOP_RETURN_IF_ERROR(out.Append(ids_));
        tokens += static_cast<std::int64_t>(ids_.size());
        tokens_written_ += static_cast<std::int64_t>(ids_.size());
        pending.erase(0, cut);
      }
      if (options_.progress) {
        options_.progress({path, bytes_done_, bytes_total_, tokens_written_});
      }
    }
    return tokens;
  }

 private:
  Tokenizer& tokenizer_;
  const PrepareOptions& options_;
  const std::int64_t bytes_total_;
  std::int64_t bytes_done_ = 0;
  std::int64_t tokens_written_ = 0;
  std::vector<TokenId> ids_;
};

// Where a document's validation part starts: the first line start at or after the last val_fraction
// of its bytes; failing that, the start of its last line; failing that (one line), the first UTF-8
// character boundary at or after that point. Returns size when nothing is held out.
Result<std::int64_t> ValidationStart(std::ifstream& file, const std::string& path,
                                     std::int64_t size, double val_fraction) {
  if (val_fraction <= 0 || size == 0) return size;
  auto held_out = static_cast<std::int64_t>(std::ceil(static_cast<double>(size) * val_fraction));
  const std::int64_t target = size - std::min(held_out, size);
  std::string text;  // bytes around the split, read again
  auto read_range = [&](std::int64_t from, std::int64_t to) -> Status {
    text.resize(static_cast<std::size_t>(to - from));
    file.clear();
    file.seekg(from);
    if (!file.read(text.data(), static_cast<std::streamsize>(text.size()))) {
      return Status::IOError(fmt::format("{}: read failed at byte {}", path, from));
    }
    return Status::OK();
  };
  constexpr std::int64_t kBlock = 1 << 16;
  // Forward: a '\n' at index i >= target - 1 makes i + 1 a line start; it must leave a non-empty
  // tail.
  for (std::int64_t from = std::max<std::int64_t>(target - 1, 0); from < size - 1; from += kBlock) {
    std::int64_t to = std::min(from + kBlock, size - 1);
    ISOFLOP_RETURN_IF_ERROR(read_range(from, to));
    if (std::size_t i = text.find('\n'); i != std::string::npos) return from + std::int64_t(i) + 1;
  }
  // Backward: the start of the last line.
  for (std::int64_t to = std::max<std::int64_t>(target - 1, 0); to > 0; to -= kBlock) {
    std::int64_t from = std::max<std::int64_t>(to - kBlock, 0);
    ISOFLOP_RETURN_IF_ERROR(read_range(from, to));
    if (std::size_t i = text.rfind('\n'); i != std::string::npos) return from + std::int64_t(i) + 1;
  }
  // One line: cut at a character boundary (UTF-8 continuation bytes are 10xxxxxx).
  std::int64_t start = target;
  ISOFLOP_RETURN_IF_ERROR(read_range(target, std::min(size, target + 4)));
  for (char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) break;
    ++start;
  }
  return start;
}

// Every document, in order: its training part into `train`, its validation part into `val`.
Status EncodeDocuments(DocumentEncoder& encoder, double val_fraction,
                       std::vector<PreparedDocument>& documents, ShardSequence& train,
                       ShardSequence& val) {
  for (PreparedDocument& doc : documents) {
    std::ifstream file(doc.path, std::ios::binary);
    if (!file) return Status::IOError(fmt::format("{}: cannot open", doc.path));
    Result<std::int64_t> val_start = ValidationStart(file, doc.path, doc.bytes, val_fraction);
    if (!val_start.ok()) return val_start.status();
    Result<std::int64_t> train_tokens =
        encoder.EncodeDocument(file, doc.path, 0, *val_start, train);
    if (!train_tokens.ok()) return train_tokens.status();
    Result<std::int64_t> val_tokens =
        encoder.EncodeDocument(file, doc.path, *val_start, doc.bytes, val);
    if (!val_tokens.ok()) return val_tokens.status();
    doc.train_tokens = *train_tokens;
    doc.val_tokens = *val_tokens;
  }
  ISOFLOP_RETURN_IF_ERROR(train.Finish());
  return val.Finish();
}

// Writes `contents` to `path` whole or not at all, synced before and after the rename as
// TokenShardWriter does for shards: the manifest is the mark of a complete data set.
Status WriteFileAtomically(const fs::path& path, const std::string& contents) {
  const std::string temp = path.string() + fmt::format(".tmp.{}", ::getpid());
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Status::IOError(fmt::format("{}: cannot create: {}", temp, std::strerror(errno)));
  }
  std::string_view rest = contents;
  while (!rest.empty()) {
    ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  auto failed = [&](std::string_view what) {
    return Status::IOError(fmt::format("{}: {}: {}", temp, what, std::strerror(errno)));
  };
  Status status;
  if (!rest.empty()) status = failed("write failed");
  if (status.ok() && ::fsync(fd) != 0) status = failed("fsync failed");
  if (::close(fd) != 0 && status.ok()) status = failed("close failed");
  if (status.ok() && ::rename(temp.c_str(), path.c_str()) != 0) status = failed("rename failed");
  if (!status.ok()) {
    ::unlink(temp.c_str());
    return status;
  }
  // Best effort: the manifest is complete either way; this only makes its new name durable sooner.
  int dir = ::open(path.parent_path().empty() ? "." : path.parent_path().c_str(),
                   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return Status::OK();
}

nlohmann::json ShardNames(const std::vector<std::string>& paths) {
  nlohmann::json names = nlohmann::json::array();
  for (const std::string& path : paths) names.push_back(fs::path(path).filename().string());
  return names;
}

std::string ManifestJson(const PreparedData& data, std::int64_t shard_tokens) {
  nlohmann::json documents = nlohmann::json::array();
  for (const PreparedDocument& doc : data.documents) {
    documents.push_back({{"path", doc.path},
                         {"bytes", doc.bytes},
                         {"train_tokens", doc.train_tokens},
                         {"val_tokens", doc.val_tokens}});
  }
  nlohmann::json manifest = {
      {"format", kManifestFormat},
      {"tokenizer", data.tokenizer},
      {"vocab_size", data.vocab_size},
      {"eot_token", data.eot_token},
      {"val_fraction", data.val_fraction},
      {"shard_tokens", shard_tokens},
      {"train", {{"tokens", data.train_tokens}, {"shards", ShardNames(data.train_shards)}}},
      {"val", {{"tokens", data.val_tokens}, {"shards", ShardNames(data.val_shards)}}},
      {"fingerprint", data.fingerprint},
      {"documents", documents},
  };
  return manifest.dump(2) + "\n";
}

}  // namespace

Result<PreparedData> PrepareData(std::span<const std::string> inputs, const std::string& out_dir,
                                 Tokenizer& tokenizer, const PrepareOptions& options) {
  if (!(options.val_fraction >= 0 && options.val_fraction < 1)) {
    return Status::InvalidArgument(
        fmt::format("val_fraction {} is not in [0, 1)", options.val_fraction));
  }
  if (options.shard_tokens <= 0 || options.shard_tokens > kMaxShardTokens) {
    return Status::InvalidArgument(
        fmt::format("shard_tokens {} is not in [1, {}]", options.shard_tokens, kMaxShardTokens));
  }
  if (options.read_bytes == 0) return Status::InvalidArgument("read_bytes must be positive");
  if (tokenizer.vocab_size() > kMaxShardTokenId + 1) {
    return Status::InvalidArgument(
        fmt::format("tokenizer '{}' has {} tokens; shards store uint16 ids", tokenizer.name(),
                    tokenizer.vocab_size()));
  }
  Result<std::vector<std::string>> files = ExpandInputs(inputs);
  if (!files.ok()) return files.status();

  std::error_code error;
  fs::create_directories(out_dir, error);
  if (error) {
    return Status::IOError(
        fmt::format("{}: cannot create directory: {}", out_dir, error.message()));
  }
  for (const fs::directory_entry& entry : fs::directory_iterator(out_dir, error)) {
    std::string name = entry.path().filename().string();
    bool is_shard = entry.path().extension() == ".bin" &&
                    (name.starts_with("train_") || name.starts_with("val_"));
    if (is_shard || name == kManifestName) {
      return Status::FailedPrecondition(
          fmt::format("{}: already holds prepared data ({}); remove it or choose another directory",
                      out_dir, name));
    }
  }

  PreparedData data;
  data.tokenizer = std::string(tokenizer.name());
  data.vocab_size = tokenizer.vocab_size();
  data.eot_token = tokenizer.eot_token();
  data.val_fraction = options.val_fraction;
  std::int64_t bytes_total = 0;
  for (const std::string& path : *files) {
    auto bytes = static_cast<std::int64_t>(fs::file_size(path, error));
    if (error) return Status::IOError(fmt::format("{}: cannot stat: {}", path, error.message()));
    data.documents.push_back({path, bytes, 0, 0});
    bytes_total += bytes;
  }

  ShardSequence train(out_dir, "train", options.shard_tokens);
  ShardSequence val(out_dir, "val", options.shard_tokens);
  DocumentEncoder encoder(tokenizer, options, bytes_total);
  Status status = EncodeDocuments(encoder, options.val_fraction, data.documents, train, val);
  if (!status.ok()) {
    train.Discard();
    val.Discard();
    return status;
  }

  data.train_shards = train.paths();
  data.val_shards = val.paths();
  data.train_tokens = train.total();
  data.val_tokens = val.total();
  std::vector<std::string> all_shards = data.train_shards;
  all_shards.insert(all_shards.end(), data.val_shards.begin(), data.val_shards.end());
  Result<std::string> fingerprint = FingerprintShards(all_shards);
  if (!fingerprint.ok()) return fingerprint.status();
  data.fingerprint = *fingerprint;
  ISOFLOP_RETURN_IF_ERROR(WriteFileAtomically(fs::path(out_dir) / kManifestName,
                                              ManifestJson(data, options.shard_tokens)));
  return data;
}

Result<PreparedData> ReadDataManifest(const std::string& out_dir) {
  const fs::path path = fs::path(out_dir) / kManifestName;
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(fmt::format("{}: no data manifest", path.string()));
  nlohmann::json manifest = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (manifest.is_discarded()) {
    return Status::Corruption(fmt::format("{}: not valid JSON", path.string()));
  }
  // A manifest is written by PrepareData only; a field of the wrong type means the file was edited
  // or damaged, and nlohmann's message names the field.
  try {
    if (!manifest.is_object() || manifest.value("format", "") != kManifestFormat) {
      return Status::Corruption(fmt::format("{}: not a data manifest (expected \"format\": \"{}\")",
                                            path.string(), kManifestFormat));
    }
    PreparedData data;
    data.tokenizer = manifest.at("tokenizer").get<std::string>();
    data.vocab_size = manifest.at("vocab_size").get<int>();
    data.eot_token = manifest.at("eot_token").get<TokenId>();
    data.val_fraction = manifest.at("val_fraction").get<double>();
    data.train_tokens = manifest.at("train").at("tokens").get<std::int64_t>();
    data.val_tokens = manifest.at("val").at("tokens").get<std::int64_t>();
    for (const auto& name : manifest.at("train").at("shards")) {
      data.train_shards.push_back((fs::path(out_dir) / name.get<std::string>()).string());
    }
    for (const auto& name : manifest.at("val").at("shards")) {
      data.val_shards.push_back((fs::path(out_dir) / name.get<std::string>()).string());
    }
    data.fingerprint = manifest.at("fingerprint").get<std::string>();
    for (const auto& doc : manifest.at("documents")) {
      data.documents.push_back(
          {doc.at("path").get<std::string>(), doc.at("bytes").get<std::int64_t>(),
           doc.at("train_tokens").get<std::int64_t>(), doc.at("val_tokens").get<std::int64_t>()});
    }
    return data;
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(fmt::format("{}: {}", path.string(), e.what()));
  }
}

Result<std::string> FingerprintShards(std::span<const std::string> shard_paths) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> sha(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!sha || EVP_DigestInit_ex(sha.get(), EVP_sha256(), nullptr) != 1) {
    return Status::Internal("OpenSSL: cannot start SHA-256");
  }
  std::vector<char> block(std::size_t{1} << 20);
  for (const std::string& path : shard_paths) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::IOError(fmt::format("{}: cannot open to fingerprint", path));
    while (in) {
      in.read(block.data(), static_cast<std::streamsize>(block.size()));
      if (in.bad()) return Status::IOError(fmt::format("{}: read failed", path));
      EVP_DigestUpdate(sha.get(), block.data(), static_cast<std::size_t>(in.gcount()));
    }
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length = 0;
  EVP_DigestFinal_ex(sha.get(), digest, &digest_length);
  std::string hex = "sha256:";
  for (unsigned int i = 0; i < digest_length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

}  // namespace isoflop
