// The agent's node in one process, on loopback: its event loop answers while the store is gated
// shut, and a fetch resumed after a restart blames the member that offered a bad torrent and gets
// the release from another.
#include "agent/node/node.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <utility>  // before asio: Boost 1.74 + g++ 12 need std::exchange declared
#include <boost/asio.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "agent/bundle/bundle.h"
#include "agent/bundle/keys.h"
#include "agent/cli/local_api_client.h"
#include "agent/ingest/ingest.h"
#include "agent/node/offer_files.h"
#include "agent/pack/bundle_writer.h"
#include "store/blob_store.h"
#include "tests/agent/test_util.h"
#include "transport/cluster_ca.h"
#include "transport/control_server.h"
#include "transport/data_plane.h"

namespace gapsync::agent {
namespace {

using gapsync::testing::RandomBytes;
using gapsync::testing::TempDir;
using gapsync::testing::WriteFile;
using namespace std::chrono_literals;

std::shared_ptr<spdlog::logger> Log(const std::string& name) {
  if (auto l = spdlog::get(name)) return l;
  auto l = spdlog::stderr_color_mt(name);
  l->set_level(spdlog::level::warn);
  return l;
}

// Every call of a store waits until the gate opens (a store stuck behind a disk that does not
// answer). chunk_size() does not: it is a constant.
class GatedStore final : public store::BlobStore {
  // Runs `f` once the gate is open.
  template <class F>
  auto Gate(F f) {
    {
      std::unique_lock lock(mu_);
      ++waiting_;
      cv_.notify_all();
      cv_.wait(lock, [this] { return open_; });
      --waiting_;
    }
    return f();
  }

 public:
  explicit GatedStore(std::unique_ptr<store::BlobStore> inner) : s_(std::move(inner)) {}
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  int waiting() {
    std::lock_guard lock(mu_);
    return waiting_;
  }
  bool WaitUntilACallWaits(std::chrono::seconds limit) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [this] { return waiting_ > 0; });
  }

  Result<std::optional<store::BlobInfo>> Stat(const BlobDigest& d) override { return Gate([&] { return s_->Stat(d); }); }
  Status Read(const BlobDigest& d, uint64_t o, uint64_t n, const store::ReadSink& sink) override {
    return Gate([&] { return s_->Read(d, o, n, sink); });
  }
  uint32_t chunk_size() const override { return s_->chunk_size(); }
  Status PutPiece(const BlobDigest& d, uint64_t size, const std::string& mt, uint32_t i, std::span<const uint8_t> b) override {
    return Gate([&] { return s_->PutPiece(d, size, mt, i, b); });
  }
  Result<store::PiecesHeld> HeldPieces(const BlobDigest& d, uint64_t size) override { return Gate([&] { return s_->HeldPieces(d, size); }); }
  Status CompletePieces(const BlobDigest& d) override { return Gate([&] { return s_->CompletePieces(d); }); }
  Status ReadPiece(const BlobDigest& d, uint32_t i, std::vector<uint8_t>& out) override {
    return Gate([&] { return s_->ReadPiece(d, i, out); });
  }
  Status Sync() override { return Gate([&] { return s_->Sync(); }); }
  Result<std::unique_ptr<store::BlobWriter>> OpenWriter(const BlobDigest& d, uint64_t size, const std::string& mt) override {
    return Gate([&] { return s_->OpenWriter(d, size, mt); });
  }
  Result<uint64_t> PartialBytes(const BlobDigest& d) override { return Gate([&] { return s_->PartialBytes(d); }); }
  Status ForEachBlob(const std::function<Status(const store::BlobInfo&)>& fn) override {
    return Gate([&] { return s_->ForEachBlob(fn); });
  }
  Status PutRelease(const store::StoredRelease& r) override { return Gate([&] { return s_->PutRelease(r); }); }
  Status KeepPending(const store::StoredRelease& r) override { return Gate([&] { return s_->KeepPending(r); }); }
  Result<std::optional<store::StoredRelease>> GetRelease(const ReleaseId& id) override {
    return Gate([&] { return s_->GetRelease(id); });
  }
  Result<std::vector<store::StoredRelease>> ListReleases() override { return Gate([&] { return s_->ListReleases(); }); }
  Result<store::FsckReport> Fsck(const std::function<void(uint64_t)>& p) override { return Gate([&] { return s_->Fsck(p); }); }
  Status DropBlob(const BlobDigest& d) override { return Gate([&] { return s_->DropBlob(d); }); }
  Result<store::GcStats> CollectGarbage(bool drop) override { return Gate([&] { return s_->CollectGarbage(drop); }); }

 private:
  std::unique_ptr<store::BlobStore> s_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int waiting_ = 0;
};

// The data plane's view of a store that serves blob `bad` with one byte of every piece flipped,
// and calls every blob complete: a member whose torrent describes other bytes than the signed ones.
class LyingPieces final : public store::PieceStore {
 public:
  LyingPieces(store::PieceStore& s, BlobDigest bad) : s_(s), bad_(bad) {}
  uint32_t chunk_size() const override { return s_.chunk_size(); }
  Status PutPiece(const BlobDigest& d, uint64_t size, const std::string& mt, uint32_t i, std::span<const uint8_t> b) override {
    return s_.PutPiece(d, size, mt, i, b);
  }
  Result<store::PiecesHeld> HeldPieces(const BlobDigest& d, uint64_t size) override { return s_.HeldPieces(d, size); }
  Status CompletePieces(const BlobDigest&) override { return OkStatus(); }
  Status ReadPiece(const BlobDigest& d, uint32_t i, std::vector<uint8_t>& out) override {
    GS_RETURN_IF_ERROR(s_.ReadPiece(d, i, out));
    if (d == bad_ && !out.empty()) out[out.size() / 2] ^= 0x5a;
    return OkStatus();
  }
  Status Sync() override { return s_.Sync(); }

 private:
  store::PieceStore& s_;
  BlobDigest bad_;
};

class NodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(transport::InitCa(dir_ / "ca", "test").ok());
    for (const char* n : {"node-1", "node-2", "node-3"}) {
      ASSERT_TRUE(transport::IssueNodeCertificate(dir_ / "ca", n, dir_ / n).ok());
    }
    ASSERT_TRUE(GenerateKeyPair(dir_ / "keys", "vendor").ok());
    auto trusted = LoadTrustedKeys({dir_ / "keys/vendor.pub"});
    ASSERT_TRUE(trusted.ok());
    trusted_ = trusted.value();
    // A release of three artifacts: 2.5 MiB, 300 KB and a few bytes.
    WriteFile(dir_ / "src/big.bin", RandomBytes((5u << 20) / 2, 1));
    WriteFile(dir_ / "src/mid.bin", RandomBytes(300'000, 2));
    WriteFile(dir_ / "src/small.txt", "small\n");
    WriteFile(dir_ / "src/app.yaml",
              "app: shop\nversion: 1.0.0\ncomponents:\n  - name: big\n    artifact: big.bin\n"
              "  - name: mid\n    artifact: mid.bin\n  - name: small\n    artifact: small.txt\n");
    CreateOptions o;
    o.template_path = dir_ / "src/app.yaml";
    o.key_path = dir_ / "keys/vendor.key";
    o.out_dir = dir_ / "bundle";
    o.quiet = true;
    ASSERT_TRUE(CreateBundle(o).ok());
    auto b = LoadBundle(dir_ / "bundle", trusted_);
    ASSERT_TRUE(b.ok()) << b.error().message;
    bundle_ = std::move(b).value();
  }

  // A store holding the release.
  std::unique_ptr<store::BlobStore> StoreWithRelease() {
    auto s = store::NewMemoryStore();
    IngestOptions o;
    o.quiet = true;
    IngestResult r;
    auto st = Ingest(bundle_, *s, o, r);
    EXPECT_TRUE(st.ok()) << st.error().message;
    return s;
  }

  AgentConfig ConfigOf(const std::string& node, bool data_plane_tls, std::vector<Endpoint> peers = {}) {
    AgentConfig c;
    c.node = node;
    c.data_dir = dir_ / (node + "-data");
    c.api_socket = dir_ / (node + ".sock");
    c.trust = {dir_ / "keys/vendor.pub"};
    c.listen = Endpoint{"127.0.0.1", 0};
    c.bittorrent_listen = Endpoint{"127.0.0.1", 0};
    c.data_plane_tls = data_plane_tls;
    c.peers = std::move(peers);
    c.tls_ca = dir_ / (node + "/ca.crt");
    c.tls_cert = dir_ / (node + "/" + node + ".crt");
    c.tls_key = dir_ / (node + "/" + node + ".key");
    return c;
  }

  // The node's status, through its local API, if it answers within `limit`.
  static std::optional<v1::ClusterStatus> StatusWithin(const std::string& socket, std::chrono::seconds limit) {
    auto answer = std::async(std::launch::async, [socket] {
      v1::ApiRequest req;
      req.mutable_status();
      return CallAgent(socket, req);
    });
    if (answer.wait_for(limit) != std::future_status::ready) {
      answers_left_.push_back(std::move(answer));  // joined when the test ends
      return std::nullopt;
    }
    auto r = answer.get();
    if (!r.ok() || !r->has_status()) return std::nullopt;
    return r->status();
  }

  TempDir dir_;
  std::vector<TrustedKey> trusted_;
  LoadedBundle bundle_;
  static inline std::vector<std::future<Result<v1::ApiResponse>>> answers_left_;
};

// A member on loopback with a control plane and a data plane of its own, serving one Offer and
// counting the OfferRequests it gets (the test's stand-in for another node).
struct Member {
  Member(const std::string& name, const std::string& dir, store::PieceStore& pieces, const LoadedBundle& bundle) {
    auto log = Log(name);
    transport::DataPlaneOptions d;
    d.listen_host = "127.0.0.1";
    d.tls = false;
    auto dp = transport::DataPlane::Start(pieces, d, {}, log);
    EXPECT_TRUE(dp.ok()) << dp.error().message;
    data = std::move(dp).value();
    std::vector<transport::BlobSpec> specs;
    for (const auto& b : bundle.manifest.release().blobs()) {
      specs.push_back({BlobDigest::Parse(b.digest()).value(), b.size(), b.media_type()});
    }
    const auto layout = transport::TorrentLayout::Make(specs, pieces.chunk_size());
    auto info = transport::BuildTorrentInfo(pieces, layout, "", bundle.release_digest);
    EXPECT_TRUE(info.ok());
    offer.set_manifest(bundle.manifest_bytes);
    offer.set_signature(bundle.signature);
    offer.set_torrent_info(info.value());
    EXPECT_TRUE(data->Add(bundle.release_digest, "shop@1.0.0", layout, info.value()).ok());
    state.set_app("shop");
    state.set_version("1.0.0");
    state.set_release_digest(bundle.release_digest.str());
    state.set_complete(true);
    state.set_offered(true);
    state.set_bytes_total(layout.total_bytes);
    state.set_bytes_have(layout.total_bytes);
    transport::ControlServerOptions c;
    c.node = name;
    c.listen_host = "127.0.0.1";
    c.tls = {dir + "/" + name + "/ca.crt", dir + "/" + name + "/" + name + ".crt", dir + "/" + name + "/" + name + ".key"};
    c.dial_interval_ms = 500;
    c.data_address = "127.0.0.1:" + std::to_string(data->port());
    transport::ControlHooks h;
    h.releases = [this] { return std::vector<v1::ReleaseState>{state}; };
    h.offer = [this](const std::string&, const v1::OfferRequest&) {
      ++offers_asked;
      return offer;
    };
    auto cs = transport::ControlServer::Start(io, c, h, log);
    EXPECT_TRUE(cs.ok()) << cs.error().message;
    control = std::move(cs).value();
    thread = std::thread([this] { io.run(); });
  }
  ~Member() {
    boost::asio::post(io, [this] { control->Stop(); });
    guard.reset();
    thread.join();
    data->Stop();
  }
  Endpoint address() const { return Endpoint{"127.0.0.1", control->port()}; }

  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard = boost::asio::make_work_guard(io);
  std::unique_ptr<transport::DataPlane> data;
  std::unique_ptr<transport::ControlServer> control;
  v1::Offer offer;
  v1::ReleaseState state;
  std::atomic<int> offers_asked{0};
  std::thread thread;
};

TEST_F(NodeTest, StatusAndHellosAreAnsweredWhileTheStoreIsGatedShut) {
  auto gated = std::make_unique<GatedStore>(StoreWithRelease());
  GatedStore& gate = *gated;
  NodeOptions options;
  options.handle_signals = false;
  Node node(ConfigOf("node-1", true), options, std::move(gated), trusted_, Log("node-1"));
  ASSERT_TRUE(node.Start().ok());
  std::thread loop([&] { node.Run(); });
  struct Stop {  // also when an assertion ends the test early
    GatedStore& gate;
    Node& node;
    std::thread& loop;
    ~Stop() {
      gate.Open();
      node.RequestStop();
      loop.join();
      for (auto& a : answers_left_) a.wait();
      answers_left_.clear();
    }
  } stop{gate, node, loop};
  ASSERT_TRUE(gate.WaitUntilACallWaits(30s)) << "the node never asked the store for anything";

  // The local API answers (with what it knows: nothing of the store yet).
  auto status = StatusWithin(dir_ / "node-1.sock", 10s);
  ASSERT_TRUE(status.has_value()) << "cluster status was not answered within 10 s while the store was shut";
  ASSERT_GE(status->nodes_size(), 1);
  EXPECT_EQ(status->nodes(0).node(), "node-1");
  EXPECT_EQ(status->nodes(0).store().releases_size(), 0);

  // A member dialling in gets the node's Hello (the control plane runs on the same loop).
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  std::promise<void> hello;
  std::once_flag once;
  transport::ControlHooks hooks;
  hooks.wants = [&](const std::string& from, const v1::Hello&) {
    if (from == "node-1") std::call_once(once, [&] { hello.set_value(); });
    return std::vector<v1::OfferRequest>{};
  };
  transport::ControlServerOptions co;
  co.node = "node-2";
  co.listen_host = "127.0.0.1";
  co.tls = {dir_ / "node-2/ca.crt", dir_ / "node-2/node-2.crt", dir_ / "node-2/node-2.key"};
  co.peers = {"127.0.0.1:" + std::to_string(node.control_port())};
  auto peer = transport::ControlServer::Start(io, co, hooks, Log("node-2"));
  ASSERT_TRUE(peer.ok()) << peer.error().message;
  std::thread peer_loop([&] { io.run(); });
  const bool greeted = hello.get_future().wait_for(10s) == std::future_status::ready;
  EXPECT_TRUE(greeted) << "no Hello within 10 s while the store was shut";
  EXPECT_GT(gate.waiting(), 0) << "the store was not shut while the node answered";

  // Opened: the node reads its store, and its status shows the release.
  gate.Open();
  bool listed = false;
  for (auto deadline = std::chrono::steady_clock::now() + 30s; !listed && std::chrono::steady_clock::now() < deadline;) {
    auto s = StatusWithin(dir_ / "node-1.sock", 10s);
    listed = s && s->nodes(0).store().releases_size() == 1 && s->nodes(0).releases_size() == 1;
  }
  EXPECT_TRUE(listed) << "once the store opened, status never listed its release";

  boost::asio::post(io, [&] { peer.value()->Stop(); });
  work.reset();
  peer_loop.join();
}

// After a restart, a fetch resumes from the Offer it kept. That Offer's torrent (from node-2) does
// not match the signed blobs: node-1 must blame node-2, never ask it for the release again, and
// fetch it from node-3.
TEST_F(NodeTest, AResumedFetchBlamesTheMemberThatOfferedABadTorrentAndAsksAnother) {
  const BlobDigest big = bundle_.blob_digests[0];
  ASSERT_EQ(bundle_.manifest.blobs(0).size(), (5u << 20) / 2);
  auto liar_store = StoreWithRelease();
  LyingPieces liar_view(*liar_store, big);
  auto honest_store = StoreWithRelease();
  Member liar("node-2", dir_.path(), liar_view, bundle_);
  Member honest("node-3", dir_.path(), *honest_store, bundle_);
  ASSERT_NE(liar.offer.torrent_info(), honest.offer.torrent_info()) << "the liar's torrent is the honest one";

  // What node-1 kept before it stopped: node-2's Offer, and the release as pending.
  auto config = ConfigOf("node-1", false, {liar.address(), honest.address()});
  OfferFiles offers(config.data_dir + "/offers");
  ASSERT_TRUE(offers.Prepare().ok());
  auto node2 = NodeName::Parse("node-2");
  ASSERT_TRUE(node2.ok());
  ASSERT_TRUE(offers.Keep(bundle_.release_digest, liar.offer, OfferSource::Member(node2.value())).ok());
  auto mine = store::NewMemoryStore();
  store::BlobStore& store = *mine;

  NodeOptions options;
  options.handle_signals = false;
  options.dial_interval = 500ms;
  Node node(config, options, std::move(mine), trusted_, Log("node-1"));
  ASSERT_TRUE(node.Start().ok());
  std::thread loop([&] { node.Run(); });
  struct Stop {
    Node& node;
    std::thread& loop;
    ~Stop() {
      if (loop.joinable()) {
        node.RequestStop();
        loop.join();
      }
    }
  } stop{node, loop};

  bool complete = false;
  for (auto deadline = std::chrono::steady_clock::now() + 90s; !complete && std::chrono::steady_clock::now() < deadline;) {
    auto s = StatusWithin(config.api_socket, 10s);
    complete = s && s->nodes(0).store().releases_size() == 1;
  }
  EXPECT_TRUE(complete) << "node-1 never completed the release";
  EXPECT_EQ(liar.offers_asked.load(), 0) << "node-1 asked node-2 again for the release whose torrent node-2 got wrong";
  EXPECT_GE(honest.offers_asked.load(), 1) << "node-1 did not ask another member";
  node.RequestStop();
  loop.join();
  // Every byte node-1 holds is the signed one.
  auto info = store.Stat(big);
  ASSERT_TRUE(info.ok() && info.value()) << "the big blob is not in node-1's store";
  auto fsck = store.Fsck(nullptr);
  ASSERT_TRUE(fsck.ok());
  EXPECT_TRUE(fsck->problems.empty());
  for (auto& a : answers_left_) a.wait();
  answers_left_.clear();
}

}  // namespace
}  // namespace gapsync::agent
