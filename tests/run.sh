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
  build=build-asan  # (sanitizer options of the tests: tests/CMakeLists.txt)
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DGAPSYNC_SANITIZE=ON -DGAPSYNC_WERROR=ON >/dev/null
else
  build=build
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGAPSYNC_WERROR=ON >/dev/null
fi
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" "$@"
