/* SPDX-License-Identifier: BSD-3-Clause */
/* none:// (caching off): reads miss, writes succeed and vanish, counters have no count,
 * get_or_set always loads, rate limits fail open. Run with --none. */
#include <stdlib.h>
#include <string.h>

#include "contract.h"

CONTRACT_NONE_TEST(none_reads_miss_writes_vanish) {
  rcache *c = e->c;
  rcache_value v = {(char *)"junk", 4};
  CHECK_STR(rcache_mode(c), "none");
  CHECK_EQ(rcache_set(c, "k", "v", 1, 0), RCACHE_OK);
  CHECK_EQ(rcache_set(c, "k", "v", 1, 60), RCACHE_OK);
  CHECK_EQ(rcache_get(c, "k", &v), RCACHE_MISS);
  CHECK(v.data == NULL && v.len == 0);
  CHECK(!ct_exists(c, "k"));
  CHECK_EQ(ct_ttl(c, "k"), -2);
  CHECK_EQ(rcache_delete(c, "k"), RCACHE_MISS);
  uint64_t n = 7;
  CHECK_EQ(rcache_delete_prefix(c, "k", &n), RCACHE_OK);
  CHECK_EQ(n, 0);
  n = 7;
  CHECK_EQ(rcache_delete_pattern(c, "*", &n), RCACHE_OK);
  CHECK_EQ(n, 0);
  n = 7;
  CHECK_EQ(rcache_delete_prefix_progress(c, "k", NULL, NULL, &n), RCACHE_OK);
  CHECK_EQ(n, 0);
  CHECK_EQ(rcache_flush(c), RCACHE_OK);
  const char *keys[] = {"a", "b"};
  rcache_value vals[] = {{(char *)"1", 1}, {(char *)"2", 1}}, out[2];
  rcache_status st[2] = {RCACHE_OK, RCACHE_OK};
  CHECK_EQ(rcache_set_many(c, keys, vals, 2, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_many(c, keys, 2, out, st), RCACHE_OK);
  CHECK(st[0] == RCACHE_MISS && st[1] == RCACHE_MISS);
  CHECK(out[0].data == NULL && out[1].data == NULL);
}

static bool visit(const char *k, size_t l, void *ud) {
  (*(int *)ud)++;
  return true;
}

CONTRACT_NONE_TEST(none_scan_health_stats) {
  int seen = 0;
  CHECK_EQ(rcache_set(e->c, "k", "v", 1, 0), RCACHE_OK);
  CHECK_EQ(rcache_scan(e->c, "*", 0, visit, &seen), RCACHE_OK);
  CHECK_EQ(seen, 0);
  rcache_health h;
  CHECK_EQ(rcache_health_check(e->c, &h), RCACHE_OK);
  CHECK(h.healthy);
  CHECK_STR(h.mode, "none");
  CHECK(h.latency_ms == 0);
  rcache_stats s;
  rcache_get_stats(e->c, &s);
  CHECK(s.available);
  CHECK_EQ(s.hits, 0);
}

CONTRACT_NONE_TEST(none_counters_unavailable) {
  rcache *c = e->c;
  int64_t n = 42;
  CHECK_EQ(rcache_incr(c, "ctr", 1, &n), RCACHE_EUNAVAILABLE);
  CHECK_EQ(n, 0); /* no made-up count */
  n = 42;
  CHECK_EQ(rcache_decr(c, "ctr", 1, &n), RCACHE_EUNAVAILABLE);
  CHECK_EQ(n, 0);
  n = 42;
  CHECK_EQ(rcache_incr_expire(c, "ctr", 1, 10, &n), RCACHE_EUNAVAILABLE);
  CHECK_EQ(n, 0);
  CHECK(ct_errmsg_set(c));
  bool allowed = false;
  int64_t count = 42;
  for (int i = 0; i < 5; i++) { /* fails open, however often */
    CHECK_EQ(rcache_rate_limit(c, "rl", 1, 60, &allowed, &count), RCACHE_EUNAVAILABLE);
    CHECK(allowed);
    CHECK_EQ(count, 0);
  }
  rcache_options o;
  rcache_options_init(&o);
  o.rate_limit_fail_closed = true;
  rcache *closed = ct_open(e, &o);
  if (!closed) return;
  allowed = true;
  CHECK_EQ(rcache_rate_limit(closed, "rl", 1, 60, &allowed, &count), RCACHE_EUNAVAILABLE);
  CHECK(!allowed);
}

static rcache_status load(void *ud, rcache_value *out) {
  int *calls = ud;
  (*calls)++;
  if (*calls > 2) return RCACHE_EIO;
  out->data = strdup("db");
  out->len = out->data ? 2 : 0;
  return out->data ? RCACHE_OK : RCACHE_ENOMEM;
}

CONTRACT_NONE_TEST(none_get_or_set_always_loads) {
  int calls = 0;
  rcache_value v;
  for (int i = 1; i <= 2; i++) {
    CHECK_EQ(rcache_get_or_set(e->c, "k", 60, load, &calls, &v), RCACHE_OK);
    CHECK(v.len == 2 && v.data && memcmp(v.data, "db", 3) == 0);
    rcache_value_free(&v);
    CHECK_EQ(calls, i);
  }
  CHECK_EQ(rcache_get_or_set(e->c, "k", 60, load, &calls, &v), RCACHE_ELOADER);
  CHECK(v.data == NULL);
  CHECK_EQ(calls, 3);
}
