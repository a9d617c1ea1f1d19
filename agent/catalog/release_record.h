// The records a node keeps of releases, made from verified manifests, and the node's store opened
// with what old records need.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "agent/bundle/bundle.h"
#include "agent/catalog/admission.h"
#include "store/blob_store.h"

namespace gapsync::agent {

// The store record of the release in a verified bundle or Offer (pinned, ingested now).
store::StoredRelease StoredReleaseOf(const LoadedBundle& verified);

// What a store holds, for Admit(): its complete releases.
Result<std::vector<HeldRelease>> HeldReleases(store::BlobStore& store);

// The node's RocksDB store at `path`, given what release records written by gapsync up to eae3f3c
// need (the blob list of their manifest).
Result<std::unique_ptr<store::BlobStore>> OpenNodeStore(const std::string& path);

}  // namespace gapsync::agent
