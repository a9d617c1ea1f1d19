// bundle create: app.yaml + inputs -> signed bundle folder.
#pragma once

#include <cstdint>
#include <string>

#include "proto/error.h"

namespace gapsync::agent {

struct CreateOptions {
  std::string template_path;
  std::string key_path;
  std::string out_dir;
  uint64_t volume_size = (4ull << 30) - 1;  // FAT32's largest file
  bool quiet = false;
};

struct CreateResult {
  std::string app, version;
  uint64_t blobs = 0;
  uint64_t bytes = 0;
  uint32_t volumes = 0;
  uint64_t duplicate_blobs = 0;  // blobs shared between components, stored once
};

Result<CreateResult> CreateBundle(const CreateOptions& options);

}  // namespace gapsync::agent
