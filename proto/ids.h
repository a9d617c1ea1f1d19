// The names every module uses for the things a cluster moves: a release (app@version), the digest
// that says what a release is, and a node. Types, not strings: a release digest cannot be passed
// where a node name is expected, and every value was checked when it was made.
#pragma once

#include <compare>
#include <string>
#include <string_view>

#include "proto/digest.h"
#include "proto/error.h"

namespace gapsync {

// An application version: app name and semantic version, written "app@version".
struct ReleaseId {
  std::string app;
  std::string version;
  std::string str() const { return app + "@" + version; }
  // "APP@VERSION" (both parts non-empty; the part after the last '@' is the version).
  static Result<ReleaseId> Parse(std::string_view text);
  friend bool operator==(const ReleaseId&, const ReleaseId&) = default;
  friend auto operator<=>(const ReleaseId&, const ReleaseId&) = default;
};

// What a release is: the SHA-256 of the deterministic encoding of its signed Release message
// ("sha256:<hex>"). Two releases with this digest are the same release, whatever their bundles.
class ReleaseDigest {
 public:
  // All zeros: a digest not known yet.
  ReleaseDigest() : d_(BlobDigest::FromRaw(BlobDigest::Raw{})) {}
  explicit ReleaseDigest(const BlobDigest& sha256) : d_(sha256) {}
  // Exactly "sha256:" and 64 lowercase hex digits.
  static Result<ReleaseDigest> Parse(std::string_view text);
  std::string str() const { return d_.str(); }
  std::string hex() const { return d_.hex(); }
  const BlobDigest& sha256() const { return d_; }
  friend bool operator==(const ReleaseDigest&, const ReleaseDigest&) = default;
  friend auto operator<=>(const ReleaseDigest&, const ReleaseDigest&) = default;

 private:
  BlobDigest d_;
};

// A node's name, as in its certificate: 1-63 of a-z 0-9 - . (no leading '.' or '-', no "..").
class NodeName {
 public:
  static Result<NodeName> Parse(std::string_view text);
  static bool IsValid(std::string_view text);
  const std::string& str() const { return name_; }
  friend bool operator==(const NodeName&, const NodeName&) = default;
  friend auto operator<=>(const NodeName&, const NodeName&) = default;

 private:
  explicit NodeName(std::string name) : name_(std::move(name)) {}
  std::string name_;
};

}  // namespace gapsync
