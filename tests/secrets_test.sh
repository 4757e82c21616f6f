#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Credentials never appear in rcache's output (issue 11, item 4).
#
#   tests/secrets_test.sh BUILD_DIR [BUILD_DIR...]
#
# Run by scripts/test.sh after the test suites, with the servers of scripts/servers.sh
# still up and their env.sh sourced. It
#  1. makes rcache handle the known secrets on every path that prints something: the rcache
#     CLI (which prints the library's messages, rcache_errmsg(), health errors and stats)
#     with the ACL user's real password in the URL — a working server, a dead port, a bad
#     URL, a refused password, an ACL refusal, a Unix socket, Sentinel, TLS with the test
#     client key — with -v so that every log line is shown;
#  2. greps every output: those, and every ctest log of the given build directories
#     (Testing/Temporary/LastTest*.log: each test's stdout and stderr, the CLI tests' too)
#     for the ACL password and for every line of the TLS private keys' PEM bodies.
# The servers' own logs are not rcache's output and are not read.
# Fails on any hit, and when the probes did not actually print redacted URLs (a check
# that could not fail would prove nothing).
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR..." >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
fail=0 pass=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

pw=${RCACHE_TEST_ACL_PASSWORD:-}
port=${RCACHE_TEST_PORT:-}
tls_dir=${RCACHE_TEST_TLS_DIR:-}
tls_port=${RCACHE_TEST_TLS_PORT:-}
if [ -z "$pw" ] || [ -z "$port" ] || [ -z "$tls_dir" ]; then
  echo "FAIL: RCACHE_TEST_ACL_PASSWORD, RCACHE_TEST_PORT, RCACHE_TEST_TLS_DIR not set (run through make test)"
  echo "secrets_test: 0 passed, 1 failed"
  exit 1
fi

cli=""
for b in "$@"; do
  [ -x "$b/tools/rcache" ] && { cli="$b/tools/rcache"; break; }
done
[ -n "$cli" ] || bad "no rcache CLI in $*"

out=$(mktemp -d /tmp/rcache-secrets.XXXXXX)
[ -n "${RCACHE_SECRETS_KEEP:-}" ] || trap 'rm -rf "$out"' EXIT

# ---- the secrets -------------------------------------------------------------------------
secrets=$out/secrets.txt
printf '%s\n' "$pw" >"$secrets"
for k in "$tls_dir"/*.key; do
  # every base64 line of the PEM body (long enough not to match by chance)
  grep -v -e '^-----' "$k" | awk 'length($0) >= 24' >>"$secrets"
done
nsec=$(wc -l <"$secrets")
[ "$nsec" -gt 10 ] && ok || bad "too few secrets collected ($nsec lines)"

# ---- probes: every path that prints, with the real password in the URL ---------------------
dead=$(( (port + 7919) % 10000 + 20000 )) # a loopback port with nothing on it (checked below)
if (exec 3<>"/dev/tcp/127.0.0.1/$dead") 2>/dev/null; then dead=1; fi
n=0
probe() { # probe ARGS...: runs the CLI, keeps stdout and stderr
  n=$((n + 1))
  timeout 30 "$cli" "$@" >"$out/probe$n.out" 2>"$out/probe$n.err" </dev/null
  echo "$*" | sed "s/$pw/<pw>/g" >"$out/probe$n.cmd"
}
if [ -n "$cli" ]; then
  good="redis://app:$pw@127.0.0.1:$port?key_prefix=app:"
  probe -v --url "$good" health
  probe -v --url "$good" stats
  probe -v --url "$good" stats --json
  probe -v --url "$good" stats --prometheus
  probe -v --url "$good" set secrets-probe value
  probe -v --url "$good" get secrets-probe
  probe -v --url "$good" del secrets-probe
  probe -v --url "$good" scan 'nothing-*'
  # an outage: "cache unavailable ... (server ..., URL)" log lines, the health error
  probe -v --url "redis://app:$pw@127.0.0.1:$dead" --connect-timeout 200 health
  probe -v --url "redis://app:$pw@127.0.0.1:$dead" --connect-timeout 200 get k
  probe -v --url "redis://app:$pw@127.0.0.1:$dead" --connect-timeout 200 stats --prometheus
  # bad URLs: the message quotes the URL
  probe -v --url "redis://app:$pw@127.0.0.1:$port?pool=0" health
  probe -v --url "redis://app:$pw@127.0.0.1:99999" health
  probe -v --url "redis://app:$pw@127.0.0.1:$port/3/x" health
  probe -v --url "redis://app:$pw@127.0.0.1:$port?tls_insecure=1" health
  probe -v --url "rediss://app:$pw@127.0.0.1:$port?tls_cert=/nonexistent" health
  # refused: the real password for another user; the right user outside its keys
  probe -v --url "redis://default:$pw@127.0.0.1:$port" health
  probe -v --url "redis://app:$pw@127.0.0.1:$port" set not-app:key v
  # Unix socket and Sentinel forms with the password, to dead ends
  probe -v --url "unix://app:$pw@/nonexistent/redis.sock" --connect-timeout 200 health
  probe -v --url "redis+sentinel://app:$pw@127.0.0.1:$dead/mymaster" --connect-timeout 200 health
  # the real cluster and sentinels (they have no password: AUTH is refused, or retried
  # without it for sentinels), and a cluster of dead seeds
  if [ -n "${RCACHE_TEST_URL_CLUSTER_SEEDS:-}" ]; then
    probe -v --url "${RCACHE_TEST_URL_CLUSTER_SEEDS/redis:\/\//redis://app:$pw@}" --connect-timeout 500 health
  fi
  if [ -n "${RCACHE_TEST_URL_SENTINEL:-}" ]; then
    probe -v --url "${RCACHE_TEST_URL_SENTINEL/redis+sentinel:\/\//redis+sentinel://app:$pw@}" --connect-timeout 500 health
  fi
  probe -v --url "redis://app:$pw@127.0.0.1:$dead,127.0.0.1:$dead" --connect-timeout 200 health
  # TLS: the password and the test client key (a mismatched pair, then a refused AUTH)
  if [ -n "$tls_port" ]; then
    q="tls_ca=$tls_dir/ca.pem&tls_cert=$tls_dir/client.pem"
    probe -v --url "rediss://app:$pw@localhost:$tls_port?$q&tls_key=$tls_dir/other.key" health
    probe -v --url "rediss://app:$pw@localhost:$tls_port?$q&tls_key=$tls_dir/client.key" health
    probe -v --url "rediss://app:$pw@localhost:$tls_port?$q&tls_key=$tls_dir/ca.pem" health
  fi
  # the probes printed the redacted URL (so redaction was exercised, not bypassed)
  shown=$(cat "$out"/probe*.out "$out"/probe*.err | grep -c 'app:\*\*\*@')
  [ "$shown" -ge 10 ] && ok || bad "the probes printed only $shown redacted URLs (want >= 10)"
  # ...and the outage was logged (the library's log line, through -v)
  grep -qi 'unavailable' "$out"/probe9.err "$out"/probe10.err && ok ||
    bad "no 'unavailable' log line for the dead port"
fi

# ---- the grep ----------------------------------------------------------------------------
files=("$out"/probe*.out "$out"/probe*.err)
for b in "$@"; do
  for f in "$b"/Testing/Temporary/LastTest*.log; do
    [ -f "$f" ] && files+=("$f")
  done
done
nlogs=$(( ${#files[@]} - 2 * n ))
[ "$nlogs" -ge 1 ] && ok || bad "no ctest logs found in $* (run the suites first)"

# the grep itself works: a planted copy of the password is found
printf 'planted %s here\n' "$pw" >"$out/planted.txt"
grep -qF -f "$secrets" "$out/planted.txt" && ok || bad "grep does not find a planted secret"

for f in "${files[@]}"; do
  if hits=$(grep -naF -f "$secrets" "$f"); then
    bad "a secret appears in $f:"
    echo "$hits" | head -5 | sed "s/$pw/<THE PASSWORD>/g" | cut -c1-300 >&2
    cmd=${f%.*}.cmd
    [ -f "$cmd" ] && echo "  (probe: rcache $(cat "$cmd"))" >&2
  else
    ok
  fi
done

echo "secrets_test: scanned ${#files[@]} outputs ($nlogs ctest logs) for $nsec secret strings"
echo "secrets_test: $pass passed, $fail failed"
[ $fail -eq 0 ]
