// The BlobStore implementation shared by every backend: blobs cut into fixed-size chunks, each
// chunk's SHA-256 recorded at write time and checked on every read, zstd where it pays.
//
// Keys: chunk = raw digest (32 bytes) + chunk index (4 bytes, big-endian); blob and partial
// records = raw digest; release = app + '\0' + version.
// Chunk value = one codec byte (0 = plain, 1 = zstd) + payload.
#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <map>
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
        chunk_size_(chunk_size),
        compress_(compress) {
    buf_.reserve(chunk_size_);
  }
  ~ChunkedWriter() override {
    if (cctx_ != nullptr) ZSTD_freeCCtx(cctx_);
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
  bool compress_;
  int compression_misses_ = 0;
  ZSTD_CCtx* cctx_ = nullptr;
  Sha256 whole_;
  std::vector<std::string> chunk_hashes_;
  std::vector<uint8_t> buf_;
  std::string encoded_;
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
      if (partial.ParseFromString(*value) && partial.size() == size &&
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

  Status Sync() override {
    if (chunks_dirty_) {
      GS_RETURN_IF_ERROR(kv_->FlushChunks());
      chunks_dirty_ = false;
    }
    if (!pending_.empty()) {
      GS_RETURN_IF_ERROR(kv_->Commit(pending_));
      pending_.clear();
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
        n = std::max<uint64_t>(n, static_cast<uint64_t>(rec.chunk_hash_size()));
        report.partial_blobs++;
      }
      return true;
    }));
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
        n = std::max<uint64_t>(n, static_cast<uint64_t>(rec.chunk_hash_size()));
      }
      return true;
    }));
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
    return kv_->Commit({KvOp{Space::kBlobs, DigestKey(digest), std::nullopt},
                        KvOp{Space::kPartials, DigestKey(digest), std::nullopt}});
  }

  Status CorruptForTest(const BlobDigest& digest, uint32_t chunk_index) override {
    auto key = ChunkKey(digest, chunk_index);
    GS_ASSIGN_OR_RETURN(auto value, kv_->Get(Space::kChunks, key));
    if (!value || value->size() < 2) return MakeError(Errc::kNotFound, "no such chunk");
    (*value)[1 + (value->size() - 1) / 2] ^= 0x01;  // a payload byte (byte 0 is the codec)
    return kv_->RawPutChunkForTest(key, *value);
  }

  // ---- used by ChunkedWriter ----
  Status PutChunk(const BlobDigest& d, uint32_t index, std::string_view head, std::string_view body) {
    chunks_dirty_ = true;
    return kv_->PutChunk(ChunkKey(d, index), head, body);
  }
  Result<std::optional<std::string>> GetChunk(const BlobDigest& d, uint32_t index) {
    return kv_->Get(Space::kChunks, ChunkKey(d, index));
  }
  void Queue(KvOp op) { pending_.push_back(std::move(op)); }
  uint32_t chunk_size() const { return chunk_size_; }

 private:
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
    const uint64_t cs = rec.chunk_size();
    const uint64_t begin = uint64_t{index} * cs;
    const uint64_t expect = std::min<uint64_t>(cs, rec.size() - begin);
    const std::string where = "blob " + d.str() + " chunk " + std::to_string(index) + " (" + Range(begin, expect) + ")";
    if (index >= static_cast<uint64_t>(rec.chunk_hash_size())) {
      return MakeError(Errc::kCorrupt, where + ": store record lists no digest for it");
    }
    auto got_value = kv_->Get(Space::kChunks, ChunkKey(d, index));
    if (!got_value.ok()) return MakeError(got_value.error().code, where + ": " + got_value.error().message);
    auto& value = got_value.value();
    if (!value || value->empty()) return MakeError(Errc::kCorrupt, where + ": missing from the store");
    GS_RETURN_IF_ERROR(DecodeChunk(*value, expect, plain, where));
    if (rec.chunk_hash(static_cast<int>(index)) != ChunkHash(plain.data(), plain.size())) {
      return MakeError(Errc::kCorrupt, where + ": stored bytes do not match their digest (store corruption)");
    }
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

  std::unique_ptr<Kv> kv_;
  uint32_t chunk_size_;
  bool compression_;
  bool chunks_dirty_ = false;
  std::vector<KvOp> pending_;
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
  if (compress_ && compression_misses_ < kMaxCompressionMisses) {
    if (cctx_ == nullptr) cctx_ = ZSTD_createCCtx();
    encoded_.resize(ZSTD_compressBound(data.size()));
    size_t n = ZSTD_compressCCtx(cctx_, encoded_.data(), encoded_.size(), data.data(), data.size(), kZstdLevel);
    if (!ZSTD_isError(n) && n <= data.size() - data.size() / 8) {
      compression_misses_ = 0;
      stored_bytes_ += n;
      static constexpr char kZstd = static_cast<char>(kCodecZstd);
      return store_->PutChunk(digest_, index, std::string_view(&kZstd, 1), std::string_view(encoded_.data(), n));
    }
    compression_misses_++;
  }
  static constexpr char kPlain = static_cast<char>(kCodecPlain);
  stored_bytes_ += data.size();
  return store_->PutChunk(digest_, index, std::string_view(&kPlain, 1),
                          std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
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
  store_->Queue(KvOp{Space::kBlobs, DigestKey(digest_), rec.SerializeAsString()});
  store_->Queue(KvOp{Space::kPartials, DigestKey(digest_), std::nullopt});
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
