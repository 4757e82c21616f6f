/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The typed helpers' behaviour, written once and run against every backend:
 * tests/unit/test_typed_memory.c (memory://) and tests/integration/test_typed.c (a real
 * redis-server over TCP and a Unix socket). Include after "test.h".
 *
 * typed_checks_run(url, shared) runs everything in a fresh key_prefix namespace; `shared`
 * says whether two handles opened on url see the same data (true for a server), which
 * enables the cross-namespace checks. typed_checks_run_near() does the same with a near
 * cache on the main handle.
 */
#ifndef RCACHE_TYPED_CHECKS_H
#define RCACHE_TYPED_CHECKS_H

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "rcache/json.h"
#include "rcache/keys.h"
#include "rcache/rcache.h"

typedef struct tc_env {
  const char *url;
  char ns[64]; /* key_prefix of this run */
  bool shared;
} tc_env;

static rcache *tc_open_opts(const tc_env *e, rcache_options *o) {
  rcache *c = NULL;
  rcache_status s = rcache_open(&c, e->url, o);
  CHECK_MSG(s == RCACHE_OK, "open %s: %s %s", e->url, rcache_strerror(s), rcache_errmsg(NULL));
  return c;
}

static rcache *tc_open(const tc_env *e, const char *prefix) {
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = prefix;
  return tc_open_opts(e, &o);
}

/* The stored bytes at key are exactly `want` (len bytes). */
static bool tc_raw_is(rcache *c, const char *key, const char *want, size_t len) {
  rcache_value v;
  bool ok = rcache_get(c, key, &v) == RCACHE_OK && v.len == len && memcmp(v.data, want, len) == 0;
  if (!ok)
    fprintf(stderr, "  raw %s: got \"%.*s\"\n", key, (int)(v.len > 80 ? 80 : v.len),
            v.data ? v.data : "(none)");
  rcache_value_free(&v);
  return ok;
}
#define TC_RAW_IS(c, key, lit) CHECK(tc_raw_is((c), (key), (lit), sizeof(lit) - 1))

static bool tc_absent(rcache *c, const char *key) {
  bool ex = true;
  return rcache_exists(c, key, &ex) == RCACHE_OK && !ex;
}

static bool tc_errmsg_has(rcache *c, const char *what) {
  const char *m = rcache_errmsg(c);
  if (strstr(m, what)) return true;
  fprintf(stderr, "  errmsg \"%s\" lacks \"%s\"\n", m, what);
  return false;
}

/* ---- strings --------------------------------------------------------------------------------- */

static void tc_strings(rcache *c) {
  const char *vals[] = {"hello", "", "h\xc3\xa9llo \xe2\x9c\x93", "line\r\nSET x y"};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    char *got = NULL;
    CHECK_EQ(rcache_set_str(c, "s:v", vals[i], 0), RCACHE_OK);
    CHECK_EQ(rcache_get_str(c, "s:v", &got), RCACHE_OK);
    CHECK_STR(got, vals[i]);
    free(got);
  }
  size_t big = 64 * 1024;
  char *b = malloc(big + 1);
  for (size_t i = 0; i < big; i++)
    b[i] = (char)('a' + i % 26);
  b[big] = '\0';
  char *got = NULL;
  CHECK_EQ(rcache_set_str(c, "s:big", b, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_str(c, "s:big", &got), RCACHE_OK);
  CHECK(got && strlen(got) == big && strcmp(got, b) == 0);
  free(got);
  free(b);
  /* TTL applies */
  int64_t ttl = 0;
  CHECK_EQ(rcache_set_str(c, "s:ttl", "x", 100), RCACHE_OK);
  CHECK_EQ(rcache_ttl(c, "s:ttl", &ttl), RCACHE_OK);
  CHECK(ttl > 0 && ttl <= 100);
  /* miss, NUL inside, bad arguments */
  got = (char *)"stale";
  CHECK_EQ(rcache_get_str(c, "s:absent", &got), RCACHE_MISS);
  CHECK(got == NULL);
  CHECK_EQ(rcache_set(c, "s:nul", "a\0b", 3, 0), RCACHE_OK);
  got = (char *)"stale";
  CHECK_EQ(rcache_get_str(c, "s:nul", &got), RCACHE_EDECODE);
  CHECK(got == NULL);
  CHECK(tc_errmsg_has(c, "NUL byte at offset 1"));
  CHECK_EQ(rcache_set_str(c, "s:v", NULL, 0), RCACHE_EINVAL);
  CHECK(tc_errmsg_has(c, "NULL"));
  CHECK_EQ(rcache_get_str(c, "s:v", NULL), RCACHE_EINVAL);
  CHECK_EQ(rcache_set_str(c, "", "x", 0), RCACHE_EINVAL);
  CHECK_EQ(rcache_set_str(c, "s:v", "x", -1), RCACHE_EINVAL);
  CHECK_EQ(rcache_set_str(NULL, "s:v", "x", 0), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_str(NULL, "s:v", &got), RCACHE_EINVAL);
}

/* ---- integers -------------------------------------------------------------------------------- */

static void tc_ints(rcache *c) {
  const int64_t vals[] = {0, 1, -1, 42, 1000000007, INT64_MAX, INT64_MIN, INT64_MIN + 1};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    char want[24];
    int n = snprintf(want, sizeof want, "%" PRId64, vals[i]);
    int64_t got = 7;
    CHECK_EQ(rcache_set_i64(c, "i:v", vals[i], 0), RCACHE_OK);
    CHECK(tc_raw_is(c, "i:v", want, (size_t)n)); /* decimal text other clients read */
    CHECK_EQ(rcache_get_i64(c, "i:v", &got), RCACHE_OK);
    CHECK(got == vals[i]);
  }
  TC_RAW_IS(c, "i:v", "-9223372036854775807");
  /* INCR works on what set_i64 wrote, and get_i64 reads what INCR wrote */
  int64_t n = 0, got = 0;
  CHECK_EQ(rcache_set_i64(c, "i:ctr", 41, 0), RCACHE_OK);
  CHECK_EQ(rcache_incr(c, "i:ctr", 1, &n), RCACHE_OK);
  CHECK_EQ(n, 42);
  CHECK_EQ(rcache_incr(c, "i:fresh", -5, &n), RCACHE_OK);
  CHECK_EQ(rcache_get_i64(c, "i:fresh", &got), RCACHE_OK);
  CHECK_EQ(got, -5);
  CHECK_EQ(rcache_set_i64(c, "i:max", INT64_MAX, 0), RCACHE_OK);
  CHECK_EQ(rcache_incr(c, "i:max", 1, &n), RCACHE_ERANGE);
  CHECK_EQ(rcache_get_i64(c, "i:max", &got), RCACHE_OK);
  CHECK(got == INT64_MAX);
  /* exactly what INCR refuses is refused, with RCACHE_ETYPE, as rcache_incr does */
  const char *bad[] = {"4.5",
                       "abc",
                       " 1",
                       "1 ",
                       "012",
                       "+1",
                       "-0",
                       "",
                       "1e3",
                       "0x10",
                       "9223372036854775808",
                       "-9223372036854775809",
                       "99999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    got = 7;
    CHECK_EQ(rcache_set(c, "i:bad", bad[i], strlen(bad[i]), 0), RCACHE_OK);
    rcache_status s = rcache_get_i64(c, "i:bad", &got);
    CHECK_MSG(s == RCACHE_ETYPE && got == 0, "\"%s\": %d", bad[i], (int)s);
    if (bad[i][0]) CHECK_EQ(rcache_incr(c, "i:bad", 1, &n), RCACHE_ETYPE); /* same rule */
  }
  CHECK_EQ(rcache_get_i64(c, "i:bad", &got), RCACHE_ETYPE);
  CHECK(tc_errmsg_has(c, "not a decimal int64"));
  got = 7;
  CHECK_EQ(rcache_get_i64(c, "i:absent", &got), RCACHE_MISS);
  CHECK_EQ(got, 0);
  CHECK_EQ(rcache_get_i64(c, "i:v", NULL), RCACHE_EINVAL);
}

/* ---- doubles --------------------------------------------------------------------------------- */

static bool tc_same_bits(double a, double b) {
  return memcmp(&a, &b, sizeof a) == 0;
}

static void tc_doubles(rcache *c) {
  const double vals[] = {0.0,
                         -0.0,
                         0.1,
                         -2.5e-3,
                         1.0 / 3,
                         1e300,
                         DBL_MAX,
                         -DBL_MAX,
                         DBL_MIN,
                         DBL_TRUE_MIN,
                         -DBL_TRUE_MIN,
                         DBL_MIN - DBL_TRUE_MIN,
                         9007199254740993.0,
                         INFINITY,
                         -INFINITY};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    double got = 7;
    CHECK_EQ(rcache_set_double(c, "d:v", vals[i], 0), RCACHE_OK);
    CHECK_EQ(rcache_get_double(c, "d:v", &got), RCACHE_OK);
    CHECK_MSG(tc_same_bits(got, vals[i]), "%a read back as %a", vals[i], got);
  }
  /* the stored text is what people (and other languages) expect */
  CHECK_EQ(rcache_set_double(c, "d:t", 0.1, 0), RCACHE_OK);
  TC_RAW_IS(c, "d:t", "0.1");
  CHECK_EQ(rcache_set_double(c, "d:t", -0.0, 0), RCACHE_OK);
  TC_RAW_IS(c, "d:t", "-0");
  CHECK_EQ(rcache_set_double(c, "d:t", 42, 0), RCACHE_OK);
  TC_RAW_IS(c, "d:t", "42");
  CHECK_EQ(rcache_set_double(c, "d:t", -INFINITY, 0), RCACHE_OK);
  TC_RAW_IS(c, "d:t", "-inf");
  /* NaN is refused and nothing is written */
  CHECK_EQ(rcache_set_double(c, "d:nan", NAN, 0), RCACHE_EINVAL);
  CHECK(tc_errmsg_has(c, "NaN"));
  CHECK(tc_absent(c, "d:nan"));
  /* numbers other clients write */
  const struct {
    const char *text;
    double v;
  } ok[] = {{"42", 42}, {"3.14", 3.14}, {"-1e-3", -1e-3}, {"Infinity", INFINITY}, {"1E5", 1e5}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    double got = 7;
    CHECK_EQ(rcache_set(c, "d:o", ok[i].text, strlen(ok[i].text), 0), RCACHE_OK);
    CHECK_EQ(rcache_get_double(c, "d:o", &got), RCACHE_OK);
    CHECK_MSG(tc_same_bits(got, ok[i].v), "\"%s\" read as %.17g", ok[i].text, got);
  }
  const struct {
    const char *text;
    rcache_status want;
  } bad[] = {{"abc", RCACHE_ETYPE},    {"nan", RCACHE_ETYPE},    {" 1", RCACHE_ETYPE},
             {"1 ", RCACHE_ETYPE},     {"", RCACHE_ETYPE},       {"1,5", RCACHE_ETYPE},
             {"1e999", RCACHE_ERANGE}, {"-1e999", RCACHE_ERANGE}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    double got = 7;
    CHECK_EQ(rcache_set(c, "d:bad", bad[i].text, strlen(bad[i].text), 0), RCACHE_OK);
    rcache_status s = rcache_get_double(c, "d:bad", &got);
    CHECK_MSG(s == bad[i].want && got == 0, "\"%s\": %d", bad[i].text, (int)s);
  }
  double got = 7;
  CHECK_EQ(rcache_get_double(c, "d:absent", &got), RCACHE_MISS);
  CHECK(got == 0);
  CHECK_EQ(rcache_get_double(c, "d:v", NULL), RCACHE_EINVAL);
}

/* ---- a user codec: "id|name|role" ------------------------------------------------------------ */

typedef struct tc_user {
  int64_t id;
  char name[32];
  char role[16];
} tc_user;

static rcache_status tc_user_encode(const void *obj, rcache_value *out, void *ud) {
  const tc_user *u = obj;
  (void)ud;
  if (u->id < 0) return RCACHE_ERANGE; /* a refusal the caller must see as it is */
  char buf[96];
  int n = snprintf(buf, sizeof buf, "%" PRId64 "|%s|%s", u->id, u->name, u->role);
  out->data = malloc((size_t)n + 1);
  if (!out->data) return RCACHE_ENOMEM;
  memcpy(out->data, buf, (size_t)n + 1);
  out->len = (size_t)n;
  return RCACHE_OK;
}

static rcache_status tc_user_decode(const char *data, size_t len, void *obj, void *ud) {
  tc_user *u = obj;
  (void)ud;
  const char *p1 = memchr(data, '|', len);
  const char *p2 = p1 ? memchr(p1 + 1, '|', len - (size_t)(p1 + 1 - data)) : NULL;
  if (!p1 || !p2 || memchr(p2 + 1, '|', len - (size_t)(p2 + 1 - data))) return RCACHE_EDECODE;
  char *end;
  long long id = strtoll(data, &end, 10);
  size_t nl = (size_t)(p2 - p1 - 1), rl = len - (size_t)(p2 + 1 - data);
  if (end != p1 || p1 == data || nl >= sizeof u->name || rl >= sizeof u->role)
    return RCACHE_EDECODE;
  u->id = id;
  memcpy(u->name, p1 + 1, nl);
  u->name[nl] = '\0';
  memcpy(u->role, p2 + 1, rl);
  u->role[rl] = '\0';
  return RCACHE_OK;
}

static const rcache_codec tc_user_codec = {tc_user_encode, tc_user_decode, NULL};

typedef struct {
  int calls;
  rcache_status fail; /* RCACHE_OK: succeed */
  tc_user value;
} tc_user_loader;

static rcache_status tc_load_user(void *ud, void *obj) {
  tc_user_loader *l = ud;
  l->calls++;
  if (l->fail != RCACHE_OK) return l->fail;
  *(tc_user *)obj = l->value;
  return RCACHE_OK;
}

static bool tc_user_eq(const tc_user *a, const tc_user *b) {
  return a->id == b->id && strcmp(a->name, b->name) == 0 && strcmp(a->role, b->role) == 0;
}

static void tc_codec(rcache *c) {
  tc_user ada = {7, "ada", "admin"}, got = {0, "", ""};
  CHECK_EQ(rcache_set_obj(c, "o:ada", &tc_user_codec, &ada, 0), RCACHE_OK);
  TC_RAW_IS(c, "o:ada", "7|ada|admin");
  CHECK_EQ(rcache_get_obj(c, "o:ada", &tc_user_codec, &got), RCACHE_OK);
  CHECK(tc_user_eq(&got, &ada));
  CHECK_EQ(rcache_get_obj(c, "o:absent", &tc_user_codec, &got), RCACHE_MISS);
  /* a value the decoder refuses */
  CHECK_EQ(rcache_set(c, "o:bad", "garbage", 7, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_obj(c, "o:bad", &tc_user_codec, &got), RCACHE_EDECODE);
  CHECK(tc_errmsg_has(c, "decode"));
  /* the encoder's refusal comes back as it is, and nothing is written */
  tc_user neg = {-1, "x", "y"};
  CHECK_EQ(rcache_set_obj(c, "o:neg", &tc_user_codec, &neg, 0), RCACHE_ERANGE);
  CHECK(tc_absent(c, "o:neg"));
  rcache_codec half = {tc_user_encode, NULL, NULL};
  CHECK_EQ(rcache_set_obj(c, "o:x", NULL, &ada, 0), RCACHE_EINVAL);
  CHECK_EQ(rcache_set_obj(c, "o:x", &half, &ada, 0), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_obj(c, "o:ada", &half, &got), RCACHE_EINVAL);

  /* get_or_set_obj: a miss loads once and stores the encoding; a hit decodes */
  tc_user_loader l = {0, RCACHE_OK, {12, "grace", "user"}};
  tc_user u = {0, "", ""};
  CHECK_EQ(rcache_get_or_set_obj(c, "o:gs", 60, &tc_user_codec, tc_load_user, &l, &u), RCACHE_OK);
  CHECK_EQ(l.calls, 1);
  CHECK(tc_user_eq(&u, &l.value));
  TC_RAW_IS(c, "o:gs", "12|grace|user");
  memset(&u, 0, sizeof u);
  CHECK_EQ(rcache_get_or_set_obj(c, "o:gs", 60, &tc_user_codec, tc_load_user, &l, &u), RCACHE_OK);
  CHECK_EQ(l.calls, 1);
  CHECK(tc_user_eq(&u, &l.value));
  /* an undecodable cached value is reloaded and overwritten */
  CHECK_EQ(rcache_set(c, "o:gs", "v1:old-format", 13, 0), RCACHE_OK);
  memset(&u, 0, sizeof u);
  CHECK_EQ(rcache_get_or_set_obj(c, "o:gs", 60, &tc_user_codec, tc_load_user, &l, &u), RCACHE_OK);
  CHECK_EQ(l.calls, 2);
  CHECK(tc_user_eq(&u, &l.value));
  TC_RAW_IS(c, "o:gs", "12|grace|user");
  /* the loader or the encoder failing: ELOADER, nothing cached */
  tc_user_loader lf = {0, RCACHE_EIO, {1, "a", "b"}};
  CHECK_EQ(rcache_get_or_set_obj(c, "o:fail", 60, &tc_user_codec, tc_load_user, &lf, &u),
           RCACHE_ELOADER);
  CHECK(tc_absent(c, "o:fail"));
  tc_user_loader le = {0, RCACHE_OK, {-5, "a", "b"}};
  CHECK_EQ(rcache_get_or_set_obj(c, "o:fail", 60, &tc_user_codec, tc_load_user, &le, &u),
           RCACHE_ELOADER);
  CHECK(tc_absent(c, "o:fail"));
  /* reload after a bad value, and the loader fails: ELOADER, the bad value stays */
  CHECK_EQ(rcache_set(c, "o:bad2", "junk", 4, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_or_set_obj(c, "o:bad2", 60, &tc_user_codec, tc_load_user, &lf, &u),
           RCACHE_ELOADER);
  TC_RAW_IS(c, "o:bad2", "junk");
  CHECK_EQ(rcache_get_or_set_obj(c, "o:gs", 60, &tc_user_codec, NULL, &l, &u), RCACHE_EINVAL);
}

/* ---- JSON ------------------------------------------------------------------------------------ */

typedef struct {
  int calls;
  const char *text; /* parsed into the loaded value; NULL = fail */
} tc_json_loader;

static json_t *tc_load_json(void *ud) {
  tc_json_loader *l = ud;
  l->calls++;
  return l->text ? json_loads(l->text, JSON_DECODE_ANY, NULL) : NULL;
}

/* get_json(key) equals the JSON text `want`. */
static bool tc_json_is(rcache *c, const char *key, const char *want) {
  json_t *got = NULL, *w = json_loads(want, JSON_DECODE_ANY, NULL);
  rcache_status s = rcache_get_json(c, key, &got);
  bool ok = s == RCACHE_OK && w && json_equal(got, w);
  if (!ok) fprintf(stderr, "  json %s: status %d, want %s\n", key, (int)s, want);
  json_decref(got);
  json_decref(w);
  return ok;
}

static void tc_json(rcache *c) {
  /* the document: stored compact, exactly as other services write it */
  json_t *doc = json_pack("{s:i, s:s, s:{s:s}}", "id", 1, "name", "x", "meta", "role", "admin");
  CHECK_EQ(rcache_set_json(c, "j:doc", doc, 0), RCACHE_OK);
  TC_RAW_IS(c, "j:doc", "{\"id\":1,\"name\":\"x\",\"meta\":{\"role\":\"admin\"}}");
  json_t *got = NULL;
  CHECK_EQ(rcache_get_json(c, "j:doc", &got), RCACHE_OK);
  CHECK(got && json_equal(got, doc));
  json_decref(got);
  json_decref(doc);
  /* any JSON value at the top level */
  const char *any[] = {"\"h\\u00e9llo\"",
                       "9223372036854775807",
                       "-9223372036854775808",
                       "0.5",
                       "true",
                       "false",
                       "null",
                       "[]",
                       "{}",
                       "[1,[2,[3,{\"a\":null}]]]",
                       "\"a\\u0000b\""};
  for (size_t i = 0; i < sizeof any / sizeof any[0]; i++) {
    json_t *v = json_loads(any[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    CHECK_EQ(rcache_set_json(c, "j:any", v, 0), RCACHE_OK);
    got = NULL;
    CHECK_EQ(rcache_get_json(c, "j:any", &got), RCACHE_OK);
    CHECK_MSG(got && json_equal(got, v), "%s", any[i]);
    json_decref(got);
    json_decref(v);
  }
  json_t *s = json_stringn("a\0b", 3);
  CHECK_EQ(rcache_set_json(c, "j:nul", s, 0), RCACHE_OK);
  TC_RAW_IS(c, "j:nul", "\"a\\u0000b\"");
  json_decref(s);
  json_t *r = json_real(0.1);
  CHECK_EQ(rcache_set_json(c, "j:real", r, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_json(c, "j:real", &got), RCACHE_OK);
  CHECK(got && json_is_real(got) && json_real_value(got) == 0.1);
  json_decref(got);
  json_decref(r);
  /* JSON written by others: pretty-printed, with unicode escapes and real numbers */
  const char *pretty = "{\n  \"id\": 1,\n  \"tags\": [\"a\", \"b\"],\n  \"score\": 2.5e1\n}\n";
  CHECK_EQ(rcache_set(c, "j:pretty", pretty, strlen(pretty), 0), RCACHE_OK);
  CHECK(tc_json_is(c, "j:pretty", "{\"score\":25.0,\"tags\":[\"a\",\"b\"],\"id\":1}"));
  /* an integer beyond int64 (a 64-bit unsigned id) is a real, as JSON.parse reads it */
  const char *u64 = "18446744073709551615";
  CHECK_EQ(rcache_set(c, "j:u64", u64, strlen(u64), 0), RCACHE_OK);
  CHECK_EQ(rcache_get_json(c, "j:u64", &got), RCACHE_OK);
  CHECK(got && json_is_real(got) && json_real_value(got) == 18446744073709551616.0);
  json_decref(got);
  /* not JSON: RCACHE_EDECODE with jansson's reason, never a crash */
  const char *bad[] = {"{\"id\":1",       "not json", "",         "{} x",  "{\"a\":NaN}",
                       "'single'",        "[1,]",     "\xff\xfe", "1e400", /* beyond double */
                       "{\"a\":\"\xc3\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_EQ(rcache_set(c, "j:bad", bad[i], strlen(bad[i]), 0), RCACHE_OK);
    got = (json_t *)1;
    rcache_status st = rcache_get_json(c, "j:bad", &got);
    CHECK_MSG(st == RCACHE_EDECODE && got == NULL, "\"%s\": %d", bad[i], (int)st);
    CHECK(tc_errmsg_has(c, "invalid JSON at line"));
  }
  /* deeper than jansson's 2048 levels: refused, not a stack overflow */
  size_t depth = 3000;
  char *deep = malloc(2 * depth);
  memset(deep, '[', depth);
  memset(deep + depth, ']', depth);
  CHECK_EQ(rcache_set(c, "j:deep", deep, 2 * depth, 0), RCACHE_OK);
  free(deep);
  got = (json_t *)1;
  CHECK_EQ(rcache_get_json(c, "j:deep", &got), RCACHE_EDECODE);
  CHECK(got == NULL);
  CHECK(tc_errmsg_has(c, "depth"));
  got = (json_t *)1;
  CHECK_EQ(rcache_get_json(c, "j:absent", &got), RCACHE_MISS);
  CHECK(got == NULL);
  CHECK_EQ(rcache_set_json(c, "j:x", NULL, 0), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_json(c, "j:x", NULL), RCACHE_EINVAL);
  CHECK_EQ(rcache_set_json(c, "", json_null(), 0), RCACHE_EINVAL);

  /* get_or_set_json: load once, then hits; invalid stored JSON is reloaded and overwritten */
  tc_json_loader l = {0, "{\"id\":5,\"name\":\"eve\"}"};
  got = NULL;
  CHECK_EQ(rcache_get_or_set_json(c, "j:gs", 60, tc_load_json, &l, &got), RCACHE_OK);
  CHECK_EQ(l.calls, 1);
  CHECK(got && json_integer_value(json_object_get(got, "id")) == 5);
  json_decref(got);
  TC_RAW_IS(c, "j:gs", "{\"id\":5,\"name\":\"eve\"}");
  got = NULL;
  CHECK_EQ(rcache_get_or_set_json(c, "j:gs", 60, tc_load_json, &l, &got), RCACHE_OK);
  CHECK_EQ(l.calls, 1);
  CHECK(got && strcmp(json_string_value(json_object_get(got, "name")), "eve") == 0);
  json_decref(got);
  CHECK_EQ(rcache_set(c, "j:gs", "{\"id\":5,\"na", 11, 0), RCACHE_OK); /* truncated */
  got = NULL;
  rcache_stats st0, st1;
  rcache_get_stats(c, &st0);
  CHECK_EQ(rcache_get_or_set_json(c, "j:gs", 60, tc_load_json, &l, &got), RCACHE_OK);
  rcache_get_stats(c, &st1);
  CHECK_EQ(st1.loads - st0.loads, 1); /* the reload counts as a load */
  CHECK_EQ(l.calls, 2);
  CHECK(got && json_integer_value(json_object_get(got, "id")) == 5);
  json_decref(got);
  TC_RAW_IS(c, "j:gs", "{\"id\":5,\"name\":\"eve\"}");
  int64_t ttl = 0;
  CHECK_EQ(rcache_ttl(c, "j:gs", &ttl), RCACHE_OK);
  CHECK(ttl > 0 && ttl <= 60);
  /* a failing loader: ELOADER, nothing cached, *out NULL */
  tc_json_loader lf = {0, NULL};
  got = (json_t *)1;
  CHECK_EQ(rcache_get_or_set_json(c, "j:fail", 60, tc_load_json, &lf, &got), RCACHE_ELOADER);
  CHECK(got == NULL);
  CHECK(tc_absent(c, "j:fail"));
  CHECK_EQ(rcache_set(c, "j:bad2", "nope", 4, 0), RCACHE_OK);
  got = (json_t *)1;
  CHECK_EQ(rcache_get_or_set_json(c, "j:bad2", 60, tc_load_json, &lf, &got), RCACHE_ELOADER);
  CHECK(got == NULL);
  CHECK_EQ(rcache_get_or_set_json(c, "j:gs", 60, NULL, &l, &got), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_or_set_json(c, "j:gs", 60, tc_load_json, &l, NULL), RCACHE_EINVAL);
}

/* ---- get_or_set_json from many threads: one load at a time, every thread gets the value ------ */

typedef struct {
  atomic_int calls, running, max_running;
} tc_load_count;

typedef struct {
  rcache *c;
  pthread_barrier_t *go;
  tc_load_count *lc;
  atomic_int *ok;
} tc_thr;

static json_t *tc_slow_load(void *ud) {
  tc_load_count *lc = ud;
  atomic_fetch_add(&lc->calls, 1);
  int now = atomic_fetch_add(&lc->running, 1) + 1;
  for (int m = atomic_load(&lc->max_running); now > m;) {
    if (atomic_compare_exchange_weak(&lc->max_running, &m, now)) break;
  }
  usleep(50 * 1000); /* long enough for the other threads to find the load in flight */
  atomic_fetch_sub(&lc->running, 1);
  return json_pack("{s:s, s:[i,i,i]}", "who", "leader", "xs", 1, 2, 3);
}

static void *tc_json_reader(void *p) {
  tc_thr *t = p;
  pthread_barrier_wait(t->go);
  json_t *j = NULL;
  if (rcache_get_or_set_json(t->c, "j:cold", 60, tc_slow_load, t->lc, &j) == RCACHE_OK &&
      json_array_size(json_object_get(j, "xs")) == 3 &&
      strcmp(json_string_value(json_object_get(j, "who")), "leader") == 0)
    atomic_fetch_add(t->ok, 1);
  json_decref(j);
  return NULL;
}

static void tc_json_threads(rcache *c) {
  enum { N = 16 };
  pthread_t th[N];
  pthread_barrier_t go;
  tc_load_count lc = {0, 0, 0};
  atomic_int ok = 0;
  tc_thr t = {c, &go, &lc, &ok};
  pthread_barrier_init(&go, NULL, N);
  for (int i = 0; i < N; i++)
    pthread_create(&th[i], NULL, tc_json_reader, &t);
  for (int i = 0; i < N; i++)
    pthread_join(th[i], NULL);
  pthread_barrier_destroy(&go);
  /* one load at a time (a thread that missed just before the value was stored may load once
   * more after the first load finished: single-flight is per load, not per miss) */
  CHECK_EQ(atomic_load(&lc.max_running), 1);
  CHECK(atomic_load(&lc.calls) >= 1 && atomic_load(&lc.calls) < N);
  CHECK_EQ(atomic_load(&ok), N);
}

/* ---- key helpers on a live handle ------------------------------------------------------------ */

static void tc_put(rcache *c, const char *key) {
  CHECK_MSG(rcache_set_str(c, key, "v", 0) == RCACHE_OK, "set %s", key);
}

static bool tc_present(rcache *c, const char *key) {
  bool ex = false;
  return rcache_exists(c, key, &ex) == RCACHE_OK && ex;
}

static void tc_keys(const tc_env *e, rcache *c) {
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
  CHECK(!tc_present(c, "user:12") && !tc_present(c, "user:12:credits") &&
        !tc_present(c, "user:12:profile"));
  const char *kept[] = {"user:123",       "user:123:credits", "user:1",
                        "user:1:credits", "user:12x",         "user:12x:credits",
                        "user:120",       "session:12",       "rate:12:/api/search",
                        "feature:new-ui"};
  for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
    CHECK_MSG(tc_present(c, kept[i]), "%s was deleted with user 12", kept[i]);
  }
  CHECK_EQ(rcache_invalidate_user(c, "12", &n), RCACHE_OK);
  CHECK_EQ(n, 0);
  CHECK_EQ(rcache_invalidate_user(c, "12", NULL), RCACHE_OK);
  CHECK_EQ(rcache_invalidate_user(c, "1:2", &n), RCACHE_EINVAL);
  CHECK(tc_errmsg_has(c, "user_id"));
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
  CHECK(tc_present(c, "user:12:y") && tc_present(c, "user:1:credits"));
  CHECK_EQ(rcache_delete(c, "user:12:y"), RCACHE_OK);
  /* only sub-keys: user 1's keys without user:1 itself through the prefix */
  rcache_key_user_all(k, sizeof k, "1");
  CHECK_EQ(rcache_delete_prefix(c, k, &n), RCACHE_OK);
  CHECK_EQ(n, 1);
  CHECK(tc_present(c, "user:1") && tc_present(c, "user:123:credits"));
  /* workflows */
  rcache_key_workflow(k, sizeof k, "7");
  tc_put(c, k);
  rcache_key_workflow_definition(k, sizeof k, "7");
  tc_put(c, k);
  tc_put(c, "workflows:other");
  rcache_key_all_workflows(k, sizeof k);
  CHECK_EQ(rcache_delete_prefix(c, k, &n), RCACHE_OK);
  CHECK_EQ(n, 2);
  CHECK(tc_present(c, "workflows:other"));

  /* another namespace on the same server is never touched */
  if (e->shared) {
    char other[96];
    snprintf(other, sizeof other, "%sother:", e->ns);
    rcache *o = tc_open(e, other);
    if (!o) return;
    tc_put(o, "user:12");
    tc_put(o, "user:12:credits");
    tc_put(c, "user:12");
    CHECK_EQ(rcache_invalidate_user(c, "12", &n), RCACHE_OK);
    CHECK_EQ(n, 1);
    CHECK(tc_present(o, "user:12") && tc_present(o, "user:12:credits"));
    CHECK_EQ(rcache_invalidate_user(o, "12", &n), RCACHE_OK);
    CHECK_EQ(n, 2);
    rcache_close(o);
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

static void tc_prefix(const tc_env *e) {
  char pa[96], pb[96];
  snprintf(pa, sizeof pa, "%sa:", e->ns);
  snprintf(pb, sizeof pb, "%sb:", e->ns);
  rcache *a = tc_open(e, pa), *b = tc_open(e, pb);
  if (!a || !b) goto out;
  CHECK_EQ(rcache_set_i64(a, "user:12:credits", 100, 0), RCACHE_OK);
  CHECK_EQ(rcache_set_i64(b, "user:12:credits", 200, 0), RCACHE_OK);
  int64_t v = 0;
  CHECK_EQ(rcache_get_i64(a, "user:12:credits", &v), RCACHE_OK);
  CHECK_EQ(v, 100);
  tc_names t = {0};
  CHECK_EQ(rcache_scan(a, "*", 0, tc_collect, &t), RCACHE_OK);
  CHECK_EQ(t.n, 1);
  CHECK_STR(t.names[0], "user:12:credits"); /* the handle never sees its prefix */
  if (e->shared) {
    rcache *raw = tc_open(e, e->ns);
    if (raw) {
      TC_RAW_IS(raw, "a:user:12:credits", "100");
      TC_RAW_IS(raw, "b:user:12:credits", "200");
      CHECK_EQ(rcache_flush(a), RCACHE_OK); /* only a's namespace */
      CHECK(tc_absent(raw, "a:user:12:credits"));
      TC_RAW_IS(raw, "b:user:12:credits", "200");
      uint64_t n = 0;
      CHECK_EQ(rcache_delete_pattern(b, "user:*:credits", &n), RCACHE_OK);
      CHECK_EQ(n, 1);
      rcache_close(raw);
    }
  } else {
    CHECK_EQ(rcache_flush(a), RCACHE_OK);
    CHECK(tc_absent(a, "user:12:credits"));
  }
out:
  rcache_close(a);
  rcache_close(b);
}

/* ---- keys longer than max_key_bytes ---------------------------------------------------------- */

static void tc_long_keys(const tc_env *e) {
  char pre[96];
  snprintf(pre, sizeof pre, "%slong:", e->ns);
  size_t pl = strlen(pre);
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = pre;
  o.max_key_bytes = 200;
  rcache *plain = tc_open_opts(e, &o);
  o.long_key_digest = true;
  rcache *dig = tc_open_opts(e, &o);
  o.max_key_bytes = pl + RCACHE_KEY_DIGEST_SUFFIX_LEN - 1; /* no room for a digest */
  rcache *tight = tc_open_opts(e, &o);
  if (!plain || !dig || !tight) goto out;
  char key[501], key2[501];
  memcpy(key, "user:12:", 8);
  memset(key + 8, 'y', 492);
  key[500] = '\0';
  memcpy(key2, key, sizeof key);
  key2[499] = 'z';
  CHECK_EQ(rcache_set_str(plain, key, "v", 0), RCACHE_ETOOBIG);
  CHECK(tc_errmsg_has(plain, "max_key_bytes"));
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
  CHECK(tc_present(dig, "short"));
  CHECK_EQ(rcache_flush(dig), RCACHE_OK);
out:
  rcache_close(plain);
  rcache_close(dig);
  rcache_close(tight);
}

/* ---- all of it ------------------------------------------------------------------------------- */

/* near_bytes > 0: the main handle runs with a near cache of that size (the other handles,
 * which check from outside, do not). */
static void typed_checks_run_near(const char *url, bool shared, size_t near_bytes) {
  static int run;
  tc_env e = {url, "", shared};
  snprintf(e.ns, sizeof e.ns, "typedtest:%ld:%d:", (long)getpid(), run++);
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = e.ns;
  o.near_cache_bytes = near_bytes;
  rcache *c = tc_open_opts(&e, &o);
  if (!c) return;
  tc_strings(c);
  tc_ints(c);
  tc_doubles(c);
  tc_codec(c);
  tc_json(c);
  tc_json_threads(c);
  tc_keys(&e, c);
  tc_prefix(&e);
  tc_long_keys(&e);
  if (near_bytes > 0) { /* the near cache really served some of those reads */
    rcache_stats st;
    rcache_get_stats(c, &st);
    CHECK(st.near_hits > 0);
  }
  CHECK_EQ(rcache_flush(c), RCACHE_OK);
  rcache_close(c);
}

static void typed_checks_run(const char *url, bool shared) {
  typed_checks_run_near(url, shared, 0);
}

#endif
