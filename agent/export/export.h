// gapsync store export: one image component of a stored release as an OCI image layout.
#pragma once

#include <string>

#include "proto/error.h"
#include "store/blob_store.h"

namespace gapsync::agent {

struct ExportResult {
  std::string root_digest;
  std::string tag;
  uint64_t blobs = 0;
  uint64_t bytes = 0;
};

// Writes DIR/oci-layout, DIR/blobs/sha256/* and DIR/index.json tagging the component's manifest
// (or index) with the release version. Blobs already in DIR with the right content are kept;
// each blob lands under its name only after its bytes verified. An index.json already in DIR
// keeps its other tags.
Result<ExportResult> ExportOciLayout(store::BlobStore& store, const ReleaseId& release,
                                     const std::string& component, const std::string& out_dir);

// Parses "APP@VERSION".
Result<ReleaseId> ParseReleaseId(const std::string& text);

}  // namespace gapsync::agent
