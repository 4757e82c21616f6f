#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# `make test`: checks formatting and SPDX lines (scripts/check_tree.sh), builds three times
# (normal -Werror; ASan+UBSan with leak checking; ThreadSanitizer with clang), starts
# throwaway servers on loopback (scripts/servers.sh), runs every test in the first two builds
# and the unit, contract, integration and fault suites in the third, checks that no secret
# reached any output, then the deterministic fuzz step (scripts/fuzz.sh --check: every
# checked-in fuzz input, then a fixed-seed bounded pass). It always stops the servers it
# started, and prints how long each pass took.
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

t_build=$SECONDS
echo "== build (normal, -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRCACHE_WERROR=ON >/dev/null
cmake --build build -j "$jobs"
echo "== build (ASan + UBSan, -Werror)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DRCACHE_WERROR=ON -DRCACHE_SANITIZE=ON \
  -DRCACHE_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j "$jobs"
echo "== build (ThreadSanitizer, clang, -Werror)"
cmake -S . -B build-tsan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DRCACHE_WERROR=ON -DRCACHE_TSAN=ON -DRCACHE_BUILD_BENCH=OFF >/dev/null
cmake --build build-tsan -j "$jobs"

t_build=$((SECONDS - t_build))

echo "== start servers"
scripts/servers.sh start "$run_dir"
# shellcheck disable=SC1091
source "$run_dir/env.sh"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export RCACHE_TEST_RUN_DIR="$run_dir"

# Each ctest run overwrites Testing/Temporary/LastTest.log: keep a copy of every one, for
# tests/secrets_test.sh to grep (and for reading after a failure).
rm -f build*/Testing/Temporary/LastTest-*.log
ctest() { local rc=0; command ctest "$@" || rc=$?; cp Testing/Temporary/LastTest.log "Testing/Temporary/LastTest-$(date +%s%N).log" 2>/dev/null || true; return $rc; }

status=0
timings=("$(printf '%-44s %4d s' "builds (normal, ASan + UBSan, TSan)" $t_build)")
pass() { # pass NAME COMMAND...: runs one pass, notes its time, marks the run failed if it fails
  local name=$1 t0=$SECONDS rc=0
  shift
  echo "== $name"
  "$@" || rc=$?
  timings+=("$(printf '%-44s %4d s%s' "$name" $((SECONDS - t0)) "$([ $rc -eq 0 ] || echo '  FAILED')")")
  [ $rc -eq 0 ] || status=1
}
suites() { # suites BUILD_DIR CTEST_EXCLUDE: parallel suites, then the faults alone
  (cd "$1" && ctest --output-on-failure -j "$jobs" -E "$2" &&
    ctest --output-on-failure -R '^faults_')
}

pass "tests (normal build)" suites build '^faults_'
# integration_test_fork_memory forks while threads allocate: GCC 12's ASan allocator is not
# fork-safe (a child can hang in asan_malloc; the test says more); normal and TSan runs have it.
pass "tests (ASan + UBSan + LeakSanitizer)" suites build-asan '^(faults_|install_|integration_test_fork_memory$)'
# TSan: any data race, lock-order inversion or signal misuse fails the test that shows it.
# Suppressions only for libraries that are not instrumented (tests/tsan.supp says why).
# install_* builds programs against the installed library without the TSan runtime.
# die_after_fork=0: a handle inherited by a fork()ed child restarts its threads there by
# design (docs/threading.md); TSan would otherwise kill that child (integration_test_fork).
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:die_after_fork=0:suppressions=$root/tests/tsan.supp"
pass "tests (ThreadSanitizer)" suites build-tsan '^(faults_|install_)'
if [ -x tests/secrets_test.sh ]; then
  pass "no password or key material in any output" tests/secrets_test.sh build build-asan build-tsan
fi
if [ -x scripts/fuzz.sh ] && [ "${RCACHE_SKIP_FUZZ:-0}" != 1 ]; then
  pass "fuzz (corpus replay + fixed-seed pass)" scripts/fuzz.sh --check
fi
echo "== time per pass"
printf '   %s\n' "${timings[@]}"
if [ $status -eq 0 ]; then echo "make test: all suites passed"; else echo "make test: FAILED"; fi
exit $status
