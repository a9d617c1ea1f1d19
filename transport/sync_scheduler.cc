#include "transport/sync_scheduler.h"

#include <spdlog/spdlog.h>

namespace gapsync::transport {

SyncScheduler::SyncScheduler(store::PieceStore& store, std::chrono::milliseconds interval,
                             std::function<void(const Error&)> on_failure, std::shared_ptr<spdlog::logger> log)
    : store_(store), interval_(interval), on_failure_(std::move(on_failure)), log_(std::move(log)) {
  thread_ = std::thread([this] { Loop(); });
}

void SyncScheduler::Stored() {
  std::lock_guard lock(mu_);
  dirty_ = true;
}

void SyncScheduler::StoredAndWaiting(std::function<void(const Status&)> then) {
  {
    std::lock_guard lock(mu_);
    dirty_ = true;
    soon_ = true;
    waiting_.push_back(std::move(then));
  }
  cv_.notify_all();
}

void SyncScheduler::SyncNow() {
  std::unique_lock lock(mu_);
  dirty_ = true;
  soon_ = true;
  const uint64_t covering = started_ + 1;  // the next sync to start covers what is stored now
  cv_.notify_all();
  cv_.wait(lock, [&] { return done_ >= covering || stop_; });
}

void SyncScheduler::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();  // after a last sync of what was stored
}

uint64_t SyncScheduler::syncs() const {
  std::lock_guard lock(mu_);
  return done_;
}

void SyncScheduler::Loop() {
  for (;;) {
    std::vector<std::function<void(const Status&)>> waiting;
    bool last = false;
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, interval_, [this] { return stop_ || soon_; });
      last = stop_;
      if (!dirty_) {
        if (last) return;
        continue;
      }
      dirty_ = false;
      soon_ = false;
      ++started_;
      waiting.swap(waiting_);
    }
    const auto start = std::chrono::steady_clock::now();
    const Status st = store_.Sync();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    if (ms.count() >= 500) log_->debug("data plane: the store took {} ms to sync", ms.count());
    if (!st.ok() && on_failure_) on_failure_(st.error());
    for (auto& then : waiting) then(st);
    {
      std::lock_guard lock(mu_);
      ++done_;
    }
    cv_.notify_all();
    if (last) return;
  }
}

}  // namespace gapsync::transport
