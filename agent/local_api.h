// The agent's local API: a unix socket; one length-prefixed ApiRequest, one ApiResponse.
#pragma once

#include <string>

#include "proto/agent.pb.h"
#include "proto/error.h"
#include "proto/frame.h"

namespace gapsync::agent {

// $GAPSYNC_AGENT_SOCKET, else /run/gapsync/agent.sock.
std::string DefaultAgentSocket();

// Blocking call (the CLI side). kNotFound when no agent listens at `socket_path`.
Result<v1::ApiResponse> CallAgent(const std::string& socket_path, const v1::ApiRequest& request);

}  // namespace gapsync::agent
