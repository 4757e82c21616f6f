/* SPDX-License-Identifier: BSD-3-Clause */
/* The typed helpers (strings, int64, double, user codecs) on every backend: stored as the
 * plain text another client would write, read back exactly, every refusal documented and
 * nothing written by a refused call. JSON is in json.c, key helpers in keys.c. */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "rcache/json.h"
#include "rcache/keys.h"

CONTRACT_TEST(typed_strings) {
  rcache *c = e->c;
  const char *vals[] = {"hello", "", "h\xc3\xa9llo \xe2\x9c\x93", "line\r\nSET x y"};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    char *got = NULL;
    CHECK_EQ(rcache_set_str(c, "s:v", vals[i], 0), RCACHE_OK);
    CHECK_EQ(rcache_get_str(c, "s:v", &got), RCACHE_OK);
    CHECK_STR(got, vals[i]);
    free(got);
    CHECK(ct_value_is(c, "s:v", vals[i], strlen(vals[i]))); /* the bytes, no envelope */
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
  CHECK(ct_errmsg_has(c, "NUL byte at offset 1"));
  CHECK_EQ(rcache_set_str(c, "s:v", NULL, 0), RCACHE_EINVAL);
  CHECK(ct_errmsg_has(c, "NULL"));
  CHECK_EQ(rcache_get_str(c, "s:v", NULL), RCACHE_EINVAL);
  CHECK_EQ(rcache_set_str(c, "", "x", 0), RCACHE_EINVAL);
  CHECK_EQ(rcache_set_str(c, "s:v", "x", -1), RCACHE_EINVAL);
  CHECK_EQ(rcache_set_str(NULL, "s:v", "x", 0), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_str(NULL, "s:v", &got), RCACHE_EINVAL);
}

CONTRACT_TEST(typed_ints) {
  rcache *c = e->c;
  const int64_t vals[] = {0, 1, -1, 42, 1000000007, INT64_MAX, INT64_MIN, INT64_MIN + 1};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    char want[24];
    int n = snprintf(want, sizeof want, "%" PRId64, vals[i]);
    int64_t got = 7;
    CHECK_EQ(rcache_set_i64(c, "i:v", vals[i], 0), RCACHE_OK);
    CHECK(ct_value_is(c, "i:v", want, (size_t)n)); /* decimal text other clients read */
    CHECK_EQ(rcache_get_i64(c, "i:v", &got), RCACHE_OK);
    CHECK(got == vals[i]);
  }
  CT_VALUE_IS(c, "i:v", "-9223372036854775807");
  /* INCR works on what set_i64 wrote, and get_i64 reads what INCR wrote */
  int64_t n = 0, got = 0;
  CHECK_EQ(rcache_set_i64(c, "i:ctr", 41, 0), RCACHE_OK);
  CHECK_EQ(rcache_incr(c, "i:ctr", 1, &n), RCACHE_OK);
  CHECK_EQ(n, 42);
  CHECK_EQ(rcache_incr(c, "i:fresh", -5, &n), RCACHE_OK);
  CHECK_EQ(rcache_get_i64(c, "i:fresh", &got), RCACHE_OK);
  CHECK_EQ(got, -5);
  CHECK_EQ(rcache_set_i64(c, "i:short", INT64_MIN, RCACHE_TTL_SHORT), RCACHE_OK);
  CHECK(ct_ttl(c, "i:short") > 0);
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
  CHECK(ct_errmsg_has(c, "not a decimal int64"));
  got = 7;
  CHECK_EQ(rcache_get_i64(c, "i:absent", &got), RCACHE_MISS);
  CHECK_EQ(got, 0);
  CHECK_EQ(rcache_get_i64(c, "i:v", NULL), RCACHE_EINVAL);
}

static bool tc_same_bits(double a, double b) {
  return memcmp(&a, &b, sizeof a) == 0;
}

CONTRACT_TEST(typed_doubles) {
  rcache *c = e->c;
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
  CT_VALUE_IS(c, "d:t", "0.1");
  CHECK_EQ(rcache_set_double(c, "d:t", -0.0, 0), RCACHE_OK);
  CT_VALUE_IS(c, "d:t", "-0");
  CHECK_EQ(rcache_set_double(c, "d:t", 42, 0), RCACHE_OK);
  CT_VALUE_IS(c, "d:t", "42");
  CHECK_EQ(rcache_set_double(c, "d:t", -INFINITY, 0), RCACHE_OK);
  CT_VALUE_IS(c, "d:t", "-inf");
  /* NaN is refused and nothing is written */
  CHECK_EQ(rcache_set_double(c, "d:nan", NAN, 0), RCACHE_EINVAL);
  CHECK(ct_errmsg_has(c, "NaN"));
  CHECK(ct_absent(c, "d:nan"));
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

CONTRACT_TEST(typed_codec) {
  rcache *c = e->c;
  tc_user ada = {7, "ada", "admin"}, got = {0, "", ""};
  CHECK_EQ(rcache_set_obj(c, "o:ada", &tc_user_codec, &ada, 0), RCACHE_OK);
  CT_VALUE_IS(c, "o:ada", "7|ada|admin");
  CHECK_EQ(rcache_get_obj(c, "o:ada", &tc_user_codec, &got), RCACHE_OK);
  CHECK(tc_user_eq(&got, &ada));
  CHECK_EQ(rcache_get_obj(c, "o:absent", &tc_user_codec, &got), RCACHE_MISS);
  /* a value the decoder refuses */
  CHECK_EQ(rcache_set(c, "o:bad", "garbage", 7, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_obj(c, "o:bad", &tc_user_codec, &got), RCACHE_EDECODE);
  CHECK(ct_errmsg_has(c, "decode"));
  /* the encoder's refusal comes back as it is, and nothing is written */
  tc_user neg = {-1, "x", "y"};
  CHECK_EQ(rcache_set_obj(c, "o:neg", &tc_user_codec, &neg, 0), RCACHE_ERANGE);
  CHECK(ct_absent(c, "o:neg"));
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
  CT_VALUE_IS(c, "o:gs", "12|grace|user");
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
  CT_VALUE_IS(c, "o:gs", "12|grace|user");
  /* the loader or the encoder failing: ELOADER, nothing cached */
  tc_user_loader lf = {0, RCACHE_EIO, {1, "a", "b"}};
  CHECK_EQ(rcache_get_or_set_obj(c, "o:fail", 60, &tc_user_codec, tc_load_user, &lf, &u),
           RCACHE_ELOADER);
  CHECK(ct_absent(c, "o:fail"));
  tc_user_loader le = {0, RCACHE_OK, {-5, "a", "b"}};
  CHECK_EQ(rcache_get_or_set_obj(c, "o:fail", 60, &tc_user_codec, tc_load_user, &le, &u),
           RCACHE_ELOADER);
  CHECK(ct_absent(c, "o:fail"));
  /* reload after a bad value, and the loader fails: ELOADER, the bad value stays */
  CHECK_EQ(rcache_set(c, "o:bad2", "junk", 4, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_or_set_obj(c, "o:bad2", 60, &tc_user_codec, tc_load_user, &lf, &u),
           RCACHE_ELOADER);
  CT_VALUE_IS(c, "o:bad2", "junk");
  CHECK_EQ(rcache_get_or_set_obj(c, "o:gs", 60, &tc_user_codec, NULL, &l, &u), RCACHE_EINVAL);
}

CONTRACT_ANY_TEST(typed_objects) {
  tc_user u = {7, "grace", "dev"}, got = {0, "", ""};
  CHECK_EQ(rcache_set_obj(e->c, "u7", &tc_user_codec, &u, 0), RCACHE_OK);
  rcache_status s = rcache_get_obj(e->c, "u7", &tc_user_codec, &got);
  CHECK_EQ(s, e->none ? RCACHE_MISS : RCACHE_OK);
  if (!e->none) {
    CHECK(tc_user_eq(&got, &u));
    CT_VALUE_IS(e->c, "u7", "7|grace|dev");
  }
  /* cache-aside: a miss loads once, then (with a cache) hits */
  tc_user_loader l = {0, RCACHE_OK, {12, "ada", "admin"}};
  for (int i = 0; i < 2; i++) {
    memset(&got, 0, sizeof got);
    CHECK_EQ(rcache_get_or_set_obj(e->c, "u12", 60, &tc_user_codec, tc_load_user, &l, &got),
             RCACHE_OK);
    CHECK(tc_user_eq(&got, &l.value));
  }
  CHECK_EQ(l.calls, e->none ? 2 : 1);
  /* a failing loader: RCACHE_ELOADER, nothing cached */
  tc_user_loader lf = {0, RCACHE_EIO, {13, "x", "y"}};
  CHECK_EQ(rcache_get_or_set_obj(e->c, "u13", 60, &tc_user_codec, tc_load_user, &lf, &got),
           RCACHE_ELOADER);
  CHECK(!ct_exists(e->c, "u13"));
  if (e->none) return;
  /* bytes the decoder refuses: EDECODE on read, reloaded and overwritten by get_or_set */
  CHECK_EQ(rcache_set(e->c, "u12", "garbage", 7, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_obj(e->c, "u12", &tc_user_codec, &got), RCACHE_EDECODE);
  CHECK_EQ(rcache_get_or_set_obj(e->c, "u12", 60, &tc_user_codec, tc_load_user, &l, &got),
           RCACHE_OK);
  CHECK_EQ(l.calls, 2);
  CT_VALUE_IS(e->c, "u12", "12|ada|admin");
}

/* With --near, typed reads are served by the near cache too (and still right). */
CONTRACT_TEST(typed_reads_through_near_cache) {
  CHECK_EQ(rcache_set_i64(e->c, "n", 5, 0), RCACHE_OK);
  rcache_stats st;
  rcache_get_stats(e->c, &st);
  uint64_t hits0 = st.near_hits;
  bool served = false;
  for (int i = 0; i < 200 && !served; i++) { /* tracking may take a moment to start */
    int64_t n = 0;
    CHECK_EQ(rcache_get_i64(e->c, "n", &n), RCACHE_OK);
    CHECK_EQ(n, 5);
    rcache_get_stats(e->c, &st);
    served = st.near_hits > hits0;
    if (!ct_near()) break;
    ct_sleep_ms(5);
  }
  if (ct_near()) CHECK_MSG(served, "no typed read was a near hit");
}

/* Prints what a typed read of random bytes answered that it must not; returns 1. */
static int bad_read(rcache *c, int round, int line, rcache_status s) {
  fprintf(stderr, "  round %d, line %d: status %d (%s)\n", round, line, (int)s, rcache_errmsg(c));
  return 1;
}

/* Random bytes at a key: every typed read answers OK or its documented error, never
 * crashes (run under ASan), and leaves its output zeroed when it fails. */
CONTRACT_TEST(typed_reads_of_random_bytes) {
  rcache *c = e->c;
  uint64_t x = 0x2545f4914f6cdd1du;
  const char alphabet[] = "0123456789-+.eE \"{}[]:,nulltruefalseinfNaN\\u|\x00\xff";
  int bad = 0, decoded = 0;
  /* the decoders are the same on every backend: the full count where a round trip is cheap */
  int rounds = ct_shared(e) ? 300 : 3000;
  for (int i = 0; i < rounds; i++) {
    char buf[64];
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t len = x % sizeof buf;
    for (size_t k = 0; k < len; k++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      buf[k] = i % 2 ? (char)(x & 0xff) : alphabet[x % (sizeof alphabet - 1)];
    }
    rcache_status s = rcache_set(c, "r", buf, len, 0);
    if (s != RCACHE_OK) bad += bad_read(c, i, __LINE__, s);
    int64_t n = 1;
    double d = 1;
    char *str = (char *)"x";
    json_t *j = (json_t *)1;
    tc_user u = {0, "", ""};
    s = rcache_get_i64(c, "r", &n);
    if (!(s == RCACHE_OK || (s == RCACHE_ETYPE && n == 0))) bad += bad_read(c, i, __LINE__, s);
    s = rcache_get_double(c, "r", &d);
    if (!(s == RCACHE_OK ? !isnan(d) : (s == RCACHE_ETYPE || s == RCACHE_ERANGE) && d == 0))
      bad += bad_read(c, i, __LINE__, s);
    s = rcache_get_str(c, "r", &str);
    if (s == RCACHE_OK)
      free(str);
    else if (!(s == RCACHE_EDECODE && str == NULL))
      bad += bad_read(c, i, __LINE__, s);
    s = rcache_get_json(c, "r", &j);
    if (s == RCACHE_OK)
      decoded++, json_decref(j);
    else if (!(s == RCACHE_EDECODE && j == NULL))
      bad += bad_read(c, i, __LINE__, s);
    s = rcache_get_obj(c, "r", &tc_user_codec, &u);
    if (!(s == RCACHE_OK || s == RCACHE_EDECODE)) bad += bad_read(c, i, __LINE__, s);
  }
  CHECK_EQ(bad, 0);
  CHECK(decoded > 0); /* the alphabet does produce some valid JSON ("1", "[]", "null"...) */
}

static json_t *load_doc(void *ud) {
  (*(int *)ud)++;
  return json_pack("{s:i}", "id", 1);
}

CONTRACT_NONE_TEST(none_typed_reads_miss) {
  rcache *c = e->c;
  char *s = (char *)"junk";
  int64_t n = 3;
  double d = 3;
  json_t *j = (json_t *)1;
  CHECK_EQ(rcache_set_str(c, "s", "v", 0), RCACHE_OK);
  CHECK_EQ(rcache_get_str(c, "s", &s), RCACHE_MISS);
  CHECK(s == NULL);
  CHECK_EQ(rcache_set_i64(c, "i", 5, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_i64(c, "i", &n), RCACHE_MISS);
  CHECK_EQ(n, 0);
  CHECK_EQ(rcache_set_double(c, "d", 0.5, 0), RCACHE_OK);
  CHECK_EQ(rcache_set_double(c, "d", NAN, 0), RCACHE_EINVAL); /* still refused */
  CHECK_EQ(rcache_get_double(c, "d", &d), RCACHE_MISS);
  CHECK_EQ(rcache_get_json(c, "j", &j), RCACHE_MISS);
  CHECK(j == NULL);
  int calls = 0;
  for (int i = 0; i < 2; i++) {
    j = NULL;
    CHECK_EQ(rcache_get_or_set_json(c, "j", 60, load_doc, &calls, &j), RCACHE_OK);
    CHECK(j && json_integer_value(json_object_get(j, "id")) == 1);
    json_decref(j);
  }
  CHECK_EQ(calls, 2); /* nothing is cached, the loader runs every time */
  uint64_t del = 9;
  CHECK_EQ(rcache_invalidate_user(c, "12", &del), RCACHE_OK);
  CHECK_EQ(del, 0);
}
