// The torrent info dictionary, byte for byte: nodes of different versions must build the same
// torrent for the same release, or a mixed cluster splits into swarms that cannot talk (and a
// kept Offer stops matching what a node builds). The golden files were written by the code of
// eae3f3c (the hand-written bencoder); every later encoder must reproduce them exactly.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "proto/sha256.h"
#include "store/blob_store.h"
#include "transport/data_plane.h"

namespace gapsync::transport {
namespace {

constexpr uint32_t kMiB = 1 << 20;
const ReleaseDigest kRelease = ReleaseDigest::Parse("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef").value();
// Any text stands for the CA certificate: the dictionary carries it as it is.
const std::string kCaPem = "-----BEGIN CERTIFICATE-----\nMIIBgolden\n-----END CERTIFICATE-----\n";

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

std::string ReadGolden(const std::string& name) {
  std::ifstream in(std::string(GAPSYNC_GOLDEN_DIR) + "/" + name, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Where two byte strings first differ, for a readable failure.
std::string FirstDifference(const std::string& a, const std::string& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return "sizes " + std::to_string(a.size()) + " and " + std::to_string(b.size()) + ", first difference at byte " +
         std::to_string(i) + " (after \"" + a.substr(i > 40 ? i - 40 : 0, i > 40 ? 40 : i) + "\")";
}

class TorrentInfoGolden : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = store::NewMemoryStore();
    // Several pieces with a short tail, exactly one chunk, less than a piece, an empty blob (left
    // out of the torrent), a repeated blob (left out too), the torrent's last piece short.
    std::vector<std::pair<size_t, uint32_t>> blobs{{2 * kMiB + kMiB / 2 + 7, 1}, {kMiB, 2}, {0, 0}, {100'000, 3}, {kMiB, 2}, {300'001, 4}};
    for (auto [size, seed] : blobs) {
      auto bytes = RandomBytes(size, seed);
      Sha256 h;
      h.Update(std::span<const uint8_t>(bytes));
      const BlobDigest d = h.Finish();
      specs_.push_back({d, size, "application/octet-stream"});
      auto held = store_->Stat(d);
      ASSERT_TRUE(held.ok());
      if (held.value()) continue;  // the repeated blob
      auto w = store_->OpenWriter(d, size, "application/octet-stream");
      ASSERT_TRUE(w.ok());
      ASSERT_TRUE(w.value()->Append(bytes).ok());
      ASSERT_TRUE(w.value()->Commit().ok());
      ASSERT_TRUE(store_->Sync().ok());
    }
    layout_ = TorrentLayout::Make(specs_, kMiB);
  }
  std::unique_ptr<store::BlobStore> store_;
  std::vector<BlobSpec> specs_;
  TorrentLayout layout_;
};

TEST_F(TorrentInfoGolden, PlainTorrentIsByteForByteTheSame) {
  auto info = BuildTorrentInfo(*store_, layout_, "", kRelease);
  ASSERT_TRUE(info.ok()) << info.error().message;
  const std::string golden = ReadGolden("torrent_info_plain.bin");
  ASSERT_FALSE(golden.empty()) << "golden file missing";
  EXPECT_TRUE(info.value() == golden) << FirstDifference(info.value(), golden);
  EXPECT_TRUE(CheckTorrentInfo(golden, layout_, "", kRelease).ok());
}

TEST_F(TorrentInfoGolden, TlsTorrentIsByteForByteTheSame) {
  auto info = BuildTorrentInfo(*store_, layout_, kCaPem, kRelease);
  ASSERT_TRUE(info.ok()) << info.error().message;
  const std::string golden = ReadGolden("torrent_info_tls.bin");
  ASSERT_FALSE(golden.empty()) << "golden file missing";
  EXPECT_TRUE(info.value() == golden) << FirstDifference(info.value(), golden);
  EXPECT_TRUE(CheckTorrentInfo(golden, layout_, kCaPem, kRelease).ok());
}

}  // namespace
}  // namespace gapsync::transport
