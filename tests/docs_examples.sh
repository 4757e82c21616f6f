#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The C examples in README.md and docs/*.md compile, as written, against the library.
#
#   tests/docs_examples.sh SRC_DIR BIN_DIR CC LIBRCACHE_A
#
# Which fenced blocks are built:
#   ```c          with a main(): a complete program, compiled and linked as is;
#                 without one: an illustration, not built (listed as skipped)
#   ```c snippet  statements: built as the body of `static void example(rcache *c)`, with
#                 <rcache/rcache.h>, <rcache/json.h>, <rcache/keys.h> and the usual C headers
#                 included, so a snippet may use an open handle `c`
#   ```c top      top-level definitions (a loader, a codec): built as a file with those
#                 headers, linked with an empty main
# A block may say how it is built without readers seeing it: an HTML comment right before its
# fence (Markdown does not render it) whose first line starts with "<!-- docs_examples:",
# then code around a line "@@" where the block goes, then "-->". The block is built as the
# usual headers + the code before @@ + the block + the code after @@:
#   <!-- docs_examples: built as the start of a program; @@ is where the block goes
#   int main(void) {
#   @@
#     rcache_close(cache);
#     return 0;
#   }
#   -->
# Flags: -std=c11 -Wall -Wextra -Werror (plus $RCACHE_TEST_CFLAGS, e.g. sanitizers).
# Programs are built, not run: they would talk to whatever server their URL names.
set -uo pipefail
src=$1 bin=$2 cc=$3 lib=$4
out="$bin/docs_examples"
rm -rf "$out"
mkdir -p "$out"

# Split every doc into blocks: out/<doc>-<line>.<kind>.c
for doc in "$src/README.md" "$src"/docs/*.md; do
  [ -f "$doc" ] || continue
  base=$(basename "$doc" .md)
  awk -v out="$out" -v base="$base" '
    /^<!-- docs_examples:/ && !inb { inw = 1; wrap = ""; next }
    inw && /^-->[ \t]*$/ { inw = 0; haswrap = 1; next }
    inw { wrap = wrap $0 "\n"; next }
    /^```c( (snippet|top))?[ \t]*$/ && !inb {
      inb = 1; kind = ($2 == "" ? "program" : $2); start = NR + 1
      if (haswrap) {
        kind = "wrapped"
        printf "%s", wrap > sprintf("%s/%s-%d.wrap", out, base, start)
        close(sprintf("%s/%s-%d.wrap", out, base, start))
      }
      file = sprintf("%s/%s-%d.%s.c", out, base, start, kind); next
    }
    { haswrap = 0 } # a wrapper applies only to the block right after it
    /^```/ && inb { inb = 0; close(file); next }
    inb { print > file }
  ' "$doc"
done

header='#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <rcache/json.h>
#include <rcache/keys.h>
#include <rcache/rcache.h>'

libs=$(pkg-config --libs hiredis jansson libssl libcrypto libcares)
pass=0 fail=0 skip=0
for f in "$out"/*.c; do
  [ -e "$f" ] || continue
  name=$(basename "$f" .c)
  kind=${name##*.}
  where="${name%.*}"                # <doc>-<line>
  doc=${where%-*} line=${where##*-}
  unit="$out/$name.unit.c"
  case $kind in
    program)
      if ! grep -qE '(^|[^a-z_])main[ \t]*\(' "$f"; then
        skip=$((skip + 1)); echo "skip $doc.md:$line (no main: an illustration)"; continue
      fi
      cp "$f" "$unit" ;;
    snippet)
      { echo "$header"; echo "static void example(rcache *c) {"; echo "  (void)c;";
        echo "#line $line \"$doc.md\""; cat "$f"; echo "}";
        echo 'int main(void) { rcache *c = NULL; if (rcache_open(&c, "none://", NULL) != RCACHE_OK) return 1; example(c); rcache_close(c); return 0; }'
      } >"$unit" ;;
    top)
      { echo "$header"; echo "#line $line \"$doc.md\""; cat "$f"; echo "int main(void) { return 0; }"; } >"$unit" ;;
    wrapped)
      wrap="$out/$where.wrap"
      if ! grep -qx '@@' "$wrap"; then
        fail=$((fail + 1)); echo "FAIL $doc.md:$line: its docs_examples comment has no @@ line"; continue
      fi
      { echo "$header"; sed '/^@@$/,$d' "$wrap"; echo "#line $line \"$doc.md\""; cat "$f";
        sed '1,/^@@$/d' "$wrap"; } >"$unit" ;;
  esac
  # shellcheck disable=SC2086
  if "$cc" -std=c11 -Wall -Wextra -Werror -Wno-unused-function ${RCACHE_TEST_CFLAGS:-} \
       -I"$src/include" "$unit" -o "$out/$name.bin" "$lib" $libs -lpthread -lm \
       >"$out/$name.log" 2>&1; then
    pass=$((pass + 1)); echo "ok   $doc.md:$line ($kind)"
  else
    fail=$((fail + 1)); echo "FAIL $doc.md:$line ($kind):"; sed 's/^/  /' "$out/$name.log" | head -30
  fi
done
[ $pass -gt 0 ] || { echo "FAIL: no example was built (the extraction is broken)"; fail=$((fail + 1)); }

# Every public function (RCACHE_API in include/rcache/*.h) has a comment: on its declaration,
# or ending right above it (or above the group of declarations it belongs to).
if python3 - "$src" <<'PY'
import glob, sys
bad = n = 0
for h in sorted(glob.glob(sys.argv[1] + "/include/rcache/*.h")):
    lines = open(h).read().split("\n")
    for i, l in enumerate(lines):
        if "RCACHE_API" not in l or l.startswith("#"):
            continue
        n += 1
        j, decl = i, []
        while j < len(lines):
            decl.append(lines[j])
            if ";" in lines[j]:
                break
            j += 1
        if any("/*" in d for d in decl):
            continue
        k = i - 1
        while k >= 0 and ("RCACHE_API" in lines[k] or (lines[k].startswith(" ") and
               not lines[k].strip().startswith("*") and lines[k].strip().endswith((";", ",")))):
            k -= 1
        if k >= 0 and lines[k].rstrip().endswith("*/"):
            continue
        bad += 1
        print("FAIL %s:%d: no comment for: %s" % (h, i + 1, l.strip()))
print("header docs: %d public declarations, %d without a comment" % (n, bad))
sys.exit(1 if bad or n == 0 else 0)
PY
then pass=$((pass + 1)); else fail=$((fail + 1)); fi
echo "docs_examples: $skip illustrations (no main) not built"
echo "docs_examples: $pass passed, $fail failed"
[ $fail -eq 0 ]
