/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The documented race of server-assisted client-side caching, for real (issue 6, item 3):
 * an invalidation that arrives before the reply it invalidates must win.
 *
 * A small proxy on 127.0.0.1 sits between the near-cache handle and the server. While told
 * to, it holds back the server's reply to a GET on the data connections (those whose
 * set-up asked CLIENT TRACKING ... REDIRECT) until it is released, and passes the
 * listener's messages at once. A GET is sent and processed (its reply is held back: the
 * proxy says so); meanwhile another client changes the key, and the test waits until the
 * invalidation has reached the listener; only then is the reply let through. The old value
 * the GET returns is right for that call, but must not stay in the near cache: the next read
 * must give the new value. A near cache that filled without marking the key "being
 * fetched" fails here. Each step waits for the state it needs (bounded by AWAIT_MS), so
 * the order of events is the same however slow the machine is.
 */
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "await.h"
#include "rcache/rcache.h"
#include "test.h"

#define ROUNDS 5

static int server_port, proxy_fd = -1, proxy_port;
static atomic_bool holding;  /* hold back the reply to a GET on a data connection */
static atomic_bool get_sent; /* while holding: a data connection sent a GET */
static atomic_bool held;     /* while holding: its reply reached the proxy and waits */
static atomic_int data_conns, listener_conns;

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- the proxy: two threads per connection, blocking I/O ------------------------------------- */

typedef struct pipe_pair {
  int client, server;
  atomic_bool is_data; /* its set-up asked for tracking with REDIRECT */
  atomic_int ends;     /* both threads done: free */
} pipe_pair;

static void pair_done(pipe_pair *p) {
  shutdown(p->client, SHUT_RDWR);
  shutdown(p->server, SHUT_RDWR);
  if (atomic_fetch_add(&p->ends, 1) == 1) {
    close(p->client);
    close(p->server);
    free(p);
  }
}

static bool send_all(int fd, const char *b, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    b += w;
    n -= (size_t)w;
  }
  return true;
}

static bool has(const char *b, size_t n, const char *s) {
  size_t l = strlen(s);
  for (size_t i = 0; i + l <= n; i++)
    if (memcmp(b + i, s, l) == 0) return true;
  return false;
}

static void *upstream(void *arg) { /* client → server, noticing what kind it is */
  pipe_pair *p = arg;
  char buf[16384];
  ssize_t n;
  while ((n = recv(p->client, buf, sizeof buf, 0)) > 0) {
    if (!atomic_load(&p->is_data) && has(buf, (size_t)n, "REDIRECT")) {
      atomic_store(&p->is_data, true);
      atomic_fetch_add(&data_conns, 1);
    }
    if (has(buf, (size_t)n, "SUBSCRIBE")) atomic_fetch_add(&listener_conns, 1);
    if (atomic_load(&p->is_data) && atomic_load(&holding) && has(buf, (size_t)n, "GET"))
      atomic_store(&get_sent, true);
    if (!send_all(p->server, buf, (size_t)n)) break;
  }
  pair_done(p);
  return NULL;
}

static void *downstream(void *arg) { /* server → client, a GET's reply held back */
  pipe_pair *p = arg;
  char buf[16384];
  ssize_t n;
  while ((n = recv(p->server, buf, sizeof buf, 0)) > 0) {
    /* a connection's set-up replies pass (only a GET is held), and a reply is held at most
     * AWAIT_MS: a test that failed does not hang */
    if (atomic_load(&p->is_data) && atomic_load(&holding) && atomic_load(&get_sent)) {
      atomic_store(&held, true);
      for (int64_t t0 = await_now_ms(); atomic_load(&holding) && await_now_ms() - t0 < AWAIT_MS;)
        sleep_ms(1);
    }
    if (!send_all(p->client, buf, (size_t)n)) break;
  }
  pair_done(p);
  return NULL;
}

static void *acceptor(void *arg) {
  (void)arg;
  for (;;) {
    int c = accept(proxy_fd, NULL, NULL);
    if (c < 0) return NULL; /* closed at the end */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)server_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
      close(c);
      close(s);
      continue;
    }
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pipe_pair *p = calloc(1, sizeof *p);
    p->client = c;
    p->server = s;
    pthread_t t1, t2;
    pthread_create(&t1, NULL, upstream, p);
    pthread_create(&t2, NULL, downstream, p);
    pthread_detach(t1);
    pthread_detach(t2);
  }
}

static void proxy_start(void) {
  proxy_fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  srand((unsigned)getpid());
  for (int i = 0; i < 200; i++) { /* a free port in 20000-29999 */
    proxy_port = 20000 + rand() % 10000;
    a.sin_port = htons((uint16_t)proxy_port);
    if (bind(proxy_fd, (struct sockaddr *)&a, sizeof a) == 0) break;
    proxy_port = 0;
  }
  if (!proxy_port || listen(proxy_fd, 64) != 0) {
    fprintf(stderr, "proxy: no port\n");
    exit(1);
  }
  pthread_t t;
  pthread_create(&t, NULL, acceptor, NULL);
  pthread_detach(t);
}

/* ---- the race ---------------------------------------------------------------------------------
 */

static rcache *c;

/* A command straight to the server (not through the proxy), in db 9. */
static void raw_cmd(int argc, const char **argv) {
  redisContext *r = redisConnect("127.0.0.1", server_port);
  CHECK(r && !r->err);
  redisReply *rep = redisCommand(r, "SELECT 9");
  if (rep) freeReplyObject(rep);
  rep = redisCommandArgv(r, argc, argv, NULL);
  CHECK(rep && rep->type != REDIS_REPLY_ERROR);
  if (rep) freeReplyObject(rep);
  redisFree(r);
}

static void raw_set(const char *key, const char *v) {
  char k[64];
  snprintf(k, sizeof k, "nt:%s", key);
  const char *argv[] = {"SET", k, v};
  raw_cmd(3, argv);
}

static void raw_del(const char *key) {
  char k[64];
  snprintf(k, sizeof k, "nt:%s", key);
  const char *argv[] = {"DEL", k};
  raw_cmd(2, argv);
}

static char got[64];
static void *slow_get(void *arg) {
  const char *key = arg;
  rcache_value v = {NULL, 0};
  rcache_status s = rcache_get(c, key, &v);
  snprintf(got, sizeof got, "%s", s == RCACHE_OK ? v.data : rcache_strerror(s));
  rcache_value_free(&v);
  return NULL;
}

static bool reads(const char *key, const char *want) {
  rcache_value v = {NULL, 0};
  rcache_status s = rcache_get(c, key, &v);
  bool ok = s == RCACHE_OK && strcmp(v.data, want) == 0;
  rcache_value_free(&v);
  return ok;
}

static rcache_stats stats(void) {
  rcache_stats s;
  rcache_get_stats(c, &s);
  return s;
}

/* Polls flag for at most AWAIT_MS. */
static bool await_flag(atomic_bool *flag) {
  for (int64_t t0 = await_now_ms(); await_now_ms() - t0 < AWAIT_MS; sleep_ms(1))
    if (atomic_load(flag)) return true;
  return false;
}

/* Polls until the listener has received more than `inv` invalidations, at most AWAIT_MS. */
static bool await_invalidation(uint64_t inv) {
  for (int64_t t0 = await_now_ms(); await_now_ms() - t0 < AWAIT_MS; sleep_ms(1))
    if (stats().near_invalidations > inv) return true;
  return false;
}

static void race_once(int round) {
  char key[16], v1[32], v2[32];
  /* a key this handle never read: the GET below is a near miss (sent to Redis), and the
   * only read Redis tracks for it, so the one invalidation to come is that GET's */
  snprintf(key, sizeof key, "r%d", round);
  snprintf(v1, sizeof v1, "old-%d", round);
  snprintf(v2, sizeof v2, "new-%d", round);
  raw_set(key, v1);
  atomic_store(&get_sent, false);
  atomic_store(&held, false);
  atomic_store(&holding, true);
  pthread_t t;
  pthread_create(&t, NULL, slow_get, key);
  /* the server has processed the GET (tracking the key for it): its reply is held back */
  bool was_held = await_flag(&held);
  CHECK_MSG(was_held, "round %d: no reply to the GET reached the proxy within %d ms", round,
            AWAIT_MS);
  uint64_t inv = stats().near_invalidations;
  raw_set(key, v2); /* its invalidation goes to the listener, which is not held back */
  bool invalidated = await_invalidation(inv);
  CHECK_MSG(invalidated, "round %d: the invalidation did not reach the listener within %d ms",
            round, AWAIT_MS);
  atomic_store(&holding, false); /* now the overtaken reply */
  pthread_join(t, NULL);
  CHECK_STR(got, v1); /* right for that call: it was read before the change */
  uint64_t hits = stats().near_hits;
  CHECK_MSG(reads(key, v2), "round %d: the near cache kept the overtaken reply", round);
  CHECK_EQ(stats().near_hits, hits); /* it went to Redis: nothing was installed */
}

int main(void) {
  server_port = atoi(test_env_url("RCACHE_TEST_PORT"));
  proxy_start();
  char url[128];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/9", proxy_port);
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = "nt:";
  o.near_cache_bytes = 1 << 20;
  /* the held-back replies are not timeouts, nor are a loaded machine's slow ones (a listener
   * whose PING times out is replaced, and what it tracked is lost) */
  o.connect_timeout_ms = AWAIT_MS;
  o.command_timeout_ms = AWAIT_MS;
  CHECK(rcache_open(&c, url, &o) == RCACHE_OK);
  if (!c) return test_report("test_near_race");
  /* the near cache serves once its listener is subscribed, which rcache_open does not wait
   * for (the listener connects in its own thread). No key this handle has read is written
   * again until the end: the rounds count invalidations. */
  raw_set("ready", "ready");
  CHECK_MSG(await_near(c, "ready", AWAIT_MS), "the near cache did not serve within %d ms",
            AWAIT_MS);
  for (int round = 0; round < ROUNDS; round++)
    race_once(round);
  CHECK(atomic_load(&data_conns) >= 1);     /* the proxy saw tracking data connections */
  CHECK(atomic_load(&listener_conns) >= 1); /* and the listener */
  rcache_close(c);
  close(proxy_fd);
  raw_del("ready");
  for (int round = 0; round < ROUNDS; round++) {
    char key[16];
    snprintf(key, sizeof key, "r%d", round);
    raw_del(key);
  }
  return test_report("test_near_race");
}
