// The BlobStore contract (store/blob_store.h), run against every implementation: the in-memory
// store and the RocksDB store. A small chunk size makes every multi-chunk path run.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "proto/digest.h"
#include "proto/error.h"
#include "proto/sha256.h"
#include "proto/store.pb.h"
#include "store/blob_store.h"
#include "store/chunked_store.h"
#include "store/kv.h"
#include "tests/store/fault_injection_kv.h"

namespace gapsync::store {
namespace {

constexpr uint32_t kChunk = 4096;
constexpr const char* kOctet = "application/octet-stream";

#define ASSERT_OK(expr)                                                  \
  do {                                                                   \
    auto gs_st_ = (expr);                                                \
    ASSERT_TRUE(gs_st_.ok()) << #expr << ": " << gs_st_.error().message; \
  } while (0)
#define EXPECT_OK(expr)                                                  \
  do {                                                                   \
    auto gs_st_ = (expr);                                                \
    EXPECT_TRUE(gs_st_.ok()) << #expr << ": " << gs_st_.error().message; \
  } while (0)

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

BlobDigest DigestOf(const std::string& data) { return Sha256::Of(data); }

std::span<const uint8_t> Bytes(const std::string& s, size_t from = 0, size_t len = std::string::npos) {
  len = std::min(len, s.size() - from);
  return {reinterpret_cast<const uint8_t*>(s.data()) + from, len};
}

std::vector<BlobDigest> Needed(const std::vector<std::string>& blobs) {
  std::vector<BlobDigest> out;
  for (const auto& b : blobs) out.push_back(DigestOf(b));
  return out;
}

// A release needing `blobs`. Its manifest is bytes the store keeps and never reads.
StoredRelease ReleaseFor(const std::string& app, const std::string& version, const std::vector<std::string>& blobs,
                         bool pinned = true) {
  StoredRelease r;
  r.id = {app, version};
  r.manifest = "signed manifest of " + app + "@" + version;
  r.signature = std::string(64, 's');
  r.release_digest = ReleaseDigest::Parse("sha256:" + std::string(64, 'a')).value();
  r.blobs = Needed(blobs);
  r.ingested_unix = 1700000000;
  r.pinned = pinned;
  return r;
}

// kFaultInjection: the fault-injecting Kv (fault_injection_kv.h) used without faults, so it is held to
// the same contract the crash tests (crash_consistency_test.cc) rely on.
enum class Backend { kMemory, kRocksDb, kFaultInjection };

class BlobStoreContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gapsync-store-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    Open();
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // The store over a Kv the test keeps a handle on (to damage what is stored, or to write what an
  // older gapsync wrote). `manifest_blobs` as in RocksDbOptions.
  void Open(const ManifestBlobsFn& manifest_blobs = {}) {
    auto opened = OpenAt(dir_ + "/db", manifest_blobs);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store_ = std::move(opened).value();
  }
  Result<std::unique_ptr<BlobStore>> OpenAt(const std::string& path, const ManifestBlobsFn& manifest_blobs) {
    std::unique_ptr<Kv> kv;
    if (GetParam() == Backend::kMemory) {
      kv = NewMemoryKv();
    } else if (GetParam() == Backend::kFaultInjection) {
      kv = disk_.Open();
    } else {
      GS_ASSIGN_OR_RETURN(kv, OpenRocksDbKv(path));
    }
    kv_ = kv.get();
    return NewChunkedStore(std::move(kv), kChunk, true, manifest_blobs);
  }

  // Flips one payload byte of chunk `index` of a blob as it is stored, under every check.
  Status Corrupt(const BlobDigest& d, uint32_t index) {
    const std::string key = ChunkKey(d, index);
    GS_ASSIGN_OR_RETURN(auto value, kv_->Get(Space::kChunks, key));
    if (!value || value->size() < 2) return MakeError(Errc::kNotFound, "no such chunk");
    (*value)[1 + (value->size() - 1) / 2] ^= 0x01;  // a payload byte (byte 0 is the codec)
    GS_RETURN_IF_ERROR(kv_->PutChunk(key, std::string_view(*value).substr(0, 1), std::string_view(*value).substr(1)));
    return kv_->FlushChunks();
  }
  // RocksDB only: close and reopen the same folder.
  void Reopen() {
    store_.reset();
    Open();
  }

  BlobStore& store() { return *store_; }

  // Writes `data` in pieces of `piece` bytes, commits; syncs when `sync`.
  void Put(const std::string& data, const std::string& media_type = kOctet, bool sync = true, size_t piece = 1000) {
    auto w = store().OpenWriter(DigestOf(data), data.size(), media_type);
    ASSERT_TRUE(w.ok()) << w.error().message;
    ASSERT_EQ((*w)->offset(), 0u);
    for (size_t i = 0; i < data.size(); i += piece) ASSERT_OK((*w)->Append(Bytes(data, i, piece)));
    ASSERT_OK((*w)->Commit());
    if (sync) ASSERT_OK(store().Sync());
  }

  // Reads [offset, offset+len) into `out`; returns the Status.
  Status ReadInto(const BlobDigest& d, uint64_t offset, uint64_t len, std::string& out, int* calls = nullptr) {
    out.clear();
    return store().Read(d, offset, len, [&](std::span<const uint8_t> b) {
      out.append(reinterpret_cast<const char*>(b.data()), b.size());
      if (calls) ++*calls;
      return OkStatus();
    });
  }

  bool Visible(const BlobDigest& d) {
    auto st = store().Stat(d);
    EXPECT_TRUE(st.ok());
    return st.ok() && st->has_value();
  }

  std::vector<BlobDigest> AllBlobs() {
    std::vector<BlobDigest> out;
    EXPECT_OK(store().ForEachBlob([&](const BlobInfo& i) {
      out.push_back(i.digest);
      return OkStatus();
    }));
    return out;
  }

  // ---- piece-wise assembly: piece i of `data` is bytes [i*kChunk, (i+1)*kChunk) ----
  static uint32_t Pieces(const std::string& data) { return static_cast<uint32_t>((data.size() + kChunk - 1) / kChunk); }
  static std::span<const uint8_t> PieceOf(const std::string& data, uint32_t i) {
    return Bytes(data, size_t{i} * kChunk, kChunk);
  }
  void PutPieces(const std::string& data, const std::vector<uint32_t>& indices,
                 const std::string& media_type = kOctet) {
    for (uint32_t i : indices) {
      ASSERT_OK(store().PutPiece(DigestOf(data), data.size(), media_type, i, PieceOf(data, i)));
    }
  }
  std::vector<bool> HeldOf(const std::string& data) {
    auto held = store().HeldPieces(DigestOf(data), data.size());
    EXPECT_TRUE(held.ok()) << held.error().message;
    return held.ok() ? held->pieces : std::vector<bool>{};
  }
  static std::vector<bool> Bits(const std::string& ones) {  // "1010" -> {true, false, true, false}
    std::vector<bool> out;
    for (char c : ones) out.push_back(c == '1');
    return out;
  }
  uint64_t DurablePartial(const BlobDigest& d) {
    auto p = store().PartialBytes(d);
    EXPECT_TRUE(p.ok());
    return p.ok() ? *p : 0;
  }
  Status ReadPieceInto(const BlobDigest& d, uint32_t index, std::string& out) {
    std::vector<uint8_t> bytes;
    auto st = store().ReadPiece(d, index, bytes);
    out.assign(bytes.begin(), bytes.end());
    return st;
  }

  FsckReport Fsck() {
    auto r = store().Fsck(nullptr);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? r.value() : FsckReport{};
  }

  std::string dir_;
  std::unique_ptr<BlobStore> store_;
  Kv* kv_ = nullptr;  // under store_
  FaultDisk disk_;    // kFaultInjection
};

TEST_P(BlobStoreContract, WriteCommitSyncThenStatAndRead) {
  const std::string data = RandomBytes(3 * kChunk + 100, 1);
  const auto d = DigestOf(data);
  Put(data);
  auto info = store().Stat(d);
  ASSERT_TRUE(info.ok());
  ASSERT_TRUE(info->has_value());
  EXPECT_EQ((*info)->digest, d);
  EXPECT_EQ((*info)->size, data.size());
  EXPECT_EQ((*info)->media_type, kOctet);

  std::string got;
  ASSERT_OK(ReadInto(d, 0, data.size(), got));
  EXPECT_EQ(got, data);

  struct Range {
    uint64_t offset, len;
  };
  for (auto r : std::vector<Range>{{0, 1},
                                   {kChunk - 1, 2},               // crosses chunk 0/1
                                   {4000, 200},                   // crosses chunk 0/1
                                   {kChunk, kChunk},              // exactly chunk 1
                                   {kChunk - 1, 2 * kChunk + 2},  // crosses two boundaries
                                   {3 * kChunk, 100},             // exactly the short tail
                                   {data.size() - 1, 1},          // last byte
                                   {10, data.size() - 10}}) {
    ASSERT_OK(ReadInto(d, r.offset, r.len, got));
    EXPECT_EQ(got, data.substr(r.offset, r.len)) << "range " << r.offset << "+" << r.len;
  }
}

TEST_P(BlobStoreContract, ZeroLengthReadsSucceedWithNoBytes) {
  const std::string data = RandomBytes(2 * kChunk, 2);
  const auto d = DigestOf(data);
  Put(data);
  std::string got;
  ASSERT_OK(ReadInto(d, 0, 0, got));
  EXPECT_TRUE(got.empty());
  ASSERT_OK(ReadInto(d, kChunk, 0, got));
  EXPECT_TRUE(got.empty());
  ASSERT_OK(ReadInto(d, data.size(), 0, got));  // at the very end
  EXPECT_TRUE(got.empty());
}

TEST_P(BlobStoreContract, ReadPastEndIsAnError) {
  const std::string data = RandomBytes(kChunk + 10, 3);
  const auto d = DigestOf(data);
  Put(data);
  std::string got;
  int calls = 0;
  for (auto [off, len] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0, data.size() + 1}, {data.size(), 1}, {data.size() + 1, 0}, {5, data.size()}, {UINT64_MAX, 2},
           {1, UINT64_MAX}}) {
    auto st = ReadInto(d, off, len, got, &calls);
    ASSERT_FALSE(st.ok()) << "read " << off << "+" << len << " of a " << data.size() << "-byte blob";
    EXPECT_EQ(st.error().code, Errc::kInvalidArgument);
    EXPECT_NE(st.error().message.find(d.str()), std::string::npos) << st.error().message;
  }
  EXPECT_EQ(calls, 0) << "the sink must not see bytes of a refused read";
}

TEST_P(BlobStoreContract, ReadOfUnknownBlobIsNotFound) {
  std::string got;
  auto st = ReadInto(DigestOf("nope"), 0, 0, got);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kNotFound);
  auto info = store().Stat(DigestOf("nope"));
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(info->has_value());
}

TEST_P(BlobStoreContract, EmptyBlob) {
  const std::string data;
  Put(data);
  auto info = store().Stat(DigestOf(data));
  ASSERT_TRUE(info.ok());
  ASSERT_TRUE(info->has_value());
  EXPECT_EQ((*info)->size, 0u);
  std::string got;
  EXPECT_OK(ReadInto(DigestOf(data), 0, 0, got));
  auto r = Fsck();
  EXPECT_TRUE(r.problems.empty());
  EXPECT_EQ(r.blobs_checked, 1u);
}

TEST_P(BlobStoreContract, NotVisibleBeforeSync) {
  const std::string data = RandomBytes(2 * kChunk + 5, 4);
  const auto d = DigestOf(data);
  Put(data, kOctet, /*sync=*/false);
  EXPECT_FALSE(Visible(d));
  EXPECT_TRUE(AllBlobs().empty());
  std::string got;
  auto st = ReadInto(d, 0, 1, got);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kNotFound);
  ASSERT_OK(store().Sync());
  EXPECT_TRUE(Visible(d));
  EXPECT_EQ(AllBlobs(), std::vector<BlobDigest>{d});
}

TEST_P(BlobStoreContract, CommitWithWrongBytesIsCorruptAndInvisible) {
  const std::string want = RandomBytes(2 * kChunk + 300, 5);
  std::string other = want;
  other[kChunk + 7] ^= 0x40;  // same size, one bit different
  const auto d = DigestOf(want);
  auto w = store().OpenWriter(d, want.size(), kOctet);
  ASSERT_TRUE(w.ok());
  ASSERT_OK((*w)->Append(Bytes(other)));
  auto st = (*w)->Commit();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kCorrupt);
  EXPECT_NE(st.error().message.find(d.str()), std::string::npos) << st.error().message;
  w->reset();
  ASSERT_OK(store().Sync());
  EXPECT_FALSE(Visible(d));
  EXPECT_FALSE(Visible(DigestOf(other)));
  EXPECT_TRUE(AllBlobs().empty());
  auto partial = store().PartialBytes(d);
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(*partial, 0u);
  // The right bytes can still be stored afterwards.
  Put(want);
  std::string got;
  ASSERT_OK(ReadInto(d, 0, want.size(), got));
  EXPECT_EQ(got, want);
}

TEST_P(BlobStoreContract, CommitWithTooFewBytesIsCorrupt) {
  const std::string data = RandomBytes(kChunk + 1, 6);
  const auto d = DigestOf(data);
  auto w = store().OpenWriter(d, data.size(), kOctet);
  ASSERT_TRUE(w.ok());
  ASSERT_OK((*w)->Append(Bytes(data, 0, kChunk)));
  auto st = (*w)->Commit();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kCorrupt);
  w->reset();
  ASSERT_OK(store().Sync());
  EXPECT_FALSE(Visible(d));
}

TEST_P(BlobStoreContract, AppendOfMoreThanSizeFails) {
  const std::string data = RandomBytes(100, 7);
  const auto d = DigestOf(data);
  auto w = store().OpenWriter(d, data.size(), kOctet);
  ASSERT_TRUE(w.ok());
  const std::string more = data + "x";
  EXPECT_FALSE((*w)->Append(Bytes(more)).ok());
  // Also when the overflow comes in a later append.
  auto w2 = store().OpenWriter(DigestOf("z"), 1, kOctet);
  ASSERT_TRUE(w2.ok());
  ASSERT_OK((*w2)->Append(Bytes(std::string("z"))));
  auto st = (*w2)->Append(Bytes(std::string("z")));
  EXPECT_FALSE(st.ok());
  w->reset();
  w2->reset();
  ASSERT_OK(store().Sync());
  EXPECT_FALSE(Visible(d));
  EXPECT_FALSE(Visible(DigestOf("z")));
}

// Suspend at `cut` bytes, Sync, reopen a writer: it resumes at `cut` and the rest commits.
class SuspendResume : public BlobStoreContract {
 protected:
  void Run(uint64_t cut, bool reopen_store) {
    const std::string data = RandomBytes(5 * kChunk + 17, static_cast<uint32_t>(100 + cut));
    const auto d = DigestOf(data);
    {
      auto w = store().OpenWriter(d, data.size(), kOctet);
      ASSERT_TRUE(w.ok());
      // odd pieces so appends straddle chunk boundaries
      for (uint64_t i = 0; i < cut; i += 777) ASSERT_OK((*w)->Append(Bytes(data, i, std::min<uint64_t>(777, cut - i))));
      ASSERT_EQ((*w)->offset(), cut);
      ASSERT_OK((*w)->Suspend());
    }
    ASSERT_OK(store().Sync());
    if (reopen_store) {
      Reopen();
      ASSERT_NE(store_, nullptr);
    }
    EXPECT_FALSE(Visible(d));
    auto partial = store().PartialBytes(d);
    ASSERT_TRUE(partial.ok());
    EXPECT_EQ(*partial, cut);

    auto w = store().OpenWriter(d, data.size(), kOctet);
    ASSERT_TRUE(w.ok());
    ASSERT_EQ((*w)->offset(), cut) << "writer did not resume where it was suspended";
    ASSERT_OK((*w)->Append(Bytes(data, cut)));
    ASSERT_OK((*w)->Commit());
    ASSERT_OK(store().Sync());
    auto info = store().Stat(d);
    ASSERT_TRUE(info.ok());
    ASSERT_TRUE(info->has_value());
    EXPECT_EQ((*info)->size, data.size());
    std::string got;
    ASSERT_OK(ReadInto(d, 0, data.size(), got));
    EXPECT_TRUE(got == data) << "resumed blob reads back different bytes";
    auto after = store().PartialBytes(d);
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(*after, 0u);
    auto r = Fsck();
    EXPECT_TRUE(r.problems.empty()) << r.problems.front();
    EXPECT_EQ(r.partial_blobs, 0u);
    EXPECT_EQ(r.orphan_chunks, 0u);
  }
};

TEST_P(SuspendResume, AtChunkBoundary) { Run(2 * kChunk, false); }
TEST_P(SuspendResume, WithShortTailChunk) { Run(2 * kChunk + 1000, false); }
TEST_P(SuspendResume, InsideFirstChunk) { Run(100, false); }
TEST_P(SuspendResume, OneByteBeforeTheEnd) { Run(5 * kChunk + 16, false); }

TEST_P(SuspendResume, SuspendTwiceThenFinish) {
  const std::string data = RandomBytes(4 * kChunk + 3, 9);
  const auto d = DigestOf(data);
  const uint64_t cuts[] = {kChunk + 10, 3 * kChunk + 5};
  uint64_t at = 0;
  for (uint64_t cut : cuts) {
    auto w = store().OpenWriter(d, data.size(), kOctet);
    ASSERT_TRUE(w.ok());
    ASSERT_EQ((*w)->offset(), at);
    ASSERT_OK((*w)->Append(Bytes(data, at, cut - at)));
    ASSERT_OK((*w)->Suspend());
    ASSERT_OK(store().Sync());
    at = cut;
  }
  auto w = store().OpenWriter(d, data.size(), kOctet);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ((*w)->offset(), at);
  ASSERT_OK((*w)->Append(Bytes(data, at)));
  ASSERT_OK((*w)->Commit());
  ASSERT_OK(store().Sync());
  std::string got;
  ASSERT_OK(ReadInto(d, 0, data.size(), got));
  EXPECT_TRUE(got == data);
}

TEST_P(SuspendResume, ResumedWithCompressibleData) {
  std::string data(5 * kChunk + 17, '\0');
  for (size_t i = 0; i < data.size(); i += 97) data[i] = static_cast<char>(i);
  const auto d = DigestOf(data);
  const uint64_t cut = 2 * kChunk + 1000;
  {
    auto w = store().OpenWriter(d, data.size(), kOctet);
    ASSERT_TRUE(w.ok());
    ASSERT_OK((*w)->Append(Bytes(data, 0, cut)));
    ASSERT_OK((*w)->Suspend());
  }
  ASSERT_OK(store().Sync());
  auto w = store().OpenWriter(d, data.size(), kOctet);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ((*w)->offset(), cut);
  ASSERT_OK((*w)->Append(Bytes(data, cut)));
  ASSERT_OK((*w)->Commit());
  ASSERT_OK(store().Sync());
  std::string got;
  ASSERT_OK(ReadInto(d, 0, data.size(), got));
  EXPECT_TRUE(got == data);
  auto info = store().Stat(d);
  ASSERT_TRUE(info.ok() && info->has_value());
  EXPECT_LT((*info)->stored_bytes, data.size());
}

TEST_P(SuspendResume, CheckpointKeepsWholeChunksOfADroppedWriter) {
  const std::string data = RandomBytes(4 * kChunk + 10, 33);
  const auto d = DigestOf(data);
  {
    auto w = store().OpenWriter(d, data.size(), kOctet);
    ASSERT_TRUE(w.ok());
    ASSERT_OK((*w)->Append(Bytes(data, 0, 2 * kChunk + 1000)));
    ASSERT_OK((*w)->Checkpoint());
    ASSERT_OK(store().Sync());
    ASSERT_OK((*w)->Append(Bytes(data, 2 * kChunk + 1000, 500)));  // keeps writing after it
  }  // dropped: a crash
  EXPECT_FALSE(Visible(d));
  auto partial = store().PartialBytes(d);
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(*partial, 2 * kChunk) << "checkpoint records whole chunks only";
  auto w = store().OpenWriter(d, data.size(), kOctet);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ((*w)->offset(), 2 * kChunk);
  ASSERT_OK((*w)->Append(Bytes(data, 2 * kChunk)));
  ASSERT_OK((*w)->Commit());
  ASSERT_OK(store().Sync());
  std::string got;
  ASSERT_OK(ReadInto(d, 0, data.size(), got));
  EXPECT_TRUE(got == data);
  auto r = Fsck();
  EXPECT_TRUE(r.problems.empty());
  EXPECT_EQ(r.partial_blobs, 0u);
}

TEST_P(SuspendResume, CheckpointThenCommitLeavesNoPartial) {
  const std::string data = RandomBytes(3 * kChunk + 10, 34);
  const auto d = DigestOf(data);
  auto w = store().OpenWriter(d, data.size(), kOctet);
  ASSERT_TRUE(w.ok());
  ASSERT_OK((*w)->Append(Bytes(data, 0, kChunk + 1)));
  ASSERT_OK((*w)->Checkpoint());
  ASSERT_OK(store().Sync());
  ASSERT_OK((*w)->Append(Bytes(data, kChunk + 1)));
  ASSERT_OK((*w)->Commit());
  ASSERT_OK(store().Sync());
  EXPECT_TRUE(Visible(d));
  auto partial = store().PartialBytes(d);
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(*partial, 0u);
  EXPECT_FALSE((*w)->Checkpoint().ok()) << "checkpoint after commit accepted";
}

// A suspended blob's short tail must survive a resumed writer that fills (and stores) that
// chunk in full and is then lost (crash, damaged second medium): the next resume still starts
// where the suspension left off.
TEST_P(SuspendResume, TailSurvivesAResumedWriterThatIsLost) {
  const std::string data = RandomBytes(5 * kChunk + 17, 4242);
  const auto d = DigestOf(data);
  const uint64_t cut = 2 * kChunk + 1000;
  {
    auto w = store().OpenWriter(d, data.size(), kOctet);
    ASSERT_TRUE(w.ok());
    ASSERT_OK((*w)->Append(Bytes(data, 0, cut)));
    ASSERT_OK((*w)->Suspend());
  }
  ASSERT_OK(store().Sync());
  {
    auto w = store().OpenWriter(d, data.size(), kOctet);
    ASSERT_TRUE(w.ok());
    ASSERT_EQ((*w)->offset(), cut);
    ASSERT_OK((*w)->Append(Bytes(data, cut, 2 * kChunk)));  // rewrites chunk 2 in full, and more
    // dropped: no Commit, no Suspend
  }
  ASSERT_OK(store().Sync());  // whatever the lost writer stored is now durable
  if (GetParam() == Backend::kRocksDb) Reopen();
  auto w = store().OpenWriter(d, data.size(), kOctet);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ((*w)->offset(), cut) << "the suspension's progress was spoiled by the lost writer";
  ASSERT_OK((*w)->Append(Bytes(data, cut)));
  ASSERT_OK((*w)->Commit());
  ASSERT_OK(store().Sync());
  std::string got;
  ASSERT_OK(ReadInto(d, 0, data.size(), got));
  EXPECT_TRUE(got == data);
  EXPECT_TRUE(Fsck().problems.empty());
}

// Abandon forgets recorded progress: the next writer starts from 0.
TEST_P(SuspendResume, AbandonForgetsProgress) {
  const std::string data = RandomBytes(3 * kChunk, 99);
  const auto d = DigestOf(data);
  {
    auto w = store().OpenWriter(d, data.size(), kOctet);
    ASSERT_TRUE(w.ok());
    ASSERT_OK((*w)->Append(Bytes(data, 0, kChunk + 5)));
    ASSERT_OK((*w)->Suspend());
  }
  ASSERT_OK(store().Sync());
  {
    auto w = store().OpenWriter(d, data.size(), kOctet);
    ASSERT_TRUE(w.ok());
    ASSERT_EQ((*w)->offset(), kChunk + 5);
    ASSERT_OK((*w)->Abandon());
  }
  ASSERT_OK(store().Sync());
  auto w = store().OpenWriter(d, data.size(), kOctet);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->offset(), 0u);
  auto partial = store().PartialBytes(d);
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(*partial, 0u);
}

TEST_P(SuspendResume, OtherSizeStartsOver) {
  const std::string data = RandomBytes(3 * kChunk, 10);
  const auto d = DigestOf(data);
  {
    auto w = store().OpenWriter(d, data.size(), kOctet);
    ASSERT_TRUE(w.ok());
    ASSERT_OK((*w)->Append(Bytes(data, 0, kChunk + 5)));
    ASSERT_OK((*w)->Suspend());
  }
  ASSERT_OK(store().Sync());
  auto w = store().OpenWriter(d, data.size() + 1, kOctet);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->offset(), 0u);
}

// Tests that need a store which persists across close + reopen.
class RocksDbOnly : public SuspendResume {};

TEST_P(RocksDbOnly, SuspendNotRecordedWithoutSync) {
  const std::string data = RandomBytes(3 * kChunk, 11);
  const auto d = DigestOf(data);
  {
    auto w = store().OpenWriter(d, data.size(), kOctet);
    ASSERT_TRUE(w.ok());
    ASSERT_OK((*w)->Append(Bytes(data, 0, kChunk + 5)));
    ASSERT_OK((*w)->Suspend());
  }
  Reopen();  // no Sync: the suspension was never recorded
  auto w = store().OpenWriter(d, data.size(), kOctet);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->offset(), 0u);
}

TEST_P(RocksDbOnly, SuspendSurvivesReopenWithShortTail) {
  Run(3 * kChunk + 123, true);
}

TEST_P(BlobStoreContract, WriterDroppedWithoutCommitLeavesNothingVisible) {
  const std::string data = RandomBytes(3 * kChunk + 9, 12);
  const auto d = DigestOf(data);
  {
    auto w = store().OpenWriter(d, data.size(), kOctet);
    ASSERT_TRUE(w.ok());
    ASSERT_OK((*w)->Append(Bytes(data, 0, 2 * kChunk + 50)));
  }
  ASSERT_OK(store().Sync());
  EXPECT_FALSE(Visible(d));
  EXPECT_TRUE(AllBlobs().empty());
  auto partial = store().PartialBytes(d);
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(*partial, 0u);
  auto w = store().OpenWriter(d, data.size(), kOctet);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->offset(), 0u);
}

TEST_P(BlobStoreContract, CorruptChunkIsReportedAndNeverPassedOn) {
  const std::string data = RandomBytes(3 * kChunk + 500, 13);
  const auto d = DigestOf(data);
  Put(data);
  ASSERT_OK(Corrupt(d, 1));

  std::string got;
  auto st = ReadInto(d, 0, data.size(), got);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kCorrupt);
  EXPECT_NE(st.error().message.find(d.str()), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("chunk 1"), std::string::npos) << st.error().message;
  // Only chunk 0 reached the sink, and it is the right bytes.
  EXPECT_EQ(got.size(), kChunk);
  EXPECT_TRUE(got == data.substr(0, kChunk));

  // A range inside the bad chunk: nothing reaches the sink.
  int calls = 0;
  st = ReadInto(d, kChunk + 10, 20, got, &calls);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kCorrupt);
  EXPECT_EQ(calls, 0);
  // Ranges that avoid it still read.
  ASSERT_OK(ReadInto(d, 0, kChunk, got));
  EXPECT_TRUE(got == data.substr(0, kChunk));
  ASSERT_OK(ReadInto(d, 2 * kChunk, kChunk + 500, got));
  EXPECT_TRUE(got == data.substr(2 * kChunk));
}

TEST_P(BlobStoreContract, CorruptCompressedChunkIsReported) {
  const std::string data(3 * kChunk, '\0');
  const auto d = DigestOf(data);
  Put(data);
  ASSERT_OK(Corrupt(d, 2));
  std::string got;
  auto st = ReadInto(d, 0, data.size(), got);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kCorrupt);
  EXPECT_EQ(got.size(), 2 * kChunk);
}

TEST_P(BlobStoreContract, CorruptTailChunkIsReported) {
  const std::string data = RandomBytes(kChunk + 3, 14);  // tail chunk of 3 bytes
  const auto d = DigestOf(data);
  Put(data);
  ASSERT_OK(Corrupt(d, 1));
  std::string got;
  auto st = ReadInto(d, kChunk, 3, got);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kCorrupt);
  EXPECT_TRUE(got.empty());
}

TEST_P(BlobStoreContract, FsckCleanThenReportsCorruption) {
  const std::string a = RandomBytes(2 * kChunk + 1, 15);
  const std::string b(3 * kChunk, 'b');
  Put(a);
  Put(b);
  ASSERT_OK(store().PutRelease(ReleaseFor("app", "1.0.0", {a, b})));
  uint64_t progressed = 0;
  auto r = store().Fsck([&](uint64_t n) { progressed += n; });
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->problems.empty()) << r->problems.front();
  EXPECT_EQ(r->blobs_checked, 2u);
  EXPECT_EQ(r->bytes_checked, a.size() + b.size());
  EXPECT_EQ(progressed, a.size() + b.size());
  EXPECT_EQ(r->releases_checked, 1u);
  EXPECT_EQ(r->orphan_chunks, 0u);
  EXPECT_EQ(r->partial_blobs, 0u);

  ASSERT_OK(Corrupt(DigestOf(a), 1));
  auto bad = Fsck();
  ASSERT_EQ(bad.problems.size(), 1u);
  EXPECT_NE(bad.problems[0].find(DigestOf(a).str()), std::string::npos) << bad.problems[0];
  EXPECT_EQ(bad.blobs_checked, 2u);
}

// A 1-byte tail chunk is stored as 2 bytes (codec + payload). Corrupt() must still flip a
// stored byte of it (it used to index one past the end and change nothing).
TEST_P(BlobStoreContract, CorruptOfOneByteTailChunk) {
  const std::string a = RandomBytes(2 * kChunk + 1, 31);
  const auto d = DigestOf(a);
  Put(a);
  ASSERT_OK(Corrupt(d, 2));
  std::string got;
  auto st = ReadInto(d, 2 * kChunk, 1, got);
  EXPECT_FALSE(st.ok()) << "Corrupt(chunk of 1 byte) returned OK but the chunk still reads back fine: "
                           "the fault was never injected";
  if (!st.ok()) {
    EXPECT_EQ(st.error().code, Errc::kCorrupt);
  }
  EXPECT_TRUE(got.empty());
  auto r = Fsck();
  EXPECT_EQ(r.problems.size(), 1u) << "fsck does not see the injected corruption";
}

TEST_P(BlobStoreContract, FsckListsCorruptBlobsAndDropBlobHidesThem) {
  const std::string good = RandomBytes(2 * kChunk, 35);
  const std::string bad = RandomBytes(2 * kChunk + 50, 36);
  Put(good);
  Put(bad);
  ASSERT_OK(Corrupt(DigestOf(bad), 0));
  auto r = Fsck();
  ASSERT_EQ(r.corrupt_blobs.size(), 1u);
  EXPECT_EQ(r.corrupt_blobs[0], DigestOf(bad));
  ASSERT_OK(store().DropBlob(DigestOf(bad)));
  EXPECT_FALSE(Visible(DigestOf(bad)));
  EXPECT_TRUE(Visible(DigestOf(good)));
  auto after = Fsck();
  EXPECT_TRUE(after.problems.empty());
  EXPECT_TRUE(after.corrupt_blobs.empty());
  // It can be stored again, and gc takes the dropped chunks away.
  Put(bad);
  std::string got;
  ASSERT_OK(ReadInto(DigestOf(bad), 0, bad.size(), got));
  EXPECT_TRUE(got == bad);
}

TEST_P(BlobStoreContract, FsckCountsPartials) {
  const std::string data = RandomBytes(3 * kChunk, 16);
  {
    auto w = store().OpenWriter(DigestOf(data), data.size(), kOctet);
    ASSERT_TRUE(w.ok());
    ASSERT_OK((*w)->Append(Bytes(data, 0, kChunk + 1)));
    ASSERT_OK((*w)->Suspend());
  }
  ASSERT_OK(store().Sync());
  auto r = Fsck();
  EXPECT_EQ(r.partial_blobs, 1u);
  EXPECT_EQ(r.orphan_chunks, 0u) << "chunks of a recorded partial are not orphans";
  EXPECT_TRUE(r.problems.empty());
}

TEST_P(BlobStoreContract, PutReleaseRefusesMissingBlob) {
  const std::string a = RandomBytes(kChunk + 10, 17);
  const std::string b = RandomBytes(10, 18);
  Put(a);
  auto rel = ReleaseFor("app", "1.0.0", {a, b});
  auto st = store().PutRelease(rel);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kIncomplete);
  EXPECT_NE(st.error().message.find(DigestOf(b).str()), std::string::npos) << st.error().message;
  auto got = store().GetRelease(rel.id);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  auto all = store().ListReleases();
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());

  Put(b);
  ASSERT_OK(store().PutRelease(rel));
  got = store().GetRelease(rel.id);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->has_value());
}

TEST_P(BlobStoreContract, GetReleaseAndListReleasesRoundTrip) {
  const std::string a = RandomBytes(100, 19);
  Put(a);
  auto r1 = ReleaseFor("web", "1.0.0", {a});
  auto r2 = ReleaseFor("web", "1.1.0-rc.1", {a}, /*pinned=*/false);
  r2.signature = std::string(64, '\0');  // binary bytes survive
  r2.ingested_unix = 42;
  auto r3 = ReleaseFor("db", "2.0.0", {});
  ASSERT_OK(store().PutRelease(r1));
  ASSERT_OK(store().PutRelease(r2));
  ASSERT_OK(store().PutRelease(r3));

  auto got = store().GetRelease({"web", "1.1.0-rc.1"});
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  const auto& s = **got;
  EXPECT_EQ(s.id, r2.id);
  EXPECT_EQ(s.manifest, r2.manifest);
  EXPECT_EQ(s.signature, r2.signature);
  EXPECT_EQ(s.release_digest, r2.release_digest);
  EXPECT_EQ(s.ingested_unix, 42);
  EXPECT_FALSE(s.pinned);

  auto missing = store().GetRelease({"web", "9.9.9"});
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  // app/version boundaries are not confused ("web" + "1.0.0" vs "web1" + ".0.0")
  auto confused = store().GetRelease({"web1", ".0.0"});
  ASSERT_TRUE(confused.ok());
  EXPECT_FALSE(confused->has_value());

  auto all = store().ListReleases();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  std::vector<std::string> ids;
  for (const auto& r : *all) ids.push_back(r.id.str());
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"db@2.0.0", "web@1.0.0", "web@1.1.0-rc.1"}));
  for (const auto& r : *all) {
    if (r.id.str() == "web@1.0.0") {
      EXPECT_TRUE(r.pinned);
      EXPECT_EQ(r.manifest, r1.manifest);
    }
  }
}

TEST_P(BlobStoreContract, CollectGarbageKeepsNeededRemovesTheRest) {
  const std::string keep1 = RandomBytes(2 * kChunk + 7, 20);
  const std::string keep2(3 * kChunk, 'k');
  const std::string drop1 = RandomBytes(3 * kChunk + 1, 21);
  const std::string drop2(kChunk, 'd');
  for (const auto* b : {&keep1, &keep2, &drop1, &drop2}) Put(*b);
  ASSERT_OK(store().PutRelease(ReleaseFor("app", "1.0.0", {keep1})));
  ASSERT_OK(store().PutRelease(ReleaseFor("app", "1.1.0", {keep1, keep2})));

  auto gc = store().CollectGarbage(false);
  ASSERT_TRUE(gc.ok()) << gc.error().message;
  EXPECT_EQ(gc->blobs_removed, 2u);
  EXPECT_EQ(gc->bytes_removed, drop1.size() + drop2.size());
  EXPECT_TRUE(Visible(DigestOf(keep1)));
  EXPECT_TRUE(Visible(DigestOf(keep2)));
  EXPECT_FALSE(Visible(DigestOf(drop1)));
  EXPECT_FALSE(Visible(DigestOf(drop2)));
  std::string got;
  ASSERT_OK(ReadInto(DigestOf(keep1), 0, keep1.size(), got));
  EXPECT_TRUE(got == keep1);
  ASSERT_OK(ReadInto(DigestOf(keep2), 0, keep2.size(), got));
  EXPECT_TRUE(got == keep2);
  auto r = Fsck();
  EXPECT_TRUE(r.problems.empty()) << r.problems.front();
  EXPECT_EQ(r.orphan_chunks, 0u) << "chunks of removed blobs stayed behind";
  EXPECT_EQ(r.blobs_checked, 2u);

  // Idempotent.
  auto again = store().CollectGarbage(false);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->blobs_removed, 0u);
  EXPECT_EQ(again->orphan_chunks_removed, 0u);
}

TEST_P(BlobStoreContract, CollectGarbageIgnoresUnpinnedReleases) {
  const std::string pinned = RandomBytes(kChunk + 1, 22);
  const std::string unpinned = RandomBytes(kChunk + 2, 23);
  Put(pinned);
  Put(unpinned);
  ASSERT_OK(store().PutRelease(ReleaseFor("app", "1.0.0", {pinned})));
  ASSERT_OK(store().PutRelease(ReleaseFor("app", "0.9.0", {unpinned}, false)));
  auto gc = store().CollectGarbage(false);
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ(gc->blobs_removed, 1u);
  EXPECT_TRUE(Visible(DigestOf(pinned)));
  EXPECT_FALSE(Visible(DigestOf(unpinned)));
}

TEST_P(BlobStoreContract, CollectGarbageRemovesOrphanChunks) {
  const std::string kept = RandomBytes(2 * kChunk + 3, 24);
  Put(kept);
  ASSERT_OK(store().PutRelease(ReleaseFor("app", "1.0.0", {kept})));
  // Chunks written by a writer that was dropped...
  const std::string dropped = RandomBytes(4 * kChunk, 25);
  {
    auto w = store().OpenWriter(DigestOf(dropped), dropped.size(), kOctet);
    ASSERT_TRUE(w.ok());
    ASSERT_OK((*w)->Append(Bytes(dropped, 0, 3 * kChunk)));
  }
  // ...and by a commit whose bytes were wrong.
  const std::string wrong = RandomBytes(2 * kChunk, 26);
  {
    auto w = store().OpenWriter(DigestOf("something else"), wrong.size(), kOctet);
    ASSERT_TRUE(w.ok());
    ASSERT_OK((*w)->Append(Bytes(wrong)));
    EXPECT_FALSE((*w)->Commit().ok());
  }
  ASSERT_OK(store().Sync());
  auto before = Fsck();
  EXPECT_GE(before.orphan_chunks, 1u) << "fsck does not see orphan chunks";
  EXPECT_TRUE(before.problems.empty());

  auto gc = store().CollectGarbage(false);
  ASSERT_TRUE(gc.ok()) << gc.error().message;
  EXPECT_GE(gc->orphan_chunks_removed, 1u);
  EXPECT_EQ(gc->blobs_removed, 0u);
  auto after = Fsck();
  EXPECT_EQ(after.orphan_chunks, 0u);
  EXPECT_TRUE(after.problems.empty());
  std::string got;
  ASSERT_OK(ReadInto(DigestOf(kept), 0, kept.size(), got));
  EXPECT_TRUE(got == kept);
}

TEST_P(BlobStoreContract, CollectGarbagePartials) {
  const std::string data = RandomBytes(4 * kChunk, 27);
  const auto d = DigestOf(data);
  {
    auto w = store().OpenWriter(d, data.size(), kOctet);
    ASSERT_TRUE(w.ok());
    ASSERT_OK((*w)->Append(Bytes(data, 0, 2 * kChunk + 9)));
    ASSERT_OK((*w)->Suspend());
  }
  ASSERT_OK(store().Sync());
  auto keep = store().CollectGarbage(false);
  ASSERT_TRUE(keep.ok());
  EXPECT_EQ(keep->partials_removed, 0u);
  EXPECT_EQ(keep->orphan_chunks_removed, 0u);
  auto pb = store().PartialBytes(d);
  ASSERT_TRUE(pb.ok());
  EXPECT_EQ(*pb, 2 * kChunk + 9);
  {
    auto w = store().OpenWriter(d, data.size(), kOctet);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ((*w)->offset(), 2 * kChunk + 9) << "gc without drop_partials broke the partial";
  }

  auto drop = store().CollectGarbage(true);
  ASSERT_TRUE(drop.ok());
  EXPECT_EQ(drop->partials_removed, 1u);
  pb = store().PartialBytes(d);
  ASSERT_TRUE(pb.ok());
  EXPECT_EQ(*pb, 0u);
  auto r = Fsck();
  EXPECT_EQ(r.partial_blobs, 0u);
  EXPECT_EQ(r.orphan_chunks, 0u);
}

TEST_P(BlobStoreContract, CompressibleDataIsStoredSmaller) {
  const std::string zeros(5 * kChunk + 100, '\0');
  Put(zeros);
  auto info = store().Stat(DigestOf(zeros));
  ASSERT_TRUE(info.ok() && info->has_value());
  EXPECT_EQ((*info)->size, zeros.size());
  EXPECT_LT((*info)->stored_bytes, zeros.size() / 4);
  std::string got;
  ASSERT_OK(ReadInto(DigestOf(zeros), 100, 3 * kChunk, got));
  EXPECT_TRUE(got == zeros.substr(100, 3 * kChunk));
}

TEST_P(BlobStoreContract, RandomDataIsStoredAsIs) {
  const std::string data = RandomBytes(5 * kChunk + 100, 28);
  Put(data);
  auto info = store().Stat(DigestOf(data));
  ASSERT_TRUE(info.ok() && info->has_value());
  EXPECT_EQ((*info)->stored_bytes, data.size());
}

TEST_P(BlobStoreContract, CompressedMediaTypeIsNotRecompressed) {
  const std::string zeros(3 * kChunk, '\0');
  Put(zeros, "application/vnd.oci.image.layer.v1.tar+gzip");
  auto info = store().Stat(DigestOf(zeros));
  ASSERT_TRUE(info.ok() && info->has_value());
  EXPECT_EQ((*info)->stored_bytes, zeros.size());
  EXPECT_EQ((*info)->media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
}

TEST_P(BlobStoreContract, ReleasesKeepTheBlobListTheyWereGiven) {
  const std::string a = RandomBytes(kChunk + 3, 60);
  const std::string b = RandomBytes(50, 61);
  const std::string c = RandomBytes(2 * kChunk, 62);
  Put(a);
  Put(b);
  Put(c);
  ASSERT_OK(store().PutRelease(ReleaseFor("app", "1.0.0", {a, b})));
  // A fetch under way: its blobs are kept by gc although no release needs them yet.
  ASSERT_OK(store().KeepPending(ReleaseFor("app", "2.0.0", {c})));
  auto got = store().GetRelease({"app", "1.0.0"});
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->blobs, Needed({a, b}));
  auto all = store().ListReleases();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u) << "a pending release is not listed";
  EXPECT_EQ(all->front().blobs, Needed({a, b}));
  auto gc = store().CollectGarbage(false);
  ASSERT_TRUE(gc.ok()) << gc.error().message;
  EXPECT_EQ(gc->blobs_removed, 0u);
  EXPECT_TRUE(Visible(DigestOf(c)));
  gc = store().CollectGarbage(/*drop_partials=*/true);
  ASSERT_TRUE(gc.ok()) << gc.error().message;
  EXPECT_EQ(gc->blobs_removed, 1u) << "with the pending release dropped, its blob goes";
  EXPECT_FALSE(Visible(DigestOf(c)));
  EXPECT_TRUE(Visible(DigestOf(a)) && Visible(DigestOf(b)));
}

// Release records written by gapsync up to eae3f3c hold the manifest alone: the store fills in
// their blob lists once, at open, with the function it is given, and keeps every other field.
TEST_P(RocksDbOnly, OldReleaseRecordsGetTheirBlobListsAtOpen) {
  const std::string a = RandomBytes(kChunk + 3, 63);
  const std::string b = RandomBytes(70, 64);
  Put(a);
  Put(b);
  store_.reset();
  {  // what the old code wrote: fields 1-5 of ReleaseRecord
    auto kv = OpenRocksDbKv(dir_ + "/db");
    ASSERT_TRUE(kv.ok()) << kv.error().message;
    auto old_record = [&](const std::string& manifest, bool pinned) {
      v1::ReleaseRecord rec;
      rec.set_manifest(manifest);
      rec.set_signature(std::string(64, 's'));
      rec.set_release_digest("sha256:" + std::string(64, 'b'));
      rec.set_ingested_unix(1600000000);
      rec.set_pinned(pinned);
      return rec.SerializeAsString();
    };
    ASSERT_OK(kv.value()->Commit({KvOp{Space::kReleases, ReleaseKey({"app", "1.0.0"}), old_record("blobs " + DigestOf(a).str(), true)},
                                  KvOp{Space::kPending, ReleaseKey({"app", "1.1.0"}), old_record("blobs " + DigestOf(b).str(), false)}}));
  }
  // The manifest's blob list, as the module that knows the bundle format would read it.
  int calls = 0;
  ManifestBlobsFn blobs_of = [&](std::string_view manifest) -> Result<std::vector<BlobDigest>> {
    ++calls;
    if (!manifest.starts_with("blobs ")) return MakeError(Errc::kCorrupt, "manifest does not parse");
    GS_ASSIGN_OR_RETURN(auto d, BlobDigest::Parse(manifest.substr(6)));
    return std::vector<BlobDigest>{d};
  };
  auto without = OpenAt(dir_ + "/db", {});
  ASSERT_FALSE(without.ok()) << "a store with old records opened without a way to read their manifests";
  EXPECT_EQ(without.error().code, Errc::kInvalidArgument);
  EXPECT_NE(without.error().message.find("app@1.0.0"), std::string::npos) << without.error().message;
  Open(blobs_of);
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(calls, 2);
  auto got = store().GetRelease({"app", "1.0.0"});
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->blobs, Needed({a}));
  EXPECT_TRUE((*got)->pinned);
  EXPECT_EQ((*got)->ingested_unix, 1600000000);
  EXPECT_EQ((*got)->release_digest.str(), "sha256:" + std::string(64, 'b'));
  auto gc = store().CollectGarbage(false);
  ASSERT_TRUE(gc.ok()) << gc.error().message;
  EXPECT_EQ(gc->blobs_removed, 0u) << "gc removed a blob an old release or an old pending release needs";
  // Filled in once: the next open needs no manifest reading.
  store_.reset();
  Open();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(Visible(DigestOf(a)) && Visible(DigestOf(b)));
}

// An old record whose manifest yields no blob list (damaged; gapsync never wrote such a one) does
// not stop the store from opening: fsck names it, and gc, which cannot know what it needs, removes
// nothing until the release is written again.
TEST_P(RocksDbOnly, AnOldReleaseRecordWhoseManifestDoesNotParseIsNamedAndStopsGc) {
  const std::string a = RandomBytes(100, 65);
  Put(a);
  store_.reset();
  {
    auto kv = OpenRocksDbKv(dir_ + "/db");
    ASSERT_TRUE(kv.ok()) << kv.error().message;
    v1::ReleaseRecord rec;
    rec.set_manifest("garbage");
    rec.set_release_digest("sha256:" + std::string(64, 'c'));
    rec.set_pinned(true);
    ASSERT_OK(kv.value()->Commit({KvOp{Space::kReleases, ReleaseKey({"app", "3.0.0"}), rec.SerializeAsString()}}));
  }
  Open([](std::string_view) -> Result<std::vector<BlobDigest>> {
    return MakeError(Errc::kCorrupt, "stored manifest does not parse");
  });
  ASSERT_NE(store_, nullptr);
  auto all = store().ListReleases();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u) << "the release is still listed";
  auto r = Fsck();
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_NE(r.problems[0].find("release app@3.0.0: stored manifest does not parse"), std::string::npos) << r.problems[0];
  auto gc = store().CollectGarbage(false);
  ASSERT_FALSE(gc.ok()) << "gc ran without knowing what a pinned release needs";
  EXPECT_EQ(gc.error().code, Errc::kCorrupt);
  EXPECT_TRUE(Visible(DigestOf(a)));
  // Written again (its bundle ingested again): mended.
  ASSERT_OK(store().PutRelease(ReleaseFor("app", "3.0.0", {a})));
  EXPECT_TRUE(Fsck().problems.empty());
  gc = store().CollectGarbage(false);
  ASSERT_TRUE(gc.ok()) << gc.error().message;
  EXPECT_TRUE(Visible(DigestOf(a)));
}

TEST_P(RocksDbOnly, DataSurvivesCloseAndReopen) {
  const std::string a = RandomBytes(3 * kChunk + 11, 29);
  const std::string b(2 * kChunk, 'z');
  Put(a);
  Put(b);
  auto rel = ReleaseFor("app", "1.2.3", {a, b});
  ASSERT_OK(store().PutRelease(rel));
  Reopen();
  ASSERT_NE(store_, nullptr);
  for (const auto* blob : {&a, &b}) {
    std::string got;
    ASSERT_OK(ReadInto(DigestOf(*blob), 0, blob->size(), got));
    EXPECT_TRUE(got == *blob);
  }
  auto got = store().GetRelease(rel.id);
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->manifest, rel.manifest);
  auto r = Fsck();
  EXPECT_TRUE(r.problems.empty());
  EXPECT_EQ(r.blobs_checked, 2u);
  EXPECT_EQ(r.orphan_chunks, 0u);
}

// Every blob record carries its own chunk_size, so a store may be reopened with another
// RocksDbOptions::chunk_size. Fsck and gc must count a blob's chunks with the record's chunk size,
// not the store's: otherwise the blob's chunks past the first look orphaned and gc deletes them.
TEST_P(RocksDbOnly, ReopenWithOtherChunkSizeKeepsOldBlobsIntact) {
  const std::string data = RandomBytes(3 * kChunk + 5, 32);
  const auto d = DigestOf(data);
  Put(data);
  ASSERT_OK(store().PutRelease(ReleaseFor("app", "1.0.0", {data})));
  store_.reset();
  RocksDbOptions o;
  o.chunk_size = 1 << 20;  // the default
  auto s = OpenRocksDbStore(dir_ + "/db", o);
  ASSERT_TRUE(s.ok()) << s.error().message;
  store_ = std::move(s).value();
  std::string got;
  ASSERT_OK(ReadInto(d, 0, data.size(), got));
  EXPECT_TRUE(got == data);
  auto before = Fsck();
  EXPECT_EQ(before.orphan_chunks, 0u) << "fsck counts the live chunks of a 4 KiB-chunk blob as orphans";
  auto gc = store().CollectGarbage(false);
  ASSERT_TRUE(gc.ok()) << gc.error().message;
  EXPECT_EQ(gc->orphan_chunks_removed, 0u) << "gc deleted chunks of a blob a pinned release needs";
  auto st = ReadInto(d, 0, data.size(), got);
  EXPECT_TRUE(st.ok()) << "pinned blob unreadable after gc: " << st.error().message;
  auto after = Fsck();
  EXPECT_TRUE(after.problems.empty()) << after.problems.front();
}

TEST_P(RocksDbOnly, UnsyncedCommitIsLostOnReopen) {
  const std::string a = RandomBytes(kChunk + 11, 30);
  Put(a, kOctet, /*sync=*/false);
  Reopen();
  EXPECT_FALSE(Visible(DigestOf(a)));
}

TEST_P(RocksDbOnly, SecondOpenOfSameFolderIsRefused) {
  RocksDbOptions o;
  o.chunk_size = kChunk;
  auto second = OpenRocksDbStore(dir_ + "/db", o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, Errc::kIo);
  EXPECT_NE(second.error().message.find("in use"), std::string::npos) << second.error().message;
}

// ---- piece-wise assembly (PutPiece, HeldPieces, CompletePieces, ReadPiece) ----

TEST_P(BlobStoreContract, PiecesInAnyOrderThenCompleteMakeTheBlobVisible) {
  const std::string data = RandomBytes(5 * kChunk + 123, 50);
  const auto d = DigestOf(data);
  EXPECT_EQ(store().chunk_size(), kChunk);
  EXPECT_EQ(HeldOf(data), Bits("000000"));
  PutPieces(data, {3, 5, 0, 4, 1});
  EXPECT_EQ(HeldOf(data), Bits("110111"));
  EXPECT_FALSE(Visible(d));
  PutPieces(data, {2});
  EXPECT_EQ(HeldOf(data), Bits("111111"));
  ASSERT_OK(store().CompletePieces(d));
  EXPECT_FALSE(Visible(d)) << "visible before Sync";
  EXPECT_EQ(HeldOf(data), Bits("111111"));
  ASSERT_OK(store().Sync());
  auto info = store().Stat(d);
  ASSERT_TRUE(info.ok() && info->has_value());
  EXPECT_EQ((*info)->size, data.size());
  EXPECT_EQ((*info)->media_type, kOctet);
  EXPECT_EQ((*info)->chunks, 6u);
  EXPECT_EQ((*info)->stored_bytes, data.size());  // random bytes: stored as they are
  std::string got;
  ASSERT_OK(ReadInto(d, 0, data.size(), got));
  EXPECT_TRUE(got == data) << "assembled blob reads back different bytes";
  ASSERT_OK(ReadInto(d, kChunk - 3, 2 * kChunk, got));
  EXPECT_TRUE(got == data.substr(kChunk - 3, 2 * kChunk));
  EXPECT_EQ(DurablePartial(d), 0u);
  EXPECT_EQ(HeldOf(data), Bits("111111"));
  // Completing again, and more pieces, change nothing.
  ASSERT_OK(store().CompletePieces(d));
  PutPieces(data, {2});
  ASSERT_OK(store().Sync());
  auto r = Fsck();
  EXPECT_TRUE(r.problems.empty()) << r.problems.front();
  EXPECT_EQ(r.blobs_checked, 1u);
  EXPECT_EQ(r.partial_blobs, 0u);
  EXPECT_EQ(r.orphan_chunks, 0u);
}

TEST_P(BlobStoreContract, HeldPiecesBeforeAndAfterSync) {
  const std::string data = RandomBytes(4 * kChunk + 9, 51);  // 5 pieces, a 9-byte tail
  const auto d = DigestOf(data);
  PutPieces(data, {0, 2});
  EXPECT_EQ(HeldOf(data), Bits("10100")) << "pieces not synced yet are held all the same";
  EXPECT_EQ(DurablePartial(d), 0u);
  ASSERT_OK(store().Sync());
  EXPECT_EQ(HeldOf(data), Bits("10100"));
  EXPECT_EQ(DurablePartial(d), 2 * kChunk);
  PutPieces(data, {4});
  EXPECT_EQ(HeldOf(data), Bits("10101"));
  EXPECT_EQ(DurablePartial(d), 2 * kChunk);
  ASSERT_OK(store().Sync());
  EXPECT_EQ(DurablePartial(d), 2 * kChunk + 9);
  // Another size: none held; the blob is not visible.
  auto other = store().HeldPieces(d, data.size() + kChunk);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->pieces, Bits("000000"));
  EXPECT_FALSE(other->visible);
  EXPECT_FALSE(Visible(d));
  auto r = Fsck();
  EXPECT_TRUE(r.problems.empty());
  EXPECT_EQ(r.partial_blobs, 1u);
  EXPECT_EQ(r.orphan_chunks, 0u) << "held pieces are not orphans";
}

TEST_P(BlobStoreContract, PutPieceTwiceIsIdempotent) {
  const std::string data = RandomBytes(3 * kChunk, 52);
  const auto d = DigestOf(data);
  PutPieces(data, {1, 1});
  ASSERT_OK(store().Sync());
  PutPieces(data, {1});
  ASSERT_OK(store().Sync());
  EXPECT_EQ(HeldOf(data), Bits("010"));
  EXPECT_EQ(DurablePartial(d), kChunk);
}

TEST_P(BlobStoreContract, PutPieceOfWrongIndexOrLengthIsRefused) {
  const std::string data = RandomBytes(3 * kChunk + 10, 53);  // 4 pieces, a 10-byte tail
  const auto d = DigestOf(data);
  struct Bad {
    uint32_t index;
    size_t from, len;
    std::string piece;  // what the message names
  };
  for (const auto& b : std::vector<Bad>{{4, 0, kChunk, "piece 4"},
                                        {UINT32_MAX, 0, kChunk, "piece 4294967295"},
                                        {0, 0, kChunk - 1, "piece 0"},
                                        {0, 0, kChunk + 1, "piece 0"},
                                        {1, kChunk, 0, "piece 1"},
                                        {3, 3 * kChunk, 9, "piece 3"},
                                        {3, 2 * kChunk, kChunk, "piece 3"}}) {
    auto st = store().PutPiece(d, data.size(), kOctet, b.index, Bytes(data, b.from, b.len));
    ASSERT_FALSE(st.ok()) << b.piece << " of " << b.len << " bytes accepted";
    EXPECT_EQ(st.error().code, Errc::kInvalidArgument);
    EXPECT_NE(st.error().message.find(d.str()), std::string::npos) << st.error().message;
    EXPECT_NE(st.error().message.find(b.piece), std::string::npos) << st.error().message;
  }
  EXPECT_EQ(HeldOf(data), Bits("0000"));
  // A zero-size blob has no pieces.
  const auto empty = DigestOf("");
  auto st = store().PutPiece(empty, 0, kOctet, 0, {});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kInvalidArgument);
  auto held = store().HeldPieces(empty, 0);
  ASSERT_TRUE(held.ok());
  EXPECT_TRUE(held->pieces.empty());
  ASSERT_OK(store().Sync());
  auto r = Fsck();
  EXPECT_EQ(r.partial_blobs, 0u);
  EXPECT_EQ(r.orphan_chunks, 0u) << "a refused piece was stored";
}

TEST_P(BlobStoreContract, CompleteWithMissingPiecesIsIncomplete) {
  const std::string data = RandomBytes(4 * kChunk + 1, 54);
  const auto d = DigestOf(data);
  auto st = store().CompletePieces(d);  // nothing held at all
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kIncomplete);
  EXPECT_NE(st.error().message.find(d.str()), std::string::npos) << st.error().message;
  PutPieces(data, {0, 1, 3, 4});
  st = store().CompletePieces(d);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kIncomplete);
  EXPECT_NE(st.error().message.find(d.str()), std::string::npos) << st.error().message;
  ASSERT_OK(store().Sync());
  EXPECT_FALSE(Visible(d));
  EXPECT_EQ(HeldOf(data), Bits("11011")) << "an incomplete blob keeps its pieces";
  PutPieces(data, {2});
  ASSERT_OK(store().CompletePieces(d));
  ASSERT_OK(store().Sync());
  std::string got;
  ASSERT_OK(ReadInto(d, 0, data.size(), got));
  EXPECT_TRUE(got == data);
}

TEST_P(BlobStoreContract, CompleteWithAWrongPieceIsCorruptAndForgetsThePieces) {
  const std::string data = RandomBytes(3 * kChunk + 77, 55);
  std::string wrong = data;
  wrong[kChunk + 5] ^= 0x10;  // piece 1 differs
  const auto d = DigestOf(data);
  PutPieces(data, {0, 2, 3});
  ASSERT_OK(store().PutPiece(d, data.size(), kOctet, 1, PieceOf(wrong, 1)));
  ASSERT_OK(store().Sync());  // the record of the pieces is durable; it goes too
  EXPECT_EQ(HeldOf(data), Bits("1111"));
  auto st = store().CompletePieces(d);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kCorrupt);
  EXPECT_NE(st.error().message.find(d.str()), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("pieces hash to " + DigestOf(wrong).str()), std::string::npos)
      << st.error().message;
  EXPECT_EQ(HeldOf(data), Bits("0000")) << "the pieces of a blob that did not verify are kept";
  std::string got;
  st = ReadPieceInto(d, 0, got);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kNotFound);
  ASSERT_OK(store().Sync());
  EXPECT_FALSE(Visible(d));
  EXPECT_FALSE(Visible(DigestOf(wrong)));
  EXPECT_EQ(HeldOf(data), Bits("0000"));
  EXPECT_EQ(DurablePartial(d), 0u);
  st = store().CompletePieces(d);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kIncomplete);
  // The right pieces still make it.
  PutPieces(data, {3, 2, 1, 0});
  ASSERT_OK(store().CompletePieces(d));
  ASSERT_OK(store().Sync());
  ASSERT_OK(ReadInto(d, 0, data.size(), got));
  EXPECT_TRUE(got == data);
  auto r = Fsck();
  EXPECT_TRUE(r.problems.empty());
  EXPECT_EQ(r.partial_blobs, 0u);
  EXPECT_EQ(r.orphan_chunks, 0u);
}

TEST_P(BlobStoreContract, ReadPieceOfHeldPiecesAndOfVisibleBlobs) {
  const std::string data = RandomBytes(3 * kChunk + 10, 56);
  const auto d = DigestOf(data);
  PutPieces(data, {1, 3});
  std::string got;
  ASSERT_OK(ReadPieceInto(d, 1, got));  // not synced yet
  EXPECT_TRUE(got == data.substr(kChunk, kChunk));
  ASSERT_OK(ReadPieceInto(d, 3, got));
  EXPECT_TRUE(got == data.substr(3 * kChunk));
  for (uint32_t missing : {0u, 2u, 4u}) {
    auto st = ReadPieceInto(d, missing, got);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, Errc::kNotFound);
    EXPECT_NE(st.error().message.find(d.str()), std::string::npos) << st.error().message;
    EXPECT_NE(st.error().message.find("piece " + std::to_string(missing)), std::string::npos) << st.error().message;
  }
  ASSERT_OK(store().Sync());
  ASSERT_OK(ReadPieceInto(d, 1, got));
  EXPECT_TRUE(got == data.substr(kChunk, kChunk));
  PutPieces(data, {0, 2});
  ASSERT_OK(store().CompletePieces(d));
  ASSERT_OK(ReadPieceInto(d, 2, got));  // completed, not synced
  EXPECT_TRUE(got == data.substr(2 * kChunk, kChunk));
  ASSERT_OK(store().Sync());
  for (uint32_t i = 0; i < 4; ++i) {
    ASSERT_OK(ReadPieceInto(d, i, got));
    EXPECT_TRUE(got == data.substr(size_t{i} * kChunk, kChunk)) << "piece " << i;
  }
  auto st = ReadPieceInto(d, 4, got);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kNotFound);
  // A blob written sequentially serves its pieces too.
  const std::string seq = RandomBytes(2 * kChunk + 1, 57);
  Put(seq);
  for (uint32_t i = 0; i < 3; ++i) {
    ASSERT_OK(ReadPieceInto(DigestOf(seq), i, got));
    EXPECT_TRUE(got == seq.substr(size_t{i} * kChunk, kChunk)) << "piece " << i;
  }
  st = ReadPieceInto(DigestOf("unknown"), 0, got);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kNotFound);
  EXPECT_NE(st.error().message.find(DigestOf("unknown").str()), std::string::npos) << st.error().message;
}

// A held piece whose stored bytes rot is reported, never served, and forgotten when the blob is
// completed (so that it is fetched again).
TEST_P(BlobStoreContract, CorruptHeldPieceIsReportedAndForgotten) {
  const std::string data = RandomBytes(3 * kChunk, 58);
  const auto d = DigestOf(data);
  PutPieces(data, {0, 1, 2});
  ASSERT_OK(store().Sync());
  ASSERT_OK(Corrupt(d, 1));
  std::string got;
  auto st = ReadPieceInto(d, 1, got);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kCorrupt);
  st = store().CompletePieces(d);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kCorrupt);
  EXPECT_NE(st.error().message.find(d.str()), std::string::npos) << st.error().message;
  EXPECT_EQ(HeldOf(data), Bits("101"));
  PutPieces(data, {1});
  ASSERT_OK(store().CompletePieces(d));
  ASSERT_OK(store().Sync());
  ASSERT_OK(ReadInto(d, 0, data.size(), got));
  EXPECT_TRUE(got == data);
}

TEST_P(BlobStoreContract, PutPieceOfAVisibleBlobIsANoOp) {
  const std::string data = RandomBytes(2 * kChunk + 3, 59);
  const auto d = DigestOf(data);
  Put(data);
  std::string other = RandomBytes(kChunk, 60);
  ASSERT_OK(store().PutPiece(d, data.size(), kOctet, 0, Bytes(other)));
  EXPECT_EQ(HeldOf(data), Bits("111"));
  ASSERT_OK(store().CompletePieces(d));
  ASSERT_OK(store().Sync());
  std::string got;
  ASSERT_OK(ReadInto(d, 0, data.size(), got));
  EXPECT_TRUE(got == data) << "a piece overwrote a visible blob";
  EXPECT_EQ(DurablePartial(d), 0u);
  auto r = Fsck();
  EXPECT_TRUE(r.problems.empty());
  EXPECT_EQ(r.partial_blobs, 0u);
}

TEST_P(BlobStoreContract, SequentialPartialBecomesPieces) {
  const std::string data = RandomBytes(5 * kChunk + 17, 61);
  const auto d = DigestOf(data);
  {
    auto w = store().OpenWriter(d, data.size(), kOctet);
    ASSERT_TRUE(w.ok());
    ASSERT_OK((*w)->Append(Bytes(data, 0, 2 * kChunk + 100)));
    ASSERT_OK((*w)->Suspend());
  }
  ASSERT_OK(store().Sync());
  EXPECT_EQ(HeldOf(data), Bits("110000")) << "the whole chunks of a stopped ingest are pieces held";
  std::string got;
  ASSERT_OK(ReadPieceInto(d, 1, got));
  EXPECT_TRUE(got == data.substr(kChunk, kChunk));
  PutPieces(data, {5, 3});
  EXPECT_EQ(HeldOf(data), Bits("110101")) << "the tail of a stopped ingest is not a piece";
  ASSERT_OK(store().Sync());
  EXPECT_EQ(HeldOf(data), Bits("110101"));
  EXPECT_EQ(DurablePartial(d), 3 * kChunk + 17);
  {
    auto w = store().OpenWriter(d, data.size(), kOctet);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ((*w)->offset(), 0u) << "a writer resumed from a record of pieces";
  }
  PutPieces(data, {4, 2});
  ASSERT_OK(store().CompletePieces(d));
  ASSERT_OK(store().Sync());
  ASSERT_OK(ReadInto(d, 0, data.size(), got));
  EXPECT_TRUE(got == data);
  auto r = Fsck();
  EXPECT_TRUE(r.problems.empty());
  EXPECT_EQ(r.partial_blobs, 0u);
  EXPECT_EQ(r.orphan_chunks, 0u);
}

// A sequential writer for a blob that is being assembled starts from 0, and once it committed no
// record of pieces comes back (neither from the synced record nor from pieces still in memory).
TEST_P(BlobStoreContract, SequentialWriterOverPieces) {
  const std::string a = RandomBytes(4 * kChunk + 1, 62);
  PutPieces(a, {0, 2});
  ASSERT_OK(store().Sync());
  PutPieces(a, {3});      // in memory only
  Put(a);                 // asserts the writer starts at 0; syncs
  ASSERT_OK(store().Sync());
  EXPECT_TRUE(Visible(DigestOf(a)));
  EXPECT_EQ(DurablePartial(DigestOf(a)), 0u);
  EXPECT_EQ(HeldOf(a), Bits("11111"));

  const std::string b = RandomBytes(3 * kChunk, 63);  // pieces never synced
  PutPieces(b, {1});
  Put(b);
  ASSERT_OK(store().Sync());
  EXPECT_EQ(DurablePartial(DigestOf(b)), 0u);

  const std::string c = RandomBytes(3 * kChunk + 5, 64);  // a piece between commit and Sync
  Put(c, kOctet, /*sync=*/false);
  PutPieces(c, {2});
  ASSERT_OK(store().Sync());
  ASSERT_OK(store().Sync());
  EXPECT_TRUE(Visible(DigestOf(c)));
  EXPECT_EQ(DurablePartial(DigestOf(c)), 0u);

  for (const auto* blob : {&a, &b, &c}) {
    std::string got;
    ASSERT_OK(ReadInto(DigestOf(*blob), 0, blob->size(), got));
    EXPECT_TRUE(got == *blob);
  }
  if (GetParam() == Backend::kRocksDb) Reopen();
  auto r = Fsck();
  EXPECT_TRUE(r.problems.empty()) << r.problems.front();
  EXPECT_EQ(r.blobs_checked, 3u);
  EXPECT_EQ(r.partial_blobs, 0u) << "a record of pieces outlived the blob's commit";
  EXPECT_EQ(r.orphan_chunks, 0u);
}

TEST_P(BlobStoreContract, CollectGarbageKeepsPiecesUnlessDroppingPartials) {
  const std::string data = RandomBytes(4 * kChunk + 5, 65);
  const auto d = DigestOf(data);
  PutPieces(data, {0, 2});
  ASSERT_OK(store().Sync());
  PutPieces(data, {4});  // not synced: gc must keep it too
  auto keep = store().CollectGarbage(false);
  ASSERT_TRUE(keep.ok()) << keep.error().message;
  EXPECT_EQ(keep->partials_removed, 0u);
  EXPECT_EQ(keep->orphan_chunks_removed, 0u) << "gc took chunks of held pieces";
  EXPECT_EQ(HeldOf(data), Bits("10101"));
  std::string got;
  for (uint32_t i : {0u, 2u, 4u}) {
    ASSERT_OK(ReadPieceInto(d, i, got));
    EXPECT_TRUE(got == data.substr(size_t{i} * kChunk, kChunk)) << "piece " << i;
  }
  auto r = Fsck();
  EXPECT_TRUE(r.problems.empty());
  EXPECT_EQ(r.partial_blobs, 1u);
  EXPECT_EQ(r.orphan_chunks, 0u);

  auto drop = store().CollectGarbage(true);
  ASSERT_TRUE(drop.ok()) << drop.error().message;
  EXPECT_EQ(drop->partials_removed, 1u);
  EXPECT_GE(drop->orphan_chunks_removed, 1u);
  EXPECT_EQ(HeldOf(data), Bits("00000"));
  ASSERT_OK(store().Sync());
  EXPECT_EQ(HeldOf(data), Bits("00000")) << "dropped pieces came back at Sync";
  EXPECT_EQ(DurablePartial(d), 0u);
  r = Fsck();
  EXPECT_TRUE(r.problems.empty());
  EXPECT_EQ(r.partial_blobs, 0u);
  EXPECT_EQ(r.orphan_chunks, 0u);
  // And it can be assembled again from scratch.
  PutPieces(data, {4, 3, 2, 1, 0});
  ASSERT_OK(store().CompletePieces(d));
  ASSERT_OK(store().Sync());
  ASSERT_OK(ReadInto(d, 0, data.size(), got));
  EXPECT_TRUE(got == data);
}

TEST_P(BlobStoreContract, PiecesAreCompressedLikeSequentialWrites) {
  std::string zeros(3 * kChunk + 7, '\0');
  for (size_t i = 0; i < zeros.size(); i += 101) zeros[i] = static_cast<char>(i);
  PutPieces(zeros, {2, 0, 3, 1});
  ASSERT_OK(store().CompletePieces(DigestOf(zeros)));
  const std::string layer(2 * kChunk, '\0');
  const std::string gz = "application/vnd.oci.image.layer.v1.tar+gzip";
  PutPieces(layer, {1, 0}, gz);
  ASSERT_OK(store().CompletePieces(DigestOf(layer)));
  ASSERT_OK(store().Sync());
  auto info = store().Stat(DigestOf(zeros));
  ASSERT_TRUE(info.ok() && info->has_value());
  EXPECT_LT((*info)->stored_bytes, zeros.size() / 4);
  std::string got;
  ASSERT_OK(ReadInto(DigestOf(zeros), 0, zeros.size(), got));
  EXPECT_TRUE(got == zeros);
  info = store().Stat(DigestOf(layer));
  ASSERT_TRUE(info.ok() && info->has_value());
  EXPECT_EQ((*info)->stored_bytes, layer.size()) << "a compressed media type was recompressed";
  EXPECT_EQ((*info)->media_type, gz);
}

TEST_P(BlobStoreContract, CompleteOfTheEmptyBlob) {
  const auto d = DigestOf("");
  ASSERT_OK(store().CompletePieces(d));
  ASSERT_OK(store().Sync());
  auto info = store().Stat(d);
  ASSERT_TRUE(info.ok() && info->has_value());
  EXPECT_EQ((*info)->size, 0u);
  std::string got;
  EXPECT_OK(ReadInto(d, 0, 0, got));
  EXPECT_TRUE(Fsck().problems.empty());
}

// One thread stores the pieces of blob A (in a shuffled order, with a helper doing the other
// half), another writes blobs sequentially with checkpoints, another calls Sync() over and over
// and another asks which pieces are held. Everything completes and reads back.
TEST_P(BlobStoreContract, PiecesWritesAndSyncsConcurrently) {
  const std::string a = RandomBytes(96 * kChunk + 33, 66);
  std::vector<std::string> bs;
  for (uint32_t i = 0; i < 4; ++i) bs.push_back(RandomBytes(10 * kChunk + 100 * i, 70 + i));
  bs.push_back(std::string(12 * kChunk, 'c'));  // compressible
  std::vector<uint32_t> order(Pieces(a));
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(7));

  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  auto check = [&](const Status& st, const char* what) {
    if (!st.ok()) {
      failures++;
      ADD_FAILURE() << what << ": " << st.error().message;
    }
  };
  auto put_pieces = [&](size_t first) {
    for (size_t k = first; k < order.size(); k += 2) {
      check(store().PutPiece(DigestOf(a), a.size(), kOctet, order[k], PieceOf(a, order[k])), "PutPiece");
    }
  };
  std::thread pieces1(put_pieces, 0);
  std::thread pieces2(put_pieces, 1);
  std::thread writer([&] {
    for (const auto& b : bs) {
      auto w = store().OpenWriter(DigestOf(b), b.size(), kOctet);
      if (!w.ok()) {
        check(w.error(), "OpenWriter");
        continue;
      }
      for (size_t i = 0; i < b.size(); i += 1500) {
        check((*w)->Append(Bytes(b, i, 1500)), "Append");
        if (i % (3 * kChunk) < 1500) check((*w)->Checkpoint(), "Checkpoint");
      }
      check((*w)->Commit(), "Commit");
    }
  });
  std::thread syncer([&] {
    while (!done) {
      check(store().Sync(), "Sync");
      std::this_thread::yield();
    }
  });
  std::thread watcher([&] {
    size_t last = 0;
    while (!done) {
      auto held = store().HeldPieces(DigestOf(a), a.size());
      if (!held.ok()) {
        check(held.error(), "HeldPieces");
        continue;
      }
      size_t n = static_cast<size_t>(std::count(held->pieces.begin(), held->pieces.end(), true));
      if (n < last) {
        failures++;
        ADD_FAILURE() << "held pieces went from " << last << " to " << n;
      }
      last = n;
      std::vector<uint8_t> piece;
      if (n > 0) {
        auto first = static_cast<uint32_t>(std::find(held->pieces.begin(), held->pieces.end(), true) - held->pieces.begin());
        check(store().ReadPiece(DigestOf(a), first, piece), "ReadPiece");
      }
    }
  });
  pieces1.join();
  pieces2.join();
  writer.join();
  done = true;
  syncer.join();
  watcher.join();
  ASSERT_EQ(failures.load(), 0);

  EXPECT_EQ(HeldOf(a), std::vector<bool>(Pieces(a), true));
  ASSERT_OK(store().CompletePieces(DigestOf(a)));
  ASSERT_OK(store().Sync());
  if (GetParam() == Backend::kRocksDb) Reopen();
  std::string got;
  ASSERT_OK(ReadInto(DigestOf(a), 0, a.size(), got));
  EXPECT_TRUE(got == a) << "assembled blob reads back different bytes";
  for (const auto& b : bs) {
    ASSERT_OK(ReadInto(DigestOf(b), 0, b.size(), got));
    EXPECT_TRUE(got == b) << "sequential blob reads back different bytes";
  }
  auto r = Fsck();
  EXPECT_TRUE(r.problems.empty()) << r.problems.front();
  EXPECT_EQ(r.blobs_checked, 1 + bs.size());
  EXPECT_EQ(r.partial_blobs, 0u);
  EXPECT_EQ(r.orphan_chunks, 0u);
}

// Only pieces stored before the last Sync() survive a crash (close without Sync).
TEST_P(RocksDbOnly, OnlySyncedPiecesSurviveAReopen) {
  const std::string data = RandomBytes(4 * kChunk + 50, 67);
  const auto d = DigestOf(data);
  PutPieces(data, {0, 2});
  ASSERT_OK(store().Sync());
  PutPieces(data, {1, 4});
  EXPECT_EQ(HeldOf(data), Bits("11101"));
  Reopen();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(HeldOf(data), Bits("10100"));
  EXPECT_EQ(DurablePartial(d), 2 * kChunk);
  std::string got;
  ASSERT_OK(ReadPieceInto(d, 2, got));
  EXPECT_TRUE(got == data.substr(2 * kChunk, kChunk));
  auto st = ReadPieceInto(d, 1, got);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kNotFound);

  // Completed but not synced: not visible after a crash; the synced pieces still are held.
  PutPieces(data, {1, 3, 4});
  ASSERT_OK(store().Sync());
  ASSERT_OK(store().CompletePieces(d));
  Reopen();
  EXPECT_FALSE(Visible(d));
  EXPECT_EQ(HeldOf(data), Bits("11111"));
  ASSERT_OK(store().CompletePieces(d));
  ASSERT_OK(store().Sync());
  Reopen();
  ASSERT_OK(ReadInto(d, 0, data.size(), got));
  EXPECT_TRUE(got == data);
  auto r = Fsck();
  EXPECT_TRUE(r.problems.empty());
  EXPECT_EQ(r.partial_blobs, 0u);
  EXPECT_EQ(r.orphan_chunks, 0u);
}

// A sequential partial recorded with another chunk size is no record of pieces; the blob starts
// afresh with pieces of the store's chunk size.
TEST_P(RocksDbOnly, PiecesWithAnotherChunkSizeStartAfresh) {
  const std::string data = RandomBytes(6 * kChunk, 68);
  const auto d = DigestOf(data);
  PutPieces(data, {0, 1});
  ASSERT_OK(store().Sync());
  store_.reset();
  RocksDbOptions o;
  o.chunk_size = 2 * kChunk;
  auto s = OpenRocksDbStore(dir_ + "/db", o);
  ASSERT_TRUE(s.ok()) << s.error().message;
  store_ = std::move(s).value();
  ASSERT_EQ(store().chunk_size(), 2 * kChunk);
  auto held = store().HeldPieces(d, data.size());
  ASSERT_TRUE(held.ok());
  EXPECT_EQ(held->pieces, Bits("000"));
  for (uint32_t i : {2u, 0u, 1u}) {
    ASSERT_OK(store().PutPiece(d, data.size(), kOctet, i, Bytes(data, size_t{i} * 2 * kChunk, 2 * kChunk)));
  }
  ASSERT_OK(store().CompletePieces(d));
  ASSERT_OK(store().Sync());
  std::string got;
  ASSERT_OK(ReadInto(d, 0, data.size(), got));
  EXPECT_TRUE(got == data);
  auto r = Fsck();
  EXPECT_TRUE(r.problems.empty());
  EXPECT_EQ(r.partial_blobs, 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, BlobStoreContract,
                         ::testing::Values(Backend::kMemory, Backend::kRocksDb, Backend::kFaultInjection),
                         [](const ::testing::TestParamInfo<Backend>& i) {
                           return i.param == Backend::kMemory ? "Memory" : i.param == Backend::kRocksDb ? "RocksDb" : "FaultInjection";
                         });
INSTANTIATE_TEST_SUITE_P(Backends, RocksDbOnly, ::testing::Values(Backend::kRocksDb),
                         [](const ::testing::TestParamInfo<Backend>&) { return "RocksDb"; });
INSTANTIATE_TEST_SUITE_P(Backends, SuspendResume,
                         ::testing::Values(Backend::kMemory, Backend::kRocksDb, Backend::kFaultInjection),
                         [](const ::testing::TestParamInfo<Backend>& i) {
                           return i.param == Backend::kMemory ? "Memory" : i.param == Backend::kRocksDb ? "RocksDb" : "FaultInjection";
                         });

TEST(IsCompressedMediaType, Compressed) {
  for (const char* t : {"application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+zstd",
                        "application/vnd.docker.image.rootfs.diff.tar.gzip", "application/gzip", "application/zstd",
                        "application/x-xz", "application/zip"}) {
    EXPECT_TRUE(IsCompressedMediaType(t)) << t;
  }
}

TEST(IsCompressedMediaType, NotCompressed) {
  for (const char* t : {"application/octet-stream", "application/vnd.oci.image.layer.v1.tar",
                        "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.config.v1+json", "",
                        "gzip"}) {
    EXPECT_FALSE(IsCompressedMediaType(t)) << t;
  }
}

}  // namespace
}  // namespace gapsync::store
