// The data plane: releases move between agents as BitTorrent swarms (libtorrent-rasterbar 2.0),
// read from and written to the node's store through a custom lt::disk_interface
// (store_disk_io.h), so a layer never exists twice on a node's disk.
//
// One torrent per release (torrent_layout.h, torrent_info.h). A piece that passes its SHA-1 check
// is kept in memory until every piece of its chunk has, then stored as that chunk; a blob whose
// chunks are all held is checked against its SHA-256 before it becomes visible. A restart keeps
// the stored chunks; pieces of a chunk not yet whole are fetched again.
//
// Peers: TCP only (uTP, DHT, LSD, UPnP, NAT-PMP, trackers off); they come from the control plane
// (SetPeers). With TLS (the default) every torrent is an SSL torrent whose root is the cluster CA:
// a peer must present a certificate of that CA naming kDataPlaneName (node certificates do),
// otherwise it gets no bytes; the listen socket speaks only TLS.
//
// Threads: libtorrent's network thread (with the piece dealer, piece_dealer.h); the disk, verify
// and sync threads of the disk I/O (store_disk_io.h); one alert thread (logs, bans, errors).
// Callbacks run on the disk or the sync thread; the owner must hop to its own thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proto/digest.h"
#include "proto/error.h"
#include "proto/ids.h"
#include "store/piece_store.h"
#include "transport/cluster_ca.h"
#include "transport/torrent_info.h"
#include "transport/torrent_layout.h"

namespace spdlog {
class logger;
}

namespace gapsync::transport {

struct DataPlaneOptions {
  std::string listen_host;  // IPv4
  uint16_t listen_port = 0;
  bool tls = true;
  TlsFiles tls_files;
  std::chrono::milliseconds sync_interval{1000};  // received pieces become durable at least this often
  // SO_RCVBUF of every peer connection, bytes (0: the kernel's autotuning). It bounds what each
  // peer may have in flight to this node, so that 16 peers sending at once cannot overrun the
  // queue of this node's link (docs/benchmarks.md, "Receive windows").
  int receive_buffer = 32 * 1024;
  // How often the progress of each incomplete release is logged.
  std::chrono::milliseconds progress_log_interval{5000};
  // Experts and benchmarks: "name=value,..." libtorrent settings (settings_pack names) applied over
  // the tuned ones; an unknown name or a bad number fails Start, naming `libtorrent_settings_from`.
  std::string libtorrent_settings;
  std::string libtorrent_settings_from = "libtorrent settings";
  // Tests: flip a byte in every block this node uploads (a lying peer).
  bool corrupt_uploads_for_test = false;
};

struct TransferState {
  ReleaseDigest release;
  std::string name;          // its name in logs (app@version)
  std::string info_hash;     // of its torrent (hex): the TLS server name its peers connect with
  uint64_t bytes_total = 0;  // of the release's blobs
  uint64_t bytes_have = 0;   // verified and stored
  int64_t download_rate = 0; // payload bytes/s
  int64_t upload_rate = 0;
  uint64_t uploaded = 0;     // payload bytes since this agent started
  uint64_t downloaded = 0;
  uint64_t rejected_pieces = 0;  // received pieces that failed their hash check (never stored)
  int peers = 0;
  bool complete = false;
  std::string error;         // e.g. a store write failing (disk full); "" when fine
};

struct DataPlaneCallbacks {
  // A blob of `release` is complete, verified and durable in the store.
  std::function<void(const ReleaseDigest& release, const BlobDigest& digest)> blob_done;
  // `release` cannot go on: a store write failed (kNoSpace, kIo), or a blob's pieces do not hash
  // to its digest (kCorrupt: the torrent's piece hashes were wrong).
  std::function<void(const ReleaseDigest& release, const Error& error)> failed;
};

class DataPlane {
 public:
  static Result<std::unique_ptr<DataPlane>> Start(store::PieceStore& store, const DataPlaneOptions& options,
                                                  DataPlaneCallbacks callbacks, std::shared_ptr<spdlog::logger> log);
  virtual ~DataPlane() = default;
  virtual uint16_t port() const = 0;
  // The PEM of the CA that roots every torrent ("" without TLS): for BuildTorrentInfo.
  virtual const std::string& tls_root_pem() const = 0;
  // Starts spreading a release: serves the pieces the store holds, fetches the others. `info` as
  // made by BuildTorrentInfo (checked with CheckTorrentInfo when it came from a peer); `name`
  // names it in logs (app@version). Reads what the store holds of it: call it off any thread that
  // must not wait for the store. kConflict if already added.
  virtual Status Add(const ReleaseDigest& release, const std::string& name, const TorrentLayout& layout,
                     const std::string& info) = 0;
  // Stops spreading a release (e.g. its torrent turned out bad); its stored pieces stay.
  virtual void Remove(const ReleaseDigest& release) = 0;
  virtual bool Has(const ReleaseDigest& release) const = 0;
  // Data-plane addresses (IPv4:PORT) of the other members; every release connects to them.
  virtual void SetPeers(const std::vector<std::string>& peers) = 0;
  virtual std::vector<TransferState> Transfers() const = 0;
  // Stops every transfer, makes what was received durable, and waits for the threads.
  virtual void Stop() = 0;
};

}  // namespace gapsync::transport
