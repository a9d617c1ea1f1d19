// Cluster CA: node certificates verify against their own CA only; files are private and never
// overwritten; bad names are refused.
#include "transport/cluster_ca.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace gapsync::transport {
namespace {

class ClusterCaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gapsync-ca-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  static unsigned Mode(const std::string& path) {
    struct stat st {};
    ::stat(path.c_str(), &st);
    return st.st_mode & 0777;
  }
  std::string dir_;
};

TEST_F(ClusterCaTest, IssuedCertificateVerifiesAgainstItsCaOnly) {
  auto ca = InitCa(dir_ + "/ca", "test");
  ASSERT_TRUE(ca.ok()) << ca.error().message;
  EXPECT_EQ(Mode(ca->key), 0600u);
  auto other = InitCa(dir_ + "/other-ca", "other");
  ASSERT_TRUE(other.ok()) << other.error().message;

  auto node = IssueNodeCertificate(dir_ + "/ca", "node-1", dir_ + "/node1");
  ASSERT_TRUE(node.ok()) << node.error().message;
  EXPECT_EQ(Mode(node->key), 0600u);
  EXPECT_TRUE(std::filesystem::exists(node->ca_cert));

  auto name = VerifyNodeCertificate(ca->cert, node->cert);
  ASSERT_TRUE(name.ok()) << name.error().message;
  EXPECT_EQ(name.value(), "node-1");

  auto foreign = VerifyNodeCertificate(other->cert, node->cert);
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.error().code, Errc::kBadSignature);
  EXPECT_NE(foreign.error().message.find(node->cert), std::string::npos) << foreign.error().message;
}

TEST_F(ClusterCaTest, OpenSslAgreesTheChainIsValidForTls) {
  auto ca = InitCa(dir_ + "/ca", "test");
  ASSERT_TRUE(ca.ok());
  auto node = IssueNodeCertificate(dir_ + "/ca", "n2", dir_ + "/n2");
  ASSERT_TRUE(node.ok());
  for (const char* purpose : {"sslclient", "sslserver"}) {
    std::string cmd = "openssl verify -purpose " + std::string(purpose) + " -CAfile " + ca->cert + " " + node->cert +
                      " >/dev/null 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
}

TEST_F(ClusterCaTest, NothingIsOverwritten) {
  ASSERT_TRUE(InitCa(dir_ + "/ca", "test").ok());
  auto again = InitCa(dir_ + "/ca", "test");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::kConflict);
  ASSERT_TRUE(IssueNodeCertificate(dir_ + "/ca", "a", dir_ + "/a").ok());
  auto twice = IssueNodeCertificate(dir_ + "/ca", "a", dir_ + "/a");
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().code, Errc::kConflict);
}

TEST_F(ClusterCaTest, BadNodeNamesAndMissingCaAreRefused) {
  ASSERT_TRUE(InitCa(dir_ + "/ca", "test").ok());
  for (const char* bad : {"", "../evil", "Upper", "a/b", ".hidden", "x..y"}) {
    auto r = IssueNodeCertificate(dir_ + "/ca", bad, dir_ + "/out");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  }
  auto missing = IssueNodeCertificate(dir_ + "/no-ca", "n", dir_ + "/out");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("no-ca/ca.key"), std::string::npos) << missing.error().message;
}

}  // namespace
}  // namespace gapsync::transport
