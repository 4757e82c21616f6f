# SPDX-License-Identifier: BSD-3-Clause
"""Shared helpers for the rcache CLI and demo tests: a CHECK-style harness printing
"<name>: N passed, N failed", a runner, and URL helpers. Imported by tests/cli/test_*.py."""
import os
import socket
import subprocess
import sys
import urllib.parse


class Harness:
    def __init__(self, name):
        self.name, self.passed, self.failed = name, 0, 0

    def check(self, cond, what, detail=""):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            frame = sys._getframe(1)
            print(f"FAIL {os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}: {what}"
                  + (f"\n     {detail}" if detail else ""), file=sys.stderr)
        return cond

    def eq(self, got, want, what):
        return self.check(got == want, what, f"got {got!r}, want {want!r}")

    def report(self):
        print(f"{self.name}: {self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)


def env_url(t, var):
    """The server URL from var; a missing variable is a failure, never a skip."""
    u = os.environ.get(var, "")
    if not u:
        print(f"FAIL: {var} is not set (run through `make test`, which starts the servers)",
              file=sys.stderr)
        t.failed += 1
        t.report()
    return u


def with_db(url, db):
    """redis://host:port[/n][?q] -> redis://host:port/db (same host, another logical db)."""
    p = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((p.scheme, p.netloc, f"/{db}", "", ""))


def dead_port():
    """A loopback port nobody listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(argv, stdin=subprocess.DEVNULL, input=None, env=None, timeout=60):
    """Runs argv; returns (exit code, stdout bytes, stderr text)."""
    e = dict(os.environ)
    e.pop("REDIS_URL", None)
    if env:
        e.update(env)
    p = subprocess.run(argv, stdin=None if input is not None else stdin, input=input,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


class RedisCli:
    """Independent checks through redis-cli (not through rcache)."""

    def __init__(self, url):
        self.url = url

    def __call__(self, *args, input=None):
        p = subprocess.run(["redis-cli", "-u", self.url, "--raw", *args], input=input,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        return p.stdout.decode(errors="replace").rstrip("\n")

    def raw(self, *args):
        """The reply's bytes as redis-cli --raw prints them, without the final newline."""
        p = subprocess.run(["redis-cli", "-u", self.url, "--raw", *args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        return p.stdout[:-1] if p.stdout.endswith(b"\n") else p.stdout

    def clear(self):
        """Deletes every key of this logical db. Not FLUSHDB: a flush notifies every client
        with CLIENT TRACKING on the server (other tests' near caches), a DEL only those
        tracking the key."""
        self("EVAL", "for _,k in ipairs(redis.call('KEYS','*')) do redis.call('DEL',k) end", "0")

    def count(self, pattern):
        """Distinct keys matching pattern: SCAN may return a key twice while the server
        rehashes its table (right after 30,000 deletions, say), as a run once showed (502
        of 500)."""
        p = subprocess.run(["redis-cli", "-u", self.url, "--scan", "--pattern", pattern],
                           stdout=subprocess.PIPE, timeout=60)
        return len({k for k in p.stdout.split(b"\n") if k})

    def fill(self, fmt, n, value="v"):
        """Creates keys fmt % i for i in 1..n with one server-side script."""
        self("EVAL", "for i=1,tonumber(ARGV[1]) do redis.call('SET', string.format(ARGV[2], i), "
             "ARGV[3]) end", "0", str(n), fmt.replace("%d", "%d"), value)
