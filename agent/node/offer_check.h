// What a node checks of an Offer (a member's, or one it kept) before it trusts any of it: the
// vendor's signature over the manifest, the manifest's every field, and that the torrent describes
// exactly the signed blobs. Pure (no store, no network), so every Offer a peer can send is fuzzed
// (tests/fuzz/offer.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/bundle/bundle.h"
#include "agent/bundle/keys.h"
#include "proto/control.pb.h"
#include "proto/error.h"
#include "transport/torrent_layout.h"

namespace gapsync::agent {

// The torrent layout of a manifest's blobs in `chunk_size`-byte chunks.
transport::TorrentLayout LayoutOfManifest(const v1::BundleManifest& m, uint32_t chunk_size);

struct CheckedOffer {
  Status status;                         // refused for what it is when not ok
  std::optional<LoadedBundle> verified;  // set when the signed manifest is good (even if the torrent is not)
  transport::TorrentLayout layout;
};

// `tls_root_pem`: the data plane's TLS root (empty without TLS), part of the torrent.
CheckedOffer CheckOffer(const v1::Offer& offer, const std::vector<TrustedKey>& trusted, uint32_t chunk_size,
                        const std::string& tls_root_pem);

}  // namespace gapsync::agent
