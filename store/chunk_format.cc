#include "store/chunk_format.h"

#include <xxhash.h>

namespace gapsync::store {

std::string DigestKey(const BlobDigest& d) {
  return std::string(reinterpret_cast<const char*>(d.raw().data()), d.raw().size());
}

std::string ChunkKey(const BlobDigest& d, uint32_t index) {
  std::string key = DigestKey(d);
  for (int shift = 24; shift >= 0; shift -= 8) key.push_back(static_cast<char>((index >> shift) & 0xff));
  return key;
}

std::string ChunkRangeEnd(const BlobDigest& d) {
  std::string key = DigestKey(d);
  key.append(5, '\xff');
  return key;
}

std::string ReleaseKey(const ReleaseId& id) { return id.app + '\0' + id.version; }

std::string ChunkHash(const uint8_t* data, size_t n) {
  XXH128_canonical_t canon;
  XXH128_canonicalFromHash(&canon, XXH3_128bits(data, n));
  return std::string(reinterpret_cast<const char*>(canon.digest), sizeof(canon.digest));
}

std::string ByteRange(uint64_t begin, uint64_t len) {
  return "bytes " + std::to_string(begin) + ".." + std::to_string(begin + len);
}

ChunkEncoder::~ChunkEncoder() {
  if (cctx_ != nullptr) ZSTD_freeCCtx(cctx_);
}

ChunkEncoder::Encoded ChunkEncoder::Encode(std::span<const uint8_t> data, bool try_zstd) {
  static constexpr int kZstdLevel = 1;
  static constexpr char kZstd = static_cast<char>(kCodecZstd);
  static constexpr char kPlain = static_cast<char>(kCodecPlain);
  if (try_zstd) {
    if (cctx_ == nullptr) cctx_ = ZSTD_createCCtx();
    encoded_.resize(ZSTD_compressBound(data.size()));
    size_t n = ZSTD_compressCCtx(cctx_, encoded_.data(), encoded_.size(), data.data(), data.size(), kZstdLevel);
    if (!ZSTD_isError(n) && n <= data.size() - data.size() / 8) {
      return Encoded{std::string_view(&kZstd, 1), std::string_view(encoded_.data(), n), true};
    }
  }
  return Encoded{std::string_view(&kPlain, 1), std::string_view(reinterpret_cast<const char*>(data.data()), data.size()),
                 false};
}

Status DecodeChunk(std::string_view value, uint64_t expect, std::vector<uint8_t>& plain, const std::string& where) {
  if (value.empty()) return MakeError(Errc::kCorrupt, where + ": missing from the store");
  const auto* payload = reinterpret_cast<const uint8_t*>(value.data()) + 1;
  const size_t n = value.size() - 1;
  if (static_cast<uint8_t>(value[0]) == kCodecPlain) {
    if (n != expect) {
      return MakeError(Errc::kCorrupt, where + ": stored chunk has " + std::to_string(n) + " bytes, expected " +
                                           std::to_string(expect));
    }
    plain.assign(payload, payload + n);
    return OkStatus();
  }
  if (static_cast<uint8_t>(value[0]) == kCodecZstd) {
    plain.resize(expect);
    size_t r = ZSTD_decompress(plain.data(), expect, payload, n);
    if (ZSTD_isError(r) || r != expect) {
      return MakeError(Errc::kCorrupt, where + ": stored chunk does not decompress (store corruption)");
    }
    return OkStatus();
  }
  return MakeError(Errc::kCorrupt, where + ": unknown chunk codec " + std::to_string(value[0]));
}

}  // namespace gapsync::store
