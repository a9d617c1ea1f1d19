// How the CLI shows typed results: JSON for --json (the forms scripts rely on: they do not
// change, tests/cluster/compat.sh), text otherwise. Rendering happens here and only here.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "proto/agent.pb.h"

namespace gapsync::agent {

nlohmann::json IngestReportJson(const v1::IngestReport& r);
nlohmann::json StoreSummaryJson(const v1::StoreSummary& s);
nlohmann::json ClusterStatusJson(const v1::ClusterStatus& s);

// `store ls`: a table of releases, then the totals.
std::string StoreSummaryText(const v1::StoreSummary& s);
// `cluster status`: per node, its releases, members and an ingest under way.
std::string ClusterStatusText(const v1::ClusterStatus& s);

// Pretty-printed, as every --json prints.
void PrintJson(const nlohmann::json& j);

}  // namespace gapsync::agent
