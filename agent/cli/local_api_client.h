// The CLI's side of the agent's local API (agent/node/local_api_server.h): a unix socket; one
// length-prefixed ApiRequest, one ApiResponse.
#pragma once

#include <string>

#include "proto/agent.pb.h"
#include "proto/error.h"
#include "proto/frame.h"

namespace gapsync::agent {

// Blocking call (the CLI side). kNotFound when no agent listens at `socket_path`.
Result<v1::ApiResponse> CallAgent(const std::string& socket_path, const v1::ApiRequest& request);

// An answer that succeeded but carries no result: an agent older than this CLI (the package was
// upgraded while the old agent runs). The error says so.
Error OlderAgent(const std::string& socket_path);

}  // namespace gapsync::agent
