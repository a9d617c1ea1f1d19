#include "tests/store/fault_injection_kv.h"

#include <random>
#include <vector>

namespace gapsync::store {

void FaultDisk::CrashAfter(int64_t n) {
  std::lock_guard lock(mu_);
  crash_after_ = durable_ops_ + n;
}

void FaultDisk::Crash(Loss loss, uint32_t seed) {
  std::lock_guard lock(mu_);
  CrashLocked(loss, seed);
}

void FaultDisk::CrashLocked(Loss loss, uint32_t seed) {
  if (crashed_) return;
  crashed_ = true;
  if (loss == Loss::kSomeUnflushedSurvive) {
    std::mt19937 rng(seed);
    for (auto& [k, v] : unflushed_) {
      if (rng() % 2) durable_[static_cast<size_t>(Space::kChunks)][k] = v;
    }
  }
  unflushed_.clear();
}

bool FaultDisk::crashed() const {
  std::lock_guard lock(mu_);
  return crashed_;
}

int64_t FaultDisk::durable_ops() const {
  std::lock_guard lock(mu_);
  return durable_ops_;
}

void FaultDisk::FailDurableOpAfter(int64_t n) {
  std::lock_guard lock(mu_);
  fail_at_ = durable_ops_ + n;
}

bool FaultDisk::BeginDurableOpLocked() {
  if (crashed_) return false;
  if (crash_after_ >= 0 && durable_ops_ >= crash_after_) {
    CrashLocked(Loss::kAllUnflushedLost, 0);
    return false;
  }
  if (fail_at_ >= 0 && durable_ops_ >= fail_at_) {
    fail_at_ = -1;
    return false;
  }
  ++durable_ops_;
  return true;
}

class FaultInjectionKv final : public Kv {
 public:
  FaultInjectionKv(FaultDisk& disk, uint64_t generation) : disk_(disk), generation_(generation) {}

  Result<std::optional<std::string>> Get(Space space, std::string_view key) override {
    std::lock_guard lock(disk_.mu_);
    GS_RETURN_IF_ERROR(Alive());
    if (space == Space::kChunks) {
      auto u = disk_.unflushed_.find(std::string(key));
      if (u != disk_.unflushed_.end()) return std::optional<std::string>(u->second);
    }
    auto& m = Map(space);
    auto it = m.find(std::string(key));
    if (it == m.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Status PutChunk(std::string_view key, std::string_view head, std::string_view body) override {
    std::lock_guard lock(disk_.mu_);
    GS_RETURN_IF_ERROR(Alive());
    std::string value(head);
    value.append(body);
    disk_.unflushed_[std::string(key)] = std::move(value);
    return OkStatus();
  }
  Status FlushChunks() override {
    std::lock_guard lock(disk_.mu_);
    GS_RETURN_IF_ERROR(Alive());
    if (!disk_.BeginDurableOpLocked()) return Failed("flushing chunks");
    for (auto& [k, v] : disk_.unflushed_) Map(Space::kChunks)[k] = std::move(v);
    disk_.unflushed_.clear();
    return OkStatus();
  }
  Status Commit(const std::vector<KvOp>& ops) override {
    std::lock_guard lock(disk_.mu_);
    GS_RETURN_IF_ERROR(Alive());
    if (!disk_.BeginDurableOpLocked()) return Failed("committing a batch");
    for (const auto& op : ops) {
      if (op.space == Space::kChunks) disk_.unflushed_.erase(op.key);  // (the store never does this)
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
      std::lock_guard lock(disk_.mu_);
      GS_RETURN_IF_ERROR(Alive());
      for (const auto& [k, v] : View(space)) {
        if (k.starts_with(prefix)) copy.emplace_back(k, v);
      }
    }
    for (const auto& [k, v] : copy) {
      if (!fn(k, v)) break;
    }
    return OkStatus();
  }
  Result<std::optional<std::string>> FirstKeyAtOrAfter(Space space, std::string_view from) override {
    std::lock_guard lock(disk_.mu_);
    GS_RETURN_IF_ERROR(Alive());
    const auto view = View(space);
    auto it = view.lower_bound(std::string(from));
    if (it == view.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->first);
  }
  Status DeleteChunkRange(std::string_view begin, std::string_view end) override {
    std::lock_guard lock(disk_.mu_);
    GS_RETURN_IF_ERROR(Alive());
    if (!disk_.BeginDurableOpLocked()) return Failed("deleting chunks");
    auto& m = Map(Space::kChunks);
    m.erase(m.lower_bound(std::string(begin)), m.lower_bound(std::string(end)));
    auto& u = disk_.unflushed_;
    u.erase(u.lower_bound(std::string(begin)), u.lower_bound(std::string(end)));
    return OkStatus();
  }
  Status Compact() override {
    std::lock_guard lock(disk_.mu_);
    return Alive();
  }

 private:
  Status Alive() const {
    if (disk_.crashed_ || disk_.generation_ != generation_) return MakeError(Errc::kIo, "simulated crash: the store is gone");
    return OkStatus();
  }
  Status Failed(const std::string& what) const {
    return MakeError(Errc::kIo, disk_.crashed_ ? "simulated crash while " + what : "injected I/O error while " + what);
  }
  std::map<std::string, std::string>& Map(Space s) { return disk_.durable_[static_cast<size_t>(s)]; }
  // What a read sees: durable state, chunks overlaid with unflushed writes.
  std::map<std::string, std::string> View(Space s) {
    auto view = Map(s);
    if (s == Space::kChunks) {
      for (const auto& [k, v] : disk_.unflushed_) view[k] = v;
    }
    return view;
  }

  FaultDisk& disk_;
  uint64_t generation_;
};

std::unique_ptr<Kv> FaultDisk::Open() {
  std::lock_guard lock(mu_);
  // Without a crash the last Kv was closed cleanly, and RocksDB flushes at close.
  for (auto& [k, v] : unflushed_) durable_[static_cast<size_t>(Space::kChunks)][k] = std::move(v);
  unflushed_.clear();
  crashed_ = false;
  crash_after_ = -1;
  fail_at_ = -1;
  return std::make_unique<FaultInjectionKv>(*this, ++generation_);
}

}  // namespace gapsync::store
