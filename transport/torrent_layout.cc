#include "transport/torrent_layout.h"

#include <algorithm>
#include <set>

namespace gapsync::transport {

TorrentLayout TorrentLayout::Make(const std::vector<BlobSpec>& blobs, uint32_t chunk_size, uint32_t piece_size) {
  TorrentLayout l;
  l.chunk_size = chunk_size;
  if (piece_size == 0) piece_size = chunk_size > kPieceSize && chunk_size % kPieceSize == 0 ? kPieceSize : chunk_size;
  l.piece_size = piece_size;
  std::set<BlobDigest> seen;
  for (const auto& b : blobs) {
    if (b.size == 0 || !seen.insert(b.digest).second) continue;
    l.blobs.push_back(b);
    l.first_piece.push_back(l.num_pieces);
    l.first_chunk.push_back(l.num_chunks);
    l.num_pieces += static_cast<uint32_t>((b.size + piece_size - 1) / piece_size);
    l.num_chunks += static_cast<uint32_t>((b.size + chunk_size - 1) / chunk_size);
    l.total_bytes += b.size;
  }
  return l;
}

uint32_t TorrentLayout::pieces_of(size_t blob) const {
  return static_cast<uint32_t>((blobs[blob].size + piece_size - 1) / piece_size);
}

uint32_t TorrentLayout::chunks_of(size_t blob) const {
  return static_cast<uint32_t>((blobs[blob].size + chunk_size - 1) / chunk_size);
}

size_t TorrentLayout::blob_of_piece(uint32_t piece) const {
  auto it = std::upper_bound(first_piece.begin(), first_piece.end(), piece);
  return static_cast<size_t>(it - first_piece.begin()) - 1;
}

uint32_t TorrentLayout::chunk_in_blob(uint32_t piece) const {
  return (piece - first_piece[blob_of_piece(piece)]) / pieces_per_chunk();
}

uint32_t TorrentLayout::chunk_ordinal(uint32_t piece) const {
  return first_chunk[blob_of_piece(piece)] + chunk_in_blob(piece);
}

uint32_t TorrentLayout::first_piece_of_chunk(uint32_t piece) const {
  const size_t b = blob_of_piece(piece);
  return first_piece[b] + chunk_in_blob(piece) * pieces_per_chunk();
}

uint32_t TorrentLayout::pieces_in_chunk(uint32_t piece) const {
  const size_t b = blob_of_piece(piece);
  return (chunk_len(b, chunk_in_blob(piece)) + piece_size - 1) / piece_size;
}

uint32_t TorrentLayout::chunk_len(size_t blob, uint32_t chunk) const {
  return static_cast<uint32_t>(std::min<uint64_t>(chunk_size, blobs[blob].size - uint64_t{chunk} * chunk_size));
}

uint32_t TorrentLayout::piece_len(uint32_t piece) const {
  if (piece + 1 < num_pieces) return piece_size;
  return data_len(piece);  // the last piece has no pad after it
}

uint32_t TorrentLayout::data_len(uint32_t piece) const {
  const size_t b = blob_of_piece(piece);
  const uint64_t begin = uint64_t{piece - first_piece[b]} * piece_size;
  return static_cast<uint32_t>(std::min<uint64_t>(piece_size, blobs[b].size - begin));
}

}  // namespace gapsync::transport
