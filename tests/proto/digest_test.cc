// BlobDigest parsing / formatting and SHA-256 known-answer tests.
#include <gtest/gtest.h>

#include <string>

#include "proto/digest.h"
#include "proto/error.h"
#include "proto/sha256.h"

namespace gapsync {
namespace {

constexpr const char* kEmptyHex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr const char* kAbcHex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

std::string Valid() { return std::string("sha256:") + kAbcHex; }

TEST(BlobDigestParse, AcceptsValidDigest) {
  auto d = BlobDigest::Parse(Valid());
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->hex(), kAbcHex);
  EXPECT_EQ(d->str(), Valid());
  EXPECT_EQ(d->raw()[0], 0xba);
  EXPECT_EQ(d->raw()[31], 0xad);
}

TEST(BlobDigestParse, AcceptsAllZerosAndAllF) {
  EXPECT_TRUE(BlobDigest::Parse("sha256:" + std::string(64, '0')).ok());
  EXPECT_TRUE(BlobDigest::Parse("sha256:" + std::string(64, 'f')).ok());
}

void ExpectRejected(const std::string& text) {
  auto d = BlobDigest::Parse(text);
  ASSERT_FALSE(d.ok()) << "accepted \"" << text << "\"";
  EXPECT_EQ(d.error().code, Errc::kCorrupt);
  EXPECT_NE(d.error().message.find("malformed digest"), std::string::npos) << d.error().message;
}

TEST(BlobDigestParse, RejectsEmpty) { ExpectRejected(""); }

TEST(BlobDigestParse, RejectsUppercaseHex) {
  std::string s = Valid();
  s[7] = 'B';  // 'b' -> 'B'
  ExpectRejected(s);
  std::string all_upper = "sha256:" + std::string(64, 'A');
  ExpectRejected(all_upper);
}

TEST(BlobDigestParse, RejectsWrongLength) {
  ExpectRejected(Valid().substr(0, Valid().size() - 1));
  ExpectRejected(Valid() + "0");
  ExpectRejected("sha256:");
  ExpectRejected("sha256:" + std::string(128, 'a'));
}

TEST(BlobDigestParse, RejectsWrongPrefix) {
  ExpectRejected(std::string("sha512:") + kAbcHex);
  ExpectRejected(std::string("SHA256:") + kAbcHex);
  ExpectRejected(std::string("sha256-") + kAbcHex);
  ExpectRejected(std::string(kAbcHex));                 // no prefix at all
  ExpectRejected(std::string("xsha256:") + std::string(kAbcHex).substr(1));  // right length, bad prefix
}

TEST(BlobDigestParse, RejectsPathJunk) {
  // Same length as a valid digest, but would be dangerous in a path.
  std::string s = "sha256:../" + std::string(kAbcHex).substr(3);
  ASSERT_EQ(s.size(), Valid().size());
  ExpectRejected(s);
  std::string slash = Valid();
  slash[20] = '/';
  ExpectRejected(slash);
  ExpectRejected("../../../etc/passwd");
}

TEST(BlobDigestParse, RejectsEmbeddedNul) {
  std::string s = Valid();
  s[30] = '\0';
  ASSERT_EQ(s.size(), Valid().size());
  ExpectRejected(s);
  // NUL in the prefix
  std::string p = Valid();
  p[3] = '\0';
  ExpectRejected(p);
}

TEST(BlobDigestParse, RejectsNonHexCharacters) {
  std::string s = Valid();
  s[40] = 'g';
  ExpectRejected(s);
  s[40] = ' ';
  ExpectRejected(s);
}

TEST(BlobDigestParse, MessageIsPrintable) {
  std::string s = "sha256:\x01\x02\x7f" + std::string(200, 'z');
  auto d = BlobDigest::Parse(s);
  ASSERT_FALSE(d.ok());
  for (char c : d.error().message) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "unprintable byte " << static_cast<int>(c);
  }
  EXPECT_LT(d.error().message.size(), 200u);  // long junk is truncated
}

TEST(BlobDigest, RoundTripStrHexRaw) {
  auto d = BlobDigest::Parse(Valid()).value();
  auto again = BlobDigest::Parse(d.str());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, d);
  EXPECT_EQ(BlobDigest::Parse("sha256:" + d.hex()).value(), d);
  EXPECT_EQ(BlobDigest::FromRaw(d.raw()), d);
  EXPECT_EQ(BlobDigest::FromRaw(d.raw().data()), d);
  EXPECT_EQ(d.Short(), "sha256:" + std::string(kAbcHex).substr(0, 12));
}

TEST(BlobDigest, OrderingAndHash) {
  auto a = BlobDigest::Parse("sha256:" + std::string(64, '0')).value();
  auto b = BlobDigest::Parse("sha256:" + std::string(63, '0') + "1").value();
  EXPECT_LT(a, b);
  EXPECT_NE(a, b);
  EXPECT_NE(std::hash<BlobDigest>()(a), std::hash<BlobDigest>()(BlobDigest::Parse(Valid()).value()));
}

TEST(HexEncode, Encodes) {
  const uint8_t bytes[] = {0x00, 0x0f, 0xa5, 0xff};
  EXPECT_EQ(HexEncode(bytes, sizeof bytes), "000fa5ff");
  EXPECT_EQ(HexEncode(bytes, 0), "");
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(Sha256::Of("").hex(), kEmptyHex);
  EXPECT_EQ(Sha256::Of("abc").hex(), kAbcHex);
  EXPECT_EQ(Sha256::Of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").hex(),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, StreamingMatchesOneShotAndResets) {
  Sha256 h;
  h.Update("a", 1);
  h.Update("", 0);
  h.Update("bc", 2);
  EXPECT_EQ(h.Finish().hex(), kAbcHex);
  // Finish resets: a second use hashes from scratch.
  EXPECT_EQ(h.Finish().hex(), kEmptyHex);
  std::string million(1000000, 'a');
  for (size_t i = 0; i < million.size(); i += 4096) {
    h.Update(million.data() + i, std::min<size_t>(4096, million.size() - i));
  }
  EXPECT_EQ(h.Finish().hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

}  // namespace
}  // namespace gapsync
