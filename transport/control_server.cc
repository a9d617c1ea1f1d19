#include "transport/control_server.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <boost/asio/ssl.hpp>
#include <map>
#include <mutex>
#include <set>

#include "proto/frame.h"
#include "proto/ids.h"
#include "transport/address.h"
#include "transport/cluster_ca.h"
#include "transport/member_table.h"

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;

namespace gapsync::transport {
namespace {

// Offers carry a whole signed manifest (up to 64 MiB) and its torrent.
constexpr uint32_t kMaxOfferFrame = 80u << 20;
// Time to send or receive one Offer: 80 MiB at ~3 MB/s.
constexpr int kOfferTimeoutMs = 30'000;

// Reads one length-prefixed ControlMessage of at most `max` bytes from `stream` into
// `header`/`body`, then calls done("", message) or done(reason, {}).
template <class Stream>
void ReadMessage(Stream& stream, unsigned char (&header)[4], std::string& body, uint32_t max,
                 std::function<void(const std::string&, const v1::ControlMessage&)> done) {
  asio::async_read(stream, asio::buffer(header), [&stream, &header, &body, max, done](const boost::system::error_code& ec, size_t) {
    if (ec) return done(ec.message(), {});
    const uint32_t n = DecodeFrameLength(header);
    if (n > max) return done("frame of " + std::to_string(n) + " bytes", {});
    body.assign(n, '\0');
    asio::async_read(stream, asio::buffer(body), [&body, done](const boost::system::error_code& ec2, size_t) {
      if (ec2) return done(ec2.message(), {});
      auto msg = DecodeControlMessage(body);
      if (!msg.ok()) return done(msg.error().message, {});
      done("", msg.value());
    });
  });
}

template <class Stream>
void ReadHello(Stream& stream, unsigned char (&header)[4], std::string& body,
               std::function<void(const std::string&, const v1::Hello&)> done) {
  ReadMessage(stream, header, body, kMaxFrame, [done](const std::string& error, const v1::ControlMessage& msg) {
    if (!error.empty()) return done(error, {});
    if (!msg.has_hello()) return done("malformed hello", {});
    done("", msg.hello());
  });
}

std::string PeerName(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return "";
  char buf[256] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  X509_free(cert);
  return buf;
}

class ControlServerImpl final : public ControlServer {
 public:
  ControlServerImpl(asio::io_context& io, ControlServerOptions o, ControlHooks hooks, std::shared_ptr<spdlog::logger> log)
      : io_(io),
        o_(std::move(o)),
        hooks_(std::move(hooks)),
        log_(std::move(log)),
        ctx_(ssl::context::tls_server),
        client_ctx_(ssl::context::tls_client),
        acceptor_(io),
        dial_timer_(io),
        members_(o_.node, 3 * o_.dial_interval_ms / 1000 + 1) {}

  Status Init() {
    auto cn = VerifyNodeCertificate(o_.tls.ca, o_.tls.cert);
    if (!cn.ok()) return cn.error();
    if (cn.value() != o_.node) {
      return MakeError(Errc::kInvalidArgument, o_.tls.cert + ": certificate is for node \"" + cn.value() +
                                                   "\", but this node is \"" + o_.node + "\"");
    }
    boost::system::error_code ec;
    SSL_CTX_set_min_proto_version(ctx_.native_handle(), TLS1_3_VERSION);
    ctx_.load_verify_file(o_.tls.ca, ec);
    if (!ec) ctx_.use_certificate_chain_file(o_.tls.cert, ec);
    if (!ec) ctx_.use_private_key_file(o_.tls.key, ssl::context::pem, ec);
    if (ec) return MakeError(Errc::kInvalidArgument, "control plane TLS (" + o_.tls.cert + ", " + o_.tls.key + "): " + ec.message());
    ctx_.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    SSL_CTX_set_min_proto_version(client_ctx_.native_handle(), TLS1_3_VERSION);
    client_ctx_.load_verify_file(o_.tls.ca, ec);
    if (!ec) client_ctx_.use_certificate_chain_file(o_.tls.cert, ec);
    if (!ec) client_ctx_.use_private_key_file(o_.tls.key, ssl::context::pem, ec);
    if (ec) return MakeError(Errc::kInvalidArgument, "control plane TLS client: " + ec.message());
    client_ctx_.set_verify_mode(ssl::verify_peer);

    tcp::endpoint ep(asio::ip::make_address_v4(o_.listen_host, ec), o_.listen_port);
    if (!ec) acceptor_.open(tcp::v4(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return MakeError(Errc::kIo, "control plane: cannot listen on " + o_.listen_host + ":" +
                                      std::to_string(o_.listen_port) + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    self_.set_node(o_.node);
    self_.set_address(o_.listen_host + ":" + std::to_string(port_));
    self_.set_data_address(o_.data_address);
    Accept();
    log_->info("control plane: listening on {} (mutual TLS, cluster CA {})", self_.address(), o_.tls.ca);
    DialRound();
    return OkStatus();
  }

  uint16_t port() const override { return port_; }

  std::vector<MemberState> members() const override {
    std::lock_guard lock(mu_);
    const int64_t now = Now();
    std::vector<MemberState> out{{self_, true, true, now, {}}};
    for (auto& m : members_.Members(now)) out.push_back(std::move(m));
    return out;
  }

  void DialAllNow() override {
    asio::post(io_, [this] {
      if (stopping_) return;
      dial_timer_.cancel();
      DialRound(/*all=*/true);
    });
  }

  void Stop() override {
    stopping_ = true;
    boost::system::error_code ignored;
    dial_timer_.cancel();
    acceptor_.close(ignored);
    for (auto& c : conns_) {
      c->timer.cancel();
      c->stream.lowest_layer().close(ignored);
    }
    conns_.clear();
    for (auto& d : outs_) {
      d->timer.cancel();
      d->stream.lowest_layer().close(ignored);
    }
    outs_.clear();
  }

 private:
  struct Conn {
    Conn(tcp::socket s, ssl::context& ctx, asio::io_context& io) : stream(std::move(s), ctx), timer(io) {}
    ssl::stream<tcp::socket> stream;
    asio::steady_timer timer;
    std::string peer;  // address, for logs
    std::string node;  // from its certificate
    unsigned char header[4] = {0, 0, 0, 0};
    std::string body, out;
  };

  void Accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
      if (ec) return;  // closed: stopping
      boost::system::error_code pe;
      auto remote = socket.remote_endpoint(pe);
      auto conn = std::make_shared<Conn>(std::move(socket), ctx_, io_);
      conn->peer = pe ? "?" : remote.address().to_string() + ":" + std::to_string(remote.port());
      conns_.insert(conn);
      Handshake(conn);
      Accept();
    });
  }

  void Handshake(const std::shared_ptr<Conn>& c) {
    c->timer.expires_after(std::chrono::milliseconds(o_.handshake_timeout_ms));
    c->timer.async_wait([this, c](const boost::system::error_code& ec) {
      if (!ec) Drop(c, "no handshake within " + std::to_string(o_.handshake_timeout_ms) + " ms");
    });
    c->stream.async_handshake(ssl::stream_base::server, [this, c](const boost::system::error_code& ec) {
      if (ec) return Drop(c, ec.message());
      c->node = PeerName(c->stream.native_handle());
      // Logged at info for a node not currently reachable (a first contact, a return).
      log_->log(IsReachable(c->node) ? spdlog::level::debug : spdlog::level::info, "control plane: {} is node {}", c->peer, c->node);
      c->out = EncodeFrame(MakeHello());
      asio::async_write(c->stream, asio::buffer(c->out), [this, c](const boost::system::error_code& wec, size_t) {
        if (wec) return Drop(c, wec.message());
        ReadClientHello(c);
      });
    });
  }

  void ReadClientHello(const std::shared_ptr<Conn>& c) {
    ReadHello(c->stream, c->header, c->body, [this, c](const std::string& error, const v1::Hello& hello) {
      if (!error.empty()) return Drop(c, error);
      const auto& self = hello.self();
      if (self.node() != c->node) return Drop(c, "hello names node \"" + self.node() + "\", its certificate \"" + c->node + "\"");
      Learn(hello, self.node());
      log_->debug("control plane: hello from node {} ({})", self.node(), self.address());
      if (hooks_.news && hooks_.news(hello) && !self.address().empty() && dialing_.insert(self.address()).second) {
        Dial(self.address());
      }
      ServeRequests(c);
    });
  }

  // After the Hellos: answers the dialler's OfferRequests until it closes.
  void ServeRequests(const std::shared_ptr<Conn>& c) {
    c->timer.expires_after(std::chrono::milliseconds(o_.handshake_timeout_ms));
    c->timer.async_wait([this, c](const boost::system::error_code& ec) {
      if (!ec) Close(c);
    });
    ReadMessage(c->stream, c->header, c->body, kMaxFrame, [this, c](const std::string& error, const v1::ControlMessage& msg) {
      if (!error.empty()) return Close(c);  // the dialler is done (or gone)
      if (!msg.has_offer_request()) return Drop(c, "unexpected message after hello");
      c->timer.expires_after(std::chrono::milliseconds(kOfferTimeoutMs));  // for the reply
      c->timer.async_wait([this, c](const boost::system::error_code& ec) {
        if (!ec) Drop(c, "offer not sent within " + std::to_string(kOfferTimeoutMs / 1000) + " s");
      });
      v1::ControlMessage reply;
      if (hooks_.offer) {
        *reply.mutable_offer() = hooks_.offer(c->node, msg.offer_request());
      } else {
        reply.mutable_offer()->set_error("this node offers no releases");
      }
      c->out = EncodeFrame(reply);
      asio::async_write(c->stream, asio::buffer(c->out), [this, c](const boost::system::error_code& wec, size_t) {
        if (wec) return Drop(c, wec.message());
        ServeRequests(c);
      });
    });
  }

  v1::ControlMessage MakeHello() const {
    v1::ControlMessage msg;
    *msg.mutable_hello()->mutable_self() = self_;
    for (const auto& m : members()) *msg.mutable_hello()->add_members() = m.member;
    if (hooks_.releases) {
      for (auto& r : hooks_.releases()) *msg.mutable_hello()->add_releases() = std::move(r);
    }
    return msg;
  }

  bool IsReachable(const std::string& node) const {
    std::lock_guard lock(mu_);
    return members_.IsReachable(node, Now());
  }

  static int64_t Now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  }

  // Merges a Hello: its sender is seen now; the members it lists become known (and dialled).
  void Learn(const v1::Hello& hello, const std::string& verified_sender) {
    std::lock_guard lock(mu_);
    const auto learned = members_.Learn(hello, verified_sender, Now());
    if (!learned.sender_taken) {
      log_->warn("control plane: node {} announces unusable addresses (\"{}\", \"{}\"); ignored", verified_sender,
                 hello.self().address().substr(0, 64), hello.self().data_address().substr(0, 64));
    } else if (learned.newly_reachable) {
      log_->info("control plane: node {} ({}) is reachable", verified_sender, hello.self().address());
    }
  }

  // Every dial interval: dial each configured peer and each known member (not ourselves).
  // One exchange per pair of members and interval is enough (Hellos go both ways): a learned
  // member is dialled by the one of the two whose name sorts first, or by either when it has not
  // been heard from for two intervals; configured peers are always dialled. `all`: every member
  // (something changed here that they should hear about now).
  void DialRound(bool all = false) {
    if (stopping_) return;
    std::set<std::string> targets(o_.peers.begin(), o_.peers.end());
    {
      std::lock_guard lock(mu_);
      const int64_t now = Now();
      const int64_t quiet = 2 * o_.dial_interval_ms / 1000 + 1;
      for (const auto& m : members_.Members(now)) {
        if (m.member.address().empty()) continue;
        if (all || o_.node < m.member.node() || now - m.last_seen_unix > quiet) targets.insert(m.member.address());
      }
    }
    targets.erase(self_.address());
    for (const auto& t : targets) {
      if (!dialing_.insert(t).second) continue;  // still busy with the last round
      Dial(t);
    }
    dial_timer_.expires_after(std::chrono::milliseconds(o_.dial_interval_ms));
    dial_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) DialRound();
    });
  }

  struct Out {
    Out(asio::io_context& io, ssl::context& ctx) : stream(io, ctx), timer(io) {}
    ssl::stream<tcp::socket> stream;
    asio::steady_timer timer;
    std::string target, node;
    std::vector<v1::OfferRequest> wanted;
    v1::OfferRequest asking;
    unsigned char header[4] = {0, 0, 0, 0};
    std::string body, out;
  };

  void Dial(const std::string& target) {
    auto parsed = ParseIpv4Endpoint(target);
    boost::system::error_code ec;
    auto addr = parsed ? asio::ip::make_address_v4(parsed->host, ec) : asio::ip::address_v4();
    if (!parsed || ec) {
      dialing_.erase(target);
      return;
    }
    tcp::endpoint ep(addr, parsed->port);
    auto d = std::make_shared<Out>(io_, client_ctx_);
    d->target = target;
    outs_.insert(d);
    d->timer.expires_after(std::chrono::milliseconds(o_.handshake_timeout_ms));
    d->timer.async_wait([this, d](const boost::system::error_code& tec) {
      if (!tec) EndDial(d, "no answer within " + std::to_string(o_.handshake_timeout_ms) + " ms");
    });
    d->stream.lowest_layer().async_connect(ep, [this, d](const boost::system::error_code& cec) {
      if (cec) return EndDial(d, cec.message());
      d->stream.async_handshake(ssl::stream_base::client, [this, d](const boost::system::error_code& hec) {
        if (hec) return EndDial(d, hec.message());
        d->node = PeerName(d->stream.native_handle());
        ReadHello(d->stream, d->header, d->body, [this, d](const std::string& error, const v1::Hello& hello) {
          if (!error.empty()) return EndDial(d, error);
          if (hello.self().node() != d->node) return EndDial(d, "hello names another node than its certificate");
          Learn(hello, d->node);
          if (hooks_.wants) d->wanted = hooks_.wants(d->node, hello);
          d->out = EncodeFrame(MakeHello());
          asio::async_write(d->stream, asio::buffer(d->out), [this, d](const boost::system::error_code& wec, size_t) {
            if (wec) return EndDial(d, wec.message());
            AskNext(d);
          });
        });
      });
    });
  }

  // Asks the dialled member for the next wanted Offer, one at a time; closes when none is left.
  void AskNext(const std::shared_ptr<Out>& d) {
    if (d->wanted.empty()) return EndDial(d, "");
    d->asking = d->wanted.front();
    d->wanted.erase(d->wanted.begin());
    v1::ControlMessage msg;
    *msg.mutable_offer_request() = d->asking;
    d->out = EncodeFrame(msg);
    // A new deadline per Offer (expires_after cancels the pending wait, so wait again).
    d->timer.expires_after(std::chrono::milliseconds(kOfferTimeoutMs));
    d->timer.async_wait([this, d](const boost::system::error_code& tec) {
      if (!tec) EndDial(d, "no offer within " + std::to_string(kOfferTimeoutMs / 1000) + " s");
    });
    asio::async_write(d->stream, asio::buffer(d->out), [this, d](const boost::system::error_code& wec, size_t) {
      if (wec) return EndDial(d, wec.message());
      ReadMessage(d->stream, d->header, d->body, kMaxOfferFrame, [this, d](const std::string& error, const v1::ControlMessage& msg2) {
        if (!error.empty()) return EndDial(d, error);
        if (!msg2.has_offer()) return EndDial(d, "answer to an offer request is not an offer");
        if (hooks_.offered) hooks_.offered(d->node, d->asking, msg2.offer());
        AskNext(d);
      });
    });
  }

  void EndDial(const std::shared_ptr<Out>& d, const std::string& why) {
    if (!outs_.count(d)) return;
    if (!why.empty()) log_->debug("control plane: dial {}{}: {}", d->target, d->node.empty() ? "" : " (" + d->node + ")", why);
    boost::system::error_code ignored;
    d->timer.cancel();
    d->stream.lowest_layer().close(ignored);
    dialing_.erase(d->target);
    outs_.erase(d);
  }

  void Drop(const std::shared_ptr<Conn>& c, const std::string& why) {
    if (!conns_.count(c)) return;
    log_->warn("control plane: dropped {}{}: {}", c->peer, c->node.empty() ? "" : " (node " + c->node + ")", why);
    Close(c);
  }

  void Close(const std::shared_ptr<Conn>& c) {
    boost::system::error_code ignored;
    c->timer.cancel();
    c->stream.lowest_layer().close(ignored);
    conns_.erase(c);
  }

  asio::io_context& io_;
  ControlServerOptions o_;
  ControlHooks hooks_;
  std::shared_ptr<spdlog::logger> log_;
  ssl::context ctx_;
  ssl::context client_ctx_;
  tcp::acceptor acceptor_;
  asio::steady_timer dial_timer_;
  uint16_t port_ = 0;
  v1::Member self_;
  bool stopping_ = false;                  // io thread only
  std::set<std::shared_ptr<Conn>> conns_;  // io thread only
  std::set<std::shared_ptr<Out>> outs_;    // io thread only
  std::set<std::string> dialing_;          // io thread only
  mutable std::mutex mu_;
  MemberTable members_;  // guarded by mu_
};

}  // namespace

Result<std::unique_ptr<ControlServer>> ControlServer::Start(asio::io_context& io, const ControlServerOptions& options,
                                                            ControlHooks hooks, std::shared_ptr<spdlog::logger> log) {
  auto server = std::make_unique<ControlServerImpl>(io, options, std::move(hooks), std::move(log));
  GS_RETURN_IF_ERROR(server->Init());
  return std::unique_ptr<ControlServer>(std::move(server));
}

}  // namespace gapsync::transport
