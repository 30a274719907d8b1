#include "coordinator/protocol/protocol_codec.h"

#include <fmt/format.h>

#include <array>
#include <initializer_list>
#include <limits>
#include <utility>

namespace isoflop::protocol {
namespace {

using nlohmann::json;

struct CodeName {
  Status::Code code;
  const char* name;
};
constexpr std::array<CodeName, 7> kCodeNames = {{
    {Status::Code::kInvalidArgument, "InvalidArgument"},
    {Status::Code::kNotFound, "NotFound"},
    {Status::Code::kIOError, "IOError"},
    {Status::Code::kCorruption, "Corruption"},
    {Status::Code::kFailedPrecondition, "FailedPrecondition"},
    {Status::Code::kPermissionDenied, "PermissionDenied"},
    {Status::Code::kInternal, "Internal"},
}};

const char* CodeNameOf(Status::Code code) {
  for (const CodeName& entry : kCodeNames) {
    if (entry.code == code) return entry.name;
  }
  return "Internal";
}

Status StatusOf(const std::string& code_name, std::string message) {
  for (const CodeName& entry : kCodeNames) {
    if (code_name != entry.name) continue;
    switch (entry.code) {
      case Status::Code::kInvalidArgument:
        return Status::InvalidArgument(std::move(message));
      case Status::Code::kNotFound:
        return Status::NotFound(std::move(message));
      case Status::Code::kIOError:
        return Status::IOError(std::move(message));
      case Status::Code::kCorruption:
        return Status::Corruption(std::move(message));
      case Status::Code::kFailedPrecondition:
        return Status::FailedPrecondition(std::move(message));
      case Status::Code::kPermissionDenied:
        return Status::PermissionDenied(std::move(message));
      case Status::Code::kInternal:
      case Status::Code::kOk:
        break;
    }
  }
  return Status::Internal(std::move(message));
}

// The envelope every message carries; the rest of the object is the body.
bool IsEnvelopeKey(const std::string& key) {
  return key == "v" || key == "type" || key == "id";
}

// Reads the body of one message (its fields beyond the envelope) the way a stream reads: each
// getter checks one field, the first failure sticks and is what status() reports, and getters after
// it return empty values. Unknown fields are the first thing checked.
class BodyReader {
 public:
  BodyReader(const json& message, const char* type, std::initializer_list<const char*> fields)
      : message_(message), type_(type) {
    for (const auto& [key, value] : message.items()) {
      if (IsEnvelopeKey(key)) continue;
      bool known = false;
      for (const char* field : fields) known = known || key == field;
      if (!known) {
        Fail(fmt::format("unknown field \"{}\"", key));
        return;
      }
    }
  }

  // A non-empty string.
  std::string Text(const char* name) {
    const json* value = Find(name);
    return value != nullptr ? TextOf(name, *value) : std::string();
  }
  std::optional<std::string> OptionalText(const char* name) {
    if (!message_.contains(name)) return std::nullopt;
    return Text(name);
  }
  // A run's full id: what RunId (run_store.h) makes, 64 lowercase hex digits.
  std::string RunId(const char* name) {
    std::string id = Text(name);
    if (status_.ok() &&
        (id.size() != 64 || id.find_first_not_of("0123456789abcdef") != std::string::npos)) {
      Fail(fmt::format("field \"{}\" must be a run's 64-hex-digit id", name));
    }
    return id;
  }
  // An integer of at least `min`.
  int64_t Integer(const char* name, int64_t min) {
    const json* value = Find(name);
    if (value == nullptr) return 0;
    if (!value->is_number_integer() ||
        (value->is_number_unsigned() &&
         value->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
      Fail(fmt::format("field \"{}\" must be an integer", name));
      return 0;
    }
    const int64_t number = value->get<int64_t>();
    if (number < min) Fail(fmt::format("field \"{}\" must be at least {}", name, min));
    return number;
  }
  // A metrics.jsonl record: an object with a non-empty string "type".
  json RecordObject(const char* name) {
    const json* value = Find(name);
    if (value == nullptr) return json();
    auto type = value->is_object() ? value->find("type") : value->end();
    if (!value->is_object() || type == value->end() || !type->is_string() ||
        type->get_ref<const std::string&>().empty()) {
      Fail(fmt::format("field \"{}\" must be an object with a string \"type\"", name));
      return json();
    }
    return *value;
  }

  void Fail(std::string message) {
    if (status_.ok()) status_ = Status::InvalidArgument(fmt::format("{}: {}", type_, message));
  }
  const Status& status() const { return status_; }

 private:
  // The field, or null when it is missing or an earlier field failed.
  const json* Find(const char* name) {
    if (!status_.ok()) return nullptr;
    auto it = message_.find(name);
    if (it == message_.end()) {
      Fail(fmt::format("missing field \"{}\"", name));
      return nullptr;
    }
    return &*it;
  }
  std::string TextOf(const char* name, const json& value) {
    if (!value.is_string()) {
      Fail(fmt::format("field \"{}\" must be a string", name));
      return std::string();
    }
    std::string text = value.get<std::string>();
    if (text.empty()) Fail(fmt::format("field \"{}\" is empty", name));
    return text;
  }

  const json& message_;
  const char* type_;
  Status status_;
};

Result<RequestBody> DecodeBody(const std::string& type, const json& message) {
  // Each branch reads its fields in order, then returns the body or the first failure.
  auto finish = [](const BodyReader& reader, RequestBody body) -> Result<RequestBody> {
    if (!reader.status().ok()) return reader.status();
    return body;
  };
  if (type == "hello") {
    BodyReader reader(message, "hello", {"token"});
    Hello hello{reader.Text("token")};
    return finish(reader, std::move(hello));
  }
  if (type == "ping") return finish(BodyReader(message, "ping", {}), Ping{});
  if (type == "submit") {
    BodyReader reader(message, "submit", {"path"});
    Submit submit{reader.Text("path")};
    if (reader.status().ok() && submit.path.front() != '/') {
      reader.Fail("\"path\" must be absolute");
    }
    return finish(reader, std::move(submit));
  }
  if (type == "cancel") {
    BodyReader reader(message, "cancel", {"target"});
    Cancel cancel{reader.Text("target")};
    return finish(reader, std::move(cancel));
  }
  if (type == "resume") {
    BodyReader reader(message, "resume", {"sweep"});
    Resume resume{reader.Text("sweep")};
    return finish(reader, std::move(resume));
  }
  if (type == "shutdown") return finish(BodyReader(message, "shutdown", {}), Shutdown{});
  if (type == "worker_hello") {
    BodyReader reader(message, "worker_hello", {"token", "run_id", "attempt", "rank"});
    // Braced initialisation reads the fields in order: the first failure is the one reported.
    WorkerHello hello{reader.OptionalText("token"), reader.RunId("run_id"),
                      reader.Integer("attempt", 1), reader.Integer("rank", 0)};
    return finish(reader, std::move(hello));
  }
  if (type == "heartbeat") {
    BodyReader reader(message, "heartbeat", {"run_id", "attempt", "step"});
    Heartbeat heartbeat{reader.RunId("run_id"), reader.Integer("attempt", 1),
                        reader.Integer("step", 0)};
    return finish(reader, std::move(heartbeat));
  }
  if (type == "record") {
    BodyReader reader(message, "record", {"run_id", "attempt", "record"});
    Record record{reader.RunId("run_id"), reader.Integer("attempt", 1),
                  reader.RecordObject("record")};
    return finish(reader, std::move(record));
  }
  return Status::InvalidArgument(fmt::format("unknown message type \"{}\"", type));
}

// Parses one line as a JSON object carrying {"v": kVersion}; shared by requests and responses.
Result<json> ParseEnvelope(std::string_view line) {
  if (line.size() > kMaxMessageBytes) {
    return Status::InvalidArgument(
        fmt::format("message of {} bytes exceeds the limit of {}", line.size(), kMaxMessageBytes));
  }
  json message = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (message.is_discarded()) return Status::InvalidArgument("message is not valid JSON");
  if (!message.is_object()) return Status::InvalidArgument("message is not a JSON object");
  auto version = message.find("v");
  if (version == message.end() || !version->is_number_integer()) {
    return Status::InvalidArgument("message has no integer protocol version \"v\"");
  }
  if (version->get<int64_t>() != kVersion) {
    return Status::InvalidArgument(
        fmt::format("protocol version {} is not supported (this isoflop speaks {})",
                    version->dump(), kVersion));
  }
  auto id = message.find("id");
  if (id != message.end() && !id->is_null() && !id->is_number_integer() && !id->is_string()) {
    return Status::InvalidArgument("message \"id\" must be an integer or a string");
  }
  auto type = message.find("type");
  if (type == message.end() || !type->is_string()) {
    return Status::InvalidArgument("message has no string \"type\"");
  }
  return message;
}

std::string Line(const json& message) {
  // Invalid UTF-8 in a path or an error message is replaced, not thrown on: encoding never fails.
  return message.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace

const char* TypeName(const RequestBody& body) {
  struct Namer {
    const char* operator()(const Hello&) const { return "hello"; }
    const char* operator()(const Ping&) const { return "ping"; }
    const char* operator()(const Submit&) const { return "submit"; }
    const char* operator()(const Cancel&) const { return "cancel"; }
    const char* operator()(const Resume&) const { return "resume"; }
    const char* operator()(const Shutdown&) const { return "shutdown"; }
    const char* operator()(const WorkerHello&) const { return "worker_hello"; }
    const char* operator()(const Heartbeat&) const { return "heartbeat"; }
    const char* operator()(const Record&) const { return "record"; }
  };
  return std::visit(Namer{}, body);
}

Result<Request> DecodeRequest(std::string_view line) {
  Result<json> message = ParseEnvelope(line);
  if (!message.ok()) return message.status();
  Result<RequestBody> body = DecodeBody((*message)["type"].get<std::string>(), *message);
  if (!body.ok()) return body.status();
  Request request;
  request.id = message->value("id", json());
  request.body = std::move(*body);
  return request;
}

std::string EncodeRequest(const Request& request) {
  json message = {{"v", kVersion}, {"type", TypeName(request.body)}, {"id", request.id}};
  struct Fields {
    json& message;
    void operator()(const Hello& hello) const { message["token"] = hello.token; }
    void operator()(const Ping&) const {}
    void operator()(const Submit& submit) const { message["path"] = submit.path; }
    void operator()(const Cancel& cancel) const { message["target"] = cancel.target; }
    void operator()(const Resume& resume) const { message["sweep"] = resume.sweep; }
    void operator()(const Shutdown&) const {}
    void operator()(const WorkerHello& hello) const {
      if (hello.token) message["token"] = *hello.token;
      message["run_id"] = hello.run_id;
      message["attempt"] = hello.attempt;
      message["rank"] = hello.rank;
    }
    void operator()(const Heartbeat& heartbeat) const {
      message["run_id"] = heartbeat.run_id;
      message["attempt"] = heartbeat.attempt;
      message["step"] = heartbeat.step;
    }
    void operator()(const Record& record) const {
      message["run_id"] = record.run_id;
      message["attempt"] = record.attempt;
      message["record"] = record.record;
    }
  };
  std::visit(Fields{message}, request.body);
  return Line(message);
}

std::string EncodeResult(const json& id, const json& result) {
  return Line({{"v", kVersion}, {"type", "ok"}, {"id", id}, {"result", result}});
}

std::string EncodeError(const json& id, const Status& status) {
  return Line({{"v", kVersion},
               {"type", "error"},
               {"id", id},
               {"error", {{"code", CodeNameOf(status.code())}, {"message", status.message()}}}});
}

Result<json> DecodeResponse(std::string_view line, const json& expected_id) {
  Result<json> message = ParseEnvelope(line);
  if (!message.ok()) return message.status();
  const json id = message->value("id", json());
  // An error about the connection itself (an unparseable request) carries a null id.
  const std::string type = (*message)["type"].get<std::string>();
  if (type == "error") {
    const json& error = (*message)["error"];
    if (!error.is_object() || !error.value("code", json()).is_string() ||
        !error.value("message", json()).is_string()) {
      return Status::InvalidArgument("error response without a code and a message");
    }
    if (id != expected_id && !id.is_null()) {
      return Status::InvalidArgument(fmt::format("response to request {} while waiting for {}",
                                                 id.dump(), expected_id.dump()));
    }
    return StatusOf(error["code"].get<std::string>(), error["message"].get<std::string>());
  }
  if (type != "ok")
    return Status::InvalidArgument(fmt::format("unknown response type \"{}\"", type));
  if (id != expected_id) {
    return Status::InvalidArgument(
        fmt::format("response to request {} while waiting for {}", id.dump(), expected_id.dump()));
  }
  auto result = message->find("result");
  if (result == message->end() || !result->is_object()) {
    return Status::InvalidArgument("ok response without a result object");
  }
  return std::move(*result);
}

}  // namespace isoflop::protocol
