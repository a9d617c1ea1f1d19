// Where each blob's pieces and chunks are in a release torrent. Pure arithmetic: no libtorrent.
//
// One torrent per release: file i = blob i (the release's blobs in manifest order, without
// duplicates and without empty blobs), each followed by a pad file up to the next piece boundary
// (except the last). A store chunk is a whole number of pieces (kPieceSize, 128 KiB, of a 1 MiB
// chunk: small pieces are forwarded sooner; see docs/benchmarks.md). Pad blocks are never sent.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proto/digest.h"

namespace gapsync::transport {

struct BlobSpec {
  BlobDigest digest;
  uint64_t size = 0;
  std::string media_type;
};

// Torrent piece size for a store chunk of 1 MiB or more (smaller chunks: one piece per chunk).
inline constexpr uint32_t kPieceSize = 128u << 10;
// What a peer asks for at a time (libtorrent's default block size).
inline constexpr uint32_t kBlockSize = 16u << 10;

struct TorrentLayout {
  uint32_t piece_size = 0;
  uint32_t chunk_size = 0;                // the store's; a whole number of pieces
  std::vector<BlobSpec> blobs;            // the torrent's files, in order (no empty or repeated blob)
  std::vector<uint32_t> first_piece;      // per blob
  std::vector<uint32_t> first_chunk;      // per blob: ordinal of its first chunk in the release
  uint32_t num_pieces = 0;
  uint32_t num_chunks = 0;
  uint64_t total_bytes = 0;               // sum of blob sizes (what "100 %" means)

  // `blobs` as listed by a release; empty and repeated blobs are left out. `piece_size` 0: the
  // default for the chunk size (kPieceSize when it divides it, else the chunk size).
  static TorrentLayout Make(const std::vector<BlobSpec>& blobs, uint32_t chunk_size, uint32_t piece_size = 0);
  uint32_t pieces_of(size_t blob) const;
  uint32_t chunks_of(size_t blob) const;
  uint32_t pieces_per_chunk() const { return chunk_size / piece_size; }
  size_t blob_of_piece(uint32_t piece) const;
  // The chunk holding `piece`: its index in the piece's blob, and its ordinal in the release.
  uint32_t chunk_in_blob(uint32_t piece) const;
  uint32_t chunk_ordinal(uint32_t piece) const;
  // The first piece of the chunk holding `piece`, and the number of pieces in that chunk.
  uint32_t first_piece_of_chunk(uint32_t piece) const;
  uint32_t pieces_in_chunk(uint32_t piece) const;
  // Bytes of blob data in chunk `chunk` of blob `blob`.
  uint32_t chunk_len(size_t blob, uint32_t chunk) const;
  // A piece's size in the torrent: piece_size, with the padding after its blob's data, except the
  // torrent's very last piece.
  uint32_t piece_len(uint32_t piece) const;
  // Bytes of blob data (not padding) in a piece.
  uint32_t data_len(uint32_t piece) const;
  // Blocks a peer asks for of a piece: those holding blob data (pad blocks are never asked for).
  uint32_t blocks_asked(uint32_t piece) const { return (data_len(piece) + kBlockSize - 1) / kBlockSize; }
};

}  // namespace gapsync::transport
