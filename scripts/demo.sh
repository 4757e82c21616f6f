#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# `make demo`: runs the credits service demo (examples/credits/) from BUILD_DIR.
# The cache is memory:// unless REDIS_URL is set. The SQLite database is created and
# seeded on the first run (BUILD_DIR/credits-demo.db) and reused afterwards.
#   scripts/demo.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: scripts/demo.sh BUILD_DIR}
demo="$build/examples/credits/credits_demo"
cli="$build/tools/rcache"
if [ ! -x "$demo" ]; then
  echo "demo: $demo is missing (build with RCACHE_BUILD_TOOLS=ON: make build)" >&2
  exit 1
fi

"$demo" --db "$build/credits-demo.db"

if [ -n "${REDIS_URL:-}" ] && [ -x "$cli" ]; then
  echo
  echo "The same cache seen with the rcache CLI (values are plain text, readable by any client):"
  echo
  echo "\$ rcache health"
  "$cli" health | sed 's/^/  /' || true
  echo "\$ rcache --prefix credits-demo: scan 'user:*:credits' --limit 3"
  keys=$("$cli" --prefix credits-demo: scan 'user:*:credits' --limit 3 || true)
  for k in $keys; do
    printf '  %-20s %s\n' "$k" "$("$cli" --prefix credits-demo: get "$k" || true)"
  done
else
  echo
  echo "Run it against Redis with: REDIS_URL=redis://127.0.0.1:6379 make demo"
  echo "Operate a cache with the CLI: $cli --help (man docs/rcache.1)"
fi
