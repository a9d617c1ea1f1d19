// When received pieces become durable: the store's Sync() on a thread of its own, so that the disk
// thread goes on hashing and storing while the store syncs (a sync can take seconds on a busy
// disk, and a disk thread waiting for it fills the receive buffers and throttles every peer of the
// node). A sync at least every `interval` while pieces arrive, and at once when a blob is complete:
// what waits for that blob to be durable is called after the sync that makes it so.
// Threading: every call is thread-safe; callbacks run on the sync thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "proto/error.h"
#include "store/piece_store.h"

namespace spdlog {
class logger;
}

namespace gapsync::transport {

class SyncScheduler {
 public:
  // `on_failure`: a sync failed (disk full): what was stored since the last one may not be
  // durable. Called on the sync thread, before the waiting callbacks get the error.
  SyncScheduler(store::PieceStore& store, std::chrono::milliseconds interval,
                std::function<void(const Error&)> on_failure, std::shared_ptr<spdlog::logger> log);
  ~SyncScheduler() { Stop(); }

  // Something was stored: durable within the interval.
  void Stored();
  // Something was stored that `then` waits on: a sync starts now, and `then` gets its status.
  void StoredAndWaiting(std::function<void(const Status&)> then);
  // Blocks until everything stored before the call is durable (or the scheduler stops). Not on the
  // sync thread.
  void SyncNow();
  // A last sync of what is stored, then joins. Idempotent.
  void Stop();

  uint64_t syncs() const;  // syncs done

 private:
  void Loop();
  store::PieceStore& store_;
  const std::chrono::milliseconds interval_;
  std::function<void(const Error&)> on_failure_;
  std::shared_ptr<spdlog::logger> log_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                                   // mu_
  bool dirty_ = false;                                  // mu_: stored since the last sync began
  bool soon_ = false;                                   // mu_: sync without waiting for the interval
  uint64_t started_ = 0, done_ = 0;                     // mu_
  std::vector<std::function<void(const Status&)>> waiting_;  // mu_: for the next sync
  std::thread thread_;
};

}  // namespace gapsync::transport
