#include "agent/node/offer_check.h"

#include "transport/torrent_info.h"

namespace gapsync::agent {

transport::TorrentLayout LayoutOfManifest(const v1::BundleManifest& m, uint32_t chunk_size) {
  std::vector<transport::BlobSpec> specs;
  for (const auto& b : m.release().blobs()) {
    auto d = BlobDigest::Parse(b.digest());
    if (d.ok()) specs.push_back({d.value(), b.size(), b.media_type()});
  }
  return transport::TorrentLayout::Make(specs, chunk_size);
}

CheckedOffer CheckOffer(const v1::Offer& offer, const std::vector<TrustedKey>& trusted, uint32_t chunk_size,
                        const std::string& tls_root_pem) {
  CheckedOffer c;
  auto verified = VerifySignedManifest(offer.manifest(), offer.signature(), trusted, "manifest", "signature");
  if (!verified.ok()) {
    c.status = verified.error();
    return c;
  }
  c.layout = LayoutOfManifest(verified->manifest, chunk_size);
  if (c.layout.num_pieces > 0) {
    auto st = transport::CheckTorrentInfo(offer.torrent_info(), c.layout, tls_root_pem, verified->release_digest);
    if (!st.ok()) c.status = st;
  }
  c.verified = std::move(verified).value();
  return c;
}

}  // namespace gapsync::agent
