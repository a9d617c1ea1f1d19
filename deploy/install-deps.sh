#!/usr/bin/env bash
# Installs every Debian 12 package gapsync needs to build, test and run its demo.
# Idempotent: packages already present are left alone. Needs root.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libboost-dev libboost-system-dev
  librocksdb-dev libssl-dev libprotobuf-dev protobuf-compiler
  libzstd-dev libspdlog-dev libfmt-dev libcli11-dev libyaml-cpp-dev nlohmann-json3-dev
  libxxhash-dev libarchive-dev libgtest-dev libgmock-dev googletest
  libtorrent-rasterbar-dev
  umoci skopeo busybox-static docker-registry
  openssl jq e2fsprogs util-linux coreutils
  time zstd
  iproute2 ethtool iputils-ping socat
  clang-14 libclang-rt-14-dev llvm-14  # fuzzing (libFuzzer) and ThreadSanitizer builds (tests/fuzz, .ci/run)
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages (${missing[*]}) and not root; run as root" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "install-deps: all packages present"
