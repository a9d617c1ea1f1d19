// `gapsync agent run`: the node's long-running process. Owns the store; serves the local API
// (ingest, status) on a unix socket; stops cleanly on SIGTERM/SIGINT (a running ingest stops at
// once, keeping its progress, and is finished by the next ingest of the same bundle).
//
// Threads: one io_context thread owns sockets and agent state; an ingest runs on a worker thread
// (one at a time) and posts its answer back to the io_context.
#pragma once

#include "agent/agent_config.h"
#include "proto/error.h"

namespace gapsync::agent {

// Runs until SIGTERM or SIGINT. Errors only for what prevents starting (store, socket, keys).
Status RunAgent(const AgentConfig& config);

}  // namespace gapsync::agent
