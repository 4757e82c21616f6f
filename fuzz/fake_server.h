/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The fake Redis server and the operation driver shared by the reply-path fuzz targets
 * (fuzz_reply.c, fuzz_cluster.c, fuzz_sentinel.c). Header-only, included by exactly one
 * file per executable (each target is one translation unit, also in its replay test).
 *
 * The server is a thread listening on a Unix socket in /tmp, or on 127.0.0.1 (TCP). Each
 * input is split into chunks at the separator "\n--\n"; whenever the client sends
 * something, the server answers with the next chunk (a chunk may hold zero, one, several or
 * half a reply). When the client has sent nothing for a few milliseconds while the server
 * has chunks left, the next one goes out anyway (so a half reply can be completed). With no
 * chunks left, the server closes the connection, and closes any new one at once. The first
 * commands of a run get the target's canned answers (its prelude) instead, so that every
 * run opens the backend the target means to fuzz.
 *
 * With FZ_CAPTURE_TCP defined before the include, connect() and getaddrinfo() are replaced
 * in the executable (they win over libc's and the sanitizers' for the calls rcache makes):
 * every name "resolves" to 127.0.0.1 without DNS, and every TCP connect goes to the fake
 * server's port, so nothing leaves it whatever hosts a fuzzed slot map or sentinel names.
 *
 * The driver runs every operation and checks: statuses are valid rcache_status values,
 * outputs are zeroed when the status is not RCACHE_OK, nothing crashes, leaks or trips a
 * sanitizer, and the run ends in bounded time (libFuzzer's -timeout catches hangs).
 */
#ifndef RCACHE_FUZZ_FAKE_SERVER_H
#define RCACHE_FUZZ_FAKE_SERVER_H

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "rcache/json.h"
#include "rcache/keys.h"

#define FZ_SEP "\n--\n"
#define FZ_MAX_CHUNKS 64
#define FZ_MAX_CONNS 16
#define FZ_MAX_PRELUDE 4
#define FZ_IDLE_MS 3

/* ---- the fake server ------------------------------------------------------------------------- */

typedef struct fz_chunk {
  const uint8_t *p;
  size_t len;
} fz_chunk;

static struct {
  pthread_mutex_t mu;
  const char *name; /* the target's name, for messages */
  bool tcp;
  char path[108]; /* the Unix listener's path */
  int port;       /* the TCP listener's port on 127.0.0.1 */
  int lfd;
  const char *prelude[FZ_MAX_PRELUDE];
  int nprelude;
  fz_chunk chunks[FZ_MAX_CHUNKS];
  size_t nchunks, next;
  int given;    /* canned answers given in this run */
  uint64_t gen; /* bumped per run: connections of older runs are closed */
  int fd[FZ_MAX_CONNS];
  uint64_t fd_gen[FZ_MAX_CONNS];
  int last; /* the connection last answered, -1 when none */
} S = {.mu = PTHREAD_MUTEX_INITIALIZER, .lfd = -1};

static void fz_write_all(int fd, const void *p, size_t len) {
  const char *b = p;
  while (len > 0) {
    ssize_t w = send(fd, b, len, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd pf = {fd, POLLOUT, 0};
      if (poll(&pf, 1, 100) <= 0) return; /* the client stopped reading: give up */
      continue;
    }
    if (w <= 0) return;
    b += w;
    len -= (size_t)w;
  }
}

static void fz_drop(int i) {
  close(S.fd[i]);
  S.fd[i] = -1;
  if (S.last == i) S.last = -1;
}

/* Answers connection i (called with the lock held). */
static void fz_answer(int i) {
  if (S.given < S.nprelude) {
    const char *p = S.prelude[S.given++];
    fz_write_all(S.fd[i], p, strlen(p));
  } else if (S.next < S.nchunks) {
    fz_chunk c = S.chunks[S.next++];
    fz_write_all(S.fd[i], c.p, c.len);
  } else {
    fz_drop(i);
    return;
  }
  S.last = i;
}

static void *fz_server_main(void *arg) {
  (void)arg;
  for (;;) {
    struct pollfd pf[FZ_MAX_CONNS + 1];
    int idx[FZ_MAX_CONNS + 1];
    int n = 0;
    pthread_mutex_lock(&S.mu);
    for (int i = 0; i < FZ_MAX_CONNS; i++) {
      if (S.fd[i] >= 0 && S.fd_gen[i] != S.gen) fz_drop(i);
      if (S.fd[i] >= 0) {
        pf[n] = (struct pollfd){S.fd[i], POLLIN, 0};
        idx[n++] = i;
      }
    }
    pf[n] = (struct pollfd){S.lfd, POLLIN, 0};
    idx[n++] = -1;
    pthread_mutex_unlock(&S.mu);

    int r = poll(pf, (nfds_t)n, FZ_IDLE_MS);
    pthread_mutex_lock(&S.mu);
    if (r == 0) { /* idle: continue a half reply, or hang up when nothing is left */
      if (S.last >= 0 && S.fd[S.last] >= 0 && S.fd_gen[S.last] == S.gen) {
        if (S.next < S.nchunks)
          fz_answer(S.last);
        else
          fz_drop(S.last);
      }
    }
    for (int k = 0; r > 0 && k < n; k++) {
      if (!pf[k].revents) continue;
      if (idx[k] < 0) {
        int fd = accept(S.lfd, NULL, NULL);
        if (fd < 0) continue;
        int slot = -1;
        for (int i = 0; i < FZ_MAX_CONNS && slot < 0; i++)
          if (S.fd[i] < 0) slot = i;
        if (slot < 0 || (S.given >= S.nprelude && S.next >= S.nchunks)) {
          close(fd);
          continue;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        S.fd[slot] = fd;
        S.fd_gen[slot] = S.gen;
        continue;
      }
      int i = idx[k];
      if (S.fd[i] != pf[k].fd) continue; /* dropped meanwhile */
      char buf[65536];
      ssize_t got = recv(S.fd[i], buf, sizeof buf, 0);
      if (got <= 0) {
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        fz_drop(i);
        continue;
      }
      while (recv(S.fd[i], buf, sizeof buf, 0) > 0) { /* drain a pipeline sent in pieces */
      }
      fz_answer(i);
    }
    pthread_mutex_unlock(&S.mu);
  }
  return NULL;
}

static void fz_server_cleanup(void) {
  if (S.path[0]) unlink(S.path);
}

/* Starts the server once per process: on 127.0.0.1 when tcp, else on a Unix socket; the
 * first commands of every run are answered with prelude[0..n). */
static void fz_server_start(const char *name, bool tcp, const char *const *prelude, int n) {
  S.name = name;
  S.tcp = tcp;
  for (int i = 0; i < n && i < FZ_MAX_PRELUDE; i++)
    S.prelude[S.nprelude++] = prelude[i];
  for (int i = 0; i < FZ_MAX_CONNS; i++)
    S.fd[i] = -1;
  S.last = -1;
  int ok;
  if (tcp) {
    S.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    ok = S.lfd >= 0 && bind(S.lfd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
         listen(S.lfd, 64) == 0 && getsockname(S.lfd, (struct sockaddr *)&sa, &sl) == 0;
    S.port = ntohs(sa.sin_port);
  } else {
    snprintf(S.path, sizeof S.path, "/tmp/rcache-fuzz-%d.sock", (int)getpid());
    unlink(S.path);
    S.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", S.path);
    ok =
        S.lfd >= 0 && bind(S.lfd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(S.lfd, 64) == 0;
    if (ok) atexit(fz_server_cleanup);
  }
  if (!ok) {
    fprintf(stderr, "%s: listen: %s\n", name, strerror(errno));
    abort();
  }
  pthread_t t;
  if (pthread_create(&t, NULL, fz_server_main, NULL) != 0) abort();
  pthread_detach(t);
}

static const uint8_t *fz_find_sep(const uint8_t *p, size_t len) {
  for (size_t i = 0; i + 4 <= len; i++)
    if (memcmp(p + i, FZ_SEP, 4) == 0) return p + i;
  return NULL;
}

/* Loads a run's chunks: they point into the fuzzer's input, valid until fz_server_unload(). */
static void fz_server_load(const uint8_t *p, size_t len) {
  pthread_mutex_lock(&S.mu);
  S.gen++;
  S.nchunks = 0;
  S.next = 0;
  S.given = 0;
  S.last = -1;
  while (S.nchunks < FZ_MAX_CHUNKS) {
    const uint8_t *e = fz_find_sep(p, len);
    size_t l = e ? (size_t)(e - p) : len;
    S.chunks[S.nchunks++] = (fz_chunk){p, l};
    if (!e) break;
    p += l + 4;
    len -= l + 4;
  }
  pthread_mutex_unlock(&S.mu);
}

/* Ends a run: no chunk may be sent once the input is gone; leftover connections close. */
static void fz_server_unload(void) {
  pthread_mutex_lock(&S.mu);
  S.gen++;
  S.nchunks = S.next = 0;
  S.given = S.nprelude;
  S.last = -1;
  pthread_mutex_unlock(&S.mu);
}

/* ---- no traffic beyond the fake server ------------------------------------------------------- */

#ifdef FZ_CAPTURE_TCP
/* Every TCP connect of this process goes to the fake server (the sockets are AF_INET: see
 * getaddrinfo below). Unix sockets are left alone. */
int connect(int fd, const struct sockaddr *sa, socklen_t len) {
  if (sa && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)) {
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S.port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return (int)syscall(SYS_connect, fd, (const struct sockaddr *)&to, (socklen_t)sizeof to);
  }
  return (int)syscall(SYS_connect, fd, sa, len);
}

/* Every name or address is 127.0.0.1 (no DNS query ever leaves). One block, as glibc's own
 * results are, so glibc's freeaddrinfo() frees it. */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
  (void)node;
  (void)hints;
  struct block {
    struct addrinfo ai;
    struct sockaddr_in sin;
  } *b = calloc(1, sizeof *b);
  if (!b) return EAI_MEMORY;
  b->sin.sin_family = AF_INET;
  b->sin.sin_port = htons((uint16_t)(service ? atoi(service) : 0));
  b->sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  b->ai.ai_family = AF_INET;
  b->ai.ai_socktype = SOCK_STREAM;
  b->ai.ai_protocol = IPPROTO_TCP;
  b->ai.ai_addrlen = sizeof b->sin;
  b->ai.ai_addr = (struct sockaddr *)&b->sin;
  *res = &b->ai;
  return 0;
}
#endif

/* ---- checks ---------------------------------------------------------------------------------- */

static rcache *g_c;

static int g_verbose = -1; /* RCACHE_FUZZ_VERBOSE=1: print each operation's status */

static void check(const char *op, rcache_status s) {
  if (g_verbose < 0) g_verbose = getenv("RCACHE_FUZZ_VERBOSE") != NULL;
  if (g_verbose) fprintf(stderr, "%-16s %3d %s\n", op, (int)s, rcache_errmsg(g_c));
  if (s < RCACHE_EIO || s > RCACHE_MISS) {
    fprintf(stderr, "%s: %s returned %d, not an rcache_status\n", S.name, op, (int)s);
    abort();
  }
  const char *m = rcache_errmsg(g_c);
  if (!m || strlen(m) > 4096) {
    fprintf(stderr, "%s: %s left a bad rcache_errmsg()\n", S.name, op);
    abort();
  }
}

static void check_value(const char *op, rcache_status s, const rcache_value *v) {
  check(op, s);
  if (s != RCACHE_OK && (v->data || v->len)) {
    fprintf(stderr, "%s: %s returned %d with a value\n", S.name, op, (int)s);
    abort();
  }
  if (s == RCACHE_OK && v->data && v->data[v->len] != '\0') {
    fprintf(stderr, "%s: %s returned a value without its NUL\n", S.name, op);
    abort();
  }
}

static rcache_status loader(void *ud, rcache_value *out) {
  (void)ud;
  out->data = rcache__memdup0("loaded", 6);
  out->len = out->data ? 6 : 0;
  return out->data ? RCACHE_OK : RCACHE_ENOMEM;
}

static json_t *json_loader(void *ud) {
  (void)ud;
  return json_integer(7);
}

static bool visit(const char *key, size_t len, void *ud) {
  (void)key;
  size_t *n = ud;
  (*n) += len;
  return *n < 100000;
}

static void run_ops(rcache *c) {
  rcache_value v = {0};
  rcache_status s;
  int64_t i = 0;
  bool b = false;
  uint64_t n = 0;

  s = rcache_get(c, "k", &v);
  check_value("get", s, &v);
  rcache_value_free(&v);
  check("set", rcache_set(c, "k", "value", 5, 60));
  check("set no ttl", rcache_set(c, "k2", "", 0, 0));
  check("delete", rcache_delete(c, "k"));
  check("delete_prefix", rcache_delete_prefix(c, "user:1:", &n));
  check("delete_pattern", rcache_delete_pattern(c, "w*[0-9]", &n));
  s = rcache_incr(c, "n", 5, &i);
  check("incr", s);
  if (s != RCACHE_OK && i != 0) abort();
  check("decr", rcache_decr(c, "n", 2, &i));
  check("incr_expire", rcache_incr_expire(c, "n", 1, 30, &i));
  s = rcache_rate_limit(c, "rl", 10, 60, &b, &i);
  check("rate_limit", s);
  s = rcache_exists(c, "k", &b);
  check("exists", s);
  if (s != RCACHE_OK && b) abort();
  s = rcache_ttl(c, "k", &i);
  check("ttl", s);
  if (s != RCACHE_OK && i != -2) abort();

  const char *keys[3] = {"a", "b", "c"};
  rcache_value vals[3];
  rcache_status st[3];
  s = rcache_get_many(c, keys, 3, vals, st);
  check("get_many", s);
  for (int k = 0; k < 3; k++) {
    check_value("get_many[i]", st[k], &vals[k]);
    rcache_value_free(&vals[k]);
  }
  rcache_value in[2] = {{"x", 1}, {"yy", 2}};
  check("set_many", rcache_set_many(c, keys, in, 2, 10));

  rcache_health h;
  s = rcache_health_check(c, &h);
  check("health_check", s);
  if (!memchr(h.error, 0, sizeof h.error) || !memchr(h.server_version, 0, sizeof h.server_version))
    abort();
  size_t seen = 0;
  check("scan", rcache_scan(c, "*", 50, visit, &seen));

  s = rcache_get_or_set(c, "gos", 60, loader, NULL, &v);
  check_value("get_or_set", s, &v);
  rcache_value_free(&v);

  char *str = NULL;
  s = rcache_get_str(c, "s", &str);
  check("get_str", s);
  free(str);
  json_t *j = NULL;
  s = rcache_get_or_set_json(c, "j", 60, json_loader, NULL, &j);
  check("get_or_set_json", s);
  json_decref(j);
  check("invalidate_user", rcache_invalidate_user(c, "12", &n));
  check("flush", rcache_flush(c));

  rcache_stats stats;
  rcache_get_stats(c, &stats);
  char text[8192];
  rcache_stats_prometheus(&stats, text, sizeof text);
  rcache_stats_json(&stats, text, sizeof text);
}

static void quiet(int level, const char *msg, void *ud) {
  (void)level;
  (void)msg;
  (void)ud;
}

/* The options every run starts from: short deadlines, a breaker that never opens (every
 * operation reaches the server), a prober that sleeps through a run, no CLIENT SETNAME (so
 * the first command is the PING the prelude answers), logs swallowed. */
static void fz_options(rcache_options *o) {
  rcache_options_init(o);
  o->connect_timeout_ms = 50;
  o->command_timeout_ms = 30;
  o->pool_size = 2;
  o->client_name = "";
  o->breaker_failures = 1000000;
  o->reconnect_min_ms = o->reconnect_max_ms = 600000;
  o->log_fn = quiet;
  o->log_level = RCACHE_LOG_DEBUG;
}

/* One run: opens rcache on url with o (which must succeed: the server is down only by the
 * input's choice, and rcache_open never fails for that), runs every operation, closes, and
 * ends the run's chunks. */
static void fz_run(const rcache_options *o, const char *url) {
  rcache_status s = rcache_open(&g_c, url, o);
  if (s != RCACHE_OK) {
    fprintf(stderr, "%s: rcache_open failed: %d %s\n", S.name, (int)s, rcache_errmsg(NULL));
    abort();
  }
  if (g_verbose > 0) fprintf(stderr, "mode %s\n", rcache_mode(g_c));
  run_ops(g_c);
  rcache_close(g_c);
  g_c = NULL;
  fz_server_unload();
}

#endif
