#include "proto/sha256.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace gapsync {

struct Sha256::Ctx {
  EVP_MD_CTX* md = nullptr;
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  if (ctx_->md == nullptr || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL: cannot initialise SHA-256");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_->md); }

void Sha256::Update(const void* data, size_t len) {
  if (len > 0) EVP_DigestUpdate(ctx_->md, data, len);
}

BlobDigest Sha256::Finish() {
  BlobDigest::Raw raw{};
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_->md, raw.data(), &n);
  EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr);
  return BlobDigest::FromRaw(raw);
}

BlobDigest Sha256::Of(const void* data, size_t len) {
  Sha256 h;
  h.Update(data, len);
  return h.Finish();
}

}  // namespace gapsync
