// The TCP access token (system.md section 8): 256 random bits, hex, in STATE/token (mode 0600).
//
// A Unix-socket client is trusted by the socket's file mode (and its peer uid). A TCP client proves
// it may talk to the daemon by sending the token in its first message, which whoever can read the
// state directory can do, and nobody else.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace isoflop {

// Reads the token at `path`, creating it (mode 0600, atomically) when there is none.
Result<std::string> LoadOrCreateToken(const std::string& path);
// Reads an existing token. NotFound when there is none.
Result<std::string> ReadToken(const std::string& path);
// Constant-time comparison: how long it takes says nothing about how much of a guess was right.
bool TokenMatches(std::string_view expected, std::string_view presented);

}  // namespace isoflop
