// SHA-256 on a second thread, for loops that hash and write the same buffers: the caller hands a
// buffer over, does its own work on the same (read-only) bytes, then waits before reusing them.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

#include "proto/sha256.h"

namespace gapsync::agent {

class ParallelSha256 {
 public:
  ParallelSha256();
  ~ParallelSha256();
  ParallelSha256(const ParallelSha256&) = delete;
  ParallelSha256& operator=(const ParallelSha256&) = delete;

  // Starts hashing [data, data+len) in the background. REQUIRES: no Update pending (Wait()ed).
  // The bytes must stay valid and unchanged until Wait() returns.
  void Update(const uint8_t* data, size_t len);
  // Blocks until the pending Update is hashed.
  void Wait();
  // Waits, returns the digest and resets for the next blob.
  BlobDigest Finish();

 private:
  void Loop();
  Sha256 hash_;
  std::mutex mu_;
  std::condition_variable cv_;
  const uint8_t* data_ = nullptr;
  size_t len_ = 0;
  bool pending_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace gapsync::agent
