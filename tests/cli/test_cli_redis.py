#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""rcache CLI against a real redis-server ($RCACHE_TEST_URL_TCP; the test uses logical db 13
so that its deletions cannot touch other tests' keys): every subcommand, checked independently with
redis-cli, exit codes, --json / --prometheus output parsed back.
Usage: test_cli_redis.py RCACHE_BINARY"""
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from clitest import Harness, RedisCli, env_url, run, with_db

t = Harness("cli_redis")
R = sys.argv[1]
url = with_db(env_url(t, "RCACHE_TEST_URL_TCP"), 13)
rc_ = RedisCli(url)
rc_.clear()


def cli(*argv, **kw):
    return run([R, "--url", url, *argv], **kw)


# health: the server version agrees with what redis-cli reads from INFO
rc, out, err = cli("health", "--json")
h = json.loads(out) if rc == 0 else {}
version = re.search(r"redis_version:(\S+)", rc_("INFO", "server")).group(1)
t.check(rc == 0 and h["healthy"] and h["mode"] == "standalone", "health --json", out)
t.eq(h.get("server_version"), version, "health reports the server's version")
t.check(0 < h.get("latency_ms", -1) < 1000, "health latency is a positive number of ms", h)
rc, out, _ = cli("health")
t.check(rc == 0 and b"status:   healthy" in out and version.encode() in out, "health text", out)

# set / get (with redis-cli as the witness), TTLs
rc, out, _ = cli("set", "greeting", "hello world", "--ttl", "100")
t.eq(rc, 0, "set --ttl")
t.eq(rc_("GET", "greeting"), "hello world", "set wrote the exact bytes")
t.check(0 < int(rc_("TTL", "greeting")) <= 100, "set --ttl 100 gave a TTL")
rc, out, _ = cli("get", "greeting")
t.check(rc == 0 and out == b"hello world", "get prints the value (no newline: not a tty)", out)
rc, out, _ = cli("ttl", "greeting")
t.check(rc == 0 and 0 < int(out) <= 100, "ttl", out)
rc_("SET", "forever", "x")
rc, out, _ = cli("ttl", "forever")
t.check(rc == 0 and out == b"-1\n", "ttl of a key without expiry: -1, exit 0", out)
rc, out, _ = cli("ttl", "absent")
t.check(rc == 1 and out == b"-2\n", "ttl of an absent key: -2, exit 1", out)
rc, out, _ = cli("get", "absent")
t.check(rc == 1 and out == b"", "get miss: exit 1, nothing printed", out)
blob = bytes(range(256)) * 3
rc, out, _ = cli("set", "blob", input=blob)
t.eq(rc, 0, "set from stdin")
t.eq(rc_("STRLEN", "blob"), str(len(blob)), "stdin value stored with its NULs")
rc, out, _ = cli("get", "blob")
t.check(rc == 0 and out == blob, "get returns the binary value byte for byte")

# del
rc_("SET", "d1", "1")
rc_("SET", "d2", "2")
rc, out, _ = cli("del", "d1", "d2", "d3")
t.check(rc == 0 and out == b"2\n", "del of 3 keys (2 present) prints 2", out)
t.eq(rc_("EXISTS", "d1", "d2"), "0", "del removed them")
rc, out, _ = cli("del", "d1")
t.check(rc == 1 and out == b"0\n", "del of an absent key: 0, exit 1", out)
many = ["dm:%d" % i for i in range(200)]  # more keys than any fixed table holds
for k in many[:150]:
    rc_("SET", k, "1")
rc, out, err = cli("del", *many)
t.check(rc == 0 and out == b"150\n", "del of 200 keys (150 present) prints 150", (out, err))
t.eq(rc_("EXISTS", *many), "0", "del removed all of them")

# counters
rc, out, _ = cli("incr", "n", "--by", "5")
t.check(rc == 0 and out == b"5\n", "incr --by 5", out)
rc, out, _ = cli("decr", "n")
t.check(rc == 0 and out == b"4\n", "decr", out)
rc, out, _ = cli("decr", "n", "--by=-10")
t.check(rc == 0 and out == b"14\n", "decr --by=-10", out)
t.eq(rc_("GET", "n"), "14", "the counter in Redis")
rc, out, err = cli("incr", "greeting")
t.check(rc == 4 and "greeting" in err and url in err, "incr on a string: exit 4, key and URL in the message", err)

# exists
rc, out, _ = cli("exists", "n")
t.check(rc == 0 and out == b"1\n", "exists: 1, exit 0", out)
rc, out, _ = cli("exists", "nope")
t.check(rc == 1 and out == b"0\n", "exists absent: 0, exit 1", out)

# scan
rc_("EVAL", "for i=1,25 do redis.call('SET','scan:'..i,'v') end", "0")
rc, out, _ = cli("scan", "scan:*")
keys = sorted(out.decode().split())
t.eq(keys, sorted(f"scan:{i}" for i in range(1, 26)), "scan lists exactly the matching keys")
rc, out, _ = cli("scan", "scan:*", "--limit", "10")
t.check(rc == 0 and len(out.split()) == 10, "scan --limit 10", out)
rc, out, _ = cli("scan", "nothing:*")
t.check(rc == 1 and out == b"", "scan with no match: exit 1", out)

# --prefix: a namespace, invisible in the names the CLI prints
rc, _, _ = cli("--prefix", "app:", "set", "k", "namespaced")
t.eq(rc_("GET", "app:k"), "namespaced", "--prefix prepends the namespace")
rc, out, _ = cli("scan", "k*", "--prefix", "app:")
t.check(rc == 0 and out == b"k\n", "scan within the namespace strips it", out)

# del-prefix: literal prefixes, user 12 never touches user 123; non-TTY: no progress
for k in ("u:12", "u:12:a", "u:12:b", "u:123:a", "u:1*:x", "u:1x:y"):
    rc_("SET", k, "v")
rc, out, err = cli("del-prefix", "u:12:", "--yes")
t.check(rc == 0 and out == b"2\n", "del-prefix u:12: deletes 2", (out, err))
t.eq(rc_("EXISTS", "u:12", "u:123:a", "u:1*:x", "u:1x:y"), "4", "del-prefix left the others")
t.check(err == "", "no progress or prompt on stderr when it is not a terminal", err)
rc, out, err = cli("del-prefix", "u:1*", "--yes")
t.check(rc == 0 and out == b"1\n", "del-prefix takes glob characters literally", out)
t.eq(rc_("EXISTS", "u:1x:y"), "1", "u:1* did not match u:1x:y")
rc, out, _ = cli("del-prefix", "zzz:", "--yes")
t.check(rc == 1 and out == b"0\n", "del-prefix with nothing to delete: exit 1", out)

# del-pattern
for k in ("p:a:x", "p:b:x", "p:c:y"):
    rc_("SET", k, "v")
rc, out, err = cli("del-pattern", "p:*:x", "--yes")
t.check(rc == 0 and out == b"2\n", "del-pattern p:*:x deletes 2", out)
t.eq(rc_("EXISTS", "p:c:y"), "1", "del-pattern kept p:c:y")

# flush within a namespace keeps the rest; without one it empties the db
rc_("SET", "fl:1", "v")
rc_("SET", "fl:2", "v")
rc, out, err = cli("--prefix", "fl:", "flush", "--yes")
t.check(rc == 0 and rc_("EXISTS", "fl:1", "fl:2") == "0", "flush --prefix fl: deleted fl:*", err)
t.check(int(rc_("DBSIZE")) > 5, "flush within a namespace kept the other keys")
# The one whole-db flush of these tests (FLUSHDB ASYNC on db 13): it is the behaviour
# under test. Redis tells every tracking client about any flush, so near caches of other
# tests on this server see one flush notice from here.
rc, out, err = cli("flush", "--yes")
t.check(rc == 0 and rc_("DBSIZE") == "0", "flush without a namespace empties the db", err)

# stats: JSON parsed back, Prometheus lines well-formed
rc, out, err = cli("stats", "--json")
s = json.loads(out) if rc == 0 else {}
t.check(rc == 0 and s["health"]["healthy"] and s["health"]["server_version"] == version,
        "stats --json health", out)
st = s.get("stats", {})
t.check(st.get("available") is True and st.get("breaker_state") == 0, "stats --json: available", st)
for f in ("hits", "misses", "sets", "deletes", "errors", "timeouts", "fallbacks",
          "reconnect_attempts", "latency_p50_ms"):
    t.check(isinstance(st.get(f), (int, float)), f"stats --json has {f}", st)
rc, out, err = cli("stats", "--prometheus")
lines = [l for l in out.decode().splitlines() if l and not l.startswith("#")]
good = all(re.fullmatch(r'rcache_[a-z_0-9]+(\{[^}]*\})? -?[0-9.e+-]+', l) for l in lines)
t.check(rc == 0 and good and "rcache_available 1" in lines and "rcache_health_up 1" in lines,
        "stats --prometheus", out)
rc, out, err = cli("stats")
t.check(rc == 0 and b"available          yes" in out and version.encode() in out, "stats text", out)

# bench --json, and it cleans up after itself
rc, out, err = cli("bench", "-n", "400", "--threads", "2", "--json")
b = json.loads(out) if rc == 0 else {}
t.check(rc == 0 and b["requests"] == 400 and b["threads"] == 2 and b["mode"] == "standalone",
        "bench --json header", out)
t.check([r["op"] for r in b.get("results", [])] == ["set", "get", "incr", "get_or_set"]
        and all(r["errors"] == 0 and r["ops_per_sec"] > 0 and 0 < r["p50_us"] <= r["p99_us"]
                <= r["max_us"] for r in b["results"]), "bench results", b)
t.eq(rc_.count("rcache-bench:*"), 0, "bench deleted its keys")
rc, out, err = cli("bench", "-n", "100")
t.check(rc == 0 and b"ops/s" in out and b"get_or_set" in out, "bench table", out)

# watch: a health line per refresh, then the figures (its own handle's: none publishes yet),
# whose health count is the ten pings of each refresh
rc, out, err = cli("watch", "--count", "2", "--interval", "1")
rows = out.decode().splitlines()
health = [r for r in rows if re.match(r"\d\d:\d\d:\d\d  ", r)]
t.check(rc == 0 and sum(r.startswith("time ") for r in rows) == 2 and len(health) == 2
        and all(" up " in r and "standalone" in r for r in health), "watch --count 2", out)
t.check(out.count(b"this CLI's own handle (no process publishes") == 2
        and re.search(rb"\n  health +10 .*\n(.*\n)*  health +20 ", out) is not None,
        "watch: its own handle's figures, ten health checks more each refresh", out)

# watch stops cleanly on Ctrl-C (SIGINT), exit 0: sent once its first refresh is out (each
# refresh is flushed; bounded wait)
w = subprocess.Popen([R, "--url", url, "watch", "--interval", "1"], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
wout, until = b"", time.monotonic() + 20
while b" up " not in wout and time.monotonic() < until:
    if select.select([w.stdout], [], [], 0.5)[0]:
        wout += os.read(w.stdout.fileno(), 65536)
w.send_signal(signal.SIGINT)
more, werr = w.communicate(timeout=10)
wout += more
t.check(w.returncode == 0 and b" up " in wout and werr == b"",
        "watch ends on SIGINT with exit 0 after printing a line", (w.returncode, wout, werr))

# a wrong password: health is an error (4), data commands are unavailable (3), the
# reason is given and the password is not
bad = url.replace("redis://", "redis://nobody:wr0ngpass@")
rc, out, err = run([R, "--url", bad, "health"])
t.check(rc == 4 and "authentication" in err and "wr0ngpass" not in err + out.decode()
        and "nobody:***@" in err, "wrong password: health exits 4, says why, hides it", err)
rc, out, err = run([R, "--url", bad, "get", "k"])
t.check(rc == 3 and "WRONGPASS" in err and "wr0ngpass" not in err,
        "wrong password: get exits 3 with the server's reason", err)

# REDIS_URL is honoured when --url is absent
rc, out, _ = run([R, "get", "k", "--prefix", "app:"], env={"REDIS_URL": url})
t.check(rc == 1, "REDIS_URL selects the server (db 13 was flushed)", out)
rc_("SET", "envk", "fromenv")
rc, out, _ = run([R, "get", "envk"], env={"REDIS_URL": url})
t.check(rc == 0 and out == b"fromenv", "get through REDIS_URL", out)

# keys and values with control bytes: escaped when asked (a terminal is cli_tty's case),
# raw into a pipe by default
nasty_key = b"a\nb"
nasty_val = b"v\x1b[31mred\x9b\xc2\x9b\xe2\x80\xae \xc3\xa9\\\r\t\x00"
escaped_val = b"v\\x1b[31mred\\x9b\\u009b\\u202e \xc3\xa9\\\\\\r\\t\\x00"
subprocess.run(["redis-cli", "-u", url, "-x", "SET", nasty_key], input=nasty_val, check=True,
               stdout=subprocess.DEVNULL)
rc, out, _ = cli("get", nasty_key)
t.check(rc == 0 and out == nasty_val, "get into a pipe: raw bytes", out)
rc, out, _ = cli("get", nasty_key, "--escape")
t.check(rc == 0 and out == escaped_val, "get --escape: control bytes, C1, bidi, bad UTF-8 escaped",
        out)
rc, out, _ = cli("get", nasty_key, "--raw")
t.check(rc == 0 and out == nasty_val, "get --raw", out)
rc, out, _ = cli("scan", "a?b")
t.check(rc == 0 and out == b"a\nb\n", "scan into a pipe: raw key", out)
rc, out, _ = cli("scan", "a?b", "--escape")
t.check(rc == 0 and out == b"a\\nb\n", "scan --escape: the key on one line", out)
rc_("DEL", "a\nb")

# passwords without the URL: $RCACHE_PASSWORD, --password-file, against the ACL user of
# scripts/servers.d/20-acl.sh (the user name stays in the URL, the password goes). Without
# the password the connection would be the default user's, which may do anything: that it
# is the ACL user's shows in a write outside its keys (~app:*) refused with NOPERM.
acl = urllib.parse.urlsplit(env_url(t, "RCACHE_TEST_URL_ACL"))
acl_pw = urllib.parse.unquote(acl.password)
nopw = f"redis://{acl.username}@{acl.hostname}:{acl.port}/13"
tmp = tempfile.mkdtemp(prefix="rcache-cli-")
rc_("SET", "app:k", "mine")


def as_user(url, extra=(), env=None, key="app:k", want=b"mine"):
    """get `key` with the password from extra/env, then a write outside the user's keys."""
    rc, out, err = run([R, "--url", url, *extra, "get", key], env=env)
    rc2, _, err2 = run([R, "--url", url, *extra, "set", "outside", "v"], env=env)
    return rc == 0 and out == want and rc2 == 4 and "NOPERM" in err2, (rc, out, err, rc2, err2)


ok, why = as_user(nopw, env={"RCACHE_PASSWORD": acl_pw})
t.check(ok, "$RCACHE_PASSWORD authenticates as the URL's user", why)
ok, why = as_user(nopw.replace("@", ":@"), env={"RCACHE_PASSWORD": acl_pw})
t.check(ok, "an empty password in the URL (user:@) counts as none", why)
rc, out, err = run([R, "--url", nopw, "get", "app:k"], env={"RCACHE_PASSWORD": "Zq9wrong"})
t.check(rc == 3 and "WRONGPASS" in err and "Zq9wrong" not in err,
        "a wrong $RCACHE_PASSWORD: exit 3, the reason, not the password", err)
with_pw = f"redis://{acl.username}:{acl.password}@{acl.hostname}:{acl.port}/13"
ok, why = as_user(with_pw, env={"RCACHE_PASSWORD": "Zq9wrong"})
t.check(ok, "the URL's own password wins over $RCACHE_PASSWORD", why)
for name, content in (("lf", acl_pw + "\n"), ("crlf", acl_pw + "\r\nsecond line\n"),
                      ("bare", acl_pw)):
    path = os.path.join(tmp, name)
    with open(path, "w", newline="") as f:
        f.write(content)
    ok, why = as_user(nopw, ["--password-file", path, "-v"])
    t.check(ok and acl_pw not in str(why), f"--password-file ({name}): its first line", why)
# unix://: the password goes before the "@/" of the socket path
sock = urllib.parse.urlsplit(env_url(t, "RCACHE_TEST_URL_UNIX")).path
ok, why = as_user(f"unix://{acl.username}@{sock}?db=13", env={"RCACHE_PASSWORD": acl_pw})
t.check(ok, "$RCACHE_PASSWORD on unix://user@/path", why)
# a password holding every URL delimiter reaches the server intact (percent-encoded)
odd_user, odd_pw = "rcache-cli-odd", "p@ss:w/rd?%#&+=;[] \u00e9'\"\\"
rc_("ACL", "SETUSER", odd_user, "reset", "on", ">" + odd_pw, "~odd:*", "+@all")
rc_("SET", "odd:k", "odd")
path = os.path.join(tmp, "odd")
with open(path, "w") as f:
    f.write(odd_pw + "\n")
odd_url = f"redis://{odd_user}@{acl.hostname}:{acl.port}/13"
ok, why = as_user(odd_url, ["--password-file", path], key="odd:k", want=b"odd")
t.check(ok, "a password with URL delimiters, from a file", why)
ok, why = as_user(odd_url, env={"RCACHE_PASSWORD": odd_pw}, key="odd:k", want=b"odd")
t.check(ok, "... and from $RCACHE_PASSWORD", why)
rc_("ACL", "DELUSER", odd_user)
shutil.rmtree(tmp)

# Figures from outside (publish_stats_s): processes publish their figures to Redis and
# `stats --clients` / `watch` read them; counts are those of what each process did. Interval
# 10 s: a key lives 30 s, well past the checks that read it (the first figures go out as a
# handle opens, the last as it closes).
def clients(*extra, prefix=None):
    argv = ["--prefix", prefix] if prefix else []
    rc, out, err = cli(*argv, "stats", "--clients", "--json", *extra)
    return rc, (json.loads(out) if out.startswith(b"[") else []), out, err


def of_pid(docs, pid):
    return next((d for d in docs if d.get("pid") == pid), None)


rc, docs, out, _ = clients()
t.check(rc == 1 and docs == [], "stats --clients: none publishes yet (exit 1)", out)
sep = "&" if "?" in url else "?"
pub = subprocess.Popen([R, "--url", url + sep + "publish_stats_s=10&client_name=pubbench", "bench",
                        "-n", "120", "--threads", "1"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
_, perr = pub.communicate(timeout=120)
t.eq(pub.returncode, 0, "a publishing bench ran")
rc, docs, out, _ = clients()
d = of_pid(docs, pub.pid) or {}
m = d.get("metrics", {})
ops = m.get("ops", {})
t.check(rc == 0 and d.get("closed") is True and m.get("client") == "pubbench",
        "stats --clients: the bench's last figures, marked closed", out)
t.eq([ops.get(o, {}).get("count") for o in ("set", "get", "incr", "get_or_set_hit")],
     [120, 120, 120, 120], "its counts are what the bench did (120 of each)")
t.eq(m.get("hits"), 240, "its hits: 120 gets and 120 get_or_set hits")
t.eq(ops.get("get", {}).get("count"), sum(ops.get("get", {}).get("buckets", [])),
     "a published histogram's buckets add up to its count")
t.check(d.get("key", "").startswith("__rc:stats:pubbench:") and d["key"].endswith(f":{pub.pid}"),
        "published under __rc:stats:<client>:<host>:<pid>", d.get("key"))
t.check(b"rcache-bench:" not in out, "no key is published")
ttl = int(rc_("PTTL", d.get("key", "x")))
t.check(0 < ttl <= 30000, "the key lives three intervals (30 s)", ttl)
rc, out, _ = cli("stats", "--clients")
t.check(rc == 0 and b"pubbench" in out and str(pub.pid).encode() in out and b"closed" in out,
        "stats --clients as text", out)
# watch: under its health line, each publishing process's figures as it published them
def watch_block(out, title):
    """The lines of watch's figures for the process whose title starts with `title`."""
    lines, block = out.split(b"\n"), []
    for i, line in enumerate(lines):
        if line.startswith(title.encode()):
            block = lines[i:]
            break
    return block[:block.index(b"")] if b"" in block else block


def shown_bound(buckets, q):
    """What watch shows as an op's p50/p99: the upper bound of the bucket holding rank q."""
    total, seen = sum(buckets), 0
    if total == 0:
        return "-"
    rank = max(1, int(q * total + 0.999999))
    for i, n in enumerate(buckets):
        seen += n
        if seen >= rank:
            if i == len(buckets) - 1:
                return "> 4.19 s"
            us = float(2 ** i)
            return "<= " + (f"{us:.1f} µs" if us < 1000 else f"{us / 1000:.2f} ms" if us < 1e6
                            else f"{us / 1e6:.2f} s")


def op_lines(doc):
    """watch's line for each op the document counted (printf pads by bytes, as % on bytes)."""
    return [b"  %-16s %10d %12s %12s" % (name.encode(), op["count"],
                                         shown_bound(op["buckets"], .5).encode(),
                                         shown_bound(op["buckets"], .99).encode())
            for name, op in doc["metrics"]["ops"].items() if op["count"]]


bench_doc = d if d.get("metrics") else {"metrics": {"ops": {}}}
rc, out, _ = cli("watch", "--count", "1", "--interval", "1")
block = watch_block(out, "pubbench@")
t.check(rc == 0 and block and b"hit 100.0 % (240/240)" in block[0] and b"(closed)" in block[0],
        "watch: the bench's hit ratio, closed", out)
want = op_lines(bench_doc)
t.check(len(want) >= 4 and all(w in block for w in want),
        "watch: each of the bench's ops with its count, p50 and p99 as published", (want, block))
# hit ratios per key family (key_family_segments, which the CLI's own handles do not set): a
# document as the library writes it, with families, under a key of its own
fam_doc = dict(bench_doc, pid=1, host="famhost", closed=False)
fam_doc["metrics"] = dict(bench_doc["metrics"], client="famtest",
                          families={"wf": {"hits": 95, "misses": 5},
                                    "credit": {"hits": 2, "misses": 3}})
rc_("SET", "__rc:stats:famtest:famhost:1", json.dumps(fam_doc), "PX", "60000")
rc, out, _ = cli("watch", "--count", "1", "--interval", "1")
block = watch_block(out, "famtest@famhost pid 1")
t.check(rc == 0 and b"  %-24s %10d %10d %6.1f" % (b"wf", 95, 5, 95.0) in block
        and b"  %-24s %10d %10d %6.1f" % (b"credit", 2, 3, 40.0) in block,
        "watch: hits, misses and hit ratio of each key family", block)
rc_("DEL", "__rc:stats:famtest:famhost:1")
# a running process: its figures appear while it runs, and its final ones when it ends
live = subprocess.Popen([R, "--url", url + sep + "publish_stats_s=10&client_name=pubwatch", "watch",
                         "--interval", "1", "--count", "3"], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
running = None
for _ in range(200):  # bounded: the first figures go out as the handle opens
    running = of_pid(clients()[1], live.pid)
    if running:
        break
    time.sleep(0.05)
t.check(running is not None and running.get("closed") is False, "a running process publishes",
        running)
live.wait(timeout=60)
d = of_pid(clients()[1], live.pid) or {}
t.eq(d.get("metrics", {}).get("ops", {}).get("health", {}).get("count"), 30,
     "watch --count 3 made 30 health checks, and its figures say so")
rc, out, _ = cli("watch", "--count", "1", "--interval", "1")
want = op_lines(d) if d.get("metrics") else [b"(no document)"]
block = watch_block(out, "pubwatch@")
t.check(rc == 0 and watch_block(out, "pubbench@") and b"  health " in b"\n".join(want)
        and all(w in block for w in want),
        "watch shows each publishing process: the one that watched, with its 30 health checks", out)
rc, out, _ = cli("--prefix", "nobody:", "watch", "--count", "1", "--interval", "1")
t.check(rc == 0 and b"this CLI's own handle (no process publishes" in out,
        "watch with none publishing: its own handle", out)
# an ACL user limited to ~app:* publishes under its key_prefix; its password is not published
pub = subprocess.Popen([R, "--url", f"{acl.scheme}://{acl.netloc}/13?publish_stats_s=1",
                        "--prefix", "app:", "get", "k"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
pub.wait(timeout=60)
rc, docs, out, _ = clients(prefix="app:")
t.check(rc == 0 and of_pid(docs, pub.pid) is not None, "published under the ACL user's prefix", out)
t.check(acl_pw.encode() not in out and acl_pw not in rc_("KEYS", "*__rc:stats:*"),
        "no password is published", out)

rc_.clear()
t.report()
