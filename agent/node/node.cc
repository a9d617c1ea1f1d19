#include "agent/node/node.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <utility>  // before asio: Boost 1.74 + g++ 12 need std::exchange declared
#include <boost/asio.hpp>
#include <optional>

#include "agent/catalog/release_record.h"
#include "agent/catalog/store_summary.h"
#include "agent/node/blocking_work.h"
#include "agent/node/ingest_jobs.h"
#include "agent/node/local_api_server.h"
#include "agent/node/offer_files.h"
#include "agent/node/spread.h"
#include "agent/node/status.h"
#include "transport/control_server.h"
#include "transport/data_plane.h"

namespace asio = boost::asio;

namespace gapsync::agent {

class Node::Parts {
 public:
  Parts(AgentConfig config, NodeOptions options, std::unique_ptr<store::BlobStore> store, std::vector<TrustedKey> trusted,
        std::shared_ptr<spdlog::logger> log)
      : config_(std::move(config)),
        options_(std::move(options)),
        store_(std::move(store)),
        trusted_(std::move(trusted)),
        log_(std::move(log)),
        signals_(loop_),
        work_(loop_),
        offers_(config_.data_dir + "/offers"),
        api_(loop_, config_.api_socket, ApiHandlers(), log_),
        jobs_(loop_, *store_, trusted_, options_.ingest_hooks, [this](const LoadedBundle* b) { AfterIngest(b); }, log_) {}

  // Run() has let everything finish; without it (a Start that failed), the threads that may still
  // use the parts stop first.
  ~Parts() {
    jobs_.Shutdown();
    work_.Stop();
  }

  Status Start() {
    GS_RETURN_IF_ERROR(api_.Start());
    if (options_.handle_signals) WaitForSignal();
    if (config_.bittorrent_listen) GS_RETURN_IF_ERROR(StartDataPlane());
    if (config_.listen) {
      transport::ControlServerOptions co;
      co.node = config_.node;
      co.listen_host = config_.listen->host;
      co.listen_port = config_.listen->port;
      co.tls = {config_.tls_ca, config_.tls_cert, config_.tls_key};
      co.dial_interval_ms = static_cast<int>(options_.dial_interval.count());
      for (const auto& p : config_.peers) co.peers.push_back(p.str());
      if (data_) co.data_address = config_.bittorrent_listen->host + ":" + std::to_string(data_->port());
      GS_ASSIGN_OR_RETURN(control_, transport::ControlServer::Start(loop_, co, spread_ ? spread_->Hooks() : transport::ControlHooks{}, log_));
      if (spread_) spread_->SetControl(control_.get());
    }
    if (!config_.peers.empty() && !config_.listen) {
      log_->warn("peers are configured but without listen/tls this agent cannot reach them");
    }
    RefreshStoreSummary();
    if (spread_) spread_->Start();
    log_->info("node {} ready: store {}, local API {}", config_.node, config_.store_path(), config_.api_socket);
    return OkStatus();
  }

  void Run() {
    loop_.run();
    work_.Stop();
    if (data_) data_->Stop();
    api_.RemoveSocketFile();
    log_->info("stopped");
  }

  void RequestStop() {
    asio::post(loop_, [this] { Stop(); });
  }

  uint16_t control_port() const { return control_ ? control_->port() : 0; }

 private:
  void WaitForSignal() {
    signals_.add(SIGTERM);
    signals_.add(SIGINT);
    signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      log_->info("signal {}: stopping (a second one ends the process at once)", sig);
      Stop();
      // Back to the default action: a second SIGTERM/SIGINT terminates the process.
      boost::system::error_code ignored;
      signals_.clear(ignored);
    });
  }

  // Loop thread. What still runs (an ingest's answer, the worker's results) finishes; then the
  // loop runs out of work and Run() returns.
  void Stop() {
    if (stopping_) return;
    stopping_ = true;
    jobs_.Stop();
    api_.Stop();
    if (spread_) spread_->Stop();
    if (control_) control_->Stop();
    boost::system::error_code ignored;
    signals_.cancel(ignored);
  }

  LocalApiHandlers ApiHandlers() {
    LocalApiHandlers h;
    h.status = [this] {
      v1::ApiResponse r;
      std::vector<transport::MemberState> members;
      if (control_) members = control_->members();
      std::vector<v1::ReleaseState> releases;
      if (spread_) releases = spread_->LocalReleases();
      *r.mutable_status() = BuildStatus(config_.node, store_summary_, members, releases, jobs_.Progress());
      return r;
    };
    h.ingest = [this](const v1::IngestRequest& req, std::function<void(v1::ApiResponse)> reply) {
      jobs_.Submit(req, std::move(reply));
    };
    return h;
  }

  Status StartDataPlane() {
    transport::DataPlaneOptions o;
    o.listen_host = config_.bittorrent_listen->host;
    o.listen_port = config_.bittorrent_listen->port;
    o.tls = config_.data_plane_tls;
    o.receive_buffer = config_.data_plane_receive_buffer;
    o.tls_files = {config_.tls_ca, config_.tls_cert, config_.tls_key};
    o.corrupt_uploads_for_test = options_.corrupt_uploads;
    o.libtorrent_settings = options_.libtorrent_settings;
    o.libtorrent_settings_from = options_.libtorrent_settings_from;
    o.progress_log_interval = options_.progress_log_interval;
    if (o.corrupt_uploads_for_test) log_->warn("test hook: this node corrupts every block it uploads");
    transport::DataPlaneCallbacks cb;
    cb.blob_done = [this](const ReleaseDigest& release, const BlobDigest&) {
      asio::post(loop_, [this, release] { spread_->BlobDone(release); });
    };
    cb.failed = [this](const ReleaseDigest& release, const Error& why) {
      asio::post(loop_, [this, release, why] { spread_->Failed(release, why); });
    };
    GS_RETURN_IF_ERROR(offers_.Prepare());  // at start, before the loop runs: a folder that cannot be made stops it
    GS_ASSIGN_OR_RETURN(data_, transport::DataPlane::Start(*store_, o, std::move(cb), log_));
    spread_ = std::make_unique<Spread>(loop_, work_, *store_, trusted_, offers_, *data_,
                                       [this](std::optional<v1::StoreSummary> s) {
                                         if (!s) return RefreshStoreSummary();
                                         store_summary_ = std::move(*s);
                                       },
                                       log_);
    return OkStatus();
  }

  // The store summary status answers with: taken on the worker, kept on the loop; one at a time,
  // and one more if the store changed meanwhile.
  void RefreshStoreSummary() {
    if (summarizing_) {
      summarize_again_ = true;
      return;
    }
    summarizing_ = true;
    work_.Run([this] { return SummarizeStore(*store_); },
              [this](Result<v1::StoreSummary> s) {
                summarizing_ = false;
                if (s.ok()) {
                  store_summary_ = std::move(s).value();
                } else {
                  log_->error("reading the store for status: {}", s.error().message);
                }
                if (summarize_again_ && !stopping_) {
                  summarize_again_ = false;
                  RefreshStoreSummary();
                }
              });
  }

  // Ingest thread, after each ingest: the store summary, then (the release complete) its Offer
  // made and the release served. Both reach the loop before the ingest's answer does.
  void AfterIngest(const LoadedBundle* ingested) {
    if (auto s = SummarizeStore(*store_); s.ok()) {
      asio::post(loop_, [this, s = std::move(s).value()]() mutable { store_summary_ = std::move(s); });
    }
    if (ingested == nullptr || !spread_) return;
    const ReleaseId id{ingested->manifest.release().app(), ingested->manifest.release().version()};
    auto rel = store_->GetRelease(id);
    if (!rel.ok() || !rel.value()) return;
    auto offer = spread_->MakeOffer(*rel.value());
    if (!offer.ok()) {
      log_->error("release {}: cannot serve it: {}", id.str(), offer.error().message);
      return;
    }
    asio::post(loop_, [this, rel = *rel.value(), offer = std::move(offer).value()]() mutable {
      spread_->ServeLocal(std::move(rel), std::move(offer));
    });
  }

  AgentConfig config_;
  NodeOptions options_;
  std::unique_ptr<store::BlobStore> store_;
  std::vector<TrustedKey> trusted_;
  std::shared_ptr<spdlog::logger> log_;
  asio::io_context loop_;
  asio::signal_set signals_;
  BlockingWork work_;
  OfferFiles offers_;
  LocalApiServer api_;
  IngestJobs jobs_;
  v1::StoreSummary store_summary_;  // loop thread
  bool summarizing_ = false, summarize_again_ = false;
  bool stopping_ = false;
  // Declared last, stopped first (Run): the data plane's callbacks post to the loop.
  std::unique_ptr<transport::DataPlane> data_;
  std::unique_ptr<Spread> spread_;
  std::unique_ptr<transport::ControlServer> control_;
};

Node::Node(AgentConfig config, NodeOptions options, std::unique_ptr<store::BlobStore> store, std::vector<TrustedKey> trusted,
           std::shared_ptr<spdlog::logger> log)
    : parts_(std::make_unique<Parts>(std::move(config), std::move(options), std::move(store), std::move(trusted), std::move(log))) {}
Node::~Node() = default;
Status Node::Start() { return parts_->Start(); }
void Node::Run() { parts_->Run(); }
void Node::RequestStop() { parts_->RequestStop(); }
uint16_t Node::control_port() const { return parts_->control_port(); }

Status RunNode(const AgentConfig& config, const NodeOptions& options) {
  auto log = spdlog::stderr_color_mt("agent");
  log->set_pattern("%Y-%m-%d %H:%M:%S.%e %n %l: %v");
  log->set_level(spdlog::level::from_str(config.log_level));
  GS_ASSIGN_OR_RETURN(auto trusted, LoadTrustedKeys(config.trust));
  GS_ASSIGN_OR_RETURN(auto store, OpenNodeStore(config.store_path()));
  Node node(config, options, std::move(store), std::move(trusted), log);
  GS_RETURN_IF_ERROR(node.Start());
  node.Run();
  return OkStatus();
}

}  // namespace gapsync::agent
