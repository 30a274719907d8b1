#include "common/sweep/data_fingerprint.h"

#include <fmt/format.h>
#include <fnmatch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <system_error>

namespace isoflop::sweep {

namespace fs = std::filesystem;

namespace {

std::optional<std::string> ManifestFingerprint(const fs::path& manifest) {
  std::ifstream in(manifest);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("fingerprint") || !j["fingerprint"].is_string() ||
      j["fingerprint"].get<std::string>().empty()) {
    return std::nullopt;
  }
  return j["fingerprint"].get<std::string>();
}

bool IsGlob(const std::string& name) {
  return name.find_first_of("*?[") != std::string::npos;
}

// Total bytes of the shards a path names, or nullopt when it names none.
std::optional<std::uintmax_t> ShardBytes(const fs::path& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return fs::file_size(path, ec);
  const bool directory = fs::is_directory(path, ec);
  const std::string pattern = directory ? "*.bin" : path.filename().string();
  if (!directory && !IsGlob(pattern)) return std::nullopt;
  const fs::path dir = directory ? path : path.parent_path();
  std::uintmax_t total = 0;
  bool any = false;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file(ec)) continue;
    if (fnmatch(pattern.c_str(), entry.path().filename().c_str(), 0) != 0) continue;
    total += entry.file_size(ec);
    any = true;
  }
  if (!any) return std::nullopt;
  return total;
}

}  // namespace

DataFingerprint FingerprintData(const std::string& train, const std::string& val) {
  std::error_code ec;
  const fs::path train_path(train);
  const fs::path dir = fs::is_directory(train_path, ec) ? train_path : train_path.parent_path();
  const fs::path manifest = dir / "manifest.json";
  if (std::optional<std::string> fingerprint = ManifestFingerprint(manifest)) {
    return {*fingerprint, ""};
  }
  const std::optional<std::uintmax_t> train_bytes = ShardBytes(train_path);
  const std::optional<std::uintmax_t> val_bytes = ShardBytes(fs::path(val));
  if (train_bytes && val_bytes) {
    return {fmt::format("size:{}+{}", *train_bytes, *val_bytes),
            fmt::format("data: no usable manifest.json in {}; runs are told apart by the sizes of "
                        "their shards, not their content (`isoflop data prepare` writes one)",
                        dir.string())};
  }
  return {"missing",
          fmt::format("data: {} does not exist yet, so the runs' data fingerprint is \"missing\"; "
                      "their ids will change once it is prepared",
                      train_bytes ? val : train)};
}

}  // namespace isoflop::sweep
