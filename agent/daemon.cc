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
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
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
#include "proto/files.h"
#include "transport/control_server.h"
#include "transport/data_plane.h"

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
    if (config_.bittorrent_listen.port != 0) GS_RETURN_IF_ERROR(StartDataPlane());
    if (config_.listen.port != 0) {
      transport::ControlServerOptions co;
      co.node = config_.node;
      co.listen_host = config_.listen.host;
      co.listen_port = config_.listen.port;
      co.tls = {config_.tls_ca, config_.tls_cert, config_.tls_key};
      for (const auto& p : config_.peers) co.peers.push_back(p.str());
      if (data_) co.data_address = config_.bittorrent_listen.host + ":" + std::to_string(data_->port());
      GS_ASSIGN_OR_RETURN(control_, transport::ControlServer::Start(io_, co, Hooks(), log_));
      if (data_) PeerRound();
    }
    log_->info("node {} ready: store {}, local API {}", config_.node, config_.store_path(), config_.api_socket);
    if (!config_.peers.empty() && config_.listen.port == 0) {
      log_->warn("peers are configured but without listen/tls this agent cannot reach them");
    }
    io_.run();
    if (worker_.joinable()) worker_.join();
    if (data_) data_->Stop();
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
    json node = {{"node", config_.node}, {"self", true}, {"reachable", true}, {"store", listing.value()}, {"members", json::array()},
                 {"releases", ReleasesJson(LocalReleases())}};
    json others = json::array();
    if (control_) {
      for (const auto& m : control_->members()) {
        node["members"].push_back({{"node", m.member.node()}, {"address", m.member.address()}, {"self", m.self},
                                   {"reachable", m.reachable}, {"last_seen_unix", m.last_seen_unix}});
        if (m.self) continue;
        others.push_back({{"node", m.member.node()}, {"self", false}, {"address", m.member.address()},
                          {"reachable", m.reachable}, {"last_seen_unix", m.last_seen_unix},
                          {"releases", ReleasesJson(m.releases)}});
      }
    }
    {
      std::lock_guard lock(status_mu_);
      node["ingest"] = ingest_release_.empty()
                           ? json(nullptr)
                           : json{{"bundle", ingest_bundle_}, {"release", ingest_release_},
                                  {"bytes_done", ingest_bytes_.load()}, {"bytes_total", ingest_total_}};
    }
    json nodes = json::array({node});
    for (auto& o : others) nodes.push_back(std::move(o));
    r.set_json(json{{"nodes", nodes}}.dump());
    return r;
  }

  // What other nodes reported is as of their last Hello (at most a few seconds old).
  static json ReleasesJson(const std::vector<v1::ReleaseState>& releases) {
    json out = json::array();
    for (const auto& r : releases) {
      const double pct = r.bytes_total() == 0 ? 100.0 : 100.0 * static_cast<double>(r.bytes_have()) / static_cast<double>(r.bytes_total());
      out.push_back({{"release", r.app() + "@" + r.version()}, {"app", r.app()}, {"version", r.version()},
                     {"release_digest", r.release_digest()}, {"complete", r.complete()}, {"bytes_have", r.bytes_have()},
                     {"bytes_total", r.bytes_total()}, {"percent", std::floor(pct * 10) / 10},
                     {"download_rate", r.download_rate()}, {"upload_rate", r.upload_rate()}, {"uploaded", r.uploaded()}, {"info_hash", r.info_hash()},
                     {"error", r.error()}});
    }
    return out;
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
      AfterIngest(bundle.value());
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
    peer_timer_.cancel();
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

  // ---- Cluster spread: releases announced over the control plane, moved by the data plane ----
  // io thread only, except where noted.

  struct Known {
    v1::Offer offer;                 // signed manifest + torrent info, handed to members that ask
    store::StoredRelease release;
    std::vector<BlobDigest> needed;  // every blob of the release (empty ones too)
    transport::TorrentLayout layout;
    std::string from;                // who offered it ("" when this node's own store did)
    bool complete = false;
    std::string error;
  };

  std::string OffersDir() const { return config_.data_dir + "/offers"; }
  std::string OfferPath(const std::string& release_digest) const {
    return OffersDir() + "/" + release_digest.substr(release_digest.find(':') + 1) + ".pb";
  }

  Status StartDataPlane() {
    transport::DataPlaneOptions o;
    o.listen_host = config_.bittorrent_listen.host;
    o.listen_port = config_.bittorrent_listen.port;
    o.tls = config_.data_plane_tls;
    o.receive_buffer = config_.data_plane_receive_buffer;
    o.tls_files = {config_.tls_ca, config_.tls_cert, config_.tls_key};
    const char* corrupt = std::getenv("GAPSYNC_TEST_CORRUPT_UPLOADS");
    o.corrupt_uploads_for_test = corrupt != nullptr && std::string(corrupt) == "1";
    if (o.corrupt_uploads_for_test) log_->warn("test hook: this node corrupts every block it uploads");
    transport::DataPlaneCallbacks cb;
    cb.blob_done = [this](const ReleaseDigest&, const BlobDigest&) {
      asio::post(io_, [this] { CheckComplete(); });
    };
    cb.failed = [this](const ReleaseDigest& key, const Error& why) {
      asio::post(io_, [this, key, why] { Failed(key.str(), why); });
    };
    GS_ASSIGN_OR_RETURN(data_, transport::DataPlane::Start(*store_, o, std::move(cb), log_));
    std::error_code fec;
    std::filesystem::create_directories(OffersDir(), fec);
    if (fec) return MakeError(Errc::kIo, OffersDir() + ": cannot create: " + fec.message());
    // Every complete release is served; every fetch that was under way resumes.
    GS_ASSIGN_OR_RETURN(auto releases, store_->ListReleases());
    for (const auto& rel : releases) ServeLocal(rel, LoadOffer(rel.release_digest.str()));
    for (const auto& entry : std::filesystem::directory_iterator(OffersDir(), fec)) {
      if (entry.path().extension() != ".pb") continue;
      const std::string digest = "sha256:" + entry.path().stem().string();
      auto offer = LoadOffer(digest);
      if (offer && !known_.count(digest)) (void)Accept(*offer, "the fetch under way before the restart", false);
    }
    return OkStatus();
  }

  std::optional<v1::Offer> LoadOffer(const std::string& release_digest) {
    std::ifstream in(OfferPath(release_digest), std::ios::binary);
    if (!in) return std::nullopt;
    v1::Offer offer;
    if (!offer.ParseFromIstream(&in)) {
      log_->warn("{}: unreadable; ignored", OfferPath(release_digest));
      return std::nullopt;
    }
    return offer;
  }

  // Serves a complete release of the store, with its kept Offer if that still fits this node
  // (another cluster CA or data_plane_tls setting makes another torrent), else a new one.
  void ServeLocal(const store::StoredRelease& rel, std::optional<v1::Offer> offer) {
    if (offer && Accept(*offer, "this node's store", true).ok()) return;
    if (offer) {
      std::error_code ec;
      std::filesystem::remove(OfferPath(rel.release_digest.str()), ec);
      known_.erase(rel.release_digest.str());
    }
    auto built = MakeOffer(rel);
    if (!built.ok()) {
      log_->error("release {}: cannot serve it: {}", rel.id.str(), built.error().message);
      return;
    }
    auto st = Accept(built.value(), "this node's store", true);
    if (!st.ok()) log_->error("release {}: cannot serve it: {}", rel.id.str(), st.error().message);
  }

  // Any thread: the Offer for a complete release in the store (hashes every piece), kept on disk.
  Result<v1::Offer> MakeOffer(const store::StoredRelease& rel) {
    v1::BundleManifest m;
    if (!m.ParseFromString(rel.manifest)) return MakeError(Errc::kCorrupt, "stored manifest does not parse");
    auto layout = LayoutOf(m);
    v1::Offer offer;
    offer.set_manifest(rel.manifest);
    offer.set_signature(rel.signature);
    if (layout.num_pieces > 0) {
      GS_ASSIGN_OR_RETURN(auto info, transport::BuildTorrentInfo(*store_, layout, data_->tls_root_pem(), rel.release_digest));
      offer.set_torrent_info(info);
    }
    auto st = WriteNewFile(OfferPath(rel.release_digest.str()), 0644, offer.SerializeAsString());
    if (!st.ok() && st.error().code != Errc::kConflict) return st.error();
    return offer;
  }

  transport::TorrentLayout LayoutOf(const v1::BundleManifest& m) const {
    std::vector<transport::BlobSpec> specs;
    for (const auto& b : m.release().blobs()) {
      auto d = BlobDigest::Parse(b.digest());
      if (d.ok()) specs.push_back({d.value(), b.size(), b.media_type()});
    }
    return transport::TorrentLayout::Make(specs, store_->chunk_size());
  }

  // An Offer from `from` (a member, or this node's own store/disk): the vendor signature is
  // checked again with this node's trusted keys, the torrent against the signed blob list; then
  // the release is served and fetched. Errors: kBadSignature/kCorrupt/kConflict when the Offer is
  // refused for what it is (logged), others (kIo, kNoSpace) when this node could not take it now.
  Status Accept(const v1::Offer& offer, const std::string& from, bool local) {
    auto loaded = VerifySignedManifest(offer.manifest(), offer.signature(), trusted_, "manifest", "signature");
    v1::BundleManifest parsed;
    const std::string what = parsed.ParseFromString(offer.manifest()) ? parsed.release().app() + "@" + parsed.release().version()
                                                                       : "(unparseable)";
    auto refuse = [&](const Error& e) {
      log_->warn("release announcement {} from {} refused: {}", what, from, e.message);
      return e;
    };
    if (!loaded.ok()) return refuse(loaded.error());
    const auto& m = loaded->manifest;
    Known k;
    k.offer = offer;
    k.from = local ? "" : from;
    k.release.id = ReleaseId{m.release().app(), m.release().version()};
    k.release.manifest = offer.manifest();
    k.release.signature = offer.signature();
    k.release.release_digest = loaded->release_digest;
    k.release.blobs = loaded->blob_digests;
    k.release.ingested_unix = std::time(nullptr);
    k.needed = loaded->blob_digests;
    k.layout = LayoutOf(m);
    const std::string digest = k.release.release_digest.str();
    const std::string key = k.release.id.str();
    if (known_.count(digest)) return OkStatus();
    auto existing = store_->GetRelease(k.release.id);
    if (existing.ok() && existing.value() && existing.value()->release_digest != k.release.release_digest) {
      return refuse(MakeError(Errc::kConflict, "this node holds another release with that name and version (" +
                                                   existing.value()->release_digest.str() + ")"));
    }
    if (k.layout.num_pieces > 0) {
      if (!data_) return MakeError(Errc::kInternal, "no data plane");
      auto st = transport::CheckTorrentInfo(offer.torrent_info(), k.layout, data_->tls_root_pem(), k.release.release_digest);
      if (!st.ok()) return local ? st : refuse(st.error());
    }
    if (!local) {
      auto st = WriteNewFile(OfferPath(digest), 0644, offer.SerializeAsString());
      if (st.ok() || st.error().code == Errc::kConflict) st = store_->KeepPending(k.release);
      if (!st.ok()) {
        log_->error("release {} from {}: {}", key, from, st.error().message);
        return st;
      }
      log_->info("release {} announced by {} (signed by {}): fetching {} blobs, {} bytes", key, from, loaded->signer,
                 k.layout.blobs.size(), k.layout.total_bytes);
    }
    // Empty blobs never travel: they are complete as soon as they are named.
    for (size_t i = 0; i < k.needed.size(); ++i) {
      if (m.release().blobs(static_cast<int>(i)).size() == 0) (void)store_->CompletePieces(k.needed[i]);
    }
    (void)store_->Sync();
    known_[digest] = k;
    if (local && control_) control_->DialAllNow();  // tell every member now, not at the next round
    if (local) log_->info("serving release {} ({} blobs, {} bytes)", key, k.layout.blobs.size(), k.layout.total_bytes);
    if (k.layout.num_pieces > 0) {
      auto st = data_->Add(k.release.release_digest, key, k.layout, offer.torrent_info());
      if (!st.ok()) {
        known_[digest].error = st.error().message;
        log_->error("release {}: {}", key, st.error().message);
      }
    }
    CheckComplete();
    return OkStatus();
  }

  // A transfer stopped. Pieces that do not hash to the signed digests mean the torrent (from the
  // member that offered it) was wrong: it is dropped, that member's offer is not taken again, and
  // the next member that announces the release is asked. Anything else (disk full) is reported.
  void Failed(const std::string& digest, const Error& why) {
    auto it = known_.find(digest);
    if (it == known_.end()) return;
    it->second.error = why.message;
    if (why.code != Errc::kCorrupt || it->second.from.empty()) return;
    log_->warn("release {}: the torrent {} offered does not match the signed blobs; asking another member",
               it->second.release.id.str(), it->second.from);
    refused_.insert(it->second.from.substr(it->second.from.rfind(' ') + 1) + " " + digest);
    data_->Remove(it->second.release.release_digest);
    std::error_code ec;
    std::filesystem::remove(OfferPath(digest), ec);
    known_.erase(it);
  }

  // A blob arrived: a release is complete when every blob it needs is in the store.
  void CheckComplete() {
    for (auto& [digest, k] : known_) {
      if (k.complete) continue;
      bool all = true;
      for (const auto& d : k.needed) {
        auto st = store_->Stat(d);
        if (!st.ok() || !st.value()) {
          all = false;
          break;
        }
      }
      if (!all) continue;
      const std::string key = k.release.id.str();
      auto existing = store_->GetRelease(k.release.id);
      const bool had = existing.ok() && existing.value();
      Status st = had ? OkStatus() : store_->PutRelease(k.release);
      if (!st.ok()) {
        k.error = st.error().message;
        log_->error("release {}: {}", key, k.error);
        continue;
      }
      k.complete = true;
      k.error.clear();
      if (!had) log_->info("release {} complete: every blob verified ({} bytes)", key, k.layout.total_bytes);
    }
  }

  // After a local ingest (worker thread): hash the release's pieces, then serve it.
  void AfterIngest(const LoadedBundle& bundle) {
    if (!data_) return;
    ReleaseId id{bundle.manifest.release().app(), bundle.manifest.release().version()};
    auto rel = store_->GetRelease(id);
    if (!rel.ok() || !rel.value()) return;
    auto offer = MakeOffer(*rel.value());
    if (!offer.ok()) {
      log_->error("release {}: cannot serve it: {}", id.str(), offer.error().message);
      return;
    }
    asio::post(io_, [this, rel = *rel.value(), offer = std::move(offer).value()] { ServeLocal(rel, offer); });
  }

  const std::vector<transport::TransferState>& Transfers() {
    auto now = std::chrono::steady_clock::now();
    if (data_ && now - transfers_at_ > std::chrono::milliseconds(500)) {
      transfers_ = data_->Transfers();
      transfers_at_ = now;
    }
    return transfers_;
  }

  std::vector<v1::ReleaseState> LocalReleases() {
    std::vector<v1::ReleaseState> out;
    const auto& transfers = Transfers();
    for (const auto& [digest, k] : known_) {
      v1::ReleaseState r;
      r.set_app(k.release.id.app);
      r.set_version(k.release.id.version);
      r.set_release_digest(digest);
      r.set_complete(k.complete);
      r.set_bytes_total(k.layout.total_bytes);
      r.set_bytes_have(k.complete ? k.layout.total_bytes : 0);
      r.set_offered(true);
      r.set_error(k.error);
      for (const auto& t : transfers) {
        if (t.release.str() != digest) continue;
        if (!k.complete) r.set_bytes_have(t.bytes_have);
        r.set_download_rate(t.download_rate);
        r.set_upload_rate(t.upload_rate);
        r.set_uploaded(t.uploaded);
        r.set_info_hash(t.info_hash);
        if (r.error().empty()) r.set_error(t.error);
      }
      out.push_back(std::move(r));
    }
    return out;
  }

  // An OfferRequest under way (one that got no answer within a minute is forgotten: its dial
  // ended without one).
  bool Asking(const std::string& digest) const {
    auto it = asking_.find(digest);
    return it != asking_.end() && std::chrono::steady_clock::now() - it->second < std::chrono::minutes(1);
  }

  transport::ControlHooks Hooks() {
    transport::ControlHooks h;
    h.releases = [this] { return LocalReleases(); };
    h.wants = [this](const std::string& node, const v1::Hello& hello) {
      std::vector<v1::OfferRequest> out;
      if (!data_) return out;
      for (const auto& r : hello.releases()) {
        if (!r.offered() || known_.count(r.release_digest()) || Asking(r.release_digest()) ||
            refused_.count(node + " " + r.release_digest()) || out.size() >= kMaxOffersPerDial) {
          continue;
        }
        v1::OfferRequest q;
        q.set_app(r.app());
        q.set_version(r.version());
        q.set_release_digest(r.release_digest());
        asking_[r.release_digest()] = std::chrono::steady_clock::now();
        out.push_back(std::move(q));
      }
      return out;
    };
    h.news = [this](const v1::Hello& hello) {
      if (!data_) return false;
      for (const auto& r : hello.releases()) {
        if (r.offered() && !known_.count(r.release_digest()) && !Asking(r.release_digest()) &&
            !refused_.count(hello.self().node() + " " + r.release_digest())) {
          return true;
        }
      }
      return false;
    };
    h.offer = [this](const std::string&, const v1::OfferRequest& q) {
      auto it = known_.find(q.release_digest());
      if (it != known_.end()) return it->second.offer;
      v1::Offer none;
      none.set_error("this node does not hold release " + q.release_digest());
      return none;
    };
    h.offered = [this](const std::string& node, const v1::OfferRequest& q, const v1::Offer& offer) {
      // A refused announcement is not asked for again from the same member (the trust list
      // only changes with a restart); it is logged once.
      asking_.erase(q.release_digest());
      if (!offer.error().empty()) return;
      const std::string once = node + " " + q.release_digest();
      if (refused_.count(once)) return;
      auto st = Accept(offer, "node " + node, false);
      if (!st.ok() && (st.error().code == Errc::kBadSignature || st.error().code == Errc::kCorrupt ||
                       st.error().code == Errc::kConflict || st.error().code == Errc::kInvalidArgument)) {
        refused_.insert(once);  // refused for what it is; a failure of this node's own (disk) is retried
      }
    };
    return h;
  }

  // Every 2 s: the data-plane addresses of the members become every release's peers.
  void PeerRound() {
    if (stopping_ || !control_ || !data_) return;
    std::vector<std::string> peers;
    for (const auto& m : control_->members()) {
      if (!m.self && !m.member.data_address().empty()) peers.push_back(m.member.data_address());
    }
    data_->SetPeers(peers);
    peer_timer_.expires_after(std::chrono::seconds(2));
    peer_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) PeerRound();
    });
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
  // Cluster spread (io thread). Declared last: the data plane stops before the rest goes.
  asio::steady_timer peer_timer_{io_};
  std::map<std::string, Known> known_;  // by release digest
  std::map<std::string, std::chrono::steady_clock::time_point> asking_;  // OfferRequests under way, by digest
  static constexpr size_t kMaxOffersPerDial = 16;
  std::set<std::string> refused_;       // "node digest" announcements refused (logged once)
  std::vector<transport::TransferState> transfers_;
  std::chrono::steady_clock::time_point transfers_at_{};
  std::unique_ptr<transport::DataPlane> data_;
};

}  // namespace

Status RunAgent(const AgentConfig& config) {
  auto log = spdlog::stderr_color_mt("agent");
  log->set_pattern("%Y-%m-%d %H:%M:%S.%e %n %l: %v");
  log->set_level(spdlog::level::from_str(config.log_level));
  GS_ASSIGN_OR_RETURN(auto trusted, LoadTrustedKeys(config.trust));
  store::RocksDbOptions so;
  so.manifest_blobs = ReleaseBlobsOfManifest;  // release records of gapsync up to eae3f3c
  GS_ASSIGN_OR_RETURN(auto store, store::OpenRocksDbStore(config.store_path(), so));
  Agent agent(config, std::move(store), std::move(trusted), log);
  return agent.Run();
}

}  // namespace gapsync::agent
