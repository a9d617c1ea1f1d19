#include "agent/reports.h"

#include <algorithm>

#include "agent/util.h"
#include "proto/bundle.pb.h"

using nlohmann::json;

namespace gapsync::agent {

json IngestReport(const IngestResult& r, const Status& status) {
  constexpr size_t kMaxProblems = 100;  // the rest are counted, so an answer stays small
  std::vector<std::string> problems(r.problems.begin(), r.problems.begin() + static_cast<ptrdiff_t>(std::min(r.problems.size(), kMaxProblems)));
  if (r.problems.size() > kMaxProblems) problems.push_back("... and " + std::to_string(r.problems.size() - kMaxProblems) + " more");
  return {{"release", r.release},          {"complete", r.complete},       {"already_present", r.already_present},
          {"blobs", r.blobs_total},        {"blobs_new", r.blobs_new},     {"blobs_skipped", r.blobs_skipped},
          {"bytes_new", r.bytes_new},      {"missing_volumes", r.missing_volumes},
          {"problems", problems},        {"error", status.ok() ? "" : status.error().message}};
}

std::string IngestSummary(const IngestResult& r) {
  if (r.already_present) return r.release + " is already in the store: nothing to do";
  return "ingested " + r.release + ": " + std::to_string(r.blobs_total) + " blobs (" + std::to_string(r.blobs_new) +
         " new, " + std::to_string(r.blobs_skipped) + " already present), " + HumanBytes(r.bytes_new) + " written";
}

Result<json> StoreListing(store::BlobStore& s) {
  GS_ASSIGN_OR_RETURN(auto rels, s.ListReleases());
  uint64_t blobs = 0, bytes = 0, stored = 0;
  GS_RETURN_IF_ERROR(s.ForEachBlob([&](const store::BlobInfo& i) {
    blobs++;
    bytes += i.size;
    stored += i.stored_bytes;
    return OkStatus();
  }));
  json j{{"blobs", blobs}, {"bytes", bytes}, {"stored_bytes", stored}, {"releases", json::array()}};
  for (const auto& r : rels) {
    v1::BundleManifest m;
    m.ParseFromString(r.manifest);
    uint64_t rb = 0;
    for (const auto& d : m.release().blobs()) rb += d.size();
    json comps = json::array();
    for (const auto& c : m.release().components()) {
      comps.push_back({{"name", c.name()}, {"kind", c.has_image() ? "image" : "artifact"}});
    }
    j["releases"].push_back({{"app", r.id.app}, {"version", r.id.version}, {"release_digest", r.release_digest.str()},
                             {"blobs", m.release().blobs_size()}, {"bytes", rb}, {"components", comps},
                             {"pinned", r.pinned}, {"ingested_unix", r.ingested_unix}, {"complete", true}});
  }
  return j;
}

}  // namespace gapsync::agent
