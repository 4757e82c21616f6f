/* SPDX-License-Identifier: BSD-3-Clause */
/* The typed helpers (strings, int64, double, user codecs) and JSON, on every backend:
 * stored as the plain text another client would write, read back exactly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "rcache/json.h"

CONTRACT_TEST(typed_strings_and_numbers) {
  char *s = (char *)"junk";
  CHECK_EQ(rcache_get_str(e->c, "s", &s), RCACHE_MISS);
  CHECK(s == NULL);
  CHECK_EQ(rcache_set_str(e->c, "s", "héllo wörld", 0), RCACHE_OK);
  CHECK_EQ(rcache_get_str(e->c, "s", &s), RCACHE_OK);
  CHECK_STR(s, "héllo wörld");
  free(s);
  CHECK(ct_value_is(e->c, "s", "héllo wörld", strlen("héllo wörld"))); /* no envelope */
  CHECK_EQ(rcache_set(e->c, "nul", "a\0b", 3, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_str(e->c, "nul", &s), RCACHE_EDECODE); /* would read cut short */
  CHECK(s == NULL);
  CHECK_EQ(rcache_set_str(e->c, "s", NULL, 0), RCACHE_EINVAL);

  int64_t n = 0;
  CHECK_EQ(rcache_set_i64(e->c, "i", -42, 0), RCACHE_OK);
  CHECK(ct_value_is(e->c, "i", "-42", 3));
  CHECK_EQ(rcache_incr(e->c, "i", 2, &n), RCACHE_OK); /* INCR works on it */
  CHECK_EQ(rcache_get_i64(e->c, "i", &n), RCACHE_OK);
  CHECK_EQ(n, -40);
  CHECK_EQ(rcache_set_i64(e->c, "i", INT64_MIN, RCACHE_TTL_SHORT), RCACHE_OK);
  CHECK_EQ(rcache_get_i64(e->c, "i", &n), RCACHE_OK);
  CHECK(n == INT64_MIN);
  CHECK(ct_ttl(e->c, "i") > 0);
  const char *not_int[] = {"4.5", "012", " 1", "abc", "9223372036854775808"};
  for (size_t i = 0; i < sizeof not_int / sizeof not_int[0]; i++) {
    CHECK_EQ(rcache_set(e->c, "bad", not_int[i], strlen(not_int[i]), 0), RCACHE_OK);
    n = 5;
    CHECK_MSG(rcache_get_i64(e->c, "bad", &n) == RCACHE_ETYPE, "get_i64 of \"%s\"", not_int[i]);
  }
  CHECK_EQ(rcache_get_i64(e->c, "absent", &n), RCACHE_MISS);

  double d = 0;
  CHECK_EQ(rcache_set_double(e->c, "d", 0.1, 0), RCACHE_OK);
  CHECK(ct_value_is(e->c, "d", "0.1", 3));
  CHECK_EQ(rcache_get_double(e->c, "d", &d), RCACHE_OK);
  CHECK(d == 0.1);
  const double vals[] = {-0.0, 1e300, 4.9406564584124654e-324, -123.456, INFINITY, -INFINITY};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    CHECK_EQ(rcache_set_double(e->c, "d", vals[i], 0), RCACHE_OK);
    d = 7;
    CHECK_EQ(rcache_get_double(e->c, "d", &d), RCACHE_OK);
    CHECK_MSG(d == vals[i] && signbit(d) == signbit(vals[i]), "%.17g read as %.17g", vals[i], d);
  }
  CHECK_EQ(rcache_set_double(e->c, "d", NAN, 0), RCACHE_EINVAL);
  CHECK_EQ(rcache_set(e->c, "d", "abc", 3, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_double(e->c, "d", &d), RCACHE_ETYPE);
  CHECK_EQ(rcache_set(e->c, "d", "1e999", 5, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_double(e->c, "d", &d), RCACHE_ERANGE);
}

/* A user codec: "<id>|<name>" */
typedef struct {
  int id;
  char name[32];
} user;

static rcache_status enc(const void *obj, rcache_value *out, void *ud) {
  const user *u = obj;
  char buf[64];
  int n = snprintf(buf, sizeof buf, "%d|%s", u->id, u->name);
  if (!(out->data = malloc((size_t)n + 1))) return RCACHE_ENOMEM;
  memcpy(out->data, buf, (size_t)n + 1);
  out->len = (size_t)n;
  return RCACHE_OK;
}

static rcache_status dec(const char *data, size_t len, void *obj, void *ud) {
  user *u = obj;
  const char *bar = memchr(data, '|', len);
  if (!bar || bar == data || (size_t)(data + len - bar - 1) >= sizeof u->name)
    return RCACHE_EDECODE;
  u->id = atoi(data);
  memcpy(u->name, bar + 1, (size_t)(data + len - bar - 1));
  u->name[data + len - bar - 1] = '\0';
  return RCACHE_OK;
}

static int user_loads;

static rcache_status load_user(void *ud, void *obj) {
  user_loads++;
  user *u = obj;
  u->id = 12;
  snprintf(u->name, sizeof u->name, "ada");
  return ud ? RCACHE_EIO : RCACHE_OK;
}

CONTRACT_ANY_TEST(typed_objects) {
  const rcache_codec codec = {enc, dec, NULL};
  user u = {7, "grace"}, got = {0, ""};
  user_loads = 0;
  CHECK_EQ(rcache_set_obj(e->c, "u7", &codec, &u, 0), RCACHE_OK);
  rcache_status s = rcache_get_obj(e->c, "u7", &codec, &got);
  CHECK_EQ(s, e->none ? RCACHE_MISS : RCACHE_OK);
  if (!e->none) {
    CHECK(got.id == 7 && strcmp(got.name, "grace") == 0);
    CHECK(ct_value_is(e->c, "u7", "7|grace", 7));
  }
  /* cache-aside: a miss loads once, then (with a cache) hits */
  memset(&got, 0, sizeof got);
  CHECK_EQ(rcache_get_or_set_obj(e->c, "u12", 60, &codec, load_user, NULL, &got), RCACHE_OK);
  CHECK(got.id == 12 && strcmp(got.name, "ada") == 0);
  memset(&got, 0, sizeof got);
  CHECK_EQ(rcache_get_or_set_obj(e->c, "u12", 60, &codec, load_user, NULL, &got), RCACHE_OK);
  CHECK(got.id == 12 && strcmp(got.name, "ada") == 0);
  CHECK_EQ(user_loads, e->none ? 2 : 1);
  /* a failing loader: RCACHE_ELOADER, nothing cached */
  CHECK_EQ(rcache_get_or_set_obj(e->c, "u13", 60, &codec, load_user, (void *)1, &got),
           RCACHE_ELOADER);
  CHECK(!ct_exists(e->c, "u13"));
  if (e->none) return;
  /* bytes the decoder refuses: EDECODE on read, reloaded and overwritten by get_or_set */
  CHECK_EQ(rcache_set(e->c, "u12", "garbage", 7, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_obj(e->c, "u12", &codec, &got), RCACHE_EDECODE);
  user_loads = 0;
  CHECK_EQ(rcache_get_or_set_obj(e->c, "u12", 60, &codec, load_user, NULL, &got), RCACHE_OK);
  CHECK_EQ(user_loads, 1);
  CHECK(ct_value_is(e->c, "u12", "12|ada", 6));
}

static int jloads;

static json_t *load_json(void *ud) {
  jloads++;
  return ud ? NULL : json_pack("{s:i,s:s}", "id", 1, "name", "x");
}

CONTRACT_ANY_TEST(json_values) {
  json_t *v = json_pack("[i,s,b,n]", 1, "two", 1), *got = NULL;
  CHECK(v != NULL);
  CHECK_EQ(rcache_set_json(e->c, "j", v, 0), RCACHE_OK);
  rcache_status s = rcache_get_json(e->c, "j", &got);
  CHECK_EQ(s, e->none ? RCACHE_MISS : RCACHE_OK);
  if (!e->none) {
    CHECK(got && json_equal(got, v));
    CHECK(ct_value_is(e->c, "j", "[1,\"two\",true,null]", 19)); /* compact, no envelope */
  }
  json_decref(got);
  json_decref(v);
  got = NULL;
  jloads = 0;
  CHECK_EQ(rcache_get_or_set_json(e->c, "jl", 60, load_json, NULL, &got), RCACHE_OK);
  CHECK(got && json_integer_value(json_object_get(got, "id")) == 1);
  json_decref(got);
  got = NULL;
  CHECK_EQ(rcache_get_or_set_json(e->c, "jl", 60, load_json, NULL, &got), RCACHE_OK);
  json_decref(got);
  got = NULL;
  CHECK_EQ(jloads, e->none ? 2 : 1);
  CHECK_EQ(rcache_get_or_set_json(e->c, "jbad", 60, load_json, (void *)1, &got), RCACHE_ELOADER);
  CHECK(got == NULL);
  CHECK(!ct_exists(e->c, "jbad"));
  if (e->none) return;
  /* JSON written by another client is read; invalid JSON is EDECODE with a reason */
  CHECK_EQ(rcache_set(e->c, "ext", "{\"a\": [1, 2.5]}", 15, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_json(e->c, "ext", &got), RCACHE_OK);
  CHECK(got && json_array_size(json_object_get(got, "a")) == 2);
  json_decref(got);
  got = NULL;
  CHECK_EQ(rcache_set(e->c, "ext", "{\"a\": ", 6, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_json(e->c, "ext", &got), RCACHE_EDECODE);
  CHECK(got == NULL);
  CHECK(rcache_errmsg(e->c)[0] != '\0');
}

CONTRACT_NONE_TEST(none_typed_reads_miss) {
  char *s = NULL;
  int64_t n = 3;
  double d = 3;
  CHECK_EQ(rcache_set_str(e->c, "s", "v", 0), RCACHE_OK);
  CHECK_EQ(rcache_get_str(e->c, "s", &s), RCACHE_MISS);
  CHECK(s == NULL);
  CHECK_EQ(rcache_set_i64(e->c, "i", 5, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_i64(e->c, "i", &n), RCACHE_MISS);
  CHECK_EQ(rcache_set_double(e->c, "d", 0.5, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_double(e->c, "d", &d), RCACHE_MISS);
}
