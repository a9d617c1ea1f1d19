// Vendor release keys: Ed25519 via OpenSSL EVP, PEM files.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "proto/error.h"

namespace gapsync::agent {

struct KeyPairPaths {
  std::string private_key;  // NAME.key, mode 0600
  std::string public_key;   // NAME.pub
};

// Writes DIR/NAME.key and DIR/NAME.pub. Refuses to overwrite existing files.
Result<KeyPairPaths> GenerateKeyPair(const std::string& dir, const std::string& name);

class SigningKey {
 public:
  static Result<SigningKey> Load(const std::string& path);
  Result<std::string> Sign(const std::string& message) const;  // 64-byte signature
  std::string key_id() const { return key_id_; }

 private:
  std::shared_ptr<void> pkey_;
  std::string key_id_;
};

class TrustedKey {
 public:
  static Result<TrustedKey> Load(const std::string& path);
  bool Verify(const std::string& message, const std::string& signature) const;
  std::string key_id() const { return key_id_; }  // sha256 of the raw 32-byte key, hex
  const std::string& path() const { return path_; }

 private:
  std::shared_ptr<void> pkey_;
  std::string key_id_;
  std::string path_;
};

Result<std::vector<TrustedKey>> LoadTrustedKeys(const std::vector<std::string>& paths);

}  // namespace gapsync::agent
