#include "coordinator/daemon/api_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "coordinator/daemon/access_token.h"

namespace isoflop {

namespace asio = boost::asio;
using nlohmann::json;

class ApiServer::Connection : public std::enable_shared_from_this<ApiServer::Connection> {
 public:
  Connection(ApiServer* server, asio::generic::stream_protocol::socket socket, std::string peer,
             bool authenticated)
      : server_(server),
        socket_(std::move(socket)),
        peer_(std::move(peer)),
        authenticated_(authenticated),
        hello_deadline_(socket_.get_executor()) {}

  void Start() {
    if (!authenticated_) {
      auto self = shared_from_this();
      hello_deadline_.expires_after(server_->options_.hello_timeout);
      hello_deadline_.async_wait([self](const boost::system::error_code& error) {
        if (error) return;
        spdlog::warn("{}: no hello within {} ms; closing", self->peer_,
                     self->server_->options_.hello_timeout.count());
        self->Close();
      });
    }
    Read();
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ignored;
    hello_deadline_.cancel();
    socket_.shutdown(asio::socket_base::shutdown_both, ignored);
    socket_.close(ignored);
    server_->connections_.erase(shared_from_this());
  }

 private:
  void Read() {
    auto self = shared_from_this();
    // One byte over the limit: a line that fills the buffer without its newline is too long.
    asio::async_read_until(socket_, asio::dynamic_buffer(buffer_, protocol::kMaxMessageBytes + 1),
                           '\n', [self](const boost::system::error_code& error, size_t length) {
                             self->OnRead(error, length);
                           });
  }

  void OnRead(const boost::system::error_code& error, size_t length) {
    if (closed_) return;
    if (error == asio::error::not_found) {
      spdlog::warn("{}: message over {} bytes; closing", peer_, protocol::kMaxMessageBytes);
      if (!authenticated_) return Close();
      return Reply(protocol::EncodeError(
                       nullptr, Status::InvalidArgument(fmt::format("message exceeds {} bytes",
                                                                    protocol::kMaxMessageBytes))),
                   /*close_after=*/true);
    }
    if (error) return Close();  // end of file or a reset: the client is gone
    std::string line = buffer_.substr(0, length - 1);
    buffer_.erase(0, length);
    if (!line.empty() && line.back() == '\r') line.pop_back();

    Result<protocol::Request> request = protocol::DecodeRequest(line);
    if (!authenticated_) return Authenticate(request);
    if (!request.ok()) {
      spdlog::warn("{}: rejected a message: {}", peer_, request.status().message());
      return Reply(protocol::EncodeError(nullptr, request.status()));
    }
    Dispatch(*request);
  }

  // Answers one request of an authenticated connection.
  void Dispatch(const protocol::Request& request) {
    if (std::holds_alternative<protocol::Hello>(request.body)) {
      return Reply(protocol::EncodeResult(request.id, {{"authenticated", true}}));
    }
    const auto* worker = std::get_if<protocol::WorkerHello>(&request.body);
    if (worker != nullptr && worker->token &&
        !TokenMatches(server_->options_.token, *worker->token)) {
      // Over the Unix socket the token is not needed, but one that is given must be right.
      spdlog::warn("{}: worker_hello with a wrong token", peer_);
      return Reply(protocol::EncodeError(request.id, Status::PermissionDenied("wrong token")));
    }
    std::function<void()> after_reply;
    Result<json> result = server_->handler_->Handle(request.body, &after_reply);
    if (!result.ok()) {
      spdlog::info("{}: {} failed: {}", peer_, protocol::TypeName(request.body),
                   result.status().message());
    }
    Reply(result.ok() ? protocol::EncodeResult(request.id, *result)
                      : protocol::EncodeError(request.id, result.status()),
          /*close_after=*/false, std::move(after_reply));
  }

  // The first message of a TCP connection: a hello, or a worker_hello with the token.
  void Authenticate(const Result<protocol::Request>& request) {
    const std::string* token = nullptr;
    if (request.ok()) {
      if (const auto* hello = std::get_if<protocol::Hello>(&request->body)) {
        token = &hello->token;
      } else if (const auto* worker = std::get_if<protocol::WorkerHello>(&request->body)) {
        token = worker->token ? &*worker->token : nullptr;
      }
    }
    if (token == nullptr || !TokenMatches(server_->options_.token, *token)) {
      // Nothing is sent back: an unauthenticated client learns nothing, not even why.
      spdlog::warn("{}: unauthenticated ({}); closing", peer_,
                   !request.ok()      ? request.status().message()
                   : token == nullptr ? std::string("first message is not a hello with a token")
                                      : std::string("wrong token"));
      return Close();
    }
    authenticated_ = true;
    hello_deadline_.cancel();
    spdlog::info("{}: authenticated", peer_);
    Dispatch(*request);
  }

  void Reply(std::string message, bool close_after = false,
             std::function<void()> after_reply = nullptr) {
    outgoing_ = std::move(message);
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(outgoing_),
                      [self, close_after, after_reply = std::move(after_reply)](
                          const boost::system::error_code& error, size_t) {
                        if (after_reply) after_reply();
                        if (error || close_after) return self->Close();
                        self->Read();
                      });
  }

  ApiServer* server_;
  asio::generic::stream_protocol::socket socket_;
  std::string peer_;
  bool authenticated_;
  asio::steady_timer hello_deadline_;
  std::string buffer_;
  std::string outgoing_;
  bool closed_ = false;
};

ApiServer::ApiServer(asio::io_context& io, RequestHandler* handler, ApiServerOptions options)
    : io_(io), handler_(handler), options_(std::move(options)) {}

ApiServer::~ApiServer() {
  Close();
}

Status ApiServer::ListenUnix(const std::string& path) {
  using Protocol = asio::local::stream_protocol;
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return Status::InvalidArgument(
        fmt::format("{}: socket path longer than {} bytes; use a shorter --state-dir", path,
                    sizeof(sockaddr_un::sun_path) - 1));
  }
  ::unlink(path.c_str());
  auto acceptor = std::make_unique<Protocol::acceptor>(io_);
  boost::system::error_code error;
  acceptor->open(Protocol(), error);
  if (!error) {
    // Created 0600: there is no moment at which another user could connect.
    const mode_t old_mask = ::umask(0177);
    acceptor->bind(Protocol::endpoint(path), error);
    ::umask(old_mask);
  }
  if (!error) ::chmod(path.c_str(), 0600);
  if (!error) acceptor->listen(asio::socket_base::max_listen_connections, error);
  if (error) return Status::IOError(fmt::format("{}: cannot listen: {}", path, error.message()));
  unix_acceptor_ = std::move(acceptor);
  unix_path_ = path;
  AcceptUnix();
  return Status::OK();
}

Status ApiServer::ListenTcp(const std::string& host, uint16_t port) {
  using asio::ip::tcp;
  boost::system::error_code error;
  const asio::ip::address address = asio::ip::make_address(host, error);
  if (error)
    return Status::InvalidArgument(fmt::format("--listen: '{}' is not an IP address", host));
  auto acceptor = std::make_unique<tcp::acceptor>(io_);
  const tcp::endpoint endpoint(address, port);
  acceptor->open(endpoint.protocol(), error);
  if (!error) acceptor->set_option(asio::socket_base::reuse_address(true), error);
  if (!error) acceptor->bind(endpoint, error);
  if (!error) acceptor->listen(asio::socket_base::max_listen_connections, error);
  if (error) {
    return Status::IOError(fmt::format("cannot listen on {}:{}: {}", host, port, error.message()));
  }
  tcp_acceptor_ = std::move(acceptor);
  AcceptTcp();
  return Status::OK();
}

uint16_t ApiServer::tcp_port() const {
  boost::system::error_code error;
  return tcp_acceptor_ ? tcp_acceptor_->local_endpoint(error).port() : 0;
}

void ApiServer::AcceptUnix() {
  unix_acceptor_->async_accept([this](const boost::system::error_code& error,
                                      asio::local::stream_protocol::socket socket) {
    if (error == asio::error::operation_aborted || !unix_acceptor_) return;
    if (!error) {
      const std::string peer = fmt::format("unix client #{}", next_connection_id_++);
      ucred credentials{};
      socklen_t size = sizeof(credentials);
      const bool known =
          ::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &credentials, &size) == 0;
      if (!known || (credentials.uid != ::geteuid() && credentials.uid != 0)) {
        // The socket's mode already keeps other users out; this holds even if someone loosened it.
        spdlog::warn("{}: uid {} may not use this daemon; closing", peer,
                     known ? static_cast<int64_t>(credentials.uid) : -1);
      } else {
        // Over the Unix socket the peer's uid is the credential: no token needed.
        Admit(asio::generic::stream_protocol::socket(std::move(socket)), peer,
              /*authenticated=*/true);
      }
    } else {
      spdlog::warn("accepting on {}: {}", unix_path_, error.message());
    }
    AcceptUnix();
  });
}

void ApiServer::Admit(asio::generic::stream_protocol::socket socket, const std::string& peer,
                      bool authenticated) {
  if (static_cast<int>(connections_.size()) >= options_.max_connections) {
    spdlog::warn("{}: {} connections already open; closing", peer, connections_.size());
    return;  // the socket closes as it goes out of scope
  }
  auto connection = std::make_shared<Connection>(this, std::move(socket), peer, authenticated);
  connections_.insert(connection);
  connection->Start();
}

void ApiServer::AcceptTcp() {
  tcp_acceptor_->async_accept(
      [this](const boost::system::error_code& error, asio::ip::tcp::socket socket) {
        if (error == asio::error::operation_aborted || !tcp_acceptor_) return;
        if (!error) {
          boost::system::error_code ignored;
          const auto remote = socket.remote_endpoint(ignored);
          const std::string peer = fmt::format("tcp client #{} {}:{}", next_connection_id_++,
                                               remote.address().to_string(), remote.port());
          // A TCP client proves itself with the token in its first message.
          Admit(asio::generic::stream_protocol::socket(std::move(socket)), peer,
                /*authenticated=*/false);
        } else {
          spdlog::warn("accepting on TCP: {}", error.message());
        }
        AcceptTcp();
      });
}

void ApiServer::Close() {
  boost::system::error_code ignored;
  if (unix_acceptor_) {
    unix_acceptor_->close(ignored);
    unix_acceptor_.reset();
    ::unlink(unix_path_.c_str());
  }
  if (tcp_acceptor_) {
    tcp_acceptor_->close(ignored);
    tcp_acceptor_.reset();
  }
  // Close() removes each connection from the set.
  while (!connections_.empty()) (*connections_.begin())->Close();
}

}  // namespace isoflop
