// PieceStore: the chunks of blobs that arrive in any order from peers. What the data plane sees
// of the store; implemented by every BlobStore (store/blob_store.h).
//
// A blob being assembled has a partial record listing which chunks ("pieces") it holds; piece i is
// bytes [i*chunk_size(), min(size, (i+1)*chunk_size())). Pieces become durable at the next Sync();
// a crash loses only pieces stored after the last Sync(). A blob becomes visible only after
// CompletePieces() checked its SHA-256 against its digest and a Sync() made that durable.
// Threading: every call is thread-safe, and may run concurrently with any other call of the store.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "proto/digest.h"
#include "proto/error.h"

namespace gapsync::store {

struct PiecesHeld {
  bool visible = false;      // the blob is complete and visible (every piece is held)
  std::vector<bool> pieces;  // per piece: held
};

class PieceStore {
 public:
  virtual ~PieceStore() = default;

  virtual uint32_t chunk_size() const = 0;

  // Stores piece `index` (exactly its bytes, already verified by the caller against the piece
  // hash it trusts). Idempotent. kInvalidArgument on a wrong index or length; a blob that is
  // already visible: OK, nothing written. A blob with a sequential partial record (a stopped
  // ingest) keeps the chunks that record holds, as pieces.
  virtual Status PutPiece(const BlobDigest& digest, uint64_t size, const std::string& media_type, uint32_t index,
                          std::span<const uint8_t> bytes) = 0;
  // Which pieces of the `size`-byte blob the store holds (every one for a visible blob; those of a
  // partial record, sequential or piece-wise, when its size matches; none otherwise).
  virtual Result<PiecesHeld> HeldPieces(const BlobDigest& digest, uint64_t size) = 0;
  // Every piece held: reads them in order and checks the blob's SHA-256. OK: the blob is visible
  // after the next Sync() (OK at once for a blob already visible). kIncomplete when pieces are
  // missing; kCorrupt (naming the digest the bytes hash to) when they do not match, and the held
  // pieces are forgotten.
  virtual Status CompletePieces(const BlobDigest& digest) = 0;
  // The plain bytes of piece `index` of a visible blob or of a held piece of a blob being
  // assembled, verified against the chunk hash recorded when it was stored.
  virtual Status ReadPiece(const BlobDigest& digest, uint32_t index, std::vector<uint8_t>& out) = 0;

  // The durability point: chunks stored so far are flushed, then the records that make them
  // count are committed. One Sync() at a time; it may take seconds on a busy disk.
  virtual Status Sync() = 0;
};

}  // namespace gapsync::store
