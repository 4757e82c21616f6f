#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""rcache CLI without a server: help for every subcommand, usage errors (exit 2), bad URLs,
memory:// and none:// behaviour, and the unavailable exit code (3) with a redacted URL
against a loopback port nobody listens on. Usage: test_cli_usage.py RCACHE_BINARY"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

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
# the man page documents every option --help lists
man = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                        "rcache.1"), encoding="utf-8").read().replace("\\-", "-")
rc, out, _ = run([R, "--help"])
opts = set(re.findall(r"--[a-z][a-z-]+", out.decode()))
rc, out, _ = run([R, "get", "--help"])
opts |= set(re.findall(r"--[a-z][a-z-]+", out.decode()))
for o in sorted(opts | {"RCACHE_PASSWORD", "REDIS_URL"}):
    t.check(o in man, f"docs/rcache.1 documents {o}")
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
                  (["health", "--timeout", "-5"], "milliseconds from 1 to 3600000"),
                  (["health", "--timeout", "0"], "milliseconds from 1 to 3600000"),
                  (["health", "--connect-timeout", "0"], "milliseconds from 1 to 3600000"),
                  (["health", "--timeout", "3600001"], "milliseconds from 1 to 3600000"),
                  (["get", "k", "--raw", "--escape"], "exclude")]:
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
# a mistyped URL without "://", from --url or REDIS_URL, never shows its password (the
# library's message masks it; the tool adds no copy of its own), and the URL appears once
for bad in ("redis:/app:Zq9pw@127.0.0.1:6379", "redis//app:Zq9pw@127.0.0.1", "app:Zq9pw@host",
            "redis:app:Zq9pw@host/0"):
    for how in ("--url", "REDIS_URL"):
        argv, env = ([R, "--url", bad, "get", "k"], None) if how == "--url" else \
            ([R, "get", "k"], {"REDIS_URL": bad})
        rc, out, err = run(argv, env=env)
        t.check(rc == 2 and "Zq9pw" not in err and ":***@" in err, f"{how} {bad!r}: hidden", err)
        t.eq(err.count("***@"), 1, f"{how} {bad!r}: the URL is shown once")
rc, out, err = run([R, "--url", "redis://u:Zq9pw@127.0.0.1:99999", "get", "k"])
t.check(rc == 2 and err.count("127.0.0.1:99999") == 1 and "URL: URL" not in err and
        err.count("malformed URL") == 1, "a bad URL is named once, without 'URL: URL:'", err)

# usage errors never echo what looks like credentials, nor raw control bytes
for argv in (["set", "k", "v", "--ttl", "redis://u:Zq9pw@h"], ["set", "k", "v", "--ttl=u:Zq9pw@h"],
             ["get", "--bogus=redis://a:Zq9pw@h"], ["get", "k", "a:Zq9pw@h"], ["a:Zq9pw@h"],
             ["help", "a:Zq9pw@h"], ["--timeout", "redis://a:Zq9pw@h", "get", "k"],
             ["--password-file", "/nonexistent/a:Zq9pw@h", "get", "k"]):
    rc, out, err = run([R, "--url", "memory://", *argv])
    t.check(rc == 2 and "Zq9pw" not in err and ":***@" in err, f"usage error hides: {argv}", err)
rc, out, err = run([R, "\x1b]0;pwned\x07", "get"])
t.check(rc == 2 and "\x1b" not in err and "\\x1b]0;pwned\\x07" in err,
        "an unknown command's control bytes are escaped", err)
rc, out, err = run([R, "--url", "memory://", "get", "k", "a\nb"])
t.check(rc == 2 and "'a\\nb'" in err, "an argument holding a newline is shown on one line", err)

# a usage error before the command names the tool, not an empty command
rc, out, err = run([R, "--timeout", "x", "get", "k"])
t.check(rc == 2 and err.startswith("rcache: --timeout: not an integer") and
        "(see rcache --help)" in err and "rcache :" not in err and "  --help" not in err,
        "usage error before the command: 'rcache: ...', '(see rcache --help)'", err)

# each thing said once
rc, out, err = run([R, "--url", "none://", "incr", "k"])
t.check(rc == 3 and err.count("cache unavailable") == 1 and err.count("none://") == 1,
        "none:// incr: 'cache unavailable' and the URL once each", err)
rc, out, err = run([R, "--url", "memory://", "get", ""])
t.check(rc == 2 and err.count("invalid argument") == 1 and "key is empty" in err,
        "empty key: 'invalid argument' once, with the reason", err)

# password sources that cannot apply are usage errors (the rest is in cli_redis / cli_tty)
pwfile = os.path.join(tempfile.mkdtemp(prefix="rcache-cli-"), "pw")
with open(pwfile, "w") as f:
    f.write("Zq9pw\n")
empty = pwfile + ".empty"
open(empty, "w").close()
for argv, why in [(["--url", "memory://", "--password-file", pwfile], "memory:// takes no password"),
                  (["--url", "redis://u:x@127.0.0.1:1", "--password-file", pwfile],
                   "has a password already"),
                  (["--url", "redis://127.0.0.1:1", "--password-file", empty], "password is empty"),
                  (["--url", "redis://127.0.0.1:1", "--password-file", pwfile, "--askpass"],
                   "exclude each other"),
                  (["--url", "redis://127.0.0.1:1", "--password-file", "/nonexistent"],
                   "No such file")]:
    rc, out, err = run([R, *argv, "get", "k"])
    t.check(rc == 2 and why in err and "Zq9pw" not in err, f"password: {why}", err)
# a new session has no controlling terminal, even when the tests run from one
p = subprocess.run([R, "--url", "redis://127.0.0.1:1", "--askpass", "get", "k"],
                   stdin=subprocess.DEVNULL, capture_output=True, start_new_session=True, timeout=30)
t.check(p.returncode == 2 and b"no terminal" in p.stderr, "--askpass without a terminal: exit 2",
        p.stderr)
rc, out, err = run([R, "--url", "memory://", "get", "k"], env={"RCACHE_PASSWORD": "Zq9pw"})
t.check(rc == 1 and err == "", "$RCACHE_PASSWORD is ignored by memory://", err)
shutil.rmtree(os.path.dirname(pwfile))

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
