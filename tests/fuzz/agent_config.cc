// Fuzz target: the agent's configuration file (agent/node/agent_config.h). Properties: a config
// that loads has a node name and a data folder, and every endpoint in it has a port; an error
// names the file.
#include "agent/node/agent_config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gapsync;
  const std::string path = fuzz::WriteScratch("agent.yaml", fuzz::AsView(data, size));
  auto c = agent::LoadAgentConfig(path);
  if (!c.ok()) {
    FUZZ_CHECK(c.error().message.find(path) != std::string::npos);
    return 0;
  }
  FUZZ_CHECK(!c->node.empty() && !c->data_dir.empty());
  for (const auto& p : c->peers) FUZZ_CHECK(p.port != 0);
  if (c->listen) FUZZ_CHECK(c->listen->port != 0);
  if (c->bittorrent_listen) FUZZ_CHECK(c->bittorrent_listen->port != 0);
  return 0;
}

// The files a config names must be there: the seeds name these, relative to the config's folder.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace gapsync;
  (void)fuzz::Vendor();  // vendor.pub
  for (const char* f : {"ca.crt", "node-1.crt", "node-1.key"}) fuzz::WriteScratch(f, "-----BEGIN-----\n");
  return 0;
}
