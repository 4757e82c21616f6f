#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The Makefile's promises (README, *Building and installing*): `make`, `make build`,
# `make install` and `make package` install no package and do not use -Werror; `make test`,
# `make demo`, `make bench` and `make fuzz` install what they need first. Read from `make -n`
# (prints the commands without running them).
set -euo pipefail
src=$1
pass=0 fail=0
check() { local what=$1; shift; if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what" >&2; fi; }
dry() { make -n --no-print-directory -C "$src" BUILD=/nonexistent "$@" 2>&1; }
for t in all build install package; do
  out=$(dry "$t")
  check "make $t installs no package" eval '! grep -qE "deps\.sh|apt-get" <<<"$out"'
  check "make $t builds without -Werror" eval '! grep -q "RCACHE_WERROR=ON" <<<"$out"'
  check "make $t runs cmake" eval 'grep -q "cmake --build" <<<"$out"'
done
for t in test demo bench fuzz; do
  out=$(dry "$t")
  check "make $t installs what it needs" eval 'grep -q "deps\.sh" <<<"$out"'
done
check "make test-quick builds with -Werror" eval 'grep -q "RCACHE_WERROR=ON" <<<"$(dry test-quick)"'
echo "make_targets: $pass passed, $fail failed"
[ $fail -eq 0 ]
