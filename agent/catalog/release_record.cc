#include "agent/catalog/release_record.h"

#include <ctime>

namespace gapsync::agent {

store::StoredRelease StoredReleaseOf(const LoadedBundle& verified) {
  store::StoredRelease rec;
  rec.id = ReleaseId{verified.manifest.release().app(), verified.manifest.release().version()};
  rec.manifest = verified.manifest_bytes;
  rec.signature = verified.signature;
  rec.release_digest = verified.release_digest;
  for (const auto& d : verified.manifest.release().blobs()) rec.blobs.push_back(BlobDigest::Parse(d.digest()).value());
  rec.ingested_unix = static_cast<int64_t>(std::time(nullptr));
  rec.pinned = true;
  return rec;
}

Result<std::vector<HeldRelease>> HeldReleases(store::BlobStore& store) {
  GS_ASSIGN_OR_RETURN(auto releases, store.ListReleases());
  std::vector<HeldRelease> out;
  for (const auto& r : releases) out.push_back({r.id, r.release_digest});
  return out;
}

Result<std::unique_ptr<store::BlobStore>> OpenNodeStore(const std::string& path) {
  store::RocksDbOptions o;
  o.manifest_blobs = ReleaseBlobsOfManifest;
  return store::OpenRocksDbStore(path, o);
}

}  // namespace gapsync::agent
