#include "agent/node/status.h"

namespace gapsync::agent {

v1::ClusterStatus BuildStatus(const std::string& node, const v1::StoreSummary& store,
                              const std::vector<transport::MemberState>& members,
                              const std::vector<v1::ReleaseState>& releases, const std::optional<v1::IngestProgress>& ingest) {
  v1::ClusterStatus out;
  auto* self = out.add_nodes();
  self->set_node(node);
  self->set_self(true);
  self->set_reachable(true);
  *self->mutable_store() = store;
  for (const auto& r : releases) *self->add_releases() = r;
  if (ingest) *self->mutable_ingest() = *ingest;
  for (const auto& m : members) {
    auto* ms = self->add_members();
    ms->set_node(m.member.node());
    ms->set_address(m.member.address());
    ms->set_self(m.self);
    ms->set_reachable(m.reachable);
    ms->set_last_seen_unix(m.last_seen_unix);
  }
  for (const auto& m : members) {
    if (m.self) continue;
    auto* other = out.add_nodes();
    other->set_node(m.member.node());
    other->set_self(false);
    other->set_address(m.member.address());
    other->set_reachable(m.reachable);
    other->set_last_seen_unix(m.last_seen_unix);
    for (const auto& r : m.releases) *other->add_releases() = r;
  }
  return out;
}

}  // namespace gapsync::agent
