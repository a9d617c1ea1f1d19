#!/usr/bin/env bash
# Builds gapsync and runs every test through CTest: unit tests (GoogleTest) and the scripted
# end-to-end tests with real outside tools (umoci, skopeo). Idempotent; run as root on Debian 12.
#   tests/run.sh              release build (warnings are errors) + all tests
#   GAPSYNC_SANITIZE=1 tests/run.sh   the same under AddressSanitizer + UBSan (build-asan/)
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
bash tests/check_includes.sh  # no #include points up the module order

if [ "${GAPSYNC_SANITIZE:-0}" = 1 ]; then
  build=build-asan
  # Matching libtorrent's one known leak (tests/lsan.supp) to the library needs the slow unwinder:
  # libcrypto has no frame pointers. Every process the tests start inherits these.
  export ASAN_OPTIONS="fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DGAPSYNC_SANITIZE=ON -DGAPSYNC_WERROR=ON >/dev/null
else
  build=build
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGAPSYNC_WERROR=ON >/dev/null
fi
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" "$@"
