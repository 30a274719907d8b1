// IncludeLoader: a sweep file and the files it includes, merged into one located tree.
//
//   include: base.yaml            # or a list; paths are relative to the including file
// Included files are merged first, in order (a later include overrides an earlier one), and the
// file itself last, so it overrides them all. Maps merge key by key, recursively; lists and scalars
// replace. Every node keeps the file it came from, so an error in base.yaml points into base.yaml.
// Include cycles, missing files and includes where they are disabled (the fuzzer) are errors at the
// `include` entry that caused them.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/sweep/diagnostics.h"
#include "common/sweep/located_yaml.h"

namespace isoflop::sweep {

struct SweepDocument {
  YamlNode root;       // the merged tree, without the `include` keys
  std::string source;  // the file's text, then "# include: F" and the text of each included file
  std::vector<std::shared_ptr<const SourceFile>> files;  // the main file first
};

// `text` is the content of the file at `path`; `path` names it in messages and resolves its
// includes. Errors go to `diagnostics` (nullopt then).
std::optional<SweepDocument> LoadSweepDocument(std::string_view text, const std::string& path,
                                               bool allow_includes, Diagnostics* diagnostics);

// The whole file, or IOError / NotFound naming it and the system's reason.
Result<std::string> ReadSweepFile(const std::string& path);

}  // namespace isoflop::sweep
