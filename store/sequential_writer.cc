#include "store/sequential_writer.h"

#include <algorithm>

#include "store/chunked_store.h"

namespace gapsync::store {

SequentialWriter::SequentialWriter(ChunkedStore* store, BlobDigest digest, uint64_t size, std::string media_type,
                                   uint32_t chunk_size, bool compress)
    : store_(store), digest_(digest), size_(size), media_type_(std::move(media_type)), chunk_size_(chunk_size) {
  compression_.enabled = compress;
  buf_.reserve(chunk_size_);
}

Status SequentialWriter::Resume(const v1::PartialRecord& partial) {
  const uint64_t durable = partial.durable_bytes();
  const uint64_t chunks = durable / chunk_size_;
  if (durable > size_ || static_cast<uint64_t>(partial.chunk_hash_size()) != chunks ||
      partial.tail().size() != durable % chunk_size_) {
    return MakeError(Errc::kCorrupt, "partial record inconsistent");
  }
  std::vector<uint8_t> plain;
  for (uint32_t i = 0; i < chunks; ++i) {
    GS_ASSIGN_OR_RETURN(auto value, store_->GetChunk(digest_, i));
    if (!value) return MakeError(Errc::kCorrupt, "partial chunk missing");
    GS_RETURN_IF_ERROR(DecodeChunk(*value, chunk_size_, plain, "partial"));
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

Status SequentialWriter::Append(std::span<const uint8_t> bytes) {
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

Status SequentialWriter::StoreChunk(uint32_t index, const std::vector<uint8_t>& data) {
  chunk_hashes_.push_back(ChunkHash(data.data(), data.size()));
  if (chunk_hashes_.size() != uint64_t{index} + 1) return MakeError(Errc::kInternal, "chunks stored out of order");
  const bool try_zstd = compression_.ShouldTry();
  GS_ASSIGN_OR_RETURN(auto stored, store_->WriteChunk(digest_, index, data, encoder_, try_zstd));
  compression_.Record(try_zstd, stored.compressed);
  stored_bytes_ += stored.bytes;
  return OkStatus();
}

Status SequentialWriter::FlushTail() {
  if (buf_.empty()) return OkStatus();
  GS_RETURN_IF_ERROR(StoreChunk(next_index_++, buf_));
  buf_.clear();
  return OkStatus();
}

Status SequentialWriter::Commit() {
  if (done_) return MakeError(Errc::kInternal, "blob " + digest_.str() + ": committed twice");
  done_ = true;
  if (written_ != size_) {
    store_->Queue({KvOp{Space::kPartials, DigestKey(digest_), std::nullopt}});
    return MakeError(Errc::kCorrupt, "blob " + digest_.str() + ": got " + std::to_string(written_) +
                                         " bytes, its manifest entry declares " + std::to_string(size_));
  }
  GS_RETURN_IF_ERROR(FlushTail());
  auto got = whole_.Finish();
  if (got != digest_) {
    store_->Queue({KvOp{Space::kPartials, DigestKey(digest_), std::nullopt}});
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

v1::PartialRecord SequentialWriter::MakePartial(bool with_tail) const {
  v1::PartialRecord rec;
  rec.set_size(size_);
  rec.set_chunk_size(chunk_size_);
  rec.set_durable_bytes(written_ - (with_tail ? 0 : buf_.size()));
  for (auto& h : chunk_hashes_) rec.add_chunk_hash(h);
  rec.set_media_type(media_type_);
  if (with_tail) rec.set_tail(buf_.data(), buf_.size());
  return rec;
}

Status SequentialWriter::Suspend() {
  if (done_) return OkStatus();
  done_ = true;
  if (written_ == 0) return OkStatus();
  store_->Queue({KvOp{Space::kPartials, DigestKey(digest_), MakePartial(/*with_tail=*/true).SerializeAsString()}});
  return OkStatus();
}

Status SequentialWriter::Checkpoint() {
  if (done_) return MakeError(Errc::kInternal, "blob " + digest_.str() + ": checkpoint after commit");
  if (chunk_hashes_.empty()) return OkStatus();
  // Whole chunks only: the chunk being filled keeps changing (and a tail in the record would
  // be rewritten at every checkpoint).
  store_->Queue({KvOp{Space::kPartials, DigestKey(digest_), MakePartial(/*with_tail=*/false).SerializeAsString()}});
  return OkStatus();
}

Status SequentialWriter::Abandon() {
  if (done_) return OkStatus();
  done_ = true;
  store_->Queue({KvOp{Space::kPartials, DigestKey(digest_), std::nullopt}});
  return OkStatus();
}

}  // namespace gapsync::store
