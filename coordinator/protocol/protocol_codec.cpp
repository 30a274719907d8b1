#include "coordinator/protocol/protocol_codec.h"

#include <fmt/format.h>

#include <array>
#include <initializer_list>
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

// Checks that `message` has exactly the body fields `names`, each a string, and returns them.
template <size_t N>
Result<std::array<std::string, N>> StringFields(const json& message, const char* type,
                                                const std::array<const char*, N>& names) {
  for (const auto& [key, value] : message.items()) {
    if (IsEnvelopeKey(key)) continue;
    bool known = false;
    for (const char* name : names) known = known || key == name;
    if (!known) {
      return Status::InvalidArgument(fmt::format("{}: unknown field \"{}\"", type, key));
    }
  }
  std::array<std::string, N> values;
  for (size_t i = 0; i < N; ++i) {
    auto it = message.find(names[i]);
    if (it == message.end()) {
      return Status::InvalidArgument(fmt::format("{}: missing field \"{}\"", type, names[i]));
    }
    if (!it->is_string()) {
      return Status::InvalidArgument(
          fmt::format("{}: field \"{}\" must be a string", type, names[i]));
    }
    values[i] = it->template get<std::string>();
    if (values[i].empty()) {
      return Status::InvalidArgument(fmt::format("{}: field \"{}\" is empty", type, names[i]));
    }
  }
  return values;
}

Result<RequestBody> DecodeBody(const std::string& type, const json& message) {
  if (type == "hello") {
    auto fields = StringFields<1>(message, "hello", {"token"});
    if (!fields.ok()) return fields.status();
    return RequestBody(Hello{std::move((*fields)[0])});
  }
  if (type == "ping") {
    auto fields = StringFields<0>(message, "ping", {});
    if (!fields.ok()) return fields.status();
    return RequestBody(Ping{});
  }
  if (type == "submit") {
    auto fields = StringFields<1>(message, "submit", {"path"});
    if (!fields.ok()) return fields.status();
    if ((*fields)[0].front() != '/') {
      return Status::InvalidArgument("submit: \"path\" must be absolute");
    }
    return RequestBody(Submit{std::move((*fields)[0])});
  }
  if (type == "cancel") {
    auto fields = StringFields<1>(message, "cancel", {"target"});
    if (!fields.ok()) return fields.status();
    return RequestBody(Cancel{std::move((*fields)[0])});
  }
  if (type == "resume") {
    auto fields = StringFields<1>(message, "resume", {"sweep"});
    if (!fields.ok()) return fields.status();
    return RequestBody(Resume{std::move((*fields)[0])});
  }
  if (type == "shutdown") {
    auto fields = StringFields<0>(message, "shutdown", {});
    if (!fields.ok()) return fields.status();
    return RequestBody(Shutdown{});
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
