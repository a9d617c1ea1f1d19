// Internal: one release torrent as the data plane (data_plane.cc) and its disk I/O
// (store_disk_io.cc) share it. Includes libtorrent: for the data plane's own files only.
#pragma once

#include <libtorrent/sha1_hash.hpp>
#include <libtorrent/torrent_handle.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "proto/ids.h"
#include "transport/piece_assembler.h"
#include "transport/torrent_layout.h"

namespace gapsync::transport {

struct ReleaseTorrent : std::enable_shared_from_this<ReleaseTorrent> {
  ReleaseTorrent(ReleaseDigest release_digest, std::string release_name, TorrentLayout torrent_layout)
      : release(release_digest), name(std::move(release_name)), layout(std::move(torrent_layout)), disk(layout) {}

  // Fixed when the torrent is added (any thread may read them):
  const ReleaseDigest release;
  const std::string name;  // app@version, for logs
  const TorrentLayout layout;
  std::vector<lt::sha1_hash> piece_hashes;
  lt::sha1_hash info_hash;

  // Any thread:
  std::atomic<uint64_t> bytes_have{0};       // verified and stored
  std::atomic<uint64_t> uploaded{0};         // payload bytes read for peers
  std::atomic<uint64_t> downloaded{0};       // payload bytes received
  std::atomic<uint64_t> rejected_pieces{0};  // received pieces that failed their hash check
  // The first error that stopped the transfer; false if one was set already.
  bool SetError(const std::string& why) {
    std::lock_guard lock(mu_);
    if (!error_.empty()) return false;
    error_ = why;
    return true;
  }
  std::string error() const {
    std::lock_guard lock(mu_);
    return error_;
  }
  // Set once libtorrent has the torrent; the disk thread may be called for it before that.
  void set_handle(lt::torrent_handle h) {
    std::lock_guard lock(mu_);
    handle_ = std::move(h);
  }
  lt::torrent_handle handle() const {
    std::lock_guard lock(mu_);
    return handle_;
  }

  // The disk thread's own (StoreDiskIo asserts it runs there). Set up by Add before libtorrent
  // has the torrent.
  struct DiskState {
    explicit DiskState(const TorrentLayout& l) : assembler(l) {}
    PieceAssembler assembler;              // verified pieces of chunks not yet whole
    std::vector<uint32_t> missing_chunks;  // per blob: chunks it still lacks
    std::vector<bool> blob_done;           // per blob: verified and visible
    std::vector<uint32_t> blocks_sent;     // per piece: blocks uploaded (the stop summary)
    bool failed = false;                   // nothing more is stored for it
  } disk;

 private:
  mutable std::mutex mu_;
  std::string error_;          // mu_
  lt::torrent_handle handle_;  // mu_
};

}  // namespace gapsync::transport
