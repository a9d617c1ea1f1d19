// Ingests the local API asks for: one at a time (the store has one writer), on a thread of their
// own, in the order they were asked for. A stop ends the running one soon, keeping its progress
// (exit 3, "stopped before it finished"), and answers the queued ones "not started".
#pragma once

#include <utility>  // before asio: Boost 1.74 + g++ 12 need std::exchange declared
#include <boost/asio.hpp>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "agent/bundle/bundle.h"
#include "agent/ingest/ingest.h"
#include "proto/agent.pb.h"
#include "store/blob_store.h"

namespace spdlog {
class logger;
}

namespace gapsync::agent {

class IngestJobs {
 public:
  using Reply = std::function<void(v1::ApiResponse)>;
  // `after`: runs on the ingest thread after each ingest, before its answer is posted (`ingested`
  // is the bundle when the release is now complete, else null); what it posts to the loop runs
  // before the answer. `hooks`: tests' crash and pause points.
  IngestJobs(boost::asio::io_context& loop, store::BlobStore& store, const std::vector<TrustedKey>& trusted,
             IngestHooks hooks, std::function<void(const LoadedBundle* ingested)> after,
             std::shared_ptr<spdlog::logger> log);
  ~IngestJobs();

  // Loop thread: queues an ingest; `reply` is called on the loop thread.
  void Submit(const v1::IngestRequest& request, Reply reply);
  // Any thread: the ingest under way, if any.
  std::optional<v1::IngestProgress> Progress() const;
  // Loop thread: stops the running ingest soon and answers the queued ones.
  void Stop();
  // Stops and waits for the ingest thread (not on it).
  void Shutdown();

 private:
  void Loop();
  v1::ApiResponse Run(const v1::IngestRequest& request);

  boost::asio::io_context& loop_;
  store::BlobStore& store_;
  const std::vector<TrustedKey>& trusted_;
  IngestHooks hooks_;
  std::function<void(const LoadedBundle*)> after_;
  std::shared_ptr<spdlog::logger> log_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<v1::IngestRequest, Reply>> queue_;  // mu_
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_;  // loop thread
  mutable std::mutex progress_mu_;
  std::optional<v1::IngestProgress> progress_;  // progress_mu_ (bytes_done from bytes_)
  std::atomic<uint64_t> bytes_{0};
  std::thread thread_;  // started by the first Submit
};

}  // namespace gapsync::agent
