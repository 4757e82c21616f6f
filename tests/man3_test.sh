#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The man3 pages generated from the headers (scripts/gen_man3.py): every RCACHE_API function
# and every function-like rcache_ macro has a page (or a .so link to its family's page), every
# function has a description (a header comment), every page renders without a groff warning,
# and generating again gives the same pages (nothing but the headers goes in).
# Usage: man3_test.sh MAN3_DIR INCLUDE_DIR PYTHON VERSION HEADER...
set -euo pipefail
man3=$1 inc=$2 py=$3 version=$4
shift 4
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
check() { local what=$1; shift; if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what" >&2; fi; }

# the names, as tests/symbols_test.sh reads them, plus the function-like macros
cat "$inc"/rcache/*.h | tr '\n' ' ' | grep -oE 'RCACHE_API[^;{(]*\(' \
  | grep -oE '[A-Za-z_][A-Za-z0-9_]*\($' | tr -d '(' | grep '^rcache_' | sort -u >"$tmp/names"
grep -hoE '^#define rcache_[a-z0-9_]+\(' "$inc"/rcache/*.h | sed 's/#define //; s/($//' >>"$tmp/names"
n=$(wc -l <"$tmp/names")
check "found the API's names" test "$n" -gt 40
while read -r name; do
  f=$man3/$name.3
  if [ ! -f "$f" ]; then check "$name has a page" false; continue; fi
  target=$f
  if head -1 "$f" | grep '^\.so ' >/dev/null; then
    target=$man3/../$(head -1 "$f" | cut -d' ' -f2)
    check "$name: .so target exists" test -f "$target"
  fi
  check "$name: page names it" grep -q "$name" "$target"
  check "$name: has a description" eval '! grep -q "^See the synopsis\.$" "$target"'
done <"$tmp/names"
# one groff for all pages (its warnings name the file); from the parent so .so links resolve
warn=$(cd "$man3/.." && groff -man -Tutf8 -ww -z man3/*.3 2>&1 || echo "groff failed")
check "the pages render without warnings: $warn" test -z "$warn"
"$py" "$here/../scripts/gen_man3.py" "$tmp/again/man3" "$version" "$@"
check "regenerated pages are identical" diff -r "$man3" "$tmp/again/man3"
echo "man3: $n names; $pass passed, $fail failed"
[ $fail -eq 0 ]
