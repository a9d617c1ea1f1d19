// Fuzz target: the torrent info a member sends for a release whose signed manifest this node
// holds (transport/torrent_info.h: CheckTorrentInfo), against the layout of a real release (the
// Offer in tests/fuzz/fixtures). Properties: info that passes is what libtorrent parses, with the
// layout's piece count and piece size.
#include <libtorrent/torrent_info.hpp>

#include <fstream>
#include <iterator>

#include "agent/bundle/bundle.h"
#include "agent/node/offer_check.h"
#include "tests/fuzz/fuzz_util.h"
#include "transport/torrent_info.h"

namespace {

struct Fixture {
  gapsync::transport::TorrentLayout layout;
  gapsync::ReleaseDigest release;
  std::string info;  // the info the fixture's node built
};

const Fixture& TheFixture() {
  static const Fixture f = [] {
    std::ifstream in(GAPSYNC_FUZZ_FIXTURES "/offer-fixture-1.0.0.pb", std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    gapsync::v1::Offer offer;
    gapsync::v1::BundleManifest m;
    if (!offer.ParseFromString(bytes) || !m.ParseFromString(offer.manifest())) std::abort();
    return Fixture{gapsync::agent::LayoutOfManifest(m, 1 << 20), gapsync::agent::DigestOfRelease(m.release()),
                   offer.torrent_info()};
  }();
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gapsync;
  const Fixture& f = TheFixture();
  const std::string info(fuzz::AsView(data, size));
  if (!transport::CheckTorrentInfo(info, f.layout, "", f.release).ok()) return 0;
  const std::string file = "d4:info" + info + "e";
  lt::error_code ec;
  lt::torrent_info ti(lt::span<char const>(file.data(), static_cast<std::ptrdiff_t>(file.size())), ec, lt::from_span);
  FUZZ_CHECK(!ec);
  FUZZ_CHECK(ti.num_pieces() == static_cast<int>(f.layout.num_pieces));
  FUZZ_CHECK(ti.piece_length() == static_cast<int>(f.layout.piece_size));
  return 0;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace gapsync;
  const Fixture& f = TheFixture();
  FUZZ_CHECK(transport::CheckTorrentInfo(f.info, f.layout, "", f.release).ok());
  if (fuzz::SeedDir() == nullptr) return 0;
  fuzz::WriteSeed("fixture-1.0.0", f.info);
  std::exit(0);
}
