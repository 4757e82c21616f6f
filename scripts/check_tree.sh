#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The first step of `make test` (also runnable alone): fails when
#  - a C file (.c, .h) under src, include, tests, tools, fuzz, bench or examples differs from
#    what clang-format makes of it with the checked-in .clang-format, or
#  - a source file (C, shell, Python, CMake, Makefile, or any script with a sh/bash/python
#    shebang) lacks an SPDX-License-Identifier line.
# It lists every offending file (with clang-format's diff for the first few), so one run
# shows all there is to mend. Files are those git knows of plus untracked ones it does not
# ignore (build*/ is ignored); outside a git checkout, every file under the tree.
#
#   scripts/check_tree.sh            check
#   RCACHE_CLANG_FORMAT=clang-format-14 scripts/check_tree.sh
# Fix the formatting with: clang-format -i FILE...
set -euo pipefail
cd "$(dirname "$0")/.."

cf=${RCACHE_CLANG_FORMAT:-clang-format}
command -v "$cf" >/dev/null || { echo "check_tree: $cf not found (scripts/deps.sh installs clang-format)" >&2; exit 1; }

list_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files --cached --others --exclude-standard
  else
    find . -path ./.git -prune -o -path './build*' -prune -o -type f -print | sed 's|^\./||'
  fi
}

is_source() {
  case $1 in
    *.c | *.h | *.sh | *.py | *.cmake | *.cmake.in | */CMakeLists.txt | CMakeLists.txt | Makefile | */Makefile) return 0 ;;
  esac
  [ -f "$1" ] && [ -x "$1" ] && head -c 64 "$1" | head -1 | grep -Eq '^#!.*(sh|bash|python[0-9.]*)( |$)'
}

status=0
unformatted=0
unlicensed=0
while IFS= read -r f; do
  [ -f "$f" ] || continue # listed by git but deleted in the work tree
  is_source "$f" || continue
  if ! grep -q 'SPDX-License-Identifier:' "$f"; then
    echo "check_tree: $f: no SPDX-License-Identifier line"
    unlicensed=$((unlicensed + 1))
  fi
  case $f in
    src/*.[ch] | include/*.[ch] | tests/*.[ch] | tools/*.[ch] | fuzz/*.[ch] | bench/*.[ch] | examples/*.[ch]) ;;
    *) continue ;;
  esac
  if ! "$cf" --dry-run -Werror "$f" >/dev/null 2>&1; then
    unformatted=$((unformatted + 1))
    echo "check_tree: $f: differs from $cf's output (fix: $cf -i $f)"
    [ $unformatted -le 3 ] && "$cf" "$f" | diff -u "$f" - | sed -n '3,30p' | sed 's/^/    /' || true
  fi
done < <(list_files | LC_ALL=C sort)

[ $unformatted -eq 0 ] && [ $unlicensed -eq 0 ] || status=1
if [ $status -eq 0 ]; then
  echo "check_tree: formatting ($("$cf" --version | grep -oE '[0-9]+\.[0-9.]+' | head -1)) and SPDX lines ok"
else
  echo "check_tree: FAILED ($unformatted unformatted, $unlicensed without SPDX line)"
fi
exit $status
