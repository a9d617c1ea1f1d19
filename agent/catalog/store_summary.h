// What a store holds, as `store ls` and `cluster status` report it.
#pragma once

#include "proto/agent.pb.h"
#include "store/blob_store.h"

namespace gapsync::agent {

// Reads every blob record (a scan of the store: never on the agent's event loop) and every
// release's manifest (for its components and size).
Result<v1::StoreSummary> SummarizeStore(store::BlobStore& store);

}  // namespace gapsync::agent
