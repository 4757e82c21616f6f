#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The shared library exports exactly the functions declared RCACHE_API in the public
# headers: nothing internal leaks (hidden visibility), nothing declared is missing.
set -euo pipefail
lib=$1 inc=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# declarations may span lines: join each header, then pick the name before "(".
cat "$inc"/rcache/*.h | tr '\n' ' ' | grep -oE 'RCACHE_API[^;{(]*\(' \
  | grep -oE '[A-Za-z_][A-Za-z0-9_]*\($' | tr -d '(' | grep '^rcache_' | sort -u >"$tmp/declared"
nm -D --defined-only "$lib" | awk '$2 ~ /^[TtWwDdBbRr]$/ {print $3}' \
  | grep -vE '^(_init|_fini|_edata|_end|__bss_start)$' | sort -u >"$tmp/exported"
fail=0
if ! diff -u "$tmp/declared" "$tmp/exported" >"$tmp/diff"; then
  echo "symbols: exported set differs from the headers (- declared only, + exported only):"
  cat "$tmp/diff"
  fail=1
fi
n=$(wc -l <"$tmp/declared")
grep -qv '^rcache_' "$tmp/exported" && { echo "symbols: non-rcache_ symbol exported"; fail=1; }
if [ $fail -eq 0 ]; then echo "symbols: $n exported = $n declared"; echo "symbols: 1 passed, 0 failed"; else echo "symbols: 0 passed, 1 failed"; fi
exit $fail
