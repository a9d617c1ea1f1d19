// BlobDigest: a validated "sha256:<64 lowercase hex>" name of a blob.
// Construct only through Parse (untrusted text) or FromRaw (32 bytes we hashed ourselves), so a
// BlobDigest is always safe to put into a path or a key.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "proto/error.h"

namespace gapsync {

class BlobDigest {
 public:
  static constexpr size_t kRawSize = 32;
  using Raw = std::array<uint8_t, kRawSize>;

  // Accepts exactly "sha256:" followed by 64 lowercase hex digits.
  static Result<BlobDigest> Parse(std::string_view text);
  static BlobDigest FromRaw(const Raw& raw) { return BlobDigest(raw); }
  static BlobDigest FromRaw(const uint8_t* raw32);

  const Raw& raw() const { return raw_; }
  std::string hex() const;          // 64 hex digits
  std::string str() const;          // "sha256:" + hex
  std::string Short() const;        // "sha256:" + first 12 hex, for humans

  friend bool operator==(const BlobDigest&, const BlobDigest&) = default;
  friend auto operator<=>(const BlobDigest&, const BlobDigest&) = default;

 private:
  explicit BlobDigest(const Raw& raw) : raw_(raw) {}
  Raw raw_{};
};

std::string HexEncode(const uint8_t* data, size_t len);

}  // namespace gapsync

template <>
struct std::hash<gapsync::BlobDigest> {
  size_t operator()(const gapsync::BlobDigest& d) const noexcept {
    size_t h;
    static_assert(sizeof(h) <= gapsync::BlobDigest::kRawSize);
    __builtin_memcpy(&h, d.raw().data(), sizeof(h));
    return h;
  }
};
