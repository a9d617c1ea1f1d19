#include "transport/data_plane.h"

#include "transport/address.h"
#include "transport/piece_dealer.h"

#include <openssl/sha.h>
#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <unistd.h>

#include <libtorrent/add_torrent_params.hpp>
#include <libtorrent/alert_types.hpp>
#include <libtorrent/bdecode.hpp>
#include <libtorrent/disk_buffer_holder.hpp>
#include <libtorrent/disk_interface.hpp>
#include <libtorrent/disk_observer.hpp>
#include <libtorrent/error_code.hpp>
#include <libtorrent/hex.hpp>
#include <libtorrent/ip_filter.hpp>
#include <libtorrent/peer_info.hpp>
#include <libtorrent/session.hpp>
#include <libtorrent/session_params.hpp>
#include <libtorrent/settings_pack.hpp>
#include <libtorrent/storage_defs.hpp>
#include <libtorrent/torrent_handle.hpp>
#include <libtorrent/torrent_info.hpp>
#include <libtorrent/torrent_status.hpp>

#include <algorithm>
#include <charconv>
#include <atomic>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

namespace gapsync::transport {
namespace {

// ---- bencoding (the info dictionary is built here byte for byte, so every node makes the same) ----

void BString(std::string& out, std::string_view s) {
  out += std::to_string(s.size());
  out += ':';
  out.append(s);
}
void BInt(std::string& out, uint64_t v) {
  out += 'i';
  out += std::to_string(v);
  out += 'e';
}

// The info dictionary for `layout` with the given concatenated SHA-1 piece hashes. Its
// "gapsync-release" key (the release digest) makes every release its own torrent, even two with
// the same blobs.
std::string EncodeInfo(const TorrentLayout& layout, std::string_view pieces, const std::string& ssl_ca_pem,
                       const std::string& release) {
  std::string out = "d";
  BString(out, "files");
  out += 'l';
  for (size_t i = 0; i < layout.blobs.size(); ++i) {
    const auto& b = layout.blobs[i];
    out += 'd';
    BString(out, "length");
    BInt(out, b.size);
    BString(out, "path");
    out += 'l';
    BString(out, b.digest.hex());
    out += "ee";
    const uint64_t pad = uint64_t{layout.pieces_of(i)} * layout.piece_size - b.size;
    if (i + 1 < layout.blobs.size() && pad > 0) {
      out += 'd';
      BString(out, "attr");
      BString(out, "p");
      BString(out, "length");
      BInt(out, pad);
      BString(out, "path");
      out += 'l';
      BString(out, ".pad");
      BString(out, std::to_string(pad));
      out += "ee";
    }
  }
  out += 'e';
  BString(out, "gapsync-release");
  BString(out, release);
  BString(out, "name");
  BString(out, kDataPlaneName);
  BString(out, "piece length");
  BInt(out, layout.piece_size);
  BString(out, "pieces");
  BString(out, pieces);
  if (!ssl_ca_pem.empty()) {
    BString(out, "ssl-cert");
    BString(out, ssl_ca_pem);
  }
  out += 'e';
  return out;
}

lt::sha1_hash Sha1(const char* data, size_t n) {
  lt::sha1_hash h;
  SHA1(reinterpret_cast<const unsigned char*>(data), n, reinterpret_cast<unsigned char*>(h.data()));
  return h;
}

lt::storage_error StorageError(const Error& e) {
  lt::storage_error se;
  int code = EIO;
  if (e.code == Errc::kNoSpace) code = ENOSPC;
  if (e.code == Errc::kCorrupt) code = EBADMSG;
  se.ec = lt::error_code(code, lt::generic_category());
  se.operation = lt::operation_t::file_write;
  return se;
}

// One release torrent as the disk layer sees it.
struct Entry : std::enable_shared_from_this<Entry> {
  std::string key;
  std::string name;  // for logs
  TorrentLayout layout;
  std::vector<lt::sha1_hash> piece_hashes;
  lt::sha1_hash info_hash;
  // Disk thread only:
  std::vector<uint32_t> missing_per_blob;    // chunks each blob still lacks
  std::vector<bool> blob_done;
  bool failed = false;
  // Any thread:
  std::atomic<uint64_t> bytes_have{0};
  std::atomic<uint64_t> uploaded{0};
  std::atomic<uint64_t> downloaded{0};
  std::atomic<uint64_t> rejected_pieces{0};
  mutable std::mutex mu;
  std::string error;  // guarded by mu
  lt::torrent_handle handle;  // set once after add, under mu (the disk thread may already run)
  std::vector<uint32_t> blocks_sent;  // disk thread: blocks uploaded per piece (for the stop summary)

  int piece_len(uint32_t piece) const {
    if (piece + 1 < layout.num_pieces) return static_cast<int>(layout.piece_size);
    // the last piece has no pad after it
    const size_t b = layout.blob_of_piece(piece);
    return static_cast<int>(layout.blobs[b].size - uint64_t{piece - layout.first_piece[b]} * layout.piece_size);
  }
  // Blocks a peer asks for of a piece: those holding blob data (libtorrent never asks for pad blocks).
  int asked_blocks(uint32_t piece) const {
    return static_cast<int>((data_len(piece) + lt::default_block_size - 1) / lt::default_block_size);
  }
  // Bytes of blob data (not padding) in a piece.
  uint32_t data_len(uint32_t piece) const {
    const size_t b = layout.blob_of_piece(piece);
    const uint64_t begin = uint64_t{piece - layout.first_piece[b]} * layout.piece_size;
    return static_cast<uint32_t>(std::min<uint64_t>(layout.piece_size, layout.blobs[b].size - begin));
  }
};

class StoreDiskIo;

// The state shared by the disk I/O object (constructed by libtorrent) and the DataPlane.
struct Shared {
  StoreDiskIo* disk = nullptr;  // set while libtorrent's disk I/O object lives
  store::BlobStore* store = nullptr;
  std::shared_ptr<spdlog::logger> log;
  DataPlaneCallbacks callbacks;
  bool corrupt_uploads = false;
  int sync_interval_ms = 1000;
  std::mutex mu;
  std::map<lt::sha1_hash, std::shared_ptr<Entry>> by_info_hash;  // registered before add_torrent
};

class StoreDiskIo final : public lt::disk_interface, public lt::buffer_allocator_interface {
 public:
  StoreDiskIo(lt::io_context& ioc, std::shared_ptr<Shared> shared) : ioc_(ioc), shared_(std::move(shared)) {
    thread_ = std::thread([this] { Loop(); });
    sync_thread_ = std::thread([this] { SyncLoop(); });
    verify_thread_ = std::thread([this] { VerifyLoop(); });
    std::lock_guard lock(shared_->mu);
    shared_->disk = this;
  }
  ~StoreDiskIo() override {
    {
      std::lock_guard lock(shared_->mu);
      shared_->disk = nullptr;
    }
    abort(true);
  }

  // Blobs of `e` whose pieces are all held but that were never completed (a stop right before):
  // completed on the disk thread, as if their last piece had just arrived.
  void CompleteLater(std::shared_ptr<Entry> e, std::vector<size_t> blobs) {
    Submit([this, e, blobs = std::move(blobs)] {
      for (size_t b : blobs) CompleteBlob(*e, b);
    });
  }

  lt::storage_holder new_torrent(lt::storage_params const& p, std::shared_ptr<void> const&) override {
    std::shared_ptr<Entry> e;
    {
      std::lock_guard lock(shared_->mu);
      auto it = shared_->by_info_hash.find(p.info_hash);
      if (it != shared_->by_info_hash.end()) e = it->second;
    }
    std::lock_guard lock(mu_);
    lt::storage_index_t idx{static_cast<std::uint32_t>(storages_.size())};
    if (!free_.empty()) {
      idx = free_.back();
      free_.pop_back();
      storages_[static_cast<size_t>(static_cast<std::uint32_t>(idx))] = e;
    } else {
      storages_.push_back(e);
    }
    return lt::storage_holder(idx, *this);
  }

  void remove_torrent(lt::storage_index_t idx) override {
    std::lock_guard lock(mu_);
    auto& slot = storages_[static_cast<size_t>(static_cast<std::uint32_t>(idx))];
    if (slot) LogUploads(*slot);
    if (slot) {
      for (auto it = writing_.begin(); it != writing_.end();) {
        if (it->first.first == slot.get()) {
          Release(it->second.size());
          it = writing_.erase(it);
        } else {
          ++it;
        }
      }
    }
    if (slot) {
      // Its chunks being assembled and cached go with it (a later torrent may get its address).
      jobs_.push_back([this, e = slot] {
        std::erase_if(cache_, [&](const CachedChunk& c) { return c.entry == e.get(); });
        std::erase_if(assembling_, [&](const auto& a) { return a.first.first == e.get(); });
        if (last_read_entry_ == e.get()) last_read_entry_ = nullptr;
      });
      cv_.notify_one();
    }
    slot.reset();
    free_.push_back(idx);
  }

  void async_read(lt::storage_index_t storage, lt::peer_request const& r,
                  std::function<void(lt::disk_buffer_holder, lt::storage_error const&)> handler,
                  lt::disk_job_flags_t) override {
    auto e = Get(storage);
    Submit([this, e, r, handler = std::move(handler)]() mutable {
      lt::storage_error se;
      char* buf = nullptr;
      if (!e) {
        se.ec = lt::error_code(ENOENT, lt::generic_category());
        se.operation = lt::operation_t::file_read;
      } else {
        auto got = ReadBlock(*e, r, buf);
        if (!got.ok()) {
          se = StorageError(got.error());
          se.operation = lt::operation_t::file_read;
          shared_->log->error("data plane: release {}: reading piece {}: {}", e->name,
                              static_cast<int>(r.piece), got.error().message);
        } else {
          e->uploaded += static_cast<uint64_t>(r.length);
          auto piece = static_cast<uint32_t>(static_cast<int>(r.piece));
          if (piece < e->blocks_sent.size()) e->blocks_sent[piece]++;
        }
      }
      const int len = buf ? r.length : 0;
      lt::post(ioc_, [this, buf, len, se, handler = std::move(handler)]() mutable {
        handler(lt::disk_buffer_holder(*this, buf, len), se);
      });
    });
  }

  bool async_write(lt::storage_index_t storage, lt::peer_request const& r, char const* buf,
                   std::shared_ptr<lt::disk_observer> o, std::function<void(lt::storage_error const&)> handler,
                   lt::disk_job_flags_t) override {
    auto e = Get(storage);
    lt::storage_error se;
    bool over = false;
    const uint32_t piece = static_cast<uint32_t>(static_cast<int>(r.piece));
    if (e && r.piece >= lt::piece_index_t{0} && piece < e->layout.num_pieces && r.start >= 0 && r.length >= 0 &&
        r.start + r.length <= e->piece_len(piece)) {
      std::lock_guard lock(mu_);
      auto& data = writing_[{e.get(), piece}];
      if (data.empty()) {
        data.assign(static_cast<size_t>(e->piece_len(piece)), 0);  // pad blocks stay zero
        buffered_ += data.size();
      }
      std::memcpy(data.data() + r.start, buf, static_cast<size_t>(r.length));
      e->downloaded += static_cast<uint64_t>(r.length);
      // Backpressure: beyond kMaxBuffered bytes of pieces in memory, libtorrent stops reading
      // from peers until the disk thread has caught up (disk_observer::on_disk).
      if (buffered_ > kMaxBuffered) {
        over = true;
        if (o) observers_.push_back(std::move(o));
      }
    } else {
      se.ec = lt::error_code(EINVAL, lt::generic_category());
      se.operation = lt::operation_t::file_write;
    }
    lt::post(ioc_, [se, handler = std::move(handler)] { handler(se); });
    return over;
  }

  void async_hash(lt::storage_index_t storage, lt::piece_index_t piece, lt::span<lt::sha256_hash>,
                  lt::disk_job_flags_t,
                  std::function<void(lt::piece_index_t, lt::sha1_hash const&, lt::storage_error const&)> handler) override {
    auto e = Get(storage);
    Submit([this, e, piece, handler = std::move(handler)]() mutable {
      lt::storage_error se;
      lt::sha1_hash hash;
      if (e) HashAndStore(*e, static_cast<uint32_t>(static_cast<int>(piece)), hash, se);
      lt::post(ioc_, [piece, hash, se, handler = std::move(handler)] { handler(piece, hash, se); });
    });
  }

  void async_hash2(lt::storage_index_t, lt::piece_index_t piece, int, lt::disk_job_flags_t,
                   std::function<void(lt::piece_index_t, lt::sha256_hash const&, lt::storage_error const&)> handler) override {
    lt::storage_error se;  // v1 torrents only: never asked
    se.ec = lt::error_code(ENOTSUP, lt::generic_category());
    lt::post(ioc_, [piece, se, handler = std::move(handler)] { handler(piece, lt::sha256_hash(), se); });
  }

  void async_move_storage(lt::storage_index_t, std::string p, lt::move_flags_t,
                          std::function<void(lt::status_t, std::string const&, lt::storage_error const&)> handler) override {
    lt::storage_error se;
    se.ec = lt::error_code(ENOTSUP, lt::generic_category());
    lt::post(ioc_, [p, se, handler = std::move(handler)] { handler(lt::status_t::fatal_disk_error, p, se); });
  }

  void async_release_files(lt::storage_index_t, std::function<void()> handler) override {
    Submit([this, handler = std::move(handler)]() mutable {
      SyncNow();
      if (handler) lt::post(ioc_, std::move(handler));
    });
  }

  void async_check_files(lt::storage_index_t, lt::add_torrent_params const*, lt::aux::vector<std::string, lt::file_index_t>,
                         std::function<void(lt::status_t, lt::storage_error const&)> handler) override {
    // have_pieces in add_torrent_params comes from the store itself: nothing to check.
    lt::post(ioc_, [handler = std::move(handler)] { handler(lt::status_t::no_error, lt::storage_error()); });
  }

  void async_stop_torrent(lt::storage_index_t, std::function<void()> handler) override {
    Submit([this, handler = std::move(handler)]() mutable {
      SyncNow();
      if (handler) lt::post(ioc_, std::move(handler));
    });
  }

  void async_rename_file(lt::storage_index_t, lt::file_index_t idx, std::string name,
                         std::function<void(std::string const&, lt::file_index_t, lt::storage_error const&)> handler) override {
    lt::post(ioc_, [idx, name, handler = std::move(handler)] { handler(name, idx, lt::storage_error()); });
  }

  void async_delete_files(lt::storage_index_t, lt::remove_flags_t,
                          std::function<void(lt::storage_error const&)> handler) override {
    lt::post(ioc_, [handler = std::move(handler)] { handler(lt::storage_error()); });
  }

  void async_set_file_priority(lt::storage_index_t, lt::aux::vector<lt::download_priority_t, lt::file_index_t> prio,
                               std::function<void(lt::storage_error const&, lt::aux::vector<lt::download_priority_t, lt::file_index_t>)> handler) override {
    lt::post(ioc_, [prio = std::move(prio), handler = std::move(handler)]() mutable { handler(lt::storage_error(), std::move(prio)); });
  }

  void async_clear_piece(lt::storage_index_t storage, lt::piece_index_t index,
                         std::function<void(lt::piece_index_t)> handler) override {
    auto e = Get(storage);
    if (e) {
      std::lock_guard lock(mu_);
      auto it = writing_.find({e.get(), static_cast<uint32_t>(static_cast<int>(index))});
      if (it != writing_.end()) {
        Release(it->second.size());
        writing_.erase(it);
      }
    }
    lt::post(ioc_, [index, handler = std::move(handler)] { handler(index); });
  }

  void update_stats_counters(lt::counters&) const override {}
  std::vector<lt::open_file_state> get_status(lt::storage_index_t) const override { return {}; }

  void abort(bool) override {
    {
      // Blobs waiting for their check are checked at the next start (Add finds them held).
      std::lock_guard lock(verify_mu_);
      if (verify_stop_) return;
      verify_stop_ = true;
      verify_jobs_.clear();
    }
    verify_cv_.notify_all();
    if (verify_thread_.joinable()) verify_thread_.join();  // after the check under way
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    {
      std::lock_guard lock(sync_mu_);
      sync_stop_ = true;
    }
    sync_cv_.notify_all();
    if (sync_thread_.joinable()) sync_thread_.join();  // after a last sync of what was stored
    if (blocks_served_ > 0) {
      shared_->log->info("data plane: served {} blocks with {} piece reads from the store", blocks_served_, pieces_read_);
    }
  }

  void submit_jobs() override {}
  void settings_updated() override {}

  void free_disk_buffer(char* buf) override { delete[] buf; }

 private:
  // mu_ held: `n` bytes of piece buffers freed; below half the limit, peers may be read again.
  void Release(size_t n) {
    buffered_ -= std::min(buffered_, n);
    if (buffered_ <= kMaxBuffered / 2 && !observers_.empty()) {
      lt::post(ioc_, [obs = std::move(observers_)] {
        for (auto& o : obs) o->on_disk();
      });
      observers_.clear();
    }
  }

  // How often each piece went out, in whole pieces (a seed that sends pieces more than once
  // spends its uplink, the scarcest link, twice).
  void LogUploads(const Entry& e) {
    std::map<uint32_t, uint32_t> times;
    uint64_t blocks_total = 0;
    for (uint32_t p = 0; p < e.blocks_sent.size(); ++p) {
      const auto blocks = static_cast<uint32_t>(e.asked_blocks(p));
      times[(e.blocks_sent[p] + blocks / 2) / blocks]++;
      blocks_total += e.blocks_sent[p];
    }
    if (blocks_total == 0) return;
    std::string h;
    for (auto [n, count] : times) h += (h.empty() ? "" : ", ") + std::to_string(count) + " pieces " + std::to_string(n) + "x";
    shared_->log->info("data plane: release {}: uploaded {}", e.name, h);
    if (shared_->log->should_log(spdlog::level::debug)) {
      std::string per;
      for (uint32_t p = 0; p < e.blocks_sent.size(); ++p) {
        per += " " + std::to_string(p) + ":" + std::to_string(e.blocks_sent[p] / static_cast<uint32_t>(e.asked_blocks(p)));
      }
      shared_->log->debug("data plane: release {}: pieces uploaded (piece:times){}", e.name, per);
    }
  }

  std::shared_ptr<Entry> Get(lt::storage_index_t idx) {
    std::lock_guard lock(mu_);
    const auto i = static_cast<size_t>(static_cast<std::uint32_t>(idx));
    return i < storages_.size() ? storages_[i] : nullptr;
  }

  void Submit(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

  // Blob checks (CompletePieces: a read and SHA-256 of the whole blob, seconds for a large one)
  // run here, so that the disk thread goes on serving and storing pieces meanwhile.
  void VerifyLoop() {
    // Below the network and disk threads: a check may wait, uploads and downloads should not. (At
    // normal priority, 3 of 8 benchmark runs had a straggler at 1.15-1.17x the floor; at nice 10,
    // 3 runs at 1.10-1.11 with none: docs/benchmarks.md.)
    (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 10);
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(verify_mu_);
        verify_cv_.wait(lock, [this] { return verify_stop_ || !verify_jobs_.empty(); });
        if (verify_stop_) return;
        job = std::move(verify_jobs_.front());
        verify_jobs_.pop_front();
      }
      job();
    }
  }

  void Loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
        if (stop_ && jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  // Received pieces become durable on a thread of their own, so that the disk thread goes on
  // hashing and storing while the store syncs (a sync can take seconds on a busy disk, and a disk
  // thread waiting for it fills the receive buffers and throttles every peer of this node).
  // A sync at least every sync_interval_ms while pieces arrive, and at once when a blob is
  // complete: its blob_done callback is called after the sync that makes it durable.
  void MarkStored(std::shared_ptr<Entry> done_entry = nullptr, size_t done_blob = 0) {
    const bool done = done_entry != nullptr;
    {
      std::lock_guard lock(sync_mu_);
      dirty_ = true;
      if (done) {
        blobs_to_report_.emplace_back(std::move(done_entry), done_blob);
        sync_soon_ = true;
      }
    }
    if (done) sync_cv_.notify_one();  // (done_entry was moved from: it is null here)
  }

  void SyncLoop() {
    const auto interval = std::chrono::milliseconds(shared_->sync_interval_ms);
    for (;;) {
      std::vector<std::pair<std::shared_ptr<Entry>, size_t>> report;
      bool last = false;
      {
        std::unique_lock lock(sync_mu_);
        sync_cv_.wait_for(lock, interval, [this] { return sync_stop_ || sync_soon_; });
        last = sync_stop_;
        if (!dirty_) {
          if (last) return;
          continue;
        }
        dirty_ = false;
        sync_soon_ = false;
        ++syncs_started_;
        report.swap(blobs_to_report_);
      }
      SyncAndReport(std::move(report));
      {
        std::lock_guard lock(sync_mu_);
        ++syncs_done_;
      }
      sync_cv_.notify_all();
      if (last) return;
    }
  }

  // Sync thread. A failure (disk full) stops every transfer still receiving (on the disk thread):
  // what it got since the last sync may not be durable.
  void SyncAndReport(std::vector<std::pair<std::shared_ptr<Entry>, size_t>> report) {
    const auto start = std::chrono::steady_clock::now();
    auto st = shared_->store->Sync();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
    if (ms >= 500) shared_->log->debug("data plane: the store took {} ms to sync", ms);
    if (!st.ok()) {
      const Error why{st.error().code, "making received pieces durable: " + st.error().message};
      shared_->log->error("data plane: {}", why.message);
      Submit([this, why] {
        std::vector<std::shared_ptr<Entry>> entries;
        {
          std::lock_guard lock(mu_);
          for (auto& e : storages_) {
            if (e) entries.push_back(e);
          }
        }
        for (auto& e : entries) {
          if (std::find(e->blob_done.begin(), e->blob_done.end(), false) != e->blob_done.end()) Fail(*e, why);
        }
      });
      for (auto& [e, b] : report) Submit([this, e = e, why] { Fail(*e, why); });
      return;
    }
    if (!shared_->callbacks.blob_done) return;
    for (auto& [e, b] : report) shared_->callbacks.blob_done(e->key, e->layout.blobs[b].digest);
  }

  // Disk thread: makes everything stored durable now (a torrent stopping).
  void SyncNow() {
    std::unique_lock lock(sync_mu_);
    dirty_ = true;
    sync_soon_ = true;
    const uint64_t covering = syncs_started_ + 1;  // the next sync to start covers what is stored now
    sync_cv_.notify_all();
    sync_cv_.wait(lock, [&] { return syncs_done_ >= covering || sync_stop_; });
  }

  // Disk thread: the bytes of `piece` (padded to its length) into `out`: from a chunk being
  // assembled, or from the store through a small cache of whole chunks. False when this node does
  // not hold it.
  Status PieceBytes(Entry& e, uint32_t piece, std::vector<char>& out) {
    const size_t b = e.layout.blob_of_piece(piece);
    const uint32_t ordinal = e.layout.chunk_ordinal(piece);
    const size_t off = size_t{(piece - e.layout.first_piece[b]) % e.layout.pieces_per_chunk()} * e.layout.piece_size;
    const std::vector<uint8_t>* chunk = nullptr;
    if (auto it = assembling_.find({&e, ordinal}); it != assembling_.end()) {
      if (!it->second.parts[off / e.layout.piece_size]) return MakeError(Errc::kNotFound, "piece not held");
      chunk = &it->second.bytes;
    }
    for (auto& c : cache_) {
      if (!chunk && c.entry == &e && c.chunk == ordinal) chunk = &c.bytes;
    }
    if (chunk == nullptr) {
      pieces_read_++;
      CachedChunk c{&e, ordinal, {}};
      GS_RETURN_IF_ERROR(shared_->store->ReadPiece(e.layout.blobs[b].digest, e.layout.chunk_in_blob(piece), c.bytes));
      if (cache_.size() >= kCacheChunks) cache_.pop_front();
      cache_.push_back(std::move(c));
      chunk = &cache_.back().bytes;
    }
    out.assign(static_cast<size_t>(e.piece_len(piece)), 0);  // pad
    std::memcpy(out.data(), chunk->data() + off, e.data_len(piece));
    return OkStatus();
  }

  // Disk thread: one block of a piece for upload.
  Status ReadBlock(Entry& e, const lt::peer_request& r, char*& out) {
    const auto piece = static_cast<uint32_t>(static_cast<int>(r.piece));
    if (piece >= e.layout.num_pieces || r.start < 0 || r.length <= 0 || r.start + r.length > e.piece_len(piece)) {
      return MakeError(Errc::kInvalidArgument, "request outside the torrent");
    }
    blocks_served_++;
    if (!(last_read_entry_ == &e && last_read_piece_ == piece)) {
      GS_RETURN_IF_ERROR(PieceBytes(e, piece, last_read_));
      last_read_entry_ = &e;
      last_read_piece_ = piece;
    }
    out = new char[static_cast<size_t>(r.length)];
    std::memcpy(out, last_read_.data() + r.start, static_cast<size_t>(r.length));
    if (shared_->corrupt_uploads) out[r.length / 2] ^= 0x5a;  // test hook: a lying peer
    return OkStatus();
  }

  // Disk thread: hashes a received piece; when it matches the torrent's hash, adds it to its
  // chunk; a chunk whose pieces are all there is stored, and a blob whose chunks all are is
  // completed.
  void HashAndStore(Entry& e, uint32_t piece, lt::sha1_hash& hash, lt::storage_error& se) {
    if (piece >= e.layout.num_pieces) {
      se.ec = lt::error_code(EINVAL, lt::generic_category());
      return;
    }
    std::vector<char> data;
    {
      std::lock_guard lock(mu_);
      auto it = writing_.find({&e, piece});
      if (it != writing_.end()) {
        data = std::move(it->second);
        writing_.erase(it);
        Release(data.size());
      }
    }
    if (data.empty()) {  // not received: a piece we hold (libtorrent re-checking it)
      std::vector<char> held;
      if (!PieceBytes(e, piece, held).ok()) {
        hash.clear();  // not held: a hash that matches nothing (the piece is fetched again)
        return;
      }
      hash = Sha1(held.data(), held.size());
      return;
    }
    hash = Sha1(data.data(), data.size());
    if (hash != e.piece_hashes[piece]) {  // libtorrent rejects it too, and bans the sender
      e.rejected_pieces++;
      return;
    }
    if (e.failed) {  // nothing more is stored for it: libtorrent stops the torrent on this error
      se.ec = lt::error_code(EIO, lt::generic_category());
      se.operation = lt::operation_t::file_write;
      return;
    }
    const size_t b = e.layout.blob_of_piece(piece);
    const auto& blob = e.layout.blobs[b];
    const uint32_t chunk = e.layout.chunk_in_blob(piece);
    const uint32_t k = e.layout.pieces_per_chunk();
    const uint32_t part = (piece - e.layout.first_piece[b]) % k;
    auto& a = assembling_[{&e, e.layout.chunk_ordinal(piece)}];
    if (a.bytes.empty()) {
      a.bytes.assign(e.layout.chunk_len(b, chunk), 0);
      a.parts.assign(k, false);
      a.missing = static_cast<uint32_t>((a.bytes.size() + e.layout.piece_size - 1) / e.layout.piece_size);
      lt::torrent_handle handle;
      {
        std::lock_guard lock(e.mu);  // Add sets it after libtorrent may already call us
        handle = e.handle;
      }
      if (a.missing > 1 && handle.is_valid()) {
        // Finish what was started: the chunk's other pieces first, so that chunks are stored
        // (and their memory freed) as they arrive rather than all at the end (rarest-first alone
        // left most chunks half-full until the last seconds: peak RSS 154-159 MiB, and a node
        // storing 70 MiB at the very end finished seconds after the others).
        std::vector<std::pair<lt::piece_index_t, lt::download_priority_t>> prio;
        const uint32_t first = piece - part;
        for (uint32_t q = first; q < first + a.missing; ++q) {
          if (q != piece) prio.emplace_back(lt::piece_index_t{static_cast<int>(q)}, lt::top_priority);
        }
        handle.prioritize_pieces(prio);
      }
    }
    if (a.parts[part]) return;  // hashed twice
    std::memcpy(a.bytes.data() + size_t{part} * e.layout.piece_size, data.data(), e.data_len(piece));
    a.parts[part] = true;
    if (--a.missing > 0) return;
    auto st = shared_->store->PutPiece(blob.digest, blob.size, blob.media_type, chunk, a.bytes);
    const uint32_t len = static_cast<uint32_t>(a.bytes.size());
    assembling_.erase({&e, e.layout.chunk_ordinal(piece)});
    if (!st.ok()) {
      se = StorageError(st.error());
      Fail(e, Error{st.error().code, "storing chunk " + std::to_string(chunk) + " of blob " + blob.digest.str() + ": " + st.error().message});
      return;
    }
    MarkStored();
    e.bytes_have += len;
    if (e.blob_done[b] || --e.missing_per_blob[b] > 0) return;
    CompleteBlob(e, b);
  }

  // Disk thread: every piece of blob `b` is held: its SHA-256 is checked on the verify thread,
  // which makes it visible; back on the disk thread it counts as done (and is reported once
  // durable), or the transfer fails when the pieces do not hash to the blob's digest or the store
  // fails (libtorrent stops the torrent at the next piece it hands us, and it is paused now).
  void CompleteBlob(Entry& e, size_t b) {
    {
      std::lock_guard lock(verify_mu_);
      if (verify_stop_) return;
      verify_jobs_.push_back([this, e = e.shared_from_this(), b] {
        auto st = shared_->store->CompletePieces(e->layout.blobs[b].digest);
        Submit([this, e, b, st = std::move(st)] {
          if (e->failed) return;
          if (!st.ok()) {
            Fail(*e, st.error());
            lt::torrent_handle handle;
            {
              std::lock_guard hold(e->mu);
              handle = e->handle;
            }
            if (handle.is_valid()) handle.pause();
            return;
          }
          e->blob_done[b] = true;
          MarkStored(e, b);  // reported once durable
        });
      });
    }
    verify_cv_.notify_one();
  }

  void Fail(Entry& e, const Error& why) {
    {
      std::lock_guard lock(e.mu);
      if (!e.error.empty()) return;
      e.error = why.message;
    }
    e.failed = true;
    shared_->log->error("data plane: release {}: {}", e.name, why.message);
    if (shared_->callbacks.failed) shared_->callbacks.failed(e.key, why);
  }

  struct CachedChunk {
    const Entry* entry;
    uint32_t chunk;  // ordinal in the release
    std::vector<uint8_t> bytes;
  };
  static constexpr size_t kCacheChunks = 8;
  // A chunk whose pieces are arriving: verified pieces wait here until it is whole.
  struct Assembly {
    std::vector<uint8_t> bytes;
    std::vector<bool> parts;  // per piece of the chunk: verified and copied in
    uint32_t missing = 0;
  };

  lt::io_context& ioc_;
  std::shared_ptr<Shared> shared_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;           // mu_
  bool stop_ = false;                                // mu_
  std::vector<std::shared_ptr<Entry>> storages_;     // mu_
  std::vector<lt::storage_index_t> free_;            // mu_
  std::map<std::pair<const Entry*, uint32_t>, std::vector<char>> writing_;  // mu_: pieces being received
  static constexpr size_t kMaxBuffered = 48u << 20;  // bytes of pieces being received, all torrents
  size_t buffered_ = 0;                                                   // mu_
  std::vector<std::shared_ptr<lt::disk_observer>> observers_;             // mu_: waiting for on_disk
  std::deque<CachedChunk> cache_;                    // disk thread
  std::map<std::pair<const Entry*, uint32_t>, Assembly> assembling_;  // disk thread, by chunk ordinal
  std::vector<char> last_read_;                      // disk thread: the piece blocks were last read from
  const Entry* last_read_entry_ = nullptr;
  uint32_t last_read_piece_ = 0;
  uint64_t blocks_served_ = 0, pieces_read_ = 0;    // disk thread: upload blocks, store reads for them
  std::thread sync_thread_;
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  bool sync_stop_ = false;                           // sync_mu_
  bool dirty_ = false;                               // sync_mu_: stored since the last sync began
  bool sync_soon_ = false;                           // sync_mu_: sync without waiting for the interval
  uint64_t syncs_started_ = 0, syncs_done_ = 0;      // sync_mu_
  std::vector<std::pair<std::shared_ptr<Entry>, size_t>> blobs_to_report_;  // sync_mu_: complete, not yet durable
  std::thread verify_thread_;
  std::mutex verify_mu_;
  std::condition_variable verify_cv_;
  std::deque<std::function<void()>> verify_jobs_;    // verify_mu_
  bool verify_stop_ = false;                         // verify_mu_
  std::thread thread_;
};

class DataPlaneImpl final : public DataPlane {
 public:
  DataPlaneImpl(store::BlobStore& store, DataPlaneOptions o, DataPlaneCallbacks cb, std::shared_ptr<spdlog::logger> log)
      : store_(store), o_(std::move(o)), log_(std::move(log)) {
    shared_ = std::make_shared<Shared>();
    shared_->store = &store_;
    shared_->log = log_;
    shared_->callbacks = std::move(cb);
    shared_->corrupt_uploads = o_.corrupt_uploads_for_test;
    shared_->sync_interval_ms = o_.sync_interval_ms;
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
    lt::settings_pack s;
    const std::string iface = o_.listen_host + ":" + std::to_string(o_.listen_port) + (o_.tls ? "s" : "");
    s.set_str(lt::settings_pack::listen_interfaces, iface);
    s.set_str(lt::settings_pack::outgoing_interfaces, "");
    s.set_int(lt::settings_pack::alert_mask, static_cast<int>(static_cast<std::uint32_t>(
        lt::alert_category::error | lt::alert_category::peer | lt::alert_category::status | lt::alert_category::storage)));
    s.set_bool(lt::settings_pack::enable_dht, false);
    s.set_bool(lt::settings_pack::enable_lsd, false);
    s.set_bool(lt::settings_pack::enable_upnp, false);
    s.set_bool(lt::settings_pack::enable_natpmp, false);
    s.set_bool(lt::settings_pack::enable_outgoing_utp, false);
    s.set_bool(lt::settings_pack::enable_incoming_utp, false);
    s.set_bool(lt::settings_pack::enable_outgoing_tcp, true);
    s.set_bool(lt::settings_pack::enable_incoming_tcp, true);
    s.set_bool(lt::settings_pack::allow_multiple_connections_per_ip, true);
    s.set_int(lt::settings_pack::in_enc_policy, lt::settings_pack::pe_disabled);
    s.set_int(lt::settings_pack::out_enc_policy, lt::settings_pack::pe_disabled);
    // A cluster, not a public swarm: every peer unchoked, no tit-for-tat.
    s.set_int(lt::settings_pack::choking_algorithm, lt::settings_pack::fixed_slots_choker);
    s.set_int(lt::settings_pack::unchoke_slots_limit, -1);
    s.set_int(lt::settings_pack::active_downloads, -1);
    s.set_int(lt::settings_pack::active_seeds, -1);
    s.set_int(lt::settings_pack::active_limit, -1);
    s.set_bool(lt::settings_pack::smooth_connects, false);
    // Short request queues (about 1 s of each peer's rate, at most 64 blocks): a receiver that
    // queues many pieces at one peer claims pieces others could send sooner. Measured before the
    // piece dealer existed (16 receivers: libtorrent's defaults 2.05x the floor, these ~1.5x);
    // the dealer's windows are about 1 s too (piece_dealer.h). docs/benchmarks.md.
    s.set_int(lt::settings_pack::request_queue_time, 1);
    s.set_int(lt::settings_pack::max_out_request_queue, 64);
    // Whole pieces from one peer (libtorrent's default threshold): a piece that fails its hash
    // check then has a single sender, who is banned at once. Blocks of one piece from several
    // peers (threshold 0) let a corrupt peer get honest ones banned with it.
    // A peer neither side wants anything from right now may have pieces a moment later (a seed
    // deals more, a receiver gets more): keep the connection rather than reconnect (libtorrent
    // waits a minute to redial).
    s.set_bool(lt::settings_pack::close_redundant_connections, false);
    // Bounded receive windows: every peer sends to this node at once, and with the kernel's
    // autotuned windows (MiBs) their flows overran the queue of this node's link: 3-5 % of the
    // segments were retransmitted, up to 37 % at some nodes (BBR), and the last node finished
    // at 1.16-1.22x the floor. With 32 KiB (24-32 KiB measured alike): 0.2 %, 1.12-1.14x.
    s.set_int(lt::settings_pack::recv_socket_buffer_size, o_.receive_buffer);
    // A LAN: a peer that has not answered a request in 10 s (cut off, frozen) is not waited for
    // (libtorrent's defaults, 60 s and 120 s, held a receiver up to a minute after a link cut).
    s.set_int(lt::settings_pack::request_timeout, 10);
    s.set_int(lt::settings_pack::peer_timeout, 30);
    s.set_str(lt::settings_pack::user_agent, "gapsync");
    // Expert/benchmark override: GAPSYNC_LT_SETTINGS="name=value,..." (libtorrent setting names).
    if (const char* extra = std::getenv("GAPSYNC_LT_SETTINGS")) {
      std::stringstream ss(extra);
      std::string item;
      while (std::getline(ss, item, ',')) {
        auto eq = item.find('=');
        if (eq == std::string::npos) continue;
        const std::string name = item.substr(0, eq), value = item.substr(eq + 1);
        const int id = lt::setting_by_name(name);
        if (id < 0) return MakeError(Errc::kInvalidArgument, "GAPSYNC_LT_SETTINGS: no libtorrent setting \"" + name + "\"");
        if ((id & lt::settings_pack::type_mask) == lt::settings_pack::bool_type_base) {
          s.set_bool(id, value == "1" || value == "true");
        } else if ((id & lt::settings_pack::type_mask) == lt::settings_pack::int_type_base) {
          int v = 0;
          auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
          if (ec != std::errc() || end != value.data() + value.size()) {
            return MakeError(Errc::kInvalidArgument, "GAPSYNC_LT_SETTINGS: " + name + "=" + value + " is not a number");
          }
          s.set_int(id, v);
        } else {
          s.set_str(id, value);
        }
        log_->info("data plane: libtorrent setting {} = {}", name, value);
      }
    }
    s.set_str(lt::settings_pack::peer_fingerprint, "-GS0001-");
    // No extensions: peers come from the control plane (no ut_pex), torrents from it too (no
    // ut_metadata), and a failed piece is never kept to be re-read (no smart_ban).
    lt::session_params params(std::move(s), {});
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

  Status Add(const std::string& key, const std::string& name, const TorrentLayout& layout, const std::string& info) override {
    {
      std::lock_guard lock(mu_);
      if (entries_.count(key)) return MakeError(Errc::kConflict, "release " + key + " is already being served");
    }
    if (layout.num_pieces == 0) return MakeError(Errc::kInvalidArgument, "release " + key + " has no bytes to transfer");
    if (layout.chunk_size != store_.chunk_size() || layout.piece_size == 0 || layout.chunk_size % layout.piece_size != 0) {
      return MakeError(Errc::kInvalidArgument, "release " + key + ": torrent layout of " + std::to_string(layout.chunk_size) +
                                                   "-byte chunks in " + std::to_string(layout.piece_size) +
                                                   "-byte pieces does not fit the store's " + std::to_string(store_.chunk_size()) + "-byte chunks");
    }
    std::string file = "d4:info" + info + "e";
    lt::error_code ec;
    auto ti = std::make_shared<lt::torrent_info>(lt::span<char const>(file.data(), static_cast<std::ptrdiff_t>(file.size())), ec, lt::from_span);
    if (ec) return MakeError(Errc::kCorrupt, "release " + key + ": torrent info does not parse: " + ec.message());
    if (ti->num_pieces() != static_cast<int>(layout.num_pieces)) {
      return MakeError(Errc::kCorrupt, "release " + key + ": torrent has " + std::to_string(ti->num_pieces()) +
                                           " pieces, its blobs need " + std::to_string(layout.num_pieces));
    }
    auto e = std::make_shared<Entry>();
    e->key = key;
    e->name = name.empty() ? key : name;
    e->layout = layout;
    e->info_hash = ti->info_hashes().v1;
    for (int p = 0; p < ti->num_pieces(); ++p) e->piece_hashes.push_back(ti->hash_for_piece(lt::piece_index_t{p}));
    lt::add_torrent_params atp;
    atp.ti = ti;
    atp.save_path = ".";  // unused: every byte goes through the store
    atp.flags = lt::torrent_flags::update_subscribe | lt::torrent_flags::apply_ip_filter | lt::torrent_flags::duplicate_is_error;
    atp.have_pieces.resize(static_cast<int>(layout.num_pieces), false);
    e->blocks_sent.assign(layout.num_pieces, 0);
    {
      std::vector<int> lengths, sizes;  // what a peer asks for of each piece; its size with padding
      for (uint32_t p = 0; p < layout.num_pieces; ++p) {
        lengths.push_back(std::min(e->piece_len(p), e->asked_blocks(p) * lt::default_block_size));
        sizes.push_back(e->piece_len(p));
      }
      std::weak_ptr<Entry> weak = e;
      auto everything_out = [weak, log = log_] {
        if (auto entry = weak.lock()) {
          log->debug("data plane: release {}: every piece has left this node once ({} bytes uploaded): offering all of them",
                     entry->name, entry->uploaded.load());
        }
      };
      atp.extensions.push_back([lengths, sizes, everything_out](lt::torrent_handle const& th, lt::client_data_t) {
        return MakePieceDealer(th, lengths, sizes, everything_out);
      });
    }
    e->missing_per_blob.resize(layout.blobs.size(), 0);
    e->blob_done.resize(layout.blobs.size(), false);
    std::vector<size_t> to_complete;
    for (size_t b = 0; b < layout.blobs.size(); ++b) {
      const auto& blob = layout.blobs[b];
      GS_ASSIGN_OR_RETURN(auto held, store_.HeldPieces(blob.digest, blob.size));
      GS_ASSIGN_OR_RETURN(auto stat, store_.Stat(blob.digest));
      e->blob_done[b] = stat.has_value();
      for (uint32_t c = 0; c < layout.chunks_of(b); ++c) {
        if (c >= held.size() || !held[c]) {
          e->missing_per_blob[b]++;
          continue;
        }
        const uint32_t first = layout.first_piece[b] + c * layout.pieces_per_chunk();
        const uint32_t end = std::min(first + layout.pieces_per_chunk(), layout.first_piece[b] + layout.pieces_of(b));
        for (uint32_t p = first; p < end; ++p) atp.have_pieces.set_bit(lt::piece_index_t{static_cast<int>(p)});
        e->bytes_have += layout.chunk_len(b, c);
      }
      if (!e->blob_done[b] && e->missing_per_blob[b] == 0) to_complete.push_back(b);
    }
    {
      std::lock_guard lock(shared_->mu);
      shared_->by_info_hash[e->info_hash] = e;
    }
    lt::torrent_handle h;
    try {
      h = session_->add_torrent(std::move(atp));
    } catch (const std::exception& ex) {
      return MakeError(Errc::kInternal, "release " + key + ": " + ex.what());
    }
    {
      std::lock_guard lock(e->mu);
      e->handle = h;
    }
    if (o_.tls) h.set_ssl_certificate(o_.tls_files.cert, o_.tls_files.key, "");
    std::vector<std::string> peers;
    {
      std::lock_guard lock(mu_);
      entries_[key] = e;
      peers = peers_;
    }
    Connect(*e, peers);
    if (!to_complete.empty()) {
      std::lock_guard lock(shared_->mu);
      if (shared_->disk) shared_->disk->CompleteLater(e, std::move(to_complete));
    }
    log_->info("data plane: release {}: {} blobs, {} pieces, {} of {} bytes held", e->name, layout.blobs.size(),
               layout.num_pieces, e->bytes_have.load(), layout.total_bytes);
    return OkStatus();
  }

  void Remove(const std::string& key) override {
    std::shared_ptr<Entry> e;
    {
      std::lock_guard lock(mu_);
      auto it = entries_.find(key);
      if (it == entries_.end()) return;
      e = it->second;
      entries_.erase(it);
    }
    {
      std::lock_guard lock(shared_->mu);
      shared_->by_info_hash.erase(e->info_hash);
    }
    if (e->handle.is_valid()) session_->remove_torrent(e->handle);
    log_->info("data plane: release {}: no longer served", e->name);
  }

  bool Has(const std::string& key) const override {
    std::lock_guard lock(mu_);
    return entries_.count(key) > 0;
  }

  void SetPeers(const std::vector<std::string>& peers) override {
    std::vector<std::shared_ptr<Entry>> entries;
    bool changed = false;
    {
      std::lock_guard lock(mu_);
      changed = peers_ != peers;
      peers_ = peers;
      for (auto& [k, e] : entries_) entries.push_back(e);
      if (!o_.tls && changed) UpdateIpFilter();
    }
    for (auto& e : entries) Connect(*e, peers);
  }

  std::vector<TransferState> Transfers() const override {
    std::vector<std::shared_ptr<Entry>> entries;
    {
      std::lock_guard lock(mu_);
      for (auto& [k, e] : entries_) entries.push_back(e);
    }
    std::vector<TransferState> out;
    for (auto& e : entries) {
      TransferState t;
      t.key = e->key;
      t.name = e->name;
      t.info_hash = lt::aux::to_hex(e->info_hash);
      t.bytes_total = e->layout.total_bytes;
      t.bytes_have = std::min(e->bytes_have.load(), t.bytes_total);
      t.uploaded = e->uploaded;
      t.downloaded = e->downloaded;
      t.rejected_pieces = e->rejected_pieces;
      {
        std::lock_guard lock(e->mu);
        t.error = e->error;
      }
      if (e->handle.is_valid()) {
        auto st = e->handle.status(lt::torrent_handle::query_accurate_download_counters);
        t.download_rate = st.download_payload_rate;
        t.upload_rate = st.upload_payload_rate;
        t.peers = st.num_peers;
        if (t.error.empty() && st.errc) t.error = st.errc.message();
      }
      t.complete = t.bytes_have == t.bytes_total;
      out.push_back(std::move(t));
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
  void Connect(Entry& e, const std::vector<std::string>& peers) {
    if (!e.handle.is_valid()) return;
    for (const auto& p : peers) {
      auto parsed = ParseIpv4Endpoint(p);
      if (!parsed) continue;
      lt::error_code ec;
      auto addr = lt::make_address_v4(parsed->host, ec);
      if (!ec) e.handle.connect_peer(lt::tcp::endpoint(addr, parsed->port));
    }
  }

  // Plain TCP (benchmarks): accept only the members' addresses (and loopback for tests).
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

  std::string NameOf(const lt::torrent_handle& h) {
    std::lock_guard lock(mu_);
    for (auto& [k, e] : entries_) {
      if (e->handle == h) return e->name;
    }
    return "?";
  }

  // At debug level: what each peer connection is doing (for tuning; see docs/benchmarks.md).
  void LogPeers() {
    if (!log_->should_log(spdlog::level::debug)) return;
    std::vector<std::shared_ptr<Entry>> entries;
    {
      std::lock_guard lock(mu_);
      for (auto& [k, e] : entries_) entries.push_back(e);
    }
    for (auto& e : entries) {
      std::vector<lt::peer_info> peers;
      e->handle.get_peer_info(peers);
      {
        // The whole torrent: what this node lacks, what of that some peer could send, what it has asked for.
        std::vector<int> avail;
        e->handle.piece_availability(avail);
        auto st = e->handle.status(lt::torrent_handle::query_pieces);
        std::vector<lt::partial_piece_info> queue;
        e->handle.get_download_queue(queue);
        std::vector<bool> queued(avail.size(), false);
        for (auto& q : queue) {
          if (static_cast<size_t>(static_cast<int>(q.piece_index)) < queued.size()) queued[static_cast<size_t>(static_cast<int>(q.piece_index))] = true;
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
                    e->name, lacking, available, waiting, queue.size(), dlq, target, upq, sendbuf);
      }
      for (auto& p : peers) {
        log_->debug("data plane: release {}: peer {} down {:.1f} Mbit/s, up {:.1f} Mbit/s, {} blocks requested, {} requested by it, "
                    "interesting {}, choked {}, interested {}, choking us {}, {} pieces", e->name,
                   p.ip.address().to_string(), p.down_speed * 8 / 1e6, p.up_speed * 8 / 1e6, p.download_queue_length,
                   p.upload_queue_length, bool(p.flags & lt::peer_info::interesting), bool(p.flags & lt::peer_info::choked),
                   bool(p.flags & lt::peer_info::remote_interested), bool(p.flags & lt::peer_info::remote_choked), p.num_pieces);
      }
    }
  }

  // Every progress_ms: one line per transfer still receiving (operators read these in the log).
  void LogProgress() {
    LogPeers();
    for (const auto& t : Transfers()) {
      if (t.complete || !t.error.empty()) continue;
      log_->info("data plane: release {}: {:.1f} % ({} of {} bytes), down {:.1f} Mbit/s, up {:.1f} Mbit/s, {} peers",
                 t.name, t.bytes_total ? 100.0 * static_cast<double>(t.bytes_have) / static_cast<double>(t.bytes_total) : 100.0,
                 t.bytes_have, t.bytes_total, static_cast<double>(t.download_rate) * 8 / 1e6,
                 static_cast<double>(t.upload_rate) * 8 / 1e6, t.peers);
    }
  }

  void AlertLoop() {
    auto next_progress = std::chrono::steady_clock::now();
    int progress_ms = 5000;
    if (const char* p = std::getenv("GAPSYNC_PROGRESS_LOG_MS")) progress_ms = std::max(100, std::atoi(p));
    while (!stopping_) {
      if (std::chrono::steady_clock::now() >= next_progress) {
        LogProgress();
        next_progress = std::chrono::steady_clock::now() + std::chrono::milliseconds(progress_ms);
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

  store::BlobStore& store_;
  DataPlaneOptions o_;
  std::shared_ptr<spdlog::logger> log_;
  std::shared_ptr<Shared> shared_;
  std::string ca_pem_;
  std::unique_ptr<lt::session> session_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread alert_thread_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;  // mu_
  std::vector<std::string> peers_;                         // mu_
};

}  // namespace

TorrentLayout TorrentLayout::Make(const std::vector<BlobSpec>& blobs, uint32_t chunk_size, uint32_t piece_size) {
  TorrentLayout l;
  l.chunk_size = chunk_size;
  if (piece_size == 0) piece_size = chunk_size > kPieceSize && chunk_size % kPieceSize == 0 ? kPieceSize : chunk_size;
  l.piece_size = piece_size;
  std::set<BlobDigest> seen;
  for (const auto& b : blobs) {
    if (b.size == 0 || !seen.insert(b.digest).second) continue;
    l.blobs.push_back(b);
    l.first_piece.push_back(l.num_pieces);
    l.first_chunk.push_back(l.num_chunks);
    l.num_pieces += static_cast<uint32_t>((b.size + piece_size - 1) / piece_size);
    l.num_chunks += static_cast<uint32_t>((b.size + chunk_size - 1) / chunk_size);
    l.total_bytes += b.size;
  }
  return l;
}

uint32_t TorrentLayout::pieces_of(size_t blob) const {
  return static_cast<uint32_t>((blobs[blob].size + piece_size - 1) / piece_size);
}

uint32_t TorrentLayout::chunks_of(size_t blob) const {
  return static_cast<uint32_t>((blobs[blob].size + chunk_size - 1) / chunk_size);
}

size_t TorrentLayout::blob_of_piece(uint32_t piece) const {
  auto it = std::upper_bound(first_piece.begin(), first_piece.end(), piece);
  return static_cast<size_t>(it - first_piece.begin()) - 1;
}

uint32_t TorrentLayout::chunk_in_blob(uint32_t piece) const {
  return (piece - first_piece[blob_of_piece(piece)]) / pieces_per_chunk();
}

uint32_t TorrentLayout::chunk_ordinal(uint32_t piece) const {
  return first_chunk[blob_of_piece(piece)] + chunk_in_blob(piece);
}

uint32_t TorrentLayout::chunk_len(size_t blob, uint32_t chunk) const {
  return static_cast<uint32_t>(std::min<uint64_t>(chunk_size, blobs[blob].size - uint64_t{chunk} * chunk_size));
}

Result<std::string> BuildTorrentInfo(store::BlobStore& store, const TorrentLayout& layout, const std::string& ssl_ca_pem,
                                     const std::string& release) {
  if (layout.chunk_size != store.chunk_size() || layout.piece_size == 0 || layout.chunk_size % layout.piece_size != 0) {
    return MakeError(Errc::kInvalidArgument, "torrent layout: chunks must be the store's and a whole number of pieces");
  }
  std::string pieces;
  pieces.reserve(size_t{layout.num_pieces} * 20);
  std::vector<uint8_t> chunk;
  std::vector<char> piece(layout.piece_size);
  for (size_t b = 0; b < layout.blobs.size(); ++b) {
    const auto& blob = layout.blobs[b];
    for (uint32_t c = 0; c < layout.chunks_of(b); ++c) {
      GS_RETURN_IF_ERROR(store.ReadPiece(blob.digest, c, chunk));
      for (size_t off = 0; off < chunk.size(); off += layout.piece_size) {
        const size_t n = std::min<size_t>(layout.piece_size, chunk.size() - off);
        // Pieces are padded to full size, except the torrent's very last one.
        const bool last = b + 1 == layout.blobs.size() && off + n == chunk.size() && c + 1 == layout.chunks_of(b);
        std::fill(piece.begin(), piece.end(), 0);
        std::memcpy(piece.data(), chunk.data() + off, n);
        auto h = Sha1(piece.data(), last ? n : piece.size());
        pieces.append(h.data(), h.size());
      }
    }
  }
  return EncodeInfo(layout, pieces, ssl_ca_pem, release);
}

Status CheckTorrentInfo(const std::string& info, const TorrentLayout& layout, const std::string& ssl_ca_pem,
                        const std::string& release) {
  lt::error_code ec;
  lt::bdecode_node node = lt::bdecode(lt::span<char const>(info.data(), static_cast<std::ptrdiff_t>(info.size())), ec);
  if (ec || node.type() != lt::bdecode_node::dict_t) return MakeError(Errc::kCorrupt, "torrent info is not a bencoded dictionary");
  auto found = node.dict_find_string_value("pieces");
  const std::string_view pieces(found.data(), found.size());
  if (pieces.size() != size_t{layout.num_pieces} * 20) {
    return MakeError(Errc::kCorrupt, "torrent info lists " + std::to_string(pieces.size() / 20) + " piece hashes, the release's blobs make " +
                                         std::to_string(layout.num_pieces) + " pieces");
  }
  if (EncodeInfo(layout, pieces, ssl_ca_pem, release) != info) {
    return MakeError(Errc::kCorrupt, "torrent info does not describe the release's blobs (files, sizes, piece size, TLS root or release differ)");
  }
  return OkStatus();
}

Result<std::unique_ptr<DataPlane>> DataPlane::Start(store::BlobStore& store, const DataPlaneOptions& options,
                                                    DataPlaneCallbacks callbacks, std::shared_ptr<spdlog::logger> log) {
  auto dp = std::make_unique<DataPlaneImpl>(store, options, std::move(callbacks), std::move(log));
  GS_RETURN_IF_ERROR(dp->Init());
  return std::unique_ptr<DataPlane>(std::move(dp));
}

}  // namespace gapsync::transport

#if defined(__SANITIZE_ADDRESS__)
// Sanitizer builds (tests/run.sh with GAPSYNC_SANITIZE=1): libtorrent-rasterbar 2.0.8 leaks the
// subjectAltName list it reads in torrent::verify_peer_cert (X509_get_ext_d2i without
// GENERAL_NAMES_free), about 100 bytes per TLS peer it verifies. Matching that leak to the
// library needs the slow unwinder (libcrypto has no frame pointers). Every binary with the data
// plane gets both.
extern "C" const char* __asan_default_options() { return "fast_unwind_on_malloc=0"; }
extern "C" const char* __lsan_default_suppressions() { return "leak:libtorrent-rasterbar.so\n"; }
#endif
