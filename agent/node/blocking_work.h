// Blocking work off the agent's event loop. The loop thread owns the agent's state and only routes;
// every store call, hash and file read or write it needs runs on the worker thread here, and its
// result comes back to the loop. One worker, so that the store work of the agent (offers, release
// records, status snapshots) runs in the order it was asked for; ingests have a thread of their own
// (ingest_jobs.h).
#pragma once

#include <utility>  // before asio: Boost 1.74 + g++ 12 need std::exchange declared
#include <boost/asio.hpp>
#include <boost/asio/thread_pool.hpp>

namespace gapsync::agent {

class BlockingWork {
 public:
  explicit BlockingWork(boost::asio::io_context& loop) : loop_(loop), pool_(1) {}
  ~BlockingWork() { Stop(); }
  BlockingWork(const BlockingWork&) = delete;
  BlockingWork& operator=(const BlockingWork&) = delete;

  // Runs `work()` on the worker, then `done(result)` on the loop. The loop does not run out of
  // work while this is under way. Loop thread or any other.
  template <class Work, class Done>
  void Run(Work work, Done done) {
    boost::asio::post(pool_, [&loop = loop_, guard = boost::asio::make_work_guard(loop_), work = std::move(work),
                              done = std::move(done)]() mutable {
      auto result = work();
      boost::asio::post(loop, [done = std::move(done), result = std::move(result), guard = std::move(guard)]() mutable {
        done(std::move(result));
      });
    });
  }

  // Runs `work()` on the worker; nothing comes back to the loop.
  template <class Work>
  void Run(Work work) {
    boost::asio::post(pool_, std::move(work));
  }

  // Waits for the work under way and queued. Not on the worker.
  void Stop() { pool_.join(); }

 private:
  boost::asio::io_context& loop_;
  boost::asio::thread_pool pool_;
};

}  // namespace gapsync::agent
