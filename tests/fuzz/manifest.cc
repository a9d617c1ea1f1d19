// Fuzz target: a bundle manifest (agent/bundle/bundle.h) as it comes off the media or inside a
// member's Offer, signed with a key the node trusts, so the fuzzer's bytes reach everything after
// the signature check: parsing and validating every field, the release digest, the blob list and
// the torrent layout built from it. Properties: a manifest that passes names its blobs by valid
// digests, the store's view of its blobs agrees, and the layout covers exactly its bytes.
#include "agent/bundle/bundle.h"
#include "agent/node/offer_check.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gapsync;
  const auto& vendor = fuzz::Vendor();
  std::string manifest(fuzz::AsView(data, size));
  auto signature = vendor.signing.Sign(manifest);
  FUZZ_CHECK(signature.ok());
  auto loaded = agent::VerifySignedManifest(manifest, *signature, vendor.trusted, "manifest.pb", "manifest.sig");
  if (!loaded.ok()) return 0;
  FUZZ_CHECK(loaded->blob_digests.size() == static_cast<size_t>(loaded->manifest.blobs_size()));
  FUZZ_CHECK(agent::DigestOfRelease(loaded->manifest.release()) == loaded->release_digest);
  auto blobs = agent::ReleaseBlobsOfManifest(manifest);
  FUZZ_CHECK(blobs.ok());
  FUZZ_CHECK(blobs->size() == static_cast<size_t>(loaded->manifest.release().blobs_size()));
  auto layout = agent::LayoutOfManifest(loaded->manifest, 1 << 20);
  uint64_t total = 0;
  for (const auto& b : layout.blobs) total += b.size;
  FUZZ_CHECK(total == layout.total_bytes);
  return 0;
}
