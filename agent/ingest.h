// gapsync ingest: a verified bundle into the node's store.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "agent/bundle.h"
#include "store/blob_store.h"

namespace gapsync::agent {

struct IngestOptions {
  bool allow_older = false;
  bool quiet = false;
  uint64_t sync_every_bytes = 1ull << 30;  // durability checkpoints while streaming
  // When set and it becomes true, the ingest stops soon, keeping its progress, with kIncomplete.
  const std::atomic<bool>* cancel = nullptr;
  // When set, kept up to date with the bytes done so far (for status reports).
  std::atomic<uint64_t>* bytes_done = nullptr;
};

struct IngestResult {
  std::string release;          // app@version
  bool already_present = false;  // the release was complete before: nothing done
  bool complete = false;         // the release is now visible in the store
  uint64_t blobs_total = 0;
  uint64_t blobs_new = 0;
  uint64_t blobs_skipped = 0;    // already in the store
  uint64_t bytes_new = 0;
  std::vector<std::string> missing_volumes;  // when !complete
  std::vector<std::string> problems;         // corrupt blobs etc.
};

// REQUIRES: `bundle` came from LoadBundle (signature verified).
// Errors: kConflict (same version, other content; older than the newest held), kIncomplete
// (volumes missing: what was present is stored), kCorrupt (bytes that do not match), kNoSpace, kIo.
// On error `result` still says what was done.
Status Ingest(const LoadedBundle& bundle, store::BlobStore& store, const IngestOptions& options,
              IngestResult& result);

}  // namespace gapsync::agent
