#include "agent/catalog/store_summary.h"

#include "proto/bundle.pb.h"

namespace gapsync::agent {

Result<v1::StoreSummary> SummarizeStore(store::BlobStore& s) {
  GS_ASSIGN_OR_RETURN(auto rels, s.ListReleases());
  v1::StoreSummary out;
  uint64_t blobs = 0, bytes = 0, stored = 0;
  GS_RETURN_IF_ERROR(s.ForEachBlob([&](const store::BlobInfo& i) {
    blobs++;
    bytes += i.size;
    stored += i.stored_bytes;
    return OkStatus();
  }));
  out.set_blobs(blobs);
  out.set_bytes(bytes);
  out.set_stored_bytes(stored);
  for (const auto& r : rels) {
    v1::BundleManifest m;
    (void)m.ParseFromString(r.manifest);  // verified when it came in; an unreadable one lists no components
    auto* rel = out.add_releases();
    rel->set_app(r.id.app);
    rel->set_version(r.id.version);
    rel->set_release_digest(r.release_digest.str());
    rel->set_blobs(static_cast<uint64_t>(m.release().blobs_size()));
    uint64_t rb = 0;
    for (const auto& d : m.release().blobs()) rb += d.size();
    rel->set_bytes(rb);
    for (const auto& c : m.release().components()) {
      auto* sc = rel->add_components();
      sc->set_name(c.name());
      sc->set_kind(c.has_image() ? "image" : "artifact");
    }
    rel->set_pinned(r.pinned);
    rel->set_ingested_unix(r.ingested_unix);
  }
  return out;
}

}  // namespace gapsync::agent
