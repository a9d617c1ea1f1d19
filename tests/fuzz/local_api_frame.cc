// Fuzz target: what a client writes to the agent's local API socket: a 4-byte big-endian length,
// then an ApiRequest (agent/node/api_request.h). Properties: a frame over the limit is refused
// unread; a request that passes is a status request or an ingest of an absolute path.
#include <cstring>

#include "agent/node/api_request.h"
#include "proto/frame.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gapsync;
  if (size < 4) return 0;
  const uint32_t n = DecodeFrameLength(data);
  if (n > kMaxFrame || n > size - 4) return 0;  // refused unread / the client hangs up early
  auto req = agent::DecodeApiRequest(fuzz::AsView(data + 4, n));
  if (!req.ok()) {
    FUZZ_CHECK(req.error().code == Errc::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(req->has_status() || (req->has_ingest() && req->ingest().bundle_dir().front() == '/'));
  // What the agent answers with is framed back the same way.
  const std::string frame = EncodeFrame(*req);
  FUZZ_CHECK(DecodeFrameLength(reinterpret_cast<const unsigned char*>(frame.data())) == frame.size() - 4);
  return 0;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace gapsync;
  if (fuzz::SeedDir() == nullptr) return 0;
  v1::ApiRequest status;
  status.mutable_status();
  fuzz::WriteSeed("status", EncodeFrame(status));
  v1::ApiRequest ingest;
  ingest.mutable_ingest()->set_bundle_dir("/media/usb/bundle-1.2.0");
  ingest.mutable_ingest()->set_allow_older(true);
  fuzz::WriteSeed("ingest", EncodeFrame(ingest));
  std::exit(0);
}
