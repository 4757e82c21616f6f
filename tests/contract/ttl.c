/* SPDX-License-Identifier: BSD-3-Clause */
/* TTLs: -1 / -2 / remaining seconds, real expiry of short TTLs, defaults and jitter. */
#include <string.h>

#include "contract.h"

#define GONE_WITHIN_MS 10000 /* a 1 s TTL must be gone well before this */

CONTRACT_TEST(ttl_values) {
  CHECK_EQ(ct_ttl(e->c, "absent"), -2);
  CHECK_EQ(rcache_set(e->c, "forever", "v", 1, 0), RCACHE_OK);
  CHECK_EQ(ct_ttl(e->c, "forever"), -1);
  CHECK_EQ(rcache_set(e->c, "hour", "v", 1, RCACHE_TTL_LONG), RCACHE_OK);
  int64_t t = ct_ttl(e->c, "hour");
  CHECK_MSG(t > RCACHE_TTL_LONG - 30 && t <= RCACHE_TTL_LONG, "ttl %lld", (long long)t);
  /* a plain set replaces the TTL, as SET does */
  CHECK_EQ(rcache_set(e->c, "hour", "w", 1, 0), RCACHE_OK);
  CHECK_EQ(ct_ttl(e->c, "hour"), -1);
  CHECK_EQ(rcache_set(e->c, "forever", "v", 1, RCACHE_TTL_SHORT), RCACHE_OK);
  t = ct_ttl(e->c, "forever");
  CHECK(t > 0 && t <= RCACHE_TTL_SHORT);
  /* deleting takes the TTL with the key */
  CHECK_EQ(rcache_delete(e->c, "forever"), RCACHE_OK);
  CHECK_EQ(ct_ttl(e->c, "forever"), -2);
  /* out-of-range TTLs are refused and store nothing */
  CHECK_EQ(rcache_set(e->c, "neg", "v", 1, -1), RCACHE_EINVAL);
  CHECK_EQ(rcache_set(e->c, "huge", "v", 1, INT64_MAX), RCACHE_EINVAL);
  CHECK(!ct_exists(e->c, "neg") && !ct_exists(e->c, "huge"));
}

static rcache_status load_v(void *ud, rcache_value *out) {
  int *calls = ud;
  (*calls)++;
  out->data = strdup("loaded");
  out->len = out->data ? 6 : 0;
  return out->data ? RCACHE_OK : RCACHE_ENOMEM;
}

/* Every kind of write with a 1 s TTL really expires; nothing is read early as gone. */
CONTRACT_TEST(ttl_expiry) {
  int loads = 0;
  int64_t n = 0;
  bool allowed = false;
  rcache_value v = {NULL, 0};
  const char *ks[] = {"many1", "many2"};
  rcache_value vs[] = {{(char *)"a", 1}, {(char *)"b", 1}};
  int64_t t_set = ct_now_ms();
  CHECK_EQ(rcache_set(e->c, "short", "v", 1, 1), RCACHE_OK);
  CHECK_EQ(rcache_set(e->c, "long", "v", 1, RCACHE_TTL_LONG), RCACHE_OK);
  CHECK_EQ(rcache_incr_expire(e->c, "ctr", 5, 1, &n), RCACHE_OK);
  CHECK_EQ(rcache_rate_limit(e->c, "rl", 1, 1, &allowed, &n), RCACHE_OK);
  CHECK(allowed);
  CHECK_EQ(rcache_rate_limit(e->c, "rl", 1, 1, &allowed, &n), RCACHE_OK);
  CHECK(!allowed);
  CHECK_EQ(rcache_set_many(e->c, ks, vs, 2, 1), RCACHE_OK);
  CHECK_EQ(rcache_get_or_set(e->c, "gos", 1, load_v, &loads, &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(loads, 1);
  int64_t t0 = ct_now_ms();
  /* right after the writes every key is there, with 1 s (rounded up) to live (unless this
   * machine stalled for most of that second: then there is nothing to conclude) */
  int64_t ttl_short = ct_ttl(e->c, "short");
  bool all_there = ct_exists(e->c, "ctr") && ct_exists(e->c, "many1") && ct_exists(e->c, "gos");
  if (ct_now_ms() - t_set < 800) {
    CHECK_EQ(ttl_short, 1);
    CHECK(all_there);
  }

  const char *gone[] = {"short", "ctr", "rl", "many1", "many2", "gos"};
  /* a get_or_set value outlives its TTL by the stale window (--stale) */
  size_t ngone = sizeof gone / sizeof gone[0] - (ct_stale_s() > 0 ? 1 : 0);
  for (size_t i = 0; i < ngone; i++) {
    CHECK_MSG(ct_wait_gone(e->c, gone[i], GONE_WITHIN_MS), "%s did not expire", gone[i]);
  }
  /* expiry is not early: a 1 s TTL lives at least ~1 s (slack for clock granularity) */
  CHECK_MSG(ct_now_ms() - t0 >= 900, "expired after %lld ms", (long long)(ct_now_ms() - t0));
  rcache_value g;
  CHECK_EQ(rcache_get(e->c, "short", &g), RCACHE_MISS);
  CHECK_EQ(ct_ttl(e->c, "short"), -2);
  CHECK_EQ(rcache_delete(e->c, "short"), RCACHE_MISS);
  CHECK(ct_exists(e->c, "long"));
  /* a new window, a new count */
  CHECK_EQ(rcache_rate_limit(e->c, "rl", 1, 1, &allowed, &n), RCACHE_OK);
  CHECK(allowed);
  CHECK_EQ(n, 1);
  CHECK_EQ(rcache_incr_expire(e->c, "ctr", 5, 1, &n), RCACHE_OK);
  CHECK_EQ(n, 5);
  /* an expired cache-aside value is loaded again */
  CHECK_EQ(rcache_get_or_set(e->c, "gos", 1, load_v, &loads, &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(loads, 2);
}

CONTRACT_TEST(default_ttl_and_jitter) {
  rcache_options o;
  rcache_options_init(&o);
  o.default_ttl_s = 100;
  rcache *d = ct_open(e, &o);
  if (!d) return;
  CHECK_EQ(rcache_set(d, "dflt", "v", 1, 0), RCACHE_OK);
  int64_t t = ct_ttl(d, "dflt");
  CHECK_MSG(t > 70 && t <= 100, "ttl %lld", (long long)t);
  CHECK_EQ(rcache_set(d, "explicit", "v", 1, 500), RCACHE_OK);
  t = ct_ttl(d, "explicit");
  CHECK(t > 470 && t <= 500);

  rcache_options_init(&o);
  o.ttl_jitter = 0.5;
  rcache *j = ct_open(e, &o);
  if (!j) return;
  int64_t lo = INT64_MAX, hi = 0;
  char key[32];
  for (int i = 0; i < 40; i++) {
    snprintf(key, sizeof key, "jit%d", i);
    CHECK_EQ(rcache_set(j, key, "v", 1, 1000), RCACHE_OK);
    t = ct_ttl(j, key);
    lo = t < lo ? t : lo;
    hi = t > hi ? t : hi;
  }
  CHECK_MSG(lo >= 470 && hi <= 1500, "jittered ttls in [%lld, %lld]", (long long)lo, (long long)hi);
  CHECK_MSG(hi > lo, "40 jittered TTLs all equal %lld", (long long)lo); /* it spreads */
  /* no expiry stays no expiry, whatever the jitter */
  CHECK_EQ(rcache_set(j, "none", "v", 1, 0), RCACHE_OK);
  CHECK_EQ(ct_ttl(j, "none"), -1);
}
