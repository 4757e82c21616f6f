#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# `make fuzz [FUZZ_SECONDS=N]` (and the last step of `make test`, 30 s per target):
# builds the libFuzzer targets of fuzz/ with clang + ASan + UBSan in build-fuzz, then runs
# each one for SECONDS on a scratch copy of its seed corpus (fuzz/corpus/<name>/), so the
# checked-in corpus only changes when someone adds a seed on purpose.
# Fails when any target finds a crash, a leak, undefined behaviour or a hang; the input
# that did it is kept in build-fuzz/findings/<target>/ and its path printed.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     e.g. scripts/fuzz.sh 300 fuzz_reply
#   RCACHE_FUZZ_JOBS=N   parallel fuzzing processes per target (default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${1:-60}
shift || true
case $secs in '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a number, got '$secs'" >&2; exit 2 ;; esac

cc=${RCACHE_FUZZ_CC:-clang}
command -v "$cc" >/dev/null || { echo "fuzz.sh: $cc not found (scripts/deps.sh installs clang)" >&2; exit 1; }

build=$root/build-fuzz
echo "== fuzz: build ($cc, libFuzzer + ASan + UBSan) in $build"
CC=$cc cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DRCACHE_FUZZ=ON -DRCACHE_BUILD_TESTS=OFF \
  -DRCACHE_BUILD_BENCH=OFF -DRCACHE_BUILD_TOOLS=OFF >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target fuzz_all

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for f in fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
for t in "${targets[@]}"; do
  name=${t#fuzz_}
  seeds=$root/fuzz/corpus/$name
  work=$build/corpus/$name
  findings=$build/findings/$name
  mkdir -p "$work" "$findings"
  [ -d "$seeds" ] && cp -n "$seeds"/* "$work"/ 2>/dev/null || true
  extra=()
  [ -f "fuzz/$name.dict" ] && extra+=(-dict="$root/fuzz/$name.dict")
  jobs=${RCACHE_FUZZ_JOBS:-1}
  [ "$jobs" -gt 1 ] && extra+=(-jobs="$jobs" -workers="$jobs") # worker logs: build-fuzz/fuzz-N.log
  log=$build/$t.log
  echo "== fuzz: $t for ${secs}s"
  # -timeout: one input may not take more than 10 s (every rcache call has a deadline);
  # -rss_limit_mb: a reply or value may not make rcache allocate without bound.
  if (cd "$build" && "$build/fuzz/$t" "${extra[@]}" -max_total_time="$secs" -timeout=10 \
       -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -artifact_prefix="$findings/" \
       "$work" >"$log" 2>&1); then
    echo "   ok: $(grep -E '^stat::number_of_executed_units' "$log" | tail -1 | awk '{print $2}') runs," \
         "$(ls "$work" | wc -l) corpus entries"
  else
    status=1
    echo "   FAILED: $t (log: $log)"
    grep -E 'ERROR|SUMMARY|fuzz_[a-z]+:|Test unit written' "$log" | head -20 | sed 's/^/   /'
  fi
done
if [ $status -eq 0 ]; then echo "fuzz: all targets ran clean"; else echo "fuzz: FAILED"; fi
exit $status
