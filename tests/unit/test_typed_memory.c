/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Typed helpers, JSON, key helpers and namespaces over memory:// (tests/typed_checks.h, the
 * same checks the integration test runs against redis-server), and over none://, where
 * every read misses and every get_or_set runs its loader.
 */
#include "test.h"
#include "typed_checks.h"

static json_t *load_doc(void *ud) {
  (*(int *)ud)++;
  return json_pack("{s:i}", "id", 1);
}

static void none_backend(void) {
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, "none://", NULL), RCACHE_OK);
  if (!c) return;
  char *s = NULL;
  int64_t i = 7;
  double d = 7;
  json_t *j = NULL;
  CHECK_EQ(rcache_set_str(c, "k", "v", 0), RCACHE_OK);
  CHECK_EQ(rcache_get_str(c, "k", &s), RCACHE_MISS);
  CHECK(s == NULL);
  CHECK_EQ(rcache_set_i64(c, "k", 1, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_i64(c, "k", &i), RCACHE_MISS);
  CHECK_EQ(i, 0);
  CHECK_EQ(rcache_set_double(c, "k", 0.5, 0), RCACHE_OK);
  CHECK_EQ(rcache_set_double(c, "k", NAN, 0), RCACHE_EINVAL); /* still refused */
  CHECK_EQ(rcache_get_double(c, "k", &d), RCACHE_MISS);
  CHECK_EQ(rcache_get_json(c, "k", &j), RCACHE_MISS);
  int calls = 0;
  for (int n = 0; n < 2; n++) {
    j = NULL;
    CHECK_EQ(rcache_get_or_set_json(c, "k", 60, load_doc, &calls, &j), RCACHE_OK);
    CHECK(j && json_integer_value(json_object_get(j, "id")) == 1);
    json_decref(j);
  }
  CHECK_EQ(calls, 2); /* nothing is cached, the loader runs every time */
  tc_user_loader l = {0, RCACHE_OK, {3, "bob", "user"}};
  tc_user u = {0, "", ""};
  CHECK_EQ(rcache_get_or_set_obj(c, "o", 60, &tc_user_codec, tc_load_user, &l, &u), RCACHE_OK);
  CHECK(tc_user_eq(&u, &l.value));
  uint64_t n = 9;
  CHECK_EQ(rcache_invalidate_user(c, "12", &n), RCACHE_OK);
  CHECK_EQ(n, 0);
  rcache_close(c);
}

/* Random bytes at a key: every typed read answers OK or its documented error, never
 * crashes (run under ASan), and leaves its output zeroed when it fails. */
static void random_values(void) {
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, "memory://", NULL), RCACHE_OK);
  if (!c) return;
  uint64_t x = 0x2545f4914f6cdd1du;
  const char alphabet[] = "0123456789-+.eE \"{}[]:,nulltruefalseinfNaN\\u|\x00\xff";
  int bad = 0, decoded = 0;
  for (int i = 0; i < 3000; i++) {
    char buf[64];
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t len = x % sizeof buf;
    for (size_t k = 0; k < len; k++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      buf[k] = i % 2 ? (char)(x & 0xff) : alphabet[x % (sizeof alphabet - 1)];
    }
    if (rcache_set(c, "r", buf, len, 0) != RCACHE_OK) bad++;
    int64_t n = 1;
    double d = 1;
    char *str = (char *)"x";
    json_t *j = (json_t *)1;
    tc_user u = {0, "", ""};
    rcache_status s = rcache_get_i64(c, "r", &n);
    if (!(s == RCACHE_OK || (s == RCACHE_ETYPE && n == 0))) bad++;
    s = rcache_get_double(c, "r", &d);
    if (!(s == RCACHE_OK ? !isnan(d) : (s == RCACHE_ETYPE || s == RCACHE_ERANGE) && d == 0)) bad++;
    s = rcache_get_str(c, "r", &str);
    if (s == RCACHE_OK)
      free(str);
    else if (!(s == RCACHE_EDECODE && str == NULL))
      bad++;
    s = rcache_get_json(c, "r", &j);
    if (s == RCACHE_OK)
      decoded++, json_decref(j);
    else if (!(s == RCACHE_EDECODE && j == NULL))
      bad++;
    s = rcache_get_obj(c, "r", &tc_user_codec, &u);
    if (!(s == RCACHE_OK || s == RCACHE_EDECODE)) bad++;
  }
  CHECK_EQ(bad, 0);
  CHECK(decoded > 0); /* the alphabet does produce some valid JSON ("1", "[]", "null"...) */
  rcache_close(c);
}

int main(void) {
  random_values();
  typed_checks_run("memory://", false);
  none_backend();
  return test_report("test_typed_memory");
}
