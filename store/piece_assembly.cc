// ChunkedStore as a PieceStore: chunks of a blob that arrive in any order (store/piece_store.h),
// and the in-memory assembly state that keeps them in step with the sequential writer's records
// (store/chunked_store.h).
#include <algorithm>

#include "proto/sha256.h"
#include "store/chunked_store.h"

namespace gapsync::store {

Status ChunkedStore::PutPiece(const BlobDigest& digest, uint64_t size, const std::string& media_type,
                              uint32_t index, std::span<const uint8_t> bytes) {
  const uint64_t pieces = PieceCount(size, chunk_size_);
  const std::string what = "blob " + digest.str() + " piece " + std::to_string(index);
  if (index >= pieces) {
    return MakeError(Errc::kInvalidArgument, what + ": no such piece (the blob's " + std::to_string(size) +
                                                 " bytes make " + std::to_string(pieces) + " pieces of " +
                                                 std::to_string(chunk_size_) + " bytes)");
  }
  const uint64_t length = PieceLength(size, chunk_size_, index);
  if (bytes.size() != length) {
    return MakeError(Errc::kInvalidArgument, what + " (" + ByteRange(uint64_t{index} * chunk_size_, length) + "): got " +
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

Result<PiecesHeld> ChunkedStore::HeldPieces(const BlobDigest& digest, uint64_t size) {
  const uint64_t pieces = PieceCount(size, chunk_size_);
  PiecesHeld held{false, std::vector<bool>(pieces, false)};
  auto mark = [&](const v1::PartialRecord& rec) {
    if (rec.size() != size || static_cast<uint64_t>(rec.chunk_hash_size()) != pieces) return;
    for (uint64_t i = 0; i < pieces; ++i) held.pieces[i] = !rec.chunk_hash(static_cast<int>(i)).empty();
  };
  GS_ASSIGN_OR_RETURN(auto blob, GetBlobRecord(digest));
  if (blob) return PiecesHeld{true, std::vector<bool>(pieces, true)};
  {
    std::lock_guard lock(mu_);
    auto it = assemblies_.find(digest);
    if (it != assemblies_.end()) {
      switch (it->second.kind) {
        case Assembly::Kind::kCommitted:
          return PiecesHeld{false, std::vector<bool>(pieces, true)};  // visible at the next Sync
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

Status ChunkedStore::CompletePieces(const BlobDigest& digest) {
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

Status ChunkedStore::ReadPiece(const BlobDigest& digest, uint32_t index, std::vector<uint8_t>& out) {
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

// Chunks of a blob a partial record accounts for (gc and fsck keep them).
uint64_t ChunkedStore::PartialChunks(const v1::PartialRecord& rec) {
  if (rec.sparse() && rec.chunk_size() > 0) return PieceCount(rec.size(), rec.chunk_size());
  return static_cast<uint64_t>(rec.chunk_hash_size());
}

v1::PartialRecord ChunkedStore::NoPieces(uint64_t size, const std::string& media_type) const {
  v1::PartialRecord rec;
  rec.set_size(size);
  rec.set_chunk_size(chunk_size_);
  rec.set_sparse(true);
  rec.set_media_type(media_type);
  const uint64_t pieces = PieceCount(size, chunk_size_);
  for (uint64_t i = 0; i < pieces; ++i) rec.add_chunk_hash();
  return rec;
}

v1::BlobRecord ChunkedStore::EmptyBlobRecord() const {
  v1::BlobRecord rec;
  rec.set_size(0);
  rec.set_chunk_size(chunk_size_);
  return rec;
}

Result<ChunkedStore::LoadedPieces> ChunkedStore::LoadPiecesRecord(const BlobDigest& digest) {
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

void ChunkedStore::ResetAssemblyLocked(Assembly& a, v1::PartialRecord rec, bool dirty) {
  a.kind = Assembly::Kind::kAssembling;
  a.compression = CompressionTries{compression_ && !IsCompressedMediaType(rec.media_type()), 0};
  a.rec = std::move(rec);
  a.dirty = dirty;
  a.version = ++versions_;
}

// The state to store a piece of a `size`-byte blob in, loaded or created; nullptr when the
// blob is visible or will be at the next Sync (nothing to store).
Result<ChunkedStore::Assembly*> ChunkedStore::AssemblyForPieceLocked(const BlobDigest& digest, uint64_t size,
                                                                    const std::string& media_type) {
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
Result<ChunkedStore::Assembly*> ChunkedStore::FindOrLoadAssemblyLocked(const BlobDigest& digest) {
  auto it = assemblies_.find(digest);
  if (it != assemblies_.end()) return &it->second;
  GS_ASSIGN_OR_RETURN(auto loaded, LoadPiecesRecord(digest));
  if (!loaded.rec) return nullptr;
  it = assemblies_.try_emplace(digest).first;
  ResetAssemblyLocked(it->second, std::move(*loaded.rec), loaded.converted);
  return &it->second;
}

// Queues the blob record of a completed assembly; the piece record goes with it.
void ChunkedStore::CommitPiecesLocked(const BlobDigest& digest, const v1::BlobRecord& blob) {
  pending_.push_back(KvOp{Space::kBlobs, DigestKey(digest), blob.SerializeAsString()});
  pending_.push_back(KvOp{Space::kPartials, DigestKey(digest), std::nullopt});
  Assembly& a = assemblies_[digest];
  a.kind = Assembly::Kind::kCommitted;  // rec kept: ReadPiece serves its pieces until the Sync
  a.dirty = false;
  a.version = ++versions_;
}

// Forgets every piece held of `digest` (its record goes at the next Sync).
void ChunkedStore::ForgetLocked(const BlobDigest& digest) {
  pending_.push_back(KvOp{Space::kPartials, DigestKey(digest), std::nullopt});
  Assembly& a = assemblies_[digest];
  a.kind = Assembly::Kind::kForgotten;
  a.rec.Clear();
  a.dirty = false;
  a.version = ++versions_;
}

// Forgets one held piece whose stored bytes do not verify (so that it is fetched again).
void ChunkedStore::ForgetPiece(const BlobDigest& digest, uint32_t index, const std::string& hash) {
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
void ChunkedStore::QueueLocked(KvOp op) {
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
void ChunkedStore::CountAssemblyChunks(std::map<BlobDigest, uint64_t>& counts) {
  std::lock_guard lock(mu_);
  for (const auto& [d, a] : assemblies_) {
    if (a.rec.chunk_size() == 0) continue;
    auto& n = counts[d];
    n = std::max(n, PieceCount(a.rec.size(), a.rec.chunk_size()));
  }
}

}  // namespace gapsync::store
