// The control plane's listener: mutual TLS (TLS 1.3) with certificates of the cluster CA only.
// A peer without such a certificate, or with one from another CA, fails the handshake and gets
// nothing; garbage bytes fail it too; either way the connection is dropped and logged, and the
// agent carries on. After the handshake each side sends a Hello (its name, address and the
// members it knows). Membership, announcements and have-lists build on this (issue 3).
#pragma once

#include <utility>  // before asio: Boost 1.74 + g++ 12 need std::exchange declared
#include <boost/asio.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proto/control.pb.h"
#include "proto/error.h"

namespace spdlog {
class logger;
}

namespace gapsync::transport {

struct TlsFiles {
  std::string ca, cert, key;
};

struct ControlServerOptions {
  std::string node;          // this node's name; must match the CN of `tls.cert`
  std::string listen_host;   // IPv4
  uint16_t listen_port = 0;  // 0: any free port (tests)
  TlsFiles tls;
  int handshake_timeout_ms = 5000;
  std::vector<std::string> peers;  // IPv4:PORT of other agents to dial (the rest are learned)
  int dial_interval_ms = 3000;     // how often every known member is dialled
};

struct MemberState {
  v1::Member member;
  bool self = false;
  bool reachable = false;  // a Hello exchange with it succeeded within 3 dial intervals
  int64_t last_seen_unix = 0;
};

class ControlServer {
 public:
  // Binds and starts accepting on `io` (the agent's io_context thread runs every handler).
  static Result<std::unique_ptr<ControlServer>> Start(boost::asio::io_context& io, const ControlServerOptions& options,
                                                      std::shared_ptr<spdlog::logger> log);
  virtual ~ControlServer() = default;
  virtual uint16_t port() const = 0;
  // Members this node knows (itself first), with reachability.
  virtual std::vector<MemberState> members() const = 0;
  virtual void Stop() = 0;
};

}  // namespace gapsync::transport
