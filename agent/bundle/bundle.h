// The bundle on media: DIR/manifest.pb (BundleManifest), DIR/manifest.sig (64-byte Ed25519
// signature over the exact manifest.pb bytes) and DIR/volume-NNNN.gsv files holding blob bytes.
// Spec: docs/bundle-format.md.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/bundle/keys.h"
#include "proto/bundle.pb.h"
#include "proto/digest.h"
#include "proto/error.h"
#include "proto/ids.h"

namespace gapsync::agent {

inline constexpr const char* kManifestFile = "manifest.pb";
inline constexpr const char* kSignatureFile = "manifest.sig";
inline constexpr uint32_t kFormatVersion = 1;

// Limits a manifest must respect before anything trusts its numbers.
inline constexpr uint64_t kMaxManifestBytes = 64ull << 20;
inline constexpr int kMaxBlobs = 1'000'000;
inline constexpr int kMaxVolumes = 100'000;
inline constexpr int kMaxSegmentsPerBlob = 100'000;
inline constexpr uint64_t kMaxBlobSize = 1ull << 44;    // 16 TiB
inline constexpr uint64_t kMaxVolumeSize = 1ull << 44;  // 16 TiB

std::string VolumeFileName(uint32_t index);  // volume-0001.gsv for index 0

// An app name: 1-64 of a-z 0-9 . _ -, starting with a letter or digit.
bool IsValidAppName(const std::string& name);

struct LoadedBundle {
  std::string dir;
  std::string manifest_bytes;
  std::string signature;
  std::string signer;  // path of the trusted key that verified it
  v1::BundleManifest manifest;
  std::vector<BlobDigest> blob_digests;  // parallel to manifest.blobs()
  ReleaseDigest release_digest;
};

// Reads manifest.sig and manifest.pb, checks the signature against `trusted` BEFORE parsing,
// then parses and validates every field (digest forms, sizes, counts, volume names, segments).
Result<LoadedBundle> LoadBundle(const std::string& dir, const std::vector<TrustedKey>& trusted);
// The same checks on manifest and signature bytes that came some other way (a release
// announcement from a peer); the names say where they came from in errors.
Result<LoadedBundle> VerifySignedManifest(std::string manifest_bytes, std::string signature,
                                          const std::vector<TrustedKey>& trusted, const std::string& manifest_name,
                                          const std::string& signature_name);
// Validation alone (used by LoadBundle and by tests and inspect).
Status ValidateManifest(const v1::BundleManifest& m, const std::string& where);
// Parse and validate without a signature check (bundle inspect).
Result<LoadedBundle> LoadBundleUnverified(const std::string& dir);

// sha256 of the deterministic encoding of the release: equal for equal releases, whatever the
// volume layout.
ReleaseDigest DigestOfRelease(const v1::Release& release);

// The digests of every blob the release in `manifest` (BundleManifest bytes, as a store keeps them)
// needs, in manifest order. kCorrupt when they do not parse or a digest is malformed.
Result<std::vector<BlobDigest>> ReleaseBlobsOfManifest(std::string_view manifest);

// Reads blob bytes out of volume files, opening each volume once (reads: StreamFileRange).
class VolumeReader {
 public:
  explicit VolumeReader(const LoadedBundle& bundle);
  ~VolumeReader();
  // True when the volume file exists; its size is checked against the manifest on first open.
  bool Present(uint32_t volume);
  // What is wrong with a volume file that is there: not a regular file, or the wrong size
  // ("" when fine, or when it is simply missing).
  std::string SizeProblem(uint32_t volume);
  // Reads [offset, offset+len) of a volume into the callback in blocks.
  Status Read(uint32_t volume, uint64_t offset, uint64_t len,
              const std::function<Status(const uint8_t*, size_t)>& sink);
  std::string Path(uint32_t volume) const;

 private:
  struct Vol {
    int fd = -1;
    bool checked = false;
    bool present = false;
    bool not_regular = false;  // there, but a symlink, FIFO, folder or device
    uint64_t actual_size = 0;
  };
  Vol& Open(uint32_t volume);
  const LoadedBundle& bundle_;
  std::map<uint32_t, Vol> vols_;
};

struct VerifyReport {
  uint64_t blobs_ok = 0;
  uint64_t bytes_checked = 0;
  std::vector<std::string> problems;
};

// Every byte of every volume against the manifest. Problems are collected, one line each.
VerifyReport VerifyVolumes(const LoadedBundle& bundle, const std::function<void(uint64_t)>& progress);

}  // namespace gapsync::agent
