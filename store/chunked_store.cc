// ChunkedStore: reads, the record queue and Sync(), and the factories (the class and its parts:
// store/chunked_store.h).
#include "store/chunked_store.h"

#include <algorithm>

#include "store/sequential_writer.h"

namespace gapsync::store {

Result<std::optional<BlobInfo>> ChunkedStore::Stat(const BlobDigest& digest) {
  GS_ASSIGN_OR_RETURN(auto rec, GetBlobRecord(digest));
  if (!rec) return std::optional<BlobInfo>();
  return std::optional<BlobInfo>(BlobInfo{digest, rec->size(), rec->stored_bytes(), rec->media_type(),
                                          static_cast<uint64_t>(rec->chunk_hash_size())});
}

Result<uint64_t> ChunkedStore::PartialBytes(const BlobDigest& digest) {
  GS_ASSIGN_OR_RETURN(auto value, kv_->Get(Space::kPartials, DigestKey(digest)));
  if (!value) return uint64_t{0};
  v1::PartialRecord rec;
  if (!rec.ParseFromString(*value)) return uint64_t{0};
  return rec.durable_bytes();
}

Status ChunkedStore::ForEachBlob(const std::function<Status(const BlobInfo&)>& fn) {
  Status inner;
  GS_RETURN_IF_ERROR(kv_->Scan(Space::kBlobs, "", [&](std::string_view key, std::string_view value) {
    v1::BlobRecord rec;
    if (key.size() != BlobDigest::kRawSize || !rec.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      inner = MakeError(Errc::kCorrupt, "store: unreadable blob record (key " +
                                            HexEncode(reinterpret_cast<const uint8_t*>(key.data()), key.size()) + ")");
      return false;
    }
    auto d = BlobDigest::FromRaw(reinterpret_cast<const uint8_t*>(key.data()));
    inner = fn(BlobInfo{d, rec.size(), rec.stored_bytes(), rec.media_type(), static_cast<uint64_t>(rec.chunk_hash_size())});
    return inner.ok();
  }));
  return inner;
}

Result<std::unique_ptr<BlobWriter>> ChunkedStore::OpenWriter(const BlobDigest& digest, uint64_t size,
                                                             const std::string& media_type) {
  const bool compress = compression_ && !IsCompressedMediaType(media_type);
  auto writer = std::make_unique<SequentialWriter>(this, digest, size, media_type, chunk_size_, compress);
  GS_ASSIGN_OR_RETURN(auto value, kv_->Get(Space::kPartials, DigestKey(digest)));
  if (value) {
    v1::PartialRecord partial;
    // A sparse record (pieces) is no prefix to resume from: the writer starts at 0 and may
    // rewrite those chunks (chunk i of a digest is always the same bytes).
    if (partial.ParseFromString(*value) && !partial.sparse() && partial.size() == size &&
        partial.chunk_size() == chunk_size_) {
      if (!writer->Resume(partial).ok()) {
        // The kept prefix does not verify: start over.
        writer = std::make_unique<SequentialWriter>(this, digest, size, media_type, chunk_size_, compress);
      }
    }
  }
  return std::unique_ptr<BlobWriter>(std::move(writer));
}

Status ChunkedStore::Read(const BlobDigest& digest, uint64_t offset, uint64_t length, const ReadSink& sink) {
  GS_ASSIGN_OR_RETURN(auto rec, GetBlobRecord(digest));
  if (!rec) return MakeError(Errc::kNotFound, "blob " + digest.str() + " is not in the store");
  if (offset > rec->size() || length > rec->size() - offset) {
    return MakeError(Errc::kInvalidArgument, "blob " + digest.str() + ": read of " + ByteRange(offset, length) +
                                                 " is past its size " + std::to_string(rec->size()));
  }
  if (length == 0) return OkStatus();
  const uint64_t cs = rec->chunk_size();
  std::vector<uint8_t> plain;
  for (uint64_t index = offset / cs; index * cs < offset + length; ++index) {
    GS_RETURN_IF_ERROR(ReadChunk(digest, *rec, static_cast<uint32_t>(index), plain));
    const uint64_t chunk_begin = index * cs;
    const uint64_t from = std::max(offset, chunk_begin) - chunk_begin;
    const uint64_t to = std::min(offset + length, chunk_begin + plain.size()) - chunk_begin;
    GS_RETURN_IF_ERROR(sink(std::span<const uint8_t>(plain.data() + from, to - from)));
  }
  return OkStatus();
}

// Flushes the chunks, then commits the queued record ops and the assembly records that changed,
// in one batch. Ops queued meanwhile go with the next Sync.
Status ChunkedStore::Sync() {
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

Result<ChunkedStore::StoredChunk> ChunkedStore::WriteChunk(const BlobDigest& d, uint32_t index,
                                                           std::span<const uint8_t> plain, ChunkEncoder& encoder,
                                                           bool try_zstd) {
  const auto encoded = encoder.Encode(plain, try_zstd);
  GS_RETURN_IF_ERROR(kv_->PutChunk(ChunkKey(d, index), encoded.head, encoded.body));
  // Only now: a Sync() that sees the flag flushes a chunk whose write is complete.
  std::lock_guard lock(mu_);
  chunks_dirty_ = true;
  return StoredChunk{encoded.body.size(), encoded.compressed};
}

void ChunkedStore::Queue(std::vector<KvOp> ops) {
  std::lock_guard lock(mu_);
  for (auto& op : ops) QueueLocked(std::move(op));
}

Result<std::optional<v1::BlobRecord>> ChunkedStore::GetBlobRecord(const BlobDigest& digest) {
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

Status ChunkedStore::ReadChunk(const BlobDigest& d, const v1::BlobRecord& rec, uint32_t index,
                               std::vector<uint8_t>& plain) {
  if (index >= static_cast<uint64_t>(rec.chunk_hash_size())) {
    const uint64_t begin = uint64_t{index} * rec.chunk_size();
    return MakeError(Errc::kCorrupt, "blob " + d.str() + " chunk " + std::to_string(index) + " (" +
                                         ByteRange(begin, PieceLength(rec.size(), rec.chunk_size(), index)) +
                                         "): store record lists no digest for it");
  }
  return ReadVerifiedChunk(d, rec.size(), rec.chunk_size(), index, rec.chunk_hash(static_cast<int>(index)), plain,
                           nullptr);
}

Status ChunkedStore::ReadVerifiedChunk(const BlobDigest& d, uint64_t size, uint64_t cs, uint32_t index,
                                       const std::string& hash, std::vector<uint8_t>& plain, uint64_t* stored) {
  const uint64_t begin = uint64_t{index} * cs;
  const uint64_t expect = PieceLength(size, cs, index);
  const std::string where = "blob " + d.str() + " chunk " + std::to_string(index) + " (" + ByteRange(begin, expect) + ")";
  auto got_value = kv_->Get(Space::kChunks, ChunkKey(d, index));
  if (!got_value.ok()) return MakeError(got_value.error().code, where + ": " + got_value.error().message);
  auto& value = got_value.value();
  if (!value) return MakeError(Errc::kCorrupt, where + ": missing from the store");
  GS_RETURN_IF_ERROR(DecodeChunk(*value, expect, plain, where));
  if (hash != ChunkHash(plain.data(), plain.size())) {
    return MakeError(Errc::kCorrupt, where + ": stored bytes do not match their digest (store corruption)");
  }
  if (stored != nullptr) *stored = value->size() - 1;
  return OkStatus();
}

std::unique_ptr<ChunkEncoder> ChunkedStore::TakeEncoderLocked() {
  if (spare_encoders_.empty()) return std::make_unique<ChunkEncoder>();
  auto e = std::move(spare_encoders_.back());
  spare_encoders_.pop_back();
  return e;
}

void ChunkedStore::ReturnEncoderLocked(std::unique_ptr<ChunkEncoder> e) {
  if (spare_encoders_.size() < kMaxSpareEncoders) spare_encoders_.push_back(std::move(e));
}

bool IsCompressedMediaType(const std::string& media_type) {
  for (const char* suffix : {"+gzip", "+zstd", ".gzip", ".zstd", "tar.gzip", "/gzip", "/zstd", "/x-xz", "/zip"}) {
    std::string_view s(suffix);
    if (media_type.size() >= s.size() && media_type.compare(media_type.size() - s.size(), s.size(), s) == 0) return true;
  }
  return false;
}

Result<std::unique_ptr<BlobStore>> NewChunkedStore(std::unique_ptr<Kv> kv, uint32_t chunk_size, bool compression,
                                                   const ManifestBlobsFn& manifest_blobs) {
  auto store = std::make_unique<ChunkedStore>(std::move(kv), chunk_size, compression);
  GS_RETURN_IF_ERROR(store->UpgradeReleaseRecords(manifest_blobs));
  return std::unique_ptr<BlobStore>(std::move(store));
}

Result<std::unique_ptr<BlobStore>> OpenRocksDbStore(const std::string& path, const RocksDbOptions& options) {
  GS_ASSIGN_OR_RETURN(auto kv, OpenRocksDbKv(path));
  return NewChunkedStore(std::move(kv), options.chunk_size, options.compression, options.manifest_blobs);
}

std::unique_ptr<BlobStore> NewMemoryStore(uint32_t chunk_size) {
  return std::make_unique<ChunkedStore>(NewMemoryKv(), chunk_size, true);
}

}  // namespace gapsync::store
