// gapsync agent run; gapsync cluster status.
#include <cstdio>
#include <memory>

#include "agent/cli/commands.h"
#include "agent/cli/local_api_client.h"
#include "agent/cli/render.h"
#include "agent/node/agent_config.h"
#include "agent/node/node.h"

namespace gapsync::agent {

void AddAgentCommands(Cli& cli) {
  auto* agent = cli.app.add_subcommand("agent", "The node's agent (daemon)");
  agent->require_subcommand(1);
  auto config = std::make_shared<std::string>();
  auto* run = agent->add_subcommand("run", "Run the agent in the foreground until SIGTERM");
  run->add_option("--config", *config, "Agent configuration (YAML; docs/agent-config.md)")->required();
  run->callback([&cli, config] {
    auto cfg = LoadAgentConfig(*config);
    if (!cfg.ok()) {
      cli.exit_code = Fail(cfg.error());
      return;
    }
    auto st = RunNode(cfg.value(), cli.env.node);
    if (!st.ok()) cli.exit_code = Fail(st.error());
  });

  auto* cluster = cli.app.add_subcommand("cluster", "The cluster, as the local agent sees it");
  cluster->require_subcommand(1);
  struct StatusArgs {
    bool json = false;
    std::string agent_socket;
  };
  auto s = std::make_shared<StatusArgs>();
  s->agent_socket = cli.env.agent_socket;
  auto* status = cluster->add_subcommand("status", "Per node: reachable, releases held, ingest in progress");
  status->add_flag("--json", s->json, "Print as JSON");
  status->add_option("--agent", s->agent_socket, "The local agent's socket");
  status->callback([&cli, s] {
    v1::ApiRequest req;
    req.mutable_status();
    auto resp = CallAgent(s->agent_socket, req);
    if (!resp.ok()) {
      cli.exit_code = Fail(resp.error());
      return;
    }
    if (resp->exit_code() != 0) {
      cli.exit_code = Fail(MakeError(Errc::kIo, resp->error()));
      return;
    }
    if (!resp->has_status()) {
      cli.exit_code = Fail(OlderAgent(s->agent_socket));
      return;
    }
    if (s->json) {
      PrintJson(ClusterStatusJson(resp->status()));
    } else {
      std::fputs(ClusterStatusText(resp->status()).c_str(), stdout);
    }
  });
}

}  // namespace gapsync::agent
