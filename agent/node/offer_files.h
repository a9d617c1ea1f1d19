// The Offers a node keeps, in data_dir/offers/<release hex>.pb (proto/node.proto, KeptOffer): the
// ones it serves (made from its own store) and the ones it fetches (each with the member that
// offered it), so that a restart serves and resumes them. Files are written once and never
// overwritten. Blocking file I/O: never on the loop thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "proto/control.pb.h"
#include "proto/error.h"
#include "proto/ids.h"

namespace gapsync::agent {

// Where an Offer came from.
struct OfferSource {
  bool local = false;                // made from this node's own store
  std::optional<NodeName> member;    // else the member that offered it (none: a file of an older agent)
  static OfferSource ThisStore() { return {true, std::nullopt}; }
  static OfferSource Member(NodeName node) { return {false, std::move(node)}; }
  // For logs: "this node's store", "node NAME", or "a member (not recorded)".
  std::string str() const;
};

struct KeptOffer {
  std::string digest_hex;  // of the release, as the file is named
  v1::Offer offer;
  OfferSource source;
};

class OfferFiles {
 public:
  explicit OfferFiles(std::string dir) : dir_(std::move(dir)) {}
  std::string PathOf(const ReleaseDigest& release) const;
  // Creates the folder.
  Status Prepare() const;
  // The kept Offer of `release`: none when there is no file; kCorrupt (naming the file) when it
  // does not parse.
  Result<std::optional<KeptOffer>> Load(const ReleaseDigest& release) const;
  // Keeps `offer` (durably); a file already there is kept as it is.
  Status Keep(const ReleaseDigest& release, const v1::Offer& offer, const OfferSource& source) const;
  void Remove(const ReleaseDigest& release) const;
  // The releases with a kept Offer (files whose names are not release digests are left alone).
  std::vector<ReleaseDigest> List() const;

 private:
  std::string dir_;
};

}  // namespace gapsync::agent
