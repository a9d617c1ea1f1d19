// Fuzz target: what a member sends on the control plane after the TLS handshake: length-prefixed
// ControlMessages (transport/member_table.h), Hellos merged into the member table as the server
// merges them. Properties: a frame over the limit is refused unread; the table never takes this
// node itself, a member with an invalid name or unusable addresses, or more members than its limit.
#include "proto/frame.h"
#include "proto/ids.h"
#include "tests/fuzz/fuzz_util.h"
#include "transport/member_table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gapsync;
  // Two members with certificates talk to node-a, taking turns, one second apart.
  const char* senders[] = {"node-b", "node-c"};
  transport::MemberTable table("node-a", 10);
  size_t pos = 0;
  for (int64_t frame = 0; size - pos >= 4; ++frame) {
    const uint32_t n = DecodeFrameLength(data + pos);
    pos += 4;
    if (n > kMaxFrame || n > size - pos) break;  // refused unread / the peer hangs up
    auto msg = transport::DecodeControlMessage(fuzz::AsView(data + pos, n));
    pos += n;
    if (!msg.ok()) break;  // the server drops the connection
    if (msg->has_hello()) {
      const std::string sender = senders[frame % 2];
      if (msg->hello().self().node() != sender) continue;  // names another node than its certificate: dropped
      const auto learned = table.Learn(msg->hello(), sender, 1'700'000'000 + frame);
      FUZZ_CHECK(!learned.sender_taken || table.IsReachable(sender, 1'700'000'000 + frame));
    } else if (msg->has_offer_request()) {
      (void)ReleaseDigest::Parse(msg->offer_request().release_digest());
    }
  }
  FUZZ_CHECK(table.size() <= transport::MemberTable::kMaxMembers + 2);
  for (const auto& m : table.Members(1'700'000'100)) {
    FUZZ_CHECK(m.member.node() != "node-a");
    FUZZ_CHECK(NodeName::IsValid(m.member.node()));
    FUZZ_CHECK(transport::ValidMemberAddresses(m.member));
  }
  return 0;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace gapsync;
  if (fuzz::SeedDir() == nullptr) return 0;
  auto hello_of = [](const std::string& node, int port) {
    v1::ControlMessage msg;
    auto* h = msg.mutable_hello();
    h->mutable_self()->set_node(node);
    h->mutable_self()->set_address("198.18.0." + std::to_string(port % 200 + 1) + ":7400");
    h->mutable_self()->set_data_address("198.18.0." + std::to_string(port % 200 + 1) + ":7401");
    auto* m = h->add_members();
    m->set_node("node-d");
    m->set_address("198.18.0.9:7400");
    auto* r = h->add_releases();
    r->set_app("shop");
    r->set_version("1.2.0");
    r->set_release_digest("sha256:" + std::string(64, 'a'));
    r->set_offered(true);
    r->set_bytes_have(1000);
    r->set_bytes_total(4000);
    return EncodeFrame(msg);
  };
  fuzz::WriteSeed("hello", hello_of("node-b", 2));
  v1::ControlMessage q;
  q.mutable_offer_request()->set_app("shop");
  q.mutable_offer_request()->set_version("1.2.0");
  q.mutable_offer_request()->set_release_digest("sha256:" + std::string(64, 'a'));
  fuzz::WriteSeed("hellos-and-request", hello_of("node-b", 2) + hello_of("node-c", 3) + EncodeFrame(q));
  std::exit(0);
}
