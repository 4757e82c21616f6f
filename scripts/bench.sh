#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# `make bench`: rcache-bench starts a throwaway redis-server on loopback (TCP + Unix socket),
# runs every workload with its same-run baseline, prints one table; this writes
# bench/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
echo "rcache $(awk '/RCACHE_VERSION_STRING/{gsub("\"","",$3);print $3}' include/rcache/version.h) — $(nproc) cores, $cpu, redis $(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2)"
# rcache-bench starts (and kills) its own redis-server: tests/support/redis_proc.h
load_before=$(cut -d' ' -f1 /proc/loadavg)
"$build/bench/rcache-bench" --json bench/results.json ${RCACHE_BENCH_QUICK:+--quick}
python3 - "$cpu" "$(nproc)" "$load_before" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import json, sys, datetime
r = json.load(open("bench/results.json"))
# the 1-minute load average before and after: other work on the machine skews every figure
r["machine"] = {"cpu": sys.argv[1], "cores": int(sys.argv[2]),
                "load": [float(sys.argv[3]), float(sys.argv[4])]}
r["date"] = datetime.datetime.utcnow().strftime("%Y-%m-%d")
json.dump(r, open("bench/results.json", "w"), indent=1)
PY
echo "bench: results in bench/results.json (make bench-report writes docs/perf.md)"
