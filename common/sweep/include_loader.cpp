#include "common/sweep/include_loader.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace isoflop::sweep {

namespace fs = std::filesystem;

namespace {

// Includes chain base files, not programs: a deeper chain is a mistake.
constexpr size_t kMaxIncludeDepth = 16;
// A sweep file is a page of YAML; refusing huge files keeps a wrong path (a data shard, say) from
// being parsed as one.
constexpr std::uintmax_t kMaxFileBytes = 16u << 20;

// Identity of a file for cycle detection: the same file reached through different relative paths
// or symlinks is one file.
std::string FileIdentity(const std::string& path) {
  std::error_code ec;
  fs::path canonical = fs::weakly_canonical(fs::absolute(path, ec), ec);
  if (ec) canonical = fs::absolute(path, ec).lexically_normal();
  return canonical.string();
}

class IncludeLoader {
 public:
  IncludeLoader(bool allow_includes, Diagnostics* diagnostics, SweepDocument* document)
      : allow_includes_(allow_includes), diagnostics_(diagnostics), document_(document) {}

  // The merged tree of the file at `path` (whose content is `text`) and everything it includes.
  std::optional<YamlNode> Load(std::string_view text, const std::string& path) {
    auto file = std::make_shared<const SourceFile>(
        SourceFile{path, static_cast<int>(document_->files.size())});
    document_->files.push_back(file);
    std::optional<YamlNode> tree = ParseYaml(text, file, diagnostics_);
    if (!tree || !tree->is_map()) return tree;  // a non-map top level is the schema's to report

    auto include = std::find_if(tree->entries.begin(), tree->entries.end(),
                                [](const YamlNode::Entry& e) { return e.key.text == "include"; });
    if (include == tree->entries.end()) return tree;
    const YamlNode include_value = std::move(include->value);
    tree->entries.erase(include);

    if (!allow_includes_) {
      diagnostics_->Add(include_value.location, "include", "includes are disabled here");
      return std::nullopt;
    }
    std::vector<std::pair<const YamlNode*, std::string>> names;  // node, path for messages
    if (include_value.is_list()) {
      for (size_t i = 0; i < include_value.items.size(); ++i) {
        names.emplace_back(&include_value.items[i], IndexPath("include", i));
      }
    } else {
      names.emplace_back(&include_value, "include");
    }

    chain_.push_back({FileIdentity(path), path});
    bool ok = true;
    YamlNode merged;
    for (const auto& [name, name_path] : names) {
      std::optional<YamlNode> included = LoadInclude(*name, name_path, path);
      if (!included) {
        ok = false;
        continue;
      }
      merged = MergeYaml(std::move(merged), *included);
    }
    chain_.pop_back();
    if (!ok) return std::nullopt;
    return MergeYaml(std::move(merged), *tree);
  }

 private:
  struct ChainLink {
    std::string identity;
    std::string path;
  };

  std::optional<YamlNode> LoadInclude(const YamlNode& name, const std::string& name_path,
                                      const std::string& includer) {
    if (!name.is_scalar() || name.text.empty()) {
      diagnostics_->Add(
          name.location, name_path,
          fmt::format("expected a file name or a list of file names, got {}", Describe(name)));
      return std::nullopt;
    }
    const std::string path =
        (fs::path(includer).parent_path() / fs::path(name.text)).lexically_normal().string();
    const std::string identity = FileIdentity(path);
    for (size_t i = 0; i < chain_.size(); ++i) {
      if (chain_[i].identity != identity) continue;
      std::string cycle;
      for (size_t j = i; j < chain_.size(); ++j) cycle += chain_[j].path + " -> ";
      diagnostics_->Add(name.location, name_path, fmt::format("cycle {}{}", cycle, path));
      return std::nullopt;
    }
    if (chain_.size() >= kMaxIncludeDepth) {
      diagnostics_->Add(name.location, name_path,
                        fmt::format("includes nest deeper than {} files", kMaxIncludeDepth));
      return std::nullopt;
    }
    Result<std::string> text = ReadSweepFile(path);
    if (!text.ok()) {
      diagnostics_->Add(name.location, name_path, text.status().message());
      return std::nullopt;
    }
    document_->source += fmt::format("\n# include: {}\n{}", path, *text);
    return Load(*text, path);
  }

  bool allow_includes_;
  Diagnostics* diagnostics_;
  SweepDocument* document_;
  std::vector<ChainLink> chain_;  // the files being loaded, outermost first
};

}  // namespace

std::optional<SweepDocument> LoadSweepDocument(std::string_view text, const std::string& path,
                                               bool allow_includes, Diagnostics* diagnostics) {
  SweepDocument document;
  document.source = std::string(text);
  if (!document.source.empty() && document.source.back() != '\n') document.source += '\n';
  IncludeLoader loader(allow_includes, diagnostics, &document);
  std::optional<YamlNode> root = loader.Load(text, path);
  if (!root || !diagnostics->empty()) return std::nullopt;
  document.root = std::move(*root);
  return document;
}

Result<std::string> ReadSweepFile(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    return Status::NotFound(fmt::format("cannot read {}: no such file", path));
  }
  if (fs::is_directory(status)) {
    return Status::IOError(fmt::format("cannot read {}: it is a directory", path));
  }
  const std::uintmax_t bytes = fs::file_size(path, ec);
  if (!ec && bytes > kMaxFileBytes) {
    return Status::IOError(
        fmt::format("cannot read {}: {} bytes is too large for a sweep file", path, bytes));
  }
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return Status::IOError(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  }
  std::string text;
  char buffer[1 << 16];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), f)) > 0) text.append(buffer, n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return Status::IOError(fmt::format("cannot read {}: read error", path));
  return text;
}

}  // namespace isoflop::sweep
