#include "transport/chunk_cache.h"

#include <algorithm>

namespace gapsync::transport {

const std::vector<uint8_t>* ChunkCache::Find(const void* owner, uint32_t ordinal) const {
  for (const auto& e : entries_) {
    if (e.owner == owner && e.ordinal == ordinal) return &e.bytes;
  }
  return nullptr;
}

const std::vector<uint8_t>& ChunkCache::Insert(const void* owner, uint32_t ordinal, std::vector<uint8_t> bytes) {
  while (!entries_.empty() && entries_.size() >= capacity_) entries_.pop_front();
  entries_.push_back(Entry{owner, ordinal, std::move(bytes)});
  return entries_.back().bytes;
}

void ChunkCache::Forget(const void* owner) {
  std::erase_if(entries_, [&](const Entry& e) { return e.owner == owner; });
}

}  // namespace gapsync::transport
