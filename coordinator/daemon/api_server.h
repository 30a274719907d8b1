// ApiServer: isoflopd's listening sockets and client connections (system.md section 8).
//
// Unix socket (always): STATE/isoflopd.sock, mode 0600 from the moment it exists (bound under a
// umask), and a peer whose uid is neither ours nor root's is dropped. TCP (on request): every
// connection must first send {"type":"hello","token":...} (a worker: {"type":"worker_hello",
// "token":...,...}) with the state directory's token within `hello_timeout`; until then it gets no
// byte back, and anything else closes it. Clients and workers share the sockets: a worker's
// messages are requests like any other, answered by the handler.
//
// Each connection is a sequence of request lines (protocol_codec.h), answered in order. A line that
// does not decode gets an error response and the connection goes on; a line over the size limit
// gets an error and the connection is closed (where the next message starts is unknown). No client
// input can stop the daemon: every failure is logged and confined to its connection.
#pragma once

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "common/status.h"
#include "coordinator/protocol/protocol_codec.h"

namespace isoflop {

class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  // The result of one authenticated request (never a hello; a worker_hello's token has been
  // checked), or the error to send back. A handler may set *after_reply to an action to run once
  // the reply has been written (shutdown).
  virtual Result<nlohmann::json> Handle(const protocol::RequestBody& request,
                                        std::function<void()>* after_reply) = 0;
};

struct ApiServerOptions {
  std::string token;  // what TCP clients must present
  std::chrono::milliseconds hello_timeout{10000};
  int max_connections = 256;  // beyond this, new connections are closed at once
};

class ApiServer {
 public:
  ApiServer(boost::asio::io_context& io, RequestHandler* handler, ApiServerOptions options);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Listens on a Unix socket at `path`, replacing a stale socket file (the caller holds the state
  // directory's lock, so no live daemon owns it).
  Status ListenUnix(const std::string& path);
  // Listens on TCP. Port 0 picks a free port (tcp_port() tells which).
  Status ListenTcp(const std::string& host, uint16_t port);
  uint16_t tcp_port() const;

  // Stops accepting and closes every connection.
  void Close();

  class Connection;  // one client; internal

 private:
  void AcceptUnix();
  void AcceptTcp();
  // Serves an accepted connection, unless max_connections are open already (then closes it).
  void Admit(boost::asio::generic::stream_protocol::socket socket, const std::string& peer,
             bool authenticated);

  boost::asio::io_context& io_;
  RequestHandler* handler_;
  ApiServerOptions options_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> unix_acceptor_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> tcp_acceptor_;
  std::string unix_path_;
  std::set<std::shared_ptr<Connection>> connections_;
  uint64_t next_connection_id_ = 1;
};

}  // namespace isoflop
