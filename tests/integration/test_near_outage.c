/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The near cache when Redis goes away (issue 6, item 4), against a redis-server this test
 * starts itself on 127.0.0.1 (a free port in 20000-29999, killed by PID on exit):
 *  - a server that stops answering (SIGSTOP): the listener's PING gets no reply within
 *    command_timeout_ms, the near cache is flushed and serves nothing, with no call made;
 *  - a server that dies: flushed at once, reads answer RCACHE_EUNAVAILABLE (never a near
 *    value); after a restart on the same port the near cache serves again, fresh values.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rcache/rcache.h"
#include "test.h"

static pid_t srv = -1;
static int srv_port;
static char srv_dir[64];

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void srv_kill(void) {
  if (srv > 0) {
    kill(srv, SIGKILL);
    kill(srv, SIGCONT);
    waitpid(srv, NULL, 0);
  }
  srv = -1;
}

static void on_signal(int sig) {
  srv_kill();
  signal(sig, SIG_DFL);
  raise(sig);
}

static bool port_free(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

static redisContext *raw(void) {
  struct timeval tv = {1, 0};
  redisContext *r = redisConnectWithTimeout("127.0.0.1", srv_port, tv);
  if (r && !r->err) return r;
  if (r) redisFree(r);
  return NULL;
}

/* Starts redis-server on srv_port (no persistence) and waits until it answers. */
static void srv_start(void) {
  char port[16];
  snprintf(port, sizeof port, "%d", srv_port);
  srv = fork();
  if (srv == 0) {
    int devnull = open("/dev/null", 1);
    if (devnull >= 0) dup2(devnull, 1);
    execlp("redis-server", "redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "",
           "--appendonly", "no", "--dir", srv_dir, (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 200; i++) {
    redisContext *r = raw();
    if (r) {
      redisReply *rep = redisCommand(r, "PING");
      bool ok = rep && rep->type == REDIS_REPLY_STATUS;
      if (rep) freeReplyObject(rep);
      redisFree(r);
      if (ok) return;
    }
    sleep_ms(25);
  }
  fprintf(stderr, "redis-server on port %d did not start\n", srv_port);
  srv_kill();
  exit(1);
}

static void raw_set(const char *k, const char *v) {
  redisContext *r = raw();
  CHECK(r != NULL);
  if (!r) return;
  redisReply *rep = redisCommand(r, "SET %s %s", k, v);
  CHECK(rep && rep->type == REDIS_REPLY_STATUS);
  if (rep) freeReplyObject(rep);
  redisFree(r);
}

static rcache_stats stats(rcache *c) {
  rcache_stats s;
  rcache_get_stats(c, &s);
  return s;
}

/* Reads until a read is a near hit giving want; false after ~5 s. */
static bool near_hit(rcache *c, const char *key, const char *want) {
  for (int i = 0; i < 1000; i++) {
    uint64_t h = stats(c).near_hits;
    rcache_value v = {NULL, 0};
    bool ok = rcache_get(c, key, &v) == RCACHE_OK && strcmp(v.data, want) == 0;
    rcache_value_free(&v);
    if (ok && stats(c).near_hits > h) return true;
    sleep_ms(5);
  }
  return false;
}

static rcache *open_near(void) {
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", srv_port);
  rcache_options o;
  rcache_options_init(&o);
  o.near_cache_bytes = 1 << 20;
  o.command_timeout_ms = 200;
  o.connect_timeout_ms = 200;
  o.reconnect_min_ms = 10;
  o.reconnect_max_ms = 100;
  o.log_level = RCACHE_LOG_ERROR;
  rcache *c = NULL;
  CHECK(rcache_open(&c, url, &o) == RCACHE_OK);
  if (!c) exit(1);
  return c;
}

static void test_stopped(void) {
  rcache *c = open_near();
  raw_set("k", "1");
  CHECK(near_hit(c, "k", "1"));
  uint64_t fl = stats(c).near_flushes;
  kill(srv, SIGSTOP);
  /* no call on the handle: only the listener's PING (every 500 ms, 200 ms to answer) can
   * notice */
  sleep_ms(1200);
  CHECK_MSG(stats(c).near_flushes > fl, "flushes %llu -> %llu", (unsigned long long)fl,
            (unsigned long long)stats(c).near_flushes);
  rcache_value v = {NULL, 0};
  uint64_t hits = stats(c).near_hits;
  int64_t t0 = now_us();
  rcache_status s = rcache_get(c, "k", &v);
  int64_t took = now_us() - t0;
  CHECK_EQ(s, RCACHE_EUNAVAILABLE); /* not the near value */
  CHECK_EQ(stats(c).near_hits, hits);
  CHECK_MSG(took < 200000 + 300000, "get took %lld us", (long long)took);
  rcache_value_free(&v);
  kill(srv, SIGCONT);
  raw_set("k", "2");
  CHECK(near_hit(c, "k", "2")); /* back, with the value of now */
  rcache_close(c);
}

static void test_killed(void) {
  rcache *c = open_near();
  raw_set("k", "3");
  CHECK(near_hit(c, "k", "3"));
  uint64_t fl = stats(c).near_flushes;
  srv_kill();
  int64_t t0 = now_us();
  while (stats(c).near_flushes == fl && now_us() - t0 < 1000000)
    sleep_ms(1);
  CHECK(stats(c).near_flushes > fl);
  CHECK_MSG(now_us() - t0 < 100000, "flushed %lld us after the server died",
            (long long)(now_us() - t0));
  for (int i = 0; i < 20; i++) { /* while it is down: never a near value */
    rcache_value v = {NULL, 0};
    CHECK_EQ(rcache_get(c, "k", &v), RCACHE_EUNAVAILABLE);
    rcache_value_free(&v);
    sleep_ms(10);
  }
  srv_start(); /* an empty server on the same port */
  raw_set("k", "4");
  CHECK(near_hit(c, "k", "4"));
  rcache_stats s = stats(c);
  CHECK(s.available);
  rcache_close(c);
}

int main(void) {
  snprintf(srv_dir, sizeof srv_dir, "/tmp/rcache-near-outage-%d", (int)getpid());
  mkdir(srv_dir, 0700);
  srand((unsigned)getpid());
  do {
    srv_port = 20000 + rand() % 10000;
  } while (!port_free(srv_port));
  atexit(srv_kill);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGABRT, on_signal);
  srv_start();
  test_stopped();
  test_killed();
  srv_kill();
  rmdir(srv_dir);
  return test_report("test_near_outage");
}
