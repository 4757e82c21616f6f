/* SPDX-License-Identifier: BSD-3-Clause */
/* Key helpers on every backend: invalidating user 12 never touches user 123 (nor another
 * namespace), key_prefix namespaces keep typed values, patterns and flush apart, and long
 * keys stored under their digest name (long_key_digest) behave as ordinary keys. */
#include <stdio.h>
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

/* ---- the key helpers on a live handle -------------------------------------------------------- */

static void tc_put(rcache *c, const char *key) {
  CHECK_MSG(rcache_set_str(c, key, "v", 0) == RCACHE_OK, "set %s", key);
}

CONTRACT_TEST(key_helpers) {
  rcache *c = e->c;
  char k[128];
  const char *ids[] = {"12", "123", "1", "12x", "120"};
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    rcache_key_user(k, sizeof k, ids[i]);
    tc_put(c, k);
    rcache_key_user_credits(k, sizeof k, ids[i]);
    tc_put(c, k);
  }
  const char *profile[] = {"user", "12", "profile"};
  rcache_key_build(k, sizeof k, 3, profile);
  tc_put(c, k);
  rcache_key_session(k, sizeof k, "12");
  tc_put(c, k);
  rcache_key_rate_limit(k, sizeof k, "12", "/api/search");
  tc_put(c, k);
  rcache_key_feature_flag(k, sizeof k, "new-ui");
  tc_put(c, k);
  uint64_t n = 99;
  CHECK_EQ(rcache_invalidate_user(c, "12", &n), RCACHE_OK);
  CHECK_EQ(n, 3); /* user:12, user:12:credits, user:12:profile */
  CHECK(!ct_exists(c, "user:12") && !ct_exists(c, "user:12:credits") &&
        !ct_exists(c, "user:12:profile"));
  const char *kept[] = {"user:123",       "user:123:credits", "user:1",
                        "user:1:credits", "user:12x",         "user:12x:credits",
                        "user:120",       "session:12",       "rate:12:/api/search",
                        "feature:new-ui"};
  for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
    CHECK_MSG(ct_exists(c, kept[i]), "%s was deleted with user 12", kept[i]);
  }
  CHECK_EQ(rcache_invalidate_user(c, "12", &n), RCACHE_OK);
  CHECK_EQ(n, 0);
  CHECK_EQ(rcache_invalidate_user(c, "12", NULL), RCACHE_OK);
  CHECK_EQ(rcache_invalidate_user(c, "1:2", &n), RCACHE_EINVAL);
  CHECK(ct_errmsg_has(c, "user_id"));
  CHECK_EQ(rcache_invalidate_user(c, "", &n), RCACHE_EINVAL);
  CHECK_EQ(rcache_invalidate_user(c, NULL, &n), RCACHE_EINVAL);
  CHECK_EQ(rcache_invalidate_user(NULL, "12", &n), RCACHE_EINVAL);
  /* ids with glob characters are taken literally: "1*" and "[12]" are not patterns */
  tc_put(c, "user:1*");
  tc_put(c, "user:1*:x");
  tc_put(c, "user:[12]:x");
  tc_put(c, "user:12:y");
  CHECK_EQ(rcache_invalidate_user(c, "1*", &n), RCACHE_OK);
  CHECK_EQ(n, 2);
  CHECK_EQ(rcache_invalidate_user(c, "[12]", &n), RCACHE_OK);
  CHECK_EQ(n, 1);
  CHECK(ct_exists(c, "user:12:y") && ct_exists(c, "user:1:credits"));
  CHECK_EQ(rcache_delete(c, "user:12:y"), RCACHE_OK);
  /* only sub-keys: user 1's keys without user:1 itself through the prefix */
  rcache_key_user_all(k, sizeof k, "1");
  CHECK_EQ(rcache_delete_prefix(c, k, &n), RCACHE_OK);
  CHECK_EQ(n, 1);
  CHECK(ct_exists(c, "user:1") && ct_exists(c, "user:123:credits"));
  /* workflows */
  rcache_key_workflow(k, sizeof k, "7");
  tc_put(c, k);
  rcache_key_workflow_definition(k, sizeof k, "7");
  tc_put(c, k);
  tc_put(c, "workflows:other");
  rcache_key_all_workflows(k, sizeof k);
  CHECK_EQ(rcache_delete_prefix(c, k, &n), RCACHE_OK);
  CHECK_EQ(n, 2);
  CHECK(ct_exists(c, "workflows:other"));

  /* another namespace on the same server is never touched */
  if (ct_shared(e)) {
    rcache *o = ct_open_sub(e, "other:", NULL);
    if (!o) return;
    tc_put(o, "user:12");
    tc_put(o, "user:12:credits");
    tc_put(c, "user:12");
    CHECK_EQ(rcache_invalidate_user(c, "12", &n), RCACHE_OK);
    CHECK_EQ(n, 1);
    CHECK(ct_exists(o, "user:12") && ct_exists(o, "user:12:credits"));
    CHECK_EQ(rcache_invalidate_user(o, "12", &n), RCACHE_OK);
    CHECK_EQ(n, 2);
  }
}

/* ---- key_prefix namespaces typed values, patterns and flush ---------------------------------- */

typedef struct {
  int n;
  char names[8][256];
} tc_names;

static bool tc_collect(const char *key, size_t len, void *ud) {
  tc_names *t = ud;
  if (t->n < 8 && len < sizeof t->names[0]) {
    memcpy(t->names[t->n], key, len);
    t->names[t->n][len] = '\0';
  }
  t->n++;
  return true;
}

CONTRACT_TEST(key_prefix_namespaces) {
  rcache *a = ct_open_sub(e, "a:", NULL), *b = ct_open_sub(e, "b:", NULL);
  if (!a || !b) return;
  CHECK_EQ(rcache_set_i64(a, "user:12:credits", 100, 0), RCACHE_OK);
  CHECK_EQ(rcache_set_i64(b, "user:12:credits", 200, 0), RCACHE_OK);
  int64_t v = 0;
  CHECK_EQ(rcache_get_i64(a, "user:12:credits", &v), RCACHE_OK);
  CHECK_EQ(v, 100);
  tc_names t = {0};
  CHECK_EQ(rcache_scan(a, "*", 0, tc_collect, &t), RCACHE_OK);
  CHECK_EQ(t.n, 1);
  CHECK_STR(t.names[0], "user:12:credits"); /* the handle never sees its prefix */
  if (ct_shared(e)) {                       /* e->c sees the namespace around a: and b: */
    CT_VALUE_IS(e->c, "a:user:12:credits", "100");
    CT_VALUE_IS(e->c, "b:user:12:credits", "200");
    CHECK_EQ(rcache_flush(a), RCACHE_OK);                 /* only a's namespace */
    CHECK(ct_wait_gone(e->c, "a:user:12:credits", 2000)); /* another handle: may take a moment */
    CT_VALUE_IS(e->c, "b:user:12:credits", "200");
    uint64_t n = 0;
    CHECK_EQ(rcache_delete_pattern(b, "user:*:credits", &n), RCACHE_OK);
    CHECK_EQ(n, 1);
  } else {
    CHECK_EQ(rcache_flush(a), RCACHE_OK);
    CHECK(ct_absent(a, "user:12:credits"));
  }
}

/* ---- keys longer than max_key_bytes ---------------------------------------------------------- */

CONTRACT_TEST(long_keys_digest_names) {
  size_t pl = ct_prefix_len("long:"); /* the URL's key_prefix and the namespaces */
  rcache_options o;
  rcache_options_init(&o);
  o.max_key_bytes = 200;
  rcache *plain = ct_open_sub(e, "long:", &o);
  o.long_key_digest = true;
  rcache *dig = ct_open_sub(e, "long:", &o);
  o.max_key_bytes = pl + RCACHE_KEY_DIGEST_SUFFIX_LEN - 1; /* no room for a digest */
  rcache *tight = ct_open_sub(e, "long:", &o);
  if (!plain || !dig || !tight) return;
  char key[501], key2[501];
  memcpy(key, "user:12:", 8);
  memset(key + 8, 'y', 492);
  key[500] = '\0';
  memcpy(key2, key, sizeof key);
  key2[499] = 'z';
  CHECK_EQ(rcache_set_str(plain, key, "v", 0), RCACHE_ETOOBIG);
  CHECK(ct_errmsg_has(plain, "max_key_bytes"));
  CHECK_EQ(rcache_set_str(tight, key, "v", 0), RCACHE_ETOOBIG);
  CHECK_EQ(rcache_set_str(dig, key, "long", 0), RCACHE_OK);
  char *got = NULL;
  CHECK_EQ(rcache_get_str(dig, key, &got), RCACHE_OK);
  CHECK_STR(got, "long");
  free(got);
  CHECK_EQ(rcache_get_str(dig, key2, &got), RCACHE_MISS); /* same head, other key */
  /* stored under rcache_key_digest(key, max_key_bytes - prefix) */
  char name[256];
  CHECK_EQ(rcache_key_digest(name, sizeof name, key, 200 - pl), (int)(200 - pl));
  tc_names t = {0};
  CHECK_EQ(rcache_scan(dig, "*", 0, tc_collect, &t), RCACHE_OK);
  CHECK_EQ(t.n, 1);
  CHECK_STR(t.names[0], name);
  CHECK(strstr(t.names[0], ":sha256:") != NULL);
  /* batches use the same names */
  const char *keys[] = {key, key2, "short"};
  rcache_value vals[3] = {{"long", 4}, {"long2", 5}, {"s", 1}};
  CHECK_EQ(rcache_set_many(dig, keys, vals, 3, 0), RCACHE_OK);
  rcache_value out[3];
  rcache_status st[3];
  CHECK_EQ(rcache_get_many(dig, keys, 3, out, st), RCACHE_OK);
  CHECK(st[0] == RCACHE_OK && out[0].len == 4 && memcmp(out[0].data, "long", 4) == 0);
  CHECK(st[1] == RCACHE_OK && out[1].len == 5 && memcmp(out[1].data, "long2", 5) == 0);
  CHECK(st[2] == RCACHE_OK && out[2].len == 1);
  for (int i = 0; i < 3; i++)
    rcache_value_free(&out[i]);
  CHECK_EQ(rcache_get_many(plain, keys, 3, out, st), RCACHE_ETOOBIG);
  /* the kept head still belongs to user 12 */
  uint64_t n = 0;
  CHECK_EQ(rcache_invalidate_user(dig, "12", &n), RCACHE_OK);
  CHECK_EQ(n, 2);
  CHECK(ct_exists(dig, "short"));
  CHECK_EQ(rcache_flush(dig), RCACHE_OK);
}
