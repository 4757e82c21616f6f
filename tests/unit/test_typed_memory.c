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

int main(void) {
  typed_checks_run("memory://", false);
  none_backend();
  return test_report("test_typed_memory");
}
