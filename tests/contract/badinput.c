/* SPDX-License-Identifier: BSD-3-Clause */
/* Bad arguments on a live handle: a clear status, zeroed outputs, nothing stored, no
 * crash — on every backend. (NULL handles and options: tests/unit/test_badinput.c.) */
#include <string.h>

#include "contract.h"

static rcache_status ok_loader(void *ud, rcache_value *out) {
  (*(int *)ud)++;
  return RCACHE_OK;
}

static bool visit(const char *k, size_t l, void *ud) {
  return true;
}

CONTRACT_ANY_TEST(bad_keys_and_outputs) {
  rcache *c = e->c;
  rcache_value v = {(char *)"junk", 4};
  bool x = true;
  int64_t n = 42;
  uint64_t d = 42;
  /* NULL and empty keys */
  CHECK_EQ(rcache_get(c, NULL, &v), RCACHE_EINVAL);
  CHECK(v.data == NULL && v.len == 0);
  CHECK_EQ(rcache_get(c, "", &v), RCACHE_EINVAL);
  CHECK_EQ(rcache_set(c, NULL, "v", 1, 0), RCACHE_EINVAL);
  CHECK_EQ(rcache_set(c, "", "v", 1, 0), RCACHE_EINVAL);
  CHECK_EQ(rcache_delete(c, NULL), RCACHE_EINVAL);
  CHECK_EQ(rcache_delete(c, ""), RCACHE_EINVAL);
  CHECK_EQ(rcache_exists(c, NULL, &x), RCACHE_EINVAL);
  CHECK(!x);
  CHECK_EQ(rcache_ttl(c, "", &n), RCACHE_EINVAL);
  CHECK_EQ(n, -2);
  n = 42;
  CHECK_EQ(rcache_incr(c, NULL, 1, &n), RCACHE_EINVAL);
  CHECK_EQ(n, 0);
  CHECK_EQ(rcache_decr(c, "", 1, &n), RCACHE_EINVAL);
  CHECK_EQ(rcache_incr_expire(c, NULL, 1, 10, &n), RCACHE_EINVAL);
  int calls = 0;
  CHECK_EQ(rcache_get_or_set(c, "", 10, ok_loader, &calls, &v), RCACHE_EINVAL);
  CHECK_EQ(calls, 0);
  CHECK_EQ(rcache_delete_prefix(c, NULL, &d), RCACHE_EINVAL);
  CHECK_EQ(d, 0);
  CHECK_EQ(rcache_delete_prefix(c, "", &d), RCACHE_EINVAL); /* would be a flush */
  CHECK_EQ(rcache_delete_pattern(c, NULL, &d), RCACHE_EINVAL);
  CHECK_EQ(rcache_delete_pattern(c, "", &d), RCACHE_EINVAL);
  CHECK_EQ(rcache_delete_prefix_progress(c, "", NULL, NULL, &d), RCACHE_EINVAL);
  CHECK_EQ(rcache_delete_pattern_progress(c, NULL, NULL, NULL, &d), RCACHE_EINVAL);
  CHECK_EQ(rcache_delete_prefix_progress(NULL, "k", NULL, NULL, &d), RCACHE_EINVAL);
  CHECK_EQ(d, 0);
  CHECK_EQ(rcache_scan(c, NULL, 0, visit, NULL), RCACHE_EINVAL);
  /* NULL outputs */
  CHECK_EQ(rcache_get(c, "k", NULL), RCACHE_EINVAL);
  CHECK_EQ(rcache_exists(c, "k", NULL), RCACHE_EINVAL);
  CHECK_EQ(rcache_ttl(c, "k", NULL), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_or_set(c, "k", 10, ok_loader, &calls, NULL), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_or_set(c, "k", 10, NULL, &calls, &v), RCACHE_EINVAL);
  CHECK_EQ(rcache_health_check(c, NULL), RCACHE_EINVAL);
  CHECK_EQ(rcache_scan(c, "*", 0, NULL, NULL), RCACHE_EINVAL);
  CHECK_EQ(calls, 0);
  rcache_get_stats(c, NULL); /* a no-op, no crash */
  /* each failure leaves a message for this thread and handle */
  CHECK(ct_errmsg_set(c));
}

CONTRACT_ANY_TEST(bad_values_and_ttls) {
  rcache *c = e->c;
  CHECK_EQ(rcache_set(c, "k", NULL, 5, 0), RCACHE_EINVAL); /* data NULL with len > 0 */
  CHECK_EQ(rcache_set(c, "k", "v", 1, -1), RCACHE_EINVAL);
  CHECK_EQ(rcache_set(c, "k", "v", 1, INT64_MIN), RCACHE_EINVAL);
  CHECK_EQ(rcache_set(c, "k", "v", 1, INT64_MAX), RCACHE_EINVAL);
  CHECK(!ct_exists(c, "k"));
  int64_t n = 1;
  CHECK_EQ(rcache_incr_expire(c, "k", 1, 0, &n), RCACHE_EINVAL);
  CHECK_EQ(n, 0);
  CHECK_EQ(rcache_incr_expire(c, "k", 1, -1, &n), RCACHE_EINVAL);
  CHECK_EQ(rcache_incr_expire(c, "k", 1, INT64_MAX, &n), RCACHE_EINVAL);
  CHECK(!ct_exists(c, "k"));
  bool allowed = true;
  CHECK_EQ(rcache_rate_limit(c, "k", 5, 0, &allowed, &n), RCACHE_EINVAL);
  CHECK(!allowed);
  CHECK_EQ(rcache_rate_limit(c, "k", 5, -3, &allowed, &n), RCACHE_EINVAL);
  CHECK_EQ(rcache_rate_limit(c, "k", -1, 10, &allowed, &n), RCACHE_EINVAL);
  CHECK_EQ(rcache_rate_limit(c, "k", 5, 10, NULL, &n), RCACHE_EINVAL);
  CHECK(!ct_exists(c, "k"));
  /* batches */
  const char *keys[] = {"a", "b"};
  rcache_value vals[] = {{(char *)"1", 1}, {NULL, 3}};
  rcache_status st[2];
  rcache_value out[2];
  CHECK_EQ(rcache_set_many(c, keys, vals, 2, 0), RCACHE_EINVAL);
  CHECK_EQ(rcache_set_many(c, NULL, vals, 2, 0), RCACHE_EINVAL);
  CHECK_EQ(rcache_set_many(c, keys, NULL, 2, 0), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_many(c, NULL, 2, out, st), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_many(c, keys, 2, NULL, st), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_many(c, keys, 2, out, NULL), RCACHE_EINVAL);
  CHECK(!ct_exists(c, "a"));
  /* a value larger than max_value_bytes */
  rcache_options o;
  rcache_options_init(&o);
  o.max_value_bytes = 8;
  rcache *small = ct_open(e, &o);
  if (!small) return;
  CHECK_EQ(rcache_set(small, "k", "123456789", 9, 0), RCACHE_ETOOBIG);
  rcache_value big[] = {{(char *)"1", 1}, {(char *)"123456789", 9}};
  CHECK_EQ(rcache_set_many(small, keys, big, 2, 0), RCACHE_ETOOBIG);
  CHECK(!ct_exists(small, "a"));
  /* a key longer than max_key_bytes */
  char key[1100];
  memset(key, 'x', sizeof key - 1);
  key[sizeof key - 1] = '\0';
  CHECK_EQ(rcache_set(c, key, "v", 1, 0), RCACHE_ETOOBIG);
  const char *long_keys[] = {"ok", key};
  CHECK_EQ(rcache_get_many(c, long_keys, 2, out, st), RCACHE_ETOOBIG);
  CHECK_EQ(rcache_set_many(c, long_keys, vals, 1, 0), RCACHE_OK); /* n = 1: only "ok" */
  CHECK_EQ(rcache_set_many(c, long_keys, big, 2, 0), RCACHE_ETOOBIG);
}
