#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""rcache CLI on a terminal (a pseudo-terminal from python's pty module) against a real
redis-server ($RCACHE_TEST_URL_TCP, logical db 14): del-prefix / del-pattern / flush ask for
confirmation and show progress on stderr only when it is a terminal.
Usage: test_cli_tty.py RCACHE_BINARY"""
import os
import pty
import select
import subprocess
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from clitest import Harness, RedisCli, env_url, run, with_db

t = Harness("cli_tty")
R = sys.argv[1]
url = with_db(env_url(t, "RCACHE_TEST_URL_TCP"), 14)
rc_ = RedisCli(url)
rc_.clear()
N = 30000  # more than one batch (20000), so progress spans batches


def on_pty(argv, answer=None, tty_in=True, tty_out=True, tty_err=True, timeout=60,
           type_ahead=False):
    """Runs argv with the chosen streams on a pseudo-terminal; types `answer` once the
    prompt appears on the terminal (or at once with type_ahead). Returns (exit code, what the terminal showed, stdout if piped,
    stderr if piped)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=slave if tty_in else subprocess.DEVNULL,
                         stdout=slave if tty_out else subprocess.PIPE,
                         stderr=slave if tty_err else subprocess.PIPE,
                         env={k: v for k, v in os.environ.items() if k != "REDIS_URL"})
    os.close(slave)
    if type_ahead:
        os.write(master, answer)
    shown, answered, deadline = b"", False, time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([master], [], [], 0.1)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                chunk = b""
            if not chunk and p.poll() is not None:
                break
            shown += chunk
        elif p.poll() is not None:
            break
        if answer is not None and not type_ahead and not answered and b"[y/N] " in shown:
            os.write(master, answer)
            answered = True
    out, err = p.communicate(timeout=max(1, deadline - time.time()))
    while select.select([master], [], [], 0.2)[0]:  # what it wrote just before exiting
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return p.returncode, shown.decode(errors="replace"), out or b"", (err or b"").decode()


# 1. Everything on a terminal, confirmation answered "y": counting, prompt with the count,
#    progress across batches, 100% at the end, keys gone.
rc_.fill("big:%d", N)
rc, shown, _, _ = on_pty([R, "--url", url, "del-prefix", "big:"], answer=b"y\n")
t.eq(rc, 0, "del-prefix confirmed on a terminal exits 0")
t.check(f"Delete {N} keys starting with 'big:'" in shown, "the prompt shows the count", shown[-400:])
t.check("counting:" in shown and "\rdeleting:" in shown, "progress lines on the terminal", shown[-400:])
t.check(f"deleted: {N}/{N} keys (100%)" in shown, "progress ends at 100%", shown[-400:])
t.check(f"\n{N}\r\n" in shown.replace("\r\r", "\r"), "the count is printed", shown[-200:])
t.eq(rc_.count("big:*"), 0, "every key was deleted")

# 2. Declined: nothing deleted, exit 1.
rc_.fill("keep:%d", 500)
rc, shown, _, _ = on_pty([R, "--url", url, "del-pattern", "keep:*"], answer=b"n\n")
t.eq(rc, 1, "declined confirmation exits 1")
t.check("not confirmed" in shown, "says nothing was deleted", shown[-300:])
t.eq(rc_.count("keep:*"), 500, "declined: the keys are still there")

# 3. Only stderr on a terminal (stdin closed, --yes, stdout piped): progress on the
#    terminal, a clean count on stdout.
rc, shown, out, _ = on_pty([R, "--url", url, "del-pattern", "keep:*", "--yes"], tty_in=False,
                           tty_out=False)
t.check(rc == 0 and out == b"500\n", "stdout holds only the count", out)
t.check("deleted: 500 keys" in shown, "progress on the stderr terminal (no total with --yes)",
        shown)

# 4. stderr on a terminal but --no-progress: no progress lines.
rc_.fill("np:%d", 300)
rc, shown, out, _ = on_pty([R, "--url", url, "del-prefix", "np:", "--yes", "--no-progress"],
                           tty_in=False, tty_out=False)
t.check(rc == 0 and out == b"300\n" and "deleting" not in shown and "\r" not in shown,
        "--no-progress", (out, shown))

# 5. stdin and stdout on a terminal but stderr piped: the prompt goes to the pipe (the
#    answer is typed ahead), no progress.
rc_.fill("pe:%d", 300)
rc, shown, _, err = on_pty([R, "--url", url, "del-prefix", "pe:"], answer=b"y\n",
                           tty_err=False, type_ahead=True)
t.check("deleting" not in err and "counting" not in err and "\r" not in err,
        "no progress when stderr is a pipe", err)
t.check("Delete 300 keys starting with 'pe:'" in err and "[y/N]" in err,
        "the prompt is on stderr", err)
t.check(rc == 0 and rc_.count("pe:*") == 0, "typed-ahead 'y' confirmed", (rc, shown))

# 6. flush within a namespace on a terminal: progress, only the namespace goes.
rc_.fill("ns:%d", 2000)
rc_("SET", "other", "v")
rc, shown, _, _ = on_pty([R, "--url", url, "--prefix", "ns:", "flush"], answer=b"yes\n")
t.check(rc == 0 and "Delete all 2000 keys of namespace 'ns:'" in shown and
        "deleted: 2000/2000 keys (100%)" in shown, "flush --prefix on a terminal", shown[-300:])
t.check(rc_.count("ns:*") == 0 and rc_("EXISTS", "other") == "1", "flush kept the other key")

# 6b. A flush that counts no key asks nothing and deletes nothing (exit 1): it used to run
#     unasked (a whole-db FLUSHDB without a namespace would take keys written since the count).
rc, shown, _, _ = on_pty([R, "--url", url, "--prefix", "none-here:", "flush"], answer=b"y\n")
t.check(rc == 1 and "no key to flush, nothing deleted" in shown and "[y/N]" not in shown,
        "flush of an empty namespace: exit 1, nothing asked", (rc, shown[-300:]))
t.check(rc_("EXISTS", "other") == "1", "the empty namespace's flush kept the other key")

# 7. The same operation without any terminal prints no control characters at all.
rc_.fill("plain:%d", 1000)
rc, out, err = run([R, "--url", url, "del-prefix", "plain:", "--yes"])
t.check(rc == 0 and out == b"1000\n" and err == "", "no terminal: no progress, no prompt", err)

# 8. get adds a newline only on a terminal
rc_("SET", "word", "hello")
rc, shown, _, _ = on_pty([R, "--url", url, "get", "word"], tty_in=False, tty_err=False)
t.check(rc == 0 and shown == "hello\r\n", "get on a terminal ends the line", shown)
rc, out, _ = run([R, "--url", url, "get", "word"])
t.check(rc == 0 and out == b"hello", "get into a pipe: the bytes only", out)

# 9. get and scan escape control bytes on a terminal; --raw writes them as they are
rc_("SET", "esc", "red\x1b[31m\nline2")
rc, shown, _, _ = on_pty([R, "--url", url, "get", "esc"], tty_in=False, tty_err=False)
t.check(rc == 0 and shown == "red\\x1b[31m\\nline2\r\n", "get on a terminal escapes", shown)
rc, shown, _, _ = on_pty([R, "--url", url, "get", "esc", "--raw"], tty_in=False, tty_err=False)
t.check(rc == 0 and shown == "red\x1b[31m\r\nline2\r\n", "get --raw on a terminal: the bytes",
        shown)
rc_("SET", "two\nlines", "v")
rc, shown, _, _ = on_pty([R, "--url", url, "scan", "two?lines"], tty_in=False, tty_err=False)
t.check(rc == 0 and shown == "two\\nlines\r\n", "scan on a terminal: one key, one line", shown)


def askpass(argv, typed, interrupt=False, timeout=60):
    """Runs argv with the pty as its controlling terminal (so that /dev/tty is the pty);
    types `typed` once the password prompt shows (or Ctrl-C with interrupt). Returns (exit
    code, what the terminal showed, stdout, whether echo was on again afterwards)."""
    import fcntl
    import termios
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=slave, stdout=subprocess.PIPE, stderr=slave,
                         start_new_session=True,
                         preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
                         env={k: v for k, v in os.environ.items()
                              if k not in ("REDIS_URL", "RCACHE_PASSWORD")})
    os.close(slave)
    shown, answered, echo_off_seen = b"", False, False
    deadline = time.time() + timeout
    while time.time() < deadline and p.poll() is None:
        if select.select([master], [], [], 0.1)[0]:
            try:
                shown += os.read(master, 65536)
            except OSError:
                break
        if not answered and b"Password for " in shown:
            echo_off_seen = not termios.tcgetattr(master)[3] & termios.ECHO
            os.write(master, b"\x03" if interrupt else typed)
            answered = True
    out, _ = p.communicate(timeout=max(1, deadline - time.time()))
    echo_on = bool(termios.tcgetattr(master)[3] & termios.ECHO)
    os.close(master)
    return p.returncode, shown.decode(errors="replace"), out, echo_off_seen and echo_on


# 10. --askpass: the prompt names the URL (password-less), what is typed is not echoed, and
#     the terminal's echo is back on afterwards - also after Ctrl-C at the prompt
acl = urllib.parse.urlsplit(env_url(t, "RCACHE_TEST_URL_ACL"))
acl_pw = urllib.parse.unquote(acl.password)
nopw = f"redis://{acl.username}@{acl.hostname}:{acl.port}/14"
rc_("SET", "app:asked", "yes")
rc, shown, out, echo = askpass([R, "--url", nopw, "--askpass", "get", "app:asked"],
                               acl_pw.encode() + b"\n")
t.check(rc == 0 and out == b"yes", "--askpass: the typed password authenticates", (rc, shown))
t.check(f"Password for {nopw}: " in shown and acl_pw not in shown, "--askpass: echo off", shown)
t.check(echo, "--askpass: echo was off while asking, on again after")
# as the ACL user, not the default one: a write outside its keys (~app:*) is refused
rc, shown, out, echo = askpass([R, "--url", nopw, "--askpass", "set", "outside", "v"],
                               acl_pw.encode() + b"\n")
t.check(rc == 4 and "NOPERM" in shown, "--askpass: connected as the URL's user", (rc, shown))
rc, shown, out, echo = askpass([R, "--url", nopw, "--askpass", "--timeout", "300", "get", "k"],
                               b"Zq9wrong\n")
t.check(rc == 3 and "Zq9wrong" not in shown and "WRONGPASS" in shown,
        "--askpass, wrong password: exit 3, not echoed", (rc, shown))
rc, shown, out, echo = askpass([R, "--url", nopw, "--askpass", "get", "k"], None,
                               interrupt=True)
t.check(rc == -2 and echo, "Ctrl-C at the prompt: killed by SIGINT, echo restored", (rc, shown))

rc_.clear()
t.report()
