#include "proto/ids.h"

namespace gapsync {

Result<ReleaseId> ReleaseId::Parse(std::string_view text) {
  const auto at = text.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == text.size()) {
    return MakeError(Errc::kInvalidArgument, "release \"" + std::string(text.substr(0, 200)) + "\": expected APP@VERSION");
  }
  return ReleaseId{std::string(text.substr(0, at)), std::string(text.substr(at + 1))};
}

Result<ReleaseDigest> ReleaseDigest::Parse(std::string_view text) {
  auto d = BlobDigest::Parse(text);
  if (!d.ok()) return MakeError(Errc::kCorrupt, "release digest: " + d.error().message);
  return ReleaseDigest(d.value());
}

bool NodeName::IsValid(std::string_view name) {
  if (name.empty() || name.size() > 63 || name[0] == '.' || name[0] == '-') return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok) return false;
  }
  return name.find("..") == std::string_view::npos;
}

Result<NodeName> NodeName::Parse(std::string_view text) {
  if (!IsValid(text)) {
    std::string shown;
    for (char c : text.substr(0, 80)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
    return MakeError(Errc::kInvalidArgument, "node name \"" + shown + "\": use 1-63 of a-z 0-9 - . (like a host name)");
  }
  return NodeName(std::string(text));
}

}  // namespace gapsync
