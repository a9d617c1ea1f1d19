// The control plane: mutual TLS (TLS 1.3) with certificates of the cluster CA only. A peer
// without such a certificate, or with one from another CA, fails the handshake and gets
// nothing; garbage bytes fail it too; either way the connection is dropped and logged, and the
// agent carries on. After the handshake each side sends a Hello (its name, addresses, the
// members it knows, the releases it holds with progress and rates); the dialler then asks for
// the Offers (signed manifest + torrent) of releases it wants. Every member is dialled every
// dial interval, so membership, releases and progress spread to every node.
#pragma once

#include <utility>  // before asio: Boost 1.74 + g++ 12 need std::exchange declared
#include <boost/asio.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proto/control.pb.h"
#include "proto/error.h"
#include "transport/cluster_ca.h"
#include "transport/member_table.h"

namespace spdlog {
class logger;
}

namespace gapsync::transport {

struct ControlServerOptions {
  std::string node;          // this node's name; must match the CN of `tls.cert`
  std::string listen_host;   // IPv4
  uint16_t listen_port = 0;  // 0: any free port (tests)
  TlsFiles tls;
  int handshake_timeout_ms = 5000;
  std::vector<std::string> peers;  // IPv4:PORT of other agents to dial (the rest are learned)
  int dial_interval_ms = 3000;     // how often every known member is dialled
  std::string data_address;        // this node's BitTorrent listener, announced in Hellos
};

// What the agent plugs in; every hook runs on the io_context thread.
struct ControlHooks {
  // The releases this node holds or is fetching, for its Hellos.
  std::function<std::vector<v1::ReleaseState>()> releases;
  // A member's Hello arrived (dialled or dialling): the Offers to ask it for.
  std::function<std::vector<v1::OfferRequest>(const std::string& node, const v1::Hello& hello)> wants;
  // Answer to a member's OfferRequest (error set when this node cannot offer it).
  std::function<v1::Offer(const std::string& node, const v1::OfferRequest& request)> offer;
  // Whether a Hello a member sent while dialling this node lists anything this node wants: if so
  // it dials that member back at once (only a dialler asks for Offers).
  std::function<bool(const v1::Hello& hello)> news;
  // An Offer this node asked `node` for.
  std::function<void(const std::string& node, const v1::OfferRequest& request, const v1::Offer& offer)> offered;
};

class ControlServer {
 public:
  // Binds and starts accepting on `io` (the agent's io_context thread runs every handler).
  static Result<std::unique_ptr<ControlServer>> Start(boost::asio::io_context& io, const ControlServerOptions& options,
                                                      ControlHooks hooks, std::shared_ptr<spdlog::logger> log);
  virtual ~ControlServer() = default;
  virtual uint16_t port() const = 0;
  // Members this node knows (itself first), with reachability.
  virtual std::vector<MemberState> members() const = 0;
  // Dials every member now (not at the next interval): something changed that they should hear
  // about (a release became available here).
  virtual void DialAllNow() = 0;
  virtual void Stop() = 0;
};

}  // namespace gapsync::transport
