// The wire protocol (coordinator/protocol/protocol_codec.h): every request round-trips; anything
// else is an InvalidArgument that says what is wrong, never an exception.
#include <gtest/gtest.h>

#include "coordinator/protocol/protocol_codec.h"

namespace isoflop::protocol {
namespace {

using nlohmann::json;

std::string WithoutNewline(std::string line) {
  EXPECT_EQ(line.back(), '\n');
  line.pop_back();
  return line;
}

TEST(ProtocolCodecTest, EveryRequestRoundTrips) {
  const std::vector<Request> requests = {
      {1, Hello{"0123abcd"}},       {2, Ping{}},          {"x", Submit{"/home/a b/s.yaml"}},
      {json(), Cancel{"1a2b3c4d"}}, {5, Resume{"smoke"}}, {6, Shutdown{}},
  };
  for (const Request& request : requests) {
    const std::string line = EncodeRequest(request);
    EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line per message: " << line;
    Result<Request> decoded = DecodeRequest(WithoutNewline(line));
    ASSERT_TRUE(decoded.ok()) << line << ": " << decoded.status().ToString();
    EXPECT_EQ(decoded->id, request.id);
    EXPECT_EQ(decoded->body.index(), request.body.index());
    EXPECT_EQ(EncodeRequest(*decoded), line);
  }
}

TEST(ProtocolCodecTest, RejectsWhatIsNotARequestOfThisVersion) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not valid JSON"},
      {"{", "not valid JSON"},
      {"[]", "not a JSON object"},
      {"\"ping\"", "not a JSON object"},
      {R"({"type":"ping"})", "protocol version"},
      {R"({"v":"1","type":"ping"})", "protocol version"},
      {R"({"v":2,"type":"ping"})", "version 2 is not supported"},
      {R"({"v":1})", "no string \"type\""},
      {R"({"v":1,"type":7})", "no string \"type\""},
      {R"({"v":1,"type":"reboot"})", "unknown message type \"reboot\""},
      {R"({"v":1,"type":"ping","id":[1]})", "\"id\" must be"},
      {R"({"v":1,"type":"ping","id":{"a":1}})", "\"id\" must be"},
      {R"({"v":1,"type":"ping","extra":1})", "unknown field \"extra\""},
      {R"({"v":1,"type":"submit"})", "missing field \"path\""},
      {R"({"v":1,"type":"submit","path":3})", "\"path\" must be a string"},
      {R"({"v":1,"type":"submit","path":"relative.yaml"})", "must be absolute"},
      {R"({"v":1,"type":"cancel","target":""})", "\"target\" is empty"},
      {R"({"v":1,"type":"hello","token":null})", "\"token\" must be a string"},
  };
  for (const auto& [line, expected] : cases) {
    Result<Request> decoded = DecodeRequest(line);
    ASSERT_FALSE(decoded.ok()) << line;
    EXPECT_EQ(decoded.status().code(), Status::Code::kInvalidArgument) << line;
    EXPECT_NE(decoded.status().message().find(expected), std::string::npos)
        << line << " -> " << decoded.status().message();
  }
}

TEST(ProtocolCodecTest, RefusesAnOversizedLineBeforeParsingIt) {
  const std::string huge =
      R"({"v":1,"type":"submit","path":"/)" + std::string(kMaxMessageBytes, 'a') + R"("})";
  Result<Request> decoded = DecodeRequest(huge);
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.status().message().find("exceeds the limit"), std::string::npos);
}

TEST(ProtocolCodecTest, InvalidUtf8IsAnErrorOnInputAndReplacedOnOutput) {
  EXPECT_FALSE(DecodeRequest("{\"v\":1,\"type\":\"cancel\",\"target\":\"\xff\"}").ok());
  const std::string line = EncodeError(1, Status::NotFound("no run \xff"));
  EXPECT_TRUE(json::accept(WithoutNewline(line))) << line;
}

TEST(ProtocolCodecTest, ResponsesCarryResultsOrTheDaemonsStatus) {
  Result<json> ok = DecodeResponse(WithoutNewline(EncodeResult(3, {{"sweep_id", 12}})), 3);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ((*ok)["sweep_id"], 12);

  Result<json> error =
      DecodeResponse(WithoutNewline(EncodeError(4, Status::NotFound("no sweep 'x'"))), 4);
  ASSERT_FALSE(error.ok());
  EXPECT_EQ(error.status().code(), Status::Code::kNotFound);
  EXPECT_EQ(error.status().message(), "no sweep 'x'");

  // An error about the line itself has no id to echo; it still reaches the waiting caller.
  Result<json> unattributed =
      DecodeResponse(WithoutNewline(EncodeError(nullptr, Status::InvalidArgument("bad"))), 5);
  EXPECT_EQ(unattributed.status().code(), Status::Code::kInvalidArgument);

  EXPECT_FALSE(DecodeResponse(WithoutNewline(EncodeResult(6, json::object())), 7).ok());
  EXPECT_FALSE(DecodeResponse(R"({"v":1,"type":"ok","id":1,"result":[]})", 1).ok());
  EXPECT_FALSE(DecodeResponse(R"({"v":1,"type":"error","id":1,"error":"x"})", 1).ok());
  EXPECT_FALSE(DecodeResponse(R"({"v":1,"type":"maybe","id":1})", 1).ok());
}

}  // namespace
}  // namespace isoflop::protocol
