#include "agent/node/ingest_jobs.h"

#include <spdlog/spdlog.h>

#include "agent/node/local_api_server.h"

namespace asio = boost::asio;

namespace gapsync::agent {
namespace {

v1::ApiResponse NotStarted(const v1::IngestRequest& req) {
  return ApiError(MakeError(Errc::kIncomplete, "ingest of " + req.bundle_dir() + " not started: the agent is stopping; run it again"));
}

}  // namespace

IngestJobs::IngestJobs(asio::io_context& loop, store::BlobStore& store, const std::vector<TrustedKey>& trusted,
                       IngestHooks hooks, std::function<void(const LoadedBundle*)> after, std::shared_ptr<spdlog::logger> log)
    : loop_(loop), store_(store), trusted_(trusted), hooks_(std::move(hooks)), after_(std::move(after)), log_(std::move(log)) {}

IngestJobs::~IngestJobs() { Shutdown(); }

void IngestJobs::Shutdown() {
  Stop();
  if (thread_.joinable()) thread_.join();
}

void IngestJobs::Submit(const v1::IngestRequest& request, Reply reply) {
  if (stopping_) return reply(NotStarted(request));
  {
    std::lock_guard lock(mu_);
    queue_.emplace_back(request, std::move(reply));
  }
  cv_.notify_one();
  if (!thread_.joinable()) {
    guard_.emplace(asio::make_work_guard(loop_));  // the loop runs until the last answer is posted
    thread_ = std::thread([this] { Loop(); });
  }
}

std::optional<v1::IngestProgress> IngestJobs::Progress() const {
  std::lock_guard lock(progress_mu_);
  if (!progress_) return std::nullopt;
  auto p = *progress_;
  p.set_bytes_done(bytes_.load());
  return p;
}

void IngestJobs::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

void IngestJobs::Loop() {
  for (;;) {
    std::pair<v1::IngestRequest, Reply> job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) break;  // stopping, nothing left
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    v1::ApiResponse response = stopping_ ? NotStarted(job.first) : Run(job.first);
    asio::post(loop_, [reply = std::move(job.second), response = std::move(response)] { reply(response); });
  }
  asio::post(loop_, [this] { guard_.reset(); });
}

v1::ApiResponse IngestJobs::Run(const v1::IngestRequest& req) {
  log_->info("ingest {}: start", req.bundle_dir());
  auto bundle = LoadBundle(req.bundle_dir(), trusted_);
  if (!bundle.ok()) {
    log_->error("ingest {}: {}", req.bundle_dir(), bundle.error().message);
    return ApiError(bundle.error());
  }
  uint64_t total = 0;
  for (const auto& b : bundle->manifest.blobs()) total += b.size();
  {
    std::lock_guard lock(progress_mu_);
    progress_.emplace();
    progress_->set_bundle(req.bundle_dir());
    progress_->set_release(bundle->manifest.release().app() + "@" + bundle->manifest.release().version());
    progress_->set_bytes_total(total);
    bytes_ = 0;
  }
  IngestOptions o;
  o.quiet = true;
  o.allow_older = req.allow_older();
  o.source = ReleaseSource::kLocalApi;
  o.cancel = &stopping_;
  o.bytes_done = &bytes_;
  o.hooks = hooks_;
  IngestResult result;
  Status st = Ingest(bundle.value(), store_, o, result);
  {
    std::lock_guard lock(progress_mu_);
    progress_.reset();
  }
  v1::ApiResponse r;
  *r.mutable_ingest() = ReportOf(result, st);
  const std::string summary = SummaryOf(r.ingest());
  if (!st.ok()) {
    r.set_exit_code(st.error().code == Errc::kIncomplete ? 3 : 1);
    r.set_error(st.error().message);
    log_->error("ingest {}: {}", req.bundle_dir(), st.error().message);
  } else {
    log_->info("ingest {}: {}", req.bundle_dir(), summary);
  }
  if (after_) after_(st.ok() && result.complete ? &bundle.value() : nullptr);
  return r;
}

}  // namespace gapsync::agent
