// The store chunks most recently read for uploads. Peers ask for 16 KiB blocks, eight to a 128 KiB
// piece and 64 to a 1 MiB chunk; reading and verifying the chunk once for all of them is what keeps
// a seed's disk thread ahead of its uplink. First in, first out: uploads sweep through a release.
// Threading: one thread at a time (the disk thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

namespace gapsync::transport {

class ChunkCache {
 public:
  explicit ChunkCache(size_t capacity) : capacity_(capacity) {}
  // Chunk `ordinal` of the torrent `owner`, or nullptr.
  const std::vector<uint8_t>* Find(const void* owner, uint32_t ordinal) const;
  // Keeps `bytes` (dropping the oldest chunk when full) and returns them.
  const std::vector<uint8_t>& Insert(const void* owner, uint32_t ordinal, std::vector<uint8_t> bytes);
  // Drops every chunk of `owner` (its torrent is gone; another may get its address).
  void Forget(const void* owner);

 private:
  struct Entry {
    const void* owner;
    uint32_t ordinal;
    std::vector<uint8_t> bytes;
  };
  size_t capacity_;
  std::deque<Entry> entries_;
};

}  // namespace gapsync::transport
