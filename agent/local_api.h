// The agent's local API: a unix socket; one length-prefixed ApiRequest, one ApiResponse.
#pragma once

#include <string>

#include "proto/agent.pb.h"
#include "proto/error.h"

namespace gapsync::agent {

inline constexpr uint32_t kMaxApiMessage = 1 << 20;

// $GAPSYNC_AGENT_SOCKET, else /run/gapsync/agent.sock.
std::string DefaultAgentSocket();

// Blocking call (the CLI side). kNotFound when no agent listens at `socket_path`.
Result<v1::ApiResponse> CallAgent(const std::string& socket_path, const v1::ApiRequest& request);

// Frame helpers shared with the server: 4-byte big-endian length + bytes.
std::string EncodeFrame(const google::protobuf::MessageLite& message);
uint32_t DecodeLength(const unsigned char header[4]);

}  // namespace gapsync::agent
