/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Tags against real Redis (RCACHE_TEST_URL_TCP, RCACHE_TEST_URL_CLUSTER), with and without the
 * near cache: an invalidation through one handle is seen by another (near cache included); an
 * invalidation racing a get_or_set load never leaves the old value cached; a vanished version
 * key never revives old values; while Redis is down invalidation fails loudly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rcache/rcache.h"
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

static void cleanup(const char *url) {
  rcache *c = open_ns(url, false);
  if (c) CHECK_EQ(rcache_flush(c), RCACHE_OK);
  rcache_close(c);
}

int main(void) {
  snprintf(ns, sizeof ns, "tags%d:", (int)getpid());
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
  return test_report("test_tags");
}
