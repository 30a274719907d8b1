#include "coordinator/cli/state_dir.h"

#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace isoflop {

StateDir StateDir::Resolve(const std::string& flag_value) {
  if (!flag_value.empty()) return {flag_value};
  if (const char* env = std::getenv("ISOFLOP_STATE_DIR"); env && *env) return {env};
  return {".isoflop"};
}

Status StateDir::Create() const {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return Status::IOError(root + ": cannot create state directory: " + ec.message());
  fs::permissions(root, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (ec) return Status::IOError(root + ": cannot set permissions: " + ec.message());
  return Status::OK();
}

}  // namespace isoflop
