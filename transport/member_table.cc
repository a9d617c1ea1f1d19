#include "transport/member_table.h"

#include "proto/ids.h"
#include "transport/address.h"

namespace gapsync::transport {

Result<v1::ControlMessage> DecodeControlMessage(std::string_view body) {
  v1::ControlMessage msg;
  if (!msg.ParseFromArray(body.data(), static_cast<int>(body.size()))) return MakeError(Errc::kCorrupt, "malformed message");
  return msg;
}

bool ValidMemberAddresses(const v1::Member& m) {
  return ParseIpv4Endpoint(m.address()).has_value() &&
         (m.data_address().empty() || ParseIpv4Endpoint(m.data_address()).has_value());
}

MemberTable::Learned MemberTable::Learn(const v1::Hello& hello, const std::string& verified_sender, int64_t now) {
  Learned out;
  for (const auto& m : hello.members()) {
    if (m.node() == self_ || m.node().empty() || !NodeName::IsValid(m.node()) || !ValidMemberAddresses(m)) continue;
    auto it = members_.find(m.node());
    if (it == members_.end()) {
      if (members_.size() >= kMaxMembers) continue;
      it = members_.emplace(m.node(), MemberState{}).first;
    }
    if (it->second.member.address().empty()) it->second.member = m;
  }
  if (!ValidMemberAddresses(hello.self())) return out;
  out.sender_taken = true;
  // (Always remembered: its name is its certificate's, so only the cluster CA makes more of them.)
  MemberState& sender = members_[verified_sender];
  out.newly_reachable = sender.last_seen_unix == 0 || now - sender.last_seen_unix > window_s_;
  sender.member = hello.self();
  sender.last_seen_unix = now;
  sender.releases.assign(hello.releases().begin(), hello.releases().end());
  return out;
}

bool MemberTable::IsReachable(const std::string& node, int64_t now) const {
  auto it = members_.find(node);
  return it != members_.end() && it->second.last_seen_unix > 0 && now - it->second.last_seen_unix <= window_s_;
}

std::vector<MemberState> MemberTable::Members(int64_t now) const {
  std::vector<MemberState> out;
  out.reserve(members_.size());
  for (const auto& [name, m] : members_) {
    MemberState st = m;
    st.reachable = m.last_seen_unix > 0 && now - m.last_seen_unix <= window_s_;
    out.push_back(std::move(st));
  }
  return out;
}

}  // namespace gapsync::transport
