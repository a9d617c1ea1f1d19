// gapsync: reads the environment (the one place that does) and hands the command line to the CLI.
//
// Variables:
//   GAPSYNC_AGENT_SOCKET            the local agent's socket (default /run/gapsync/agent.sock)
//   GAPSYNC_LT_SETTINGS             `agent run`: libtorrent setting overrides, "name=value,..." (experts)
//   GAPSYNC_PROGRESS_LOG_MS         `agent run`: how often a fetch logs its progress (default 5000)
// For tests only:
//   GAPSYNC_TEST_KILL_AFTER_BYTES=N an ingest (into a store, or by the agent) kills its process
//                                   (SIGKILL) once N new bytes are stored (0: right before the
//                                   release is committed)
//   GAPSYNC_TEST_PAUSE_AFTER_BYTES=N `agent run`: an ingest waits, once N new bytes are stored,
//                                   until the agent is stopped (a stop in mid-ingest, every time)
//   GAPSYNC_TEST_CORRUPT_UPLOADS=1  `agent run`: every block this node uploads has a byte flipped
#include <google/protobuf/stubs/logging.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <string>
#include <thread>

#include "agent/cli/cli.h"

namespace {

using gapsync::agent::Environment;
using gapsync::agent::IngestHooks;

const char* Var(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

Environment ReadEnvironment() {
  Environment env;
  if (const char* socket = Var("GAPSYNC_AGENT_SOCKET")) env.agent_socket = socket;
  if (const char* lt = std::getenv("GAPSYNC_LT_SETTINGS")) {
    env.node.libtorrent_settings = lt;
    env.node.libtorrent_settings_from = "GAPSYNC_LT_SETTINGS";
  }
  if (const char* ms = std::getenv("GAPSYNC_PROGRESS_LOG_MS")) {
    env.node.progress_log_interval = std::chrono::milliseconds(std::max(100, std::atoi(ms)));
  }
  // Test hooks, for ingests into a store and through the agent alike.
  IngestHooks& hooks = env.ingest_hooks;
  if (const char* kill = std::getenv("GAPSYNC_TEST_KILL_AFTER_BYTES")) {
    const uint64_t at = std::strtoull(kill, nullptr, 10);
    if (at > 0) {
      hooks.after_bytes = [at](uint64_t bytes_new, const std::function<bool()>&) {
        if (bytes_new >= at) std::raise(SIGKILL);
      };
    } else {
      hooks.before_commit = [] { std::raise(SIGKILL); };
    }
  }
  const char* pause = std::getenv("GAPSYNC_TEST_PAUSE_AFTER_BYTES");
  if (const uint64_t at = pause == nullptr ? 0 : std::strtoull(pause, nullptr, 10); at > 0) {
    hooks.after_bytes = [at, kill = hooks.after_bytes](uint64_t bytes_new, const std::function<bool()>& cancelled) {
      if (kill) kill(bytes_new, cancelled);
      if (bytes_new < at) return;
      while (!cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    };
  }
  env.node.ingest_hooks = hooks;
  if (const char* corrupt = std::getenv("GAPSYNC_TEST_CORRUPT_UPLOADS")) env.node.corrupt_uploads = std::string(corrupt) == "1";
  return env;
}

}  // namespace

int main(int argc, char** argv) {
  // Every parse failure is reported by gapsync itself, in one line naming the file; libprotobuf's
  // own log lines (e.g. a string field that is not UTF-8) would be a second, unhelpful one.
  google::protobuf::SetLogHandler(nullptr);
  return gapsync::agent::RunCli(argc, argv, ReadEnvironment());
}
