// A Kv for crash tests, in the spirit of RocksDB's fault-injection file system: what the store
// writes is kept apart in what would survive a power cut (the Disk) and what would not yet. Chunk
// writes (PutChunk) survive only once FlushChunks() returned, as with RocksDB's chunks written
// without the WAL; Commit() and DeleteChunkRange() are durable when they return, all or nothing.
//
// A simulated crash (Disk::Crash) makes every later call of the Kv fail and drops every chunk
// write not flushed (or, in kSomeUnflushedSurvive, a random part of them: what a background flush
// might have saved); a new Kv over the same Disk then sees exactly what survived. A Disk can also
// crash by itself after a given number of durable operations (CrashAfter), so that a test can cut
// the power at every point of a workload, between any two of the store's durable steps.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "store/kv.h"

namespace gapsync::store {

class FaultDisk {
 public:
  enum class Loss { kAllUnflushedLost, kSomeUnflushedSurvive };

  // The power goes after `n` more durable operations (FlushChunks, Commit, DeleteChunkRange)
  // succeed: the next one fails and has no effect, and so does every later call.
  void CrashAfter(int64_t n);
  // The power goes now.
  void Crash(Loss loss = Loss::kAllUnflushedLost, uint32_t seed = 0);
  bool crashed() const;
  // Durable operations that succeeded since the Disk was made.
  int64_t durable_ops() const;
  // After `n` more durable operations succeed, the next one fails with kIo and has no effect,
  // without a crash (a transient I/O error: the store must keep everything for its next Sync).
  void FailDurableOpAfter(int64_t n);

  // A Kv over what survived (the power is back), or over everything when the last Kv was closed
  // without a crash. The Kv opened before fails every call from now on.
  std::unique_ptr<Kv> Open();

 private:
  friend class FaultInjectionKv;
  using Maps = std::array<std::map<std::string, std::string>, 5>;
  // Called by the Kv for each durable operation with mu_ held: false when it must fail.
  bool BeginDurableOpLocked();
  void CrashLocked(Loss loss, uint32_t seed);

  mutable std::mutex mu_;
  Maps durable_;
  // Chunk writes not flushed yet (reads see them over durable_).
  std::map<std::string, std::string> unflushed_;
  bool crashed_ = false;
  int64_t crash_after_ = -1;  // -1: never by itself
  int64_t durable_ops_ = 0;
  int64_t fail_at_ = -1;  // -1: none
  uint64_t generation_ = 0;  // which Kv is the live one
};

}  // namespace gapsync::store
