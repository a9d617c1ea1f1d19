// Reading the inputs of a bundle: OCI image layouts, docker-archive tars, artifact files/folders.
// Each yields a component description and the list of blobs with where their bytes come from.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proto/bundle.pb.h"
#include "proto/digest.h"
#include "proto/error.h"

namespace gapsync::agent {

struct BlobSource {
  std::optional<BlobDigest> digest;  // known up front (images); computed while copying (artifacts)
  uint64_t size = 0;
  std::string media_type;
  std::string file;         // bytes are file[offset, offset+size) ...
  uint64_t offset = 0;
  bool in_memory = false;   // ... or `data` (manifests gapsync synthesised)
  std::string data;
  std::string origin;       // for messages: where these bytes come from
};

struct ComponentInput {
  v1::Component component;   // digests of artifact files are filled in by the bundle writer
  std::vector<BlobSource> blobs;
};

inline constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr const char* kOciLayerTar = "application/vnd.oci.image.layer.v1.tar";
inline constexpr const char* kOciLayerTarGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr const char* kOctetStream = "application/octet-stream";

// oci:PATH[:TAG]. Every blob the tag reaches (index, manifests, configs, layers) must exist with
// its declared size; bytes are checked against digests when copied.
Result<ComponentInput> ReadOciLayout(const std::string& name, const std::string& layout_dir,
                                     const std::string& tag, const std::string& source_ref);

// docker-archive:PATH (docker save / skopeo). The config keeps its exact bytes and digest; layers
// are named by their diff_ids; gapsync writes an OCI manifest for them.
Result<ComponentInput> ReadDockerArchive(const std::string& name, const std::string& tar_path,
                                         const std::string& source_ref);

// A file or a folder (regular files and sub-folders; symlinks and devices are refused).
Result<ComponentInput> ReadArtifact(const std::string& name, const std::string& path);

}  // namespace gapsync::agent
