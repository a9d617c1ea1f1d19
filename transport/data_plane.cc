// DataPlane: the libtorrent session, its release torrents, peers and alerts. The disk side is
// store_disk_io.cc; the session's settings are session_settings.cc.
#include "transport/data_plane.h"

#include <spdlog/spdlog.h>

#include <libtorrent/add_torrent_params.hpp>
#include <libtorrent/alert_types.hpp>
#include <libtorrent/hex.hpp>
#include <libtorrent/ip_filter.hpp>
#include <libtorrent/peer_info.hpp>
#include <libtorrent/session.hpp>
#include <libtorrent/session_params.hpp>
#include <libtorrent/torrent_info.hpp>
#include <libtorrent/torrent_status.hpp>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "transport/address.h"
#include "transport/piece_dealer.h"
#include "transport/session_settings.h"
#include "transport/store_disk_io.h"

namespace gapsync::transport {
namespace {

class DataPlaneImpl final : public DataPlane {
 public:
  DataPlaneImpl(store::PieceStore& store, DataPlaneOptions o, DataPlaneCallbacks cb, std::shared_ptr<spdlog::logger> log)
      : store_(store), o_(std::move(o)), log_(std::move(log)) {
    shared_ = std::make_shared<DiskIoShared>();
    shared_->store = &store_;
    shared_->log = log_;
    shared_->callbacks = std::move(cb);
    shared_->corrupt_uploads = o_.corrupt_uploads_for_test;
    shared_->sync_interval = o_.sync_interval;
  }

  ~DataPlaneImpl() override { Stop(); }

  Status Init() {
    if (o_.tls) {
      std::ifstream in(o_.tls_files.ca);
      std::stringstream ss;
      ss << in.rdbuf();
      ca_pem_ = ss.str();
      if (!in || ca_pem_.empty()) return MakeError(Errc::kNotFound, o_.tls_files.ca + ": cannot read the cluster CA certificate");
    }
    std::vector<std::string> applied;
    GS_ASSIGN_OR_RETURN(auto settings, SessionSettings(o_, applied));
    for (const auto& line : applied) log_->info("data plane: libtorrent setting {}", line);
    const std::string iface = settings.get_str(lt::settings_pack::listen_interfaces);
    // No extensions: peers come from the control plane (no ut_pex), torrents from it too (no
    // ut_metadata), and a failed piece is never kept to be re-read (no smart_ban).
    lt::session_params params(std::move(settings), {});
    auto shared = shared_;
    params.disk_io_constructor = [shared](lt::io_context& ioc, lt::settings_interface const&, lt::counters&) {
      return std::unique_ptr<lt::disk_interface>(new StoreDiskIo(ioc, shared));
    };
    try {
      session_ = std::make_unique<lt::session>(std::move(params));
    } catch (const std::exception& ex) {
      return MakeError(Errc::kIo, std::string("data plane: ") + ex.what());
    }
    // Wait for the listen socket (or its failure) so that port() is right and errors show now.
    for (int i = 0; i < 100 && port_ == 0; ++i) {
      if (!session_->wait_for_alert(lt::milliseconds(100))) continue;
      std::vector<lt::alert*> alerts;
      session_->pop_alerts(&alerts);
      for (auto* a : alerts) {
        if (auto* ok = lt::alert_cast<lt::listen_succeeded_alert>(a)) port_ = static_cast<uint16_t>(ok->port);
        if (auto* bad = lt::alert_cast<lt::listen_failed_alert>(a)) {
          return MakeError(Errc::kIo, "data plane: cannot listen on " + iface + ": " + bad->error.message());
        }
      }
    }
    if (port_ == 0) return MakeError(Errc::kIo, "data plane: no listen socket on " + iface);
    alert_thread_ = std::thread([this] { AlertLoop(); });
    log_->info("data plane: BitTorrent on {}:{} ({})", o_.listen_host, port_,
               o_.tls ? "TLS, cluster CA only" : "plain TCP, no TLS");
    return OkStatus();
  }

  uint16_t port() const override { return port_; }
  const std::string& tls_root_pem() const override { return ca_pem_; }

  Status Add(const ReleaseDigest& release, const std::string& name, const TorrentLayout& layout,
             const std::string& info) override {
    const std::string what = "release " + release.str();
    {
      std::lock_guard lock(mu_);
      if (torrents_.count(release)) return MakeError(Errc::kConflict, what + " is already being served");
    }
    if (layout.num_pieces == 0) return MakeError(Errc::kInvalidArgument, what + " has no bytes to transfer");
    if (layout.chunk_size != store_.chunk_size() || layout.piece_size == 0 || layout.chunk_size % layout.piece_size != 0) {
      return MakeError(Errc::kInvalidArgument, what + ": torrent layout of " + std::to_string(layout.chunk_size) +
                                                   "-byte chunks in " + std::to_string(layout.piece_size) +
                                                   "-byte pieces does not fit the store's " +
                                                   std::to_string(store_.chunk_size()) + "-byte chunks");
    }
    std::string file = "d4:info" + info + "e";
    lt::error_code ec;
    auto ti = std::make_shared<lt::torrent_info>(lt::span<char const>(file.data(), static_cast<std::ptrdiff_t>(file.size())),
                                                 ec, lt::from_span);
    if (ec) return MakeError(Errc::kCorrupt, what + ": torrent info does not parse: " + ec.message());
    if (ti->num_pieces() != static_cast<int>(layout.num_pieces)) {
      return MakeError(Errc::kCorrupt, what + ": torrent has " + std::to_string(ti->num_pieces()) + " pieces, its blobs need " +
                                           std::to_string(layout.num_pieces));
    }
    auto t = std::make_shared<ReleaseTorrent>(release, name.empty() ? release.str() : name, layout);
    t->info_hash = ti->info_hashes().v1;
    for (int p = 0; p < ti->num_pieces(); ++p) t->piece_hashes.push_back(ti->hash_for_piece(lt::piece_index_t{p}));
    lt::add_torrent_params atp;
    atp.ti = ti;
    atp.save_path = ".";  // unused: every byte goes through the store
    atp.flags = lt::torrent_flags::update_subscribe | lt::torrent_flags::apply_ip_filter | lt::torrent_flags::duplicate_is_error;
    atp.have_pieces.resize(static_cast<int>(layout.num_pieces), false);
    {
      std::vector<int> lengths, sizes;  // what a peer asks for of each piece; its size with padding
      for (uint32_t p = 0; p < layout.num_pieces; ++p) {
        lengths.push_back(static_cast<int>(std::min(layout.piece_len(p), layout.blocks_asked(p) * kBlockSize)));
        sizes.push_back(static_cast<int>(layout.piece_len(p)));
      }
      std::weak_ptr<ReleaseTorrent> weak = t;
      auto everything_out = [weak, log = log_] {
        if (auto torrent = weak.lock()) {
          log->debug("data plane: release {}: every piece has left this node once ({} bytes uploaded): offering all of them",
                     torrent->name, torrent->uploaded.load());
        }
      };
      atp.extensions.push_back([lengths, sizes, everything_out](lt::torrent_handle const& th, lt::client_data_t) {
        return MakePieceDealer(th, lengths, sizes, everything_out);
      });
    }
    auto& disk = t->disk;
    disk.blocks_sent.assign(layout.num_pieces, 0);
    disk.missing_chunks.resize(layout.blobs.size(), 0);
    disk.blob_done.resize(layout.blobs.size(), false);
    std::vector<size_t> to_complete;
    for (size_t b = 0; b < layout.blobs.size(); ++b) {
      const auto& blob = layout.blobs[b];
      GS_ASSIGN_OR_RETURN(auto held, store_.HeldPieces(blob.digest, blob.size));
      disk.blob_done[b] = held.visible;
      for (uint32_t c = 0; c < layout.chunks_of(b); ++c) {
        if (c >= held.pieces.size() || !held.pieces[c]) {
          disk.missing_chunks[b]++;
          continue;
        }
        const uint32_t first = layout.first_piece[b] + c * layout.pieces_per_chunk();
        const uint32_t end = std::min(first + layout.pieces_per_chunk(), layout.first_piece[b] + layout.pieces_of(b));
        for (uint32_t p = first; p < end; ++p) atp.have_pieces.set_bit(lt::piece_index_t{static_cast<int>(p)});
        t->bytes_have += layout.chunk_len(b, c);
      }
      if (!disk.blob_done[b] && disk.missing_chunks[b] == 0) to_complete.push_back(b);
    }
    {
      std::lock_guard lock(shared_->mu);
      shared_->by_info_hash[t->info_hash] = t;
    }
    lt::torrent_handle h;
    try {
      h = session_->add_torrent(std::move(atp));
    } catch (const std::exception& ex) {
      return MakeError(Errc::kInternal, what + ": " + ex.what());
    }
    t->set_handle(h);
    if (o_.tls) h.set_ssl_certificate(o_.tls_files.cert, o_.tls_files.key, "");
    std::vector<std::string> peers;
    {
      std::lock_guard lock(mu_);
      torrents_[release] = t;
      peers = peers_;
    }
    Connect(*t, peers);
    if (!to_complete.empty()) {
      std::lock_guard lock(shared_->mu);
      if (shared_->disk) shared_->disk->CompleteLater(t, std::move(to_complete));
    }
    log_->info("data plane: release {}: {} blobs, {} pieces, {} of {} bytes held", t->name, layout.blobs.size(),
               layout.num_pieces, t->bytes_have.load(), layout.total_bytes);
    return OkStatus();
  }

  void Remove(const ReleaseDigest& release) override {
    std::shared_ptr<ReleaseTorrent> t;
    {
      std::lock_guard lock(mu_);
      auto it = torrents_.find(release);
      if (it == torrents_.end()) return;
      t = it->second;
      torrents_.erase(it);
    }
    {
      std::lock_guard lock(shared_->mu);
      shared_->by_info_hash.erase(t->info_hash);
    }
    if (auto h = t->handle(); h.is_valid()) session_->remove_torrent(h);
    log_->info("data plane: release {}: no longer served", t->name);
  }

  bool Has(const ReleaseDigest& release) const override {
    std::lock_guard lock(mu_);
    return torrents_.count(release) > 0;
  }

  void SetPeers(const std::vector<std::string>& peers) override {
    std::vector<std::shared_ptr<ReleaseTorrent>> torrents;
    bool changed = false;
    {
      std::lock_guard lock(mu_);
      changed = peers_ != peers;
      peers_ = peers;
      for (auto& [r, t] : torrents_) torrents.push_back(t);
      if (!o_.tls && changed) UpdateIpFilter();
    }
    for (auto& t : torrents) Connect(*t, peers);
  }

  std::vector<TransferState> Transfers() const override {
    std::vector<TransferState> out;
    for (auto& t : Torrents()) {
      TransferState s;
      s.release = t->release;
      s.name = t->name;
      s.info_hash = lt::aux::to_hex(t->info_hash);
      s.bytes_total = t->layout.total_bytes;
      s.bytes_have = std::min(t->bytes_have.load(), s.bytes_total);
      s.uploaded = t->uploaded;
      s.downloaded = t->downloaded;
      s.rejected_pieces = t->rejected_pieces;
      s.error = t->error();
      if (auto h = t->handle(); h.is_valid()) {
        auto st = h.status(lt::torrent_handle::query_accurate_download_counters);
        s.download_rate = st.download_payload_rate;
        s.upload_rate = st.upload_payload_rate;
        s.peers = st.num_peers;
        if (s.error.empty() && st.errc) s.error = st.errc.message();
      }
      s.complete = s.bytes_have == s.bytes_total;
      out.push_back(std::move(s));
    }
    return out;
  }

  void Stop() override {
    if (!session_) return;
    stopping_ = true;
    if (alert_thread_.joinable()) alert_thread_.join();
    {
      // Destroying the session (proxy) stops libtorrent's threads and our disk I/O, which syncs
      // what it received.
      auto proxy = session_->abort();
      session_.reset();
    }
    log_->info("data plane: stopped");
  }

 private:
  std::vector<std::shared_ptr<ReleaseTorrent>> Torrents() const {
    std::lock_guard lock(mu_);
    std::vector<std::shared_ptr<ReleaseTorrent>> out;
    for (auto& [r, t] : torrents_) out.push_back(t);
    return out;
  }

  void Connect(ReleaseTorrent& t, const std::vector<std::string>& peers) {
    auto h = t.handle();
    if (!h.is_valid()) return;
    for (const auto& p : peers) {
      auto parsed = ParseIpv4Endpoint(p);
      if (!parsed) continue;
      lt::error_code ec;
      auto addr = lt::make_address_v4(parsed->host, ec);
      if (!ec) h.connect_peer(lt::tcp::endpoint(addr, parsed->port));
    }
  }

  // Plain TCP (benchmarks): accept only the members' addresses (and loopback for tests).
  // REQUIRES: mu_ held.
  void UpdateIpFilter() {
    lt::ip_filter f;
    f.add_rule(lt::make_address_v4("0.0.0.0"), lt::make_address_v4("255.255.255.255"), lt::ip_filter::blocked);
    f.add_rule(lt::make_address_v4("127.0.0.0"), lt::make_address_v4("127.255.255.255"), 0);
    for (const auto& p : peers_) {
      auto parsed = ParseIpv4Endpoint(p);
      lt::error_code ec;
      auto addr = lt::make_address_v4(parsed ? parsed->host : std::string(), ec);
      if (parsed && !ec) f.add_rule(addr, addr, 0);
    }
    session_->set_ip_filter(f);
  }

  std::string NameOf(const lt::torrent_handle& h) const {
    for (auto& t : Torrents()) {
      if (t->handle() == h) return t->name;
    }
    return "?";
  }

  // At debug level: what each peer connection is doing (for tuning; see docs/benchmarks.md).
  void LogPeers() {
    if (!log_->should_log(spdlog::level::debug)) return;
    for (auto& t : Torrents()) {
      auto h = t->handle();
      if (!h.is_valid()) continue;
      std::vector<lt::peer_info> peers;
      h.get_peer_info(peers);
      {
        // The whole torrent: what this node lacks, what of that some peer could send, what it has asked for.
        std::vector<int> avail;
        h.piece_availability(avail);
        auto st = h.status(lt::torrent_handle::query_pieces);
        std::vector<lt::partial_piece_info> queue;
        h.get_download_queue(queue);
        std::vector<bool> queued(avail.size(), false);
        for (auto& q : queue) {
          const auto i = static_cast<size_t>(static_cast<int>(q.piece_index));
          if (i < queued.size()) queued[i] = true;
        }
        int lacking = 0, available = 0, waiting = 0;
        for (size_t i = 0; i < avail.size(); ++i) {
          if (i < static_cast<size_t>(st.pieces.size()) && st.pieces[lt::piece_index_t(static_cast<int>(i))]) continue;
          ++lacking;
          if (avail[i] > 0) {
            ++available;
            if (!queued[i]) ++waiting;
          }
        }
        long sendbuf = 0, dlq = 0, target = 0, upq = 0;
        for (auto& p : peers) {
          sendbuf += p.used_send_buffer;
          dlq += p.download_queue_length;
          target += p.target_dl_queue_length;
          upq += p.upload_queue_length;
        }
        log_->debug("data plane: release {}: pieces lacking {}, available {}, available and not asked for {}, in progress {}; "
                    "blocks asked {} (target {}), asked of us {}, send buffers {} bytes",
                    t->name, lacking, available, waiting, queue.size(), dlq, target, upq, sendbuf);
      }
      for (auto& p : peers) {
        log_->debug("data plane: release {}: peer {} down {:.1f} Mbit/s, up {:.1f} Mbit/s, {} blocks requested, {} requested by it, "
                    "interesting {}, choked {}, interested {}, choking us {}, {} pieces",
                    t->name, p.ip.address().to_string(), p.down_speed * 8 / 1e6, p.up_speed * 8 / 1e6,
                    p.download_queue_length, p.upload_queue_length, bool(p.flags & lt::peer_info::interesting),
                    bool(p.flags & lt::peer_info::choked), bool(p.flags & lt::peer_info::remote_interested),
                    bool(p.flags & lt::peer_info::remote_choked), p.num_pieces);
      }
    }
  }

  // Every progress interval: one line per transfer still receiving (operators read these in the log).
  void LogProgress() {
    LogPeers();
    for (const auto& t : Transfers()) {
      if (t.complete || !t.error.empty()) continue;
      log_->info("data plane: release {}: {:.1f} % ({} of {} bytes), down {:.1f} Mbit/s, up {:.1f} Mbit/s, {} peers", t.name,
                 t.bytes_total ? 100.0 * static_cast<double>(t.bytes_have) / static_cast<double>(t.bytes_total) : 100.0,
                 t.bytes_have, t.bytes_total, static_cast<double>(t.download_rate) * 8 / 1e6,
                 static_cast<double>(t.upload_rate) * 8 / 1e6, t.peers);
    }
  }

  void AlertLoop() {
    auto next_progress = std::chrono::steady_clock::now();
    while (!stopping_) {
      if (std::chrono::steady_clock::now() >= next_progress) {
        LogProgress();
        next_progress = std::chrono::steady_clock::now() + o_.progress_log_interval;
      }
      if (!session_->wait_for_alert(lt::milliseconds(200))) continue;
      std::vector<lt::alert*> alerts;
      session_->pop_alerts(&alerts);
      for (auto* a : alerts) {
        if (auto* ban = lt::alert_cast<lt::peer_ban_alert>(a)) {
          log_->warn("data plane: release {}: banned peer {}:{}: it sent pieces that fail their hash check",
                     NameOf(ban->handle), ban->endpoint.address().to_string(), ban->endpoint.port());
        } else if (auto* hf = lt::alert_cast<lt::hash_failed_alert>(a)) {
          log_->warn("data plane: release {}: piece {} failed its hash check (discarded)", NameOf(hf->handle),
                     static_cast<int>(hf->piece_index));
        } else if (auto* fe = lt::alert_cast<lt::file_error_alert>(a)) {
          log_->error("data plane: release {}: {}", NameOf(fe->handle), fe->error.message());
        } else if (auto* te = lt::alert_cast<lt::torrent_error_alert>(a)) {
          if (std::string(te->filename()).empty()) continue;  // no DH file: not needed (ECDHE)
          log_->error("data plane: release {}: {} ({})", NameOf(te->handle), te->error.message(), te->filename());
        } else if (auto* pe = lt::alert_cast<lt::peer_error_alert>(a)) {
          log_->debug("data plane: peer {}: {}", pe->endpoint.address().to_string(), pe->error.message());
        } else if (auto* ie = lt::alert_cast<lt::incoming_connection_alert>(a)) {
          log_->debug("data plane: incoming connection from {}", ie->endpoint.address().to_string());
        } else if (auto* tf = lt::alert_cast<lt::torrent_finished_alert>(a)) {
          log_->info("data plane: release {}: every piece received", NameOf(tf->handle));
        }
      }
    }
  }

  store::PieceStore& store_;
  DataPlaneOptions o_;
  std::shared_ptr<spdlog::logger> log_;
  std::shared_ptr<DiskIoShared> shared_;
  std::string ca_pem_;
  std::unique_ptr<lt::session> session_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread alert_thread_;
  mutable std::mutex mu_;
  std::map<ReleaseDigest, std::shared_ptr<ReleaseTorrent>> torrents_;  // mu_
  std::vector<std::string> peers_;                                     // mu_
};

}  // namespace

Result<std::unique_ptr<DataPlane>> DataPlane::Start(store::PieceStore& store, const DataPlaneOptions& options,
                                                    DataPlaneCallbacks callbacks, std::shared_ptr<spdlog::logger> log) {
  auto dp = std::make_unique<DataPlaneImpl>(store, options, std::move(callbacks), std::move(log));
  GS_RETURN_IF_ERROR(dp->Init());
  return std::unique_ptr<DataPlane>(std::move(dp));
}

}  // namespace gapsync::transport
