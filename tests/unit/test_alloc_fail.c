/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Allocation failure on memory:// and none:// (tests/alloc_walk.h explains the walk): the
 * contract suite's kinds of calls, and rcache_open()/rcache_close() with many options. Every
 * call returns RCACHE_ENOMEM or what it returns without the failure, nothing leaks
 * (LeakSanitizer in the ASan build) and the handle works again afterwards.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "alloc_walk.h"
#include "rcache/json.h"
#include "rcache/keys.h"

static void quiet_log(int level, const char *msg, void *ud) {
  (void)level;
  (void)msg;
  (void)ud;
}

/* ---- outputs as text, for the trace ---------------------------------------------------------- */

/* jansson allocates through the indirection by way of these wrappers, so that rcache sees
 * allocators of the program's own (json.c then copies jansson's text: that path is
 * walked too). */
static void *json_alloc(size_t n) {
  return rcache__malloc(n);
}

static void json_release(void *p) {
  rcache__free(p);
}

/* ---- loaders and a codec --------------------------------------------------------------------- */

static rcache_status load_empty(void *ud, rcache_value *out) {
  (void)ud;
  *out = (rcache_value){NULL, 0}; /* an empty value: rcache makes its "" */
  return RCACHE_OK;
}

static rcache_status load_fail(void *ud, rcache_value *out) {
  (void)ud;
  (void)out;
  return RCACHE_EIO;
}

typedef struct {
  long a, b;
} pair;

static rcache_status pair_encode(const void *obj, rcache_value *out, void *ud) {
  (void)ud;
  const pair *p = obj;
  if (p->a == 0 && p->b == 0) { /* the empty encoding: no bytes at all */
    *out = (rcache_value){NULL, 0};
    return RCACHE_OK;
  }
  out->data = malloc(48);
  if (!out->data) return RCACHE_ENOMEM;
  out->len = (size_t)snprintf(out->data, 48, "%ld,%ld", p->a, p->b);
  return RCACHE_OK;
}

static rcache_status pair_decode(const char *data, size_t len, void *obj, void *ud) {
  (void)ud;
  (void)len;
  pair *p = obj;
  return sscanf(data, "%ld,%ld", &p->a, &p->b) == 2 ? RCACHE_OK : RCACHE_EDECODE;
}

static const rcache_codec pair_codec = {pair_encode, pair_decode, NULL};

static rcache_status load_pair(void *ud, void *obj) {
  *(pair *)obj = ud ? (pair){0, 0} : (pair){7, 8};
  return RCACHE_OK;
}

/* The JSON loader hands out a value made before the walk: no allocation of its own. */
static json_t *json_made;
static json_t *load_json(void *ud) {
  (void)ud;
  return json_incref(json_made);
}

static bool count_key(const char *key, size_t len, void *ud) {
  (void)key;
  (void)len;
  ++*(int *)ud;
  return true;
}

/* ---- flow (a): the contract suite's kinds of calls ------------------------------------------- */

#define LONG_KEY_LEN 300 /* over the facade's 256-byte stack key: the key is malloc'd */
static char long_key[LONG_KEY_LEN + 1];

static void put(rcache *c, const char *key, const char *val, int64_t ttl_s) {
  rcache_status s = rcache_set(c, key, val, strlen(val), ttl_s);
  CHECK_MSG(s == RCACHE_OK || !strcmp(rcache_mode(c), "none"), "setup set %s: %d", key, (int)s);
}

static void setup_keys(rcache *c) {
  put(c, "pre:str", "hello", 0);
  put(c, "pre:del", "x", 0);
  put(c, "pfx:a", "1", 0);
  put(c, "pfx:b", "2", 0);
  put(c, "pat:1", "1", 0);
  put(c, "pat:2", "2", 0);
  put(c, "pre:num", "41", 0);
  put(c, "pre:num2", "-7", 0);
  put(c, "pre:ttl", "t", 100);
  put(c, "pre:notjson", "not json", 0);
  put(c, "pre:notjson2", "{oops", 0);
  put(c, "pre:json", "{\"a\":[1,2,\"x\"]}", 0);
  put(c, "pre:pair", "3,4", 0);
  put(c, "user:u1:a", "1", 0);
  put(c, "pre:empty", "", 0);
  put(c, long_key, "long", 0);
}

static void reads(aw *w, rcache *c) {
  char t[512];
  rcache_value v;
  aw_group(w);
  rcache_status s = rcache_get(c, "pre:str", &v);
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  rcache_value_free(&v);
  s = rcache_get(c, "absent", &v);
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  s = rcache_get(c, long_key, &v);
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  rcache_value_free(&v);
  bool e = false;
  s = rcache_exists(c, "pre:str", &e);
  AW_REC(w, s, e ? "yes" : "no");
  s = rcache_exists(c, "absent", &e);
  AW_REC(w, s, e ? "yes" : "no");
  int64_t ttl = 0;
  s = rcache_ttl(c, "pre:ttl", &ttl);
  AW_REC(w, s, ttl > 90 ? "about 100" : "other");
  s = rcache_ttl(c, "pre:str", &ttl);
  snprintf(t, sizeof t, "%lld", (long long)ttl);
  AW_REC(w, s, t);
}

static void writes(aw *w, rcache *c) {
  char t[512];
  rcache_value v;
  aw_group(w);
  rcache_status s = rcache_set(c, "w:1", "value1", 6, 100);
  AW_REC(w, s, NULL);
  s = rcache_get(c, "w:1", &v);
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  rcache_value_free(&v);
  aw_group(w);
  char lk[LONG_KEY_LEN + 1];
  memcpy(lk, long_key, sizeof lk);
  lk[0] = 'W';
  s = rcache_set(c, lk, "", 0, 0);
  AW_REC(w, s, NULL);
  s = rcache_get(c, lk, &v);
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  rcache_value_free(&v);
  aw_group(w);
  s = rcache_delete(c, "pre:del");
  AW_REC(w, s, NULL);
  s = rcache_delete(c, "pre:del");
  AW_REC(w, s, NULL);
  uint64_t n = 99;
  aw_group(w);
  s = rcache_delete_prefix(c, "pfx:", &n);
  snprintf(t, sizeof t, "%llu", (unsigned long long)n);
  AW_REC(w, s, s == RCACHE_ENOMEM ? NULL : t);
  aw_group(w);
  s = rcache_delete_pattern(c, "pat:[12]", &n);
  snprintf(t, sizeof t, "%llu", (unsigned long long)n);
  AW_REC(w, s, s == RCACHE_ENOMEM ? NULL : t);
}

static void get_or_sets(aw *w, rcache *c) {
  char t[512];
  rcache_value v;
  aw_group(w);
  rcache_status s = rcache_get_or_set(c, "gos:1", 100, aw_load_text, "loaded", &v);
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  rcache_value_free(&v);
  s = rcache_get(c, "gos:1", &v);
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  rcache_value_free(&v);
  aw_group(w);
  s = rcache_get_or_set(c, "pre:str", 100, aw_load_text, "not this", &v);
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  rcache_value_free(&v);
  aw_group(w);
  s = rcache_get_or_set(c, "gos:fail", 100, load_fail, NULL, &v);
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  aw_group(w);
  s = rcache_get_or_set(c, long_key, 100, aw_load_text, "not this", &v);
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  rcache_value_free(&v);
  aw_group(w);
  s = rcache_get_or_set(c, "gos:empty", 100, load_empty, NULL, &v);
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  rcache_value_free(&v);
  aw_group(w);
  char lk[LONG_KEY_LEN + 1];
  memcpy(lk, long_key, sizeof lk);
  lk[0] = 'G';
  s = rcache_get_or_set(c, lk, 100, aw_load_text, "long", &v);
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  rcache_value_free(&v);
}

static void counters(aw *w, rcache *c) {
  char t[64];
  int64_t x = 0;
  aw_group(w);
  rcache_status s = rcache_incr(c, "ctr:1", 5, &x);
  snprintf(t, sizeof t, "%lld", (long long)x);
  AW_REC(w, s, t);
  s = rcache_decr(c, "ctr:1", 2, &x);
  snprintf(t, sizeof t, "%lld", (long long)x);
  AW_REC(w, s, t);
  aw_group(w);
  s = rcache_incr(c, "pre:num", 1, &x);
  snprintf(t, sizeof t, "%lld", (long long)x);
  AW_REC(w, s, t);
  aw_group(w);
  s = rcache_incr(c, "pre:str", 1, &x);
  AW_REC(w, s, NULL);
  aw_group(w);
  s = rcache_incr_expire(c, "ctr:2", 1, 60, &x);
  snprintf(t, sizeof t, "%lld", (long long)x);
  AW_REC(w, s, t);
  s = rcache_ttl(c, "ctr:2", &x);
  AW_REC(w, s, x > 50 ? "about 60" : "other");
  aw_group(w);
  for (int i = 0; i < 3; i++) {
    bool allowed = false;
    s = rcache_rate_limit(c, "rl:1", 2, 60, &allowed, &x);
    snprintf(t, sizeof t, "%d %lld", allowed, (long long)x);
    AW_REC(w, s, t);
  }
}

static void batches(aw *w, rcache *c) {
  const char *keys[3] = {"pre:str", "absent", "pre:num2"};
  aw_group(w);
  aw_rec_get_many(w, __LINE__, c, keys, 3);
  aw_group(w);
  const char *wkeys[2] = {"sm:1", "sm:2"};
  rcache_value wv[2] = {{"one", 3}, {"two", 3}};
  rcache_status s = rcache_set_many(c, wkeys, wv, 2, 100);
  AW_REC(w, s, NULL);
  aw_rec_get_many(w, __LINE__, c, wkeys, 2);
}

static void typed(aw *w, rcache *c) {
  char t[512];
  aw_group(w);
  rcache_status s = rcache_set_str(c, "ty:s", "text", 0);
  AW_REC(w, s, NULL);
  char *str = NULL;
  s = rcache_get_str(c, "ty:s", &str);
  AW_REC(w, s, str);
  free(str);
  aw_group(w);
  s = rcache_get_str(c, "pre:str", &str);
  AW_REC(w, s, str);
  free(str);
  s = rcache_get_str(c, "pre:empty", &str);
  AW_REC(w, s, str);
  free(str);
  aw_group(w);
  int64_t i64 = 0;
  s = rcache_set_i64(c, "ty:i", -123, 0);
  AW_REC(w, s, NULL);
  s = rcache_get_i64(c, "ty:i", &i64);
  snprintf(t, sizeof t, "%lld", (long long)i64);
  AW_REC(w, s, t);
  aw_group(w);
  s = rcache_get_i64(c, "pre:num2", &i64);
  snprintf(t, sizeof t, "%lld", (long long)i64);
  AW_REC(w, s, t);
  aw_group(w);
  double d = 0;
  s = rcache_set_double(c, "ty:d", 0.1, 0);
  AW_REC(w, s, NULL);
  s = rcache_get_double(c, "ty:d", &d);
  snprintf(t, sizeof t, "%.17g", d);
  AW_REC(w, s, t);
  aw_group(w);
  pair p = {1, 2};
  s = rcache_set_obj(c, "ty:o", &pair_codec, &p, 0);
  AW_REC(w, s, NULL);
  p = (pair){0, 0};
  s = rcache_get_obj(c, "ty:o", &pair_codec, &p);
  snprintf(t, sizeof t, "%ld,%ld", p.a, p.b);
  AW_REC(w, s, s == RCACHE_OK ? t : NULL);
  aw_group(w);
  p = (pair){0, 0};
  s = rcache_get_or_set_obj(c, "pre:pair", 0, &pair_codec, load_pair, NULL, &p);
  snprintf(t, sizeof t, "%ld,%ld", p.a, p.b);
  AW_REC(w, s, s == RCACHE_OK ? t : NULL);
  aw_group(w);
  p = (pair){0, 0};
  s = rcache_get_or_set_obj(c, "ty:o2", 0, &pair_codec, load_pair, NULL, &p);
  snprintf(t, sizeof t, "%ld,%ld", p.a, p.b);
  AW_REC(w, s, s == RCACHE_OK ? t : NULL);
  aw_group(w);
  p = (pair){1, 1};
  s = rcache_get_or_set_obj(c, "ty:o3", 0, &pair_codec, load_pair, "zero", &p);
  snprintf(t, sizeof t, "%ld,%ld", p.a, p.b);
  AW_REC(w, s, s == RCACHE_OK ? t : NULL);
}

/* Which value j is: json_equal allocates nothing, so it can run while armed. */
static json_t *json_pre;
static void rec_json(aw *w, int line, rcache_status s, json_t *j) {
  aw_rec(w, line, s,
         !j                         ? NULL
         : json_equal(j, json_made) ? "made"
         : json_equal(j, json_pre)  ? "pre"
                                    : "other");
  json_decref(j);
}

static void json_calls(aw *w, rcache *c) {
  json_t *j = NULL;
  aw_group(w);
  rcache_status s = rcache_set_json(c, "js:1", json_made, 0);
  AW_REC(w, s, NULL);
  s = rcache_get_json(c, "js:1", &j);
  rec_json(w, __LINE__, s, j);
  aw_group(w);
  s = rcache_get_json(c, "pre:json", &j);
  rec_json(w, __LINE__, s, j);
  aw_group(w);
  s = rcache_get_json(c, "pre:notjson", &j);
  rec_json(w, __LINE__, s, j);
  aw_group(w);
  s = rcache_get_or_set_json(c, "js:2", 0, load_json, NULL, &j);
  rec_json(w, __LINE__, s, j);
  aw_group(w);
  s = rcache_get_or_set_json(c, "pre:notjson2", 0, load_json, NULL, &j);
  rec_json(w, __LINE__, s, j);
  aw_group(w);
  s = rcache_get_or_set_json(c, "pre:json", 0, load_json, NULL, &j);
  rec_json(w, __LINE__, s, j);
  const char *tags[] = {"tag:json"};
  aw_group(w);
  s = rcache_set_json_tagged(c, "js:3", json_made, 0, tags, 1);
  AW_REC(w, s, NULL);
  s = rcache_get_json_tagged(c, "js:3", tags, 1, &j);
  rec_json(w, __LINE__, s, j);
  aw_group(w);
  s = rcache_get_or_set_json_tagged(c, "js:4", 0, tags, 1, load_json, NULL, &j);
  rec_json(w, __LINE__, s, j);
  s = rcache_get_or_set_json_tagged(c, "js:4", 0, tags, 1, load_json, NULL, &j);
  rec_json(w, __LINE__, s, j);
}

static void tools(aw *w, rcache *c) {
  char t[4096];
  aw_group(w);
  uint64_t n = 0;
  rcache_status s = rcache_invalidate_user(c, "u1", &n);
  snprintf(t, sizeof t, "%llu", (unsigned long long)n);
  AW_REC(w, s, s == RCACHE_ENOMEM ? NULL : t);
  aw_group(w);
  char uid[200]; /* a long id: the user's prefix is malloc'd */
  memset(uid, 'u', sizeof uid - 1);
  uid[sizeof uid - 1] = '\0';
  s = rcache_invalidate_user(c, uid, &n);
  snprintf(t, sizeof t, "%llu", (unsigned long long)n);
  AW_REC(w, s, s == RCACHE_ENOMEM ? NULL : t);
  aw_group(w);
  int k = rcache_key_user_credits(t, sizeof t, "u2");
  AW_REC(w, k > 0 ? RCACHE_OK : RCACHE_EINVAL, t);
  k = rcache_key_digest(t, sizeof t, long_key, 100);
  AW_REC(w, k > 0 ? RCACHE_OK : RCACHE_EINVAL, t);
  aw_group(w);
  int seen = 0;
  s = rcache_scan(c, "pre:*", 0, count_key, &seen);
  snprintf(t, sizeof t, "%d", seen);
  AW_REC(w, s, s == RCACHE_ENOMEM ? NULL : t);
  aw_group(w);
  rcache_health h;
  s = rcache_health_check(c, &h);
  snprintf(t, sizeof t, "%d %s %s", h.healthy, h.mode, h.error);
  AW_REC(w, s, t);
  /* counters differ with every failure: only that the exporters run and agree in length */
  rcache_stats st;
  rcache_get_stats(c, &st);
  size_t need = rcache_stats_prometheus(&st, t, sizeof t);
  AW_REC(w, need > 0 && need < sizeof t ? RCACHE_OK : RCACHE_ETOOBIG, NULL);
  need = rcache_stats_json(&st, t, sizeof t);
  AW_REC(w, need > 0 && need < sizeof t ? RCACHE_OK : RCACHE_ETOOBIG, NULL);
  AW_REC(w, RCACHE_OK, rcache_errmsg(NULL) ? "" : "NULL"); /* never NULL */
}

static void flush(aw *w, rcache *c) {
  char t[64];
  rcache_value v;
  aw_group(w);
  rcache_status s = rcache_flush(c);
  AW_REC(w, s, NULL);
  s = rcache_get(c, "pre:str", &v);
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  rcache_value_free(&v);
}

typedef struct {
  const char *url;
  const rcache_options *opt;
} ops_case;

static void ops_flow(aw *w, void *ud) {
  const ops_case *oc = ud;
  rcache *c = NULL;
  if (rcache_open(&c, oc->url, oc->opt) != RCACHE_OK) {
    CHECK_MSG(false, "open %s: %s", oc->url, rcache_errmsg(NULL));
    return;
  }
  setup_keys(c);
  w->c = c;
  aw_arm(w);
  reads(w, c);
  writes(w, c);
  get_or_sets(w, c);
  counters(w, c);
  batches(w, c);
  typed(w, c);
  json_calls(w, c);
  aw_tag_calls(w, c);
  tools(w, c);
  flush(w, c);
  aw_disarm(w);
  bool none = !strcmp(rcache_mode(c), "none");
  if (!none && !aw_round_trip(c, "after:walk"))
    aw_fail(w, 0, "the handle does not work after the walk: %s", rcache_errmsg(c));
  rcache_close(c);
  w->c = NULL;
}

/* ---- flow (b): rcache_open / rcache_close with options --------------------------------------- */

typedef struct {
  const char *url;
  const rcache_options *opt;
  rcache_status want; /* without failures */
} open_case;

static void open_flow(aw *w, void *ud) {
  const open_case *oc = ud;
  rcache *c = NULL;
  w->c = NULL;
  aw_arm(w);
  rcache_status s = rcache_open(&c, oc->url, oc->opt);
  const char *msg = rcache_errmsg(NULL);
  if (s == RCACHE_ENOMEM && (c || !*msg)) aw_fail(w, __LINE__, "ENOMEM: handle set or no message");
  AW_REC(w, s, s == RCACHE_OK ? rcache_mode(c) : msg);
  if (w->recording && s != oc->want) aw_fail(w, __LINE__, "status %d: %s", (int)s, msg);
  uint64_t before = rcache__alloc_calls();
  rcache_close(c); /* closing must not need memory: it is not walked, so it is checked */
  if (rcache__alloc_calls() != before) aw_fail(w, __LINE__, "rcache_close allocated");
  aw_disarm(w);
  if (s != RCACHE_OK) return;
  /* and a handle opened by a walked open works */
  c = NULL;
  aw_arm(w); /* the same run again with the same N: open is deterministic */
  s = rcache_open(&c, oc->url, oc->opt);
  AW_REC(w, s, s == RCACHE_OK ? rcache_mode(c) : rcache_errmsg(NULL));
  aw_disarm(w);
  if (c && strcmp(rcache_mode(c), "none") != 0 && !aw_round_trip(c, "after:open"))
    aw_fail(w, 0, "a handle opened under the walk does not work: %s", rcache_errmsg(c));
  rcache_close(c);
}

int main(void) {
  rcache__alloc_route_deps();                     /* hiredis (>= 1.0) and jansson ... */
  json_set_alloc_funcs(json_alloc, json_release); /* ... jansson by way of wrappers */
  memset(long_key, 'k', LONG_KEY_LEN);
  json_made = json_pack("{s:[i,s,b],s:n}", "list", 1, "two", 1, "none");
  json_pre = json_pack("{s:[i,i,s]}", "a", 1, 2, "x");
  if (!json_made || !json_pre) return 1;

  rcache_options plain;
  rcache_options_init(&plain);
  plain.log_fn = quiet_log;
  rcache_options rich = plain; /* get_or_set's lease, stale window, early refresh */
  rich.lease = true;
  rich.stale_window_s = 60;
  rich.early_refresh_beta = 1.0;
  rcache_options digest = plain; /* over-long keys stored under their digest form */
  digest.long_key_digest = true;
  digest.max_key_bytes = 200;
  ops_case ops[] = {{"memory://", &plain},
                    {"memory://?key_prefix=app:&max_bytes=16777216", &rich},
                    {"memory://", &digest},
                    {"none://", &rich}};
  const char *ops_names[] = {"ops memory://", "ops memory:// prefix, lease, stale, refresh",
                             "ops memory:// long_key_digest", "ops none://"};
  for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
    aw_walk(ops_names[i], true, ops_flow, &ops[i]);
    aw_walk(ops_names[i], false, ops_flow, &ops[i]);
  }

  rcache_options many = plain; /* every string option, and the near cache (ignored here) */
  many.key_prefix = "opt:";
  many.client_name = "walker";
  many.tls_ca_file = "/nonexistent/ca.pem";
  many.tls_cert_file = "/nonexistent/cert.pem";
  many.tls_key_file = "/nonexistent/key.pem";
  many.tls_server_name = "cache.example";
  many.near_cache_bytes = 1 << 20;
  many.stale_window_s = 30;
  many.lease = true;
  many.default_ttl_s = 60;
  many.ttl_jitter = 0.1;
  open_case opens[] = {
      {"memory://?key_prefix=url:&max_bytes=1048576", &many, RCACHE_OK},
      {"memory://", NULL, RCACHE_OK},
      {"none://", &many, RCACHE_OK},
      {"", &plain, RCACHE_OK},
      {"memory://?no_such_option=1", &many, RCACHE_EURL},
      {"redis://user:secret@[::1", &plain, RCACHE_EURL},
  };
  const char *open_names[] = {"open memory:// many options",
                              "open memory:// defaults",
                              "open none:// many options",
                              "open \"\"",
                              "open bad option",
                              "open bad URL"};
  for (size_t i = 0; i < sizeof opens / sizeof *opens; i++) {
    aw_walk(open_names[i], true, open_flow, &opens[i]);
    aw_walk(open_names[i], false, open_flow, &opens[i]);
  }
  json_decref(json_made);
  json_decref(json_pre);
  return test_report("test_alloc_fail");
}
