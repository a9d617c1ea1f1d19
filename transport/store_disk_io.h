// Internal: libtorrent's disk I/O, backed by the node's store (lt::disk_interface; upstream's
// model is examples/custom_storage.cpp). Nothing is written to files: received blocks are
// assembled in memory into pieces, a piece that matches its SHA-1 into its store chunk
// (PieceAssembler), and a chunk that is whole is stored (PieceStore::PutPiece). A blob whose chunks
// are all stored is checked against its SHA-256 (PieceStore::CompletePieces) on the verify thread
// and reported once a sync made it durable (SyncScheduler). Uploads read verified chunks from the
// store through a small cache (ChunkCache).
//
// Threads: libtorrent's network thread calls in and gets its handlers posted back; the disk
// thread does every store read for an upload, every piece's SHA-1 and every chunk's store write;
// the verify thread checks whole blobs (seconds for a large layer), at nice 10 below the others;
// the sync thread makes stored pieces durable. Blocks being received are assembled in memory by
// libtorrent's thread (48 MiB at most: beyond that libtorrent stops reading from peers).
#pragma once

#include <libtorrent/disk_interface.hpp>
#include <libtorrent/io_context.hpp>

#include <map>
#include <memory>
#include <mutex>

#include "store/piece_store.h"
#include "transport/chunk_cache.h"
#include "transport/data_plane.h"
#include "transport/job_thread.h"
#include "transport/release_torrent.h"
#include "transport/sync_scheduler.h"

namespace spdlog {
class logger;
}

namespace gapsync::transport {

class StoreDiskIo;

// What the data plane and the disk I/O object (made by libtorrent, at a time of its choosing)
// share.
struct DiskIoShared {
  store::PieceStore* store = nullptr;
  std::shared_ptr<spdlog::logger> log;
  DataPlaneCallbacks callbacks;
  bool corrupt_uploads = false;
  std::chrono::milliseconds sync_interval{1000};
  std::mutex mu;
  StoreDiskIo* disk = nullptr;                                            // mu: while it lives
  std::map<lt::sha1_hash, std::shared_ptr<ReleaseTorrent>> by_info_hash;  // mu: registered before add_torrent
};

class StoreDiskIo final : public lt::disk_interface, public lt::buffer_allocator_interface {
 public:
  StoreDiskIo(lt::io_context& ioc, std::shared_ptr<DiskIoShared> shared);
  ~StoreDiskIo() override;

  // Blobs of `t` whose pieces are all held but that were never completed (a stop right before):
  // completed as if their last piece had just arrived.
  void CompleteLater(std::shared_ptr<ReleaseTorrent> t, std::vector<size_t> blobs);

  // ---- lt::disk_interface ----
  lt::storage_holder new_torrent(lt::storage_params const& p, std::shared_ptr<void> const&) override;
  void remove_torrent(lt::storage_index_t idx) override;
  void async_read(lt::storage_index_t storage, lt::peer_request const& r,
                  std::function<void(lt::disk_buffer_holder, lt::storage_error const&)> handler,
                  lt::disk_job_flags_t) override;
  bool async_write(lt::storage_index_t storage, lt::peer_request const& r, char const* buf,
                   std::shared_ptr<lt::disk_observer> o, std::function<void(lt::storage_error const&)> handler,
                   lt::disk_job_flags_t) override;
  void async_hash(lt::storage_index_t storage, lt::piece_index_t piece, lt::span<lt::sha256_hash>, lt::disk_job_flags_t,
                  std::function<void(lt::piece_index_t, lt::sha1_hash const&, lt::storage_error const&)> handler) override;
  void async_hash2(lt::storage_index_t, lt::piece_index_t piece, int, lt::disk_job_flags_t,
                   std::function<void(lt::piece_index_t, lt::sha256_hash const&, lt::storage_error const&)> handler) override;
  void async_move_storage(lt::storage_index_t, std::string p, lt::move_flags_t,
                          std::function<void(lt::status_t, std::string const&, lt::storage_error const&)> handler) override;
  void async_release_files(lt::storage_index_t, std::function<void()> handler) override;
  void async_check_files(lt::storage_index_t, lt::add_torrent_params const*, lt::aux::vector<std::string, lt::file_index_t>,
                         std::function<void(lt::status_t, lt::storage_error const&)> handler) override;
  void async_stop_torrent(lt::storage_index_t, std::function<void()> handler) override;
  void async_rename_file(lt::storage_index_t, lt::file_index_t idx, std::string name,
                         std::function<void(std::string const&, lt::file_index_t, lt::storage_error const&)> handler) override;
  void async_delete_files(lt::storage_index_t, lt::remove_flags_t,
                          std::function<void(lt::storage_error const&)> handler) override;
  void async_set_file_priority(
      lt::storage_index_t, lt::aux::vector<lt::download_priority_t, lt::file_index_t> prio,
      std::function<void(lt::storage_error const&, lt::aux::vector<lt::download_priority_t, lt::file_index_t>)> handler) override;
  void async_clear_piece(lt::storage_index_t storage, lt::piece_index_t index,
                         std::function<void(lt::piece_index_t)> handler) override;
  void update_stats_counters(lt::counters&) const override {}
  std::vector<lt::open_file_state> get_status(lt::storage_index_t) const override { return {}; }
  void abort(bool) override;
  void submit_jobs() override {}
  void settings_updated() override {}

  // ---- lt::buffer_allocator_interface ----
  void free_disk_buffer(char* buf) override { delete[] buf; }

 private:
  std::shared_ptr<ReleaseTorrent> Get(lt::storage_index_t idx);
  // Network thread, mu_ held: `n` bytes of piece buffers freed; below half the limit, peers may be
  // read again.
  void ReleaseLocked(size_t n);
  // ---- disk thread ----
  // The bytes of `piece` (padded to its length) into `out`: from a chunk being assembled, or from
  // the store through the chunk cache. kNotFound when this node does not hold it.
  Status PieceBytes(ReleaseTorrent& t, uint32_t piece, std::vector<char>& out);
  // One block of a piece for upload.
  Status ReadBlock(ReleaseTorrent& t, const lt::peer_request& r, char*& out);
  // Hashes a received piece; when it matches the torrent's hash, adds it to its chunk; a chunk
  // whose pieces are all there is stored, and a blob whose chunks all are is completed.
  void HashAndStore(ReleaseTorrent& t, uint32_t piece, lt::sha1_hash& hash, lt::storage_error& se);
  // Every piece of blob `b` is held: its SHA-256 is checked on the verify thread.
  void CompleteBlob(ReleaseTorrent& t, size_t b);
  void Fail(ReleaseTorrent& t, const Error& why);
  // How often each piece went out, in whole pieces (a seed that sends pieces more than once
  // spends its uplink, the scarcest link, twice). At info level when the torrent goes. On the disk
  // thread, or once it has stopped.
  void LogUploads(const ReleaseTorrent& t);
  // ---- sync thread ----
  void SyncFailed(const Error& why);

  lt::io_context& ioc_;
  std::shared_ptr<DiskIoShared> shared_;
  std::mutex mu_;                                          // network thread and Get()
  std::vector<std::shared_ptr<ReleaseTorrent>> storages_;  // mu_
  std::vector<lt::storage_index_t> free_;                  // mu_
  // mu_: pieces being received, by torrent and piece.
  std::map<std::pair<const ReleaseTorrent*, uint32_t>, std::vector<char>> writing_;
  static constexpr size_t kMaxBuffered = 48u << 20;  // bytes of pieces being received, all torrents
  size_t buffered_ = 0;                                     // mu_
  std::vector<std::shared_ptr<lt::disk_observer>> observers_;  // mu_: waiting for on_disk
  // Disk thread:
  ChunkCache cache_{8};
  std::vector<char> last_read_;  // the piece blocks were last read from
  const ReleaseTorrent* last_read_torrent_ = nullptr;
  uint32_t last_read_piece_ = 0;
  uint64_t blocks_served_ = 0, pieces_read_ = 0;  // upload blocks, store reads for them
  // Declared last: they stop first (verify, then disk, then sync: each hands work to the next).
  SyncScheduler sync_;
  JobThread disk_;
  JobThread verify_{10};
  bool aborted_ = false;  // abort() ran
};

}  // namespace gapsync::transport
