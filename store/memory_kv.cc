// In-memory Kv: ordered maps, everything "durable" at once. For tests and tools.
#include <array>
#include <map>
#include <mutex>

#include "store/kv.h"

namespace gapsync::store {
namespace {

class MemoryKv final : public Kv {
 public:
  Result<std::optional<std::string>> Get(Space space, std::string_view key) override {
    std::lock_guard lock(mu_);
    auto& m = Map(space);
    auto it = m.find(std::string(key));
    if (it == m.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Status PutChunk(std::string_view key, std::string_view head, std::string_view body) override {
    std::lock_guard lock(mu_);
    std::string value(head);
    value.append(body);
    Map(Space::kChunks)[std::string(key)] = std::move(value);
    return OkStatus();
  }
  Status FlushChunks() override { return OkStatus(); }
  Status Commit(const std::vector<KvOp>& ops) override {
    std::lock_guard lock(mu_);
    for (const auto& op : ops) {
      if (op.value) {
        Map(op.space)[op.key] = *op.value;
      } else {
        Map(op.space).erase(op.key);
      }
    }
    return OkStatus();
  }
  Status Scan(Space space, std::string_view prefix,
              const std::function<bool(std::string_view, std::string_view)>& fn) override {
    std::vector<std::pair<std::string, std::string>> copy;
    {
      std::lock_guard lock(mu_);
      auto& m = Map(space);
      for (auto it = m.lower_bound(std::string(prefix)); it != m.end() && it->first.starts_with(prefix); ++it) {
        copy.emplace_back(*it);
      }
    }
    for (const auto& [k, v] : copy) {
      if (!fn(k, v)) break;
    }
    return OkStatus();
  }
  Result<std::optional<std::string>> FirstKeyAtOrAfter(Space space, std::string_view from) override {
    std::lock_guard lock(mu_);
    auto& m = Map(space);
    auto it = m.lower_bound(std::string(from));
    if (it == m.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->first);
  }
  Status DeleteChunkRange(std::string_view begin, std::string_view end) override {
    std::lock_guard lock(mu_);
    auto& m = Map(Space::kChunks);
    m.erase(m.lower_bound(std::string(begin)), m.lower_bound(std::string(end)));
    return OkStatus();
  }
  Status Compact() override { return OkStatus(); }

 private:
  std::map<std::string, std::string>& Map(Space s) { return maps_[static_cast<size_t>(s)]; }
  std::mutex mu_;
  std::array<std::map<std::string, std::string>, 5> maps_;
};

}  // namespace

std::unique_ptr<Kv> NewMemoryKv() { return std::make_unique<MemoryKv>(); }

}  // namespace gapsync::store
