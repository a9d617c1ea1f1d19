// Helpers the fuzz targets share: a scratch folder of their own, files written into it, a vendor
// key to sign with, and CHECK for the properties a target asserts (a failed one is a crash, which
// libFuzzer keeps as an input).
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>

#include "agent/bundle/keys.h"

#define FUZZ_CHECK(cond)                                                              \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

namespace gapsync::fuzz {

inline std::string_view AsView(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A folder of this process's own in memory (/dev/shm; removed at exit).
inline const std::string& ScratchDir() {
  static const std::string dir = [] {
    char tmpl[] = "/dev/shm/gapsync-fuzz-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) std::abort();
    std::string d = tmpl;
    static std::string to_remove = d;
    std::atexit([] { std::system(("rm -rf '" + to_remove + "'").c_str()); });
    return d;
  }();
  return dir;
}

// Writes `bytes` to ScratchDir()/name and returns its path.
inline std::string WriteScratch(const std::string& name, std::string_view bytes) {
  const std::string path = ScratchDir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) std::abort();
  return path;
}

// A vendor key made once per process: the targets sign what the fuzzer makes with it, so inputs
// reach what comes after the signature check (what a vendor's key, stolen or mistaken, could sign).
struct FuzzVendor {
  agent::SigningKey signing;
  std::vector<agent::TrustedKey> trusted;
};
inline const FuzzVendor& Vendor() {
  static const FuzzVendor vendor = [] {
    auto paths = agent::GenerateKeyPair(ScratchDir(), "vendor");
    if (!paths.ok()) std::abort();
    auto signing = agent::SigningKey::Load(paths->private_key);
    auto trusted = agent::LoadTrustedKeys({paths->public_key});
    if (!signing.ok() || !trusted.ok()) std::abort();
    return FuzzVendor{std::move(signing).value(), std::move(trusted).value()};
  }();
  return vendor;
}

// GAPSYNC_FUZZ_WRITE_SEEDS=DIR: a target that makes its seeds writes them there (then exits).
inline const char* SeedDir() { return std::getenv("GAPSYNC_FUZZ_WRITE_SEEDS"); }
inline void WriteSeed(const std::string& name, std::string_view bytes) {
  std::ofstream out(std::string(SeedDir()) + "/" + name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace gapsync::fuzz
