#include "common/sweep/sweep_loader.h"

#include <optional>

#include "common/sweep/diagnostics.h"
#include "common/sweep/include_loader.h"
#include "common/sweep/schema_validator.h"
#include "common/sweep/sweep_expander.h"

namespace isoflop {

namespace {

Status Failure(const sweep::Diagnostics& diagnostics) {
  Status status = diagnostics.ToStatus();
  return status.ok() ? Status::Internal("sweep loading failed without saying why") : status;
}

}  // namespace

// Stages stop at the first that reports errors: a file that is not valid YAML has no schema errors
// worth reading, and expanding a file that breaks the schema would only repeat its errors per run.
Result<ExpandedSweep> LoadSweepFromString(const std::string& yaml, const std::string& virtual_path,
                                          const SweepLoadOptions& options) {
  Result<sweep::SchemaValidator> schema = sweep::SchemaValidator::ForSweeps();
  if (!schema.ok()) return schema.status();
  sweep::Diagnostics diagnostics(options.max_errors);

  std::optional<sweep::SweepDocument> document =
      sweep::LoadSweepDocument(yaml, virtual_path, options.allow_includes, &diagnostics);
  if (!document) return Failure(diagnostics);

  schema->Validate(document->root, schema->root(), "", &diagnostics);
  if (!diagnostics.empty()) return Failure(diagnostics);

  sweep::ExpandOptions expand;
  expand.base_dir = options.base_dir;
  expand.max_runs = options.max_runs;
  std::optional<ExpandedSweep> sweep =
      sweep::ExpandSweep(document->root, *schema, expand, &diagnostics);
  if (!sweep) return Failure(diagnostics);
  sweep->path = virtual_path;
  sweep->source = std::move(document->source);
  return std::move(*sweep);
}

Result<ExpandedSweep> LoadSweep(const std::string& path, const SweepLoadOptions& options) {
  Result<std::string> text = sweep::ReadSweepFile(path);
  if (!text.ok()) return text.status();
  return LoadSweepFromString(*text, path, options);
}

}  // namespace isoflop
