// libFuzzer target: the wire protocol's decoders on arbitrary bytes (coordinator/protocol/
// protocol_codec.h). Whatever a client sends, decoding must return a request or a Status, never
// crash, hang or trip a sanitizer; and a request that decodes must encode to a line that decodes to
// the same request (the daemon echoes ids and the client re-reads its own encodings).
//
//   build-fuzz/tests/protocol_fuzzer -max_total_time=60 -dict=tests/fuzz/protocol.dict \
//       tests/fuzz/corpus_protocol
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "coordinator/protocol/protocol_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace isoflop::protocol;
  const std::string_view line(reinterpret_cast<const char*>(data), size);

  isoflop::Result<Request> request = DecodeRequest(line);
  if (request.ok()) {
    std::string encoded = EncodeRequest(*request);
    if (encoded.empty() || encoded.back() != '\n') std::abort();
    encoded.pop_back();
    isoflop::Result<Request> again = DecodeRequest(encoded);
    if (!again.ok() || again->body.index() != request->body.index() || again->id != request->id) {
      std::abort();
    }
  }
  // The client's side: any reply, to any request id.
  (void)DecodeResponse(line, 1);
  (void)DecodeResponse(line, nullptr);
  return 0;
}
