#include "transport/job_thread.h"

#include <sys/resource.h>
#include <unistd.h>

namespace gapsync::transport {

JobThread::JobThread(int nice) { thread_ = std::thread([this, nice] { Loop(nice); }); }

bool JobThread::Submit(std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    if (stop_) return false;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

void JobThread::Stop(bool drain) {
  {
    std::lock_guard lock(mu_);
    if (!stop_) {
      stop_ = true;
      drain_ = drain;
      if (!drain) jobs_.clear();
    }
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void JobThread::Loop(int nice) {
  role_.Bind();
  if (nice != 0) (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice);
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty() || (stop_ && !drain_)) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

}  // namespace gapsync::transport
