// What a node knows of the other members of its cluster, as their Hellos told it: pure (no I/O),
// so every Hello a peer can send is checked here before anything dials an address it names.
// Not thread-safe: the control server guards it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "proto/control.pb.h"
#include "proto/error.h"

namespace gapsync::transport {

struct MemberState {
  v1::Member member;
  bool self = false;
  bool reachable = false;  // a Hello exchange with it succeeded within 3 dial intervals
  int64_t last_seen_unix = 0;
  std::vector<v1::ReleaseState> releases;  // from its last Hello
};

// One length-prefixed control message body (the 4-byte header already read); kCorrupt when the
// bytes are no ControlMessage.
Result<v1::ControlMessage> DecodeControlMessage(std::string_view body);

// Addresses from a peer are dialled and handed to libtorrent: IPv4:PORT (the data address may be
// empty), or the member is not taken.
bool ValidMemberAddresses(const v1::Member& m);

class MemberTable {
 public:
  // What Hellos may make a node remember of members they list: beyond these, they are ignored.
  static constexpr size_t kMaxMembers = 4096;

  // `self`: this node's name; `window_s`: how long a member counts as reachable after its last
  // Hello (3 dial intervals).
  MemberTable(std::string self, int64_t window_s) : self_(std::move(self)), window_s_(window_s) {}

  struct Learned {
    bool sender_taken = false;   // the sender's own addresses were usable
    bool newly_reachable = false;  // it had not been heard from within the window
  };
  // Merges a Hello whose sender's name `verified_sender` came from its certificate: the members it
  // lists become known (if their names and addresses are valid), the sender is seen at `now`.
  Learned Learn(const v1::Hello& hello, const std::string& verified_sender, int64_t now);

  bool IsReachable(const std::string& node, int64_t now) const;
  // Every member (not this node), with reachability as of `now`.
  std::vector<MemberState> Members(int64_t now) const;
  size_t size() const { return members_.size(); }

 private:
  std::string self_;
  int64_t window_s_;
  std::map<std::string, MemberState> members_;
};

}  // namespace gapsync::transport
