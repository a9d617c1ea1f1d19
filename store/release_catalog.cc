// ChunkedStore's releases: release records (a release whose blobs are all visible) and pending
// records (an ingest or fetch under way, whose blobs gc keeps). Both are ReleaseRecords holding the
// signed manifest as bytes the store does not read, and the release's blob list.
#include <utility>

#include "store/chunked_store.h"

namespace gapsync::store {
namespace {

v1::ReleaseRecord EncodeRelease(const StoredRelease& release) {
  v1::ReleaseRecord rec;
  rec.set_manifest(release.manifest);
  rec.set_signature(release.signature);
  rec.set_release_digest(release.release_digest.str());
  rec.set_ingested_unix(release.ingested_unix);
  rec.set_pinned(release.pinned);
  for (const auto& d : release.blobs) rec.add_blob_digests(d.raw().data(), d.raw().size());
  rec.set_blobs_listed(true);
  return rec;
}

// A record as stored under `key` (app '\0' version).
struct Decoded {
  std::string key;
  StoredRelease release;
  bool blobs_listed = false;  // the record lists the release's blobs (not one of eae3f3c's)
  v1::ReleaseRecord record;
};

Result<Decoded> DecodeRelease(std::string_view key, std::string_view value) {
  const auto sep = key.find('\0');
  Decoded d;
  d.key = std::string(key);
  v1::ReleaseRecord& rec = d.record;
  const std::string shown(key.substr(0, sep));
  if (sep == std::string_view::npos || !rec.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return MakeError(Errc::kCorrupt, "store: unreadable release record (key \"" + shown + "\")");
  }
  StoredRelease& out = d.release;
  out.id = ReleaseId{std::string(key.substr(0, sep)), std::string(key.substr(sep + 1))};
  out.manifest = rec.manifest();
  out.signature = rec.signature();
  auto digest = ReleaseDigest::Parse(rec.release_digest());
  if (!digest.ok()) return MakeError(Errc::kCorrupt, "store: release record " + out.id.str() + ": " + digest.error().message);
  out.release_digest = digest.value();
  out.ingested_unix = rec.ingested_unix();
  out.pinned = rec.pinned();
  for (const auto& raw : rec.blob_digests()) {
    if (raw.size() != BlobDigest::kRawSize) {
      return MakeError(Errc::kCorrupt, "store: release record " + out.id.str() + " lists a blob digest of " +
                                           std::to_string(raw.size()) + " bytes");
    }
    out.blobs.push_back(BlobDigest::FromRaw(reinterpret_cast<const uint8_t*>(raw.data())));
  }
  d.blobs_listed = rec.blobs_listed();
  return d;
}

// Every record of `space`; the first that does not decode stops the scan.
Result<std::vector<Decoded>> ScanReleases(Kv& kv, Space space) {
  std::vector<Decoded> out;
  Status inner;
  GS_RETURN_IF_ERROR(kv.Scan(space, "", [&](std::string_view key, std::string_view value) {
    auto rel = DecodeRelease(key, value);
    if (!rel.ok()) {
      inner = rel.error();
      return false;
    }
    out.push_back(std::move(rel).value());
    return true;
  }));
  GS_RETURN_IF_ERROR(inner);
  return out;
}

}  // namespace

Status ChunkedStore::PutRelease(const StoredRelease& release) {
  GS_RETURN_IF_ERROR(Sync());
  for (const auto& d : release.blobs) {
    GS_ASSIGN_OR_RETURN(auto rec, GetBlobRecord(d));
    if (!rec) {
      return MakeError(Errc::kIncomplete, "release " + release.id.str() + " needs blob " + d.str() +
                                              ", which the store does not hold");
    }
  }
  GS_RETURN_IF_ERROR(kv_->Commit({KvOp{Space::kReleases, ReleaseKey(release.id), EncodeRelease(release).SerializeAsString()},
                                  KvOp{Space::kPending, ReleaseKey(release.id), std::nullopt}}));
  std::lock_guard lock(mu_);
  unlisted_.erase("release " + release.id.str());
  unlisted_.erase("pending release " + release.id.str());
  return OkStatus();
}

Status ChunkedStore::KeepPending(const StoredRelease& release) {
  StoredRelease pending = release;
  pending.pinned = false;
  GS_RETURN_IF_ERROR(kv_->Commit({KvOp{Space::kPending, ReleaseKey(release.id), EncodeRelease(pending).SerializeAsString()}}));
  std::lock_guard lock(mu_);
  unlisted_.erase("pending release " + release.id.str());
  return OkStatus();
}

Result<std::optional<StoredRelease>> ChunkedStore::GetRelease(const ReleaseId& id) {
  GS_ASSIGN_OR_RETURN(auto value, kv_->Get(Space::kReleases, ReleaseKey(id)));
  if (!value) return std::optional<StoredRelease>();
  GS_ASSIGN_OR_RETURN(auto rel, DecodeRelease(ReleaseKey(id), *value));
  return std::optional<StoredRelease>(std::move(rel.release));
}

Result<std::vector<StoredRelease>> ChunkedStore::ListReleases(Space space) {
  GS_ASSIGN_OR_RETURN(auto records, ScanReleases(*kv_, space));
  std::vector<StoredRelease> out;
  for (auto& r : records) out.push_back(std::move(r.release));
  return out;
}

Status ChunkedStore::UpgradeReleaseRecords(const ManifestBlobsFn& manifest_blobs) {
  std::vector<KvOp> ops;
  for (const Space space : {Space::kReleases, Space::kPending}) {
    GS_ASSIGN_OR_RETURN(auto records, ScanReleases(*kv_, space));
    for (auto& r : records) {
      if (r.blobs_listed) continue;
      const std::string what = std::string(space == Space::kPending ? "pending release " : "release ") + r.release.id.str();
      if (!manifest_blobs) {
        return MakeError(Errc::kInvalidArgument, "store: " + what + " was written by an older gapsync and lists no blobs; "
                                                 "open the store with the gapsync command or agent (which can read its manifest)");
      }
      auto blobs = manifest_blobs(r.release.manifest);
      if (!blobs.ok()) {  // the store still opens: fsck names it, gc waits for it to be mended
        std::lock_guard lock(mu_);
        unlisted_[what] = blobs.error().message;
        continue;
      }
      // Every other field stays as it was, pinned included.
      for (const auto& d : blobs.value()) r.record.add_blob_digests(d.raw().data(), d.raw().size());
      r.record.set_blobs_listed(true);
      ops.push_back(KvOp{space, r.key, r.record.SerializeAsString()});
    }
  }
  if (ops.empty()) return OkStatus();
  return kv_->Commit(ops);
}

}  // namespace gapsync::store
