#include "agent/export/export.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "agent/bundle/bundle.h"
#include "agent/base/util.h"
#include "proto/bundle.pb.h"
#include "proto/sha256.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace gapsync::agent {

Result<ReleaseId> ParseReleaseId(const std::string& text) {
  GS_ASSIGN_OR_RETURN(auto id, ReleaseId::Parse(text));
  if (!IsValidAppName(id.app) || !ParseSemVer(id.version)) {
    return MakeError(Errc::kInvalidArgument, "release \"" + text + "\": expected APP@VERSION with a semantic version");
  }
  return id;
}

namespace {

Status ExportBlob(store::BlobStore& store, const BlobDigest& d, const std::string& dir, uint64_t& bytes) {
  const std::string path = dir + "/blobs/sha256/" + d.hex();
  GS_ASSIGN_OR_RETURN(auto info, store.Stat(d));
  if (!info) return MakeError(Errc::kNotFound, "blob " + d.str() + " is not in the store");
  struct stat existing {};
  if (::stat(path.c_str(), &existing) == 0 && static_cast<uint64_t>(existing.st_size) == info->size) {
    // Already there: keep it only if it verifies.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      Sha256 h;
      std::vector<char> buf(1 << 20);
      ssize_t n;
      while ((n = ::read(fd, buf.data(), buf.size())) > 0) h.Update(buf.data(), static_cast<size_t>(n));
      ::close(fd);
      if (h.Finish() == d) return OkStatus();
    }
  }
  const std::string tmp = path + ".partial";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return MakeError(Errc::kIo, tmp + ": " + ErrnoText(errno));
  Sha256 h;
  Status st = store.Read(d, 0, info->size, [&](std::span<const uint8_t> b) -> Status {
    h.Update(b);
    size_t done = 0;
    while (done < b.size()) {
      ssize_t w = ::write(fd, b.data() + done, b.size() - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return MakeError(errno == ENOSPC ? Errc::kNoSpace : Errc::kIo, tmp + ": write failed: " + ErrnoText(errno));
      done += static_cast<size_t>(w);
    }
    return OkStatus();
  });
  if (st.ok() && h.Finish() != d) st = MakeError(Errc::kCorrupt, "blob " + d.str() + ": store returned bytes that do not match the digest");
  if (st.ok() && ::fsync(fd) != 0) st = MakeError(Errc::kIo, tmp + ": fsync: " + ErrnoText(errno));
  ::close(fd);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return MakeError(Errc::kIo, path + ": " + ErrnoText(errno));
  bytes += info->size;
  return OkStatus();
}

}  // namespace

Result<ExportResult> ExportOciLayout(store::BlobStore& store, const ReleaseId& release,
                                     const std::string& component, const std::string& out_dir) {
  GS_ASSIGN_OR_RETURN(auto rel, store.GetRelease(release));
  if (!rel) return MakeError(Errc::kNotFound, "release " + release.str() + " is not in the store");
  v1::BundleManifest m;
  if (!m.ParseFromString(rel->manifest)) return MakeError(Errc::kCorrupt, "release " + release.str() + ": stored manifest does not parse");
  const v1::Component* comp = nullptr;
  std::string names;
  for (const auto& c : m.release().components()) {
    names += (names.empty() ? "" : ", ") + c.name();
    if (c.name() == component) comp = &c;
  }
  if (comp == nullptr) return MakeError(Errc::kNotFound, "release " + release.str() + " has no component \"" + component + "\" (components: " + names + ")");
  if (!comp->has_image()) return MakeError(Errc::kInvalidArgument, "component \"" + component + "\" of " + release.str() + " is an artifact, not an image");
  std::error_code ec;
  fs::create_directories(out_dir + "/blobs/sha256", ec);
  if (ec) return MakeError(Errc::kIo, out_dir + ": " + ec.message());
  ExportResult r;
  r.tag = release.version;
  r.root_digest = comp->image().root().digest();
  for (const auto& ds : comp->image().blob_digests()) {
    GS_ASSIGN_OR_RETURN(auto d, BlobDigest::Parse(ds));
    GS_RETURN_IF_ERROR(ExportBlob(store, d, out_dir, r.bytes));
    r.blobs++;
  }
  GS_RETURN_IF_ERROR(FsyncDir(out_dir + "/blobs/sha256"));
  GS_RETURN_IF_ERROR(WriteFileAtomic(out_dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  json index = {{"schemaVersion", 2}, {"mediaType", "application/vnd.oci.image.index.v1+json"}, {"manifests", json::array()}};
  auto existing = ReadSmallFile(out_dir + "/index.json", 16 << 20);
  if (existing.ok()) {
    json old = json::parse(existing.value(), nullptr, false);
    if (!old.is_discarded() && old.is_object() && old.contains("manifests") && old["manifests"].is_array()) {
      for (const auto& d : old["manifests"]) {
        bool same_tag = d.contains("annotations") && d["annotations"].is_object() &&
                        d["annotations"].value("org.opencontainers.image.ref.name", std::string()) == r.tag;
        if (!same_tag) index["manifests"].push_back(d);
      }
    }
  }
  const auto& root = comp->image().root();
  index["manifests"].push_back({{"mediaType", root.media_type()},
                                {"digest", root.digest()},
                                {"size", root.size()},
                                {"annotations", {{"org.opencontainers.image.ref.name", r.tag}}}});
  GS_RETURN_IF_ERROR(WriteFileAtomic(out_dir + "/index.json", index.dump()));
  return r;
}

}  // namespace gapsync::agent
