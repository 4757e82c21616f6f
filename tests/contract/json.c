/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * JSON shared with the seed's TypeScript cacheService, on every backend: values exactly as
 * JSON.stringify writes them are read with the same content (integers beyond int64 as reals,
 * int64 exact), get_or_set_json keeps them instead of overwriting them, and the JSON rcache
 * writes passes a strict parser (python3's json module, NaN/Infinity and duplicate keys
 * refused).
 *
 * The documents below are fixed strings: the output of JSON.stringify in Node.js v20.20.2 for
 * the values in the comments, pasted byte for byte (non-ASCII as \x escapes), so that the
 * suite needs no Node.js.
 *
 * Then JSON on every backend in general: any JSON value stored as the compact text other
 * services write and read, JSON written by others read back, invalid JSON refused with
 * jansson's reason, get_or_set_json loading once (from many threads too).
 */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "contract.h"
#include "rcache/json.h"

/* JSON.stringify({big: 1e20, neg: -1e21, max: Number.MAX_SAFE_INTEGER,
 *   i64max: 9223372036854775807, u64: 18446744073709551615, tiny: 5e-324,
 *   huge: 1.7976931348623157e+308, negzero: -0, e1: 1.5e-7, e2: 2.5e+25, e3: 123e-20, f: 0.1,
 *   third: 1/3, nan: NaN, inf: Infinity,
 *   s: "\u00e9\u20ac\u{1F600}\u0000\u001f\"\\/\b\f\n\r\t\u2028",
 *   arr: [1, [2, [3, {}]], []], nul: null, t: true}) */
static const char NODE_DOC[] =
    "{\"big\":100000000000000000000,\"neg\":-1e+21,\"max\":9007199254740991,"
    "\"i64max\":9223372036854776000,\"u64\":18446744073709552000,\"tiny\":5e-324,"
    "\"huge\":1.7976931348623157e+308,\"negzero\":0,\"e1\":1.5e-7,\"e2\":2.5e+25,"
    "\"e3\":1.23e-18,\"f\":0.1,\"third\":0.3333333333333333,\"nan\":null,\"inf\":null,"
    "\"s\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\\u0000\\u001f\\\"\\\\/"
    "\\b\\f\\n\\r\\t\xe2\x80\xa8\","
    "\"arr\":[1,[2,[3,{}]],[]],\"nul\":null,\"t\":true}";

/* JSON.stringify([1e21, 1e300, -1e-7, 12345678901234567890, 2 ** 53 + 1]) */
static const char NODE_ARRAY[] = "[1e+21,1e+300,-1e-7,12345678901234567000,9007199254740992]";

/* Not JSON.stringify's (it cannot write an exact int64), but Go's, Python's or redis-cli's:
 * the int64 limits stay exact integers beside an integer one past them. */
static const char INT64_DOC[] = "{\"id\":9223372036854775807,\"min\":-9223372036854775808,"
                                "\"over\":9223372036854775808,\"under\":-9223372036854775809,"
                                "\"small\":1,\"s\":\"12345678901234567890123\"}";

static const char S_VALUE[] =
    "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0\x1f\"\\/\b\f\n\r\t\xe2\x80\xa8";

/* What NODE_DOC must read as: every number JSON.stringify wrote, as JSON.parse reads it. */
static json_t *node_doc_expected(void) {
  json_t *arr = json_pack("[i,[i,[i,{}]],[]]", 1, 2, 3);
  json_t *s = json_stringn(S_VALUE, sizeof S_VALUE - 1);
  return json_pack("{s:f,s:f,s:I,s:f,s:f,s:f,s:f,s:i,s:f,s:f,s:f,s:f,s:f,s:n,s:n,s:o,s:o,s:n,s:b}",
                   "big", 1e20, "neg", -1e21, "max", (json_int_t)9007199254740991LL, "i64max",
                   9223372036854775808.0, "u64", 18446744073709551616.0, "tiny", 5e-324, "huge",
                   1.7976931348623157e+308, "negzero", 0, "e1", 1.5e-7, "e2", 2.5e+25, "e3",
                   1.23e-18, "f", 0.1, "third", 1.0 / 3.0, "nan", "inf", "s", s, "arr", arr, "nul",
                   "t", 1);
}

/* Stores text as another client would (raw bytes) and reads it with rcache_get_json. */
static json_t *read_foreign(ct_env *e, const char *key, const char *text) {
  json_t *got = NULL;
  CHECK_EQ(rcache_set(e->c, key, text, strlen(text), 0), RCACHE_OK);
  rcache_status s = rcache_get_json(e->c, key, &got);
  CHECK_MSG(s == RCACHE_OK, "%s: %s", rcache_strerror(s), rcache_errmsg(e->c));
  return got;
}

CONTRACT_TEST(json_stringify_numbers_read) {
  json_t *want = node_doc_expected(), *got = read_foreign(e, "node", NODE_DOC);
  CHECK(want && got && json_equal(got, want));
  CHECK(json_is_real(json_object_get(got, "big")));
  CHECK(json_is_integer(json_object_get(got, "max"))); /* small integers stay integers */
  json_decref(got);
  json_decref(want);
  got = read_foreign(e, "node_arr", NODE_ARRAY);
  want = json_pack("[f,f,f,f,I]", 1e21, 1e300, -1e-7, 12345678901234567000.0,
                   (json_int_t)9007199254740992LL);
  CHECK(want && got && json_equal(got, want));
  json_decref(got);
  json_decref(want);
}

CONTRACT_TEST(json_int64_exact_beside_big) {
  json_t *got = read_foreign(e, "i64", INT64_DOC);
  json_t *want = json_pack("{s:I,s:I,s:f,s:f,s:i,s:s}", "id", (json_int_t)INT64_MAX, "min",
                           (json_int_t)INT64_MIN, "over", 9223372036854775808.0, "under",
                           -9223372036854775808.0, "small", 1, "s", "12345678901234567890123");
  CHECK(want && got && json_equal(got, want));
  CHECK(json_is_integer(json_object_get(got, "id")) &&
        json_is_integer(json_object_get(got, "min")));
  json_decref(got);
  json_decref(want);
  /* a document that is invalid for another reason stays EDECODE after the second parse */
  CHECK_EQ(rcache_set(e->c, "bad", "[100000000000000000000,]", 24, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_json(e->c, "bad", &got), RCACHE_EDECODE);
  CHECK_EQ(rcache_set(e->c, "bad", "[1e400]", 7, 0), RCACHE_OK); /* beyond double: no number */
  CHECK_EQ(rcache_get_json(e->c, "bad", &got), RCACHE_EDECODE);
  CHECK(got == NULL);
}

static int loads;

static json_t *load_other(void *ud) {
  (void)ud;
  loads++;
  return json_pack("{s:s}", "from", "loader");
}

/* The cacheService's value is a hit for get_or_set_json: neither reloaded nor overwritten. */
CONTRACT_TEST(json_stringify_kept_by_get_or_set) {
  CHECK_EQ(rcache_set(e->c, "shared", NODE_DOC, strlen(NODE_DOC), 60), RCACHE_OK);
  json_t *got = NULL, *want = node_doc_expected();
  loads = 0;
  CHECK_EQ(rcache_get_or_set_json(e->c, "shared", 60, load_other, NULL, &got), RCACHE_OK);
  CHECK_EQ(loads, 0);
  CHECK(got && want && json_equal(got, want));
  CHECK(ct_value_is(e->c, "shared", NODE_DOC, strlen(NODE_DOC)));
  json_decref(got);
  json_decref(want);
}

/* python3: both files strictly parsed (no NaN/Infinity, no duplicate keys, valid UTF-8, no raw
 * control characters), integers outside int64 as floats; exit 0 when their contents are the
 * same, types included (1 is not 1.0, -0.0 is not 0.0). */
static const char STRICT_PY[] =
    "import json, math, sys\n"
    "def const(name): raise ValueError('not JSON: ' + name)\n"
    "def pairs(kv):\n"
    "    if len({k for k, _ in kv}) != len(kv): raise ValueError('duplicate key')\n"
    "    return dict(kv)\n"
    "def num(s):\n"
    "    v = int(s)\n"
    "    return v if -2**63 <= v < 2**63 else float(s)\n"
    "def load(p):\n"
    "    with open(p, 'rb') as f: text = f.read().decode('utf-8')\n"
    "    return json.loads(text, parse_constant=const, object_pairs_hook=pairs, parse_int=num)\n"
    "def same(a, b):\n"
    "    if type(a) is not type(b): return False\n"
    "    if isinstance(a, float): return a == b and math.copysign(1, a) == math.copysign(1, b)\n"
    "    if isinstance(a, list): return len(a) == len(b) and all(map(same, a, b))\n"
    "    if isinstance(a, dict): return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)\n"
    "    return a == b\n"
    "a, b = load(sys.argv[1]), load(sys.argv[2])\n"
    "sys.exit(0 if same(a, b) else print('differ:', a, b) or 1)\n";

static bool write_file(const char *dir, const char *name, const void *p, size_t n) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f) return false;
  bool ok = fwrite(p, 1, n, f) == n;
  return fclose(f) == 0 && ok;
}

/* Whether python3 strictly reads `ours` (rcache's stored bytes) as the same content as
 * `theirs` (another writer's text). */
static bool python_agrees(const rcache_value *ours, const char *theirs) {
  char dir[] = "/tmp/rcache-json-XXXXXX", cmd[512];
  if (!mkdtemp(dir)) return false;
  bool ok = write_file(dir, "check.py", STRICT_PY, strlen(STRICT_PY)) &&
            write_file(dir, "ours.json", ours->data, ours->len) &&
            write_file(dir, "theirs.json", theirs, strlen(theirs));
  snprintf(cmd, sizeof cmd, "python3 %s/check.py %s/ours.json %s/theirs.json", dir, dir, dir);
  ok = ok && system(cmd) == 0;
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) ok = false;
  return ok;
}

/* rcache_set_json(v) then the raw bytes, for python. */
static bool stored_text(ct_env *e, const char *key, const json_t *v, rcache_value *out) {
  *out = (rcache_value){NULL, 0};
  return v && rcache_set_json(e->c, key, v, 0) == RCACHE_OK && rcache_get(e->c, key, out) == 0;
}

CONTRACT_TEST(json_written_is_strict_json) {
  const char *docs[] = {NODE_DOC, NODE_ARRAY, INT64_DOC};
  for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
    json_t *v = NULL;
    rcache_value text;
    CHECK_EQ(rcache_set(e->c, "in", docs[i], strlen(docs[i]), 0), RCACHE_OK);
    CHECK_EQ(rcache_get_json(e->c, "in", &v), RCACHE_OK);
    CHECK(stored_text(e, "out", v, &text));
    CHECK_MSG(text.data && python_agrees(&text, docs[i]), "doc %zu: %s", i, text.data);
    rcache_value_free(&text);
    json_decref(v);
  }
  /* numbers only C writes: -0.0, the smallest subnormal, the largest double, 2^63 - 1 */
  json_t *v = json_pack("[f,f,f,f,I,f]", -0.0, 5e-324, 1.7976931348623157e308, 0.1,
                        (json_int_t)INT64_MAX, 1e20);
  rcache_value text;
  CHECK(stored_text(e, "c", v, &text));
  CHECK_MSG(text.data && python_agrees(&text, "[-0.0,5e-324,1.7976931348623157e+308,0.1,"
                                              "9223372036854775807,1e20]"),
            "%s", text.data);
  rcache_value_free(&text);
  json_decref(v);
}

static int null_loads;

static json_t *load_null(void *ud) {
  (void)ud;
  null_loads++;
  return json_null(); /* "no such record": cached as the JSON text null */
}

/* A stored JSON null is a value for rcache (negative caching), not a miss as for the seed's
 * getOrSet; without a cache (none://) the loader runs every time. docs/migrating.md. */
CONTRACT_ANY_TEST(json_null_is_a_value) {
  json_t *got = NULL;
  null_loads = 0;
  for (int i = 0; i < 2; i++) {
    CHECK_EQ(rcache_get_or_set_json(e->c, "none_such", 60, load_null, NULL, &got), RCACHE_OK);
    CHECK(json_is_null(got));
    json_decref(got);
    got = NULL;
  }
  CHECK_EQ(null_loads, e->none ? 2 : 1);
  if (e->none) return;
  CHECK(ct_value_is(e->c, "none_such", "null", 4));
  CHECK_EQ(rcache_set(e->c, "seed_null", "null", 4, 0), RCACHE_OK); /* JSON.stringify(null) */
  CHECK_EQ(rcache_get_json(e->c, "seed_null", &got), RCACHE_OK);
  CHECK(json_is_null(got));
  json_decref(got);
}

/* ---- JSON values in general ------------------------------------------------------------------ */

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

CONTRACT_TEST(json_documents) {
  rcache *c = e->c;
  /* the document: stored compact, exactly as other services write it */
  json_t *doc = json_pack("{s:i, s:s, s:{s:s}}", "id", 1, "name", "x", "meta", "role", "admin");
  CHECK_EQ(rcache_set_json(c, "j:doc", doc, 0), RCACHE_OK);
  CT_VALUE_IS(c, "j:doc", "{\"id\":1,\"name\":\"x\",\"meta\":{\"role\":\"admin\"}}");
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
  CT_VALUE_IS(c, "j:nul", "\"a\\u0000b\"");
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
    CHECK(ct_errmsg_has(c, "invalid JSON at line"));
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
  CHECK(ct_errmsg_has(c, "depth"));
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
  CT_VALUE_IS(c, "j:gs", "{\"id\":5,\"name\":\"eve\"}");
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
  CT_VALUE_IS(c, "j:gs", "{\"id\":5,\"name\":\"eve\"}");
  int64_t ttl = 0;
  CHECK_EQ(rcache_ttl(c, "j:gs", &ttl), RCACHE_OK);
  CHECK(ttl > 0 && ttl <= 60 + ct_stale_s()); /* --stale keeps it longer */
  /* a failing loader: ELOADER, nothing cached, *out NULL */
  tc_json_loader lf = {0, NULL};
  got = (json_t *)1;
  CHECK_EQ(rcache_get_or_set_json(c, "j:fail", 60, tc_load_json, &lf, &got), RCACHE_ELOADER);
  CHECK(got == NULL);
  CHECK(ct_absent(c, "j:fail"));
  CHECK_EQ(rcache_set(c, "j:bad2", "nope", 4, 0), RCACHE_OK);
  got = (json_t *)1;
  CHECK_EQ(rcache_get_or_set_json(c, "j:bad2", 60, tc_load_json, &lf, &got), RCACHE_ELOADER);
  CHECK(got == NULL);
  CHECK_EQ(rcache_get_or_set_json(c, "j:gs", 60, NULL, &l, &got), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_or_set_json(c, "j:gs", 60, tc_load_json, &l, NULL), RCACHE_EINVAL);
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
  tc_json_loader l = {0, "{\"id\":1,\"name\":\"x\"}"}, lf = {0, NULL};
  CHECK_EQ(rcache_get_or_set_json(e->c, "jl", 60, tc_load_json, &l, &got), RCACHE_OK);
  CHECK(got && json_integer_value(json_object_get(got, "id")) == 1);
  json_decref(got);
  got = NULL;
  CHECK_EQ(rcache_get_or_set_json(e->c, "jl", 60, tc_load_json, &l, &got), RCACHE_OK);
  json_decref(got);
  got = NULL;
  CHECK_EQ(l.calls, e->none ? 2 : 1);
  CHECK_EQ(rcache_get_or_set_json(e->c, "jbad", 60, tc_load_json, &lf, &got), RCACHE_ELOADER);
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
  CHECK(ct_errmsg_set(e->c));
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

CONTRACT_TEST(json_get_or_set_threads) {
  rcache *c = e->c;
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
