// The info dictionary of a release torrent: built from the store's bytes by the node that offers
// the release, and re-derived by every node that receives it. Nodes of any version must build the
// same bytes for the same release (tests/transport/torrent_info_golden_test.cc).
#pragma once

#include <string>

#include "proto/error.h"
#include "proto/ids.h"
#include "store/piece_store.h"
#include "transport/torrent_layout.h"

namespace gapsync::transport {

// The name of every data-plane torrent, and the DNS name node certificates carry for it.
inline constexpr const char* kDataPlaneName = "gapsync-data-plane";

// The bencoded info dictionary of a release torrent, hashing (SHA-1) every piece of the complete
// blobs in `store`. `ssl_ca_pem` non-empty: an SSL torrent rooted at that CA. `release` is part of
// the dictionary ("gapsync-release"), so every release is its own torrent, even two with the same
// blobs. kInvalidArgument when the layout's chunks are not the store's.
Result<std::string> BuildTorrentInfo(store::PieceStore& store, const TorrentLayout& layout,
                                     const std::string& ssl_ca_pem, const ReleaseDigest& release);
// Checks an info dictionary received from a peer describes exactly `layout` (files, sizes, pad
// files, piece size and count, name, ssl-cert, release): it must be the dictionary this node would
// build with those piece hashes. Its piece hashes cannot be checked before the bytes are there;
// every finished blob is checked against its signed SHA-256. kCorrupt otherwise.
Status CheckTorrentInfo(const std::string& info, const TorrentLayout& layout, const std::string& ssl_ca_pem,
                        const ReleaseDigest& release);

}  // namespace gapsync::transport
