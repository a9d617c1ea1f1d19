#include "agent/ingest/ingest.h"

#include <algorithm>

#include "agent/base/progress.h"
#include "agent/base/util.h"
#include "agent/catalog/release_record.h"

namespace gapsync::agent {
namespace {

Status CheckAgainstStore(const LoadedBundle& bundle, store::BlobStore& store, const IngestOptions& o,
                         IngestResult& result) {
  GS_ASSIGN_OR_RETURN(auto held, HeldReleases(store));
  const auto& rel = bundle.manifest.release();
  const Admission a = Admit({ReleaseId{rel.app(), rel.version()}, bundle.release_digest, o.source, o.allow_older}, held);
  switch (a.verdict) {
    case Admission::Verdict::kNew:
      return OkStatus();
    case Admission::Verdict::kConflict:
      return MakeError(Errc::kConflict, "store already holds " + result.release + " with different content (release " +
                                            a.against.digest.str() + ", bundle " + bundle.release_digest.str() +
                                            "): a version is immutable; publish a new version");
    case Admission::Verdict::kOlder:
      return MakeError(Errc::kConflict, "bundle " + bundle.dir + " holds " + result.release + ", older than " +
                                            a.against.id.str() +
                                            " which the store holds: refusing to go back (pass --allow-older to ingest it anyway)");
    case Admission::Verdict::kHeld:
      break;
  }
  // The same release. A no-op, unless some of its blobs went missing (fsck --repair dropped
  // corrupt ones): then this ingest puts them back.
  for (const auto& d : bundle.manifest.release().blobs()) {
    GS_ASSIGN_OR_RETURN(auto info, store.Stat(BlobDigest::Parse(d.digest()).value()));
    if (!info) return OkStatus();
  }
  result.already_present = true;
  return OkStatus();
}

}  // namespace

Status Ingest(const LoadedBundle& bundle, store::BlobStore& store, const IngestOptions& o, IngestResult& result) {
  const auto& m = bundle.manifest;
  result.release = m.release().app() + "@" + m.release().version();
  result.blobs_total = static_cast<uint64_t>(m.blobs_size());
  GS_RETURN_IF_ERROR(CheckAgainstStore(bundle, store, o, result));
  if (result.already_present) {
    result.complete = true;
    return OkStatus();
  }

  const auto cancelled = [&o] { return o.cancel != nullptr && o.cancel->load(std::memory_order_relaxed); };
  VolumeReader reader(bundle);
  std::vector<bool> missing(static_cast<size_t>(m.volumes_size()), false);
  for (uint32_t i = 0; i < missing.size(); ++i) {
    if (auto p = reader.SizeProblem(i); !p.empty()) {
      // A damaged volume (wrong size, not a file): name it, store what the others hold.
      missing[i] = true;
      result.problems.push_back(p);
    } else if (!reader.Present(i)) {
      missing[i] = true;
      result.missing_volumes.push_back(reader.Path(i));
    }
  }

  // What is left to do, for progress.
  uint64_t todo = 0;
  std::vector<bool> have(static_cast<size_t>(m.blobs_size()), false);
  for (int i = 0; i < m.blobs_size(); ++i) {
    GS_ASSIGN_OR_RETURN(auto info, store.Stat(bundle.blob_digests[static_cast<size_t>(i)]));
    have[static_cast<size_t>(i)] = info.has_value();
    if (!info) todo += m.blobs(i).size();
  }
  Progress progress("ingest " + result.release, todo, o.quiet);
  uint64_t since_sync = 0;
  bool incomplete = false;

  for (int i = 0; i < m.blobs_size(); ++i) {
    const auto& entry = m.blobs(i);
    const auto& digest = bundle.blob_digests[static_cast<size_t>(i)];
    if (have[static_cast<size_t>(i)]) {
      result.blobs_skipped++;
      continue;
    }
    // Two attempts: if a blob resumed from a stored prefix fails its digest, that prefix was bad
    // (e.g. read from a damaged copy before a crash): forget it and read the blob again whole.
    for (int attempt = 0; attempt < 2; ++attempt) {
      GS_ASSIGN_OR_RETURN(auto writer, store.OpenWriter(digest, entry.size(), entry.media_type()));
      const uint64_t resume = writer->offset();
      progress.Add(resume);
      uint64_t pos = 0;  // offset in the blob where the current segment starts
      bool suspended = false;
      Status failed;
      std::string where;
      for (const auto& seg : entry.segments()) {
        const uint64_t seg_end = pos + seg.length();
        if (seg_end <= writer->offset()) {
          pos = seg_end;
          continue;
        }
        if (missing[seg.volume()]) {
          suspended = true;
          break;
        }
        const uint64_t skip = writer->offset() > pos ? writer->offset() - pos : 0;
        where += (where.empty() ? "" : " + ") + reader.Path(seg.volume()) + " bytes " + std::to_string(seg.offset() + skip) +
                 ".." + std::to_string(seg.offset() + seg.length());
        failed = reader.Read(seg.volume(), seg.offset() + skip, seg.length() - skip, [&](const uint8_t* p, size_t n) -> Status {
          GS_RETURN_IF_ERROR(writer->Append(std::span<const uint8_t>(p, n)));
          progress.Add(n);
          since_sync += n;
          result.bytes_new += n;
          if (o.bytes_done != nullptr) o.bytes_done->fetch_add(n, std::memory_order_relaxed);
          if (o.hooks.after_bytes) o.hooks.after_bytes(result.bytes_new, cancelled);
          if (cancelled()) {
            return MakeError(Errc::kIncomplete, "ingest of " + result.release + " stopped before it finished; run it again to go on");
          }
          if (since_sync >= o.sync_every_bytes) {  // a long blob: keep what is done so far
            GS_RETURN_IF_ERROR(writer->Checkpoint());
            GS_RETURN_IF_ERROR(store.Sync());
            since_sync = 0;
          }
          return OkStatus();
        });
        if (!failed.ok()) break;
        pos = seg_end;
      }
      if (!failed.ok()) {
        if (failed.error().code == Errc::kIncomplete) {  // cancelled: keep what is done
          GS_RETURN_IF_ERROR(writer->Suspend());
          GS_RETURN_IF_ERROR(store.Sync());
          GS_RETURN_IF_ERROR(store.KeepPending(StoredReleaseOf(bundle)));  // gc keeps it too
          return failed.error();
        }
        if (failed.error().code == Errc::kNoSpace || failed.error().code == Errc::kIo) return failed.error();
        result.problems.push_back("blob " + digest.str() + ": " + failed.error().message);
        GS_RETURN_IF_ERROR(writer->Abandon());
        break;
      }
      if (suspended) {
        GS_RETURN_IF_ERROR(writer->Suspend());
        incomplete = true;
        break;
      }
      auto st = writer->Commit();  // on a mismatch it also forgets the blob's stored prefix
      if (st.ok()) {
        result.blobs_new++;
        break;
      }
      if (st.error().code != Errc::kCorrupt) return st.error();
      if (resume > 0 && attempt == 0) {
        GS_RETURN_IF_ERROR(store.Sync());  // the bad prefix is gone: the next writer starts at 0
        continue;
      }
      result.problems.push_back(where + ": " + st.error().message);
      break;
    }
    if (since_sync >= o.sync_every_bytes) {
      GS_RETURN_IF_ERROR(store.Sync());
      since_sync = 0;
    }
  }
  GS_RETURN_IF_ERROR(store.Sync());
  progress.Finish();

  if (!result.problems.empty()) {
    return MakeError(Errc::kCorrupt, result.problems.front() +
                                         (result.problems.size() > 1 ? " (and " + std::to_string(result.problems.size() - 1) + " more problems)" : ""));
  }
  if (incomplete || !result.missing_volumes.empty()) {
    // Are all blobs present anyway (e.g. a missing volume held only blobs we already had)?
    for (int i = 0; i < m.blobs_size(); ++i) {
      GS_ASSIGN_OR_RETURN(auto info, store.Stat(bundle.blob_digests[static_cast<size_t>(i)]));
      if (!info) {
        std::string names;
        for (auto& v : result.missing_volumes) names += (names.empty() ? "" : ", ") + v;
        GS_RETURN_IF_ERROR(store.KeepPending(StoredReleaseOf(bundle)));  // gc keeps what is stored so far
        return MakeError(Errc::kIncomplete, "missing volume files: " + names + "; stored what was present (" +
                                                std::to_string(result.blobs_new) + " new blobs); ingest a folder holding the rest to finish " +
                                                result.release);
      }
    }
  }
  if (o.hooks.before_commit) o.hooks.before_commit();
  GS_RETURN_IF_ERROR(store.PutRelease(StoredReleaseOf(bundle)));
  result.complete = true;
  return OkStatus();
}

std::string SummaryOf(const v1::IngestReport& r) {
  if (r.already_present()) return r.release() + " is already in the store: nothing to do";
  return "ingested " + r.release() + ": " + std::to_string(r.blobs()) + " blobs (" + std::to_string(r.blobs_new()) +
         " new, " + std::to_string(r.blobs_skipped()) + " already present), " + HumanBytes(r.bytes_new()) + " written";
}

v1::IngestReport ReportOf(const IngestResult& r, const Status& status) {
  constexpr size_t kMaxProblems = 100;  // the rest are counted, so an answer stays small
  v1::IngestReport out;
  out.set_release(r.release);
  out.set_complete(r.complete);
  out.set_already_present(r.already_present);
  out.set_blobs(r.blobs_total);
  out.set_blobs_new(r.blobs_new);
  out.set_blobs_skipped(r.blobs_skipped);
  out.set_bytes_new(r.bytes_new);
  for (const auto& v : r.missing_volumes) out.add_missing_volumes(v);
  for (size_t i = 0; i < std::min(r.problems.size(), kMaxProblems); ++i) out.add_problems(r.problems[i]);
  if (r.problems.size() > kMaxProblems) {
    out.add_problems("... and " + std::to_string(r.problems.size() - kMaxProblems) + " more");
  }
  out.set_error(status.ok() ? "" : status.error().message);
  return out;
}

}  // namespace gapsync::agent
