// gapsync keys generate; gapsync ca init | issue.
#include <cstdio>
#include <memory>

#include "agent/bundle/keys.h"
#include "agent/cli/commands.h"
#include "transport/cluster_ca.h"

namespace gapsync::agent {

void AddKeyCommands(Cli& cli) {
  auto* keys = cli.app.add_subcommand("keys", "Vendor signing keys");
  keys->require_subcommand(1);
  auto* keygen = keys->add_subcommand("generate", "Write an Ed25519 key pair NAME.key (0600) and NAME.pub (PEM)");
  struct KeyArgs {
    std::string out, name;
  };
  auto k = std::make_shared<KeyArgs>();
  keygen->add_option("--out", k->out, "Folder to write the keys into")->required();
  keygen->add_option("--name", k->name, "Key name (file names NAME.key, NAME.pub)")->required();
  keygen->callback([&cli, k] {
    auto r = GenerateKeyPair(k->out, k->name);
    if (!r.ok()) {
      cli.exit_code = Fail(r.error());
      return;
    }
    std::printf("wrote %s (private, mode 0600) and %s\n", r->private_key.c_str(), r->public_key.c_str());
  });

  auto* ca = cli.app.add_subcommand("ca", "The cluster's certificate authority (mutual TLS between agents)");
  ca->require_subcommand(1);
  struct CaArgs {
    std::string out, name = "cluster", ca_dir, node, node_out;
  };
  auto c = std::make_shared<CaArgs>();
  auto* init = ca->add_subcommand("init", "Create a cluster CA: DIR/ca.key (0600) and DIR/ca.crt");
  init->add_option("--out", c->out, "Folder for the CA (keep ca.key offline)")->required();
  init->add_option("--name", c->name, "A name for the cluster, put in the CA's subject");
  init->callback([&cli, c] {
    auto r = transport::InitCa(c->out, c->name);
    if (!r.ok()) {
      cli.exit_code = Fail(r.error());
      return;
    }
    std::printf("cluster CA written: %s (private, mode 0600; keep it off the nodes) and %s\n", r->key.c_str(), r->cert.c_str());
  });
  auto* issue = ca->add_subcommand("issue", "Issue a node certificate: DIR/NAME.key (0600), DIR/NAME.crt, DIR/ca.crt");
  issue->add_option("--ca", c->ca_dir, "CA folder (from ca init)")->required();
  issue->add_option("--node", c->node, "Node name (a-z 0-9 - .)")->required();
  issue->add_option("--out", c->node_out, "Folder for the node's files")->required();
  issue->callback([&cli, c] {
    auto r = transport::IssueNodeCertificate(c->ca_dir, c->node, c->node_out);
    if (!r.ok()) {
      cli.exit_code = Fail(r.error());
      return;
    }
    std::printf("node %s: %s (private, mode 0600), %s, %s\n", c->node.c_str(), r->key.c_str(), r->cert.c_str(), r->ca_cert.c_str());
  });
}

}  // namespace gapsync::agent
