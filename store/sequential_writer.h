// Internal: the BlobWriter of a ChunkedStore. A blob streamed in order (ingest): bytes are cut into
// chunks as they come, each hashed (XXH3-128), maybe compressed and written; the whole blob is
// hashed (SHA-256) on the way and checked at Commit(). Progress is recorded as a sequential
// partial record (the durable prefix and its chunk hashes, and the last partial chunk as "tail")
// at Checkpoint()/Suspend(), so that a later writer for the same blob resumes from it.
// One thread at a time (the store allows one BlobWriter at a time).
#pragma once

#include <string>
#include <vector>

#include "proto/sha256.h"
#include "proto/store.pb.h"
#include "store/blob_store.h"
#include "store/chunk_format.h"

namespace gapsync::store {

class ChunkedStore;

class SequentialWriter final : public BlobWriter {
 public:
  SequentialWriter(ChunkedStore* store, BlobDigest digest, uint64_t size, std::string media_type, uint32_t chunk_size,
                   bool compress);

  // Continues from a sequential partial record: its chunks are read back and verified, the whole
  // blob's hash brought up to its end. kCorrupt when they do not verify (start over then).
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

}  // namespace gapsync::store
