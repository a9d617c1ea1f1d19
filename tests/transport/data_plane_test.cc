// The data plane on loopback, in one process: torrent layout and info, a release moving from one
// store to another (plain TCP and mutual TLS), and a peer that uploads corrupt bytes.
#include "transport/data_plane.h"

#include "store/blob_store.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "proto/sha256.h"
#include "transport/cluster_ca.h"

namespace gapsync::transport {
namespace {

constexpr uint32_t kMiB = 1 << 20;
const ReleaseDigest kRelease = ReleaseDigest::Parse("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef").value();
const ReleaseDigest kOtherRelease = ReleaseDigest::Parse("sha256:" + std::string(64, 'f')).value();

// One logger per name (a node of a test); DP_TEST_DEBUG=1 in the environment logs at debug level.
std::shared_ptr<spdlog::logger> Log(const std::string& name = "data-plane-test") {
  if (auto l = spdlog::get(name)) return l;
  auto l = spdlog::stderr_color_mt(name);
  l->set_level(std::getenv("DP_TEST_DEBUG") ? spdlog::level::debug : spdlog::level::warn);
  return l;
}

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

BlobDigest DigestOf(const std::vector<uint8_t>& bytes) {
  Sha256 h;
  h.Update(std::span<const uint8_t>(bytes));
  return h.Finish();
}

// The data plane's view of a store passing every call to another one; the test stores below
// change one call.
class ForwardingStore : public store::PieceStore {
 public:
  explicit ForwardingStore(store::PieceStore& s) : s_(s) {}
  uint32_t chunk_size() const override { return s_.chunk_size(); }
  Status PutPiece(const BlobDigest& d, uint64_t size, const std::string& mt, uint32_t i, std::span<const uint8_t> b) override {
    return s_.PutPiece(d, size, mt, i, b);
  }
  Result<store::PiecesHeld> HeldPieces(const BlobDigest& d, uint64_t size) override { return s_.HeldPieces(d, size); }
  Status CompletePieces(const BlobDigest& d) override { return s_.CompletePieces(d); }
  Status ReadPiece(const BlobDigest& d, uint32_t i, std::vector<uint8_t>& out) override { return s_.ReadPiece(d, i, out); }
  Status Sync() override { return s_.Sync(); }

 protected:
  store::PieceStore& s_;
};

// A store that holds pieces and claims to complete a blob from them without checking or
// completing anything: the liar below keeps serving pieces that are not the signed blob's bytes.
class ClaimsCompletion final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Status CompletePieces(const BlobDigest&) override { return OkStatus(); }
};

// A store whose blob checks (CompletePieces) wait until Open(): a check that takes long.
class GatedCompletion final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Status CompletePieces(const BlobDigest& d) override {
    {
      std::unique_lock lock(mu_);
      ++waiting_;
      cv_.notify_all();
      cv_.wait(lock, [this] { return open_; });
    }
    return s_.CompletePieces(d);
  }
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool WaitUntilSomeCheckWaits(std::chrono::seconds limit) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [this] { return waiting_ > 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int waiting_ = 0;
};

class DataPlaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gapsync-dp-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // Three blobs: several pieces with a short tail, exactly one piece, less than one piece.
    for (auto [size, seed] : {std::pair<size_t, uint32_t>{2 * kMiB + kMiB / 2 + 7, 1}, {kMiB, 2}, {300'000, 3}}) {
      blobs_.push_back(RandomBytes(size, seed));
      specs_.push_back({DigestOf(blobs_.back()), size, "application/octet-stream"});
    }
    layout_ = TorrentLayout::Make(specs_, kMiB);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::unique_ptr<store::BlobStore> OpenStore(const std::string& name) {
    auto s = store::OpenRocksDbStore(dir_ + "/" + name);
    EXPECT_TRUE(s.ok()) << s.error().message;
    return std::move(s).value();
  }

  void Fill(store::BlobStore& s) {
    for (size_t i = 0; i < blobs_.size(); ++i) {
      auto w = s.OpenWriter(specs_[i].digest, specs_[i].size, specs_[i].media_type);
      ASSERT_TRUE(w.ok());
      ASSERT_TRUE(w.value()->Append(blobs_[i]).ok());
      ASSERT_TRUE(w.value()->Commit().ok());
    }
    ASSERT_TRUE(s.Sync().ok());
  }

  // Counts blob_done callbacks; waits for a number of them.
  struct Done {
    std::mutex mu;
    std::condition_variable cv;
    std::set<BlobDigest> blobs;
    bool WaitFor(size_t n, std::chrono::seconds limit) {
      std::unique_lock lock(mu);
      return cv.wait_for(lock, limit, [&] { return blobs.size() >= n; });
    }
  };
  DataPlaneCallbacks Callbacks(Done& done) {
    DataPlaneCallbacks cb;
    cb.blob_done = [&done](const ReleaseDigest&, const BlobDigest& d) {
      std::lock_guard lock(done.mu);
      done.blobs.insert(d);
      done.cv.notify_all();
    };
    return cb;
  }

  // A seed holding the release and a leech fetching it from the seed alone, both started with
  // `o` (their stores named by `tag`). Null (and the test failed) if a step fails.
  struct Pair {
    std::unique_ptr<store::BlobStore> seed_store, leech_store;
    Done seed_done, leech_done;
    std::unique_ptr<DataPlane> seed, leech;  // after the stores and Dones: stopped first
  };
  std::unique_ptr<Pair> StartPair(const DataPlaneOptions& o, const std::string& tag) {
    auto pair = std::make_unique<Pair>();
    pair->seed_store = OpenStore("seed" + tag);
    pair->leech_store = OpenStore("leech" + tag);
    Fill(*pair->seed_store);
    auto info = BuildTorrentInfo(*pair->seed_store, layout_, "", kRelease);
    auto seed = DataPlane::Start(*pair->seed_store, o, Callbacks(pair->seed_done), Log());
    auto leech = DataPlane::Start(*pair->leech_store, o, Callbacks(pair->leech_done), Log());
    if (!info.ok() || !seed.ok() || !leech.ok()) {
      ADD_FAILURE() << "starting the seed and the leech failed";
      return nullptr;
    }
    pair->seed = std::move(seed).value();
    pair->leech = std::move(leech).value();
    if (!pair->seed->Add(kRelease, "r@1", layout_, info.value()).ok() ||
        !pair->leech->Add(kRelease, "r@1", layout_, info.value()).ok()) {
      ADD_FAILURE() << "adding the release failed";
      return nullptr;
    }
    pair->leech->SetPeers({"127.0.0.1:" + std::to_string(pair->seed->port())});
    return pair;
  }

  void ExpectHoldsEveryBlob(store::BlobStore& s) {
    for (size_t i = 0; i < blobs_.size(); ++i) {
      std::vector<uint8_t> got;
      auto st = s.Read(specs_[i].digest, 0, specs_[i].size, [&](std::span<const uint8_t> b) {
        got.insert(got.end(), b.begin(), b.end());
        return OkStatus();
      });
      ASSERT_TRUE(st.ok()) << st.error().message;
      EXPECT_EQ(got, blobs_[i]) << "blob " << i;
    }
  }

  std::string dir_;
  std::vector<std::vector<uint8_t>> blobs_;
  std::vector<BlobSpec> specs_;
  TorrentLayout layout_;
};

TEST_F(DataPlaneTest, LayoutLeavesOutEmptyAndRepeatedBlobs) {
  auto specs = specs_;
  specs.insert(specs.begin() + 1, BlobSpec{DigestOf({}), 0, "x"});
  specs.push_back(specs_[0]);
  auto l = TorrentLayout::Make(specs, kMiB, kMiB);
  ASSERT_EQ(l.blobs.size(), 3u);
  EXPECT_EQ(l.first_piece, (std::vector<uint32_t>{0, 3, 4}));
  EXPECT_EQ(l.num_pieces, 5u);
  EXPECT_EQ(l.total_bytes, specs_[0].size + specs_[1].size + specs_[2].size);
  EXPECT_EQ(l.blob_of_piece(0), 0u);
  EXPECT_EQ(l.blob_of_piece(2), 0u);
  EXPECT_EQ(l.blob_of_piece(3), 1u);
  EXPECT_EQ(l.blob_of_piece(4), 2u);
}

TEST_F(DataPlaneTest, PiecesAreAWholeFractionOfAChunk) {
  // 1 MiB chunks: 128 KiB pieces, eight to a chunk; a blob's last chunk and piece are short.
  const auto& l = layout_;
  EXPECT_EQ(l.piece_size, kPieceSize);
  EXPECT_EQ(l.pieces_per_chunk(), 8u);
  // 2.5 MiB + 7 bytes: 21 pieces in 3 chunks; 1 MiB: 8 in 1; 300000 bytes: 3 in 1.
  EXPECT_EQ(l.first_piece, (std::vector<uint32_t>{0, 21, 29}));
  EXPECT_EQ(l.first_chunk, (std::vector<uint32_t>{0, 3, 4}));
  EXPECT_EQ(l.num_pieces, 32u);
  EXPECT_EQ(l.num_chunks, 5u);
  EXPECT_EQ(l.chunk_in_blob(7), 0u);
  EXPECT_EQ(l.chunk_in_blob(8), 1u);
  EXPECT_EQ(l.chunk_in_blob(20), 2u);
  EXPECT_EQ(l.chunk_ordinal(20), 2u);
  EXPECT_EQ(l.chunk_ordinal(21), 3u);
  EXPECT_EQ(l.chunk_ordinal(31), 4u);
  EXPECT_EQ(l.chunk_len(0, 2), kMiB / 2 + 7);
  EXPECT_EQ(l.chunk_len(2, 0), 300'000u);
  // A chunk no bigger than a piece is one piece.
  EXPECT_EQ(TorrentLayout::Make(specs_, 64 << 10).piece_size, 64u << 10);
}

TEST_F(DataPlaneTest, TorrentInfoIsDeterministicAndCheckedAgainstTheLayout) {
  auto a = OpenStore("a");
  Fill(*a);
  auto info = BuildTorrentInfo(*a, layout_, "", kRelease);
  ASSERT_TRUE(info.ok()) << info.error().message;
  auto again = BuildTorrentInfo(*a, layout_, "", kRelease);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(info.value(), again.value());
  EXPECT_TRUE(CheckTorrentInfo(info.value(), layout_, "", kRelease).ok());
  // Another release with the same blobs is another torrent.
  auto other = BuildTorrentInfo(*a, layout_, "", kOtherRelease);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other.value(), info.value());
  EXPECT_FALSE(CheckTorrentInfo(info.value(), layout_, "", kOtherRelease).ok());
  // Another TLS root, another blob size, a missing piece hash, garbage: all refused.
  EXPECT_FALSE(CheckTorrentInfo(info.value(), layout_, "-----BEGIN CERTIFICATE-----", kRelease).ok());
  auto specs = specs_;
  specs[2].size += 1;
  EXPECT_FALSE(CheckTorrentInfo(info.value(), TorrentLayout::Make(specs, kMiB), "", kRelease).ok());
  std::string shorter = info.value();
  auto at = shorter.find("6:pieces");
  ASSERT_NE(at, std::string::npos);
  EXPECT_FALSE(CheckTorrentInfo(shorter.replace(at, 11, "6:pieces80:"), layout_, "", kRelease).ok());
  EXPECT_FALSE(CheckTorrentInfo("not bencode", layout_, "", kRelease).ok());
}

TEST_F(DataPlaneTest, ReleaseMovesBetweenTwoStoresOverPlainTcp) {
  auto a = OpenStore("a");
  auto b = OpenStore("b");
  Fill(*a);
  auto info = BuildTorrentInfo(*a, layout_, "", kRelease);
  ASSERT_TRUE(info.ok());
  Done done_a, done_b;
  DataPlaneOptions o;
  o.listen_host = "127.0.0.1";
  o.tls = false;
  auto seed = DataPlane::Start(*a, o, Callbacks(done_a), Log());
  ASSERT_TRUE(seed.ok()) << seed.error().message;
  auto leech = DataPlane::Start(*b, o, Callbacks(done_b), Log());
  ASSERT_TRUE(leech.ok()) << leech.error().message;
  ASSERT_TRUE(seed.value()->Add(kRelease, "r@1", layout_, info.value()).ok());
  EXPECT_EQ(seed.value()->Add(kRelease, "r@1", layout_, info.value()).error().code, Errc::kConflict);
  ASSERT_TRUE(leech.value()->Add(kRelease, "r@1", layout_, info.value()).ok());
  leech.value()->SetPeers({"not an address", "127.0.0.1:", "127.0.0.1:x",
                           "127.0.0.1:" + std::to_string(seed.value()->port())});
  ASSERT_TRUE(done_b.WaitFor(3, std::chrono::seconds(60))) << "blobs done: " << done_b.blobs.size();
  auto t = leech.value()->Transfers();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_TRUE(t[0].complete);
  EXPECT_EQ(t[0].bytes_have, layout_.total_bytes);
  seed.value()->Stop();
  leech.value()->Stop();
  ExpectHoldsEveryBlob(*b);
}

// The receive buffer (SO_RCVBUF) of the data plane's TCP connections, as `ss` reports it: the
// kernel doubles what was set ("rb" in skmem). One value per connection to or from `port`.
std::vector<long> ReceiveBuffersOf(uint16_t port) {
  const std::string cmd = "ss -tmnH state established '( sport = :" + std::to_string(port) + " or dport = :" +
                          std::to_string(port) + " )' 2>/dev/null";
  std::vector<long> out;
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return out;
  char line[4096];
  while (fgets(line, sizeof line, f) != nullptr) {
    const char* rb = std::strstr(line, ",rb");
    if (rb != nullptr) out.push_back(std::strtol(rb + 3, nullptr, 10));
  }
  pclose(f);
  return out;
}

TEST_F(DataPlaneTest, PeerConnectionsUseTheConfiguredReceiveBuffer) {
  for (int configured : {16 * 1024, 0}) {
    SCOPED_TRACE("receive_buffer " + std::to_string(configured));
    DataPlaneOptions o;
    o.listen_host = "127.0.0.1";
    o.tls = false;
    o.receive_buffer = configured;
    auto pair = StartPair(o, std::to_string(configured));
    ASSERT_TRUE(pair);
    ASSERT_TRUE(pair->leech_done.WaitFor(3, std::chrono::seconds(60))) << "blobs done: " << pair->leech_done.blobs.size();
    // Both ends of the connection (the seed accepted it, the leech dialled it) stay open.
    const auto buffers = ReceiveBuffersOf(pair->seed->port());
    ASSERT_EQ(buffers.size(), 2u) << "connections to or from the seed's port";
    for (long rb : buffers) {
      if (configured > 0) {
        EXPECT_EQ(rb, 2L * configured);
      } else {
        EXPECT_GT(rb, 2L * 16 * 1024) << "0 leaves the kernel's autotuned buffer";
      }
    }
    pair->seed->Stop();
    pair->leech->Stop();
    ExpectHoldsEveryBlob(*pair->leech_store);
  }
}

// A complete blob is synced and reported at once, not at the next periodic sync (here 2 min away).
TEST_F(DataPlaneTest, BlobsAreReportedAsSoonAsTheyAreDurable) {
  DataPlaneOptions o;
  o.listen_host = "127.0.0.1";
  o.tls = false;
  o.sync_interval = std::chrono::minutes(2);
  auto pair = StartPair(o, "");
  ASSERT_TRUE(pair);
  EXPECT_TRUE(pair->leech_done.WaitFor(specs_.size(), std::chrono::seconds(60)))
      << "blobs reported: " << pair->leech_done.blobs.size();
  pair->seed->Stop();
  pair->leech->Stop();
  ExpectHoldsEveryBlob(*pair->leech_store);
}

TEST_F(DataPlaneTest, ReleaseMovesOverMutualTlsAndAForeignCertificateGetsNothing) {
  auto ca = InitCa(dir_ + "/ca", "test");
  ASSERT_TRUE(ca.ok());
  auto n1 = IssueNodeCertificate(dir_ + "/ca", "node-1", dir_ + "/n1");
  auto n2 = IssueNodeCertificate(dir_ + "/ca", "node-2", dir_ + "/n2");
  ASSERT_TRUE(InitCa(dir_ + "/rogue-ca", "rogue").ok());
  auto rogue = IssueNodeCertificate(dir_ + "/rogue-ca", "node-3", dir_ + "/n3");
  ASSERT_TRUE(n1.ok() && n2.ok() && rogue.ok());
  auto a = OpenStore("a");
  auto b = OpenStore("b");
  auto c = OpenStore("c");
  Fill(*a);
  Done done_a, done_b, done_c;
  DataPlaneOptions o;
  o.listen_host = "127.0.0.1";
  o.tls = true;
  o.tls_files = {n1->ca_cert, n1->cert, n1->key};
  auto seed = DataPlane::Start(*a, o, Callbacks(done_a), Log());
  ASSERT_TRUE(seed.ok()) << seed.error().message;
  auto info = BuildTorrentInfo(*a, layout_, seed.value()->tls_root_pem(), kRelease);
  ASSERT_TRUE(info.ok());
  ASSERT_TRUE(seed.value()->Add(kRelease, "r@1", layout_, info.value()).ok());
  const std::string seed_addr = "127.0.0.1:" + std::to_string(seed.value()->port());

  // A node of another cluster (its own CA): it may even hold the right torrent, it gets no byte.
  o.tls_files = {rogue->ca_cert, rogue->cert, rogue->key};
  auto outsider = DataPlane::Start(*c, o, Callbacks(done_c), Log());
  ASSERT_TRUE(outsider.ok());
  ASSERT_TRUE(outsider.value()->Add(kRelease, "r@1", layout_, info.value()).ok());
  outsider.value()->SetPeers({seed_addr});

  o.tls_files = {n2->ca_cert, n2->cert, n2->key};
  auto leech = DataPlane::Start(*b, o, Callbacks(done_b), Log());
  ASSERT_TRUE(leech.ok());
  ASSERT_TRUE(leech.value()->Add(kRelease, "r@1", layout_, info.value()).ok());
  leech.value()->SetPeers({seed_addr});
  ASSERT_TRUE(done_b.WaitFor(3, std::chrono::seconds(60))) << "blobs done: " << done_b.blobs.size();
  leech.value()->Stop();
  ExpectHoldsEveryBlob(*b);

  auto t = outsider.value()->Transfers();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].bytes_have, 0u);
  EXPECT_EQ(t[0].downloaded, 0u);
  outsider.value()->Stop();
  seed.value()->Stop();
  for (const auto& s : specs_) {
    auto held = c->HeldPieces(s.digest, s.size);
    ASSERT_TRUE(held.ok());
    for (bool h : held->pieces) EXPECT_FALSE(h);
  }
}

// A seed deals its pieces (transport/piece_dealer.h): with three receivers it sends each piece
// about once and the receivers forward the rest among themselves. (libtorrent as it comes lets each
// receiver take most pieces from the seed: about 2-3 times the release here.)
TEST_F(DataPlaneTest, SeedDealsEachPieceAboutOnceAndReceiversForwardTheRest) {
  blobs_.clear();
  specs_.clear();
  for (uint32_t seed = 10; seed < 14; ++seed) {
    blobs_.push_back(RandomBytes(4 * kMiB, seed));
    specs_.push_back({DigestOf(blobs_.back()), blobs_.back().size(), "application/octet-stream"});
  }
  layout_ = TorrentLayout::Make(specs_, kMiB);
  auto a = OpenStore("a");
  Fill(*a);
  auto info = BuildTorrentInfo(*a, layout_, "", kRelease);
  ASSERT_TRUE(info.ok());
  DataPlaneOptions o;
  o.listen_host = "127.0.0.1";
  o.tls = false;
  Done done_seed;
  auto seed = DataPlane::Start(*a, o, Callbacks(done_seed), Log());
  ASSERT_TRUE(seed.ok());
  ASSERT_TRUE(seed.value()->Add(kRelease, "r@1", layout_, info.value()).ok());
  std::vector<std::string> addrs{"127.0.0.1:" + std::to_string(seed.value()->port())};
  std::vector<std::unique_ptr<store::BlobStore>> stores;
  std::vector<std::unique_ptr<Done>> done;
  std::vector<std::unique_ptr<DataPlane>> receivers;
  for (int i = 0; i < 3; ++i) {
    stores.push_back(OpenStore("r" + std::to_string(i)));
    done.push_back(std::make_unique<Done>());
    auto r = DataPlane::Start(*stores.back(), o, Callbacks(*done.back()), Log());
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(r.value()->Add(kRelease, "r@1", layout_, info.value()).ok());
    addrs.push_back("127.0.0.1:" + std::to_string(r.value()->port()));
    receivers.push_back(std::move(r).value());
  }
  for (size_t i = 0; i < receivers.size(); ++i) {
    std::vector<std::string> others;
    for (size_t j = 0; j < addrs.size(); ++j) {
      if (j != i + 1) others.push_back(addrs[j]);
    }
    receivers[i]->SetPeers(others);
  }
  for (auto& d : done) ASSERT_TRUE(d->WaitFor(specs_.size(), std::chrono::seconds(60))) << "blobs done: " << d->blobs.size();
  const uint64_t total = layout_.total_bytes;
  const uint64_t seed_up = seed.value()->Transfers()[0].uploaded;
  uint64_t forwarded = 0;
  for (auto& r : receivers) forwarded += r->Transfers()[0].uploaded;
  for (auto& r : receivers) r->Stop();
  seed.value()->Stop();
  EXPECT_GE(seed_up, total);
  EXPECT_LE(seed_up, total * 3 / 2) << "the seed sent " << seed_up << " bytes of a " << total << " byte release";
  EXPECT_GE(forwarded, total * 3 / 2) << "the receivers forwarded " << forwarded << " bytes";
  for (auto& s : stores) ExpectHoldsEveryBlob(*s);
}

// A blob's SHA-256 check reads the whole blob (seconds for a large one). It must not hold up the
// node's uploads and downloads: here B's checks wait until the end, and C, which can fetch only
// from B, must still get everything.
TEST_F(DataPlaneTest, UploadsGoOnWhileABlobIsBeingChecked) {
  auto a = OpenStore("a");
  auto b_store = OpenStore("b");
  auto c = OpenStore("c");
  Fill(*a);
  auto info = BuildTorrentInfo(*a, layout_, "", kRelease);
  ASSERT_TRUE(info.ok());
  GatedCompletion b(*b_store);
  Done done_a, done_b, done_c;
  DataPlaneOptions o;
  o.listen_host = "127.0.0.1";
  o.tls = false;
  auto seed = DataPlane::Start(*a, o, Callbacks(done_a), Log());
  auto middle = DataPlane::Start(b, o, Callbacks(done_b), Log());
  auto last = DataPlane::Start(*c, o, Callbacks(done_c), Log());
  ASSERT_TRUE(seed.ok() && middle.ok() && last.ok());
  struct OpenOnExit {  // B's data plane cannot stop while a check waits
    GatedCompletion& gate;
    ~OpenOnExit() { gate.Open(); }
  } open_on_exit{b};
  ASSERT_TRUE(seed.value()->Add(kRelease, "r@1", layout_, info.value()).ok());
  ASSERT_TRUE(middle.value()->Add(kRelease, "r@1", layout_, info.value()).ok());
  ASSERT_TRUE(last.value()->Add(kRelease, "r@1", layout_, info.value()).ok());
  middle.value()->SetPeers({"127.0.0.1:" + std::to_string(seed.value()->port())});
  last.value()->SetPeers({"127.0.0.1:" + std::to_string(middle.value()->port())});
  ASSERT_TRUE(b.WaitUntilSomeCheckWaits(std::chrono::seconds(60))) << "B never held a whole blob";
  const bool c_finished = done_c.WaitFor(specs_.size(), std::chrono::seconds(60));
  {
    std::lock_guard lock(done_b.mu);
    EXPECT_TRUE(done_b.blobs.empty()) << "a blob of B was done before its check";
  }
  b.Open();
  EXPECT_TRUE(c_finished) << "C got " << done_c.blobs.size() << " of " << specs_.size() << " blobs while B was checking one";
  EXPECT_TRUE(done_b.WaitFor(specs_.size(), std::chrono::seconds(60))) << "B: " << done_b.blobs.size() << " blobs done";
  last.value()->Stop();
  middle.value()->Stop();
  seed.value()->Stop();
  ExpectHoldsEveryBlob(*c);
  ExpectHoldsEveryBlob(*b_store);
}

TEST_F(DataPlaneTest, CorruptUploaderIsRejectedAndAHealthyPeerFinishes) {
  auto a = OpenStore("a");
  auto b = OpenStore("b");
  auto c = OpenStore("c");
  Fill(*a);
  Fill(*c);
  auto info = BuildTorrentInfo(*a, layout_, "", kRelease);
  ASSERT_TRUE(info.ok());
  Done done_a, done_b, done_c;
  DataPlaneOptions o;
  o.listen_host = "127.0.0.1";
  o.tls = false;
  o.corrupt_uploads_for_test = true;
  auto liar = DataPlane::Start(*a, o, Callbacks(done_a), Log("liar"));
  ASSERT_TRUE(liar.ok());
  o.corrupt_uploads_for_test = false;
  auto leech = DataPlane::Start(*b, o, Callbacks(done_b), Log("leech"));
  ASSERT_TRUE(leech.ok());
  ASSERT_TRUE(liar.value()->Add(kRelease, "r@1", layout_, info.value()).ok());
  ASSERT_TRUE(leech.value()->Add(kRelease, "r@1", layout_, info.value()).ok());
  leech.value()->SetPeers({"127.0.0.1:" + std::to_string(liar.value()->port())});
  // Wait until the leech has received (and rejected) a piece from the liar.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (leech.value()->Transfers()[0].rejected_pieces == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a condition
  }
  ASSERT_GE(leech.value()->Transfers()[0].rejected_pieces, 1u);
  EXPECT_EQ(leech.value()->Transfers()[0].bytes_have, 0u);
  EXPECT_TRUE(done_b.blobs.empty());

  // A healthy peer joins: everything arrives from it, and every byte verifies.
  auto healthy = DataPlane::Start(*c, o, Callbacks(done_c), Log("healthy"));
  ASSERT_TRUE(healthy.ok());
  ASSERT_TRUE(healthy.value()->Add(kRelease, "r@1", layout_, info.value()).ok());
  leech.value()->SetPeers({"127.0.0.1:" + std::to_string(liar.value()->port()),
                           "127.0.0.1:" + std::to_string(healthy.value()->port())});
  ASSERT_TRUE(done_b.WaitFor(3, std::chrono::seconds(60))) << "blobs done: " << done_b.blobs.size();
  leech.value()->Stop();
  liar.value()->Stop();
  healthy.value()->Stop();
  ExpectHoldsEveryBlob(*b);
}

// A member that offers a torrent whose pieces are other bytes than the signed blobs: every piece
// passes its (lying) SHA-1, but the blob's SHA-256 does not match, so nothing becomes visible and
// the transfer fails as kCorrupt (the agent then drops that offer and asks another member).
TEST_F(DataPlaneTest, PiecesThatMatchALyingTorrentButNotTheBlobDigestAreNeverVisible) {
  auto liar_store = OpenStore("liar");
  auto b = OpenStore("b");
  // The liar holds other bytes as the pieces of the release's blobs (never completed).
  for (size_t i = 0; i < blobs_.size(); ++i) {
    auto other = RandomBytes(specs_[i].size, 100 + static_cast<uint32_t>(i));
    for (uint32_t p = 0; p * uint64_t{kMiB} < other.size(); ++p) {
      const size_t from = size_t{p} * kMiB, n = std::min<size_t>(kMiB, other.size() - from);
      ASSERT_TRUE(liar_store->PutPiece(specs_[i].digest, specs_[i].size, specs_[i].media_type, p,
                                       std::span<const uint8_t>(other.data() + from, n)).ok());
    }
  }
  ASSERT_TRUE(liar_store->Sync().ok());
  auto info = BuildTorrentInfo(*liar_store, layout_, "", kRelease);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_TRUE(CheckTorrentInfo(info.value(), layout_, "", kRelease).ok());  // its shape is right
  Done done_liar, done_b;
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Error> failure;
  DataPlaneOptions o;
  o.listen_host = "127.0.0.1";
  o.tls = false;
  ClaimsCompletion liar_view(*liar_store);
  auto liar = DataPlane::Start(liar_view, o, Callbacks(done_liar), Log());
  ASSERT_TRUE(liar.ok());
  auto cb = Callbacks(done_b);
  cb.failed = [&](const ReleaseDigest&, const Error& e) {
    std::lock_guard lock(mu);
    failure = e;
    cv.notify_all();
  };
  auto leech = DataPlane::Start(*b, o, cb, Log());
  ASSERT_TRUE(leech.ok());
  ASSERT_TRUE(liar.value()->Add(kRelease, "r@1", layout_, info.value()).ok());
  ASSERT_TRUE(leech.value()->Add(kRelease, "r@1", layout_, info.value()).ok());
  leech.value()->SetPeers({"127.0.0.1:" + std::to_string(liar.value()->port())});
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return failure.has_value(); }));
  }
  EXPECT_EQ(failure->code, Errc::kCorrupt) << failure->message;
  EXPECT_TRUE(done_b.blobs.empty());
  leech.value()->Remove(kRelease);
  EXPECT_FALSE(leech.value()->Has(kRelease));
  leech.value()->Stop();
  liar.value()->Stop();
  for (const auto& s : specs_) {
    auto st = b->Stat(s.digest);
    ASSERT_TRUE(st.ok());
    EXPECT_FALSE(st.value().has_value()) << s.digest.str() << " became visible";
  }
}

}  // namespace
}  // namespace gapsync::transport
