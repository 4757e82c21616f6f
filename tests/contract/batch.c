/* SPDX-License-Identifier: BSD-3-Clause */
/* get_many / set_many. */
#include <stdio.h>
#include <string.h>

#include "contract.h"

CONTRACT_TEST(get_many_with_missing_keys) {
  static const char nul[] = {'x', '\0', 'y'};
  CHECK_EQ(rcache_set(e->c, "a", "alpha", 5, 0), RCACHE_OK);
  CHECK_EQ(rcache_set(e->c, "c", nul, 3, 0), RCACHE_OK);
  CHECK_EQ(rcache_set(e->c, "e", "", 0, 0), RCACHE_OK);
  const char *keys[] = {"a", "b", "c", "d", "e", "a"};
  rcache_value vals[6];
  rcache_status st[6];
  CHECK_EQ(rcache_get_many(e->c, keys, 6, vals, st), RCACHE_OK);
  CHECK_EQ(st[0], RCACHE_OK);
  CHECK(vals[0].len == 5 && vals[0].data && memcmp(vals[0].data, "alpha", 6) == 0);
  CHECK_EQ(st[1], RCACHE_MISS);
  CHECK(vals[1].data == NULL && vals[1].len == 0);
  CHECK_EQ(st[2], RCACHE_OK);
  CHECK(vals[2].len == 3 && vals[2].data && memcmp(vals[2].data, nul, 3) == 0);
  CHECK_EQ(st[3], RCACHE_MISS);
  CHECK_EQ(st[4], RCACHE_OK);
  CHECK_EQ(vals[4].len, 0);
  CHECK_EQ(st[5], RCACHE_OK); /* a key asked twice is answered twice */
  CHECK(vals[5].len == 5 && vals[5].data && memcmp(vals[5].data, "alpha", 5) == 0);
  for (int i = 0; i < 6; i++)
    rcache_value_free(&vals[i]);
  /* n == 0: nothing to do, NULL arrays allowed */
  CHECK_EQ(rcache_get_many(e->c, NULL, 0, NULL, NULL), RCACHE_OK);
  CHECK_EQ(rcache_get_many(e->c, keys, 0, vals, st), RCACHE_OK);
}

CONTRACT_TEST(set_many_then_read) {
  const char *keys[] = {"m:1", "m:2", "m:3"};
  rcache_value vals[] = {{(char *)"one", 3}, {(char *)"t\0o", 3}, {NULL, 0}};
  CHECK_EQ(rcache_set_many(e->c, keys, vals, 3, 0), RCACHE_OK);
  CHECK(ct_value_is(e->c, "m:1", "one", 3));
  CHECK(ct_value_is(e->c, "m:2", "t\0o", 3));
  CHECK(ct_value_is(e->c, "m:3", "", 0));
  CHECK_EQ(ct_ttl(e->c, "m:1"), -1);
  /* with a TTL every key gets it; overwriting replaces values */
  rcache_value vals2[] = {{(char *)"uno", 3}, {(char *)"dos", 3}, {(char *)"tres", 4}};
  CHECK_EQ(rcache_set_many(e->c, keys, vals2, 3, RCACHE_TTL_MEDIUM), RCACHE_OK);
  for (int i = 0; i < 3; i++) {
    int64_t t = ct_ttl(e->c, keys[i]);
    CHECK_MSG(t > 0 && t <= RCACHE_TTL_MEDIUM, "%s ttl %lld", keys[i], (long long)t);
  }
  CHECK(ct_value_is(e->c, "m:3", "tres", 4));
  CHECK_EQ(rcache_set_many(e->c, NULL, NULL, 0, 0), RCACHE_OK); /* n == 0 */
  /* a bad element refuses the whole batch before anything is written */
  const char *bad_keys[] = {"n:1", "", "n:3"};
  CHECK_EQ(rcache_set_many(e->c, bad_keys, vals, 3, 0), RCACHE_EINVAL);
  CHECK(!ct_exists(e->c, "n:1"));
  const char *keys2[] = {"n:1", "n:2"};
  rcache_value bad_vals[] = {{(char *)"ok", 2}, {NULL, 4}};
  CHECK_EQ(rcache_set_many(e->c, keys2, bad_vals, 2, 0), RCACHE_EINVAL);
  CHECK(!ct_exists(e->c, "n:1"));
  CHECK_EQ(rcache_set_many(e->c, keys2, vals, 2, -1), RCACHE_EINVAL);
  CHECK(!ct_exists(e->c, "n:1"));
  const char *null_key[] = {"n:1", NULL};
  CHECK_EQ(rcache_set_many(e->c, null_key, vals, 2, 0), RCACHE_EINVAL);
  rcache_value out[2];
  rcache_status st[2];
  CHECK_EQ(rcache_get_many(e->c, null_key, 2, out, st), RCACHE_EINVAL);
}

CONTRACT_TEST(many_keys_in_one_batch) {
  enum { N = 300 };
  static char names[N][16], data[N][16];
  const char *keys[N];
  rcache_value vals[N], got[N];
  rcache_status st[N];
  for (int i = 0; i < N; i++) {
    snprintf(names[i], sizeof names[i], "b:%d", i);
    snprintf(data[i], sizeof data[i], "value-%d", i * 7);
    keys[i] = names[i];
    vals[i] = (rcache_value){data[i], strlen(data[i])};
  }
  CHECK_EQ(rcache_set_many(e->c, keys, vals, N, 0), RCACHE_OK);
  CHECK_EQ(rcache_delete(e->c, "b:17"), RCACHE_OK);
  CHECK_EQ(rcache_get_many(e->c, keys, N, got, st), RCACHE_OK);
  int ok = 0;
  for (int i = 0; i < N; i++) {
    if (i == 17) {
      CHECK_EQ(st[i], RCACHE_MISS);
    } else {
      ok += st[i] == RCACHE_OK && got[i].len == vals[i].len &&
            memcmp(got[i].data, vals[i].data, vals[i].len) == 0;
    }
    rcache_value_free(&got[i]);
  }
  CHECK_EQ(ok, N - 1);
}
