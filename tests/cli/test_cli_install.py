#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""`make install` puts the rcache CLI in bin/ and its man page in share/man/man1/, and the
installed binary runs. Usage: test_cli_install.py BUILD_DIR"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from clitest import Harness, run

t = Harness("cli_install")
build = sys.argv[1]
prefix = tempfile.mkdtemp(prefix="rcache-cli-install.")
try:
    p = subprocess.run(["cmake", "--install", build, "--prefix", prefix],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    t.eq(p.returncode, 0, "cmake --install")
    exe = os.path.join(prefix, "bin", "rcache")
    man = os.path.join(prefix, "share", "man", "man1", "rcache.1")
    t.check(os.access(exe, os.X_OK), "bin/rcache installed", p.stdout.decode()[-500:])
    t.check(os.path.isfile(man), "share/man/man1/rcache.1 installed")
    if os.access(exe, os.X_OK):
        rc, out, _ = run([exe, "--version"])
        t.check(rc == 0 and out.startswith(b"rcache "), "the installed rcache runs", out)
        rc, out, _ = run([exe, "--url", "memory://", "incr", "n"])
        t.check(rc == 0 and out == b"1\n", "the installed rcache works on memory://", out)
    if os.path.isfile(man):
        text = open(man, encoding="utf-8").read()
        first = [l for l in text.splitlines() if not l.startswith('.\\"')][0]  # skip roff comments
        t.check(first.startswith(".TH RCACHE 1"), "the man page is roff with a .TH header")
        for c in ("health", "get", "set", "del", "del\\-prefix", "del\\-pattern", "incr", "decr",
                  "exists", "ttl", "scan", "stats", "flush", "bench", "watch"):
            t.check(f"\n.BI {c} " in text or f"\n.BR {c} " in text or f"\n.TQ\n.BI {c} " in text,
                    f"the man page documents {c}")
        t.check(".SH EXIT STATUS" in text, "the man page documents the exit status")
        if shutil.which("groff"):
            g = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-P-bcou", man],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            t.check(g.returncode == 0 and b"EXIT STATUS" in g.stdout and not g.stderr,
                    "groff renders the man page without warnings", g.stderr.decode()[:500])
finally:
    shutil.rmtree(prefix, ignore_errors=True)
t.report()
