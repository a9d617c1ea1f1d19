#include "agent/bundle/keys.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "proto/files.h"
#include "proto/sha256.h"

namespace gapsync::agent {
namespace {

std::shared_ptr<void> Wrap(EVP_PKEY* k) {
  return std::shared_ptr<void>(k, [](void* p) { EVP_PKEY_free(static_cast<EVP_PKEY*>(p)); });
}

std::string KeyIdOf(EVP_PKEY* k) {
  unsigned char raw[32];
  size_t len = sizeof(raw);
  if (EVP_PKEY_get_raw_public_key(k, raw, &len) != 1) return "";
  return Sha256::Of(raw, len).hex();
}

// PEM text of a key (private or public).
Result<std::string> PemOf(EVP_PKEY* key, bool is_private) {
  BIO* bio = BIO_new(BIO_s_mem());
  int ok = is_private ? PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr)
                      : PEM_write_bio_PUBKEY(bio, key);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out = ok == 1 && len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
  BIO_free(bio);
  if (out.empty()) return MakeError(Errc::kInternal, "OpenSSL: cannot encode the key as PEM");
  return out;
}

Status WritePem(const std::string& path, mode_t mode, EVP_PKEY* key, bool is_private) {
  GS_ASSIGN_OR_RETURN(auto pem, PemOf(key, is_private));
  return WriteNewFile(path, mode, pem);
}

Result<EVP_PKEY*> ReadPem(const std::string& path, bool is_private) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return MakeError(Errc::kNotFound, path + ": cannot open key: " + std::strerror(errno));
  EVP_PKEY* k = is_private ? PEM_read_PrivateKey(f, nullptr, nullptr, nullptr) : PEM_read_PUBKEY(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (k == nullptr) {
    return MakeError(Errc::kInvalidArgument,
                     path + ": not a PEM " + (is_private ? "private" : "public") + " key");
  }
  if (EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(k);
    return MakeError(Errc::kInvalidArgument, path + ": not an Ed25519 key");
  }
  return k;
}

}  // namespace

Result<KeyPairPaths> GenerateKeyPair(const std::string& dir, const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.') {
    return MakeError(Errc::kInvalidArgument, "key name \"" + name + "\": must be a plain file name");
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return MakeError(Errc::kIo, dir + ": " + ec.message());
  EVP_PKEY* key = nullptr;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
  if (ctx == nullptr || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &key) != 1) {
    EVP_PKEY_CTX_free(ctx);
    return MakeError(Errc::kInternal, "OpenSSL: Ed25519 key generation failed");
  }
  EVP_PKEY_CTX_free(ctx);
  auto holder = Wrap(key);
  KeyPairPaths paths{dir + "/" + name + ".key", dir + "/" + name + ".pub"};
  for (const auto& p : {paths.private_key, paths.public_key}) {
    if (std::filesystem::exists(p)) {
      return MakeError(Errc::kConflict, p + ": already exists, not overwriting a key");
    }
  }
  GS_RETURN_IF_ERROR(WritePem(paths.private_key, 0600, key, true));
  GS_RETURN_IF_ERROR(WritePem(paths.public_key, 0644, key, false));
  return paths;
}

Result<SigningKey> SigningKey::Load(const std::string& path) {
  GS_ASSIGN_OR_RETURN(EVP_PKEY * k, ReadPem(path, true));
  SigningKey key;
  key.pkey_ = Wrap(k);
  key.key_id_ = KeyIdOf(k);
  return key;
}

Result<std::string> SigningKey::Sign(const std::string& message) const {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::string sig(64, '\0');
  size_t len = sig.size();
  bool ok = ctx != nullptr &&
            EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(pkey_.get())) == 1 &&
            EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                           reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok || len != 64) return MakeError(Errc::kInternal, "OpenSSL: Ed25519 signing failed");
  return sig;
}

Result<TrustedKey> TrustedKey::Load(const std::string& path) {
  GS_ASSIGN_OR_RETURN(EVP_PKEY * k, ReadPem(path, false));
  TrustedKey key;
  key.pkey_ = Wrap(k);
  key.key_id_ = KeyIdOf(k);
  key.path_ = path;
  return key;
}

bool TrustedKey::Verify(const std::string& message, const std::string& signature) const {
  if (signature.size() != 64) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx != nullptr &&
            EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(pkey_.get())) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                             reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

Result<std::vector<TrustedKey>> LoadTrustedKeys(const std::vector<std::string>& paths) {
  if (paths.empty()) {
    return MakeError(Errc::kInvalidArgument, "no trusted key given: pass --trust VENDOR.pub");
  }
  std::vector<TrustedKey> keys;
  for (const auto& p : paths) {
    GS_ASSIGN_OR_RETURN(auto k, TrustedKey::Load(p));
    keys.push_back(std::move(k));
  }
  return keys;
}

}  // namespace gapsync::agent
