/*
 * Fuzzes the Sentinel backend with hostile sentinels and masters: arbitrary bytes as the
 * answers to SENTINEL get-master-addr-by-name, ROLE, the +switch-master subscription and
 * every operation. Checked as in fuzz_reply.c: valid statuses, zeroed outputs, no crash,
 * leak, undefined behaviour, hang or unbounded allocation.
 *
 * The fake server of fuzz_cluster.c on 127.0.0.1 plays every sentinel and every master;
 * the first command of a run (the first sentinel query) is answered with a master address,
 * the rest with the input's chunks ("\n--\n" separated). As there, connect() and
 * getaddrinfo() are replaced in this executable, so whatever address a fuzzed sentinel
 * names, nothing leaves the loopback fake server.
 *
 * Byte 0 chooses options (max_value_bytes, key prefix, credentials in the URL, stale
 * window, lease, rate_limit_fail_closed).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "rcache/json.h"
#include "rcache/keys.h"

#define SEP "\n--\n"
#define MAX_CHUNKS 64
#define MAX_CONNS 16
#define IDLE_MS 3

/* ---- the fake server -------------------------------------------------------------------- */

typedef struct chunk {
  const uint8_t *p;
  size_t len;
} chunk;

static struct {
  pthread_mutex_t mu;
  int port; /* the TCP listener's port on 127.0.0.1 */
  int lfd;
  chunk chunks[MAX_CHUNKS];
  size_t nchunks, next;
  int prelude;       /* canned answers given in this run (see PRELUDE) */
  uint64_t gen;      /* bumped per run: connections of older runs are closed */
  int fd[MAX_CONNS];
  uint64_t fd_gen[MAX_CONNS];
  int last; /* the connection last answered, -1 when none */
} S = {.mu = PTHREAD_MUTEX_INITIALIZER, .lfd = -1};

static void write_all(int fd, const void *p, size_t len) {
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

static void drop(int i) {
  close(S.fd[i]);
  S.fd[i] = -1;
  if (S.last == i) S.last = -1;
}

/* The first answer of every run: the master's address, to the first sentinel query. */
static const char *const PRELUDE[] = {"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n"};
#define NPRELUDE ((int)(sizeof PRELUDE / sizeof PRELUDE[0]))

/* Answers connection i (called with the lock held). */
static void answer(int i) {
  if (S.prelude < NPRELUDE) {
    const char *p = PRELUDE[S.prelude++];
    write_all(S.fd[i], p, strlen(p));
  } else if (S.next < S.nchunks) {
    chunk c = S.chunks[S.next++];
    write_all(S.fd[i], c.p, c.len);
  } else {
    drop(i);
    return;
  }
  S.last = i;
}

static void *server_main(void *arg) {
  (void)arg;
  for (;;) {
    struct pollfd pf[MAX_CONNS + 1];
    int idx[MAX_CONNS + 1];
    int n = 0;
    pthread_mutex_lock(&S.mu);
    for (int i = 0; i < MAX_CONNS; i++) {
      if (S.fd[i] >= 0 && S.fd_gen[i] != S.gen) drop(i);
      if (S.fd[i] >= 0) {
        pf[n] = (struct pollfd){S.fd[i], POLLIN, 0};
        idx[n++] = i;
      }
    }
    pf[n] = (struct pollfd){S.lfd, POLLIN, 0};
    idx[n++] = -1;
    pthread_mutex_unlock(&S.mu);

    int r = poll(pf, (nfds_t)n, IDLE_MS);
    pthread_mutex_lock(&S.mu);
    if (r == 0) { /* idle: continue a half reply, or hang up when nothing is left */
      if (S.last >= 0 && S.fd[S.last] >= 0 && S.fd_gen[S.last] == S.gen) {
        if (S.next < S.nchunks) answer(S.last);
        else drop(S.last);
      }
    }
    for (int k = 0; r > 0 && k < n; k++) {
      if (!pf[k].revents) continue;
      if (idx[k] < 0) {
        int fd = accept(S.lfd, NULL, NULL);
        if (fd < 0) continue;
        int slot = -1;
        for (int i = 0; i < MAX_CONNS && slot < 0; i++)
          if (S.fd[i] < 0) slot = i;
        if (slot < 0 || (S.prelude >= NPRELUDE && S.next >= S.nchunks)) {
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
        drop(i);
        continue;
      }
      while (recv(S.fd[i], buf, sizeof buf, 0) > 0) { /* drain a pipeline sent in pieces */
      }
      answer(i);
    }
    pthread_mutex_unlock(&S.mu);
  }
  return NULL;
}

static void server_start(void) {
  for (int i = 0; i < MAX_CONNS; i++) S.fd[i] = -1;
  S.last = -1;
  S.lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  if (S.lfd < 0 || bind(S.lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(S.lfd, 64) != 0 ||
      getsockname(S.lfd, (struct sockaddr *)&sa, &sl) != 0) {
    perror("fuzz_sentinel: listen");
    abort();
  }
  S.port = ntohs(sa.sin_port);
  pthread_t t;
  if (pthread_create(&t, NULL, server_main, NULL) != 0) abort();
  pthread_detach(t);
}

/* ---- no traffic beyond the fake server ------------------------------------------------------- */

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

static const uint8_t *find_sep(const uint8_t *p, size_t len) {
  for (size_t i = 0; i + 4 <= len; i++)
    if (memcmp(p + i, SEP, 4) == 0) return p + i;
  return NULL;
}

/* Loads a run's chunks: they point into the fuzzer's input, valid until server_unload(). */
static void server_load(const uint8_t *p, size_t len) {
  pthread_mutex_lock(&S.mu);
  S.gen++;
  S.nchunks = 0;
  S.next = 0;
  S.prelude = 0;
  S.last = -1;
  while (S.nchunks < MAX_CHUNKS) {
    const uint8_t *e = find_sep(p, len);
    size_t l = e ? (size_t)(e - p) : len;
    S.chunks[S.nchunks++] = (chunk){p, l};
    if (!e) break;
    p += l + 4;
    len -= l + 4;
  }
  pthread_mutex_unlock(&S.mu);
}

/* Ends a run: no chunk may be sent once the input is gone; leftover connections close. */
static void server_unload(void) {
  pthread_mutex_lock(&S.mu);
  S.gen++;
  S.nchunks = S.next = 0;
  S.prelude = NPRELUDE;
  S.last = -1;
  pthread_mutex_unlock(&S.mu);
}

/* ---- checks ------------------------------------------------------------------------------ */

static rcache *g_c;

static int g_verbose = -1; /* RCACHE_FUZZ_VERBOSE=1: print each operation's status */

static void check(const char *op, rcache_status s) {
  if (g_verbose < 0) g_verbose = getenv("RCACHE_FUZZ_VERBOSE") != NULL;
  if (g_verbose) fprintf(stderr, "%-16s %3d %s\n", op, (int)s, rcache_errmsg(g_c));
  if (s < RCACHE_EIO || s > RCACHE_MISS) {
    fprintf(stderr, "fuzz_sentinel: %s returned %d, not an rcache_status\n", op, (int)s);
    abort();
  }
  const char *m = rcache_errmsg(g_c);
  if (!m || strlen(m) > 4096) {
    fprintf(stderr, "fuzz_sentinel: %s left a bad rcache_errmsg()\n", op);
    abort();
  }
}

static void check_value(const char *op, rcache_status s, const rcache_value *v) {
  check(op, s);
  if (s != RCACHE_OK && (v->data || v->len)) {
    fprintf(stderr, "fuzz_sentinel: %s returned %d with a value\n", op, (int)s);
    abort();
  }
  if (s == RCACHE_OK && v->data && v->data[v->len] != '\0') {
    fprintf(stderr, "fuzz_sentinel: %s returned a value without its NUL\n", op);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 256 * 1024) return 0;
  if (S.lfd < 0) server_start();
  uint8_t opt = data[0];
  server_load(data + 1, size - 1);

  rcache_options o;
  rcache_options_init(&o);
  o.connect_timeout_ms = 50;
  o.command_timeout_ms = 30;
  o.pool_size = 2;
  o.client_name = "";             /* no CLIENT SETNAME: the first command is the PING */
  o.breaker_failures = 1000000;   /* never open: every operation reaches the server */
  o.reconnect_min_ms = o.reconnect_max_ms = 600000; /* the prober sleeps through a run */
  o.max_value_bytes = (size_t)4096 << (opt & 3);
  if (opt & 0x04) o.key_prefix = "app:";
  if (opt & 0x10) o.stale_window_s = 30;
  if (opt & 0x20) {
    o.lease = true;
    o.lease_ms = 20;
  }
  if (opt & 0x40) o.rate_limit_fail_closed = true;
  if (opt & 0x80) o.near_cache_bytes = 1 << 20; /* not supported with Sentinel: a warning */
  o.log_fn = quiet;
  o.log_level = RCACHE_LOG_DEBUG;

  char url[160];
  snprintf(url, sizeof url, "redis+sentinel://%s127.0.0.1:%d,localhost:%d/mymaster",
           opt & 0x08 ? "app:pw@" : "", S.port, S.port);
  rcache_status s = rcache_open(&g_c, url, &o);
  if (s != RCACHE_OK) {
    fprintf(stderr, "fuzz_sentinel: rcache_open failed: %d %s\n", (int)s, rcache_errmsg(NULL));
    abort();
  }
  if (g_verbose > 0) fprintf(stderr, "mode %s\n", rcache_mode(g_c));
  run_ops(g_c);
  rcache_close(g_c);
  g_c = NULL;
  server_unload();
  return 0;
}
