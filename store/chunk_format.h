// Internal: how the store lays out its keys and chunk values (docs/ARCHITECTURE.md, "The store").
//
// Keys: chunk = raw digest (32 bytes) + chunk index (4 bytes, big-endian); blob and partial
// records = raw digest; release = app + '\0' + version.
// Chunk value = one codec byte (0 = plain, 1 = zstd) + payload.
#pragma once

#include <zstd.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proto/digest.h"
#include "proto/error.h"
#include "proto/ids.h"

namespace gapsync::store {

inline constexpr uint8_t kCodecPlain = 0;
inline constexpr uint8_t kCodecZstd = 1;

std::string DigestKey(const BlobDigest& d);
std::string ChunkKey(const BlobDigest& d, uint32_t index);
// Just past the last chunk key of `d`.
std::string ChunkRangeEnd(const BlobDigest& d);
std::string ReleaseKey(const ReleaseId& id);

// The per-chunk check: XXH3-128 of the plain bytes (16 bytes, big-endian). Fast enough to cost
// nothing next to SHA-256 and the disk; the whole blob is checked against its SHA-256 digest on
// write and by fsck.
std::string ChunkHash(const uint8_t* data, size_t n);

// Pieces (chunks) of a `size`-byte blob, and the length of piece `index`.
inline uint64_t PieceCount(uint64_t size, uint64_t chunk_size) { return (size + chunk_size - 1) / chunk_size; }
inline uint64_t PieceLength(uint64_t size, uint64_t chunk_size, uint64_t index) {
  return std::min<uint64_t>(chunk_size, size - index * chunk_size);
}

// "bytes B..E", for messages.
std::string ByteRange(uint64_t begin, uint64_t len);

// Encodes chunks the way every chunk is stored: a codec byte and the payload, zstd (level 1: most
// of what pays, at a fraction of level 3's cost) only where it saves at least 1/8 of the bytes.
// Keeps its compression context and buffer; one thread at a time.
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
  ~ChunkEncoder();
  Encoded Encode(std::span<const uint8_t> data, bool try_zstd);

 private:
  ZSTD_CCtx* cctx_ = nullptr;
  std::string encoded_;
};

// A stored chunk value back to its `expect` plain bytes; kCorrupt naming `where` otherwise.
Status DecodeChunk(std::string_view value, uint64_t expect, std::vector<uint8_t>& plain, const std::string& where);

// Whether to try zstd on a blob's next chunk: never for media types that are compressed already,
// and not after two chunks in a row where it did not pay.
struct CompressionTries {
  static constexpr int kMaxMisses = 2;
  bool enabled = false;
  int misses = 0;
  bool ShouldTry() const { return enabled && misses < kMaxMisses; }
  void Record(bool tried, bool paid) {
    if (tried) misses = paid ? 0 : misses + 1;
  }
};

}  // namespace gapsync::store
