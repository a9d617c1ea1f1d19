// The data plane: releases move between agents as BitTorrent swarms (libtorrent-rasterbar 2.0),
// read from and written to the node's BlobStore through a custom lt::disk_interface, so a layer
// never exists twice on a node's disk.
//
// One torrent per release: file i = blob i (the release's blobs in manifest order, without
// duplicates and without empty blobs), each followed by a pad file up to the next piece boundary
// (except the last). A store chunk is a whole number of pieces (kPieceSize, 128 KiB, of a 1 MiB
// chunk: small pieces are forwarded sooner; see docs/benchmarks.md). A piece that passes its
// SHA-1 check is kept in memory until every piece of its chunk has, then stored as that chunk
// (BlobStore::PutPiece); a blob whose chunks are all held is checked against its SHA-256
// (BlobStore::CompletePieces) before it becomes visible. Pad blocks are never sent (libtorrent
// skips them). A restart keeps the stored chunks; pieces of a chunk not yet whole are fetched again.
//
// Peers: TCP only (uTP, DHT, LSD, UPnP, NAT-PMP, trackers off); they come from the control plane
// (AddPeers). With TLS (the default) every torrent is an SSL torrent whose root is the cluster CA:
// a peer must present a certificate of that CA naming kDataPlaneName (node certificates do),
// otherwise it gets no bytes; the listen socket speaks only TLS.
//
// Threads: libtorrent's network thread (with the piece dealer, piece_dealer.h); one disk thread of
// ours (store reads, piece hashing, chunk storing); one verify thread (a held blob's SHA-256 check,
// CompletePieces, which reads the whole blob); one sync thread (the store's Sync, at least every
// second while pieces arrive); one alert thread (logs, bans, errors).
// Callbacks run on the disk or the sync thread; the owner must hop to its own thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proto/digest.h"
#include "proto/error.h"
#include "store/blob_store.h"
#include "transport/cluster_ca.h"

namespace spdlog {
class logger;
}

namespace gapsync::transport {

// The name of every data-plane torrent, and the DNS name node certificates carry for it.
inline constexpr const char* kDataPlaneName = "gapsync-data-plane";

struct BlobSpec {
  BlobDigest digest;
  uint64_t size = 0;
  std::string media_type;
};

// Torrent piece size for a store chunk of 1 MiB or more (smaller chunks: one piece per chunk).
inline constexpr uint32_t kPieceSize = 128u << 10;

// Where each blob's pieces and chunks are in a release torrent.
struct TorrentLayout {
  uint32_t piece_size = 0;
  uint32_t chunk_size = 0;                // the store's; a whole number of pieces
  std::vector<BlobSpec> blobs;            // the torrent's files, in order (no empty or repeated blob)
  std::vector<uint32_t> first_piece;      // per blob
  std::vector<uint32_t> first_chunk;      // per blob: ordinal of its first chunk in the release
  uint32_t num_pieces = 0;
  uint32_t num_chunks = 0;
  uint64_t total_bytes = 0;               // sum of blob sizes (what "100 %" means)

  // `blobs` as listed by a release; empty and repeated blobs are left out. `piece_size` 0: the
  // default for the chunk size (kPieceSize when it divides it, else the chunk size).
  static TorrentLayout Make(const std::vector<BlobSpec>& blobs, uint32_t chunk_size, uint32_t piece_size = 0);
  uint32_t pieces_of(size_t blob) const;
  uint32_t chunks_of(size_t blob) const;
  uint32_t pieces_per_chunk() const { return chunk_size / piece_size; }
  size_t blob_of_piece(uint32_t piece) const;
  // The chunk holding `piece`: its index in the piece's blob, and its ordinal in the release.
  uint32_t chunk_in_blob(uint32_t piece) const;
  uint32_t chunk_ordinal(uint32_t piece) const;
  // Bytes of blob data in chunk `chunk` of blob `blob`.
  uint32_t chunk_len(size_t blob, uint32_t chunk) const;
};

// The bencoded info dictionary of a release torrent, hashing every piece of the (complete) blobs
// in `store`. `ssl_ca_pem` non-empty: an SSL torrent rooted at that CA. `release` (the release
// digest) is part of the dictionary, so every release is its own torrent.
Result<std::string> BuildTorrentInfo(store::BlobStore& store, const TorrentLayout& layout,
                                     const std::string& ssl_ca_pem, const std::string& release);
// Checks an info dictionary received from a peer describes exactly `layout` (files, sizes, pad
// files, piece size and count, name, ssl-cert). Its piece hashes cannot be checked before the
// bytes are there; every finished blob is checked against its signed SHA-256.
Status CheckTorrentInfo(const std::string& info, const TorrentLayout& layout, const std::string& ssl_ca_pem,
                        const std::string& release);

struct DataPlaneOptions {
  std::string listen_host;  // IPv4
  uint16_t listen_port = 0;
  bool tls = true;
  TlsFiles tls_files;
  bool corrupt_uploads_for_test = false;  // flips a byte in every block this node uploads
  int sync_interval_ms = 1000;            // received pieces become durable at least this often
  // SO_RCVBUF of every peer connection, bytes (0: the kernel's autotuning). It bounds what each
  // peer may have in flight to this node, so that 16 peers sending at once cannot overrun the
  // queue of this node's link (docs/benchmarks.md, "Receive windows").
  int receive_buffer = 32 * 1024;
};

struct TransferState {
  std::string key;           // the owner's name for the release
  std::string name;          // its name in logs
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
  // A blob of release `key` is complete, verified and durable in the store.
  std::function<void(const std::string& key, const BlobDigest& digest)> blob_done;
  // Release `key` cannot go on: a store write failed (kNoSpace, kIo), or a blob's pieces do not
  // hash to its digest (kCorrupt: the torrent's piece hashes were wrong).
  std::function<void(const std::string& key, const Error& error)> failed;
};

class DataPlane {
 public:
  static Result<std::unique_ptr<DataPlane>> Start(store::BlobStore& store, const DataPlaneOptions& options,
                                                  DataPlaneCallbacks callbacks, std::shared_ptr<spdlog::logger> log);
  virtual ~DataPlane() = default;
  virtual uint16_t port() const = 0;
  // The PEM of the CA that roots every torrent ("" without TLS): for BuildTorrentInfo.
  virtual const std::string& tls_root_pem() const = 0;
  // Starts spreading a release: serves the pieces the store holds, fetches the others. `info` as
  // made by BuildTorrentInfo (checked with CheckTorrentInfo when it came from a peer). `key`
  // names it in callbacks and Transfers (the release digest), `name` in logs (app@version);
  // kConflict if already added.
  virtual Status Add(const std::string& key, const std::string& name, const TorrentLayout& layout,
                     const std::string& info) = 0;
  // Stops spreading a release (e.g. its torrent turned out bad); its stored pieces stay.
  virtual void Remove(const std::string& key) = 0;
  virtual bool Has(const std::string& key) const = 0;
  // Data-plane addresses (IPv4:PORT) of the other members; every release connects to them.
  virtual void SetPeers(const std::vector<std::string>& peers) = 0;
  virtual std::vector<TransferState> Transfers() const = 0;
  // Stops every transfer, makes what was received durable, and waits for the threads.
  virtual void Stop() = 0;
};

}  // namespace gapsync::transport
