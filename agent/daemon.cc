#include "agent/daemon.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>  // before asio: Boost 1.74 + g++ 12 need std::exchange declared
#include <atomic>
#include <boost/asio.hpp>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "agent/bundle.h"
#include "agent/ingest.h"
#include "agent/keys.h"
#include "agent/local_api.h"
#include "agent/reports.h"
#include "store/blob_store.h"
#include "transport/control_server.h"

namespace asio = boost::asio;
using local_stream = asio::local::stream_protocol;
using nlohmann::json;

namespace gapsync::agent {
namespace {

v1::ApiResponse ErrorResponse(const Error& e) {
  v1::ApiResponse r;
  r.set_exit_code(e.code == Errc::kIncomplete ? 3 : 1);
  r.set_error(e.message);
  return r;
}

class Agent {
 public:
  Agent(AgentConfig config, std::unique_ptr<store::BlobStore> store, std::vector<TrustedKey> trusted,
        std::shared_ptr<spdlog::logger> log)
      : config_(std::move(config)),
        store_(std::move(store)),
        trusted_(std::move(trusted)),
        log_(std::move(log)),
        signals_(io_, SIGTERM, SIGINT),
        acceptor_(io_) {}

  Status Run() {
    GS_RETURN_IF_ERROR(Listen());
    signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      log_->info("signal {}: stopping", sig);
      Stop();
    });
    Accept();
    if (config_.listen.port != 0) {
      transport::ControlServerOptions co;
      co.node = config_.node;
      co.listen_host = config_.listen.host;
      co.listen_port = config_.listen.port;
      co.tls = {config_.tls_ca, config_.tls_cert, config_.tls_key};
      GS_ASSIGN_OR_RETURN(control_, transport::ControlServer::Start(io_, co, log_));
    }
    log_->info("node {} ready: store {}, local API {}", config_.node, config_.store_path(), config_.api_socket);
    if (!config_.peers.empty() || config_.bittorrent_listen.port != 0) {
      log_->warn("peers and bittorrent_listen are configured but not used by this version");
    }
    io_.run();
    for (auto& t : workers_) t.join();
    ::unlink(config_.api_socket.c_str());
    log_->info("stopped");
    return OkStatus();
  }

 private:
  struct Conn {
    explicit Conn(asio::io_context& io) : socket(io) {}
    local_stream::socket socket;
    unsigned char header[4] = {0, 0, 0, 0};
    std::string body;
    std::string reply;
  };

  Status Listen() {
    const auto& path = config_.api_socket;
    std::error_code fec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), fec);
    if (fec) return MakeError(Errc::kIo, path + ": cannot create its folder: " + fec.message());
    // A socket file left by a crashed agent is removed; a live agent is not displaced.
    if (std::filesystem::exists(path, fec)) {
      local_stream::socket probe(io_);
      boost::system::error_code ec;
      probe.connect(local_stream::endpoint(path), ec);
      if (!ec) return MakeError(Errc::kConflict, path + ": another gapsync agent is already listening there");
      ::unlink(path.c_str());
    }
    boost::system::error_code ec;
    acceptor_.open(local_stream(), ec);
    if (!ec) acceptor_.bind(local_stream::endpoint(path), ec);
    if (!ec) ::chmod(path.c_str(), 0600);  // root's CLI only
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return MakeError(Errc::kIo, path + ": cannot listen: " + ec.message());
    return OkStatus();
  }

  void Accept() {
    auto conn = std::make_shared<Conn>(io_);
    acceptor_.async_accept(conn->socket, [this, conn](const boost::system::error_code& ec) {
      if (ec) return;  // acceptor closed: stopping
      conns_.insert(conn);
      ReadRequest(conn);
      Accept();
    });
  }

  void ReadRequest(const std::shared_ptr<Conn>& conn) {
    asio::async_read(conn->socket, asio::buffer(conn->header), [this, conn](const boost::system::error_code& ec, size_t) {
      if (ec) return Drop(conn);
      const uint32_t n = DecodeLength(conn->header);
      if (n > kMaxApiMessage) {
        log_->warn("local API: request of {} bytes refused", n);
        return Drop(conn);
      }
      conn->body.assign(n, '\0');
      asio::async_read(conn->socket, asio::buffer(conn->body), [this, conn](const boost::system::error_code& ec2, size_t) {
        if (ec2) return Drop(conn);
        v1::ApiRequest req;
        if (!req.ParseFromString(conn->body)) {
          log_->warn("local API: malformed request");
          return Reply(conn, ErrorResponse(MakeError(Errc::kInvalidArgument, "malformed request")));
        }
        Dispatch(conn, req);
      });
    });
  }

  void Dispatch(const std::shared_ptr<Conn>& conn, const v1::ApiRequest& req) {
    if (req.has_status()) return Reply(conn, StatusResponse());
    if (req.has_ingest()) return StartIngest(conn, req.ingest());
    Reply(conn, ErrorResponse(MakeError(Errc::kInvalidArgument, "unknown request")));
  }

  v1::ApiResponse StatusResponse() {
    v1::ApiResponse r;
    auto listing = StoreListing(*store_);
    if (!listing.ok()) return ErrorResponse(listing.error());
    json node = {{"node", config_.node}, {"reachable", true}, {"store", listing.value()}, {"members", json::array()}};
    if (control_) {
      for (const auto& m : control_->members()) node["members"].push_back({{"node", m.node()}, {"address", m.address()}});
    }
    {
      std::lock_guard lock(status_mu_);
      node["ingest"] = ingest_release_.empty()
                           ? json(nullptr)
                           : json{{"bundle", ingest_bundle_}, {"release", ingest_release_},
                                  {"bytes_done", ingest_bytes_.load()}, {"bytes_total", ingest_total_}};
    }
    r.set_json(json{{"nodes", json::array({node})}}.dump());
    return r;
  }

  void StartIngest(const std::shared_ptr<Conn>& conn, const v1::IngestRequest& req) {
    if (stopping_) return Reply(conn, ErrorResponse(MakeError(Errc::kIo, "the agent is stopping")));
    auto guard = asio::make_work_guard(io_);
    workers_.emplace_back([this, conn, req, guard = std::move(guard)]() mutable {
      v1::ApiResponse response = RunIngest(req);
      asio::post(io_, [this, conn, response = std::move(response)] { Reply(conn, response); });
      guard.reset();
    });
  }

  // On a worker thread. One ingest at a time: the store has one writer.
  v1::ApiResponse RunIngest(const v1::IngestRequest& req) {
    std::lock_guard one_at_a_time(ingest_mu_);
    if (stopping_) return ErrorResponse(MakeError(Errc::kIo, "the agent is stopping"));
    log_->info("ingest {}: start", req.bundle_dir());
    auto bundle = LoadBundle(req.bundle_dir(), trusted_);
    if (!bundle.ok()) {
      log_->error("ingest {}: {}", req.bundle_dir(), bundle.error().message);
      return ErrorResponse(bundle.error());
    }
    uint64_t total = 0;
    for (const auto& b : bundle->manifest.blobs()) total += b.size();
    {
      std::lock_guard lock(status_mu_);
      ingest_bundle_ = req.bundle_dir();
      ingest_release_ = bundle->manifest.release().app() + "@" + bundle->manifest.release().version();
      ingest_total_ = total;
      ingest_bytes_ = 0;
    }
    IngestOptions o;
    o.quiet = true;
    o.allow_older = req.allow_older();
    o.cancel = &stopping_;
    o.bytes_done = &ingest_bytes_;
    IngestResult result;
    Status st = Ingest(bundle.value(), *store_, o, result);
    {
      std::lock_guard lock(status_mu_);
      ingest_release_.clear();
    }
    v1::ApiResponse r;
    r.set_json(IngestReport(result, st).dump());
    if (!st.ok()) {
      r.set_exit_code(st.error().code == Errc::kIncomplete ? 3 : 1);
      r.set_error(st.error().message);
      log_->error("ingest {}: {}", req.bundle_dir(), st.error().message);
    } else {
      log_->info("ingest {}: {}", req.bundle_dir(), IngestSummary(result));
    }
    return r;
  }

  void Reply(const std::shared_ptr<Conn>& conn, const v1::ApiResponse& response) {
    conn->reply = EncodeFrame(response);
    asio::async_write(conn->socket, asio::buffer(conn->reply),
                      [this, conn](const boost::system::error_code&, size_t) { Drop(conn); });
  }

  void Drop(const std::shared_ptr<Conn>& conn) {
    boost::system::error_code ignored;
    conn->socket.close(ignored);
    conns_.erase(conn);
  }

  void Stop() {
    stopping_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    if (control_) control_->Stop();
    // Connections waiting for a running ingest keep their socket until it answers; idle ones go.
    for (auto it = conns_.begin(); it != conns_.end();) {
      if ((*it)->body.empty()) {
        (*it)->socket.close(ignored);
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
  }

  AgentConfig config_;
  std::unique_ptr<store::BlobStore> store_;
  std::vector<TrustedKey> trusted_;
  std::shared_ptr<spdlog::logger> log_;
  asio::io_context io_;
  asio::signal_set signals_;
  local_stream::acceptor acceptor_;
  std::set<std::shared_ptr<Conn>> conns_;
  std::unique_ptr<transport::ControlServer> control_;
  std::vector<std::thread> workers_;
  std::mutex ingest_mu_;
  std::atomic<bool> stopping_{false};
  std::mutex status_mu_;
  std::string ingest_bundle_, ingest_release_;
  uint64_t ingest_total_ = 0;
  std::atomic<uint64_t> ingest_bytes_{0};
};

}  // namespace

Status RunAgent(const AgentConfig& config) {
  auto log = spdlog::stderr_color_mt("agent");
  log->set_pattern("%Y-%m-%d %H:%M:%S.%e %n %l: %v");
  log->set_level(spdlog::level::from_str(config.log_level));
  GS_ASSIGN_OR_RETURN(auto trusted, LoadTrustedKeys(config.trust));
  GS_ASSIGN_OR_RETURN(auto store, store::OpenRocksDbStore(config.store_path()));
  Agent agent(config, std::move(store), std::move(trusted), log);
  return agent.Run();
}

}  // namespace gapsync::agent
