#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# `make bench`: starts a throwaway redis-server on loopback (TCP + Unix socket), runs every
# workload with its same-run baseline, prints one table and writes bench/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
run=$(mktemp -d /tmp/rcache-bench.XXXXXX)
port=""
cleanup() {
  [ -f "$run/redis.pid" ] && kill "$(cat "$run/redis.pid")" 2>/dev/null || true
  sleep 0.2
  rm -rf "$run"
}
trap cleanup EXIT INT TERM
for _ in $(seq 1 200); do
  p=$((20000 + RANDOM % 10000))
  if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then port=$p; break; fi
done
redis-server --bind 127.0.0.1 --port "$port" --unixsocket "$run/redis.sock" --unixsocketperm 700 \
  --save "" --appendonly no --enable-debug-command yes --daemonize yes \
  --pidfile "$run/redis.pid" --logfile "$run/redis.log" --dir "$run"
for _ in $(seq 1 100); do redis-cli -p "$port" PING 2>/dev/null | grep -q PONG && break; sleep 0.05; done
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
echo "rcache $(awk '/RCACHE_VERSION_STRING/{gsub("\"","",$3);print $3}' include/rcache/version.h) — $(nproc) cores, $cpu, redis $(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2)"
"$build/bench/rcache-bench" --host 127.0.0.1 --port "$port" --unix "$run/redis.sock" \
  --json bench/results.json ${RCACHE_BENCH_QUICK:+--quick}
python3 - "$cpu" "$(nproc)" <<'PY'
import json, sys, datetime
r = json.load(open("bench/results.json"))
r["machine"] = {"cpu": sys.argv[1], "cores": int(sys.argv[2])}
r["date"] = datetime.datetime.utcnow().strftime("%Y-%m-%d")
json.dump(r, open("bench/results.json", "w"), indent=1)
PY
echo "bench: results in bench/results.json (make bench-report writes docs/perf.md)"
