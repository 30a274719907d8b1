#include "coordinator/daemon/access_token.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace isoflop {
namespace {

constexpr int kTokenBytes = 32;

std::string Hex(const unsigned char* bytes, int count) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (int i = 0; i < count; ++i) {
    hex += kDigits[bytes[i] >> 4];
    hex += kDigits[bytes[i] & 0xf];
  }
  return hex;
}

}  // namespace

Result<std::string> ReadToken(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound(fmt::format("{}: no token", path));
  std::string token;
  std::getline(in, token);
  if (token.size() != 2 * kTokenBytes ||
      token.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return Status::Corruption(fmt::format("{}: not an isoflop token", path));
  }
  return token;
}

Result<std::string> LoadOrCreateToken(const std::string& path) {
  Result<std::string> existing = ReadToken(path);
  if (existing.status().code() != Status::Code::kNotFound) {
    if (existing.ok()) ::chmod(path.c_str(), 0600);  // in case someone loosened it
    return existing;
  }
  unsigned char bytes[kTokenBytes];
  if (RAND_bytes(bytes, kTokenBytes) != 1) {
    return Status::Internal("cannot draw random bytes for the access token");
  }
  const std::string token = Hex(bytes, kTokenBytes);
  const std::string temporary = fmt::format("{}.{}.tmp", path, ::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IOError(fmt::format("{}: {}", temporary, std::strerror(errno)));
  const std::string line = token + "\n";
  const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                       ::fsync(fd) == 0;
  ::close(fd);
  if (!written || ::rename(temporary.c_str(), path.c_str()) != 0) {
    ::unlink(temporary.c_str());
    return Status::IOError(fmt::format("{}: cannot write the token", path));
  }
  return token;
}

bool TokenMatches(std::string_view expected, std::string_view presented) {
  // The length is no secret (always 64); only equal lengths reach the constant-time compare.
  if (expected.size() != presented.size() || expected.empty()) return false;
  return CRYPTO_memcmp(expected.data(), presented.data(), expected.size()) == 0;
}

}  // namespace isoflop
