#include "transport/store_disk_io.h"

#include <openssl/sha.h>
#include <spdlog/spdlog.h>

#include <libtorrent/disk_buffer_holder.hpp>
#include <libtorrent/disk_observer.hpp>
#include <libtorrent/error_code.hpp>
#include <libtorrent/storage_defs.hpp>

#include <algorithm>
#include <cstring>

namespace gapsync::transport {
namespace {

lt::sha1_hash Sha1(const char* data, size_t n) {
  lt::sha1_hash h;
  SHA1(reinterpret_cast<const unsigned char*>(data), n, reinterpret_cast<unsigned char*>(h.data()));
  return h;
}

lt::storage_error StorageError(const Error& e, lt::operation_t op) {
  lt::storage_error se;
  int code = EIO;
  if (e.code == Errc::kNoSpace) code = ENOSPC;
  if (e.code == Errc::kCorrupt) code = EBADMSG;
  se.ec = lt::error_code(code, lt::generic_category());
  se.operation = op;
  return se;
}

lt::storage_error StorageError(int code, lt::operation_t op) {
  lt::storage_error se;
  se.ec = lt::error_code(code, lt::generic_category());
  se.operation = op;
  return se;
}

uint32_t PieceOf(lt::piece_index_t p) { return static_cast<uint32_t>(static_cast<int>(p)); }

}  // namespace

StoreDiskIo::StoreDiskIo(lt::io_context& ioc, std::shared_ptr<DiskIoShared> shared)
    : ioc_(ioc),
      shared_(std::move(shared)),
      sync_(*shared_->store, shared_->sync_interval, [this](const Error& why) { SyncFailed(why); }, shared_->log) {
  std::lock_guard lock(shared_->mu);
  shared_->disk = this;
}

StoreDiskIo::~StoreDiskIo() {
  {
    std::lock_guard lock(shared_->mu);
    shared_->disk = nullptr;
  }
  abort(true);
}

void StoreDiskIo::abort(bool) {
  if (aborted_) return;
  aborted_ = true;
  // Blobs waiting for their check are checked at the next start (Add finds them held).
  verify_.Stop(/*drain=*/false);
  disk_.Stop(/*drain=*/true);
  sync_.Stop();  // after a last sync of what was stored
  if (blocks_served_ > 0) {
    shared_->log->info("data plane: served {} blocks with {} piece reads from the store", blocks_served_, pieces_read_);
  }
}

void StoreDiskIo::CompleteLater(std::shared_ptr<ReleaseTorrent> t, std::vector<size_t> blobs) {
  disk_.Submit([this, t, blobs = std::move(blobs)] {
    for (size_t b : blobs) CompleteBlob(*t, b);
  });
}

lt::storage_holder StoreDiskIo::new_torrent(lt::storage_params const& p, std::shared_ptr<void> const&) {
  std::shared_ptr<ReleaseTorrent> t;
  {
    std::lock_guard lock(shared_->mu);
    auto it = shared_->by_info_hash.find(p.info_hash);
    if (it != shared_->by_info_hash.end()) t = it->second;
  }
  std::lock_guard lock(mu_);
  lt::storage_index_t idx{static_cast<std::uint32_t>(storages_.size())};
  if (!free_.empty()) {
    idx = free_.back();
    free_.pop_back();
    storages_[static_cast<size_t>(static_cast<std::uint32_t>(idx))] = t;
  } else {
    storages_.push_back(t);
  }
  return lt::storage_holder(idx, *this);
}

void StoreDiskIo::remove_torrent(lt::storage_index_t idx) {
  std::lock_guard lock(mu_);
  auto& slot = storages_[static_cast<size_t>(static_cast<std::uint32_t>(idx))];
  if (slot) {
    for (auto it = writing_.begin(); it != writing_.end();) {
      if (it->first.first == slot.get()) {
        ReleaseLocked(it->second.size());
        it = writing_.erase(it);
      } else {
        ++it;
      }
    }
    // Its cached chunks go with it (a later torrent may get its address); its upload counts are
    // the disk thread's to read. At a session's end libtorrent removes its torrents after abort()
    // stopped the disk thread: then it is done here (nothing else touches them any more).
    auto forget = [this, t = slot] {
      LogUploads(*t);
      cache_.Forget(t.get());
      if (last_read_torrent_ == t.get()) last_read_torrent_ = nullptr;
    };
    if (!disk_.Submit(forget)) forget();
  }
  slot.reset();
  free_.push_back(idx);
}

void StoreDiskIo::async_read(lt::storage_index_t storage, lt::peer_request const& r,
                             std::function<void(lt::disk_buffer_holder, lt::storage_error const&)> handler,
                             lt::disk_job_flags_t) {
  auto t = Get(storage);
  disk_.Submit([this, t, r, handler = std::move(handler)]() mutable {
    lt::storage_error se;
    char* buf = nullptr;
    if (!t) {
      se = StorageError(ENOENT, lt::operation_t::file_read);
    } else {
      auto got = ReadBlock(*t, r, buf);
      if (!got.ok()) {
        se = StorageError(got.error(), lt::operation_t::file_read);
        shared_->log->error("data plane: release {}: reading piece {}: {}", t->name, static_cast<int>(r.piece),
                            got.error().message);
      } else {
        t->uploaded += static_cast<uint64_t>(r.length);
        const uint32_t piece = PieceOf(r.piece);
        if (piece < t->disk.blocks_sent.size()) t->disk.blocks_sent[piece]++;
      }
    }
    const int len = buf ? r.length : 0;
    lt::post(ioc_, [this, buf, len, se, handler = std::move(handler)]() mutable {
      handler(lt::disk_buffer_holder(*this, buf, len), se);
    });
  });
}

bool StoreDiskIo::async_write(lt::storage_index_t storage, lt::peer_request const& r, char const* buf,
                              std::shared_ptr<lt::disk_observer> o, std::function<void(lt::storage_error const&)> handler,
                              lt::disk_job_flags_t) {
  auto t = Get(storage);
  lt::storage_error se;
  bool over = false;
  const uint32_t piece = PieceOf(r.piece);
  if (t && r.piece >= lt::piece_index_t{0} && piece < t->layout.num_pieces && r.start >= 0 && r.length >= 0 &&
      static_cast<uint32_t>(r.start + r.length) <= t->layout.piece_len(piece)) {
    std::lock_guard lock(mu_);
    auto& data = writing_[{t.get(), piece}];
    if (data.empty()) {
      data.assign(t->layout.piece_len(piece), 0);  // pad blocks stay zero
      buffered_ += data.size();
    }
    std::memcpy(data.data() + r.start, buf, static_cast<size_t>(r.length));
    t->downloaded += static_cast<uint64_t>(r.length);
    // Backpressure: beyond kMaxBuffered bytes of pieces in memory, libtorrent stops reading
    // from peers until the disk thread has caught up (disk_observer::on_disk).
    if (buffered_ > kMaxBuffered) {
      over = true;
      if (o) observers_.push_back(std::move(o));
    }
  } else {
    se = StorageError(EINVAL, lt::operation_t::file_write);
  }
  lt::post(ioc_, [se, handler = std::move(handler)] { handler(se); });
  return over;
}

void StoreDiskIo::async_hash(
    lt::storage_index_t storage, lt::piece_index_t piece, lt::span<lt::sha256_hash>, lt::disk_job_flags_t,
    std::function<void(lt::piece_index_t, lt::sha1_hash const&, lt::storage_error const&)> handler) {
  auto t = Get(storage);
  disk_.Submit([this, t, piece, handler = std::move(handler)]() mutable {
    lt::storage_error se;
    lt::sha1_hash hash;
    if (t) HashAndStore(*t, PieceOf(piece), hash, se);
    lt::post(ioc_, [piece, hash, se, handler = std::move(handler)] { handler(piece, hash, se); });
  });
}

void StoreDiskIo::async_hash2(
    lt::storage_index_t, lt::piece_index_t piece, int, lt::disk_job_flags_t,
    std::function<void(lt::piece_index_t, lt::sha256_hash const&, lt::storage_error const&)> handler) {
  // v1 torrents only: never asked.
  const auto se = StorageError(ENOTSUP, lt::operation_t::file_read);
  lt::post(ioc_, [piece, se, handler = std::move(handler)] { handler(piece, lt::sha256_hash(), se); });
}

void StoreDiskIo::async_move_storage(
    lt::storage_index_t, std::string p, lt::move_flags_t,
    std::function<void(lt::status_t, std::string const&, lt::storage_error const&)> handler) {
  const auto se = StorageError(ENOTSUP, lt::operation_t::file_rename);
  lt::post(ioc_, [p, se, handler = std::move(handler)] { handler(lt::status_t::fatal_disk_error, p, se); });
}

void StoreDiskIo::async_release_files(lt::storage_index_t, std::function<void()> handler) {
  disk_.Submit([this, handler = std::move(handler)]() mutable {
    sync_.SyncNow();
    if (handler) lt::post(ioc_, std::move(handler));
  });
}

void StoreDiskIo::async_check_files(lt::storage_index_t, lt::add_torrent_params const*,
                                    lt::aux::vector<std::string, lt::file_index_t>,
                                    std::function<void(lt::status_t, lt::storage_error const&)> handler) {
  // have_pieces in add_torrent_params comes from the store itself: nothing to check.
  lt::post(ioc_, [handler = std::move(handler)] { handler(lt::status_t::no_error, lt::storage_error()); });
}

void StoreDiskIo::async_stop_torrent(lt::storage_index_t, std::function<void()> handler) {
  disk_.Submit([this, handler = std::move(handler)]() mutable {
    sync_.SyncNow();
    if (handler) lt::post(ioc_, std::move(handler));
  });
}

void StoreDiskIo::async_rename_file(
    lt::storage_index_t, lt::file_index_t idx, std::string name,
    std::function<void(std::string const&, lt::file_index_t, lt::storage_error const&)> handler) {
  lt::post(ioc_, [idx, name, handler = std::move(handler)] { handler(name, idx, lt::storage_error()); });
}

void StoreDiskIo::async_delete_files(lt::storage_index_t, lt::remove_flags_t,
                                     std::function<void(lt::storage_error const&)> handler) {
  lt::post(ioc_, [handler = std::move(handler)] { handler(lt::storage_error()); });
}

void StoreDiskIo::async_set_file_priority(
    lt::storage_index_t, lt::aux::vector<lt::download_priority_t, lt::file_index_t> prio,
    std::function<void(lt::storage_error const&, lt::aux::vector<lt::download_priority_t, lt::file_index_t>)> handler) {
  lt::post(ioc_, [prio = std::move(prio), handler = std::move(handler)]() mutable {
    handler(lt::storage_error(), std::move(prio));
  });
}

void StoreDiskIo::async_clear_piece(lt::storage_index_t storage, lt::piece_index_t index,
                                    std::function<void(lt::piece_index_t)> handler) {
  auto t = Get(storage);
  if (t) {
    std::lock_guard lock(mu_);
    auto it = writing_.find({t.get(), PieceOf(index)});
    if (it != writing_.end()) {
      ReleaseLocked(it->second.size());
      writing_.erase(it);
    }
  }
  lt::post(ioc_, [index, handler = std::move(handler)] { handler(index); });
}

std::shared_ptr<ReleaseTorrent> StoreDiskIo::Get(lt::storage_index_t idx) {
  std::lock_guard lock(mu_);
  const auto i = static_cast<size_t>(static_cast<std::uint32_t>(idx));
  return i < storages_.size() ? storages_[i] : nullptr;
}

void StoreDiskIo::ReleaseLocked(size_t n) {
  buffered_ -= std::min(buffered_, n);
  if (buffered_ <= kMaxBuffered / 2 && !observers_.empty()) {
    lt::post(ioc_, [obs = std::move(observers_)] {
      for (auto& o : obs) o->on_disk();
    });
    observers_.clear();
  }
}

void StoreDiskIo::LogUploads(const ReleaseTorrent& t) {
  const auto& sent = t.disk.blocks_sent;
  std::map<uint32_t, uint32_t> times;
  uint64_t blocks_total = 0;
  for (uint32_t p = 0; p < sent.size(); ++p) {
    const uint32_t blocks = t.layout.blocks_asked(p);
    times[(sent[p] + blocks / 2) / blocks]++;
    blocks_total += sent[p];
  }
  if (blocks_total == 0) return;
  std::string h;
  for (auto [n, count] : times) h += (h.empty() ? "" : ", ") + std::to_string(count) + " pieces " + std::to_string(n) + "x";
  shared_->log->info("data plane: release {}: uploaded {}", t.name, h);
  if (shared_->log->should_log(spdlog::level::debug)) {
    std::string per;
    for (uint32_t p = 0; p < sent.size(); ++p) {
      per += " " + std::to_string(p) + ":" + std::to_string(sent[p] / t.layout.blocks_asked(p));
    }
    shared_->log->debug("data plane: release {}: pieces uploaded (piece:times){}", t.name, per);
  }
}

Status StoreDiskIo::PieceBytes(ReleaseTorrent& t, uint32_t piece, std::vector<char>& out) {
  GS_ASSERT_ON(disk_.role());
  const size_t b = t.layout.blob_of_piece(piece);
  const uint32_t ordinal = t.layout.chunk_ordinal(piece);
  const size_t off = size_t{piece - t.layout.first_piece_of_chunk(piece)} * t.layout.piece_size;
  std::span<const uint8_t> data = t.disk.assembler.Held(piece);
  if (data.empty()) {
    const std::vector<uint8_t>* chunk = cache_.Find(&t, ordinal);
    if (chunk == nullptr) {
      pieces_read_++;
      std::vector<uint8_t> bytes;
      GS_RETURN_IF_ERROR(shared_->store->ReadPiece(t.layout.blobs[b].digest, t.layout.chunk_in_blob(piece), bytes));
      chunk = &cache_.Insert(&t, ordinal, std::move(bytes));
    }
    if (chunk->size() < off + t.layout.data_len(piece)) return MakeError(Errc::kCorrupt, "stored chunk is short");
    data = std::span<const uint8_t>(chunk->data() + off, t.layout.data_len(piece));
  }
  out.assign(t.layout.piece_len(piece), 0);  // pad
  std::memcpy(out.data(), data.data(), data.size());
  return OkStatus();
}

Status StoreDiskIo::ReadBlock(ReleaseTorrent& t, const lt::peer_request& r, char*& out) {
  GS_ASSERT_ON(disk_.role());
  const uint32_t piece = PieceOf(r.piece);
  if (piece >= t.layout.num_pieces || r.start < 0 || r.length <= 0 ||
      static_cast<uint32_t>(r.start + r.length) > t.layout.piece_len(piece)) {
    return MakeError(Errc::kInvalidArgument, "request outside the torrent");
  }
  blocks_served_++;
  if (!(last_read_torrent_ == &t && last_read_piece_ == piece)) {
    last_read_torrent_ = nullptr;
    GS_RETURN_IF_ERROR(PieceBytes(t, piece, last_read_));
    last_read_torrent_ = &t;
    last_read_piece_ = piece;
  }
  out = new char[static_cast<size_t>(r.length)];
  std::memcpy(out, last_read_.data() + r.start, static_cast<size_t>(r.length));
  if (shared_->corrupt_uploads) out[r.length / 2] ^= 0x5a;  // test option: a lying peer
  return OkStatus();
}

void StoreDiskIo::HashAndStore(ReleaseTorrent& t, uint32_t piece, lt::sha1_hash& hash, lt::storage_error& se) {
  GS_ASSERT_ON(disk_.role());
  if (piece >= t.layout.num_pieces) {
    se.ec = lt::error_code(EINVAL, lt::generic_category());
    return;
  }
  std::vector<char> data;
  {
    std::lock_guard lock(mu_);
    auto it = writing_.find({&t, piece});
    if (it != writing_.end()) {
      data = std::move(it->second);
      writing_.erase(it);
      ReleaseLocked(data.size());
    }
  }
  if (data.empty()) {  // not received: a piece we hold (libtorrent re-checking it)
    std::vector<char> held;
    if (!PieceBytes(t, piece, held).ok()) {
      hash.clear();  // not held: a hash that matches nothing (the piece is fetched again)
      return;
    }
    hash = Sha1(held.data(), held.size());
    return;
  }
  hash = Sha1(data.data(), data.size());
  if (hash != t.piece_hashes[piece]) {  // libtorrent rejects it too, and bans the sender
    t.rejected_pieces++;
    return;
  }
  if (t.disk.failed) {  // nothing more is stored for it: libtorrent stops the torrent on this error
    se = StorageError(EIO, lt::operation_t::file_write);
    return;
  }
  auto added = t.disk.assembler.Add(piece, data);
  if (added.started_chunk) {
    // Finish what was started: the chunk's other pieces first, so that chunks are stored (and their
    // memory freed) as they arrive rather than all at the end (rarest-first alone left most chunks
    // half-full until the last seconds: peak RSS 154-159 MiB, and a node storing 70 MiB at the
    // very end finished seconds after the others).
    if (auto handle = t.handle(); handle.is_valid()) {
      std::vector<std::pair<lt::piece_index_t, lt::download_priority_t>> prio;
      const uint32_t first = t.layout.first_piece_of_chunk(piece);
      for (uint32_t q = first; q < first + t.layout.pieces_in_chunk(piece); ++q) {
        if (q != piece) prio.emplace_back(lt::piece_index_t{static_cast<int>(q)}, lt::top_priority);
      }
      handle.prioritize_pieces(prio);
    }
  }
  if (!added.whole) return;
  const auto& chunk = *added.whole;
  const auto& blob = t.layout.blobs[chunk.blob];
  auto st = shared_->store->PutPiece(blob.digest, blob.size, blob.media_type, chunk.index, chunk.bytes);
  if (!st.ok()) {
    se = StorageError(st.error(), lt::operation_t::file_write);
    Fail(t, Error{st.error().code, "storing chunk " + std::to_string(chunk.index) + " of blob " + blob.digest.str() +
                                       ": " + st.error().message});
    return;
  }
  sync_.Stored();
  t.bytes_have += chunk.bytes.size();
  if (t.disk.blob_done[chunk.blob] || --t.disk.missing_chunks[chunk.blob] > 0) return;
  CompleteBlob(t, chunk.blob);
}

void StoreDiskIo::CompleteBlob(ReleaseTorrent& t, size_t b) {
  GS_ASSERT_ON(disk_.role());
  // The check makes the blob visible; back on the disk thread it counts as done (and is reported
  // once durable), or the transfer fails when the pieces do not hash to the blob's digest or the
  // store fails (libtorrent stops the torrent at the next piece it hands us, and it is paused now).
  verify_.Submit([this, t = t.shared_from_this(), b] {
    auto st = shared_->store->CompletePieces(t->layout.blobs[b].digest);
    disk_.Submit([this, t, b, st = std::move(st)] {
      if (t->disk.failed) return;
      if (!st.ok()) {
        Fail(*t, st.error());
        if (auto handle = t->handle(); handle.is_valid()) handle.pause();
        return;
      }
      t->disk.blob_done[b] = true;
      sync_.StoredAndWaiting([this, t, b](const Status& synced) {
        if (!synced.ok()) {
          disk_.Submit([this, t, why = synced.error()] { Fail(*t, Error{why.code, "making received pieces durable: " + why.message}); });
          return;
        }
        if (shared_->callbacks.blob_done) shared_->callbacks.blob_done(t->release, t->layout.blobs[b].digest);
      });
    });
  });
}

void StoreDiskIo::Fail(ReleaseTorrent& t, const Error& why) {
  GS_ASSERT_ON(disk_.role());
  t.disk.failed = true;
  if (!t.SetError(why.message)) return;
  shared_->log->error("data plane: release {}: {}", t.name, why.message);
  if (shared_->callbacks.failed) shared_->callbacks.failed(t.release, why);
}

void StoreDiskIo::SyncFailed(const Error& st) {
  // What every transfer still receiving got since the last sync may not be durable: it stops.
  const Error why{st.code, "making received pieces durable: " + st.message};
  shared_->log->error("data plane: {}", why.message);
  disk_.Submit([this, why] {
    std::vector<std::shared_ptr<ReleaseTorrent>> torrents;
    {
      std::lock_guard lock(mu_);
      for (auto& t : storages_) {
        if (t) torrents.push_back(t);
      }
    }
    for (auto& t : torrents) {
      if (std::find(t->disk.blob_done.begin(), t->disk.blob_done.end(), false) != t->disk.blob_done.end()) Fail(*t, why);
    }
  });
}

}  // namespace gapsync::transport
