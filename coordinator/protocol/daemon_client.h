// DaemonClient: a blocking connection to isoflopd, for the `isoflop` command line and tests.
//
// One request at a time: Call sends a request line and waits for its response line, up to the
// timeout. Errors the daemon sends back come out as the same Status (code and message); transport
// failures as IOError.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"
#include "coordinator/protocol/protocol_codec.h"

namespace isoflop {

class DaemonClient {
 public:
  // Connects to the daemon's Unix socket. IOError when nothing listens there.
  static Result<DaemonClient> ConnectUnix(const std::string& socket_path,
                                          std::chrono::milliseconds timeout);
  // Connects over TCP and authenticates with `token` (the daemon's STATE/token).
  static Result<DaemonClient> ConnectTcp(const std::string& host, uint16_t port,
                                         const std::string& token,
                                         std::chrono::milliseconds timeout);
  // Connects over TCP without authenticating: the first Call must be a hello or a worker_hello with
  // the token, or the daemon closes the connection without a word. `timeout` bounds the connect
  // too, so an unreachable host costs at most that long.
  static Result<DaemonClient> OpenTcp(const std::string& host, uint16_t port,
                                      std::chrono::milliseconds timeout);

  DaemonClient(DaemonClient&& other) noexcept;
  DaemonClient& operator=(DaemonClient&& other) noexcept;
  DaemonClient(const DaemonClient&) = delete;
  DaemonClient& operator=(const DaemonClient&) = delete;
  ~DaemonClient();

  // Sends one request and returns the daemon's result object.
  Result<nlohmann::json> Call(const protocol::RequestBody& request);

 private:
  DaemonClient(int fd, std::chrono::milliseconds timeout) : fd_(fd), timeout_(timeout) {}
  Status SendLine(const std::string& line);
  Result<std::string> ReadLine();

  int fd_ = -1;
  std::chrono::milliseconds timeout_;
  int64_t next_id_ = 1;
  std::string buffer_;
};

}  // namespace isoflop
