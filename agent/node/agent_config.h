// The agent's configuration file (YAML). Format: docs/agent-config.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proto/error.h"

namespace gapsync::agent {

struct Endpoint {
  std::string host;  // IPv4 address
  uint16_t port = 0;
  std::string str() const { return host + ":" + std::to_string(port); }
};

struct AgentConfig {
  std::string file;
  std::string node;                 // this node's name (as in its certificate)
  std::string data_dir;             // the store lives in data_dir/store
  std::string api_socket = "/run/gapsync/agent.sock";
  std::vector<std::string> trust;   // vendor public keys
  std::string log_level = "info";   // trace, debug, info, warn, error
  // Cluster links: control plane (mutual TLS), BitTorrent data plane (TLS unless
  // data_plane_tls: false, which only benchmarks should use). None: not run. Port 0 (never
  // from a config file): any free port.
  std::optional<Endpoint> listen;
  std::optional<Endpoint> bittorrent_listen;
  bool data_plane_tls = true;
  // SO_RCVBUF of every data-plane connection, bytes; 0 = the kernel's autotuning.
  int data_plane_receive_buffer = 32 * 1024;
  std::vector<Endpoint> peers;
  std::string tls_ca, tls_cert, tls_key;

  std::string store_path() const { return data_dir + "/store"; }
};

// Parses and validates: unknown keys, missing required keys, bad names, addresses and missing
// files are errors naming file:line.
Result<AgentConfig> LoadAgentConfig(const std::string& path);
Result<Endpoint> ParseEndpoint(const std::string& text);

}  // namespace gapsync::agent
