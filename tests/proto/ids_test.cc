// The identity types (proto/ids.h): what each accepts, and that a valid value round-trips.
#include "proto/ids.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gapsync {
namespace {

TEST(ReleaseIdTest, ParsesAppAtVersion) {
  auto id = ReleaseId::Parse("shop@1.2.3-rc.1+build.5");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->app, "shop");
  EXPECT_EQ(id->version, "1.2.3-rc.1+build.5");
  EXPECT_EQ(id->str(), "shop@1.2.3-rc.1+build.5");
  for (const char* bad : {"", "shop", "@1.0.0", "shop@"}) {
    auto r = ReleaseId::Parse(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  }
  EXPECT_LT((ReleaseId{"a", "2.0.0"}), (ReleaseId{"b", "1.0.0"}));
}

TEST(ReleaseDigestTest, AcceptsExactlyASha256Name) {
  const std::string hex(64, 'a');
  auto d = ReleaseDigest::Parse("sha256:" + hex);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->str(), "sha256:" + hex);
  EXPECT_EQ(d->hex(), hex);
  EXPECT_NE(*d, ReleaseDigest());
  for (const std::string& bad : {"sha256:" + std::string(63, 'a'), "sha256:" + std::string(64, 'A'), std::string(64, 'a'),
                                "sha512:" + hex, "sha256:" + hex + "0"}) {
    auto r = ReleaseDigest::Parse(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, Errc::kCorrupt);
  }
}

TEST(NodeNameTest, AcceptsHostNameLikeNamesOnly) {
  const std::vector<std::string> goods{"node-1", "a", "n1.dc2", std::string(63, 'x')};
  for (const auto& good : goods) {
    auto n = NodeName::Parse(good);
    ASSERT_TRUE(n.ok()) << good;
    EXPECT_EQ(n->str(), good);
  }
  for (const std::string& bad : {std::string(""), std::string(64, 'x'), std::string("Node"), std::string("-a"), std::string(".a"),
                                std::string("a..b"), std::string("a b"), std::string("a/b"), std::string("a\n")}) {
    EXPECT_FALSE(NodeName::IsValid(bad)) << bad;
    auto r = NodeName::Parse(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message.find("node name"), std::string::npos);
  }
}

}  // namespace
}  // namespace gapsync
