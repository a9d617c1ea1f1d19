#include "agent/cli/cli.h"

#include <cstdio>

#include "agent/cli/commands.h"

namespace gapsync::agent {

int Fail(const Error& e) {
  std::string msg = e.message;
  for (auto& c : msg) {
    if (c == '\n') c = ' ';
  }
  std::fprintf(stderr, "gapsync: error: %s\n", msg.c_str());
  return e.code == Errc::kIncomplete ? kExitIncomplete : kExitError;
}

int UsageError(const std::string& message) {
  std::fprintf(stderr, "gapsync: error: %s\n", message.c_str());
  return kExitUsage;
}

int RunCli(int argc, char** argv, const Environment& env) {
  Cli cli;
  cli.env = env;
  cli.app.require_subcommand(1);
  cli.app.set_version_flag("--version", "gapsync 0.1.0");
  cli.app.add_flag("-q,--quiet", cli.quiet, "No progress output");
  AddKeyCommands(cli);
  AddBundleCommands(cli);
  AddIngestCommand(cli);
  AddAgentCommands(cli);
  AddStoreCommands(cli);
  try {
    cli.app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = cli.app.exit(e);  // prints help, or the usage error
    return rc == 0 ? 0 : kExitUsage;
  }
  return cli.exit_code;
}

}  // namespace gapsync::agent
