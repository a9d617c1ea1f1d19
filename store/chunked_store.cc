// The BlobStore implementation shared by every backend: blobs cut into fixed-size chunks, each
// chunk's SHA-256 recorded at write time and checked on every read, zstd where it pays.
//
// Keys: chunk = raw digest (32 bytes) + chunk index (4 bytes, big-endian); blob and partial
// records = raw digest; release = app + '\0' + version.
// Chunk value = one codec byte (0 = plain, 1 = zstd) + payload.
//
// Piece-wise assembly: a blob whose chunks ("pieces") arrive in any order has a sparse partial
// record (one chunk hash per chunk, empty for a piece not held). The store keeps the state of
// every such blob in memory and writes the records that changed at Sync(), after flushing the
// chunks, as the sequential writer's records are.
//
// Threading: mu_ guards what the store keeps in memory (queued record ops, the chunks-dirty flag,
// assembly state, spare encoders); kv calls run outside it where they can. sync_mu_ makes
// Sync() calls one at a time, so that each flushes the chunks its records need before committing
// them, and batches commit in the order they were queued.
#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include "proto/bundle.pb.h"
#include "proto/sha256.h"
#include "store/blob_store.h"
#include "store/kv.h"

namespace gapsync::store {
namespace {

constexpr uint8_t kCodecPlain = 0;
constexpr uint8_t kCodecZstd = 1;
constexpr int kZstdLevel = 1;  // fast: most of what pays, at a fraction of level 3's cost
// Stop trying to compress a blob after this many chunks in a row did not pay.
constexpr int kMaxCompressionMisses = 2;

std::string DigestKey(const BlobDigest& d) {
  return std::string(reinterpret_cast<const char*>(d.raw().data()), d.raw().size());
}

std::string ChunkKey(const BlobDigest& d, uint32_t index) {
  std::string key = DigestKey(d);
  for (int shift = 24; shift >= 0; shift -= 8) key.push_back(static_cast<char>((index >> shift) & 0xff));
  return key;
}

std::string ChunkRangeEnd(const BlobDigest& d) {
  std::string key = DigestKey(d);
  key.append(5, '\xff');
  return key;
}

// The per-chunk check: XXH3-128 (fast enough to cost nothing next to SHA-256 and the disk; the
// whole blob is checked against its SHA-256 digest on write and by fsck).
std::string ChunkHash(const uint8_t* data, size_t n) {
  XXH128_canonical_t canon;
  XXH128_canonicalFromHash(&canon, XXH3_128bits(data, n));
  return std::string(reinterpret_cast<const char*>(canon.digest), sizeof(canon.digest));
}

std::string ReleaseKey(const ReleaseId& id) { return id.app + '\0' + id.version; }

// Pieces (chunks) of a `size`-byte blob, and the length of piece `index`.
uint64_t PieceCount(uint64_t size, uint64_t chunk_size) { return (size + chunk_size - 1) / chunk_size; }
uint64_t PieceLength(uint64_t size, uint64_t chunk_size, uint64_t index) {
  return std::min<uint64_t>(chunk_size, size - index * chunk_size);
}

// Encodes chunks the way every chunk is stored: a codec byte and the payload, zstd (kZstdLevel)
// only where it saves at least 1/8 of the bytes. Keeps its compression context and buffer.
class ChunkEncoder {
 public:
  struct Encoded {
    std::string_view head;  // the codec byte
    std::string_view body;  // the payload (valid until the next Encode)
    bool compressed = false;
  };
  ChunkEncoder() = default;
  ChunkEncoder(const ChunkEncoder&) = delete;
  ChunkEncoder& operator=(const ChunkEncoder&) = delete;
  ~ChunkEncoder() {
    if (cctx_ != nullptr) ZSTD_freeCCtx(cctx_);
  }

  Encoded Encode(std::span<const uint8_t> data, bool try_zstd) {
    static constexpr char kZstd = static_cast<char>(kCodecZstd);
    static constexpr char kPlain = static_cast<char>(kCodecPlain);
    if (try_zstd) {
      if (cctx_ == nullptr) cctx_ = ZSTD_createCCtx();
      encoded_.resize(ZSTD_compressBound(data.size()));
      size_t n = ZSTD_compressCCtx(cctx_, encoded_.data(), encoded_.size(), data.data(), data.size(), kZstdLevel);
      if (!ZSTD_isError(n) && n <= data.size() - data.size() / 8) {
        return Encoded{std::string_view(&kZstd, 1), std::string_view(encoded_.data(), n), true};
      }
    }
    return Encoded{std::string_view(&kPlain, 1),
                   std::string_view(reinterpret_cast<const char*>(data.data()), data.size()), false};
  }

 private:
  ZSTD_CCtx* cctx_ = nullptr;
  std::string encoded_;
};

// What storing a chunk took: payload bytes on the store, and whether zstd paid.
struct StoredChunk {
  uint64_t bytes = 0;
  bool compressed = false;
};

// Whether to try zstd on a blob's next chunk: never for media types that are compressed already,
// and not after kMaxCompressionMisses chunks in a row where it did not pay.
struct CompressionTries {
  bool enabled = false;
  int misses = 0;
  bool ShouldTry() const { return enabled && misses < kMaxCompressionMisses; }
  void Record(bool tried, bool paid) {
    if (tried) misses = paid ? 0 : misses + 1;
  }
};

std::string Range(uint64_t begin, uint64_t len) {
  return "bytes " + std::to_string(begin) + ".." + std::to_string(begin + len);
}

Result<std::vector<BlobDigest>> ReleaseBlobsFromManifest(const std::string& manifest_bytes,
                                                         const std::string& what) {
  v1::BundleManifest m;
  if (!m.ParseFromString(manifest_bytes)) {
    return MakeError(Errc::kCorrupt, what + ": stored manifest does not parse");
  }
  std::vector<BlobDigest> out;
  for (const auto& d : m.release().blobs()) {
    GS_ASSIGN_OR_RETURN(auto digest, BlobDigest::Parse(d.digest()));
    out.push_back(digest);
  }
  return out;
}

class ChunkedStore;

class ChunkedWriter final : public BlobWriter {
 public:
  ChunkedWriter(ChunkedStore* store, BlobDigest digest, uint64_t size, std::string media_type,
                uint32_t chunk_size, bool compress)
      : store_(store),
        digest_(digest),
        size_(size),
        media_type_(std::move(media_type)),
        chunk_size_(chunk_size) {
    compression_.enabled = compress;
    buf_.reserve(chunk_size_);
  }

  Status Resume(const v1::PartialRecord& partial);
  uint64_t offset() const override { return written_; }
  Status Append(std::span<const uint8_t> bytes) override;
  Status Commit() override;
  Status Suspend() override;
  Status Checkpoint() override;
  Status Abandon() override;

 private:
  // Progress so far: whole chunks stored, plus (with_tail) the bytes of the chunk being filled.
  v1::PartialRecord MakePartial(bool with_tail) const;
  // Hashes, maybe compresses and writes chunk `index` (chunks come in order).
  Status StoreChunk(uint32_t index, const std::vector<uint8_t>& data);
  // Stores the short tail chunk still in buf_.
  Status FlushTail();

  ChunkedStore* store_;
  BlobDigest digest_;
  uint64_t size_;
  std::string media_type_;
  uint32_t chunk_size_;
  CompressionTries compression_;
  ChunkEncoder encoder_;
  Sha256 whole_;
  std::vector<std::string> chunk_hashes_;
  std::vector<uint8_t> buf_;
  uint64_t written_ = 0;
  uint64_t stored_bytes_ = 0;
  uint32_t next_index_ = 0;  // index of the chunk being filled in buf_
  bool done_ = false;
};

class ChunkedStore final : public BlobStore {
 public:
  ChunkedStore(std::unique_ptr<Kv> kv, uint32_t chunk_size, bool compression)
      : kv_(std::move(kv)), chunk_size_(chunk_size), compression_(compression) {}

  Result<std::optional<BlobInfo>> Stat(const BlobDigest& digest) override {
    GS_ASSIGN_OR_RETURN(auto rec, GetBlobRecord(digest));
    if (!rec) return std::optional<BlobInfo>();
    return std::optional<BlobInfo>(BlobInfo{digest, rec->size(), rec->stored_bytes(), rec->media_type(),
                                            static_cast<uint64_t>(rec->chunk_hash_size())});
  }

  Result<uint64_t> PartialBytes(const BlobDigest& digest) override {
    GS_ASSIGN_OR_RETURN(auto value, kv_->Get(Space::kPartials, DigestKey(digest)));
    if (!value) return uint64_t{0};
    v1::PartialRecord rec;
    if (!rec.ParseFromString(*value)) return uint64_t{0};
    return rec.durable_bytes();
  }

  Status ForEachBlob(const std::function<Status(const BlobInfo&)>& fn) override {
    Status inner;
    GS_RETURN_IF_ERROR(kv_->Scan(Space::kBlobs, "", [&](std::string_view key, std::string_view value) {
      v1::BlobRecord rec;
      if (key.size() != BlobDigest::kRawSize || !rec.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
        inner = MakeError(Errc::kCorrupt, "store: unreadable blob record (key " + HexEncode(reinterpret_cast<const uint8_t*>(key.data()), key.size()) + ")");
        return false;
      }
      auto d = BlobDigest::FromRaw(reinterpret_cast<const uint8_t*>(key.data()));
      inner = fn(BlobInfo{d, rec.size(), rec.stored_bytes(), rec.media_type(), static_cast<uint64_t>(rec.chunk_hash_size())});
      return inner.ok();
    }));
    return inner;
  }

  Result<std::unique_ptr<BlobWriter>> OpenWriter(const BlobDigest& digest, uint64_t size,
                                                 const std::string& media_type) override {
    bool compress = compression_ && !IsCompressedMediaType(media_type);
    auto writer = std::make_unique<ChunkedWriter>(this, digest, size, media_type, chunk_size_, compress);
    GS_ASSIGN_OR_RETURN(auto value, kv_->Get(Space::kPartials, DigestKey(digest)));
    if (value) {
      v1::PartialRecord partial;
      // A sparse record (pieces) is no prefix to resume from: the writer starts at 0 and may
      // rewrite those chunks (chunk i of a digest is always the same bytes).
      if (partial.ParseFromString(*value) && !partial.sparse() && partial.size() == size &&
          partial.chunk_size() == chunk_size_) {
        if (!writer->Resume(partial).ok()) {
          // The kept prefix does not verify: start over.
          writer = std::make_unique<ChunkedWriter>(this, digest, size, media_type, chunk_size_, compress);
        }
      }
    }
    return std::unique_ptr<BlobWriter>(std::move(writer));
  }

  Status Read(const BlobDigest& digest, uint64_t offset, uint64_t length, const ReadSink& sink) override {
    GS_ASSIGN_OR_RETURN(auto rec, GetBlobRecord(digest));
    if (!rec) return MakeError(Errc::kNotFound, "blob " + digest.str() + " is not in the store");
    if (offset > rec->size() || length > rec->size() - offset) {
      return MakeError(Errc::kInvalidArgument, "blob " + digest.str() + ": read of " + Range(offset, length) +
                                                   " is past its size " + std::to_string(rec->size()));
    }
    if (length == 0) return OkStatus();
    const uint64_t cs = rec->chunk_size();
    std::vector<uint8_t> plain;
    for (uint64_t index = offset / cs; index * cs < offset + length; ++index) {
      GS_RETURN_IF_ERROR(ReadChunk(digest, *rec, static_cast<uint32_t>(index), plain));
      uint64_t chunk_begin = index * cs;
      uint64_t from = std::max(offset, chunk_begin) - chunk_begin;
      uint64_t to = std::min(offset + length, chunk_begin + plain.size()) - chunk_begin;
      GS_RETURN_IF_ERROR(sink(std::span<const uint8_t>(plain.data() + from, to - from)));
    }
    return OkStatus();
  }

  // ---- piece-wise assembly ----

  Status PutPiece(const BlobDigest& digest, uint64_t size, const std::string& media_type, uint32_t index,
                  std::span<const uint8_t> bytes) override {
    const uint64_t pieces = PieceCount(size, chunk_size_);
    const std::string what = "blob " + digest.str() + " piece " + std::to_string(index);
    if (index >= pieces) {
      return MakeError(Errc::kInvalidArgument, what + ": no such piece (the blob's " + std::to_string(size) +
                                                   " bytes make " + std::to_string(pieces) + " pieces of " +
                                                   std::to_string(chunk_size_) + " bytes)");
    }
    const uint64_t length = PieceLength(size, chunk_size_, index);
    if (bytes.size() != length) {
      return MakeError(Errc::kInvalidArgument, what + " (" + Range(uint64_t{index} * chunk_size_, length) + "): got " +
                                                   std::to_string(bytes.size()) + " bytes, expected " +
                                                   std::to_string(length));
    }
    const std::string hash = ChunkHash(bytes.data(), bytes.size());
    std::unique_ptr<ChunkEncoder> encoder;
    bool try_zstd = false;
    {
      std::lock_guard lock(mu_);
      GS_ASSIGN_OR_RETURN(Assembly * a, AssemblyForPieceLocked(digest, size, media_type));
      if (a == nullptr) return OkStatus();  // visible, or will be at the next Sync
      if (a->rec.chunk_hash(static_cast<int>(index)) == hash) return OkStatus();  // held already
      try_zstd = a->compression.ShouldTry();
      encoder = TakeEncoderLocked();
    }
    auto stored = WriteChunk(digest, index, bytes, *encoder, try_zstd);
    std::lock_guard lock(mu_);
    ReturnEncoderLocked(std::move(encoder));
    if (!stored.ok()) return MakeError(stored.error().code, what + ": " + stored.error().message);
    // Look again: the state may have changed meanwhile (completed, forgotten).
    GS_ASSIGN_OR_RETURN(Assembly * a, AssemblyForPieceLocked(digest, size, media_type));
    if (a == nullptr) return OkStatus();
    a->compression.Record(try_zstd, stored->compressed);
    std::string* held = a->rec.mutable_chunk_hash(static_cast<int>(index));
    if (held->empty()) a->rec.set_durable_bytes(a->rec.durable_bytes() + length);
    *held = hash;
    a->dirty = true;
    a->version = ++versions_;
    return OkStatus();
  }

  Result<std::vector<bool>> HeldPieces(const BlobDigest& digest, uint64_t size) override {
    const uint64_t pieces = PieceCount(size, chunk_size_);
    std::vector<bool> held(pieces, false);
    auto mark = [&](const v1::PartialRecord& rec) {
      if (rec.size() != size || static_cast<uint64_t>(rec.chunk_hash_size()) != pieces) return;
      for (uint64_t i = 0; i < pieces; ++i) held[i] = !rec.chunk_hash(static_cast<int>(i)).empty();
    };
    GS_ASSIGN_OR_RETURN(auto blob, GetBlobRecord(digest));
    if (blob) return std::vector<bool>(pieces, true);
    {
      std::lock_guard lock(mu_);
      auto it = assemblies_.find(digest);
      if (it != assemblies_.end()) {
        switch (it->second.kind) {
          case Assembly::Kind::kCommitted:
            return std::vector<bool>(pieces, true);  // visible at the next Sync
          case Assembly::Kind::kForgotten:
            return held;
          case Assembly::Kind::kAssembling:
            mark(it->second.rec);
            return held;
        }
      }
    }
    GS_ASSIGN_OR_RETURN(auto loaded, LoadPiecesRecord(digest));
    if (loaded.rec) mark(*loaded.rec);
    return held;
  }

  Status CompletePieces(const BlobDigest& digest) override {
    for (int attempt = 0;; ++attempt) {
      // 1. What to check: a snapshot of the held pieces.
      v1::PartialRecord rec;
      {
        std::lock_guard lock(mu_);
        GS_ASSIGN_OR_RETURN(auto blob, GetBlobRecord(digest));
        if (blob) return OkStatus();  // visible already
        GS_ASSIGN_OR_RETURN(Assembly * a, FindOrLoadAssemblyLocked(digest));
        if (a != nullptr && a->kind == Assembly::Kind::kCommitted) return OkStatus();
        if (a == nullptr || a->kind == Assembly::Kind::kForgotten) {
          if (digest == Sha256::Of("")) {  // the empty blob has no pieces
            CommitPiecesLocked(digest, EmptyBlobRecord());
            return OkStatus();
          }
          return MakeError(Errc::kIncomplete, "blob " + digest.str() + ": no pieces of it are held");
        }
        rec = a->rec;
      }
      const uint64_t pieces = PieceCount(rec.size(), rec.chunk_size());
      uint64_t missing = 0;
      std::optional<uint64_t> first_missing;
      for (uint64_t i = 0; i < pieces; ++i) {
        if (!rec.chunk_hash(static_cast<int>(i)).empty()) continue;
        if (!first_missing) first_missing = i;
        missing++;
      }
      if (missing > 0) {
        return MakeError(Errc::kIncomplete, "blob " + digest.str() + ": " + std::to_string(missing) + " of its " +
                                                std::to_string(pieces) + " pieces are missing (piece " +
                                                std::to_string(*first_missing) + " first)");
      }
      // 2. Read every piece in order (each verified against its chunk hash), hash the whole.
      Sha256 whole;
      uint64_t stored_bytes = 0;
      std::vector<uint8_t> plain;
      for (uint64_t i = 0; i < pieces; ++i) {
        const auto index = static_cast<uint32_t>(i);
        uint64_t stored = 0;
        const std::string& hash = rec.chunk_hash(static_cast<int>(index));
        Status st = ReadVerifiedChunk(digest, rec.size(), rec.chunk_size(), index, hash, plain, &stored);
        if (!st.ok()) {
          if (st.error().code == Errc::kCorrupt) ForgetPiece(digest, index, hash);
          return st;
        }
        whole.Update(plain.data(), plain.size());
        stored_bytes += stored;
      }
      const BlobDigest got = whole.Finish();
      // 3. Settle it, if the pieces did not change meanwhile.
      std::lock_guard lock(mu_);
      auto it = assemblies_.find(digest);
      if (it != assemblies_.end() && it->second.kind == Assembly::Kind::kCommitted) return OkStatus();
      const bool unchanged = it != assemblies_.end() && it->second.kind == Assembly::Kind::kAssembling &&
                             it->second.rec.size() == rec.size() &&
                             std::equal(it->second.rec.chunk_hash().begin(), it->second.rec.chunk_hash().end(),
                                        rec.chunk_hash().begin(), rec.chunk_hash().end());
      if (!unchanged) {
        if (attempt < 3) continue;
        return MakeError(Errc::kIncomplete, "blob " + digest.str() + ": its pieces kept changing while it was checked");
      }
      if (got != digest) {
        ForgetLocked(digest);
        return MakeError(Errc::kCorrupt,
                         "blob " + digest.str() + " does not match its digest (pieces hash to " + got.str() + ")");
      }
      v1::BlobRecord blob;
      blob.set_size(rec.size());
      blob.set_chunk_size(rec.chunk_size());
      for (const auto& h : rec.chunk_hash()) blob.add_chunk_hash(h);
      blob.set_media_type(rec.media_type());
      blob.set_stored_bytes(stored_bytes);
      CommitPiecesLocked(digest, blob);
      return OkStatus();
    }
  }

  Status ReadPiece(const BlobDigest& digest, uint32_t index, std::vector<uint8_t>& out) override {
    GS_ASSIGN_OR_RETURN(auto blob, GetBlobRecord(digest));
    if (blob && index < static_cast<uint64_t>(blob->chunk_hash_size())) return ReadChunk(digest, *blob, index, out);
    // Else a held piece: its blob's size, chunk size and the piece's chunk hash.
    struct Held {
      uint64_t size = 0, chunk_size = 0;
      std::string hash;
    };
    std::optional<Held> held;
    auto find = [&](const v1::PartialRecord& rec) {
      if (index < static_cast<uint64_t>(rec.chunk_hash_size()) && !rec.chunk_hash(static_cast<int>(index)).empty()) {
        held = Held{rec.size(), rec.chunk_size(), rec.chunk_hash(static_cast<int>(index))};
      }
    };
    bool look_at_store = !blob;
    if (look_at_store) {
      std::lock_guard lock(mu_);
      auto it = assemblies_.find(digest);
      if (it != assemblies_.end()) {
        const Assembly& a = it->second;
        if (a.kind != Assembly::Kind::kForgotten) find(a.rec);
        // A blob whose BlobRecord a sequential writer queued has no piece record: ask the store.
        look_at_store = a.kind == Assembly::Kind::kCommitted && a.rec.chunk_hash_size() == 0;
      }
    }
    if (look_at_store) {
      GS_ASSIGN_OR_RETURN(auto loaded, LoadPiecesRecord(digest));
      if (loaded.rec) find(*loaded.rec);
    }
    if (!held) {
      return MakeError(Errc::kNotFound, "blob " + digest.str() + " piece " + std::to_string(index) +
                                            " is not in the store");
    }
    return ReadVerifiedChunk(digest, held->size, held->chunk_size, index, held->hash, out, nullptr);
  }

  uint32_t chunk_size() const override { return chunk_size_; }

  // Flushes the chunks, then commits the queued record ops and the assembly records that changed,
  // in one batch. Ops queued meanwhile go with the next Sync.
  Status Sync() override {
    std::lock_guard sync_lock(sync_mu_);
    std::vector<KvOp> ops;
    size_t queued = 0;
    bool flush = false;
    std::vector<BlobDigest> written;                       // assemblies whose records this batch writes
    std::vector<std::pair<BlobDigest, uint64_t>> settled;  // committed/forgotten states this batch settles
    {
      std::lock_guard lock(mu_);
      ops.swap(pending_);
      queued = ops.size();
      flush = chunks_dirty_;
      chunks_dirty_ = false;
      for (auto& [d, a] : assemblies_) {
        if (a.kind != Assembly::Kind::kAssembling) {
          settled.emplace_back(d, a.version);  // its ops were queued before now: they are in `ops`
        } else if (a.dirty) {
          a.dirty = false;
          ops.push_back(KvOp{Space::kPartials, DigestKey(d), a.rec.SerializeAsString()});
          written.push_back(d);
        }
      }
    }
    Status st = OkStatus();
    if (flush) st = kv_->FlushChunks();
    if (st.ok() && !ops.empty()) st = kv_->Commit(ops);
    std::lock_guard lock(mu_);
    if (!st.ok()) {  // keep everything for the next Sync
      chunks_dirty_ = chunks_dirty_ || flush;
      ops.resize(queued);
      pending_.insert(pending_.begin(), std::make_move_iterator(ops.begin()), std::make_move_iterator(ops.end()));
      for (const auto& d : written) {
        auto it = assemblies_.find(d);
        if (it != assemblies_.end() && it->second.kind == Assembly::Kind::kAssembling) it->second.dirty = true;
      }
      return st;
    }
    for (const auto& [d, version] : settled) {
      auto it = assemblies_.find(d);
      if (it != assemblies_.end() && it->second.version == version) assemblies_.erase(it);
    }
    return OkStatus();
  }

  Status PutRelease(const StoredRelease& release, const std::vector<BlobDigest>& needed) override {
    GS_RETURN_IF_ERROR(Sync());
    for (const auto& d : needed) {
      GS_ASSIGN_OR_RETURN(auto rec, GetBlobRecord(d));
      if (!rec) {
        return MakeError(Errc::kIncomplete, "release " + release.id.str() + " needs blob " + d.str() +
                                                ", which the store does not hold");
      }
    }
    v1::ReleaseRecord rec;
    rec.set_manifest(release.manifest);
    rec.set_signature(release.signature);
    rec.set_release_digest(release.release_digest);
    rec.set_ingested_unix(release.ingested_unix);
    rec.set_pinned(release.pinned);
    return kv_->Commit({KvOp{Space::kReleases, ReleaseKey(release.id), rec.SerializeAsString()},
                        KvOp{Space::kPending, ReleaseKey(release.id), std::nullopt}});
  }

  Status KeepPending(const StoredRelease& release) override {
    v1::ReleaseRecord rec;
    rec.set_manifest(release.manifest);
    rec.set_signature(release.signature);
    rec.set_release_digest(release.release_digest);
    rec.set_ingested_unix(release.ingested_unix);
    return kv_->Commit({KvOp{Space::kPending, ReleaseKey(release.id), rec.SerializeAsString()}});
  }

  Result<std::optional<StoredRelease>> GetRelease(const ReleaseId& id) override {
    GS_ASSIGN_OR_RETURN(auto value, kv_->Get(Space::kReleases, ReleaseKey(id)));
    if (!value) return std::optional<StoredRelease>();
    GS_ASSIGN_OR_RETURN(auto rel, DecodeRelease(ReleaseKey(id), *value));
    return std::optional<StoredRelease>(std::move(rel));
  }

  Result<std::vector<StoredRelease>> ListReleases() override { return ListReleases(Space::kReleases); }

  Result<std::vector<StoredRelease>> ListReleases(Space space) {
    std::vector<StoredRelease> out;
    Status inner;
    GS_RETURN_IF_ERROR(kv_->Scan(space, "", [&](std::string_view key, std::string_view value) {
      auto rel = DecodeRelease(key, value);
      if (!rel.ok()) {
        inner = rel.error();
        return false;
      }
      out.push_back(std::move(rel).value());
      return true;
    }));
    GS_RETURN_IF_ERROR(inner);
    return out;
  }

  Result<FsckReport> Fsck(const std::function<void(uint64_t)>& progress) override {
    FsckReport report;
    std::set<BlobDigest> blobs;
    std::map<BlobDigest, uint64_t> chunk_counts;  // chunks each record accounts for
    GS_RETURN_IF_ERROR(ForEachBlob([&](const BlobInfo& info) {
      blobs.insert(info.digest);
      chunk_counts[info.digest] = info.chunks;
      return OkStatus();
    }));
    for (const auto& d : blobs) {
      Sha256 hash;
      uint64_t got = 0;
      GS_ASSIGN_OR_RETURN(auto info, Stat(d));
      Status st = Read(d, 0, info->size, [&](std::span<const uint8_t> bytes) {
        hash.Update(bytes);
        got += bytes.size();
        if (progress) progress(bytes.size());
        return OkStatus();
      });
      if (!st.ok()) {
        report.problems.push_back(st.error().message);
        if (st.error().code == Errc::kCorrupt) report.corrupt_blobs.push_back(d);
      } else if (hash.Finish() != d) {
        report.problems.push_back("blob " + d.str() + ": stored bytes do not hash to its digest");
        report.corrupt_blobs.push_back(d);
      }
      report.blobs_checked++;
      report.bytes_checked += got;
    }
    GS_RETURN_IF_ERROR(kv_->Scan(Space::kPartials, "", [&](std::string_view key, std::string_view value) {
      v1::PartialRecord rec;
      if (key.size() == BlobDigest::kRawSize && rec.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
        auto d = BlobDigest::FromRaw(reinterpret_cast<const uint8_t*>(key.data()));
        auto& n = chunk_counts[d];
        n = std::max(n, PartialChunks(rec));
        report.partial_blobs++;
      }
      return true;
    }));
    CountAssemblyChunks(chunk_counts);  // pieces not recorded yet are no orphans either
    GS_ASSIGN_OR_RETURN(auto orphans, FindOrphanChunks(chunk_counts));
    report.orphan_chunks = orphans.size();
    GS_ASSIGN_OR_RETURN(auto releases, ListReleases());
    for (const auto& rel : releases) {
      report.releases_checked++;
      auto needed = ReleaseBlobsFromManifest(rel.manifest, "release " + rel.id.str());
      if (!needed.ok()) {
        report.problems.push_back(needed.error().message);
        continue;
      }
      for (const auto& d : needed.value()) {
        if (!blobs.count(d)) {
          report.problems.push_back("release " + rel.id.str() + " needs blob " + d.str() + ", which is missing");
        }
      }
    }
    return report;
  }

  Result<GcStats> CollectGarbage(bool drop_partials) override {
    // Record what is queued and every piece held first: gc must see it all in the store.
    GS_RETURN_IF_ERROR(Sync());
    if (drop_partials) {
      std::lock_guard lock(mu_);
      assemblies_.clear();  // their records go below
    }
    GcStats stats;
    std::set<BlobDigest> live;
    GS_ASSIGN_OR_RETURN(auto releases, ListReleases(Space::kReleases));
    for (const auto& rel : releases) {
      if (!rel.pinned) continue;
      GS_ASSIGN_OR_RETURN(auto needed, ReleaseBlobsFromManifest(rel.manifest, "release " + rel.id.str()));
      live.insert(needed.begin(), needed.end());
    }
    GS_ASSIGN_OR_RETURN(auto pending, ListReleases(Space::kPending));
    std::vector<KvOp> dropped_pending;
    for (const auto& rel : pending) {
      if (drop_partials) {
        dropped_pending.push_back(KvOp{Space::kPending, ReleaseKey(rel.id), std::nullopt});
        continue;
      }
      GS_ASSIGN_OR_RETURN(auto needed, ReleaseBlobsFromManifest(rel.manifest, "pending release " + rel.id.str()));
      live.insert(needed.begin(), needed.end());
    }
    std::vector<BlobInfo> dead;
    std::map<BlobDigest, uint64_t> chunk_counts;
    GS_RETURN_IF_ERROR(ForEachBlob([&](const BlobInfo& info) {
      if (!live.count(info.digest)) {
        dead.push_back(info);
      } else {
        chunk_counts[info.digest] = info.chunks;
      }
      return OkStatus();
    }));
    std::vector<KvOp> ops = std::move(dropped_pending);
    std::vector<BlobDigest> partials;
    GS_RETURN_IF_ERROR(kv_->Scan(Space::kPartials, "", [&](std::string_view key, std::string_view value) {
      if (key.size() != BlobDigest::kRawSize) return true;
      auto d = BlobDigest::FromRaw(reinterpret_cast<const uint8_t*>(key.data()));
      v1::PartialRecord rec;
      if (drop_partials || !rec.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
        partials.push_back(d);
      } else {
        auto& n = chunk_counts[d];
        n = std::max(n, PartialChunks(rec));
      }
      return true;
    }));
    if (!drop_partials) CountAssemblyChunks(chunk_counts);
    for (const auto& info : dead) {
      ops.push_back(KvOp{Space::kBlobs, DigestKey(info.digest), std::nullopt});
      stats.blobs_removed++;
      stats.bytes_removed += info.size;
    }
    for (const auto& d : partials) {
      ops.push_back(KvOp{Space::kPartials, DigestKey(d), std::nullopt});
      stats.partials_removed++;
    }
    if (!ops.empty()) GS_RETURN_IF_ERROR(kv_->Commit(ops));
    GS_ASSIGN_OR_RETURN(auto orphans, FindOrphanChunks(chunk_counts));
    stats.orphan_chunks_removed = orphans.size();
    for (const auto& [begin, end] : orphans) {
      GS_RETURN_IF_ERROR(kv_->DeleteChunkRange(begin, end));
    }
    GS_RETURN_IF_ERROR(kv_->Compact());
    return stats;
  }

  Status DropBlob(const BlobDigest& digest) override {
    GS_RETURN_IF_ERROR(Sync());
    GS_RETURN_IF_ERROR(kv_->Commit({KvOp{Space::kBlobs, DigestKey(digest), std::nullopt},
                                    KvOp{Space::kPartials, DigestKey(digest), std::nullopt}}));
    std::lock_guard lock(mu_);
    assemblies_.erase(digest);
    return OkStatus();
  }

  Status CorruptForTest(const BlobDigest& digest, uint32_t chunk_index) override {
    auto key = ChunkKey(digest, chunk_index);
    GS_ASSIGN_OR_RETURN(auto value, kv_->Get(Space::kChunks, key));
    if (!value || value->size() < 2) return MakeError(Errc::kNotFound, "no such chunk");
    (*value)[1 + (value->size() - 1) / 2] ^= 0x01;  // a payload byte (byte 0 is the codec)
    return kv_->RawPutChunkForTest(key, *value);
  }

  // ---- used by ChunkedWriter (and the piece-wise assembly) ----

  // Stores chunk `index` of `d` as every chunk is stored (ChunkEncoder). Durable at the next Sync().
  Result<StoredChunk> WriteChunk(const BlobDigest& d, uint32_t index, std::span<const uint8_t> plain,
                                 ChunkEncoder& encoder, bool try_zstd) {
    const auto encoded = encoder.Encode(plain, try_zstd);
    GS_RETURN_IF_ERROR(kv_->PutChunk(ChunkKey(d, index), encoded.head, encoded.body));
    // Only now: a Sync() that sees the flag flushes a chunk whose write is complete.
    std::lock_guard lock(mu_);
    chunks_dirty_ = true;
    return StoredChunk{encoded.body.size(), encoded.compressed};
  }
  Result<std::optional<std::string>> GetChunk(const BlobDigest& d, uint32_t index) {
    return kv_->Get(Space::kChunks, ChunkKey(d, index));
  }
  // Record ops that take effect (together) at the next Sync().
  void Queue(KvOp op) {
    std::lock_guard lock(mu_);
    QueueLocked(std::move(op));
  }
  void Queue(std::vector<KvOp> ops) {
    std::lock_guard lock(mu_);
    for (auto& op : ops) QueueLocked(std::move(op));
  }

 private:
  // In-memory state of a blob being assembled from pieces; and, until the Sync() that makes it
  // durable, of a blob whose BlobRecord (kCommitted) or partial-record delete (kForgotten) is queued,
  // so that no stale record is loaded or written for it meanwhile.
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

  // Chunks of a blob a partial record accounts for (gc and fsck keep them).
  static uint64_t PartialChunks(const v1::PartialRecord& rec) {
    if (rec.sparse() && rec.chunk_size() > 0) return PieceCount(rec.size(), rec.chunk_size());
    return static_cast<uint64_t>(rec.chunk_hash_size());
  }

  v1::PartialRecord NoPieces(uint64_t size, const std::string& media_type) const {
    v1::PartialRecord rec;
    rec.set_size(size);
    rec.set_chunk_size(chunk_size_);
    rec.set_sparse(true);
    rec.set_media_type(media_type);
    const uint64_t pieces = PieceCount(size, chunk_size_);
    for (uint64_t i = 0; i < pieces; ++i) rec.add_chunk_hash();
    return rec;
  }

  v1::BlobRecord EmptyBlobRecord() const {
    v1::BlobRecord rec;
    rec.set_size(0);
    rec.set_chunk_size(chunk_size_);
    return rec;
  }

  Result<LoadedPieces> LoadPiecesRecord(const BlobDigest& digest) {
    LoadedPieces out;
    GS_ASSIGN_OR_RETURN(auto value, kv_->Get(Space::kPartials, DigestKey(digest)));
    if (!value) return out;
    out.existed = true;
    v1::PartialRecord rec;
    if (!rec.ParseFromString(*value) || rec.chunk_size() != chunk_size_ || rec.size() == 0) return out;
    const uint64_t pieces = PieceCount(rec.size(), chunk_size_);
    const auto hashes = static_cast<uint64_t>(rec.chunk_hash_size());
    if (rec.sparse()) {
      if (hashes == pieces) out.rec = std::move(rec);
      return out;
    }
    // A stopped sequential ingest: its whole chunks are pieces held (its tail is not).
    if (hashes > pieces) return out;
    v1::PartialRecord conv = NoPieces(rec.size(), rec.media_type());
    uint64_t held = 0;
    for (uint64_t i = 0; i < hashes; ++i) {
      *conv.mutable_chunk_hash(static_cast<int>(i)) = rec.chunk_hash(static_cast<int>(i));
      held += PieceLength(rec.size(), chunk_size_, i);
    }
    conv.set_durable_bytes(held);
    out.rec = std::move(conv);
    out.converted = true;
    return out;
  }

  void ResetAssemblyLocked(Assembly& a, v1::PartialRecord rec, bool dirty) {
    a.kind = Assembly::Kind::kAssembling;
    a.compression = CompressionTries{compression_ && !IsCompressedMediaType(rec.media_type()), 0};
    a.rec = std::move(rec);
    a.dirty = dirty;
    a.version = ++versions_;
  }

  // The state to store a piece of a `size`-byte blob in, loaded or created; nullptr when the
  // blob is visible or will be at the next Sync (nothing to store).
  Result<Assembly*> AssemblyForPieceLocked(const BlobDigest& digest, uint64_t size, const std::string& media_type) {
    auto it = assemblies_.find(digest);
    if (it == assemblies_.end()) {
      GS_ASSIGN_OR_RETURN(auto blob, GetBlobRecord(digest));
      if (blob) return nullptr;
      GS_ASSIGN_OR_RETURN(auto loaded, LoadPiecesRecord(digest));
      it = assemblies_.try_emplace(digest).first;
      if (loaded.rec && loaded.rec->size() == size) {
        ResetAssemblyLocked(it->second, std::move(*loaded.rec), loaded.converted);
      } else {  // none, or of another size: replaced
        ResetAssemblyLocked(it->second, NoPieces(size, media_type), loaded.existed);
      }
      return &it->second;
    }
    Assembly& a = it->second;
    switch (a.kind) {
      case Assembly::Kind::kCommitted:
        return nullptr;
      case Assembly::Kind::kForgotten:  // its record goes at the next Sync: start afresh
        ResetAssemblyLocked(a, NoPieces(size, media_type), false);
        break;
      case Assembly::Kind::kAssembling:
        if (a.rec.size() != size) ResetAssemblyLocked(a, NoPieces(size, media_type), true);
        break;
    }
    return &a;
  }

  // The state of `digest`, loaded from its partial record if it has none; nullptr when neither.
  Result<Assembly*> FindOrLoadAssemblyLocked(const BlobDigest& digest) {
    auto it = assemblies_.find(digest);
    if (it != assemblies_.end()) return &it->second;
    GS_ASSIGN_OR_RETURN(auto loaded, LoadPiecesRecord(digest));
    if (!loaded.rec) return nullptr;
    it = assemblies_.try_emplace(digest).first;
    ResetAssemblyLocked(it->second, std::move(*loaded.rec), loaded.converted);
    return &it->second;
  }

  // Queues the blob record of a completed assembly; the piece record goes with it.
  void CommitPiecesLocked(const BlobDigest& digest, const v1::BlobRecord& blob) {
    pending_.push_back(KvOp{Space::kBlobs, DigestKey(digest), blob.SerializeAsString()});
    pending_.push_back(KvOp{Space::kPartials, DigestKey(digest), std::nullopt});
    Assembly& a = assemblies_[digest];
    a.kind = Assembly::Kind::kCommitted;  // rec kept: ReadPiece serves its pieces until the Sync
    a.dirty = false;
    a.version = ++versions_;
  }

  // Forgets every piece held of `digest` (its record goes at the next Sync).
  void ForgetLocked(const BlobDigest& digest) {
    pending_.push_back(KvOp{Space::kPartials, DigestKey(digest), std::nullopt});
    Assembly& a = assemblies_[digest];
    a.kind = Assembly::Kind::kForgotten;
    a.rec.Clear();
    a.dirty = false;
    a.version = ++versions_;
  }

  // Forgets one held piece whose stored bytes do not verify (so that it is fetched again).
  void ForgetPiece(const BlobDigest& digest, uint32_t index, const std::string& hash) {
    std::lock_guard lock(mu_);
    auto it = assemblies_.find(digest);
    if (it == assemblies_.end() || it->second.kind != Assembly::Kind::kAssembling) return;
    auto& rec = it->second.rec;
    if (index >= static_cast<uint64_t>(rec.chunk_hash_size()) || rec.chunk_hash(static_cast<int>(index)) != hash) {
      return;
    }
    rec.mutable_chunk_hash(static_cast<int>(index))->clear();
    const uint64_t length = PieceLength(rec.size(), rec.chunk_size(), index);
    rec.set_durable_bytes(rec.durable_bytes() - std::min(rec.durable_bytes(), length));
    it->second.dirty = true;
    it->second.version = ++versions_;
  }

  // A record op of the sequential writer; keeps the assembly state of its blob in step.
  void QueueLocked(KvOp op) {
    if (op.key.size() == BlobDigest::kRawSize && (op.space == Space::kBlobs || op.space == Space::kPartials)) {
      const auto d = BlobDigest::FromRaw(reinterpret_cast<const uint8_t*>(op.key.data()));
      if (op.space == Space::kBlobs) {
        if (op.value) {  // committed: no piece record may be written for it any more
          Assembly& a = assemblies_[d];
          a.kind = Assembly::Kind::kCommitted;
          a.rec.Clear();
          a.dirty = false;
          a.version = ++versions_;
        }
      } else if (!op.value) {  // abandoned, or its bytes were wrong: forget the pieces too
        Assembly& a = assemblies_[d];
        if (a.kind != Assembly::Kind::kCommitted) {
          a.kind = Assembly::Kind::kForgotten;
          a.rec.Clear();
          a.dirty = false;
          a.version = ++versions_;
        }
      } else if (auto it = assemblies_.find(d);
                 it != assemblies_.end() && it->second.kind == Assembly::Kind::kAssembling) {
        // Checkpoint/Suspend of a blob also being assembled: its whole chunks are pieces held
        // (the piece record, written after this op, takes its place).
        v1::PartialRecord seq;
        auto& rec = it->second.rec;
        if (seq.ParseFromString(*op.value) && !seq.sparse() && seq.size() == rec.size() &&
            seq.chunk_size() == rec.chunk_size() && seq.chunk_hash_size() <= rec.chunk_hash_size()) {
          for (int i = 0; i < seq.chunk_hash_size(); ++i) {
            std::string* held = rec.mutable_chunk_hash(i);
            if (held->empty()) {
              rec.set_durable_bytes(rec.durable_bytes() + PieceLength(rec.size(), rec.chunk_size(), i));
            }
            *held = seq.chunk_hash(i);
          }
          it->second.dirty = true;
          it->second.version = ++versions_;
        }
      }
    }
    pending_.push_back(std::move(op));
  }

  // Chunks held by assemblies (recorded or not) count as accounted for.
  void CountAssemblyChunks(std::map<BlobDigest, uint64_t>& counts) {
    std::lock_guard lock(mu_);
    for (const auto& [d, a] : assemblies_) {
      if (a.rec.chunk_size() == 0) continue;
      auto& n = counts[d];
      n = std::max(n, PieceCount(a.rec.size(), a.rec.chunk_size()));
    }
  }

  std::unique_ptr<ChunkEncoder> TakeEncoderLocked() {
    if (spare_encoders_.empty()) return std::make_unique<ChunkEncoder>();
    auto e = std::move(spare_encoders_.back());
    spare_encoders_.pop_back();
    return e;
  }
  void ReturnEncoderLocked(std::unique_ptr<ChunkEncoder> e) {
    if (spare_encoders_.size() < kMaxSpareEncoders) spare_encoders_.push_back(std::move(e));
  }

  Result<std::optional<v1::BlobRecord>> GetBlobRecord(const BlobDigest& digest) {
    GS_ASSIGN_OR_RETURN(auto value, kv_->Get(Space::kBlobs, DigestKey(digest)));
    if (!value) return std::optional<v1::BlobRecord>();
    v1::BlobRecord rec;
    if (!rec.ParseFromString(*value)) {
      return MakeError(Errc::kCorrupt, "blob " + digest.str() + ": store record does not parse");
    }
    if (rec.chunk_size() == 0 ||
        static_cast<uint64_t>(rec.chunk_hash_size()) != (rec.size() + rec.chunk_size() - 1) / rec.chunk_size()) {
      return MakeError(Errc::kCorrupt, "blob " + digest.str() + ": store record is inconsistent (chunk size " +
                                           std::to_string(rec.chunk_size()) + ", " + std::to_string(rec.chunk_hash_size()) +
                                           " chunk hashes for " + std::to_string(rec.size()) + " bytes)");
    }
    return std::optional<v1::BlobRecord>(std::move(rec));
  }

  Status ReadChunk(const BlobDigest& d, const v1::BlobRecord& rec, uint32_t index, std::vector<uint8_t>& plain) {
    if (index >= static_cast<uint64_t>(rec.chunk_hash_size())) {
      const uint64_t begin = uint64_t{index} * rec.chunk_size();
      return MakeError(Errc::kCorrupt, "blob " + d.str() + " chunk " + std::to_string(index) + " (" +
                                           Range(begin, PieceLength(rec.size(), rec.chunk_size(), index)) +
                                           "): store record lists no digest for it");
    }
    return ReadVerifiedChunk(d, rec.size(), rec.chunk_size(), index, rec.chunk_hash(static_cast<int>(index)), plain,
                             nullptr);
  }

  // Reads chunk `index` of a `size`-byte blob cut into `cs`-byte chunks and checks it against
  // `hash`; `stored` (if given) gets its payload size on the store.
  Status ReadVerifiedChunk(const BlobDigest& d, uint64_t size, uint64_t cs, uint32_t index, const std::string& hash,
                           std::vector<uint8_t>& plain, uint64_t* stored) {
    const uint64_t begin = uint64_t{index} * cs;
    const uint64_t expect = PieceLength(size, cs, index);
    const std::string where = "blob " + d.str() + " chunk " + std::to_string(index) + " (" + Range(begin, expect) + ")";
    auto got_value = kv_->Get(Space::kChunks, ChunkKey(d, index));
    if (!got_value.ok()) return MakeError(got_value.error().code, where + ": " + got_value.error().message);
    auto& value = got_value.value();
    if (!value || value->empty()) return MakeError(Errc::kCorrupt, where + ": missing from the store");
    GS_RETURN_IF_ERROR(DecodeChunk(*value, expect, plain, where));
    if (hash != ChunkHash(plain.data(), plain.size())) {
      return MakeError(Errc::kCorrupt, where + ": stored bytes do not match their digest (store corruption)");
    }
    if (stored != nullptr) *stored = value->size() - 1;
    return OkStatus();
  }

 public:
  static Status DecodeChunk(const std::string& value, uint64_t expect, std::vector<uint8_t>& plain,
                            const std::string& where) {
    const auto* payload = reinterpret_cast<const uint8_t*>(value.data()) + 1;
    const size_t n = value.size() - 1;
    if (static_cast<uint8_t>(value[0]) == kCodecPlain) {
      if (n != expect) {
        return MakeError(Errc::kCorrupt, where + ": stored chunk has " + std::to_string(n) + " bytes, expected " +
                                             std::to_string(expect));
      }
      plain.assign(payload, payload + n);
      return OkStatus();
    }
    if (static_cast<uint8_t>(value[0]) == kCodecZstd) {
      plain.resize(expect);
      size_t r = ZSTD_decompress(plain.data(), expect, payload, n);
      if (ZSTD_isError(r) || r != expect) {
        return MakeError(Errc::kCorrupt, where + ": stored chunk does not decompress (store corruption)");
      }
      return OkStatus();
    }
    return MakeError(Errc::kCorrupt, where + ": unknown chunk codec " + std::to_string(value[0]));
  }

 private:
  Result<StoredRelease> DecodeRelease(std::string_view key, std::string_view value) {
    auto sep = key.find('\0');
    v1::ReleaseRecord rec;
    if (sep == std::string_view::npos || !rec.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      return MakeError(Errc::kCorrupt, "store: unreadable release record (key \"" + std::string(key.substr(0, key.find('\0'))) + "\")");
    }
    StoredRelease out;
    out.id = ReleaseId{std::string(key.substr(0, sep)), std::string(key.substr(sep + 1))};
    out.manifest = rec.manifest();
    out.signature = rec.signature();
    out.release_digest = rec.release_digest();
    out.ingested_unix = rec.ingested_unix();
    out.pinned = rec.pinned();
    return out;
  }

  // Chunk key ranges [begin, end) not accounted for by `counts` (digest -> number of chunks).
  Result<std::vector<std::pair<std::string, std::string>>> FindOrphanChunks(
      const std::map<BlobDigest, uint64_t>& counts) {
    std::vector<std::pair<std::string, std::string>> out;
    std::string cursor;
    for (;;) {
      GS_ASSIGN_OR_RETURN(auto found, kv_->FirstKeyAtOrAfter(Space::kChunks, cursor));
      if (!found) break;
      if (found->size() != BlobDigest::kRawSize + 4) {
        out.emplace_back(*found, *found + '\0');
        cursor = *found + '\0';
        continue;
      }
      auto d = BlobDigest::FromRaw(reinterpret_cast<const uint8_t*>(found->data()));
      auto it = counts.find(d);
      uint64_t keep = it == counts.end() ? 0 : it->second;
      uint32_t index = 0;
      for (int i = 0; i < 4; ++i) index = index << 8 | static_cast<uint8_t>((*found)[BlobDigest::kRawSize + i]);
      if (index >= keep) {
        out.emplace_back(*found, ChunkRangeEnd(d));
        cursor = ChunkRangeEnd(d);
      } else {
        cursor = ChunkKey(d, static_cast<uint32_t>(keep));
      }
    }
    return out;
  }

  static constexpr size_t kMaxSpareEncoders = 4;

  std::unique_ptr<Kv> kv_;
  const uint32_t chunk_size_;
  const bool compression_;
  std::mutex sync_mu_;  // one Sync() at a time; taken before mu_
  std::mutex mu_;
  bool chunks_dirty_ = false;        // chunks written since the last flush
  std::vector<KvOp> pending_;        // record ops for the next Sync()
  std::map<BlobDigest, Assembly> assemblies_;
  uint64_t versions_ = 0;
  std::vector<std::unique_ptr<ChunkEncoder>> spare_encoders_;
};

Status ChunkedWriter::Resume(const v1::PartialRecord& partial) {
  const uint64_t durable = partial.durable_bytes();
  const uint64_t chunks = durable / chunk_size_;
  if (durable > size_ || static_cast<uint64_t>(partial.chunk_hash_size()) != chunks ||
      partial.tail().size() != durable % chunk_size_) {
    return MakeError(Errc::kCorrupt, "partial record inconsistent");
  }
  std::vector<uint8_t> plain;
  for (uint32_t i = 0; i < chunks; ++i) {
    GS_ASSIGN_OR_RETURN(auto value, store_->GetChunk(digest_, i));
    if (!value || value->empty()) return MakeError(Errc::kCorrupt, "partial chunk missing");
    GS_RETURN_IF_ERROR(ChunkedStore::DecodeChunk(*value, chunk_size_, plain, "partial"));
    if (partial.chunk_hash(static_cast<int>(i)) != ChunkHash(plain.data(), plain.size())) {
      return MakeError(Errc::kCorrupt, "partial chunk does not verify");
    }
    whole_.Update(plain.data(), plain.size());
    chunk_hashes_.push_back(partial.chunk_hash(static_cast<int>(i)));
    stored_bytes_ += value->size() - 1;
  }
  const auto& tail = partial.tail();
  buf_.assign(tail.begin(), tail.end());  // continue filling the last chunk
  whole_.Update(buf_.data(), buf_.size());
  next_index_ = static_cast<uint32_t>(chunk_hashes_.size());
  written_ = durable;
  return OkStatus();
}

Status ChunkedWriter::Append(std::span<const uint8_t> bytes) {
  if (done_) return MakeError(Errc::kInternal, "blob " + digest_.str() + ": append after commit");
  if (bytes.size() > size_ - written_) {
    return MakeError(Errc::kCorrupt, "blob " + digest_.str() + ": more than the " + std::to_string(size_) +
                                         " bytes its manifest entry declares");
  }
  whole_.Update(bytes);
  written_ += bytes.size();
  while (!bytes.empty()) {
    size_t take = std::min<size_t>(bytes.size(), chunk_size_ - buf_.size());
    buf_.insert(buf_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(take));
    bytes = bytes.subspan(take);
    if (buf_.size() == chunk_size_) {
      GS_RETURN_IF_ERROR(StoreChunk(next_index_++, buf_));
      buf_.clear();
    }
  }
  return OkStatus();
}

Status ChunkedWriter::StoreChunk(uint32_t index, const std::vector<uint8_t>& data) {
  chunk_hashes_.push_back(ChunkHash(data.data(), data.size()));
  if (chunk_hashes_.size() != uint64_t{index} + 1) return MakeError(Errc::kInternal, "chunks stored out of order");
  const bool try_zstd = compression_.ShouldTry();
  GS_ASSIGN_OR_RETURN(auto stored, store_->WriteChunk(digest_, index, data, encoder_, try_zstd));
  compression_.Record(try_zstd, stored.compressed);
  stored_bytes_ += stored.bytes;
  return OkStatus();
}

Status ChunkedWriter::FlushTail() {
  if (buf_.empty()) return OkStatus();
  GS_RETURN_IF_ERROR(StoreChunk(next_index_++, buf_));
  buf_.clear();
  return OkStatus();
}

Status ChunkedWriter::Commit() {
  if (done_) return MakeError(Errc::kInternal, "blob " + digest_.str() + ": committed twice");
  done_ = true;
  if (written_ != size_) {
    store_->Queue(KvOp{Space::kPartials, DigestKey(digest_), std::nullopt});
    return MakeError(Errc::kCorrupt, "blob " + digest_.str() + ": got " + std::to_string(written_) +
                                         " bytes, its manifest entry declares " + std::to_string(size_));
  }
  GS_RETURN_IF_ERROR(FlushTail());
  auto got = whole_.Finish();
  if (got != digest_) {
    store_->Queue(KvOp{Space::kPartials, DigestKey(digest_), std::nullopt});
    return MakeError(Errc::kCorrupt, "blob " + digest_.str() + " does not match its digest (content hashes to " + got.str() + ")");
  }
  v1::BlobRecord rec;
  rec.set_size(size_);
  rec.set_chunk_size(chunk_size_);
  for (auto& h : chunk_hashes_) rec.add_chunk_hash(h);
  rec.set_media_type(media_type_);
  rec.set_stored_bytes(stored_bytes_);
  store_->Queue({KvOp{Space::kBlobs, DigestKey(digest_), rec.SerializeAsString()},
                 KvOp{Space::kPartials, DigestKey(digest_), std::nullopt}});
  return OkStatus();
}

v1::PartialRecord ChunkedWriter::MakePartial(bool with_tail) const {
  v1::PartialRecord rec;
  rec.set_size(size_);
  rec.set_chunk_size(chunk_size_);
  rec.set_durable_bytes(written_ - (with_tail ? 0 : buf_.size()));
  for (auto& h : chunk_hashes_) rec.add_chunk_hash(h);
  rec.set_media_type(media_type_);
  if (with_tail) rec.set_tail(buf_.data(), buf_.size());
  return rec;
}

Status ChunkedWriter::Suspend() {
  if (done_) return OkStatus();
  done_ = true;
  if (written_ == 0) return OkStatus();
  store_->Queue(KvOp{Space::kPartials, DigestKey(digest_), MakePartial(/*with_tail=*/true).SerializeAsString()});
  return OkStatus();
}

Status ChunkedWriter::Checkpoint() {
  if (done_) return MakeError(Errc::kInternal, "blob " + digest_.str() + ": checkpoint after commit");
  if (chunk_hashes_.empty()) return OkStatus();
  // Whole chunks only: the chunk being filled keeps changing (and a tail in the record would
  // be rewritten at every checkpoint).
  store_->Queue(KvOp{Space::kPartials, DigestKey(digest_), MakePartial(/*with_tail=*/false).SerializeAsString()});
  return OkStatus();
}

Status ChunkedWriter::Abandon() {
  if (done_) return OkStatus();
  done_ = true;
  store_->Queue(KvOp{Space::kPartials, DigestKey(digest_), std::nullopt});
  return OkStatus();
}

}  // namespace

bool IsCompressedMediaType(const std::string& media_type) {
  for (const char* suffix : {"+gzip", "+zstd", ".gzip", ".zstd", "tar.gzip", "/gzip", "/zstd", "/x-xz", "/zip"}) {
    std::string_view s(suffix);
    if (media_type.size() >= s.size() && media_type.compare(media_type.size() - s.size(), s.size(), s) == 0) return true;
  }
  return false;
}

Result<std::unique_ptr<BlobStore>> OpenRocksDbStore(const std::string& path, const RocksDbOptions& options) {
  GS_ASSIGN_OR_RETURN(auto kv, OpenRocksDbKv(path));
  return std::unique_ptr<BlobStore>(std::make_unique<ChunkedStore>(std::move(kv), options.chunk_size, options.compression));
}

std::unique_ptr<BlobStore> NewMemoryStore(uint32_t chunk_size) {
  return std::make_unique<ChunkedStore>(NewMemoryKv(), chunk_size, true);
}

}  // namespace gapsync::store
