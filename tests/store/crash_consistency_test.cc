// Crash consistency of the store (store/blob_store.h, "Visibility and durability"), over the
// fault-injecting Kv (fault_injection_kv.h): a workload that uses every way the store writes
// (sequential writers with checkpoints, pieces in any order, releases, pending records, gc) has
// the power cut at every point between two of its durable steps; each time the store that comes
// back must hold everything a Sync() acknowledged, show nothing that does not read back exactly,
// pass fsck, and let the workload run again to the end.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "proto/digest.h"
#include "proto/sha256.h"
#include "store/blob_store.h"
#include "store/chunked_store.h"
#include "tests/store/fault_injection_kv.h"

namespace gapsync::store {
namespace {

constexpr uint32_t kChunk = 4096;
constexpr const char* kOctet = "application/octet-stream";

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}
std::string Compressible(size_t n, uint32_t seed) {
  std::string out;
  while (out.size() < n) out += "line " + std::to_string(seed + out.size()) + " of a compressible blob\n";
  out.resize(n);
  return out;
}
std::span<const uint8_t> Bytes(const std::string& s, size_t from = 0, size_t len = std::string::npos) {
  len = std::min(len, s.size() - from);
  return {reinterpret_cast<const uint8_t*>(s.data()) + from, len};
}
BlobDigest DigestOf(const std::string& data) { return Sha256::Of(data); }

// What the workload writes, and what a Sync() that returned OK promised so far.
struct Promised {
  std::set<BlobDigest> blobs;                     // visible
  std::set<ReleaseId> releases;                   // present
  std::map<BlobDigest, std::set<uint32_t>> pieces;  // held (unless the blob became visible)
  std::map<BlobDigest, uint64_t> progress;          // a writer for it resumes at least here
};

class Workload {
 public:
  Workload() {
    blobs_ = {
        {"a", RandomBytes(3 * kChunk + 500, 1)},  // sequential, synced at once
        {"b", Compressible(5 * kChunk, 2)},       // sequential with a checkpoint half way
        {"c", RandomBytes(4 * kChunk - 7, 3)},    // pieces in any order
        {"d", Compressible(2 * kChunk + 1, 4)},   // sequential, for a release that was pending
        {"e", RandomBytes(kChunk, 5)},            // needed by nothing: gc removes it
    };
    for (const auto& [name, data] : blobs_) by_digest_[DigestOf(data)] = data;
  }
  const std::string& blob(const std::string& name) const { return blobs_.at(name); }
  BlobDigest digest(const std::string& name) const { return DigestOf(blobs_.at(name)); }
  const std::map<BlobDigest, std::string>& by_digest() const { return by_digest_; }

  StoredRelease Release(const std::string& version, const std::vector<std::string>& names) const {
    StoredRelease r;
    r.id = {"shop", version};
    r.manifest = "signed manifest of shop@" + version;
    r.signature = std::string(64, 's');
    r.release_digest = ReleaseDigest::Parse("sha256:" + std::string(63, 'a') + version.back()).value();
    for (const auto& n : names) r.blobs.push_back(digest(n));
    r.ingested_unix = 1700000000;
    return r;
  }

  // Runs every step on `s` until one fails (the power went, or the first run of a rerun found a
  // step done already). `p` gets what each Sync that returned OK made durable.
  Status Run(BlobStore& s, Promised& p) const {
    // a: written and synced.
    GS_RETURN_IF_ERROR(WriteFrom(s, "a", false));
    GS_RETURN_IF_ERROR(s.Sync());
    p.blobs.insert(digest("a"));
    // b: a checkpoint after 2.5 chunks (2 whole chunks recorded), then the rest.
    {
      GS_ASSIGN_OR_RETURN(auto w, OpenIfNeeded(s, "b"));
      if (w) {
        const std::string& b = blob("b");
        const uint64_t half = 2 * kChunk + kChunk / 2;
        if (w->offset() < half) {
          GS_RETURN_IF_ERROR(w->Append(Bytes(b, w->offset(), half - w->offset())));
          GS_RETURN_IF_ERROR(w->Checkpoint());
          GS_RETURN_IF_ERROR(s.Sync());
          p.progress[digest("b")] = 2 * kChunk;
        }
        GS_RETURN_IF_ERROR(w->Append(Bytes(b, std::max<uint64_t>(w->offset(), half))));
        GS_RETURN_IF_ERROR(w->Commit());
      }
    }
    // c: pieces 0 and 2, synced; then 3 and 1, completed.
    GS_RETURN_IF_ERROR(Pieces(s, "c", {0, 2}));
    GS_RETURN_IF_ERROR(s.Sync());
    p.pieces[digest("c")].insert({0, 2});
    GS_RETURN_IF_ERROR(Pieces(s, "c", {3, 1}));
    GS_RETURN_IF_ERROR(CompleteIfNeeded(s, "c"));
    GS_RETURN_IF_ERROR(s.Sync());
    p.blobs.insert({digest("b"), digest("c")});
    // Release 1.0.0 needs a, b; 2.0.0 (pending first) needs c, d.
    GS_RETURN_IF_ERROR(s.PutRelease(Release("1.0.0", {"a", "b"})));
    p.releases.insert({"shop", "1.0.0"});
    GS_RETURN_IF_ERROR(s.KeepPending(Release("2.0.0", {"c", "d"})));
    GS_RETURN_IF_ERROR(WriteFrom(s, "d", false));
    GS_RETURN_IF_ERROR(WriteFrom(s, "e", true));  // its progress recorded, then committed
    GS_RETURN_IF_ERROR(s.Sync());
    p.blobs.insert({digest("d"), digest("e")});
    GS_RETURN_IF_ERROR(s.PutRelease(Release("2.0.0", {"c", "d"})));
    p.releases.insert({"shop", "2.0.0"});
    // gc: e goes (nothing needs it; from here on it may be gone), everything else stays.
    p.blobs.erase(digest("e"));
    auto gc = s.CollectGarbage(false);
    if (!gc.ok()) return gc.error();
    return OkStatus();
  }

 private:
  Result<std::unique_ptr<BlobWriter>> OpenIfNeeded(BlobStore& s, const std::string& name) const {
    GS_ASSIGN_OR_RETURN(auto info, s.Stat(digest(name)));
    if (info) return std::unique_ptr<BlobWriter>();
    return s.OpenWriter(digest(name), blob(name).size(), kOctet);
  }
  // Writes the blob from where a writer resumes, in 1000-byte appends; `checkpoint`: one after
  // every chunk.
  Status WriteFrom(BlobStore& s, const std::string& name, bool checkpoint) const {
    GS_ASSIGN_OR_RETURN(auto w, OpenIfNeeded(s, name));
    if (!w) return OkStatus();
    const std::string& data = blob(name);
    for (uint64_t at = w->offset(); at < data.size(); at += 1000) {
      GS_RETURN_IF_ERROR(w->Append(Bytes(data, at, 1000)));
      if (checkpoint && (at / kChunk) != ((at + 1000) / kChunk)) GS_RETURN_IF_ERROR(w->Checkpoint());
    }
    return w->Commit();
  }
  Status Pieces(BlobStore& s, const std::string& name, const std::vector<uint32_t>& indices) const {
    const std::string& data = blob(name);
    for (uint32_t i : indices) {
      GS_RETURN_IF_ERROR(s.PutPiece(digest(name), data.size(), kOctet, i, Bytes(data, size_t{i} * kChunk, kChunk)));
    }
    return OkStatus();
  }
  Status CompleteIfNeeded(BlobStore& s, const std::string& name) const {
    GS_ASSIGN_OR_RETURN(auto info, s.Stat(digest(name)));
    return info ? OkStatus() : s.CompletePieces(digest(name));
  }

  std::map<std::string, std::string> blobs_;
  std::map<BlobDigest, std::string> by_digest_;
};

Result<std::unique_ptr<BlobStore>> OpenOver(FaultDisk& disk) { return NewChunkedStore(disk.Open(), kChunk, true, {}); }

// Everything `p` promised is there; everything visible reads back as written; fsck is clean.
void ExpectConsistent(BlobStore& s, const Workload& w, const Promised& p, const std::string& where) {
  SCOPED_TRACE(where);
  for (const auto& d : p.blobs) {
    auto info = s.Stat(d);
    ASSERT_TRUE(info.ok() && info->has_value()) << "a synced blob is gone: " << d.str();
  }
  std::vector<BlobDigest> visible;
  ASSERT_TRUE(s.ForEachBlob([&](const BlobInfo& i) {
                 visible.push_back(i.digest);
                 return OkStatus();
               }).ok());
  for (const auto& d : visible) {
    ASSERT_TRUE(w.by_digest().count(d)) << "a blob nobody wrote is visible: " << d.str();
    std::string got;
    auto st = s.Read(d, 0, w.by_digest().at(d).size(), [&](std::span<const uint8_t> b) {
      got.append(reinterpret_cast<const char*>(b.data()), b.size());
      return OkStatus();
    });
    ASSERT_TRUE(st.ok()) << "visible blob " << d.str() << " does not read back: " << st.error().message;
    ASSERT_EQ(got, w.by_digest().at(d)) << d.str();
  }
  for (const auto& id : p.releases) {
    auto r = s.GetRelease(id);
    ASSERT_TRUE(r.ok() && r->has_value()) << "a committed release is gone: " << id.str();
  }
  for (const auto& [d, pieces] : p.pieces) {
    auto held = s.HeldPieces(d, w.by_digest().at(d).size());
    ASSERT_TRUE(held.ok()) << held.error().message;
    if (held->visible) continue;
    for (uint32_t i : pieces) ASSERT_TRUE(held->pieces.at(i)) << "synced piece " << i << " of " << d.str() << " is gone";
    for (uint32_t i = 0; i < held->pieces.size(); ++i) {
      if (!held->pieces[i]) continue;
      std::vector<uint8_t> bytes;
      ASSERT_TRUE(s.ReadPiece(d, i, bytes).ok()) << "held piece " << i << " does not read back";
      const std::string& data = w.by_digest().at(d);
      ASSERT_EQ(std::string(bytes.begin(), bytes.end()), data.substr(size_t{i} * kChunk, kChunk));
    }
  }
  for (const auto& [d, at_least] : p.progress) {
    auto info = s.Stat(d);
    ASSERT_TRUE(info.ok());
    if (info->has_value()) continue;
    auto partial = s.PartialBytes(d);
    ASSERT_TRUE(partial.ok());
    EXPECT_GE(*partial, at_least) << "a synced checkpoint of " << d.str() << " is lost";
  }
  auto fsck = s.Fsck(nullptr);
  ASSERT_TRUE(fsck.ok()) << fsck.error().message;
  EXPECT_TRUE(fsck->problems.empty()) << fsck->problems.front();
  EXPECT_TRUE(fsck->corrupt_blobs.empty());
}

// The durable steps the whole workload takes without a fault (-1 when it fails).
int64_t DurableStepsOf(const Workload& w) {
  FaultDisk disk;
  auto s = OpenOver(disk);
  Promised p;
  if (!s.ok() || !w.Run(**s, p).ok()) return -1;
  return disk.durable_ops();
}

class CrashConsistency : public ::testing::TestWithParam<FaultDisk::Loss> {};

// The whole workload without a crash: the baseline the crash points are counted against.
TEST(FaultInjectionKv, WorkloadRunsToTheEndWithoutACrash) {
  FaultDisk disk;
  auto s = OpenOver(disk);
  ASSERT_TRUE(s.ok());
  Workload w;
  Promised p;
  auto st = w.Run(**s, p);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(p.releases.size(), 2u);
  EXPECT_GT(disk.durable_ops(), 10);
  ExpectConsistent(**s, w, p, "no crash");
  auto e = (*s)->Stat(w.digest("e"));
  ASSERT_TRUE(e.ok());
  EXPECT_FALSE(e->has_value());  // gc took it
}

TEST_P(CrashConsistency, EveryCrashPointLeavesAStoreThatHoldsWhatWasSyncedAndCompletesOnRerun) {
  const Workload w;
  const int64_t total = DurableStepsOf(w);
  ASSERT_GT(total, 10);
  for (int64_t k = 0; k <= total; ++k) {
    const std::string where = "power cut after " + std::to_string(k) + " of " + std::to_string(total) + " durable steps";
    FaultDisk disk;
    Promised p;
    {
      auto s = OpenOver(disk);
      ASSERT_TRUE(s.ok());
      disk.CrashAfter(k);
      auto st = w.Run(**s, p);
      ASSERT_EQ(st.ok(), k == total) << where << ": " << (st.ok() ? "ran to the end" : st.error().message);
      disk.Crash(GetParam(), static_cast<uint32_t>(k));
    }
    auto s = OpenOver(disk);
    ASSERT_TRUE(s.ok()) << where << ": " << s.error().message;
    ExpectConsistent(**s, w, p, where);
    if (HasFatalFailure()) return;
    // The rerun (what an operator's second `gapsync ingest` does) completes.
    Promised again;
    auto st = w.Run(**s, again);
    ASSERT_TRUE(st.ok()) << where << ": rerun: " << st.error().message;
    ExpectConsistent(**s, w, again, where + ", after the rerun");
    if (HasFatalFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Loss, CrashConsistency,
                         ::testing::Values(FaultDisk::Loss::kAllUnflushedLost, FaultDisk::Loss::kSomeUnflushedSurvive),
                         [](const auto& p) {
                           return p.param == FaultDisk::Loss::kAllUnflushedLost ? "AllUnflushedLost"
                                                                                    : "SomeUnflushedSurvive";
                         });

// An I/O error at each durable step (no crash): the Sync that failed is retried and the workload
// goes on; what it made durable survives a crash afterwards.
TEST(FaultInjectionKv, AFailedStepIsRetriedAndLosesNothing) {
  const Workload w;
  const int64_t total = DurableStepsOf(w);
  ASSERT_GT(total, 10);
  for (int64_t k = 0; k < total; ++k) {
    const std::string where = "I/O error at durable step " + std::to_string(k);
    FaultDisk disk;
    auto s = OpenOver(disk);
    disk.FailDurableOpAfter(k);
    Promised p;
    auto first = w.Run(**s, p);
    ASSERT_FALSE(first.ok()) << where;
    EXPECT_EQ(first.error().code, Errc::kIo) << where << ": " << first.error().message;
    // The same store goes on (a later Sync carries what the failed one did not).
    ASSERT_TRUE((*s)->Sync().ok()) << where;
    auto again = w.Run(**s, p);
    ASSERT_TRUE(again.ok()) << where << ": " << again.error().message;
    disk.Crash();
    s = OpenOver(disk);
    ASSERT_TRUE(s.ok());
    ExpectConsistent(**s, w, p, where);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace gapsync::store
