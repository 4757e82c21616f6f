#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# `make test`: builds twice (normal -Werror, and ASan+UBSan with leak checking), starts
# throwaway servers on loopback (scripts/servers.sh), runs every test in both builds, and
# always stops the servers it started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc 2>/dev/null || echo 2)

scripts/deps.sh

echo "== formatting and SPDX lines (scripts/check_tree.sh)"
scripts/check_tree.sh

run_dir=$(mktemp -d /tmp/rcache-test.XXXXXX)
cleanup() {
  local rc=$?
  [ -x scripts/servers.sh ] && scripts/servers.sh stop "$run_dir" || true
  rm -rf "$run_dir"
  exit $rc
}
trap cleanup EXIT INT TERM

echo "== build (normal, -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRCACHE_WERROR=ON >/dev/null
cmake --build build -j "$jobs"
echo "== build (ASan + UBSan, -Werror)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DRCACHE_WERROR=ON -DRCACHE_SANITIZE=ON \
  -DRCACHE_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j "$jobs"

echo "== start servers"
scripts/servers.sh start "$run_dir"
# shellcheck disable=SC1091
source "$run_dir/env.sh"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export RCACHE_TEST_RUN_DIR="$run_dir"

# Each ctest run overwrites Testing/Temporary/LastTest.log: keep a copy of every one, for
# tests/secrets_test.sh to grep (and for reading after a failure).
rm -f build/Testing/Temporary/LastTest-*.log build-asan/Testing/Temporary/LastTest-*.log
ctest() { local rc=0; command ctest "$@" || rc=$?; cp Testing/Temporary/LastTest.log "Testing/Temporary/LastTest-$(date +%s%N).log" 2>/dev/null || true; return $rc; }

status=0
echo "== tests (normal build)"
(cd build && ctest --output-on-failure -j "$jobs" -E '^faults_' && ctest --output-on-failure -R '^faults_') || status=1
echo "== tests (ASan + UBSan + LeakSanitizer)"
(cd build-asan && ctest --output-on-failure -j "$jobs" -E '^(faults_|install_)' && ctest --output-on-failure -R '^faults_') || status=1
if [ -x tests/secrets_test.sh ]; then
  echo "== no password or key material in any output"
  tests/secrets_test.sh build build-asan || status=1
fi
if [ -x scripts/fuzz.sh ] && [ "${RCACHE_SKIP_FUZZ:-0}" != 1 ]; then
  echo "== fuzz (${RCACHE_FUZZ_SECONDS:-30}s per target)"
  scripts/fuzz.sh "${RCACHE_FUZZ_SECONDS:-30}" || status=1
fi
if [ $status -eq 0 ]; then echo "make test: all suites passed"; else echo "make test: FAILED"; fi
exit $status
