/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Redis Sentinel on the shared servers (scripts/servers.d/40-sentinel.sh: a master, a
 * replica, three sentinels, group "rcache-test"), without disturbing them: the master is
 * found through the sentinels (also when the first listed sentinel is dead), keys land on
 * the master (read back raw there), the /db part selects the database, an unknown group
 * name opens in fallback mode with a clear reason, a URL without a group name is refused.
 * A lying sentinel (a small fake in this process that names the replica as the master) is
 * caught by the ROLE check: alone, the handle stays in fallback mode; listed before the
 * real sentinels, they are asked next and the real master is used.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "await.h"
#include "rcache/rcache.h"
#include "redis_proc.h"
#include "test.h"

static char prefix[64];

/* The master's port as the first sentinel of the URL says. */
static int master_port(const char *url) {
  const char *p = strstr(url, "://");
  int sport = p ? atoi(strchr(p + 3, ':') + 1) : 0;
  redisReply *r = rp_cmd(sport, "SENTINEL get-master-addr-by-name rcache-test");
  int port = -1;
  if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2) port = atoi(r->element[1]->str);
  if (r) freeReplyObject(r);
  return port;
}

/* ---- a fake sentinel: answers every get-master-addr-by-name with fake_port ------------------- */

static int fake_fd = -1, fake_port, fake_answer_port;
static atomic_int fake_asked;
static atomic_bool fake_stop;

static void fake_serve(int fd) {
  redisReader *rd = redisReaderCreate();
  char buf[4096], out[256];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    redisReaderFeed(rd, buf, (size_t)n);
    void *r = NULL;
    while (redisReaderGetReply(rd, &r) == REDIS_OK && r) {
      redisReply *cmd = r;
      const char *c0 = cmd->type == REDIS_REPLY_ARRAY && cmd->elements ? cmd->element[0]->str : "";
      int len;
      if (!strcasecmp(c0, "SENTINEL")) {
        atomic_fetch_add(&fake_asked, 1);
        char port[16];
        snprintf(port, sizeof port, "%d", fake_answer_port);
        len = snprintf(out, sizeof out, "*2\r\n$9\r\n127.0.0.1\r\n$%zu\r\n%s\r\n", strlen(port),
                       port);
      } else if (!strcasecmp(c0, "SUBSCRIBE")) {
        len = snprintf(out, sizeof out, "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n");
      } else {
        len = snprintf(out, sizeof out, "+OK\r\n");
      }
      if (send(fd, out, (size_t)len, MSG_NOSIGNAL) < 0) break;
      freeReplyObject(r);
      r = NULL;
    }
  }
  redisReaderFree(rd);
  close(fd);
}

static void *fake_conn(void *arg) {
  fake_serve((int)(intptr_t)arg);
  return NULL;
}

static void *fake_main(void *arg) {
  (void)arg;
  while (!atomic_load(&fake_stop)) {
    int fd = accept(fake_fd, NULL, NULL);
    if (fd < 0) continue;
    pthread_t t;
    if (pthread_create(&t, NULL, fake_conn, (void *)(intptr_t)fd) == 0)
      pthread_detach(t);
    else
      close(fd);
  }
  return NULL;
}

static bool fake_start(void) {
  fake_fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int tries = 0; tries < 50; tries++) {
    fake_port = rp_free_port();
    a.sin_port = htons((uint16_t)fake_port);
    if (bind(fake_fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fake_fd, 16) == 0) {
      struct timeval tv = {0, 100000}; /* accept wakes up to see fake_stop */
      setsockopt(fake_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      pthread_t t;
      if (pthread_create(&t, NULL, fake_main, NULL) != 0) return false;
      pthread_detach(t);
      return true;
    }
  }
  return false;
}

/* The replica's port as the sentinels know it. */
static int replica_port(const char *url) {
  const char *p = strstr(url, "://");
  int sport = p ? atoi(strchr(p + 3, ':') + 1) : 0;
  redisReply *r = rp_cmd(sport, "SENTINEL replicas rcache-test");
  int port = -1;
  for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
    redisReply *e = r->element[i];
    for (size_t j = 0; e->type == REDIS_REPLY_ARRAY && j + 1 < e->elements; j += 2)
      if (!strcmp(e->element[j]->str, "port")) port = atoi(e->element[j + 1]->str);
  }
  if (r) freeReplyObject(r);
  return port;
}

static rcache *open_url(const char *url, rcache_status want) {
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = prefix;
  rcache *c = NULL;
  rcache_status s = rcache_open(&c, url, &o);
  CHECK_EQ(s, want);
  return c;
}

int main(void) {
  const char *url = test_env_url("RCACHE_TEST_URL_SENTINEL");
  snprintf(prefix, sizeof prefix, "tsn%d:", (int)getpid());
  int mport = master_port(url);
  CHECK(mport > 0);

  /* found through the sentinels; keys on the master */
  rcache *c = open_url(url, RCACHE_OK);
  CHECK_STR(rcache_mode(c), "sentinel");
  rcache_health h;
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_OK);
  CHECK(h.healthy);
  CHECK_STR(h.mode, "sentinel");
  CHECK_EQ(rcache_set(c, "k", "on-master", 9, 60), RCACHE_OK);
  char full[128];
  snprintf(full, sizeof full, "%sk", prefix);
  CHECK(rp_reply_has(rp_cmd(mport, "GET %s", full), "on-master"));
  CHECK_EQ(rp_role_master(mport, NULL), 1);
  rcache_close(c);

  /* the first sentinel listed is dead: the next ones answer */
  char url2[512];
  int dead = rp_free_port();
  const char *hosts = strstr(url, "://") + 3;
  snprintf(url2, sizeof url2, "redis+sentinel://127.0.0.1:%d,%s", dead, hosts);
  c = open_url(url2, RCACHE_OK);
  rcache_value v = {NULL, 0};
  CHECK_EQ(rcache_get(c, "k", &v), RCACHE_OK);
  CHECK(v.len == 9 && memcmp(v.data, "on-master", 9) == 0);
  rcache_value_free(&v);
  CHECK_EQ(rcache_delete(c, "k"), RCACHE_OK);
  rcache_close(c);

  /* /db: the database on the master */
  snprintf(url2, sizeof url2, "%s/5", url);
  c = open_url(url2, RCACHE_OK);
  CHECK_EQ(rcache_set(c, "in-db5", "5", 1, 60), RCACHE_OK);
  redisContext *rc = redisConnect("127.0.0.1", mport);
  CHECK(rc && !rc->err);
  if (rc && !rc->err) {
    snprintf(full, sizeof full, "%sin-db5", prefix);
    redisReply *r = redisCommand(rc, "GET %s", full);
    CHECK(r && r->type == REDIS_REPLY_NIL); /* not in db 0 */
    if (r) freeReplyObject(r);
    r = redisCommand(rc, "SELECT 5");
    if (r) freeReplyObject(r);
    r = redisCommand(rc, "GET %s", full);
    CHECK(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "5") == 0);
    if (r) freeReplyObject(r);
  }
  if (rc) redisFree(rc);
  CHECK_EQ(rcache_flush(c), RCACHE_OK);
  rcache_close(c);

  /* an unknown group: open works (fallback), calls answer without the cache, and the
   * health check says why */
  char url3[512];
  snprintf(url3, sizeof url3, "%.*s/no-such-group", (int)(strrchr(url, '/') - url), url);
  c = open_url(url3, RCACHE_OK);
  CHECK_EQ(rcache_get(c, "k", &v), RCACHE_EUNAVAILABLE);
  CHECK(rcache_health_check(c, &h) != RCACHE_OK);
  CHECK(!h.healthy);
  CHECK_MSG(strstr(h.error, "no-such-group") != NULL, "error: %s", h.error);
  rcache_close(c);

  /* a sentinel that names the replica: ROLE says "slave", the handle does not use it */
  int rport = replica_port(url);
  CHECK(rport > 0);
  fake_answer_port = rport;
  CHECK(fake_start());
  /* a deadline that lets the answers come first on a loaded machine (all come at once) */
  snprintf(url3, sizeof url3, "redis+sentinel://127.0.0.1:%d/rcache-test?connect_timeout_ms=%d",
           fake_port, AWAIT_MS);
  c = open_url(url3, RCACHE_OK);
  CHECK_EQ(rcache_set(c, "k", "x", 1, 60), RCACHE_EUNAVAILABLE);
  CHECK(rcache_health_check(c, &h) != RCACHE_OK);
  CHECK(atomic_load(&fake_asked) > 0); /* by the first contact, which the health check waited for */
  CHECK_MSG(strstr(h.error, "not the master") != NULL, "error: %s", h.error);
  rcache_close(c);
  /* listed first, before the real ones: they are asked next, and the master is used */
  snprintf(url3, sizeof url3, "redis+sentinel://127.0.0.1:%d,%s", fake_port, hosts);
  c = open_url(url3, RCACHE_OK);
  CHECK_EQ(rcache_set(c, "k2", "real", 4, 60), RCACHE_OK);
  snprintf(full, sizeof full, "%sk2", prefix);
  CHECK(rp_reply_has(rp_cmd(mport, "GET %s", full), "real"));
  CHECK_EQ(rcache_delete(c, "k2"), RCACHE_OK);
  rcache_close(c);
  atomic_store(&fake_stop, true);
  rp_sleep_ms(300); /* its threads end (connections closed by rcache_close) */
  close(fake_fd);

  /* no group name at all: a URL error */
  snprintf(url3, sizeof url3, "%.*s", (int)(strrchr(url, '/') - url), url);
  c = NULL;
  CHECK_EQ(rcache_open(&c, url3, NULL), RCACHE_EURL);
  CHECK(c == NULL);
  return test_report("test_sentinel");
}
