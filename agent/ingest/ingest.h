// gapsync ingest: a verified bundle into the node's store.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "agent/bundle/bundle.h"
#include "agent/catalog/admission.h"
#include "proto/agent.pb.h"
#include "store/blob_store.h"

namespace gapsync::agent {

// Where tests reach into an ingest (crash and pause points); set by `main` from the environment,
// never by library code. Called on the ingest's thread.
struct IngestHooks {
  // After each block of new bytes is stored: the new bytes so far, and whether a stop was asked for.
  std::function<void(uint64_t bytes_new, const std::function<bool()>& cancelled)> after_bytes;
  // Right before the release record is committed.
  std::function<void()> before_commit;
};

struct IngestOptions {
  bool allow_older = false;
  ReleaseSource source = ReleaseSource::kMedia;  // for the admission policy (agent/catalog/admission.h)
  bool quiet = false;
  uint64_t sync_every_bytes = 1ull << 30;  // durability checkpoints while streaming
  // When set and it becomes true, the ingest stops soon, keeping its progress, with kIncomplete.
  const std::atomic<bool>* cancel = nullptr;
  // When set, kept up to date with the bytes done so far (for status reports).
  std::atomic<uint64_t>* bytes_done = nullptr;
  IngestHooks hooks;
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
// Errors: kConflict (refused by the admission policy: same version, other content; older than the
// newest held without allow_older), kIncomplete
// (volumes missing: what was present is stored), kCorrupt (bytes that do not match), kNoSpace, kIo.
// On error `result` still says what was done.
Status Ingest(const LoadedBundle& bundle, store::BlobStore& store, const IngestOptions& options,
              IngestResult& result);

// What an ingest reports (the CLI's --json and the local API's answer).
v1::IngestReport ReportOf(const IngestResult& result, const Status& status);
// The one-line human summary of a finished ingest.
std::string SummaryOf(const v1::IngestReport& report);

}  // namespace gapsync::agent
