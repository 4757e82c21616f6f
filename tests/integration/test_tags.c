/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Tags against real Redis (RCACHE_TEST_URL_TCP, RCACHE_TEST_URL_CLUSTER), with and without the
 * near cache: an invalidation through one handle is seen by another (near cache included); an
 * invalidation racing a get_or_set load never leaves the old value cached; a vanished version
 * key never revives old values; while Redis is down invalidation fails loudly.
 *
 * On a private server (tests/support/redis_proc.h), what each read sends, counted by the
 * server (INFO commandstats; commands a script runs count too): an untagged rcache_get is one
 * GET; a tagged one is one EVALSHA (running GET and MGET); rcache_get_tagged is GET and MGET
 * without a script; a batch is two MGETs (values, then every tagged value's versions); an
 * ACL user without +eval, and a server without scripting, get the same answers with GET then
 * MGET, and one log line; a key of
 * another type does not turn the script off. Other clients see a plain value that looks like a
 * tagged one with its escape byte.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log_capture.h"
#include "rcache/rcache.h"
#include "redis_proc.h"
#include "test.h"

static char ns[64]; /* a namespace per run: servers are shared with other tests */

static rcache *open_ns(const char *url, bool near) {
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = ns;
  if (near) o.near_cache_bytes = 1 << 20;
  rcache *c = NULL;
  rcache_status s = rcache_open(&c, url, &o);
  CHECK_MSG(s == RCACHE_OK, "open: %s %s", rcache_strerror(s), rcache_errmsg(NULL));
  return c;
}

static bool value_is_quiet(rcache *c, const char *key) { /* true on a miss */
  rcache_value v;
  rcache_status s = rcache_get(c, key, &v);
  rcache_value_free(&v);
  return s == RCACHE_MISS;
}

static bool value_is(rcache *c, const char *key, const char *want) {
  rcache_value v;
  rcache_status s = rcache_get(c, key, &v);
  bool ok = want ? s == RCACHE_OK && v.len == strlen(want) && memcmp(v.data, want, v.len) == 0
                 : s == RCACHE_MISS;
  if (!ok) fprintf(stderr, "  %s: status %d, value %s\n", key, (int)s, v.data ? v.data : "(none)");
  rcache_value_free(&v);
  return ok;
}

/* Another process's invalidation reaches a near cache as a tracking message (docs/near-cache.md:
 * well under a millisecond on loopback): polled, with a generous bound. Without a near cache
 * the miss is immediate. */
static bool gone_soon(rcache *c, const char *key, bool near) {
  for (int i = 0; near && i < 2000 && !value_is_quiet(c, key); i++)
    usleep(1000);
  return value_is(c, key, NULL);
}

/* Written by one handle, read (and near-cached) by another, invalidated by a third. */
static void test_across_handles(const char *url, bool near) {
  rcache *w = open_ns(url, near), *r = open_ns(url, near), *inv = open_ns(url, false);
  if (!w || !r || !inv) goto out;
  const char *tags[] = {"user:9"};
  CHECK_EQ(rcache_set_tagged(w, "u9:profile", "old", 3, 60, tags, 1), RCACHE_OK);
  for (int i = 0; i < 3; i++) /* a near-cache hit from the second read on */
    CHECK(value_is(r, "u9:profile", "old"));
  CHECK_EQ(rcache_invalidate_tag(inv, "user:9"), RCACHE_OK);
  CHECK(gone_soon(r, "u9:profile", near));
  CHECK(gone_soon(w, "u9:profile", near));
  CHECK_EQ(rcache_set_tagged(w, "u9:profile", "new", 3, 60, tags, 1), RCACHE_OK);
  CHECK(value_is(r, "u9:profile", "new"));
  CHECK_EQ(rcache_clear(inv), RCACHE_OK);
  CHECK(gone_soon(r, "u9:profile", near));
  /* through the handle that invalidated, at once even with a near cache */
  CHECK_EQ(rcache_set_tagged(w, "u9:profile", "new2", 4, 60, tags, 1), RCACHE_OK);
  for (int i = 0; i < 3; i++) /* with a near cache: checked once, then served sealed */
    CHECK(value_is(w, "u9:profile", "new2"));
  CHECK_EQ(rcache_invalidate_tag(w, "user:9"), RCACHE_OK);
  CHECK(value_is(w, "u9:profile", NULL));
out:
  rcache_close(w);
  rcache_close(r);
  rcache_close(inv);
}

typedef struct racer {
  rcache *other; /* invalidates the tag while the load runs */
  int calls;
} racer;

static rcache_status load_racing(void *ud, rcache_value *out, rcache_tags *tags) {
  (void)tags;
  racer *r = ud;
  r->calls++;
  /* the data is read ("old"), then someone changes it and invalidates before we store */
  CHECK_EQ(rcache_invalidate_tag(r->other, "orders"), RCACHE_OK);
  out->data = strdup("old");
  out->len = out->data ? 3 : 0;
  return out->data ? RCACHE_OK : RCACHE_ENOMEM;
}

static void test_race(const char *url, bool near) {
  rcache *c = open_ns(url, near), *other = open_ns(url, false);
  if (!c || !other) goto out;
  racer r = {other, 0};
  const char *tags[] = {"orders"};
  rcache_value v;
  CHECK_EQ(rcache_get_or_set_tagged(c, "orders:list", 60, tags, 1, load_racing, &r, &v), RCACHE_OK);
  CHECK(v.len == 3 && memcmp(v.data, "old", 3) == 0); /* right for the call that loaded it */
  rcache_value_free(&v);
  /* but never cached past the invalidation (c's near cache learns of the other handle's INCR
   * by a tracking message: the near cache's window, docs/semantics.md) */
  CHECK(gone_soon(c, "orders:list", near));
  CHECK(value_is(other, "orders:list", NULL));
  CHECK_EQ(rcache_get_or_set_tagged(c, "orders:list", 60, tags, 1, load_racing, &r, &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(r.calls, 2);
out:
  rcache_close(c);
  rcache_close(other);
}

/* A version key that disappears (eviction, a delete) reads as absent, which matches no stored
 * version: old values stay invalid. */
static void test_version_key_lost(const char *url) {
  rcache *c = open_ns(url, false);
  if (!c) return;
  const char *tags[] = {"t"};
  CHECK_EQ(rcache_set_tagged(c, "k", "v", 1, 60, tags, 1), RCACHE_OK);
  CHECK(value_is(c, "k", "v"));
  CHECK_EQ(rcache_delete(c, "__rc:tag:t"), RCACHE_OK);
  CHECK(value_is(c, "k", NULL));
  rcache_close(c);
}

static void test_down(void) {
  rcache *c = open_ns("redis://127.0.0.1:1", false);
  if (!c) return;
  const char *tags[] = {"t"};
  CHECK_EQ(rcache_invalidate_tag(c, "t"), RCACHE_EUNAVAILABLE);
  CHECK_EQ(rcache_clear(c), RCACHE_EUNAVAILABLE);
  CHECK_EQ(rcache_set_tagged(c, "k", "v", 1, 60, tags, 1), RCACHE_EUNAVAILABLE);
  rcache_close(c);
}

/* ---- what each read sends (a private server) --------------------------------------------- */

static rp_server priv;

/* calls of cmd since the last CONFIG RESETSTAT (0 when never called) */
static long long calls(const char *cmd) {
  redisReply *r = rp_command(&priv, "INFO commandstats");
  long long n = 0;
  char needle[64];
  snprintf(needle, sizeof needle, "cmdstat_%s:calls=", cmd);
  const char *at = r && r->type == REDIS_REPLY_STRING ? r->str : NULL; /* RESP2 */
  CHECK_MSG(at != NULL, "INFO commandstats");
  if (at && (at = strstr(at, needle))) n = atoll(at + strlen(needle));
  if (r) freeReplyObject(r);
  return n;
}

static void reset_stats(void) {
  CHECK(rp_do(&priv, "CONFIG RESETSTAT"));
}

static rcache *open_priv(const char *user, bool logs) {
  char url[256];
  if (user)
    snprintf(url, sizeof url, "redis://%s:pw-%s@127.0.0.1:%d?key_prefix=rt:", user, user,
             priv.port);
  else
    snprintf(url, sizeof url, "redis://127.0.0.1:%d?key_prefix=rt:", priv.port);
  rcache_options o;
  rcache_options_init(&o);
  if (logs) {
    o.log_fn = lc_log;
    o.log_level = RCACHE_LOG_INFO;
  }
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  return c;
}

/* A tag of 600 bytes: too long for a handle to remember, so rcache_get reads its values by
 * the script (tags.c). */
static char big_tag[601];
static const char *big[] = {big_tag};

/* n reads of key (by rcache_get, or rcache_get_tagged with tags), each answering want */
static void reads(rcache *c, const char *key, const char *const *tags, size_t ntags, int n,
                  const char *want) {
  for (int i = 0; i < n; i++) {
    rcache_value v;
    rcache_status s = ntags ? rcache_get_tagged(c, key, tags, ntags, &v) : rcache_get(c, key, &v);
    CHECK_MSG(s == RCACHE_OK && v.len == strlen(want) && memcmp(v.data, want, v.len) == 0,
              "read %d of %s: status %d", i, key, (int)s);
    rcache_value_free(&v);
  }
}

static void test_what_reads_send(void) {
  const char *tags[] = {"user:1", "plan:pro"};
  rcache *c = open_priv(NULL, false);
  if (!c) return;
  CHECK_EQ(rcache_set(c, "plain", "p", 1, 0), RCACHE_OK);
  reset_stats();
  reads(c, "plain", NULL, 0, 20, "p"); /* a handle that never met a tag */
  CHECK_EQ(calls("get"), 40); /* the value's and the clear key's, pipelined: one round trip */
  CHECK_EQ(calls("evalsha") + calls("eval") + calls("mget"), 0);
  /* a key whose tags the handle remembers (it wrote or read the value): GET + MGET of its
   * version keys, no Lua */
  CHECK_EQ(rcache_set_tagged(c, "t", "v", 1, 0, tags, 2), RCACHE_OK);
  reset_stats();
  reads(c, "t", NULL, 0, 20, "v");
  CHECK_EQ(calls("get"), 20);
  CHECK_EQ(calls("mget"), 20);
  CHECK_EQ(calls("evalsha") + calls("eval"), 0);
  /* tags too long to remember (over 512 bytes): the script */
  CHECK_EQ(rcache_set_tagged(c, "big", "v", 1, 0, big, 1), RCACHE_OK);
  reads(c, "big", NULL, 0, 1, "v"); /* the script is loaded (NOSCRIPT, then EVAL) */
  reset_stats();
  reads(c, "big", NULL, 0, 20, "v");
  CHECK_EQ(calls("evalsha"), 20);
  CHECK_EQ(calls("eval"), 0);
  CHECK_EQ(calls("get"), 20); /* run by the script */
  CHECK_EQ(calls("mget"), 20);
  /* remembered tags that are not all the value's (another handle re-set it with more): a
   * second MGET, then the value's tags are remembered */
  const char *tags2[] = {"user:2", "plan:team"};
  CHECK_EQ(rcache_set_tagged(c, "t2", "v", 1, 0, tags2, 1), RCACHE_OK); /* remembers user:2 */
  rcache *w = open_priv(NULL, false);
  CHECK(w && rcache_set_tagged(w, "t2", "w", 1, 0, tags2, 2) == RCACHE_OK);
  if (w) rcache_close(w);
  reset_stats();
  reads(c, "t2", NULL, 0, 1, "w");
  CHECK_EQ(calls("get"), 1);
  CHECK_EQ(calls("mget"), 2); /* the remembered tag's version, then the value's tags' */
  reset_stats();
  reads(c, "t2", NULL, 0, 5, "w");
  CHECK_EQ(calls("mget"), 5);
  CHECK_EQ(calls("evalsha"), 0);
  CHECK_EQ(rcache_invalidate_tag(c, "plan:team"), RCACHE_OK); /* the tag it did not remember */
  rcache_value gone;
  CHECK_EQ(rcache_get(c, "t2", &gone), RCACHE_MISS);
  reset_stats();
  reads(c, "plain", NULL, 0, 20, "p"); /* untagged values: still a GET each (+ the clear key's) */
  CHECK_EQ(calls("get"), 40);
  CHECK_EQ(calls("evalsha") + calls("mget"), 0);
  reset_stats();
  reads(c, "t", tags, 2, 20, "v");
  CHECK_EQ(calls("get"), 20);
  CHECK_EQ(calls("mget"), 20);
  CHECK_EQ(calls("evalsha") + calls("eval"), 0);
  /* a batch: one MGET for the values, one for every tagged value's versions */
  const char *keys[10];
  char names[10][8];
  for (int i = 0; i < 10; i++) {
    snprintf(names[i], sizeof names[i], "b%d", i);
    keys[i] = names[i];
    CHECK_EQ(rcache_set_tagged(c, keys[i], "v", 1, 0, tags, i % 2 + 1), RCACHE_OK);
  }
  rcache_value vals[10];
  rcache_status st[10];
  reset_stats();
  CHECK_EQ(rcache_get_many(c, keys, 10, vals, st), RCACHE_OK);
  for (int i = 0; i < 10; i++) {
    CHECK(st[i] == RCACHE_OK && vals[i].len == 1 && vals[i].data[0] == 'v');
    rcache_value_free(&vals[i]);
  }
  CHECK_EQ(calls("mget"), 2);
  CHECK_EQ(calls("get") + calls("evalsha"), 0);
  /* a key of another type where a tagged value was: WRONGTYPE, and the script stays on */
  CHECK(rp_do(&priv, "DEL rt:t"));
  CHECK(rp_do(&priv, "LPUSH rt:t x"));
  rcache_value v;
  CHECK_EQ(rcache_get(c, "t", &v), RCACHE_ETYPE);
  CHECK(rp_do(&priv, "DEL rt:big"));
  CHECK(rp_do(&priv, "LPUSH rt:big x"));
  CHECK_EQ(rcache_get(c, "big", &v), RCACHE_ETYPE);
  CHECK_EQ(rcache_set_tagged(c, "big", "v", 1, 0, big, 1), RCACHE_OK);
  reset_stats();
  reads(c, "big", NULL, 0, 5, "v");
  CHECK_EQ(calls("evalsha"), 5);
  /* other clients read a plain value that looks like a tagged one with its escape byte */
  CHECK_EQ(rcache_set(c, "look", "\xffRC\x01x", 5, 0), RCACHE_OK);
  redisReply *r = rp_command(&priv, "GET rt:look");
  CHECK(r && r->type == REDIS_REPLY_STRING && r->len == 6 &&
        memcmp(r->str, "\xff\xffRC\x01x", 6) == 0);
  if (r) freeReplyObject(r);
  rcache_close(c);
}

/* The documented ACL rules (docs/operations.md) have no +eval: tagged reads still answer
 * right, in two round trips, after one refused EVALSHA and one log line. */
static void test_no_eval(void) {
  CHECK(rp_do(&priv, "ACL SETUSER least reset on >pw-least ~rt:* resetchannels -@all +get "
                     "+set +unlink +pttl +incrby +mget +multi +exec +scan +ping "
                     "+client|setname"));
  const char *tags[] = {"user:1", "plan:pro"};
  lc_clear();
  rcache *c = open_priv("least", true);
  if (!c) return;
  CHECK_EQ(rcache_set_tagged(c, "nb", "v", 1, 0, big, 1), RCACHE_OK); /* not remembered */
  reads(c, "nb", NULL, 0, 1, "v");
  CHECK(lc_has("tagged reads take two round trips from now on"));
  CHECK_EQ(rcache_set_tagged(c, "n", "v", 1, 0, tags, 2), RCACHE_OK);
  reset_stats();
  reads(c, "n", NULL, 0, 10, "v");
  CHECK_EQ(calls("evalsha") + calls("eval"), 0); /* not asked again */
  CHECK_EQ(calls("get"), 10);
  CHECK_EQ(calls("mget"), 10);
  reads(c, "n", tags, 2, 10, "v");
  CHECK_EQ(rcache_invalidate_tag(c, "plan:pro"), RCACHE_OK);
  rcache_value v;
  CHECK_EQ(rcache_get(c, "n", &v), RCACHE_MISS);
  CHECK_EQ(rcache_get_tagged(c, "n", tags, 2, &v), RCACHE_MISS);
  rcache_close(c);
}

/* A server without scripting (EVALSHA and EVAL renamed away): the same answers, in two
 * round trips after one log line. */
static void test_no_scripting(void) {
  const char *tags[] = {"user:1"};
  lc_clear();
  rcache *c = open_priv(NULL, true);
  if (!c) return;
  CHECK_EQ(rcache_set_tagged(c, "sb", "v", 1, 0, big, 1), RCACHE_OK); /* not remembered */
  reads(c, "sb", NULL, 0, 1, "v");
  CHECK(lc_has("tagged reads take two round trips from now on"));
  CHECK_EQ(rcache_set_tagged(c, "s", "v", 1, 0, tags, 1), RCACHE_OK);
  lc_clear();
  reset_stats();
  reads(c, "s", NULL, 0, 10, "v");
  CHECK_EQ(calls("get"), 10);
  CHECK_EQ(calls("mget"), 10);
  CHECK(!lc_has("round trips")); /* said once */
  CHECK_EQ(rcache_invalidate_tag(c, "user:1"), RCACHE_OK);
  rcache_value v;
  CHECK_EQ(rcache_get(c, "s", &v), RCACHE_MISS);
  rcache_close(c);
}

/* After a clear: a plain value another client writes reads as a miss (rcache cannot tell it
 * from one written before the clear), a counter as it is, and rcache's own keys (published
 * figures, __rc:stats:…, which `rcache stats --clients` reads) stay readable. */
static void test_plain_after_clear(void) {
  rcache *c = open_priv(NULL, false);
  if (!c) return;
  CHECK_EQ(rcache_clear(c), RCACHE_OK);
  CHECK(rp_do(&priv, "SET rt:__rc:stats:app:h:1 {\"ops\":1}"));
  CHECK(rp_do(&priv, "SET rt:raw v"));
  CHECK(rp_do(&priv, "SET rt:num 42"));
  CHECK(value_is(c, "__rc:stats:app:h:1", "{\"ops\":1}"));
  CHECK(value_is(c, "raw", NULL));
  CHECK(value_is(c, "num", "42"));
  CHECK(rp_do(&priv, "DEL rt:__rc:clear rt:__rc:stats:app:h:1 rt:num"));
  rcache_close(c);
}

static void private_server_tests(void) {
  if (rp_start(&priv, &(rp_opts){.tag = "tags-rt"}) != 0) {
    CHECK_MSG(false, "%s", "could not start a private redis-server");
    return;
  }
  fprintf(stderr, "-- what reads send (private server)\n");
  test_what_reads_send();
  test_plain_after_clear();
  test_no_eval();
  rp_destroy(&priv);
  const char *args[] = {"--rename-command", "EVALSHA", "", "--rename-command", "EVAL", "", NULL};
  if (rp_start(&priv, &(rp_opts){.tag = "tags-noscript", .args = args}) != 0) {
    CHECK_MSG(false, "%s", "could not start a private redis-server without scripting");
    return;
  }
  fprintf(stderr, "-- a server without scripting\n");
  test_no_scripting();
  rp_destroy(&priv);
}

static void cleanup(const char *url) {
  rcache *c = open_ns(url, false);
  if (c) CHECK_EQ(rcache_flush(c), RCACHE_OK);
  rcache_close(c);
}

int main(void) {
  snprintf(ns, sizeof ns, "tags%d:", (int)getpid());
  memset(big_tag, 'b', sizeof big_tag - 1);
  const char *urls[] = {test_env_url("RCACHE_TEST_URL_TCP"),
                        test_env_url("RCACHE_TEST_URL_CLUSTER")};
  for (int i = 0; i < 2; i++) {
    for (int near = 0; near < 2; near++) {
      fprintf(stderr, "-- %s%s\n", i ? "cluster" : "tcp", near ? " + near cache" : "");
      test_across_handles(urls[i], near);
      test_race(urls[i], near);
    }
    test_version_key_lost(urls[i]);
    cleanup(urls[i]);
  }
  test_down();
  private_server_tests();
  return test_report("test_tags");
}
