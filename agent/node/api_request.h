// A local API request as it arrives on the socket (after its 4-byte length): parsed and checked
// before anything acts on it. Pure, so every byte string a client can send is fuzzed
// (tests/fuzz/local_api_frame.cc).
#pragma once

#include <string_view>

#include "proto/agent.pb.h"
#include "proto/error.h"

namespace gapsync::agent {

// kInvalidArgument ("malformed request", "unknown request", or what is wrong with a field) when
// the bytes are no request this agent answers. An ingest's bundle_dir must be an absolute path
// without NUL bytes, at most 4096 bytes long.
Result<v1::ApiRequest> DecodeApiRequest(std::string_view body);

}  // namespace gapsync::agent
