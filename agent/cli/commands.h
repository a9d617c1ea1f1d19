// Internal to the CLI: the state every command group shares, and how each adds its commands.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "agent/cli/cli.h"
#include "proto/error.h"

namespace gapsync::agent {

inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitIncomplete = 3;

struct Cli {
  CLI::App app{"gapsync: deliver signed application releases into air-gapped clusters"};
  Environment env;
  bool quiet = false;  // -q: no progress output
  int exit_code = 0;   // set by the command that ran
};

// One line on stderr ("gapsync: error: ..."); the exit code for the error.
int Fail(const Error& e);
// A usage error found after parsing (exit 2).
int UsageError(const std::string& message);

void AddKeyCommands(Cli& cli);     // keys generate, ca init, ca issue
void AddBundleCommands(Cli& cli);  // bundle create, verify, inspect
void AddIngestCommand(Cli& cli);   // ingest (through the agent or into a store)
void AddAgentCommands(Cli& cli);   // agent run, cluster status
void AddStoreCommands(Cli& cli);   // store ls, fsck, gc, export

}  // namespace gapsync::agent
