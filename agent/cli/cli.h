// The gapsync command line: one file per command group (keys and CA, bundle, ingest, agent and
// cluster, store); results rendered by render.h. `main` reads the environment and calls RunCli.
#pragma once

#include <string>

#include "agent/ingest/ingest.h"
#include "agent/node/node.h"

namespace gapsync::agent {

// What the command line takes from the environment: read in one place (main.cc), passed in here.
struct Environment {
  std::string agent_socket = "/run/gapsync/agent.sock";  // $GAPSYNC_AGENT_SOCKET
  IngestHooks ingest_hooks;  // `ingest --store`: tests' crash point
  NodeOptions node;          // `agent run`: tests' hooks, libtorrent overrides, log interval
};

// Parses argv and runs the command; the process's exit code (0 done, 1 error, 2 usage,
// 3 incomplete).
int RunCli(int argc, char** argv, const Environment& env);

}  // namespace gapsync::agent
