// BlobStore: the node's content-addressed store. Blobs are named by their SHA-256 digest, written
// once, verified on every read; releases are signed manifests whose blobs are all present.
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
#include <vector>

#include "proto/digest.h"
#include "proto/error.h"

namespace gapsync::store {

struct BlobInfo {
  BlobDigest digest;
  uint64_t size = 0;
  uint64_t stored_bytes = 0;  // on-store size after compression
  std::string media_type;
  uint64_t chunks = 0;        // stored chunks (their size was fixed when the blob was written)
};

struct ReleaseId {
  std::string app;
  std::string version;
  std::string str() const { return app + "@" + version; }
  friend bool operator==(const ReleaseId&, const ReleaseId&) = default;
};

struct StoredRelease {
  ReleaseId id;
  std::string manifest;        // exact signed BundleManifest bytes
  std::string signature;
  std::string release_digest;  // "sha256:..." of the deterministic Release encoding
  int64_t ingested_unix = 0;
  bool pinned = true;
};

struct FsckReport {
  uint64_t blobs_checked = 0;
  uint64_t bytes_checked = 0;
  uint64_t releases_checked = 0;
  uint64_t partial_blobs = 0;
  uint64_t orphan_chunks = 0;
  std::vector<std::string> problems;  // one line each; empty when clean
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

using ReadSink = std::function<Status(std::span<const uint8_t>)>;

class BlobStore {
 public:
  virtual ~BlobStore() = default;

  virtual Result<std::optional<BlobInfo>> Stat(const BlobDigest& digest) = 0;
  // Bytes of a partially stored blob (0 when none).
  virtual Result<uint64_t> PartialBytes(const BlobDigest& digest) = 0;
  virtual Status ForEachBlob(const std::function<Status(const BlobInfo&)>& fn) = 0;

  // REQUIRES: the blob is not visible yet. Resumes a partial blob recorded for `digest`
  // if its size matches.
  virtual Result<std::unique_ptr<BlobWriter>> OpenWriter(const BlobDigest& digest, uint64_t size,
                                                         const std::string& media_type) = 0;

  // Streams bytes [offset, offset+length) of a visible blob to `sink`. Every chunk is verified
  // against the digest recorded at write time before it reaches the sink: corrupt bytes are
  // reported (kCorrupt naming blob and offset), never passed on.
  virtual Status Read(const BlobDigest& digest, uint64_t offset, uint64_t length,
                      const ReadSink& sink) = 0;

  // ---- Piece-wise assembly (peer-to-peer): the chunks of a blob arrive in any order ----
  // A blob being assembled has a partial record listing which chunks ("pieces") it holds; piece
  // i is bytes [i*chunk_size(), min(size, (i+1)*chunk_size())). Pieces become durable at the next
  // Sync(); a crash loses only pieces stored after the last Sync().
  //
  // Stores piece `index` (exactly its bytes, already verified by the caller against the piece
  // hash it trusts). Idempotent. kInvalidArgument on a wrong index or length; a blob that is
  // already visible: OK, nothing written. A blob with a sequential partial record (a stopped
  // ingest) keeps the chunks that record holds, as pieces.
  virtual Status PutPiece(const BlobDigest& digest, uint64_t size, const std::string& media_type,
                          uint32_t index, std::span<const uint8_t> bytes) = 0;
  // Which pieces of the blob the store holds (every one for a visible blob; those of a partial
  // record, sequential or piece-wise, when its size matches; none otherwise).
  virtual Result<std::vector<bool>> HeldPieces(const BlobDigest& digest, uint64_t size) = 0;
  // Every piece held: reads them in order and checks the blob's SHA-256. OK: the blob is visible
  // after the next Sync(). kIncomplete when pieces are missing; kCorrupt (naming the digest the
  // bytes hash to) when they do not match, and the held pieces are forgotten.
  virtual Status CompletePieces(const BlobDigest& digest) = 0;
  // The plain bytes of piece `index` of a visible blob or of a held piece of a blob being
  // assembled, verified against the chunk hash recorded when it was stored.
  virtual Status ReadPiece(const BlobDigest& digest, uint32_t index, std::vector<uint8_t>& out) = 0;
  virtual uint32_t chunk_size() const = 0;

  // The durability point (see top of file).
  virtual Status Sync() = 0;

  virtual Status PutRelease(const StoredRelease& release,
                            const std::vector<BlobDigest>& needed_blobs) = 0;
  // Records that an ingest of `release` is under way (some volumes still to come): gc keeps the
  // blobs it needs until PutRelease() of the same release (or gc with drop_partials).
  virtual Status KeepPending(const StoredRelease& release) = 0;
  virtual Result<std::optional<StoredRelease>> GetRelease(const ReleaseId& id) = 0;
  virtual Result<std::vector<StoredRelease>> ListReleases() = 0;

  // Rechecks every blob byte against its digests and every release against its blobs.
  virtual Result<FsckReport> Fsck(const std::function<void(uint64_t bytes)>& progress) = 0;
  // Makes a blob invisible (its chunks go at the next gc), e.g. one fsck found corrupt, so that
  // re-ingesting a bundle that carries it stores it again.
  virtual Status DropBlob(const BlobDigest& digest) = 0;
  // Removes blobs no pinned or pending release needs, and orphaned chunks; with drop_partials
  // also half-stored blobs and pending releases.
  virtual Result<GcStats> CollectGarbage(bool drop_partials) = 0;

  // Test hook (fault injection): flips one stored byte of chunk `chunk_index` of a blob.
  virtual Status CorruptForTest(const BlobDigest& digest, uint32_t chunk_index) = 0;
};

struct RocksDbOptions {
  uint32_t chunk_size = 1 << 20;
  bool compression = true;  // zstd per chunk where it saves at least 1/8
};

// Opens (creating if missing) a RocksDB store at `path`.
Result<std::unique_ptr<BlobStore>> OpenRocksDbStore(const std::string& path,
                                                    const RocksDbOptions& options = {});
// An in-memory store with the same contract (tests, tools).
std::unique_ptr<BlobStore> NewMemoryStore(uint32_t chunk_size = 1 << 20);

// Media types whose bytes are already compressed (stored as they are).
bool IsCompressedMediaType(const std::string& media_type);

}  // namespace gapsync::store
