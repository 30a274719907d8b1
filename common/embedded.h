// Text files compiled into the binaries by cmake/embed.cmake: the sweep schema, the SQL migrations
// and the Slurm launcher's batch script template.
#pragma once

#include <string_view>

namespace isoflop {
struct EmbeddedFile {
  std::string_view name;  // file name without directory, e.g. "sweep.schema.json", "0001_init.sql"
  std::string_view text;
};
}  // namespace isoflop

namespace isoflop_schemas {
extern const isoflop::EmbeddedFile kFiles[];  // schemas/sweep.schema.json
extern const int kFileCount;
}  // namespace isoflop_schemas

namespace isoflop_migrations {
extern const isoflop::EmbeddedFile kFiles[];  // schemas/migrations/*.sql in version order
extern const int kFileCount;
}  // namespace isoflop_migrations

namespace isoflop_slurm_templates {
extern const isoflop::EmbeddedFile kFiles[];  // cluster/slurm_job.sbatch.in (the slurm launcher)
extern const int kFileCount;
}  // namespace isoflop_slurm_templates
