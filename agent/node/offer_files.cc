#include "agent/node/offer_files.h"

#include <filesystem>
#include <fstream>

#include "proto/files.h"
#include "proto/node.pb.h"

namespace gapsync::agent {

std::string OfferSource::str() const {
  if (local) return "this node's store";
  if (member) return "node " + member->str();
  return "a member (not recorded)";
}

std::string OfferFiles::PathOf(const ReleaseDigest& release) const { return dir_ + "/" + release.hex() + ".pb"; }

Status OfferFiles::Prepare() const {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return MakeError(Errc::kIo, dir_ + ": cannot create: " + ec.message());
  return OkStatus();
}

Result<std::optional<KeptOffer>> OfferFiles::Load(const ReleaseDigest& release) const {
  const std::string path = PathOf(release);
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::optional<KeptOffer>();
  v1::KeptOffer kept;
  if (!kept.ParseFromIstream(&in)) return MakeError(Errc::kCorrupt, path + ": unreadable");
  KeptOffer out;
  out.digest_hex = release.hex();
  out.offer.set_manifest(kept.manifest());
  out.offer.set_signature(kept.signature());
  out.offer.set_torrent_info(kept.torrent_info());
  if (kept.offered_by().empty()) {
    out.source.local = false;  // made here, or fetched by an agent that did not record from whom
  } else if (auto node = NodeName::Parse(kept.offered_by()); node.ok()) {
    out.source = OfferSource::Member(node.value());
  } else {
    return MakeError(Errc::kCorrupt, path + ": " + node.error().message);
  }
  return std::optional<KeptOffer>(std::move(out));
}

Status OfferFiles::Keep(const ReleaseDigest& release, const v1::Offer& offer, const OfferSource& source) const {
  v1::KeptOffer kept;
  kept.set_manifest(offer.manifest());
  kept.set_signature(offer.signature());
  kept.set_torrent_info(offer.torrent_info());
  if (source.member) kept.set_offered_by(source.member->str());
  auto st = WriteNewFile(PathOf(release), 0644, kept.SerializeAsString());
  if (!st.ok() && st.error().code != Errc::kConflict) return st.error();
  return OkStatus();
}

void OfferFiles::Remove(const ReleaseDigest& release) const {
  std::error_code ec;
  std::filesystem::remove(PathOf(release), ec);
}

std::vector<ReleaseDigest> OfferFiles::List() const {
  std::vector<ReleaseDigest> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    if (entry.path().extension() != ".pb") continue;
    auto d = ReleaseDigest::Parse("sha256:" + entry.path().stem().string());
    if (d.ok()) out.push_back(d.value());
  }
  return out;
}

}  // namespace gapsync::agent
