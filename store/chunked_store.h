// Internal: the BlobStore every backend shares. Blobs are cut into fixed-size chunks, each chunk's
// XXH3-128 recorded at write time and checked on every read, zstd where it pays, over a narrow
// key-value layer (store/kv.h). Its parts, one file each:
//   chunked_store.cc      reads, the record queue and Sync(), the factories
//   sequential_writer.cc  BlobWriter: a blob streamed in order (ingest)
//   piece_assembly.cc     PieceStore: chunks that arrive in any order (peers)
//   release_catalog.cc    release and pending records
//   maintenance.cc        fsck, gc, dropping a blob
//
// Records and durability: writers queue record ops (Queue); Sync() flushes the chunks, then
// commits the queued ops and the assembly records that changed in one batch, so a record never
// points at bytes a crash lost.
//
// Piece-wise assembly: a blob whose chunks ("pieces") arrive in any order has a sparse partial
// record (one chunk hash per chunk, empty for a piece not held). The store keeps the state of
// every such blob in memory (Assembly) and writes the records that changed at Sync(), after
// flushing the chunks, as the sequential writer's records are.
//
// Threading: mu_ guards what the store keeps in memory (queued record ops, the chunks-dirty flag,
// assembly state, spare encoders); kv calls run outside it where they can. sync_mu_ makes Sync()
// calls one at a time, so that each flushes the chunks its records need before committing them,
// and batches commit in the order they were queued. "Locked" in a name: REQUIRES mu_ held.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "proto/store.pb.h"
#include "store/blob_store.h"
#include "store/chunk_format.h"
#include "store/kv.h"

namespace gapsync::store {

// A ChunkedStore over `kv` (tests build one over a Kv of their own; OpenRocksDbStore and
// NewMemoryStore are the usual way). Fills in the blob lists of old release records (see
// ManifestBlobsFn) before it returns.
Result<std::unique_ptr<BlobStore>> NewChunkedStore(std::unique_ptr<Kv> kv, uint32_t chunk_size, bool compression,
                                                   const ManifestBlobsFn& manifest_blobs);

class ChunkedStore final : public BlobStore {
 public:
  ChunkedStore(std::unique_ptr<Kv> kv, uint32_t chunk_size, bool compression)
      : kv_(std::move(kv)), chunk_size_(chunk_size), compression_(compression) {}

  // ---- BlobReader, BlobStore: blobs (chunked_store.cc) ----
  Result<std::optional<BlobInfo>> Stat(const BlobDigest& digest) override;
  Status Read(const BlobDigest& digest, uint64_t offset, uint64_t length, const ReadSink& sink) override;
  Result<uint64_t> PartialBytes(const BlobDigest& digest) override;
  Status ForEachBlob(const std::function<Status(const BlobInfo&)>& fn) override;
  Result<std::unique_ptr<BlobWriter>> OpenWriter(const BlobDigest& digest, uint64_t size,
                                                 const std::string& media_type) override;
  uint32_t chunk_size() const override { return chunk_size_; }
  Status Sync() override;

  // ---- PieceStore (piece_assembly.cc) ----
  Status PutPiece(const BlobDigest& digest, uint64_t size, const std::string& media_type, uint32_t index,
                  std::span<const uint8_t> bytes) override;
  Result<PiecesHeld> HeldPieces(const BlobDigest& digest, uint64_t size) override;
  Status CompletePieces(const BlobDigest& digest) override;
  Status ReadPiece(const BlobDigest& digest, uint32_t index, std::vector<uint8_t>& out) override;

  // ---- releases (release_catalog.cc) ----
  Status PutRelease(const StoredRelease& release) override;
  Status KeepPending(const StoredRelease& release) override;
  Result<std::optional<StoredRelease>> GetRelease(const ReleaseId& id) override;
  Result<std::vector<StoredRelease>> ListReleases() override { return ListReleases(Space::kReleases); }
  // Gives every release and pending record that lacks one its blob list (once, at open). A record
  // whose manifest does not yield one is left as it is and noted (unlisted_).
  Status UpgradeReleaseRecords(const ManifestBlobsFn& manifest_blobs);

  // ---- maintenance (maintenance.cc) ----
  Result<FsckReport> Fsck(const std::function<void(uint64_t)>& progress) override;
  Status DropBlob(const BlobDigest& digest) override;
  Result<GcStats> CollectGarbage(bool drop_partials) override;

  // ---- for the sequential writer ----
  struct StoredChunk {
    uint64_t bytes = 0;  // payload bytes on the store
    bool compressed = false;
  };
  // Stores chunk `index` of `d` as every chunk is stored (ChunkEncoder). Durable at the next Sync().
  Result<StoredChunk> WriteChunk(const BlobDigest& d, uint32_t index, std::span<const uint8_t> plain,
                                 ChunkEncoder& encoder, bool try_zstd);
  Result<std::optional<std::string>> GetChunk(const BlobDigest& d, uint32_t index) {
    return kv_->Get(Space::kChunks, ChunkKey(d, index));
  }
  // Record ops that take effect (together) at the next Sync().
  void Queue(std::vector<KvOp> ops);

 private:
  // In-memory state of a blob being assembled from pieces; and, until the Sync() that makes it
  // durable, of a blob whose BlobRecord (kCommitted) or partial-record delete (kForgotten) is
  // queued, so that no stale record is loaded or written for it meanwhile.
  struct Assembly {
    enum class Kind { kAssembling, kCommitted, kForgotten };
    Kind kind = Kind::kAssembling;
    v1::PartialRecord rec;  // sparse: size, chunk_size() and one chunk hash per piece (empty: missing)
    bool dirty = false;     // rec is not the durable record yet
    uint64_t version = 0;   // changes with every change of the state
    CompressionTries compression;
  };
  // A partial record as pieces: sparse, one chunk hash per piece of this store's chunk size.
  struct LoadedPieces {
    std::optional<v1::PartialRecord> rec;  // none: no record, or one that cannot be used
    bool converted = false;                // rec was a sequential record (not stored as pieces yet)
    bool existed = false;                  // some partial record is stored
  };

  // chunked_store.cc
  Result<std::optional<v1::BlobRecord>> GetBlobRecord(const BlobDigest& digest);
  Status ReadChunk(const BlobDigest& d, const v1::BlobRecord& rec, uint32_t index, std::vector<uint8_t>& plain);
  // Reads chunk `index` of a `size`-byte blob cut into `cs`-byte chunks and checks it against
  // `hash`; `stored` (if given) gets its payload size on the store.
  Status ReadVerifiedChunk(const BlobDigest& d, uint64_t size, uint64_t cs, uint32_t index, const std::string& hash,
                           std::vector<uint8_t>& plain, uint64_t* stored);
  std::unique_ptr<ChunkEncoder> TakeEncoderLocked();
  void ReturnEncoderLocked(std::unique_ptr<ChunkEncoder> e);

  // piece_assembly.cc
  // A record op of the sequential writer; keeps the assembly state of its blob in step.
  void QueueLocked(KvOp op);
  // Chunks held by assemblies (recorded or not) count as accounted for (fsck, gc).
  void CountAssemblyChunks(std::map<BlobDigest, uint64_t>& counts);
  // Chunks of a blob a partial record accounts for (gc and fsck keep them).
  static uint64_t PartialChunks(const v1::PartialRecord& rec);
  v1::PartialRecord NoPieces(uint64_t size, const std::string& media_type) const;
  v1::BlobRecord EmptyBlobRecord() const;
  Result<LoadedPieces> LoadPiecesRecord(const BlobDigest& digest);
  void ResetAssemblyLocked(Assembly& a, v1::PartialRecord rec, bool dirty);
  // The state to store a piece of a `size`-byte blob in, loaded or created; nullptr when the
  // blob is visible or will be at the next Sync (nothing to store).
  Result<Assembly*> AssemblyForPieceLocked(const BlobDigest& digest, uint64_t size, const std::string& media_type);
  // The state of `digest`, loaded from its partial record if it has none; nullptr when neither.
  Result<Assembly*> FindOrLoadAssemblyLocked(const BlobDigest& digest);
  // Queues the blob record of a completed assembly; the piece record goes with it.
  void CommitPiecesLocked(const BlobDigest& digest, const v1::BlobRecord& blob);
  // Forgets every piece held of `digest` (its record goes at the next Sync).
  void ForgetLocked(const BlobDigest& digest);
  // Forgets one held piece whose stored bytes do not verify (so that it is fetched again).
  void ForgetPiece(const BlobDigest& digest, uint32_t index, const std::string& hash);

  // release_catalog.cc
  Result<std::vector<StoredRelease>> ListReleases(Space space);

  // maintenance.cc
  // Chunk key ranges [begin, end) not accounted for by `counts` (digest -> number of chunks).
  Result<std::vector<std::pair<std::string, std::string>>> FindOrphanChunks(const std::map<BlobDigest, uint64_t>& counts);

  static constexpr size_t kMaxSpareEncoders = 4;

  std::unique_ptr<Kv> kv_;
  const uint32_t chunk_size_;
  const bool compression_;
  std::mutex sync_mu_;  // one Sync() at a time; taken before mu_
  std::mutex mu_;
  bool chunks_dirty_ = false;  // chunks written since the last flush
  std::vector<KvOp> pending_;  // record ops for the next Sync()
  std::map<BlobDigest, Assembly> assemblies_;
  uint64_t versions_ = 0;
  std::vector<std::unique_ptr<ChunkEncoder>> spare_encoders_;
  // mu_: old records whose blob list could not be read from their manifest at open ("release
  // APP@VERSION" or "pending release APP@VERSION" -> why). fsck names them; gc refuses to run
  // while one would count (it cannot know what they need); rewriting the record clears it.
  std::map<std::string, std::string> unlisted_;
};

}  // namespace gapsync::store
