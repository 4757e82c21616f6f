#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Extracts the first ```c block after "## Quick start" in README.md, compiles it against
# the static library as written, and runs it on memory://.
set -euo pipefail
src=$1 bin=$2 cc=$3 lib=$4
out="$bin/readme_quickstart"
mkdir -p "$out"
awk '/^## Quick start/{q=1} q&&/^```c$/{f=1;next} f&&/^```$/{exit} f{print}' "$src/README.md" >"$out/quickstart.c"
if [ ! -s "$out/quickstart.c" ]; then echo "readme_quickstart: no C block after '## Quick start'"; echo "0 passed, 1 failed"; exit 1; fi
"$cc" -std=c11 -Wall -Wextra -Werror ${RCACHE_TEST_CFLAGS:-} -I"$src/include" "$out/quickstart.c" -o "$out/quickstart" \
  "$lib" $(pkg-config --libs hiredis jansson libssl libcrypto libcares) -lpthread -lm
REDIS_URL=memory:// "$out/quickstart" >"$out/stdout.txt"
echo "readme_quickstart: 1 passed, 0 failed"
