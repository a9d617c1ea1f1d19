// What Hellos make a node remember (transport/member_table.h).
#include <gtest/gtest.h>

#include "transport/member_table.h"

namespace gapsync::transport {
namespace {

v1::Member M(const std::string& node, const std::string& address, const std::string& data = "") {
  v1::Member m;
  m.set_node(node);
  m.set_address(address);
  m.set_data_address(data);
  return m;
}

TEST(MemberTable, TakesTheSenderAndValidListedMembersOnly) {
  MemberTable t("node-a", 10);
  v1::Hello h;
  *h.mutable_self() = M("node-b", "198.18.0.2:7400", "198.18.0.2:7401");
  *h.add_members() = M("node-a", "198.18.0.1:7400");       // this node
  *h.add_members() = M("node-c", "198.18.0.3:7400");       // taken
  *h.add_members() = M("Node_D", "198.18.0.4:7400");       // invalid name
  *h.add_members() = M("node-e", "example.org:7400");      // not IPv4
  *h.add_members() = M("node-f", "0.0.0.0:7400");          // not reachable
  *h.add_members() = M("node-g", "198.18.0.7:7400", "x");  // bad data address
  auto learned = t.Learn(h, "node-b", 1000);
  EXPECT_TRUE(learned.sender_taken);
  EXPECT_TRUE(learned.newly_reachable);
  std::vector<std::string> names;
  for (const auto& m : t.Members(1000)) names.push_back(m.member.node());
  EXPECT_EQ(names, (std::vector<std::string>{"node-b", "node-c"}));
  EXPECT_TRUE(t.IsReachable("node-b", 1010));
  EXPECT_FALSE(t.IsReachable("node-b", 1011));
  EXPECT_FALSE(t.IsReachable("node-c", 1000));  // known, never heard from
  EXPECT_FALSE(t.Learn(h, "node-b", 1005).newly_reachable);
}

TEST(MemberTable, ASenderWithUnusableAddressesIsNotTaken) {
  MemberTable t("node-a", 10);
  v1::Hello h;
  *h.mutable_self() = M("node-b", "nowhere");
  EXPECT_FALSE(t.Learn(h, "node-b", 1000).sender_taken);
  EXPECT_EQ(t.size(), 0u);
}

TEST(MemberTable, AHelloListingMoreMembersThanTheLimitFillsItOnly) {
  MemberTable t("node-a", 10);
  v1::Hello h;
  *h.mutable_self() = M("node-b", "198.18.0.2:7400");
  for (size_t i = 0; i < MemberTable::kMaxMembers + 100; ++i) {
    *h.add_members() = M("m" + std::to_string(i), "198.18.1." + std::to_string(i % 250 + 1) + ":7400");
  }
  t.Learn(h, "node-b", 1000);
  EXPECT_EQ(t.size(), MemberTable::kMaxMembers + 1);  // the sender is always remembered
}

TEST(DecodeControlMessage, RefusesBytesThatAreNoMessage) {
  auto bad = DecodeControlMessage("\xff\xff\xff\xff");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::kCorrupt);
  v1::ControlMessage msg;
  msg.mutable_hello()->mutable_self()->set_node("node-b");
  auto good = DecodeControlMessage(msg.SerializeAsString());
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->hello().self().node(), "node-b");
}

}  // namespace
}  // namespace gapsync::transport
