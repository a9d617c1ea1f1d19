#include "proto/digest.h"

#include <cstring>

namespace gapsync {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string Printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 80)) {
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (s.size() > 80) out += "...";
  return out;
}

}  // namespace

Result<BlobDigest> BlobDigest::Parse(std::string_view text) {
  constexpr std::string_view kPrefix = "sha256:";
  if (text.size() != kPrefix.size() + 2 * kRawSize || text.substr(0, kPrefix.size()) != kPrefix) {
    return MakeError(Errc::kCorrupt, "malformed digest \"" + Printable(text) +
                                         "\": expected sha256: and 64 lowercase hex digits");
  }
  Raw raw{};
  for (size_t i = 0; i < kRawSize; ++i) {
    int hi = HexValue(text[kPrefix.size() + 2 * i]);
    int lo = HexValue(text[kPrefix.size() + 2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return MakeError(Errc::kCorrupt, "malformed digest \"" + Printable(text) +
                                           "\": expected sha256: and 64 lowercase hex digits");
    }
    raw[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return BlobDigest(raw);
}

BlobDigest BlobDigest::FromRaw(const uint8_t* raw32) {
  Raw raw;
  std::memcpy(raw.data(), raw32, kRawSize);
  return BlobDigest(raw);
}

std::string HexEncode(const uint8_t* data, size_t len) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * len, '0');
  for (size_t i = 0; i < len; ++i) {
    out[2 * i] = kHex[data[i] >> 4];
    out[2 * i + 1] = kHex[data[i] & 0xf];
  }
  return out;
}

std::string BlobDigest::hex() const { return HexEncode(raw_.data(), raw_.size()); }
std::string BlobDigest::str() const { return "sha256:" + hex(); }
std::string BlobDigest::Short() const { return "sha256:" + hex().substr(0, 12); }

}  // namespace gapsync
