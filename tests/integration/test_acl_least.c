/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Least privilege (issue 21): the ACL rule set docs/operations.md gives is enough for every
 * feature, without +info, +eval or +pexpire; each permission taken away fails visibly and
 * only what needs it. Users are made here on $RCACHE_TEST_URL_TCP's server (ACL SETUSER,
 * names with this process's pid) and deleted at the end:
 *  - the documented set: get/set, counters with a TTL (incr_expire, rate_limit: MULTI, not
 *    Lua), health (no INFO: healthy, version unknown), the near cache serving, tags;
 *  - without +multi: incr_expire fails every time (RCACHE_EAUTH, NOPERM), never a silent
 *    "allowed = 0" forever;
 *  - without +client|id, +client|tracking or the invalidation channel: one warning that the
 *    near cache is off, everything else works;
 *  - keys that do not cover the key_prefix's clear key (docs/semantics.md, "What rcache_clear
 *    covers"): one warning that the namespace reads as never cleared, reads and writes work,
 *    rcache_clear fails visibly (RCACHE_EAUTH); values written after another handle's clear
 *    read as misses;
 *  - without MGET: reads of untagged values are still checked against the clear key.
 */
#include <hiredis/hiredis.h>
#include <unistd.h>

#include "await.h"
#include "log_capture.h"
#include "rcache/rcache.h"
#include "test.h"

#define RULES                                                                                      \
  "-@all +get +set +unlink +pttl +incrby +mget +multi +exec +scan +ping +client|setname "          \
  "+client|id +client|tracking +subscribe"

static redisContext *admin;
static int port;
static char prefix[64];

/* Makes user `name` with the documented rules, minus `drop` ("" = none), channels given. */
static void make_user(const char *name, const char *drop, const char *channels) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "ACL SETUSER %s reset on >pw-%s ~%s* resetchannels %s " RULES " %s",
           name, name, prefix, channels, drop);
  redisReply *r = redisCommand(admin, cmd);
  CHECK_MSG(r && r->type == REDIS_REPLY_STATUS, "%s: %s", cmd, r && r->str ? r->str : "?");
  if (r) freeReplyObject(r);
}

static void drop_user(const char *name) {
  redisReply *r = redisCommand(admin, "ACL DELUSER %s", name);
  if (r) freeReplyObject(r);
}

/* A handle of user `name` (NULL: the default user), with the near cache or without. */
static rcache *open_near(const char *name, bool near) {
  char url[256];
  if (name)
    snprintf(url, sizeof url, "redis://%s:pw-%s@127.0.0.1:%d?key_prefix=%s", name, name, port,
             prefix);
  else
    snprintf(url, sizeof url, "redis://127.0.0.1:%d?key_prefix=%s", port, prefix);
  rcache_options o;
  rcache_options_init(&o);
  o.near_cache_bytes = near ? 1 << 20 : 0;
  o.log_fn = lc_log;
  o.log_level = RCACHE_LOG_WARN;
  lc_clear();
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  return c;
}

static rcache *open_as(const char *name) {
  return open_near(name, true);
}

static void documented_rules(void) {
  char name[64];
  snprintf(name, sizeof name, "least-%d-all", (int)getpid());
  make_user(name, "", "&__redis__:invalidate");
  rcache *c = open_as(name);
  if (!c) return;
  CHECK_EQ(rcache_set(c, "k", "v", 1, 60), RCACHE_OK);
  rcache_value v;
  /* the near cache serves (once its listener, which connects in its own thread, is up) */
  CHECK_MSG(await_near(c, "k", AWAIT_MS), "no near hit within %d ms", AWAIT_MS);
  int64_t n = 0, ttl = 0;
  CHECK_EQ(rcache_incr_expire(c, "ctr", 5, 100, &n), RCACHE_OK);
  CHECK_EQ(n, 5);
  CHECK_EQ(rcache_incr_expire(c, "ctr", 2, 100, &n), RCACHE_OK);
  CHECK_EQ(n, 7);
  CHECK_EQ(rcache_ttl(c, "ctr", &ttl), RCACHE_OK);
  CHECK_MSG(ttl > 90 && ttl <= 100, "ttl %lld", (long long)ttl);
  bool allowed = false;
  int64_t count = 0;
  for (int i = 0; i < 3; i++) {
    CHECK_EQ(rcache_rate_limit(c, "rl", 2, 60, &allowed, &count), RCACHE_OK);
    CHECK_EQ(allowed, i < 2);
  }
  rcache_health h;
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_OK); /* without INFO */
  CHECK(h.healthy);
  CHECK_MSG(h.error[0] == '\0', "%s", h.error);
  CHECK_MSG(!lc_has("near cache off"), "log:\n%s", lc_text());
  /* tags: version keys under the prefix, no script (test_tags.c reads without the near
   * cache as such a user) */
  const char *tags[] = {"t"};
  CHECK_EQ(rcache_set_tagged(c, "tg", "v", 1, 60, tags, 1), RCACHE_OK);
  CHECK_EQ(rcache_get(c, "tg", &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(rcache_get_tagged(c, "tg", tags, 1, &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(rcache_invalidate_tag(c, "t"), RCACHE_OK);
  CHECK_EQ(rcache_get_tagged(c, "tg", tags, 1, &v), RCACHE_MISS);
  CHECK_EQ(rcache_delete_prefix(c, "", NULL), RCACHE_EINVAL);
  uint64_t deleted = 0;
  CHECK_EQ(rcache_delete_prefix(c, "c", &deleted), RCACHE_OK);
  CHECK_EQ(deleted, 1);
  rcache_close(c);
  drop_user(name);
}

static void without_multi(void) {
  char name[64];
  snprintf(name, sizeof name, "least-%d-nomulti", (int)getpid());
  make_user(name, "-multi", "&__redis__:invalidate");
  rcache *c = open_as(name);
  if (!c) return;
  bool allowed = true;
  int64_t count = 0;
  for (int i = 0; i < 3; i++) { /* every call says so */
    CHECK_EQ(rcache_incr_expire(c, "ctr2", 1, 100, NULL), RCACHE_EAUTH);
    CHECK_MSG(strstr(rcache_errmsg(c), "NOPERM") != NULL, "%s", rcache_errmsg(c));
    CHECK_EQ(rcache_rate_limit(c, "rl2", 5, 60, &allowed, &count), RCACHE_EAUTH);
  }
  CHECK_EQ(rcache_set(c, "k", "v", 1, 60), RCACHE_OK); /* the rest works */
  rcache_close(c);
  drop_user(name);
}

/* Without one of the near cache's needs: a warning, and the cache works without it. */
static void without_near(const char *tag, const char *drop, const char *channels) {
  char name[64];
  snprintf(name, sizeof name, "least-%d-%s", (int)getpid(), tag);
  make_user(name, drop, channels);
  rcache *c = open_as(name);
  if (!c) return;
  /* the listener is refused in its own thread: wait for its warning */
  for (int64_t t0 = await_now_ms(); !lc_has("near cache off") && await_now_ms() - t0 < AWAIT_MS;)
    await_sleep_ms(10);
  char want[64];
  snprintf(want, sizeof want, "%d near cache off", RCACHE_LOG_WARN);
  CHECK_MSG(lc_has(want), "%s: log:\n%s", tag, lc_text());
  CHECK_EQ(rcache_set(c, "k", "v", 1, 60), RCACHE_OK);
  rcache_value v;
  CHECK_EQ(rcache_get(c, "k", &v), RCACHE_OK);
  rcache_value_free(&v);
  rcache_close(c);
  drop_user(name);
}

/* A user whose keys are <prefix>data:* only: the clear key, <prefix>__rc:clear, is not its. */
static void without_clear_key(void) {
  char name[64], cmd[1024];
  snprintf(name, sizeof name, "least-%d-nockey", (int)getpid());
  snprintf(cmd, sizeof cmd,
           "ACL SETUSER %s reset on >pw-%s ~%sdata:* resetchannels &__redis__:invalidate " RULES,
           name, name, prefix);
  redisReply *r = redisCommand(admin, cmd);
  CHECK_MSG(r && r->type == REDIS_REPLY_STATUS, "%s: %s", cmd, r && r->str ? r->str : "?");
  if (r) freeReplyObject(r);
  rcache *c = open_as(name);
  if (!c) return;
  CHECK_EQ(rcache_set(c, "data:k", "v", 1, 60), RCACHE_OK);
  for (int i = 0; i < 3; i++) {
    rcache_value v;
    CHECK_EQ(rcache_get(c, "data:k", &v), RCACHE_OK);
    CHECK(v.len == 1 && v.data[0] == 'v');
    rcache_value_free(&v);
  }
  char want[64];
  snprintf(want, sizeof want, "%d the server refused a read of the key_prefix's clear key",
           RCACHE_LOG_WARN);
  CHECK_MSG(lc_has(want), "log:\n%s", lc_text());
  CHECK_EQ(rcache_clear(c), RCACHE_EAUTH); /* never a silent success */
  CHECK_MSG(strstr(rcache_errmsg(c), "NOPERM") != NULL, "%s", rcache_errmsg(c));
  int64_t n = 0;
  CHECK_EQ(rcache_incr(c, "data:n", 2, &n), RCACHE_OK);
  CHECK_EQ(n, 2);
  /* another handle clears the namespace and writes: its values carry the clear key's
   * version, which this one cannot read (as 0, never cleared): misses, not errors */
  rcache *a = open_near(NULL, false);
  CHECK_EQ(rcache_clear(a), RCACHE_OK);
  CHECK_EQ(rcache_set(a, "data:k2", "new", 3, 60), RCACHE_OK);
  rcache_close(a);
  rcache_value v;
  for (int i = 0; i < 2; i++) {
    rcache_status s = rcache_get(c, "data:k2", &v);
    CHECK_MSG(s == RCACHE_MISS, "a value written after a clear read as %s (%s)", rcache_strerror(s),
              rcache_errmsg(c));
    if (s == RCACHE_OK) rcache_value_free(&v);
  }
  rcache_close(c);
  drop_user(name);
}

/* A user without MGET (the documented rules have it; tagged reads need it) still has every
 * read of an untagged value checked against the clear key: it is read with GET. A value this
 * user wrote before another handle's clear is a miss after it. */
static void without_mget(void) {
  char name[64];
  snprintf(name, sizeof name, "least-%d-nomget", (int)getpid());
  snprintf(prefix, sizeof prefix, "least%d-m:", (int)getpid()); /* never cleared yet */
  make_user(name, "-mget", "&__redis__:invalidate");
  for (int near = 0; near < 2; near++) {
    rcache *a = open_near(NULL, false), *b = open_near(name, near);
    if (!a || !b) return;
    CHECK_EQ(rcache_set(b, "m", "old", 3, 60), RCACHE_OK);
    rcache_value v;
    CHECK_EQ(rcache_get(b, "m", &v), RCACHE_OK);
    rcache_value_free(&v);
    CHECK_EQ(rcache_clear(a), RCACHE_OK);
    if (near) /* b's near cache learns of the clear by tracking: within moments */
      for (int64_t t0 = await_now_ms(); await_now_ms() - t0 < AWAIT_MS; await_sleep_ms(5)) {
        rcache_status s = rcache_get(b, "m", &v);
        if (s == RCACHE_OK) rcache_value_free(&v);
        if (s == RCACHE_MISS) break;
      }
    for (int i = 0; i < 3; i++) {
      rcache_status s = rcache_get(b, "m", &v);
      CHECK_MSG(s == RCACHE_MISS, "near %d, read %d after the clear: %s %.*s", near, i,
                rcache_strerror(s), s == RCACHE_OK ? (int)v.len : 0, s == RCACHE_OK ? v.data : "");
      if (s == RCACHE_OK) rcache_value_free(&v);
    }
    CHECK_MSG(!lc_has("refused a read of the key_prefix's clear key"), "log:\n%s", lc_text());
    CHECK_EQ(rcache_set(b, "m", "new", 3, 60), RCACHE_OK);
    CHECK_EQ(rcache_get(b, "m", &v), RCACHE_OK);
    CHECK(v.len == 3 && memcmp(v.data, "new", 3) == 0);
    rcache_value_free(&v);
    rcache_close(b);
    rcache_close(a);
  }
  drop_user(name);
}

int main(void) {
  test_env_url("RCACHE_TEST_URL_TCP");
  const char *p = getenv("RCACHE_TEST_PORT");
  port = p ? atoi(p) : 0;
  admin = redisConnect("127.0.0.1", port);
  if (!admin || admin->err) {
    CHECK_MSG(false, "admin connection to port %d failed", port);
    return test_report("test_acl_least");
  }
  snprintf(prefix, sizeof prefix, "least%d:", (int)getpid());
  documented_rules();
  without_multi();
  without_near("noid", "-client|id", "&__redis__:invalidate");
  without_near("notracking", "-client|tracking", "&__redis__:invalidate");
  without_near("nochannel", "", "");
  without_clear_key();
  without_mget();
  redisFree(admin);
  return test_report("test_acl_least");
}
