/*
 * Redis Sentinel on the shared servers (scripts/servers.d/40-sentinel.sh: a master, a
 * replica, three sentinels, group "rcache-test"), without disturbing them: the master is
 * found through the sentinels (also when the first listed sentinel is dead), keys land on
 * the master (read back raw there), the /db part selects the database, an unknown group
 * name opens in fallback mode with a clear reason, a URL without a group name is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rcache/rcache.h"
#include "test.h"
#include "test_cluster_procs.h"

static char prefix[64];

/* The master's port as the first sentinel of the URL says. */
static int master_port(const char *url) {
  const char *p = strstr(url, "://");
  int sport = p ? atoi(strchr(p + 3, ':') + 1) : 0;
  redisReply *r = pr_cmd(sport, "SENTINEL get-master-addr-by-name rcache-test");
  int port = -1;
  if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2) port = atoi(r->element[1]->str);
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
  CHECK(pr_reply_has(pr_cmd(mport, "GET %s", full), "on-master"));
  CHECK_EQ(pr_role_master(mport, NULL), 1);
  rcache_close(c);

  /* the first sentinel listed is dead: the next ones answer */
  char url2[512];
  int dead = pr_free_port();
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

  /* no group name at all: a URL error */
  snprintf(url3, sizeof url3, "%.*s", (int)(strrchr(url, '/') - url), url);
  c = NULL;
  CHECK_EQ(rcache_open(&c, url3, NULL), RCACHE_EURL);
  CHECK(c == NULL);
  return test_report("test_sentinel");
}
