#include "transport/piece_assembler.h"

#include <algorithm>
#include <cstring>

namespace gapsync::transport {

PieceAssembler::Added PieceAssembler::Add(uint32_t piece, std::span<const char> bytes) {
  Added out;
  const size_t b = layout_.blob_of_piece(piece);
  const uint32_t chunk = layout_.chunk_in_blob(piece);
  const uint32_t ordinal = layout_.chunk_ordinal(piece);
  const uint32_t part = piece - layout_.first_piece_of_chunk(piece);
  auto [it, fresh] = chunks_.try_emplace(ordinal);
  Gathering& g = it->second;
  if (fresh) {
    g.bytes.assign(layout_.chunk_len(b, chunk), 0);
    g.missing = layout_.pieces_in_chunk(piece);
    g.parts.assign(g.missing, false);
    out.started_chunk = g.missing > 1;
  }
  if (g.parts[part]) {
    out.duplicate = true;
    return out;
  }
  const uint32_t n = std::min<uint32_t>(layout_.data_len(piece), static_cast<uint32_t>(bytes.size()));
  std::memcpy(g.bytes.data() + size_t{part} * layout_.piece_size, bytes.data(), n);
  g.parts[part] = true;
  if (--g.missing > 0) return out;
  out.whole = Chunk{b, chunk, std::move(g.bytes)};
  chunks_.erase(it);
  return out;
}

std::span<const uint8_t> PieceAssembler::Held(uint32_t piece) const {
  auto it = chunks_.find(layout_.chunk_ordinal(piece));
  if (it == chunks_.end()) return {};
  const uint32_t part = piece - layout_.first_piece_of_chunk(piece);
  if (!it->second.parts[part]) return {};
  return std::span<const uint8_t>(it->second.bytes.data() + size_t{part} * layout_.piece_size, layout_.data_len(piece));
}

}  // namespace gapsync::transport
