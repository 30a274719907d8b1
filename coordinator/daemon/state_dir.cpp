#include "coordinator/daemon/state_dir.h"

#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace isoflop {

StateDir StateDir::Resolve(const std::string& flag_value) {
  std::string root = ".isoflop";
  if (!flag_value.empty()) {
    root = flag_value;
  } else if (const char* env = std::getenv("ISOFLOP_STATE_DIR"); env && *env) {
    root = env;
  }
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::absolute(root, ec);
  if (!ec) root = absolute.lexically_normal().string();
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  return {root};
}

Status StateDir::Create() const {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return Status::IOError(root + ": cannot create state directory: " + ec.message());
  fs::permissions(root, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (ec) return Status::IOError(root + ": cannot set permissions: " + ec.message());
  for (const std::string& dir : {runs(), logs()}) {
    fs::create_directories(dir, ec);
    if (ec) return Status::IOError(dir + ": cannot create: " + ec.message());
  }
  return Status::OK();
}

}  // namespace isoflop
