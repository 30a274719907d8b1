// The wire protocol between isoflopd and its clients (system.md section 8): newline-delimited JSON,
// one message per line, each an object with a protocol version, a type and a request id. The
// `isoflop` command line and rank 0 of every worker (daemon_reporter.h) speak it.
//
//   request:  {"v":1,"type":"submit","id":7,"path":"/home/me/sweeps/smoke.yaml"}
//   response: {"v":1,"type":"ok","id":7,"result":{...}}
//             {"v":1,"type":"error","id":7,"error":{"code":"NotFound","message":"..."}}
//
// Requests (fields beyond v, type and id; every field is required unless marked optional, and no
// other is accepted):
//   hello        {token}    authenticates a TCP connection; it must be the first message there
//   ping         {}         -> {version, pid, slots, active}
//   submit       {path}     the daemon loads the sweep file and stores it -> {sweep_id, runs_added,
//                           ...}
//   cancel       {target}   a run id (prefix) or a sweep name or number -> {cancelled: [run ids]}
//   resume       {sweep}    re-queues the sweep's failed, lost and cancelled runs -> {requeued:
//   [...]} shutdown     {}         the daemon stops; running workers keep running and are adopted
//   next time
// From workers (run_id: the run's full 64-digit id; attempt >= 1):
//   worker_hello {token (optional), run_id, attempt, rank}   a worker introduces itself; with the
//                           token it authenticates a TCP connection as hello does (over the Unix
//                           socket the peer's uid already has). An error reply means the daemon
//                           does not follow this attempt (any more): the worker stops reporting.
//   heartbeat    {run_id, attempt, step}   the worker is alive; step: its last reported step
//   record       {run_id, attempt, record}   one metrics.jsonl record (an object with a string
//                           "type"), stored as if read from the run's file: once, whichever way
//                           arrives first
//
// Decoding is strict and total: any byte string yields a Request or an InvalidArgument naming what
// is wrong, never an exception or a crash (tests/fuzz/protocol_fuzzer.cpp). A line longer than
// kMaxMessageBytes is refused before it is parsed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/status.h"

namespace isoflop::protocol {

inline constexpr int kVersion = 1;
// Large enough for any request or a status reply of thousands of runs; small enough that a client
// streaming garbage cannot make the daemon buffer without bound.
inline constexpr std::size_t kMaxMessageBytes = 1 << 20;

struct Hello {
  std::string token;
};
struct Ping {};
struct Submit {
  std::string path;  // absolute: the daemon's working directory is not the client's
};
struct Cancel {
  std::string target;
};
struct Resume {
  std::string sweep;
};
struct Shutdown {};
struct WorkerHello {
  std::optional<std::string> token;  // required over TCP
  std::string run_id;
  int64_t attempt = 0;
  int64_t rank = 0;
};
struct Heartbeat {
  std::string run_id;
  int64_t attempt = 0;
  int64_t step = 0;
};
struct Record {
  std::string run_id;
  int64_t attempt = 0;
  nlohmann::json record;  // an object with a non-empty string "type"
};

using RequestBody =
    std::variant<Hello, Ping, Submit, Cancel, Resume, Shutdown, WorkerHello, Heartbeat, Record>;

struct Request {
  nlohmann::json id;  // echoed in the response: null, a number or a string
  RequestBody body;
};

// The type name of a request body: "hello", "ping", ..., "worker_hello", "heartbeat", "record".
const char* TypeName(const RequestBody& body);

// One line (without its newline) -> a request. InvalidArgument for anything that is not a request
// of this protocol version: not JSON, not an object, a missing or unknown type, a wrong field type,
// an unknown field, a line over kMaxMessageBytes.
Result<Request> DecodeRequest(std::string_view line);
// The request as one line ending in '\n'.
std::string EncodeRequest(const Request& request);

// Responses, as one line ending in '\n'. `result` is an object.
std::string EncodeResult(const nlohmann::json& id, const nlohmann::json& result);
std::string EncodeError(const nlohmann::json& id, const Status& status);
// A response line -> its result, or the Status the daemon sent (same code and message).
// InvalidArgument when the line is not a response, or answers another request id.
Result<nlohmann::json> DecodeResponse(std::string_view line, const nlohmann::json& expected_id);

}  // namespace isoflop::protocol
