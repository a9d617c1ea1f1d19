// Internal: the key-value layer the chunked blob store runs on. RocksDB in production, a map in
// tests. Not part of the store's public interface.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/error.h"

namespace gapsync::store {

enum class Space { kChunks, kBlobs, kPartials, kReleases, kPending };

struct KvOp {
  Space space;
  std::string key;
  std::optional<std::string> value;  // nullopt: delete
};

class Kv {
 public:
  virtual ~Kv() = default;
  virtual Result<std::optional<std::string>> Get(Space space, std::string_view key) = 0;
  // Chunk writes are cheap and not durable until FlushChunks() returns. The stored value is
  // `head` followed by `body` (two parts, so callers need not copy them together).
  virtual Status PutChunk(std::string_view key, std::string_view head, std::string_view body) = 0;
  virtual Status FlushChunks() = 0;
  // One atomic, durable batch.
  virtual Status Commit(const std::vector<KvOp>& ops) = 0;
  // Calls fn for every key with `prefix` in key order until fn returns false.
  virtual Status Scan(Space space, std::string_view prefix,
                      const std::function<bool(std::string_view key, std::string_view value)>& fn) = 0;
  // The first key >= `from` in `space`, if any.
  virtual Result<std::optional<std::string>> FirstKeyAtOrAfter(Space space, std::string_view from) = 0;
  // Deletes chunk keys in [begin, end) and reclaims space eventually.
  virtual Status DeleteChunkRange(std::string_view begin, std::string_view end) = 0;
  // Reclaims space after deletions (may be a no-op).
  virtual Status Compact() = 0;
};

std::unique_ptr<Kv> NewMemoryKv();
Result<std::unique_ptr<Kv>> OpenRocksDbKv(const std::string& path);

}  // namespace gapsync::store
