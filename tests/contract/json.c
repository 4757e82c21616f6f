/* SPDX-License-Identifier: BSD-3-Clause */
/* JSON values (rcache/json.h) on every backend: any JSON value stored as the compact text
 * other services write and read, JSON written by others read back, invalid JSON refused
 * with jansson's reason, get_or_set_json loading once (from many threads too). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "contract.h"
#include "rcache/json.h"

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
  /* not JSON: RCACHE_EDECODE with jansson's reason, never a crash */
  const char *bad[] = {"{\"id\":1",
                       "not json",
                       "",
                       "{} x",
                       "{\"a\":NaN}",
                       "'single'",
                       "[1,]",
                       "\xff\xfe",
                       "18446744073709551615",
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
  CHECK(rcache_errmsg(e->c)[0] != '\0');
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
