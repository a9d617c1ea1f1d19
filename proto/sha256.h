// Streaming SHA-256 on OpenSSL EVP.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "proto/digest.h"

namespace gapsync {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t len);
  void Update(std::span<const uint8_t> bytes) { Update(bytes.data(), bytes.size()); }
  // Returns the digest and resets for reuse.
  BlobDigest Finish();

  static BlobDigest Of(const void* data, size_t len);
  static BlobDigest Of(std::string_view s) { return Of(s.data(), s.size()); }

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

}  // namespace gapsync
