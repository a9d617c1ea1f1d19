#!/usr/bin/env bash
# Builds gapsync and runs every test through CTest: unit tests (GoogleTest) and the scripted
# end-to-end tests with real outside tools (umoci, skopeo). Idempotent; run as root on Debian 12.
#   tests/run.sh              release build (warnings are errors) + all tests
#   GAPSYNC_SANITIZE=1 tests/run.sh   the same under AddressSanitizer + UBSan (build-asan/)
#   GAPSYNC_TSAN=1 tests/run.sh       the unit tests of proto, store, transport and agent under
#                                     ThreadSanitizer (build-tsan/; suppressions: tests/tsan.supp)
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
bash tests/check_includes.sh  # no #include points up the module order

if [ "${GAPSYNC_TSAN:-0}" = 1 ]; then
  build=build-tsan
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGAPSYNC_TSAN=ON -DGAPSYNC_WERROR=ON >/dev/null
  cmake --build "$build" -j "$(nproc)" --target proto_unit_tests store_unit_tests transport_unit_tests agent_unit_tests node_unit_tests
  # history_size: RocksDB's own threads' stacks are restored, so its suppressions match.
  export TSAN_OPTIONS="halt_on_error=1 exitcode=66 history_size=7 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp"
  # The store's contract runs over the memory and fault-injecting Kvs here, not over RocksDB: TSan
  # cannot see inside RocksDB (not built with it), whose first open in a process races its own
  # thread pool on copied options as TSan sees it (tests/tsan.supp). The node tests use RocksDB.
  ctest --test-dir "$build" --output-on-failure -j "$(nproc)" -R '^(proto|store|transport|agent|node)\.' \
    -E '^store\..*/RocksDb' "$@"
  exit 0
fi
if [ "${GAPSYNC_SANITIZE:-0}" = 1 ]; then
  build=build-asan  # (sanitizer options of the tests: tests/CMakeLists.txt)
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DGAPSYNC_SANITIZE=ON -DGAPSYNC_WERROR=ON >/dev/null
else
  build=build
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGAPSYNC_WERROR=ON >/dev/null
fi
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" "$@"
