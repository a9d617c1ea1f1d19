// The one admission policy (agent/catalog/admission.h), as a table: every way a release arrives
// against what the node holds.
#include "agent/catalog/admission.h"

#include <gtest/gtest.h>

namespace gapsync::agent {
namespace {

ReleaseDigest D(char c) { return ReleaseDigest::Parse("sha256:" + std::string(64, c)).value(); }

using V = Admission::Verdict;
constexpr auto kMedia = ReleaseSource::kMedia;
constexpr auto kApi = ReleaseSource::kLocalApi;
constexpr auto kPeer = ReleaseSource::kPeer;

struct Row {
  const char* what;
  ReleaseId id;
  ReleaseDigest digest;
  ReleaseSource source;
  bool allow_older;
  V verdict;
};

TEST(AdmissionTest, Table) {
  // The node holds shop 1.0.0 (a) and 1.2.0 (b), and db 2.0.0 (c).
  const std::vector<HeldRelease> held{{{"shop", "1.0.0"}, D('a')}, {{"shop", "1.2.0"}, D('b')}, {{"db", "2.0.0"}, D('c')}};
  const std::vector<Row> rows{
      {"a new app", {"web", "0.1.0"}, D('d'), kMedia, false, V::kNew},
      {"a newer version", {"shop", "1.3.0"}, D('d'), kMedia, false, V::kNew},
      {"a newer version from a peer", {"shop", "1.3.0"}, D('d'), kPeer, false, V::kNew},
      {"the same release again", {"shop", "1.2.0"}, D('b'), kMedia, false, V::kHeld},
      {"the same release from a peer", {"shop", "1.0.0"}, D('a'), kPeer, false, V::kHeld},
      {"the same version, other content, media", {"shop", "1.2.0"}, D('9'), kMedia, false, V::kConflict},
      {"the same version, other content, --allow-older", {"shop", "1.2.0"}, D('9'), kApi, true, V::kConflict},
      {"the same version, other content, peer", {"shop", "1.0.0"}, D('9'), kPeer, false, V::kConflict},
      {"an older version from media", {"shop", "1.1.0"}, D('d'), kMedia, false, V::kOlder},
      {"an older version through the local API", {"shop", "1.1.0"}, D('d'), kApi, false, V::kOlder},
      {"an older version with --allow-older", {"shop", "1.1.0"}, D('d'), kMedia, true, V::kNew},
      {"an older version from a peer (a late node catches up)", {"shop", "0.9.0"}, D('d'), kPeer, false, V::kNew},
      {"a pre-release of the newest is older", {"shop", "1.2.0-rc.1"}, D('d'), kApi, false, V::kOlder},
      {"a pre-release of the next is newer", {"shop", "1.3.0-rc.1"}, D('d'), kApi, false, V::kNew},
      {"build metadata does not order", {"shop", "1.2.0+build.7"}, D('d'), kMedia, false, V::kNew},
      {"another app's newer version does not count", {"db", "1.0.0"}, D('d'), kPeer, false, V::kNew},
      {"another app's newer version does not count, media", {"db", "1.9.0"}, D('d'), kMedia, false, V::kOlder},
  };
  for (const auto& r : rows) {
    const Admission a = Admit({r.id, r.digest, r.source, r.allow_older}, held);
    EXPECT_EQ(a.verdict, r.verdict) << r.what << " (against " << a.against.id.str() << ")";
    EXPECT_EQ(a.admitted(), r.verdict == V::kNew || r.verdict == V::kHeld) << r.what;
    if (!a.admitted()) {
      EXPECT_FALSE(a.against.id.app.empty()) << r.what << ": a refusal names the release that refuses it";
    }
  }
}

TEST(AdmissionTest, RefusalsNameTheReleaseThatRefusesThem) {
  const std::vector<HeldRelease> held{{{"shop", "1.0.0"}, D('a')}, {{"shop", "1.2.0"}, D('b')}};
  auto older = Admit({{"shop", "1.1.0"}, D('d'), kMedia, false}, held);
  EXPECT_EQ(older.against.id, (ReleaseId{"shop", "1.2.0"}));
  auto conflict = Admit({{"shop", "1.0.0"}, D('e'), kPeer, false}, held);
  EXPECT_EQ(conflict.against.id, (ReleaseId{"shop", "1.0.0"}));
  EXPECT_EQ(conflict.against.digest, D('a'));
}

}  // namespace
}  // namespace gapsync::agent
