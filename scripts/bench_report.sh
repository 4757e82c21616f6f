#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# `make bench-report`: turns bench/results.json into docs/perf.md with a latency chart
# (docs/perf-latency.png) and a throughput-against-threads chart (docs/perf-threads.png),
# drawn by gnuplot. The sections after the table (from the first
# "## " heading) are written by hand and kept.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f bench/results.json ] || { echo "bench-report: run 'make bench' first" >&2; exit 1; }
command -v gnuplot >/dev/null || scripts/deps.sh
python3 - <<'PY'
import json
r = json.load(open("bench/results.json"))
rows = r["rows"]
m = r.get("machine", {})
def ns(v):
    return "-" if not v else (f"{v:.0f} ns" if v < 10000 else f"{v/1000:.1f} µs" if v < 1e7 else f"{v/1e6:.1f} ms")
load = m.get("load")
busy = (f" The machine's 1-minute load average was {load[0]:g} before the run and {load[1]:g} "
        "after it: other work shared the cores." if load else "")
out = ["# Performance", "",
       f"Measured by `make bench` on {r.get('date','?')}: {m.get('cores','?')} cores, {m.get('cpu','?')}.{busy} "
       "Every figure is next to a baseline measured in the same run (raw hiredis, or "
       "redis-benchmark); the ratio is rcache ÷ baseline (for the near cache: remote ÷ near; for "
       "the stampede: naive loads ÷ rcache loads). Absolute figures swing from run to run on "
       "these shared machines (a loopback round trip takes 7 µs in one minute and 60 µs in the "
       "next); the ratios, measured in interleaved rounds, are what to compare.", "",
       "| workload | ops/s | p50 | p99 | baseline | baseline value | ratio | target | met |",
       "|---|---:|---:|---:|---|---:|---:|---|---|"]
for x in rows:
    met = {True: "yes", False: "**no**", None: "-"}[x["met"]]
    out.append(f"| {x['workload']} | {x['ops_per_s']:.0f} | {ns(x['p50_ns'])} | {ns(x['p99_ns'])} | "
               f"{x['baseline']} | {x['baseline_value']:.1f} | {x['ratio']:.3f} | {x['target']} | {met} |")
out += ["", "![p50 and p99 latency per workload](perf-latency.png)", ""]
# throughput against the number of threads (GET 100 B on one handle; issue 16)
import re
tp = {}
for x in rows:
    m3 = re.match(r"wake-up ceiling, (\d+) threads", x["workload"])
    if m3:
        tp.setdefault(int(m3.group(1)), {})["ceiling"] = x["ops_per_s"]
        continue
    m2 = re.match(r"GET 100 B, (\d+) threads, one handle$", x["workload"])
    if not m2:
        continue
    t = tp.setdefault(int(m2.group(1)), {})
    t["rcache"] = x["ops_per_s"]
    t["redis-benchmark" if x["baseline"].startswith("redis-benchmark") else "hiredis"] = x["baseline_value"]
if tp:
    out += ["![GET 100 B ops/s against the number of threads](perf-threads.png)", ""]
with open("/tmp/rcache-threads.dat", "w") as f:
    for n in sorted(tp):
        t = tp[n]
        ceil = f"{t['ceiling']:.0f}" if "ceiling" in t else "?"
        f.write(f"{n} {t.get('rcache',0):.0f} {t.get('redis-benchmark',0):.0f} {t.get('hiredis',0):.0f} {ceil}\n")
# the hand-written sections after the table (from the first "## " heading) are kept
try:
    old = open("docs/perf.md").read()
except FileNotFoundError:
    old = ""
at = old.find("\n## ")
open("docs/perf.md", "w").write("\n".join(out) + (old[at:] if at >= 0 else ""))
with open("/tmp/rcache-perf.dat", "w") as f:
    for i, x in enumerate(x for x in rows if x["p50_ns"]):
        f.write(f"{i} \"{x['workload'].split(' (')[0][:34]}\" {max(x['p50_ns'],1)/1000:.3f} {max(x['p99_ns'],1)/1000:.3f}\n")
PY
gnuplot <<'GP'
set terminal pngcairo size 1100,600 font ",9" noenhanced
set output "docs/perf-latency.png"
set title "rcache latency per workload (µs, log scale)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel "µs"
set xtics rotate by -35 scale 0
set key top left
plot "/tmp/rcache-perf.dat" using 3:xtic(2) title "p50", "" using 4 title "p99"
GP
if [ -s /tmp/rcache-threads.dat ]; then
  gnuplot <<'GP'
set terminal pngcairo size 800,450 font ",9" noenhanced
set output "docs/perf-threads.png"
set title "GET 100 B hits: ops/s against concurrent callers (one redis-server, same run)"
set logscale x 2
set xlabel "threads (callers)"
set ylabel "ops/s"
set key top left
set style data linespoints
set datafile missing "?"
plot "/tmp/rcache-threads.dat" using 1:2 title "rcache, N threads on one handle", \
     "" using 1:3 title "redis-benchmark -c N", \
     "" using 1:4 title "N threads, private hiredis connections", \
     "" using 1:5 with points pt 7 title "wake-up ceiling: N threads, no I/O"
GP
fi
rm -f /tmp/rcache-perf.dat /tmp/rcache-threads.dat
echo "bench-report: wrote docs/perf.md and docs/perf-latency.png"
