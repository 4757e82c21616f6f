#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Starts and stops throwaway Redis servers for the tests: loopback and Unix sockets only,
# ports chosen here (free ones), each server tracked by its PID file in RUN_DIR.
#   scripts/servers.sh start RUN_DIR   -> writes RUN_DIR/env.sh (RCACHE_TEST_* variables)
#   scripts/servers.sh stop RUN_DIR    -> ends exactly the processes it started
set -euo pipefail
cmd=${1:?start|stop} run=${2:?run dir}
here=$(cd "$(dirname "$0")" && pwd)

free_port() { # a port nobody listens on, from the ephemeral-free range 20000-29999
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 10000))
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo $p; return; fi
  done
  echo "servers: no free port" >&2; return 1
}

wait_ready() { # wait_ready redis-cli-args...  (up to 20 s: CI machines can be slow)
  for _ in $(seq 1 200); do
    redis-cli "$@" PING 2>/dev/null | grep PONG >/dev/null && return 0
    sleep 0.1
  done
  echo "servers: redis did not start ($*); server logs:" >&2
  tail -n 5 "$run"/*.log >&2 || true
  return 1
}

# start_redis NAME PORT [extra redis-server args...]: a server on 127.0.0.1:PORT and a
# Unix socket RUN_DIR/NAME.sock, no persistence.
start_redis() {
  local name=$1 port=$2; shift 2
  mkdir -p "$run/$name"
  redis-server --bind 127.0.0.1 --port "$port" --unixsocket "$run/$name.sock" --unixsocketperm 700 \
    --save "" --appendonly no --dir "$run/$name" --daemonize yes \
    --pidfile "$run/$name.pid" --logfile "$run/$name.log" "$@"
}

case "$cmd" in
start)
  # A run directory is for one set of servers: state left by an earlier set (cluster
  # nodes.conf, pid files) would break this one.
  if compgen -G "$run/*.pid" >/dev/null || compgen -G "$run/*/*.pid" >/dev/null; then
    echo "servers: $run holds servers already (stop them first: $0 stop $run)" >&2
    exit 1
  fi
  mkdir -p "$run"
  rm -f "$run"/*/nodes.conf "$run"/*/*.rdb
  : >"$run/env.sh"
  port=$(free_port)
  start_redis plain "$port"
  wait_ready -h 127.0.0.1 -p "$port"
  {
    echo "export RCACHE_TEST_PORT=$port"
    echo "export RCACHE_TEST_URL_TCP=redis://127.0.0.1:$port"
    echo "export RCACHE_TEST_URL_UNIX=unix://$run/plain.sock"
    echo "export RCACHE_TEST_URL_DB3=redis://127.0.0.1:$port/3"
  } >>"$run/env.sh"
  # flavours added by later scripts (TLS, ACL, cluster, sentinel) hook in here
  for extra in "$here"/servers.d/*.sh; do
    [ -e "$extra" ] || continue
    # shellcheck disable=SC1090
    source "$extra"
  done
  echo "servers: started (see $run/env.sh)" >&2
  ;;
stop)
  for pidf in "$run"/*.pid "$run"/*/*.pid; do
    [ -e "$pidf" ] || continue
    pid=$(cat "$pidf" 2>/dev/null || true)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    # paused servers (SIGSTOP in fault tests) must be continued to exit
    [ -n "$pid" ] && kill -CONT "$pid" 2>/dev/null || true
  done
  sleep 0.2
  for pidf in "$run"/*.pid "$run"/*/*.pid; do
    [ -e "$pidf" ] || continue
    pid=$(cat "$pidf" 2>/dev/null || true)
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  done
  ;;
*) echo "usage: $0 start|stop RUN_DIR" >&2; exit 2 ;;
esac
