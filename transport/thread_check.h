// Thread ownership, checked: state that one thread owns is touched only on that thread. A role is
// bound by the thread that holds it (at its start); GS_ASSERT_ON(role) in every function that
// must run there aborts a debug build (the sanitizer builds of tests/run.sh) when it runs
// elsewhere. Release builds compile the check away.
#pragma once

#include <atomic>
#include <cassert>
#include <thread>

namespace gapsync::transport {

class ThreadRole {
 public:
  void Bind() { owner_.store(std::this_thread::get_id(), std::memory_order_release); }
  bool IsCurrent() const { return owner_.load(std::memory_order_acquire) == std::this_thread::get_id(); }

 private:
  std::atomic<std::thread::id> owner_{};
};

#define GS_ASSERT_ON(role) assert((role).IsCurrent() && "called off the thread that owns this state")

}  // namespace gapsync::transport
