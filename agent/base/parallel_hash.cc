#include "agent/base/parallel_hash.h"

namespace gapsync::agent {

ParallelSha256::ParallelSha256() : thread_([this] { Loop(); }) {}

ParallelSha256::~ParallelSha256() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ParallelSha256::Update(const uint8_t* data, size_t len) {
  {
    std::lock_guard lock(mu_);
    data_ = data;
    len_ = len;
    pending_ = true;
  }
  cv_.notify_all();
}

void ParallelSha256::Wait() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return !pending_; });
}

BlobDigest ParallelSha256::Finish() {
  Wait();
  return hash_.Finish();  // the worker is idle: hash_ is ours until the next Update
}

void ParallelSha256::Loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || pending_; });
    if (stop_) return;
    const uint8_t* data = data_;
    const size_t len = len_;
    lock.unlock();
    hash_.Update(data, len);
    lock.lock();
    pending_ = false;
    cv_.notify_all();
  }
}

}  // namespace gapsync::agent
