// `gapsync agent run`: the node's long-running process. Owns the store; serves the local API
// (ingest, status) on a unix socket; joins the cluster (control plane) and spreads releases (data
// plane); stops cleanly on SIGTERM/SIGINT (a running ingest stops at once, keeping its progress,
// and is finished by the next ingest of the same bundle).
//
// This is the composition root: it makes the parts and wires them; each has one job.
//   local_api_server  the unix socket, framing and deadlines
//   ingest_jobs       ingests, one at a time, on a thread of their own
//   spread            releases offered, accepted, served and fetched (control + data plane)
//   status            what `cluster status` answers
//   blocking_work     the worker every store call, hash and file read of the loop goes to
// Threads: one io_context thread (the loop) owns the parts' state and only routes; it never
// waits for the store, a hash or a file. Around it: the worker, the ingest thread, the data
// plane's threads and the control plane's sockets (on the loop).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "agent/bundle/keys.h"
#include "agent/ingest/ingest.h"
#include "agent/node/agent_config.h"
#include "proto/error.h"
#include "store/blob_store.h"

namespace spdlog {
class logger;
}

namespace gapsync::agent {

// What does not come from the config file: set by `main` (from the environment) or by tests.
struct NodeOptions {
  bool handle_signals = true;  // SIGTERM/SIGINT stop the node (a second one ends the process)
  IngestHooks ingest_hooks;    // tests: crash and pause points of the ingests it runs
  bool corrupt_uploads = false;  // tests: this node flips a byte in every block it uploads
  std::string libtorrent_settings;  // experts: libtorrent setting overrides ("name=value,...")
  std::string libtorrent_settings_from = "libtorrent settings";  // where they came from, for errors
  std::chrono::milliseconds progress_log_interval{5000};
  std::chrono::milliseconds dial_interval{3000};
};

class Node {
 public:
  Node(AgentConfig config, NodeOptions options, std::unique_ptr<store::BlobStore> store, std::vector<TrustedKey> trusted,
       std::shared_ptr<spdlog::logger> log);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Binds the local API and the cluster links. Errors only for what prevents starting (socket,
  // addresses, certificates); the store is first read once the loop runs.
  Status Start();
  // Runs the loop until the node is stopped; returns once every answer is written and the data
  // plane has stopped.
  void Run();
  // Any thread: stops the node as SIGTERM does.
  void RequestStop();

  // After Start (tests): the port the control plane listens on.
  uint16_t control_port() const;

 private:
  class Parts;
  std::unique_ptr<Parts> parts_;
};

// Opens the store and the trusted keys of `config`, starts a Node and runs it until SIGTERM or
// SIGINT.
Status RunNode(const AgentConfig& config, const NodeOptions& options);

}  // namespace gapsync::agent
