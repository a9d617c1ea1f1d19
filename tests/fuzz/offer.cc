// Fuzz target: an Offer a member sends (agent/node/offer_check.h): the signed manifest and the
// torrent that moves its blobs. The target signs the manifest with a key the node trusts, so the
// bytes reach the torrent check. Properties: an Offer that passes carries a verified manifest whose
// layout has exactly the torrent's pieces.
#include "agent/node/offer_check.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gapsync;
  v1::Offer offer;
  if (!offer.ParseFromArray(data, static_cast<int>(size))) return 0;
  const auto& vendor = fuzz::Vendor();
  auto signature = vendor.signing.Sign(offer.manifest());
  FUZZ_CHECK(signature.ok());
  offer.set_signature(*signature);
  auto c = agent::CheckOffer(offer, vendor.trusted, 1 << 20, "");
  if (!c.status.ok()) {
    FUZZ_CHECK(!c.status.error().message.empty());  // every refusal says why
    return 0;
  }
  FUZZ_CHECK(c.verified.has_value());
  FUZZ_CHECK(c.layout.num_pieces == 0 || offer.torrent_info().size() > uint64_t{c.layout.num_pieces} * 20);
  return 0;
}
