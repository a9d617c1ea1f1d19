// A thread of its own that runs jobs one at a time, in the order they were submitted.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "transport/thread_check.h"

namespace gapsync::transport {

class JobThread {
 public:
  // `nice`: the thread's scheduling priority relative to the process (0: the same; 10: below it).
  explicit JobThread(int nice = 0);
  ~JobThread() { Stop(/*drain=*/true); }
  JobThread(const JobThread&) = delete;
  JobThread& operator=(const JobThread&) = delete;

  // Any thread. False (and the job dropped) after Stop().
  bool Submit(std::function<void()> job);
  // Any thread but this one: runs what is queued (drain) or drops it (the job under way
  // finishes either way), then joins. Idempotent.
  void Stop(bool drain);
  // The role only this thread holds: assert it in code that must run here.
  const ThreadRole& role() const { return role_; }

 private:
  void Loop(int nice);
  ThreadRole role_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;  // mu_
  bool stop_ = false;                       // mu_
  bool drain_ = true;                       // mu_
  std::thread thread_;
};

}  // namespace gapsync::transport
