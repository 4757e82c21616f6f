/* SPDX-License-Identifier: BSD-3-Clause */
/* Key helpers on every backend: invalidating user 12 never touches user 123, and long keys
 * stored under their digest name (long_key_digest) behave as ordinary keys. */
#include <string.h>

#include "contract.h"
#include "rcache/keys.h"

CONTRACT_TEST(invalidate_user_12_not_123) {
  char k[64];
  const char *ids[] = {"12", "123", "1", "120"};
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    CHECK(rcache_key_user(k, sizeof k, ids[i]) > 0);
    CHECK_EQ(rcache_set(e->c, k, "u", 1, 0), RCACHE_OK);
    CHECK(rcache_key_user_credits(k, sizeof k, ids[i]) > 0);
    CHECK_EQ(rcache_set(e->c, k, "5", 1, 0), RCACHE_OK);
  }
  CHECK_EQ(rcache_set(e->c, "user:12:session:abc", "s", 1, 0), RCACHE_OK);
  uint64_t n = 0;
  CHECK_EQ(rcache_invalidate_user(e->c, "12", &n), RCACHE_OK);
  CHECK_EQ(n, 3);
  CHECK(!ct_exists(e->c, "user:12") && !ct_exists(e->c, "user:12:credits"));
  CHECK(ct_exists(e->c, "user:123") && ct_exists(e->c, "user:123:credits"));
  CHECK(ct_exists(e->c, "user:1") && ct_exists(e->c, "user:120:credits"));
  /* the prefix helper means the same thing through delete_prefix */
  CHECK(rcache_key_user_all(k, sizeof k, "123") > 0);
  CHECK_STR(k, "user:123:");
  CHECK_EQ(rcache_delete_prefix(e->c, k, &n), RCACHE_OK);
  CHECK_EQ(n, 1);
  CHECK(ct_exists(e->c, "user:123"));
  CHECK_EQ(rcache_invalidate_user(e->c, "12", &n), RCACHE_OK); /* nothing left: still OK */
  CHECK_EQ(n, 0);
  CHECK_EQ(rcache_invalidate_user(e->c, "1:2", &n), RCACHE_EINVAL);
  CHECK_EQ(rcache_invalidate_user(e->c, "", &n), RCACHE_EINVAL);
  CHECK_EQ(rcache_invalidate_user(e->c, NULL, NULL), RCACHE_EINVAL);
}

/* The seed's services count under "rate:<user>:<endpoint>": a Node service's INCR and
 * rcache_rate_limit on rcache_key_rate_limit's name count in the same key, and one user's
 * counters go with rcache_key_rate_limit_all's prefix, never another user's. */
CONTRACT_TEST(rate_keys_shared_with_seed) {
  char k[64];
  int64_t n = 0;
  CHECK_EQ(rcache_incr(e->c, "rate:12:/api/search", 2, &n), RCACHE_OK); /* the seed's two calls */
  CHECK(rcache_key_rate_limit(k, sizeof k, "12", "/api/search") > 0);
  CHECK_STR(k, "rate:12:/api/search");
  bool allowed = false;
  CHECK_EQ(rcache_rate_limit(e->c, k, 3, 60, &allowed, &n), RCACHE_OK);
  CHECK(allowed);
  CHECK_EQ(n, 3);
  CHECK_EQ(rcache_rate_limit(e->c, k, 3, 60, &allowed, &n), RCACHE_OK);
  CHECK(!allowed); /* the fourth call of the same user: over the shared limit */
  const char *users[] = {"12", "123", "1"};
  for (size_t i = 0; i < sizeof users / sizeof users[0]; i++) {
    CHECK(rcache_key_rate_limit(k, sizeof k, users[i], "/api/export") > 0);
    CHECK_EQ(rcache_incr(e->c, k, 1, NULL), RCACHE_OK);
  }
  uint64_t deleted = 0;
  CHECK(rcache_key_rate_limit_all(k, sizeof k, "12") > 0);
  CHECK_STR(k, "rate:12:");
  CHECK_EQ(rcache_delete_prefix(e->c, k, &deleted), RCACHE_OK);
  CHECK_EQ(deleted, 2);
  CHECK(!ct_exists(e->c, "rate:12:/api/search") && !ct_exists(e->c, "rate:12:/api/export"));
  CHECK(ct_exists(e->c, "rate:123:/api/export") && ct_exists(e->c, "rate:1:/api/export"));
}

static bool name_len(const char *key, size_t len, void *ud) {
  *(size_t *)ud = len;
  return true;
}

CONTRACT_TEST(long_keys_by_digest) {
  rcache_options o;
  rcache_options_init(&o);
  o.long_key_digest = true;
  o.max_key_bytes = 200;
  rcache *c = ct_open(e, &o);
  if (!c) return;
  char a[600], b[600];
  memset(a, 'a', sizeof a - 1);
  a[sizeof a - 1] = '\0';
  memcpy(a, "long:", 5);
  memcpy(b, a, sizeof a);
  b[500] = 'b'; /* same head, different tail: a different key */
  CHECK_EQ(rcache_set(c, a, "A", 1, 0), RCACHE_OK);
  CHECK_EQ(rcache_set(c, b, "B", 1, 0), RCACHE_OK);
  CHECK(ct_value_is(c, a, "A", 1));
  CHECK(ct_value_is(c, b, "B", 1));
  CHECK_EQ(rcache_incr(c, a, 1, NULL), RCACHE_ETYPE);
  size_t len = 0; /* stored names are exactly max_key_bytes long (with the prefix) */
  CHECK_EQ(rcache_scan(c, "long:*", 1, name_len, &len), RCACHE_OK);
  CHECK(len > 72 && len < 200);
  uint64_t n = 0; /* a prefix within the kept head finds both */
  CHECK_EQ(rcache_delete_prefix(c, "long:aaa", &n), RCACHE_OK);
  CHECK_EQ(n, 2);
  CHECK(!ct_exists(c, a) && !ct_exists(c, b));
  /* short keys are stored as they are */
  CHECK_EQ(rcache_set(c, "short", "s", 1, 0), RCACHE_OK);
  CHECK_EQ(rcache_scan(c, "short", 0, name_len, &len), RCACHE_OK);
  CHECK_EQ(len, 5);
}
