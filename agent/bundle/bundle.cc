#include "agent/bundle/bundle.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>
#include <set>

#include "agent/base/read_ahead.h"
#include "agent/base/util.h"
#include "proto/sha256.h"

namespace gapsync::agent {

bool IsValidAppName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'))) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::string VolumeFileName(uint32_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "volume-%04u.gsv", index + 1);
  return buf;
}

ReleaseDigest DigestOfRelease(const v1::Release& release) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream out(&bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    release.SerializeToCodedStream(&coded);
  }
  return ReleaseDigest(Sha256::Of(bytes));
}

Result<std::vector<BlobDigest>> ReleaseBlobsOfManifest(std::string_view manifest) {
  v1::BundleManifest m;
  if (!m.ParseFromArray(manifest.data(), static_cast<int>(manifest.size()))) {
    return MakeError(Errc::kCorrupt, "stored manifest does not parse");
  }
  std::vector<BlobDigest> out;
  for (const auto& d : m.release().blobs()) {
    GS_ASSIGN_OR_RETURN(auto digest, BlobDigest::Parse(d.digest()));
    out.push_back(digest);
  }
  return out;
}

Status ValidateManifest(const v1::BundleManifest& m, const std::string& where) {
  auto bad = [&](const std::string& what) { return MakeError(Errc::kCorrupt, where + ": " + what); };
  if (m.format_version() != kFormatVersion) {
    return bad("format version " + std::to_string(m.format_version()) + ", this gapsync reads " + std::to_string(kFormatVersion));
  }
  if (m.blobs_size() > kMaxBlobs) return bad("claims " + std::to_string(m.blobs_size()) + " blobs, more than the limit " + std::to_string(kMaxBlobs));
  if (m.volumes_size() > kMaxVolumes) return bad("claims " + std::to_string(m.volumes_size()) + " volumes, more than the limit");
  if (m.release().blobs_size() > kMaxBlobs) return bad("release claims too many blobs");
  std::set<std::string> names;
  for (int i = 0; i < m.volumes_size(); ++i) {
    const auto& v = m.volumes(i);
    if (!IsSafeFileName(v.name())) return bad("volume " + std::to_string(i) + " has the name \"" + v.name() + "\", which is not a plain file name inside the bundle folder");
    if (v.name() == kManifestFile || v.name() == kSignatureFile) return bad("volume name \"" + v.name() + "\" is reserved");
    if (!names.insert(v.name()).second) return bad("volume name \"" + v.name() + "\" used twice");
    if (v.size() > kMaxVolumeSize) return bad("volume " + v.name() + " claims " + std::to_string(v.size()) + " bytes, more than the limit");
  }
  std::map<std::string, uint64_t> sizes;
  for (const auto& b : m.blobs()) {
    auto d = BlobDigest::Parse(b.digest());
    if (!d.ok()) return bad("blob entry: " + d.error().message);
    if (b.size() > kMaxBlobSize) return bad("blob " + b.digest() + " claims " + std::to_string(b.size()) + " bytes, more than the limit");
    if (b.segments_size() > kMaxSegmentsPerBlob) return bad("blob " + b.digest() + " has too many segments");
    if (b.media_type().size() > 255) return bad("blob " + b.digest() + " has an overlong media type");
    if (!sizes.emplace(b.digest(), b.size()).second) return bad("blob " + b.digest() + " listed twice");
    uint64_t total = 0;
    for (const auto& s : b.segments()) {
      if (s.volume() >= static_cast<uint32_t>(m.volumes_size())) return bad("blob " + b.digest() + " points at volume " + std::to_string(s.volume()) + ", which does not exist");
      const auto& v = m.volumes(static_cast<int>(s.volume()));
      if (s.offset() > v.size() || s.length() > v.size() - s.offset()) {
        return bad("blob " + b.digest() + " segment at offset " + std::to_string(s.offset()) + " length " + std::to_string(s.length()) + " runs past the end of " + v.name());
      }
      if (s.length() > b.size() - std::min(total, b.size())) return bad("blob " + b.digest() + " segments add up to more than its size");
      total += s.length();
    }
    if (total != b.size()) return bad("blob " + b.digest() + " segments add up to " + std::to_string(total) + " bytes, not its size " + std::to_string(b.size()));
  }
  const auto& r = m.release();
  if (!IsValidAppName(r.app())) return bad("app name \"" + r.app().substr(0, 80) + "\" is not valid");
  if (!ParseSemVer(r.version())) return bad("version \"" + r.version().substr(0, 80) + "\" is not a semantic version");
  std::set<std::string> release_blobs;
  for (const auto& d : r.blobs()) {
    auto p = BlobDigest::Parse(d.digest());
    if (!p.ok()) return bad("release blob: " + p.error().message);
    auto it = sizes.find(d.digest());
    if (it == sizes.end()) return bad("release needs blob " + d.digest() + ", which the bundle does not carry");
    if (it->second != d.size()) return bad("release and bundle disagree on the size of blob " + d.digest());
    release_blobs.insert(d.digest());
  }
  auto need = [&](const std::string& digest, const std::string& what) -> Status {
    if (auto p = BlobDigest::Parse(digest); !p.ok()) return bad(what + ": " + p.error().message);
    if (!release_blobs.count(digest)) return bad(what + " refers to blob \"" + digest.substr(0, 80) + "\", which the release does not list");
    return OkStatus();
  };
  std::set<std::string> comp_names;
  for (const auto& c : r.components()) {
    if (!IsSafeFileName(c.name())) return bad("component name \"" + c.name().substr(0, 80) + "\" is not a plain name");
    if (!comp_names.insert(c.name()).second) return bad("component \"" + c.name() + "\" listed twice");
    if (c.has_image()) {
      const auto& im = c.image();
      GS_RETURN_IF_ERROR(need(im.root().digest(), "component " + c.name()));
      for (const auto& d : im.blob_digests()) GS_RETURN_IF_ERROR(need(d, "component " + c.name()));
    } else if (c.has_artifact()) {
      const auto& a = c.artifact();
      if (!a.directory() && (a.files_size() != 1 || !IsSafeFileName(a.file_name()))) return bad("component " + c.name() + ": malformed single-file artifact");
      for (const auto& f : a.files()) {
        if (a.directory() && !IsSafeRelativePath(f.path())) return bad("component " + c.name() + ": artifact path \"" + f.path().substr(0, 80) + "\" leaves its folder");
        GS_RETURN_IF_ERROR(need(f.digest(), "component " + c.name()));
      }
      for (const auto& d : a.directories()) {
        if (!IsSafeRelativePath(d)) return bad("component " + c.name() + ": artifact folder \"" + d.substr(0, 80) + "\" leaves its folder");
      }
    } else {
      return bad("component \"" + c.name() + "\" is neither an image nor an artifact");
    }
  }
  for (const auto& t : r.deploy().templates()) {
    if (!IsSafeRelativePath(t.path())) return bad("deploy template path \"" + t.path().substr(0, 80) + "\" leaves the release");
    GS_RETURN_IF_ERROR(need(t.digest(), "deploy template " + t.path()));
  }
  return OkStatus();
}

namespace {

// `where`: the manifest's name in errors.
Result<LoadedBundle> ParseLoaded(LoadedBundle b, const std::string& where) {
  if (!b.manifest.ParseFromString(b.manifest_bytes)) return MakeError(Errc::kCorrupt, where + ": malformed manifest (protobuf does not parse)");
  GS_RETURN_IF_ERROR(ValidateManifest(b.manifest, where));
  for (const auto& e : b.manifest.blobs()) b.blob_digests.push_back(BlobDigest::Parse(e.digest()).value());
  b.release_digest = DigestOfRelease(b.manifest.release());
  return b;
}

}  // namespace

Result<LoadedBundle> LoadBundleUnverified(const std::string& dir) {
  LoadedBundle b;
  b.dir = dir;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return MakeError(Errc::kNotFound, dir + ": no such bundle folder");
  GS_ASSIGN_OR_RETURN(b.manifest_bytes, ReadSmallFile(dir + "/" + kManifestFile, kMaxManifestBytes));
  return ParseLoaded(std::move(b), dir + "/" + kManifestFile);
}

Result<LoadedBundle> LoadBundle(const std::string& dir, const std::vector<TrustedKey>& trusted) {
  LoadedBundle b;
  b.dir = dir;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return MakeError(Errc::kNotFound, dir + ": no such bundle folder");
  const std::string sig_path = dir + "/" + kSignatureFile;
  auto sig = ReadSmallFile(sig_path, 4096);
  if (!sig.ok()) {
    if (sig.error().code == Errc::kNotFound) return MakeError(Errc::kBadSignature, sig_path + ": signature missing; the bundle cannot be trusted");
    return sig.error();
  }
  b.signature = sig.value();
  auto manifest = ReadSmallFile(dir + "/" + kManifestFile, kMaxManifestBytes);
  if (!manifest.ok()) return manifest.error();
  b.manifest_bytes = std::move(manifest).value();
  return VerifySignedManifest(std::move(b.manifest_bytes), std::move(b.signature), trusted, dir + "/" + kManifestFile,
                              sig_path);
}

Result<LoadedBundle> VerifySignedManifest(std::string manifest_bytes, std::string signature,
                                          const std::vector<TrustedKey>& trusted, const std::string& manifest_name,
                                          const std::string& signature_name) {
  LoadedBundle b;
  if (manifest_name.size() > 12 && manifest_name.ends_with(std::string("/") + kManifestFile)) {
    b.dir = manifest_name.substr(0, manifest_name.size() - 12);
  }
  b.manifest_bytes = std::move(manifest_bytes);
  b.signature = std::move(signature);
  if (b.manifest_bytes.size() > kMaxManifestBytes) {
    return MakeError(Errc::kInvalidArgument, manifest_name + ": " + std::to_string(b.manifest_bytes.size()) +
                                                 " bytes, more than the " + std::to_string(kMaxManifestBytes) + " a manifest may have");
  }
  if (b.signature.size() != 64) {
    return MakeError(Errc::kBadSignature, signature_name + ": " + std::to_string(b.signature.size()) +
                                              " bytes, not a 64-byte Ed25519 signature");
  }
  for (const auto& k : trusted) {
    if (k.Verify(b.manifest_bytes, b.signature)) {
      b.signer = k.path();
      break;
    }
  }
  if (b.signer.empty()) {
    std::string keys;
    for (const auto& k : trusted) keys += (keys.empty() ? "" : ", ") + k.path();
    return MakeError(Errc::kBadSignature, manifest_name + ": signature does not verify with any trusted key (" + keys +
                                              "): signed by another key, or the manifest was changed after signing");
  }
  return ParseLoaded(std::move(b), manifest_name);
}

VolumeReader::VolumeReader(const LoadedBundle& bundle) : bundle_(bundle) {}

VolumeReader::~VolumeReader() {
  for (auto& [i, v] : vols_) {
    if (v.fd >= 0) ::close(v.fd);
  }
}

std::string VolumeReader::Path(uint32_t volume) const {
  return bundle_.dir + "/" + bundle_.manifest.volumes(static_cast<int>(volume)).name();
}

VolumeReader::Vol& VolumeReader::Open(uint32_t volume) {
  Vol& v = vols_[volume];
  if (v.checked) return v;
  v.checked = true;
  // No symlinks out of the bundle folder, no blocking on a FIFO: volumes are regular files.
  v.fd = ::open(Path(volume).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (v.fd < 0 && errno == ELOOP) v.not_regular = true;
  if (v.fd >= 0) {
    struct stat st {};
    ::fstat(v.fd, &st);
    v.present = S_ISREG(st.st_mode);
    v.not_regular = !v.present;
    v.actual_size = static_cast<uint64_t>(st.st_size);
    ::posix_fadvise(v.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  return v;
}

bool VolumeReader::Present(uint32_t volume) { return Open(volume).present; }

std::string VolumeReader::SizeProblem(uint32_t volume) {
  Vol& v = Open(volume);
  if (v.not_regular) return Path(volume) + ": not a regular file (a symlink, folder or device is not a volume)";
  uint64_t want = bundle_.manifest.volumes(static_cast<int>(volume)).size();
  if (!v.present || v.actual_size == want) return "";
  return Path(volume) + ": " + std::to_string(v.actual_size) + " bytes, the manifest says " + std::to_string(want) +
         (v.actual_size < want ? " (truncated)" : " (extra bytes)");
}

Status VolumeReader::Read(uint32_t volume, uint64_t offset, uint64_t len,
                          const std::function<Status(const uint8_t*, size_t)>& sink) {
  Vol& v = Open(volume);
  if (!v.present) return MakeError(Errc::kNotFound, Path(volume) + ": volume missing");
  return StreamFileRange(v.fd, Path(volume), offset, len, sink);
}

VerifyReport VerifyVolumes(const LoadedBundle& bundle, const std::function<void(uint64_t)>& progress) {
  VerifyReport report;
  std::set<uint32_t> bad_volumes;
  {
    VolumeReader reader(bundle);
    for (uint32_t i = 0; i < static_cast<uint32_t>(bundle.manifest.volumes_size()); ++i) {
      if (auto p = reader.SizeProblem(i); !p.empty()) {
        report.problems.push_back(p);  // its blobs are not checked: the volume is damaged as a whole
        bad_volumes.insert(i);
      } else if (!reader.Present(i)) {
        report.problems.push_back(reader.Path(i) + ": volume missing");
        bad_volumes.insert(i);
      }
    }
  }
  // Blobs are hashed by two threads (SHA-256 is the bottleneck: one core does ~2 GB/s), each
  // taking the next blob; problems are reported in blob order.
  const int n = bundle.manifest.blobs_size();
  std::vector<std::string> problems(static_cast<size_t>(n));
  std::atomic<int> next{0};
  std::atomic<uint64_t> ok{0}, bytes{0};
  std::mutex progress_mu;
  auto worker = [&] {
    VolumeReader reader(bundle);
    Sha256 hash;
    for (int bi = next++; bi < n; bi = next++) {
      const auto& entry = bundle.manifest.blobs(bi);
      const auto& want = bundle.blob_digests[static_cast<size_t>(bi)];
      bool skipped = false;
      std::string where;
      Status st;
      for (const auto& seg : entry.segments()) {
        if (bad_volumes.count(seg.volume())) {
          skipped = true;
          break;
        }
        where += (where.empty() ? "" : " + ") + reader.Path(seg.volume()) + " bytes " + std::to_string(seg.offset()) +
                 ".." + std::to_string(seg.offset() + seg.length());
        st = reader.Read(seg.volume(), seg.offset(), seg.length(), [&](const uint8_t* p, size_t len) -> Status {
          hash.Update(p, len);
          bytes += len;
          if (progress) {
            std::lock_guard lock(progress_mu);
            progress(len);
          }
          return OkStatus();
        });
        if (!st.ok()) break;
      }
      auto got = hash.Finish();
      if (skipped) continue;
      auto& problem = problems[static_cast<size_t>(bi)];
      if (!st.ok()) {
        problem = "blob " + want.str() + ": " + st.error().message;
      } else if (got != want) {
        problem = where + ": blob " + want.str() + " does not match its digest (content hashes to " + got.str() + ")";
      } else {
        ok++;
      }
    }
  };
  std::thread second(worker);
  worker();
  second.join();
  for (auto& p : problems) {
    if (!p.empty()) report.problems.push_back(std::move(p));
  }
  report.blobs_ok = ok;
  report.bytes_checked = bytes;
  return report;
}

}  // namespace gapsync::agent
