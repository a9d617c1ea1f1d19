// BlobStore: the node's content-addressed store. Blobs are named by their SHA-256 digest, written
// once, verified on every read; releases are signed manifests whose blobs are all present.
//
// Modules that need only part of it see only that part: the data plane a PieceStore
// (store/piece_store.h), readers a BlobReader (store/blob_reader.h). The store
// keeps a release's manifest and signature as bytes it never parses: what a release needs is the
// blob list it is given (StoredRelease::blobs).
//
// Visibility and durability (every implementation):
//  * A blob written through a BlobWriter becomes visible (Stat/Read/ForEachBlob) only after
//    BlobWriter::Commit() verified its size and digest AND a later Sync() returned OK. Sync() is
//    the durability point: what it made visible survives a crash (kill -9, power loss).
//  * A writer that is Suspend()ed records its progress at the next Sync(); opening a writer for the
//    same digest later resumes from that point (BlobWriter::offset()).
//  * A writer destroyed without Commit()/Suspend() leaves no visible trace (orphans go at gc).
//  * PutRelease() is one atomic, durable commit, refused unless every blob the release needs is
//    visible.
// Threading: one BlobWriter at a time per store; every other call is thread-safe and may run
// concurrently with it (piece-wise assembly, reads, Sync, releases) except Fsck, DropBlob and
// CollectGarbage, which need the store to themselves.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proto/digest.h"
#include "proto/error.h"
#include "proto/ids.h"
#include "store/blob_reader.h"
#include "store/piece_store.h"

namespace gapsync::store {

struct StoredRelease {
  ReleaseId id;
  std::string manifest;            // exact signed manifest bytes (the store does not read them)
  std::string signature;
  ReleaseDigest release_digest;
  std::vector<BlobDigest> blobs;   // every blob the release needs
  int64_t ingested_unix = 0;
  bool pinned = true;
};

struct FsckReport {
  uint64_t blobs_checked = 0;
  uint64_t bytes_checked = 0;
  uint64_t releases_checked = 0;
  uint64_t partial_blobs = 0;
  uint64_t orphan_chunks = 0;
  std::vector<std::string> problems;      // one line each; empty when clean
  std::vector<BlobDigest> corrupt_blobs;  // blobs whose stored bytes do not verify
};

struct GcStats {
  uint64_t blobs_removed = 0;
  uint64_t bytes_removed = 0;
  uint64_t partials_removed = 0;
  uint64_t orphan_chunks_removed = 0;
};

class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  // Bytes of the blob already held; the caller continues from here (non-zero when resuming).
  virtual uint64_t offset() const = 0;
  // Appends the next bytes of the blob. Fails on I/O error, or when more than `size` bytes come.
  virtual Status Append(std::span<const uint8_t> bytes) = 0;
  // All bytes appended: checks size and digest. kCorrupt on mismatch (nothing becomes visible).
  virtual Status Commit() = 0;
  // Stops early, keeping progress; recorded durably at the next Sync().
  virtual Status Suspend() = 0;
  // Keeps writing, but records the progress so far (whole chunks) at the next Sync(), so a
  // crash loses at most what came after it.
  virtual Status Checkpoint() = 0;
  // Gives up on this blob: any recorded progress is forgotten at the next Sync() (the next
  // writer for it starts from byte 0).
  virtual Status Abandon() = 0;
};

class BlobStore : public BlobReader, public PieceStore {
 public:
  // ---- blobs ----
  // REQUIRES: the blob is not visible yet. Resumes a partial blob recorded for `digest`
  // if its size matches.
  virtual Result<std::unique_ptr<BlobWriter>> OpenWriter(const BlobDigest& digest, uint64_t size,
                                                         const std::string& media_type) = 0;
  // Bytes of a partially stored blob (0 when none).
  virtual Result<uint64_t> PartialBytes(const BlobDigest& digest) = 0;
  virtual Status ForEachBlob(const std::function<Status(const BlobInfo&)>& fn) = 0;

  // ---- releases ----
  virtual Status PutRelease(const StoredRelease& release) = 0;
  // Records that an ingest or a fetch of `release` is under way: gc keeps the blobs it needs
  // until PutRelease() of the same release (or gc with drop_partials).
  virtual Status KeepPending(const StoredRelease& release) = 0;
  virtual Result<std::optional<StoredRelease>> GetRelease(const ReleaseId& id) = 0;
  virtual Result<std::vector<StoredRelease>> ListReleases() = 0;

  // ---- maintenance ----
  // Rechecks every blob byte against its digests and every release against its blobs.
  virtual Result<FsckReport> Fsck(const std::function<void(uint64_t bytes)>& progress) = 0;
  // Makes a blob invisible (its chunks go at the next gc), e.g. one fsck found corrupt, so that
  // re-ingesting a bundle that carries it stores it again.
  virtual Status DropBlob(const BlobDigest& digest) = 0;
  // Removes blobs no pinned or pending release needs, and orphaned chunks; with drop_partials
  // also half-stored blobs and pending releases.
  virtual Result<GcStats> CollectGarbage(bool drop_partials) = 0;
};

// Release records written before they listed their blobs (gapsync up to eae3f3c) hold only the
// signed manifest. Given this, the store fills in each such record's blob list once, when it is
// opened: the blob digests of a manifest, read by the module that knows the bundle format.
using ManifestBlobsFn = std::function<Result<std::vector<BlobDigest>>(std::string_view manifest)>;

struct RocksDbOptions {
  uint32_t chunk_size = 1 << 20;
  bool compression = true;  // zstd per chunk where it saves at least 1/8
  // Needed only for a store with such old records; without it, opening one fails (kInvalidArgument).
  ManifestBlobsFn manifest_blobs;
};

// Opens (creating if missing) a RocksDB store at `path`.
Result<std::unique_ptr<BlobStore>> OpenRocksDbStore(const std::string& path, const RocksDbOptions& options = {});
// An in-memory store with the same contract (tests, tools).
std::unique_ptr<BlobStore> NewMemoryStore(uint32_t chunk_size = 1 << 20);

// Media types whose bytes are already compressed (stored as they are).
bool IsCompressedMediaType(const std::string& media_type);

}  // namespace gapsync::store
