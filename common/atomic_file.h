// WriteFileAtomically: a file that is either absent, its old self, or whole.
//
// The text goes to PATH.tmp.<pid>, is fsync'ed, and is renamed over PATH (then the directory is
// synced): a reader (a worker reading its run.json, a user's script reading a plan) never sees half
// a file, and a full disk or a crash leaves the previous version in place.
#pragma once

#include <string>

#include "common/status.h"

namespace isoflop {

// IOError naming the file when the temporary cannot be written or renamed; the temporary is
// removed then.
Status WriteFileAtomically(const std::string& path, const std::string& text);

}  // namespace isoflop
