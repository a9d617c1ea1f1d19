#include "agent/daemon.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>  // before asio: Boost 1.74 + g++ 12 need std::exchange declared
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <optional>
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
    WaitForSignal();
    Accept();
    if (config_.listen.port != 0) {
      transport::ControlServerOptions co;
      co.node = config_.node;
      co.listen_host = config_.listen.host;
      co.listen_port = config_.listen.port;
      co.tls = {config_.tls_ca, config_.tls_cert, config_.tls_key};
      for (const auto& p : config_.peers) co.peers.push_back(p.str());
      GS_ASSIGN_OR_RETURN(control_, transport::ControlServer::Start(io_, co, log_));
    }
    log_->info("node {} ready: store {}, local API {}", config_.node, config_.store_path(), config_.api_socket);
    if (config_.bittorrent_listen.port != 0) {
      log_->warn("bittorrent_listen is configured but not used by this version");
    }
    if (!config_.peers.empty() && config_.listen.port == 0) {
      log_->warn("peers are configured but without listen/tls this agent cannot reach them");
    }
    io_.run();
    if (worker_.joinable()) worker_.join();
    struct stat now {};  // remove the socket only if it is still ours
    if (::lstat(config_.api_socket.c_str(), &now) == 0 && std::make_pair(now.st_dev, now.st_ino) == socket_inode_) {
      ::unlink(config_.api_socket.c_str());
    }
    log_->info("stopped");
    return OkStatus();
  }

 private:
  struct Conn {
    explicit Conn(asio::io_context& io) : socket(io), deadline(io) {}
    local_stream::socket socket;
    asio::steady_timer deadline;     // a client must send its request within kRequestTimeout
    bool waiting_for_ingest = false;  // request read, answer pending: kept open when stopping
    unsigned char header[4] = {0, 0, 0, 0};
    std::string body;
    std::string reply;
  };

  static constexpr auto kRequestTimeout = std::chrono::seconds(30);

  void WaitForSignal() {
    signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      log_->info("signal {}: stopping (a second one ends the process at once)", sig);
      Stop();
      // Back to the default action: a second SIGTERM/SIGINT terminates the process.
      boost::system::error_code ignored;
      signals_.clear(ignored);
    });
  }

  Status Listen() {
    const auto& path = config_.api_socket;
    std::error_code fec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), fec);
    if (fec) return MakeError(Errc::kIo, path + ": cannot create its folder: " + fec.message());
    // A socket file left by a crashed agent is removed; a live agent is not displaced.
    struct stat existing {};
    if (::lstat(path.c_str(), &existing) == 0) {
      if (!S_ISSOCK(existing.st_mode)) {
        return MakeError(Errc::kConflict, path + ": exists and is not a socket; not removing it (check api_socket)");
      }
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
    struct stat mine {};
    if (!ec && ::lstat(path.c_str(), &mine) == 0) socket_inode_ = {mine.st_dev, mine.st_ino};
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return MakeError(Errc::kIo, path + ": cannot listen: " + ec.message());
    return OkStatus();
  }

  void Accept() {
    auto conn = std::make_shared<Conn>(io_);
    acceptor_.async_accept(conn->socket, [this, conn](const boost::system::error_code& ec) {
      if (ec || stopping_) return;  // acceptor closed: stopping
      conns_.insert(conn);
      conn->deadline.expires_after(kRequestTimeout);
      conn->deadline.async_wait([this, conn](const boost::system::error_code& tec) {
        if (!tec && !conn->waiting_for_ingest && conns_.count(conn)) {
          log_->warn("local API: no complete request within 30 s; dropped");
          Drop(conn);
        }
      });
      ReadRequest(conn);
      Accept();
    });
  }

  void ReadRequest(const std::shared_ptr<Conn>& conn) {
    asio::async_read(conn->socket, asio::buffer(conn->header), [this, conn](const boost::system::error_code& ec, size_t) {
      if (ec) return Drop(conn);
      const uint32_t n = DecodeFrameLength(conn->header);
      if (n > kMaxFrame) {
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
      for (const auto& m : control_->members()) {
        node["members"].push_back({{"node", m.member.node()}, {"address", m.member.address()}, {"self", m.self},
                                   {"reachable", m.reachable}, {"last_seen_unix", m.last_seen_unix}});
      }
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

  // Ingests run one at a time (the store has one writer) on a single worker thread, fed from a
  // queue; each answer is posted back to the io_context thread.
  void StartIngest(const std::shared_ptr<Conn>& conn, const v1::IngestRequest& req) {
    conn->waiting_for_ingest = true;
    if (stopping_) return Reply(conn, NotStarted(req));
    {
      std::lock_guard lock(queue_mu_);
      queue_.emplace_back(conn, req);
    }
    queue_cv_.notify_one();
    if (!worker_.joinable()) {
      worker_guard_.emplace(asio::make_work_guard(io_));
      worker_ = std::thread([this] { WorkerLoop(); });
    }
  }

  static v1::ApiResponse NotStarted(const v1::IngestRequest& req) {
    return ErrorResponse(MakeError(Errc::kIncomplete, "ingest of " + req.bundle_dir() +
                                                          " not started: the agent is stopping; run it again"));
  }

  void WorkerLoop() {
    for (;;) {
      std::pair<std::shared_ptr<Conn>, v1::IngestRequest> job;
      {
        std::unique_lock lock(queue_mu_);
        queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) break;  // stopping, nothing left
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      v1::ApiResponse response = stopping_ ? NotStarted(job.second) : RunIngest(job.second);
      asio::post(io_, [this, conn = job.first, response = std::move(response)] { Reply(conn, response); });
    }
    asio::post(io_, [this] { worker_guard_.reset(); });
  }

  // On the worker thread.
  v1::ApiResponse RunIngest(const v1::IngestRequest& req) {
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
    conn->deadline.cancel();
    conn->socket.close(ignored);
    conns_.erase(conn);
  }

  void Stop() {
    stopping_ = true;
    queue_cv_.notify_all();
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    if (control_) control_->Stop();
    // Connections waiting for an ingest keep their socket until it answers; all others go.
    for (auto it = conns_.begin(); it != conns_.end();) {
      if (!(*it)->waiting_for_ingest) {
        (*it)->deadline.cancel();
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
  std::thread worker_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> worker_guard_;
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::pair<std::shared_ptr<Conn>, v1::IngestRequest>> queue_;
  std::pair<dev_t, ino_t> socket_inode_{0, 0};
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
