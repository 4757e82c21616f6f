/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rcache never raises SIGPIPE in the program that uses it (regression, issue 11): OpenSSL
 * writes with write(), so a large set over TLS to a server that had just dropped the
 * connection killed the whole process with signal 13 — SIGPIPE's default action, which
 * most programs never change. The server drops our connections with CLIENT KILL and each
 * time a 20 MB value is written at once; the process must live, keep its own SIGPIPE
 * handling, and the call must answer (retried on a new connection).
 *
 * The server is a private one (TLS and TCP ports): CLIENT KILL TYPE normal on the shared
 * TLS server also cut other tests' handshakes (integration_test_strict_config failed so).
 */
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include "rcache/rcache.h"
#include "redis_proc.h"
#include "test.h"

static volatile sig_atomic_t handler_calls;
static void on_sigpipe(int sig) {
  (void)sig;
  handler_calls++;
}

static void kill_connections(const rp_server *srv) {
  char cmd[256]; /* through the plain TCP port: no certificate needed */
  snprintf(cmd, sizeof cmd, "redis-cli -h 127.0.0.1 -p %d CLIENT KILL TYPE normal >/dev/null 2>&1",
           srv->port);
  CHECK_EQ(system(cmd), 0);
}

static bool sigpipe_blocked(void) {
  sigset_t cur;
  sigemptyset(&cur);
  pthread_sigmask(SIG_BLOCK, NULL, &cur);
  return sigismember(&cur, SIGPIPE);
}

static void round_of_kills(rcache *c, const rp_server *srv, const char *big, size_t n) {
  for (int i = 0; i < 3; i++) {
    CHECK_EQ(rcache_set(c, "sigpipe:small", "v", 1, 60), RCACHE_OK); /* a pooled connection */
    kill_connections(srv);
    rcache_status s = rcache_set(c, "sigpipe:big", big, n, 60);
    CHECK_MSG(s == RCACHE_OK || s == RCACHE_EUNAVAILABLE, "set: %d %s", (int)s, rcache_errmsg(c));
    CHECK(!sigpipe_blocked()); /* the thread's mask is as it was */
  }
}

int main(void) {
  const char *dir = test_env_url("RCACHE_TEST_TLS_DIR");
  static rp_server srv;
  if (rp_start(&srv, &(rp_opts){.tag = "sigpipe", .tls_dir = dir}) != 0) {
    CHECK_MSG(0, "could not start a private TLS redis-server");
    return test_report("test_sigpipe");
  }
  char url[600];
  snprintf(url, sizeof url, "rediss://localhost:%d?tls_ca=%s/ca.pem", srv.tls_port, dir);

  rcache_options o;
  rcache_options_init(&o);
  o.pool_size = 1;
  o.command_timeout_ms = 5000;
  o.breaker_failures = 100;      /* keep using the server: every kill is a fresh chance */
  o.max_value_bytes = 32u << 20; /* the 20 MB value below */
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  if (!c) {
    rp_destroy(&srv);
    return test_report("test_sigpipe");
  }
  size_t n = 20u << 20;
  char *big = malloc(n);
  memset(big, 'x', n);

  /* 1. the default disposition: a stray SIGPIPE would end this test with signal 13 */
  signal(SIGPIPE, SIG_DFL);
  round_of_kills(c, &srv, big, n);

  /* 2. a program with its own handler: rcache's SIGPIPEs never reach it, its own do */
  signal(SIGPIPE, on_sigpipe);
  round_of_kills(c, &srv, big, n);
  CHECK_EQ(handler_calls, 0);
  raise(SIGPIPE);
  CHECK_EQ(handler_calls, 1);
  signal(SIGPIPE, SIG_DFL);

  rcache_delete(c, "sigpipe:big");
  rcache_delete(c, "sigpipe:small");
  free(big);
  rcache_close(c);
  rp_destroy(&srv);
  return test_report("test_sigpipe");
}
