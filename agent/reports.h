// What commands report, as JSON, built in one place so the CLI and the agent's local API print
// the same thing.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "agent/ingest.h"
#include "store/blob_store.h"

namespace gapsync::agent {

nlohmann::json IngestReport(const IngestResult& r, const Status& status);
// The one-line human summary of a finished ingest.
std::string IngestSummary(const IngestResult& r);
// Releases and blob totals of a store (store ls --json).
Result<nlohmann::json> StoreListing(store::BlobStore& store);

}  // namespace gapsync::agent
