#include "agent/cli/render.h"

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <iostream>

#include "agent/base/util.h"

using nlohmann::json;

namespace gapsync::agent {
namespace {

json ReleasesJson(const google::protobuf::RepeatedPtrField<v1::ReleaseState>& releases) {
  json out = json::array();
  for (const auto& r : releases) {
    const double pct = r.bytes_total() == 0 ? 100.0
                                            : 100.0 * static_cast<double>(r.bytes_have()) / static_cast<double>(r.bytes_total());
    out.push_back({{"release", r.app() + "@" + r.version()}, {"app", r.app()}, {"version", r.version()},
                   {"release_digest", r.release_digest()}, {"complete", r.complete()}, {"bytes_have", r.bytes_have()},
                   {"bytes_total", r.bytes_total()}, {"percent", std::floor(pct * 10) / 10},
                   {"download_rate", r.download_rate()}, {"upload_rate", r.upload_rate()}, {"uploaded", r.uploaded()},
                   {"info_hash", r.info_hash()}, {"error", r.error()}});
  }
  return out;
}

// printf into a string of whatever length it takes.
__attribute__((format(printf, 1, 2))) std::string Line(const char* format, ...) {
  va_list args;
  va_start(args, format);
  va_list again;
  va_copy(again, args);
  const int n = std::vsnprintf(nullptr, 0, format, args);
  va_end(args);
  std::string out(static_cast<size_t>(std::max(n, 0)) + 1, '\0');
  std::vsnprintf(out.data(), out.size(), format, again);
  va_end(again);
  out.pop_back();
  return out;
}

json Strings(const google::protobuf::RepeatedPtrField<std::string>& v) { return json(std::vector<std::string>(v.begin(), v.end())); }

}  // namespace

json IngestReportJson(const v1::IngestReport& r) {
  return {{"release", r.release()},         {"complete", r.complete()},     {"already_present", r.already_present()},
          {"blobs", r.blobs()},             {"blobs_new", r.blobs_new()},   {"blobs_skipped", r.blobs_skipped()},
          {"bytes_new", r.bytes_new()},     {"missing_volumes", Strings(r.missing_volumes())},
          {"problems", Strings(r.problems())}, {"error", r.error()}};
}

json StoreSummaryJson(const v1::StoreSummary& s) {
  json j{{"blobs", s.blobs()}, {"bytes", s.bytes()}, {"stored_bytes", s.stored_bytes()}, {"releases", json::array()}};
  for (const auto& r : s.releases()) {
    json comps = json::array();
    for (const auto& c : r.components()) comps.push_back({{"name", c.name()}, {"kind", c.kind()}});
    j["releases"].push_back({{"app", r.app()}, {"version", r.version()}, {"release_digest", r.release_digest()},
                             {"blobs", r.blobs()}, {"bytes", r.bytes()}, {"components", comps}, {"pinned", r.pinned()},
                             {"ingested_unix", r.ingested_unix()}, {"complete", true}});
  }
  return j;
}

json ClusterStatusJson(const v1::ClusterStatus& s) {
  json nodes = json::array();
  for (const auto& n : s.nodes()) {
    if (n.self()) {
      json members = json::array();
      for (const auto& m : n.members()) {
        members.push_back({{"node", m.node()}, {"address", m.address()}, {"self", m.self()}, {"reachable", m.reachable()},
                           {"last_seen_unix", m.last_seen_unix()}});
      }
      json ingest = n.has_ingest() ? json{{"bundle", n.ingest().bundle()}, {"release", n.ingest().release()},
                                          {"bytes_done", n.ingest().bytes_done()}, {"bytes_total", n.ingest().bytes_total()}}
                                   : json(nullptr);
      nodes.push_back({{"node", n.node()}, {"self", true}, {"reachable", n.reachable()}, {"store", StoreSummaryJson(n.store())},
                       {"members", members}, {"releases", ReleasesJson(n.releases())}, {"ingest", ingest}});
    } else {
      nodes.push_back({{"node", n.node()}, {"self", false}, {"address", n.address()}, {"reachable", n.reachable()},
                       {"last_seen_unix", n.last_seen_unix()}, {"releases", ReleasesJson(n.releases())}});
    }
  }
  return json{{"nodes", nodes}};
}

std::string StoreSummaryText(const v1::StoreSummary& s) {
  std::string out;
  out += Line("%-24s %-14s %8s %12s  %s\n", "APP", "VERSION", "BLOBS", "SIZE", "COMPONENTS");
  for (const auto& r : s.releases()) {
    std::string comps;
    for (const auto& c : r.components()) comps += (comps.empty() ? "" : ",") + c.name();
    out += Line("%-24s %-14s %8lu %12s  %s\n", r.app().c_str(), r.version().c_str(),
                  static_cast<unsigned long>(r.blobs()), HumanBytes(r.bytes()).c_str(), comps.c_str());
  }
  out += Line("store: %lu blobs, %s (%s on disk after compression)\n", static_cast<unsigned long>(s.blobs()),
                HumanBytes(s.bytes()).c_str(), HumanBytes(s.stored_bytes()).c_str());
  return out;
}

std::string ClusterStatusText(const v1::ClusterStatus& s) {
  std::string out;
  for (const auto& n : s.nodes()) {
    out += Line("node %s%s: %s\n", n.node().c_str(), n.self() ? " (this node)" : "",
                  n.reachable() ? "reachable" : "UNREACHABLE");
    for (const auto& r : n.releases()) {
      std::string state = r.complete() ? "complete" : "";
      if (state.empty()) {
        const double pct = r.bytes_total() == 0 ? 100.0
                                                : 100.0 * static_cast<double>(r.bytes_have()) / static_cast<double>(r.bytes_total());
        char p[32];
        std::snprintf(p, sizeof p, "%.1f %%", std::floor(pct * 10) / 10);
        state = p;
      }
      out += Line("  %s@%s  %s  %s of %s  down %s/s  up %s/s%s%s\n", r.app().c_str(), r.version().c_str(),
                    state.c_str(), HumanBytes(r.bytes_have()).c_str(), HumanBytes(r.bytes_total()).c_str(),
                    HumanBytes(static_cast<uint64_t>(r.download_rate())).c_str(),
                    HumanBytes(static_cast<uint64_t>(r.upload_rate())).c_str(), r.error().empty() ? "" : "  ERROR: ",
                    r.error().c_str());
    }
    if (!n.self()) continue;
    for (const auto& r : n.store().releases()) {
      bool listed = false;
      for (const auto& t : n.releases()) listed |= t.app() == r.app() && t.version() == r.version();
      if (listed) continue;
      out += Line("  %s@%s  complete  %s\n", r.app().c_str(), r.version().c_str(), HumanBytes(r.bytes()).c_str());
    }
    for (const auto& m : n.members()) {
      if (m.self()) continue;
      out += Line("  member %s at %s: %s\n", m.node().c_str(), m.address().c_str(),
                    m.reachable() ? "reachable" : "UNREACHABLE");
    }
    if (n.has_ingest()) {
      out += Line("  ingesting %s from %s: %s of %s\n", n.ingest().release().c_str(), n.ingest().bundle().c_str(),
                    HumanBytes(n.ingest().bytes_done()).c_str(), HumanBytes(n.ingest().bytes_total()).c_str());
    }
  }
  return out;
}

void PrintJson(const json& j) { std::cout << j.dump(2) << std::endl; }

}  // namespace gapsync::agent
