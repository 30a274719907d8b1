#include "coordinator/protocol/daemon_client.h"

#include <fmt/format.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace isoflop {
namespace {

Status Errno(const std::string& what) {
  return Status::IOError(fmt::format("{}: {}", what, std::strerror(errno)));
}

// Waits until fd is ready for `events` or the deadline passes.
Status Wait(int fd, short events, std::chrono::steady_clock::time_point deadline,
            const char* what) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Status::IOError(fmt::format("isoflopd did not {} in time", what));
    pollfd entry{fd, events, 0};
    const int ready = ::poll(&entry, 1, static_cast<int>(left.count()));
    if (ready > 0) return Status::OK();
    if (ready < 0 && errno != EINTR) return Errno("poll");
  }
}

}  // namespace

Result<DaemonClient> DaemonClient::ConnectUnix(const std::string& socket_path,
                                               std::chrono::milliseconds timeout) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(address.sun_path)) {
    return Status::InvalidArgument(fmt::format("{}: socket path too long", socket_path));
  }
  std::memcpy(address.sun_path, socket_path.data(), socket_path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    Status status = Errno(fmt::format("cannot connect to isoflopd at {}", socket_path));
    ::close(fd);
    return status;
  }
  return DaemonClient(fd, timeout);
}

Result<DaemonClient> DaemonClient::ConnectTcp(const std::string& host, uint16_t port,
                                              const std::string& token,
                                              std::chrono::milliseconds timeout) {
  Result<DaemonClient> client = OpenTcp(host, port, timeout);
  if (!client.ok()) return client.status();
  Result<nlohmann::json> hello = client->Call(protocol::Hello{token});
  if (!hello.ok()) return hello.status();
  return client;
}

Result<DaemonClient> DaemonClient::OpenTcp(const std::string& host, uint16_t port,
                                           std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addresses = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &addresses); rc != 0) {
    return Status::IOError(fmt::format("{}: {}", host, ::gai_strerror(rc)));
  }
  int fd = -1;
  Status failure = Status::IOError(fmt::format("cannot connect to isoflopd at {}:{}", host, port));
  for (addrinfo* a = addresses; a != nullptr && fd < 0; a = a->ai_next) {
    // Non-blocking, so that the connect waits no longer than the deadline (a host that drops
    // packets would otherwise hold it for minutes); the calls below poll before each read and
    // write.
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    Status connected = Status::OK();
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      connected = errno == EINPROGRESS
                      ? Wait(fd, POLLOUT, deadline, "accept the connection")
                      : Errno(fmt::format("cannot connect to isoflopd at {}:{}", host, port));
      int error = 0;
      socklen_t size = sizeof(error);
      if (connected.ok() && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) == 0 &&
          error != 0) {
        errno = error;
        connected = Errno(fmt::format("cannot connect to isoflopd at {}:{}", host, port));
      }
    }
    if (!connected.ok()) {
      failure = connected;
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(addresses);
  if (fd < 0) return failure;
  return DaemonClient(fd, timeout);
}

DaemonClient::DaemonClient(DaemonClient&& other) noexcept
    : fd_(other.fd_),
      timeout_(other.timeout_),
      next_id_(other.next_id_),
      buffer_(std::move(other.buffer_)) {
  other.fd_ = -1;
}

DaemonClient& DaemonClient::operator=(DaemonClient&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    timeout_ = other.timeout_;
    next_id_ = other.next_id_;
    buffer_ = std::move(other.buffer_);
    other.fd_ = -1;
  }
  return *this;
}

DaemonClient::~DaemonClient() {
  if (fd_ >= 0) ::close(fd_);
}

Status DaemonClient::SendLine(const std::string& line) {
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  size_t sent = 0;
  while (sent < line.size()) {
    ISOFLOP_RETURN_IF_ERROR(Wait(fd_, POLLOUT, deadline, "accept the request"));
    const ssize_t n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Errno("sending to isoflopd");
    }
    sent += static_cast<size_t>(n);
  }
  return Status::OK();
}

Result<std::string> DaemonClient::ReadLine() {
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  for (;;) {
    const size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    if (buffer_.size() > protocol::kMaxMessageBytes) {
      return Status::IOError("isoflopd sent a message over the size limit");
    }
    ISOFLOP_RETURN_IF_ERROR(Wait(fd_, POLLIN, deadline, "answer"));
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n == 0) return Status::IOError("isoflopd closed the connection");
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Errno("reading from isoflopd");
    }
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

Result<nlohmann::json> DaemonClient::Call(const protocol::RequestBody& request) {
  if (fd_ < 0) return Status::FailedPrecondition("not connected to isoflopd");
  const nlohmann::json id = next_id_++;
  ISOFLOP_RETURN_IF_ERROR(SendLine(protocol::EncodeRequest({id, request})));
  Result<std::string> line = ReadLine();
  if (!line.ok()) return line.status();
  return protocol::DecodeResponse(*line, id);
}

}  // namespace isoflop
