#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Builds the libFuzzer targets of fuzz/ with clang + ASan + UBSan in build-fuzz, then either
#
#   scripts/fuzz.sh --check [TARGET...]       the fuzz step of `make test`: same commit, same
#       verdict. For each target (a) every input of its checked-in corpus (fuzz/corpus/<name>/,
#       seeds and regress-*) runs once, then (b) a bounded pass with a fixed seed:
#       -seed=$RCACHE_FUZZ_SEED (default 1) -runs=<N per target, below>, starting from that
#       corpus. The number of runs, never the clock, ends it; new inputs it finds go to a
#       scratch directory (build-fuzz/check/<name>/), never into fuzz/corpus/.
#       RCACHE_FUZZ_RUNS=N replaces every target's N (e.g. 0: replay only).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     `make fuzz [FUZZ_SECONDS=N]` (default 60 s):
#       open-ended random fuzzing for people who hunt, SECONDS per target, on a scratch copy
#       of the corpus (build-fuzz/corpus/<name>/) that grows from run to run.
#       RCACHE_FUZZ_JOBS=N   parallel fuzzing processes per target (default 1)
#
# Either fails when a target finds a crash, a leak, undefined behaviour, an oracle's abort
# or a hang (one input over 10 s); the input that did it is kept in
# build-fuzz/findings/<name>/ and its path printed. fuzz/README.md says how a finding
# becomes a regress-* input.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

mode=hunt
if [ "${1:-}" = --check ]; then
  mode=check
  shift
else
  secs=${1:-60}
  shift || true
  case $secs in '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a number, got '$secs'" >&2; exit 2 ;; esac
fi

# Runs of the fixed-seed pass, sized so that all of them take about two minutes on two busy
# cores (measured: docs/operations.md). The reply targets talk to a fake server through
# real sockets, a few milliseconds per input; the pure parsers run thousands per second.
check_runs() {
  case $1 in
    fuzz_url | fuzz_glob) echo 60000 ;;
    fuzz_keys | fuzz_stats) echo 30000 ;;
    fuzz_json) echo 20000 ;;
    fuzz_reply) echo 1500 ;;
    fuzz_cluster) echo 400 ;;
    fuzz_sentinel) echo 600 ;;
    *) echo 5000 ;;
  esac
}

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
# -timeout: one input may not take more than 10 s (every rcache call has a deadline);
# -rss_limit_mb: a reply or value may not make rcache allocate without bound.
common=(-timeout=10 -rss_limit_mb=2048 -max_len=65536)

failed() { # failed TARGET LOG
  status=1
  echo "   FAILED: $1 (log: $2)"
  grep -E 'ERROR|SUMMARY|fuzz_[a-z]+:|Test unit written' "$2" | head -20 | sed 's/^/   /'
}

# The final "#N DONE cov: .. ft: .. corp: .." line: what a second run must repeat.
done_line() { grep -E '^#[0-9]+[[:space:]]+DONE' "$1" | tail -1 | sed -E 's/[[:space:]]+lim:.*//; s/[[:space:]]+/ /g'; }

# Without address randomisation (setarch -R) where the system allows it: libFuzzer records
# the operands of the target's comparisons to guide mutations, and pointer comparisons would
# otherwise feed it different addresses, hence different inputs, on every run.
norandom=()
if setarch "$(uname -m)" -R true 2>/dev/null; then
  norandom=(setarch "$(uname -m)" -R)
else
  echo "fuzz.sh: setarch -R not allowed here: the fixed-seed pass still runs, but addresses vary" >&2
fi

check_target() { # (a) replay the corpus, (b) the fixed-seed pass
  local t=$1 name=$2 seeds=$3 findings=$4 log=$build/$1.check.log
  local files=("$seeds"/*) runs=${RCACHE_FUZZ_RUNS:-$(check_runs "$t")} seed=${RCACHE_FUZZ_SEED:-1}
  echo "== fuzz: $t: replay ${#files[@]} corpus inputs, then $runs runs with -seed=$seed"
  if ! (cd "$build" && "$build/fuzz/$t" "${common[@]}" -artifact_prefix="$findings/" \
          "${files[@]}" >"$log" 2>&1); then
    failed "$t (corpus replay)" "$log"
    return
  fi
  [ "$runs" -gt 0 ] || return 0
  local scratch=$build/check/$name
  rm -rf "$scratch" && mkdir -p "$scratch"
  # -reload=0: nothing re-read on a timer. New inputs go to the first directory only.
  if (cd "$build" && "${norandom[@]}" "$build/fuzz/$t" "${common[@]}" "${extra[@]}" -seed="$seed" -runs="$runs" \
        -reload=0 -print_final_stats=1 -artifact_prefix="$findings/" "$scratch" "$seeds" \
        >>"$log" 2>&1); then
    echo "   ok: $(done_line "$log"), $(ls "$scratch" | wc -l) new inputs (not kept)"
  else
    failed "$t (-seed=$seed -runs=$runs)" "$log"
  fi
}

hunt_target() {
  local t=$1 name=$2 seeds=$3 findings=$4 log=$build/$1.log work=$build/corpus/$2
  mkdir -p "$work"
  [ -d "$seeds" ] && cp -n "$seeds"/* "$work"/ 2>/dev/null || true
  local jobs=${RCACHE_FUZZ_JOBS:-1}
  [ "$jobs" -gt 1 ] && extra+=(-jobs="$jobs" -workers="$jobs") # worker logs: build-fuzz/fuzz-N.log
  echo "== fuzz: $t for ${secs}s"
  if (cd "$build" && "$build/fuzz/$t" "${common[@]}" "${extra[@]}" -max_total_time="$secs" \
        -print_final_stats=1 -artifact_prefix="$findings/" "$work" >"$log" 2>&1); then
    echo "   ok: $(grep -E '^stat::number_of_executed_units' "$log" | tail -1 | awk '{print $2}') runs," \
         "$(ls "$work" | wc -l) corpus entries"
  else
    failed "$t" "$log"
  fi
}

status=0
for t in "${targets[@]}"; do
  name=${t#fuzz_}
  seeds=$root/fuzz/corpus/$name
  findings=$build/findings/$name
  mkdir -p "$findings"
  extra=()
  [ -f "fuzz/$name.dict" ] && extra+=(-dict="$root/fuzz/$name.dict")
  if [ $mode = check ]; then
    [ -d "$seeds" ] || { echo "fuzz.sh: $t has no corpus in fuzz/corpus/$name/" >&2; status=1; continue; }
    check_target "$t" "$name" "$seeds" "$findings"
  else
    hunt_target "$t" "$name" "$seeds" "$findings"
  fi
done
if [ $status -eq 0 ]; then echo "fuzz: all targets ran clean"; else echo "fuzz: FAILED"; fi
exit $status
