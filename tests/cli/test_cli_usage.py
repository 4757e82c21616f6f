#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""rcache CLI without a server: help for every subcommand, usage errors (exit 2), bad URLs,
memory:// and none:// behaviour, and the unavailable exit code (3) with a redacted URL
against a loopback port nobody listens on. Usage: test_cli_usage.py RCACHE_BINARY"""
import json
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from clitest import Harness, dead_port, run

t = Harness("cli_usage")
R = sys.argv[1]
COMMANDS = ["health", "get", "set", "del", "del-prefix", "del-pattern", "incr", "decr",
            "exists", "ttl", "scan", "stats", "flush", "bench", "watch"]

# --help: the main one lists every command; each command has its own.
rc, out, err = run([R, "--help"])
t.eq(rc, 0, "rcache --help exits 0")
for c in COMMANDS:
    t.check(f"\n  {c} ".encode() in out, f"--help lists {c}")
t.check(b"Exit status: 0 ok/found, 1 miss" in out, "--help documents the exit codes")
for c in COMMANDS:
    rc, out, err = run([R, c, "--help"])
    t.eq(rc, 0, f"rcache {c} --help exits 0")
    t.check(out.startswith(f"usage: rcache [options] {c} ".encode()), f"{c} --help usage line",
            out[:80])
    rc2, out2, _ = run([R, "help", c])
    t.check(rc2 == 0 and out2 == out, f"rcache help {c} == rcache {c} --help")
rc, out, _ = run([R, "--version"])
t.check(rc == 0 and out.startswith(b"rcache ") and b"." in out, "--version", out)

# usage errors exit 2 and say why on stderr
for argv, why in [([], "no command"), (["frobnicate"], "unknown command"),
                  (["get"], "missing argument"), (["get", "a", "b"], "unexpected argument"),
                  (["set", "k", "v", "--ttl", "x"], "not an integer"),
                  (["set", "k", "v", "--ttl", "-1"], "--ttl must be"),
                  (["incr", "k", "--by"], "needs a value"), (["get", "k", "--bogus"], "unknown option"),
                  (["scan", "--limit", "-3"], "--limit"), (["watch", "--interval", "0"], "--interval"),
                  (["stats", "--json", "--prometheus"], "exclude"),
                  (["health", "--timeout", "-5"], "timeouts")]:
    rc, out, err = run([R, "--url", "memory://", *argv])
    t.eq(rc, 2, f"usage error exits 2: {argv}")
    t.check(why in err or (not argv and "usage:" in err), f"usage error says '{why}'", err)

# a malformed URL is a usage error naming the bad part, with the password hidden
rc, out, err = run([R, "--url", "redis://bob:hunter2@127.0.0.1:99999", "get", "k"])
t.eq(rc, 2, "bad URL exits 2")
t.check("hunter2" not in err and "***" in err, "bad URL message hides the password", err)
t.check("port" in err, "bad URL message names the port", err)
# unencoded passwords holding URL delimiters never show
for pw in ("p?ss", "pa/ss", "pa@ss", "pa://ss", "p#ss"):
    rc, out, err = run([R, "--url", f"redis://u:{pw}@127.0.0.1:{dead_port()}", "--timeout", "100",
                        "get", "k"], timeout=30)
    t.check(rc in (2, 3) and pw not in err and pw.replace("p", "", 1) not in err
            and "u:***@" in err, f"password {pw!r} hidden", err)
rc, out, err = run([R, "--url", "gopher://x", "health"])
t.eq(rc, 2, "unknown scheme exits 2")

# del-prefix / del-pattern / flush refuse without --yes when stdin is not a terminal
for argv in (["del-prefix", "a:"], ["del-pattern", "a:*"], ["flush"]):
    rc, out, err = run([R, "--url", "memory://", *argv])
    t.eq(rc, 2, f"{argv[0]} without --yes and no terminal exits 2")
    t.check("refusing" in err, f"{argv[0]} says it refuses", err)

# memory:// (in-process: each run starts empty) and none://
rc, out, _ = run([R, "--url", "memory://", "set", "k", "v"])
t.eq(rc, 0, "memory:// set")
rc, out, _ = run([R, "--url", "memory://", "get", "k"])
t.check(rc == 1 and out == b"", "memory:// get in a new process misses (exit 1, no output)")
rc, out, _ = run([R, "--url", "memory://", "incr", "n", "--by", "41"])
t.check(rc == 0 and out == b"41\n", "memory:// incr", out)
rc, out, _ = run([R, "--url", "memory://", "health", "--json"])
h = json.loads(out) if rc == 0 else {}
t.check(h.get("healthy") is True and h.get("mode") == "memory", "memory:// health --json", out)
rc, out, _ = run([R, "--url", "none://", "set", "k", "v"])
t.eq(rc, 0, "none:// set is accepted (and dropped)")
rc, out, _ = run([R, "--url", "none://", "get", "k"])
t.eq(rc, 1, "none:// get misses")
rc, out, err = run([R, "--url", "none://", "incr", "k"])
t.eq(rc, 3, "none:// incr: no counter, exit 3")
rc, out, _ = run([R, "--url", "memory://", "bench", "-n", "200", "--json"])
b = json.loads(out) if rc == 0 else {}
t.check(rc == 0 and [r["op"] for r in b.get("results", [])] == ["set", "get", "incr", "get_or_set"]
        and all(r["errors"] == 0 and r["ops_per_sec"] > 0 for r in b["results"]),
        "memory:// bench --json", out)

# unavailable: exit 3, the message names the URL with its password hidden
dead = f"redis://alice:s3cret@127.0.0.1:{dead_port()}/0?connect_timeout_ms=200&command_timeout_ms=200"
for argv in (["get", "k"], ["set", "k", "v"], ["del", "k"], ["incr", "k"], ["exists", "k"],
             ["ttl", "k"], ["scan", "*"], ["health"], ["del-prefix", "x:", "--yes"],
             ["del-pattern", "x:*", "--yes"], ["flush", "--yes"]):
    rc, out, err = run([R, "--url", dead, *argv], timeout=30)
    t.eq(rc, 3, f"dead port: {argv[0]} exits 3")
    t.check("s3cret" not in err and "alice:***@127.0.0.1" in err, f"{argv[0]}: redacted URL", err)
    t.check("cannot connect" in err and "refused" in err, f"{argv[0]}: says why", err)
rc, out, err = run([R, "health", "--json"], env={"REDIS_URL": dead})
h = json.loads(out) if out else {}
t.check(rc == 3 and h.get("healthy") is False and "s3cret" not in out.decode()
        and h.get("error"), "REDIS_URL is used; health --json when down", out)
# an empty REDIS_URL (an unfilled template) is unset: the default URL with one warning, never
# none:// (which would answer "healthy"); --url "" is the explicit way to turn caching off
rc, out, err = run([R, "--timeout", "200", "--connect-timeout", "200", "health", "--json"],
                   env={"REDIS_URL": ""}, timeout=30)
h = json.loads(out) if out else {}
t.check(h.get("mode") == "standalone" and h.get("url") == "redis://localhost:6379"
        and rc in (0, 3), "empty REDIS_URL: the default URL, not none://", out)
t.eq(err.count("REDIS_URL is set but empty"), 1, "empty REDIS_URL: one warning")
rc, out, err = run([R, "--url", "", "health", "--json"], env={"REDIS_URL": ""})
h = json.loads(out) if out else {}
t.check(rc == 0 and h.get("mode") == "none" and "REDIS_URL" not in err,
        "--url '' turns caching off, without a warning", err)
rc, out, err = run([R, "health", "--json"], env={"REDIS_URL": "none://"})
t.check(rc == 0 and json.loads(out).get("mode") == "none" and not err, "REDIS_URL=none://", err)
rc, out, err = run([R, "--url", dead, "watch", "--count", "1", "--interval", "1"], timeout=30)
t.check(rc == 3 and b"DOWN" in out, "watch --count 1 on a dead port: DOWN, exit 3", out)

t.report()
