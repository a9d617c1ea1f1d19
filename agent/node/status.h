// `cluster status`: this node (its store, the members it knows, its releases, an ingest under way)
// and every other member as of its last Hello. Built from what the agent keeps in memory: a status
// request never waits for the store.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "proto/agent.pb.h"
#include "transport/control_server.h"

namespace gapsync::agent {

v1::ClusterStatus BuildStatus(const std::string& node, const v1::StoreSummary& store,
                              const std::vector<transport::MemberState>& members,
                              const std::vector<v1::ReleaseState>& releases, const std::optional<v1::IngestProgress>& ingest);

}  // namespace gapsync::agent
