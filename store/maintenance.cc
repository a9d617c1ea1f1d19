// ChunkedStore's maintenance: fsck (every byte and every release checked again), gc (what no
// pinned or pending release needs, and orphaned chunks), and dropping a blob fsck found corrupt.
#include <set>

#include "proto/sha256.h"
#include "store/chunked_store.h"

namespace gapsync::store {

Result<FsckReport> ChunkedStore::Fsck(const std::function<void(uint64_t)>& progress) {
  FsckReport report;
  std::set<BlobDigest> blobs;
  std::map<BlobDigest, uint64_t> chunk_counts;  // chunks each record accounts for
  GS_RETURN_IF_ERROR(ForEachBlob([&](const BlobInfo& info) {
    blobs.insert(info.digest);
    chunk_counts[info.digest] = info.chunks;
    return OkStatus();
  }));
  for (const auto& d : blobs) {
    Sha256 hash;
    uint64_t got = 0;
    GS_ASSIGN_OR_RETURN(auto info, Stat(d));
    Status st = Read(d, 0, info->size, [&](std::span<const uint8_t> bytes) {
      hash.Update(bytes);
      got += bytes.size();
      if (progress) progress(bytes.size());
      return OkStatus();
    });
    if (!st.ok()) {
      report.problems.push_back(st.error().message);
      if (st.error().code == Errc::kCorrupt) report.corrupt_blobs.push_back(d);
    } else if (hash.Finish() != d) {
      report.problems.push_back("blob " + d.str() + ": stored bytes do not hash to its digest");
      report.corrupt_blobs.push_back(d);
    }
    report.blobs_checked++;
    report.bytes_checked += got;
  }
  GS_RETURN_IF_ERROR(kv_->Scan(Space::kPartials, "", [&](std::string_view key, std::string_view value) {
    v1::PartialRecord rec;
    if (key.size() == BlobDigest::kRawSize && rec.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      auto d = BlobDigest::FromRaw(reinterpret_cast<const uint8_t*>(key.data()));
      auto& n = chunk_counts[d];
      n = std::max(n, PartialChunks(rec));
      report.partial_blobs++;
    }
    return true;
  }));
  CountAssemblyChunks(chunk_counts);  // pieces not recorded yet are no orphans either
  GS_ASSIGN_OR_RETURN(auto orphans, FindOrphanChunks(chunk_counts));
  report.orphan_chunks = orphans.size();
  {
    std::lock_guard lock(mu_);
    for (const auto& [what, why] : unlisted_) {
      report.problems.push_back("store: " + what + ": " + why + ": which blobs it needs is not known (ingest its bundle again)");
    }
  }
  GS_ASSIGN_OR_RETURN(auto releases, ListReleases());
  for (const auto& rel : releases) {
    report.releases_checked++;
    for (const auto& d : rel.blobs) {
      if (!blobs.count(d)) {
        report.problems.push_back("release " + rel.id.str() + " needs blob " + d.str() + ", which is missing");
      }
    }
  }
  return report;
}

Result<GcStats> ChunkedStore::CollectGarbage(bool drop_partials) {
  // Record what is queued and every piece held first: gc must see it all in the store.
  GS_RETURN_IF_ERROR(Sync());
  if (drop_partials) {
    std::lock_guard lock(mu_);
    assemblies_.clear();  // their records go below
  }
  {
    std::lock_guard lock(mu_);
    for (const auto& [what, why] : unlisted_) {
      if (drop_partials && what.starts_with("pending ")) continue;  // dropped below
      return MakeError(Errc::kCorrupt, "store: " + what + ": " + why +
                                           ": gc cannot know which blobs it needs and removes nothing (ingest its bundle again)");
    }
  }
  GcStats stats;
  std::set<BlobDigest> live;
  GS_ASSIGN_OR_RETURN(auto releases, ListReleases(Space::kReleases));
  for (const auto& rel : releases) {
    if (!rel.pinned) continue;
    live.insert(rel.blobs.begin(), rel.blobs.end());
  }
  GS_ASSIGN_OR_RETURN(auto pending, ListReleases(Space::kPending));
  std::vector<KvOp> dropped_pending;
  for (const auto& rel : pending) {
    if (drop_partials) {
      dropped_pending.push_back(KvOp{Space::kPending, ReleaseKey(rel.id), std::nullopt});
      continue;
    }
    live.insert(rel.blobs.begin(), rel.blobs.end());
  }
  std::vector<BlobInfo> dead;
  std::map<BlobDigest, uint64_t> chunk_counts;
  GS_RETURN_IF_ERROR(ForEachBlob([&](const BlobInfo& info) {
    if (!live.count(info.digest)) {
      dead.push_back(info);
    } else {
      chunk_counts[info.digest] = info.chunks;
    }
    return OkStatus();
  }));
  std::vector<KvOp> ops = std::move(dropped_pending);
  std::vector<BlobDigest> partials;
  GS_RETURN_IF_ERROR(kv_->Scan(Space::kPartials, "", [&](std::string_view key, std::string_view value) {
    if (key.size() != BlobDigest::kRawSize) return true;
    auto d = BlobDigest::FromRaw(reinterpret_cast<const uint8_t*>(key.data()));
    v1::PartialRecord rec;
    if (drop_partials || !rec.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      partials.push_back(d);
    } else {
      auto& n = chunk_counts[d];
      n = std::max(n, PartialChunks(rec));
    }
    return true;
  }));
  if (!drop_partials) CountAssemblyChunks(chunk_counts);
  for (const auto& info : dead) {
    ops.push_back(KvOp{Space::kBlobs, DigestKey(info.digest), std::nullopt});
    stats.blobs_removed++;
    stats.bytes_removed += info.size;
  }
  for (const auto& d : partials) {
    ops.push_back(KvOp{Space::kPartials, DigestKey(d), std::nullopt});
    stats.partials_removed++;
  }
  if (!ops.empty()) GS_RETURN_IF_ERROR(kv_->Commit(ops));
  GS_ASSIGN_OR_RETURN(auto orphans, FindOrphanChunks(chunk_counts));
  stats.orphan_chunks_removed = orphans.size();
  for (const auto& [begin, end] : orphans) {
    GS_RETURN_IF_ERROR(kv_->DeleteChunkRange(begin, end));
  }
  GS_RETURN_IF_ERROR(kv_->Compact());
  return stats;
}

Status ChunkedStore::DropBlob(const BlobDigest& digest) {
  GS_RETURN_IF_ERROR(Sync());
  GS_RETURN_IF_ERROR(kv_->Commit({KvOp{Space::kBlobs, DigestKey(digest), std::nullopt},
                                  KvOp{Space::kPartials, DigestKey(digest), std::nullopt}}));
  std::lock_guard lock(mu_);
  assemblies_.erase(digest);
  return OkStatus();
}

Result<std::vector<std::pair<std::string, std::string>>> ChunkedStore::FindOrphanChunks(
  const std::map<BlobDigest, uint64_t>& counts) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string cursor;
  for (;;) {
    GS_ASSIGN_OR_RETURN(auto found, kv_->FirstKeyAtOrAfter(Space::kChunks, cursor));
    if (!found) break;
    if (found->size() != BlobDigest::kRawSize + 4) {
      out.emplace_back(*found, *found + '\0');
      cursor = *found + '\0';
      continue;
    }
    auto d = BlobDigest::FromRaw(reinterpret_cast<const uint8_t*>(found->data()));
    auto it = counts.find(d);
    uint64_t keep = it == counts.end() ? 0 : it->second;
    uint32_t index = 0;
    for (int i = 0; i < 4; ++i) index = index << 8 | static_cast<uint8_t>((*found)[BlobDigest::kRawSize + i]);
    if (index >= keep) {
      out.emplace_back(*found, ChunkRangeEnd(d));
      cursor = ChunkRangeEnd(d);
    } else {
      cursor = ChunkKey(d, static_cast<uint32_t>(keep));
    }
  }
  return out;
}

}  // namespace gapsync::store
