// The sync thread of the data plane: what waits for durability is told after the sync that made it
// so, a failing sync reaches both the failure hook and every waiter, and nothing waits for the
// periodic interval when a blob is complete.
#include "transport/sync_scheduler.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <future>
#include <mutex>

#include "transport/chunk_cache.h"
#include "transport/job_thread.h"

namespace gapsync::transport {
namespace {

// A store whose Sync() counts calls and fails while `fail` is set.
class CountingStore final : public store::PieceStore {
 public:
  uint32_t chunk_size() const override { return 1 << 20; }
  Status PutPiece(const BlobDigest&, uint64_t, const std::string&, uint32_t, std::span<const uint8_t>) override {
    return OkStatus();
  }
  Result<store::PiecesHeld> HeldPieces(const BlobDigest&, uint64_t) override { return store::PiecesHeld{}; }
  Status CompletePieces(const BlobDigest&) override { return OkStatus(); }
  Status ReadPiece(const BlobDigest&, uint32_t, std::vector<uint8_t>&) override { return OkStatus(); }
  Status Sync() override {
    std::lock_guard lock(mu);
    ++syncs;
    if (fail) return MakeError(Errc::kNoSpace, "disk full");
    return OkStatus();
  }
  std::mutex mu;
  int syncs = 0;
  bool fail = false;
};

std::shared_ptr<spdlog::logger> NullLog() {
  static auto log = std::make_shared<spdlog::logger>("sync-test", std::make_shared<spdlog::sinks::null_sink_mt>());
  return log;
}

TEST(SyncSchedulerTest, AWaiterIsToldAfterTheSyncAndLongBeforeTheInterval) {
  CountingStore store;
  SyncScheduler s(store, std::chrono::hours(1), nullptr, NullLog());
  std::promise<Status> told;
  s.StoredAndWaiting([&](const Status& st) { told.set_value(st); });
  auto fut = told.get_future();
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(30)), std::future_status::ready) << "the waiter waited for the hourly sync";
  EXPECT_TRUE(fut.get().ok());
  std::lock_guard lock(store.mu);
  EXPECT_EQ(store.syncs, 1);
}

TEST(SyncSchedulerTest, SyncNowReturnsOnceWhatWasStoredIsDurable) {
  CountingStore store;
  SyncScheduler s(store, std::chrono::hours(1), nullptr, NullLog());
  s.Stored();
  s.SyncNow();
  EXPECT_GE(s.syncs(), 1u);
  {
    std::lock_guard lock(store.mu);
    EXPECT_GE(store.syncs, 1);
  }
}

TEST(SyncSchedulerTest, AFailedSyncReachesTheHookAndEveryWaiter) {
  CountingStore store;
  store.fail = true;
  std::promise<Error> hook;
  SyncScheduler s(store, std::chrono::hours(1), [&](const Error& e) { hook.set_value(e); }, NullLog());
  std::promise<Status> told;
  s.StoredAndWaiting([&](const Status& st) { told.set_value(st); });
  auto h = hook.get_future();
  auto t = told.get_future();
  ASSERT_EQ(t.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  ASSERT_EQ(h.wait_for(std::chrono::seconds(1)), std::future_status::ready) << "the hook comes before the waiters";
  EXPECT_EQ(h.get().code, Errc::kNoSpace);
  auto st = t.get();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kNoSpace);
}

TEST(SyncSchedulerTest, StopMakesWhatWasStoredDurable) {
  CountingStore store;
  {
    SyncScheduler s(store, std::chrono::hours(1), nullptr, NullLog());
    s.Stored();
  }
  std::lock_guard lock(store.mu);
  EXPECT_EQ(store.syncs, 1) << "nothing stored would need no sync; something stored needs one at the stop";
}

TEST(JobThreadTest, RunsJobsInOrderOnItsOwnThreadAndDrainsOrDropsAtStop) {
  JobThread t;
  std::vector<int> seen;
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  t.Submit([&] {  // holds the thread until the others are queued
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return open; });
  });
  for (int i = 0; i < 5; ++i) t.Submit([&, i] { seen.push_back(i); EXPECT_TRUE(t.role().IsCurrent()); });
  EXPECT_FALSE(t.role().IsCurrent());
  {
    std::lock_guard lock(mu);
    open = true;
  }
  cv.notify_all();
  t.Stop(/*drain=*/true);
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 4}));
  t.Submit([&] { seen.push_back(99); });  // after the stop: dropped
  EXPECT_EQ(seen.size(), 5u);

  JobThread dropping;
  bool ran = false;
  open = false;
  dropping.Submit([&] {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return open; });
  });
  dropping.Submit([&] { ran = true; });
  std::thread opener([&] {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  });
  dropping.Stop(/*drain=*/false);
  opener.join();
  EXPECT_FALSE(ran) << "a queued job ran although the stop dropped the queue";
}

TEST(ChunkCacheTest, KeepsTheNewestChunksAndForgetsATorrentsAll) {
  ChunkCache c(2);
  int a = 0, b = 0;
  c.Insert(&a, 1, {1});
  c.Insert(&a, 2, {2});
  c.Insert(&b, 1, {3});  // the oldest (a, 1) goes
  EXPECT_EQ(c.Find(&a, 1), nullptr);
  ASSERT_NE(c.Find(&a, 2), nullptr);
  EXPECT_EQ(c.Find(&a, 2)->front(), 2);
  ASSERT_NE(c.Find(&b, 1), nullptr);
  c.Forget(&a);
  EXPECT_EQ(c.Find(&a, 2), nullptr);
  EXPECT_NE(c.Find(&b, 1), nullptr);
}

}  // namespace
}  // namespace gapsync::transport
