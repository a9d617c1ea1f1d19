// Verified pieces of one release torrent, gathered into whole store chunks. Pure: no libtorrent,
// no store; the disk I/O layer (store_disk_io.h) feeds it and stores what it hands back.
//
// A chunk is a whole number of pieces (torrent_layout.h). A piece that passed its hash check is
// copied into the buffer of its chunk; when the chunk's last piece arrives the whole chunk is
// returned, to be stored as one (PieceStore::PutPiece), and its buffer freed. Memory: one buffer
// per chunk in progress.
// Threading: one thread at a time (the disk thread).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "transport/torrent_layout.h"

namespace gapsync::transport {

class PieceAssembler {
 public:
  // `layout` must outlive the assembler.
  explicit PieceAssembler(const TorrentLayout& layout) : layout_(layout) {}

  struct Chunk {
    size_t blob = 0;      // index in the layout
    uint32_t index = 0;   // chunk index inside the blob
    std::vector<uint8_t> bytes;  // exactly the chunk's data bytes
  };
  struct Added {
    bool duplicate = false;     // the piece was held already: nothing changed
    bool started_chunk = false; // the first piece of a chunk of several (the others are wanted next)
    std::optional<Chunk> whole; // the chunk is complete: its bytes (no longer held here)
  };

  // Adds the bytes of a verified piece: at least its data_len() bytes (padding after them is
  // ignored). REQUIRES: piece < layout.num_pieces.
  Added Add(uint32_t piece, std::span<const char> bytes);
  // The data bytes of `piece` if it waits here in an incomplete chunk; empty otherwise.
  std::span<const uint8_t> Held(uint32_t piece) const;
  // Chunks being gathered (for memory accounting and tests).
  size_t chunks_in_progress() const { return chunks_.size(); }

 private:
  struct Gathering {
    std::vector<uint8_t> bytes;  // the chunk's data bytes
    std::vector<bool> parts;     // per piece of the chunk: copied in
    uint32_t missing = 0;
  };
  const TorrentLayout& layout_;
  std::map<uint32_t, Gathering> chunks_;  // by chunk ordinal in the release
};

}  // namespace gapsync::transport
