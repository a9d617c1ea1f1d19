// Small pure helpers: sizes, semantic versions, safe names, whole-file I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/error.h"

namespace gapsync::agent {

// "4G", "700M", "1M", "64K", "123" (bytes). Binary units (1K = 1024). 0 is refused.
Result<uint64_t> ParseSize(std::string_view text);
std::string HumanBytes(uint64_t bytes);

struct SemVer {
  uint64_t major = 0, minor = 0, patch = 0;
  std::vector<std::string> prerelease;  // dot-separated identifiers
  std::string build;                    // ignored for ordering
};
std::optional<SemVer> ParseSemVer(std::string_view text);
// <0, 0, >0 by semver 2.0.0 precedence.
int CompareSemVer(const SemVer& a, const SemVer& b);

// A plain file name: [A-Za-z0-9._-]+, not "." or "..", no leading '.'.
bool IsSafeFileName(std::string_view name);
// A relative '/'-separated path with no empty, "." or ".." components and no leading '/'.
bool IsSafeRelativePath(std::string_view path);

Result<std::string> ReadSmallFile(const std::string& path, uint64_t max_bytes);
// Writes path atomically and durably: temp file, fsync, rename, fsync of the folder.
Status WriteFileAtomic(const std::string& path, std::string_view contents);
Status FsyncDir(const std::string& dir);

std::string ErrnoText(int err);

}  // namespace gapsync::agent
