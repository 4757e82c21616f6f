#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The demo service (examples/credits/) runs to completion and its numbers hold together:
for every phase SQLite queries + cache hits = requests, the outage phase serves every
request from SQLite within the deadline, dropped invalidations are replayed, and the
database and the cache agree, checked independently with python's sqlite3 and redis-cli.
Usage: test_demo.py CREDITS_DEMO memory|redis
(redis: $RCACHE_TEST_URL_TCP, logical db 15; the demo gets it through REDIS_URL)"""
import json
import os
import sqlite3
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from clitest import Harness, RedisCli, env_url, run, with_db

DEMO, MODE = sys.argv[1], sys.argv[2]
t = Harness(f"demo_{MODE}")
env = {}
if MODE == "redis":
    url = with_db(env_url(t, "RCACHE_TEST_URL_TCP"), 15)
    env["REDIS_URL"] = url
    rc_ = RedisCli(url)
    rc_.clear()
    rc_("SET", "not-the-demo", "untouched")

tmp = tempfile.mkdtemp(prefix="rcache-demo-test.")
db = os.path.join(tmp, "credits.db")


def ledger_rows():
    with sqlite3.connect(db) as c:
        return c.execute("SELECT count(*) FROM credit_ledger").fetchone()[0]


for run_no in (1, 2):
    rows_before = ledger_rows() if run_no == 2 else 0
    t0 = time.time()
    rc, out, err = run([DEMO, "--db", db, "--json"], env=env, timeout=120)
    took = time.time() - t0
    t.eq(rc, 0, f"run {run_no}: exit 0")
    try:
        d = json.loads(out)
    except ValueError:
        t.check(False, f"run {run_no}: JSON output", out[:500])
        break
    t.check(took < 60, f"run {run_no}: well under a minute", took)
    t.eq(d["db_created"], run_no == 1, f"run {run_no}: database created on the first run only")
    t.eq(d["url"], "memory://" if MODE == "memory" else url, "the cache URL (REDIS_URL or memory://)")
    t.check(d["healthy"] and d["ok"], f"run {run_no}: healthy, demo's own checks passed", d)
    ph = {p["name"]: p for p in d["phases"]}
    for name, p in ph.items():
        t.eq(p["sqlite_selects"] + p["cache_hits"], p["requests"],
             f"run {run_no} {name}: SQLite queries + cache hits = requests")
        t.eq(p["loads"], p["sqlite_selects"], f"run {run_no} {name}: one SELECT per loader call")
        t.eq(p["failed"], 0, f"run {run_no} {name}: no request failed")
        t.check(p["requests"] > 0 and p["median_us"] > 0, f"{name}: served and timed", p)
    no, ca, out_, rec = ph["no_cache"], ph["cache"], ph["outage"], ph["recovery"]
    t.check(no["cache_hits"] == 0 and no["requests"] == ca["requests"], "no cache: every read hits SQLite")
    t.check(ca["cache_hits"] > ca["requests"] // 2 and ca["writes"] > 0, "the cache serves most reads", ca)
    if MODE == "memory":  # ~1 µs against ~100 µs; over loopback TCP the margin is too thin to assert
        t.check(ca["median_us"] < no["median_us"], "the median request is faster with the cache",
                (ca, no))
    t.check(ca["sqlite_ms"] < no["sqlite_ms"], "less time in SQLite with the cache", (ca, no))
    t.eq(d["rate_limit"]["allowed"], d["rate_limit"]["limit"], "rate limit allows exactly the limit")
    # outage: a real Redis handle on a dead port; everything from SQLite, within the deadline
    t.eq(d["outage_backend"], "redis", "the outage uses a redis:// handle on a dead port")
    t.check(out_["cache_hits"] == 0 and out_["over_deadline"] == 0 and out_["max_us"] < 400000,
            "outage: no hits, every request within the 400 ms deadline", out_)
    t.check(out_["fallbacks"] >= out_["requests"] and d["outage_breaker_opens"] >= 1,
            "outage: answered without the cache, breaker opened", (out_, d["outage_breaker_opens"]))
    t.eq(d["outage_rate_limit"]["allowed"], 5, "rate limit fails open while down")
    t.check(out_["dropped_invalidations"] > 0 and d["queued"] > 0, "outage dropped invalidations", d)
    # recovery: replayed, nothing stale, cache and database agree
    t.eq(d["replayed"], d["queued"], "every dropped invalidation replayed")
    t.check(d["stale_before_replay"] > 0, "there was something to repair", d["stale_before_replay"])
    t.eq(d["stale_after_replay"], 0, "no stale balance after the replay")
    t.eq(d["matching_users"], d["users"], "every cached balance equals the database's")
    t.check(rec["cache_hits"] > 0, "recovery: the cache is used again", rec)
    # the writes really reached SQLite (checked with python's sqlite3)
    writes = sum(p["writes"] for p in d["phases"])
    if run_no == 1:
        t.eq(ledger_rows(), 100 * 1500 + writes, "run 1: seeded ledger + the demo's writes")
    else:
        t.eq(ledger_rows(), rows_before + writes, "run 2: the existing database grew by the writes")

if MODE == "redis":
    # what the demo left in Redis agrees with SQLite (read without rcache)
    with sqlite3.connect(db) as c:
        truth = dict(c.execute("SELECT user_id, SUM(amount) FROM credit_ledger GROUP BY user_id"))
    keys = rc_("--scan", "--pattern", "credits-demo:user:*:credits").split()
    t.check(len(keys) > 10, "cached balances are in Redis under the demo's namespace", len(keys))

    def version(name):  # a version key's value (docs/semantics.md, Tags); absent: 0
        v = rc_("GET", "credits-demo:__rc:" + name)
        return int(v) if v else 0

    def tagged(k):  # (tags with their stored versions, clear version, payload) of a frame
        v = rc_.raw("GET", k)
        t.check(v[:4] == b"\xffRC\x01", "a cached balance is stored tagged", (k, v[:16]))
        n, clear, at, tags = v[4], int.from_bytes(v[5:13], "big"), 13, {}
        for _ in range(n):
            tl = int.from_bytes(v[at:at + 2], "big")
            tags[v[at + 2:at + 2 + tl].decode()] = int.from_bytes(v[at + 2 + tl:at + 10 + tl], "big")
            at += tl + 10
        return tags, clear, v[at:]

    bad = []
    for k in keys:
        user = int(k.split(":")[2])
        tags, clear, payload = tagged(k)
        current = tags == {f"user:{user}": version(f"tag:user:{user}")} and clear == version("clear")
        if not current or int(payload) != truth[user]:
            bad.append((k, tags, clear, payload))
    t.eq(bad, [], "every balance cached in Redis is tagged user:<id>, current, and equals SQLite's SUM")
    t.eq(rc_("GET", "not-the-demo"), "untouched", "the demo's flush stayed in its namespace")
    rc_.clear()

for f in os.listdir(tmp):
    os.unlink(os.path.join(tmp, f))
os.rmdir(tmp)
t.report()
