/* SPDX-License-Identifier: BSD-3-Clause */
/* Health, statistics and their exports, error details. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "contract.h"

static bool known_mode(const char *m) {
  return strcmp(m, "memory") == 0 || strcmp(m, "standalone") == 0 || strcmp(m, "cluster") == 0 ||
         strcmp(m, "sentinel") == 0;
}

CONTRACT_TEST(health_check) {
  rcache_health h;
  memset(&h, 0x5a, sizeof h); /* every field must be written */
  CHECK_EQ(rcache_health_check(e->c, &h), RCACHE_OK);
  CHECK(h.healthy);
  CHECK_STR(h.error, "");
  CHECK(h.latency_ms >= 0 && h.latency_ms < 60000);
  CHECK(memchr(h.server_version, '\0', sizeof h.server_version) != NULL);
  CHECK(memchr(h.mode, '\0', sizeof h.mode) != NULL);
  CHECK_STR(h.mode, rcache_mode(e->c));
  CHECK_MSG(known_mode(h.mode), "mode \"%s\"", h.mode);
  if (strcmp(h.mode, "memory") != 0) /* a server reports its version, e.g. 7.0.15 */
    CHECK_MSG(h.server_version[0] >= '1' && h.server_version[0] <= '9', "version \"%s\"",
              h.server_version);
  CHECK_EQ(rcache_health_check(e->c, NULL), RCACHE_EINVAL);
}

CONTRACT_ANY_TEST(version_and_strerror) {
  const char *v = rcache_version();
  CHECK(v && v[0] >= '0' && v[0] <= '9' && strchr(v, '.'));
  CHECK_STR(rcache_strerror(RCACHE_OK), "ok");
  for (int s = -15; s <= 1; s++) {
    const char *m = rcache_strerror((rcache_status)s);
    CHECK_MSG(m && m[0], "strerror(%d)", s);
  }
  CHECK(rcache_strerror((rcache_status)-999) != NULL);
  CHECK(strcmp(rcache_strerror(RCACHE_EINVAL), rcache_strerror(RCACHE_EUNAVAILABLE)) != 0);
}

CONTRACT_TEST(stats_counters_move) {
  rcache_stats a, b;
  rcache_get_stats(e->c, &a);
  CHECK(a.available);
  CHECK_EQ(a.breaker_state, RCACHE_BREAKER_CLOSED);
  rcache_value v;
  CHECK_EQ(rcache_set(e->c, "s1", "x", 1, 0), RCACHE_OK);
  CHECK_EQ(rcache_set(e->c, "s2", "y", 1, 0), RCACHE_OK);
  CHECK_EQ(rcache_get(e->c, "s1", &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(rcache_get(e->c, "s1", &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(rcache_get(e->c, "nope", &v), RCACHE_MISS);
  CHECK_EQ(rcache_delete(e->c, "s2"), RCACHE_OK);
  CHECK_EQ(rcache_incr(e->c, "s1", 1, NULL), RCACHE_ETYPE); /* an error */
  rcache_get_stats(e->c, &b);
  CHECK_EQ((b.hits + b.near_hits) - (a.hits + a.near_hits), 2); /* either tier */
  CHECK_EQ(b.misses - a.misses, 1);
  CHECK_EQ(b.sets - a.sets, 2);
  CHECK_EQ(b.deletes - a.deletes, 1);
  CHECK(b.errors - a.errors >= 1);
  CHECK_EQ(b.fallbacks, a.fallbacks); /* nothing was answered without the cache */
  CHECK(b.available);
  CHECK(b.latency_max_ms >= b.latency_p99_ms && b.latency_p99_ms >= b.latency_p50_ms);
  CHECK(b.latency_p50_ms >= 0);
}

/* Finds "needle" followed by a number in text; that number, or -1. */
static long long number_after(const char *text, const char *needle) {
  const char *p = strstr(text, needle);
  if (!p) return -1;
  return strtoll(p + strlen(needle), NULL, 10);
}

CONTRACT_TEST(stats_exports) {
  rcache_value v;
  for (int i = 0; i < 3; i++)
    CHECK_EQ(rcache_get(e->c, "missing", &v), RCACHE_MISS);
  CHECK_EQ(rcache_set(e->c, "k", "v", 1, 0), RCACHE_OK);
  rcache_stats s;
  rcache_get_stats(e->c, &s);
  char buf[8192];
  size_t need = rcache_stats_json(&s, NULL, 0);
  CHECK(need > 20 && need < sizeof buf);
  size_t n = rcache_stats_json(&s, buf, sizeof buf);
  CHECK_EQ(n, need);
  CHECK_EQ(strlen(buf), n);
  CHECK(buf[0] == '{' && buf[n - 1] == '}');
  CHECK_EQ(number_after(buf, "\"misses\":"), (long long)s.misses);
  CHECK_EQ(number_after(buf, "\"sets\":"), (long long)s.sets);
  CHECK(strstr(buf, "\"available\":true") != NULL);
  CHECK(strchr(buf, '\n') == NULL); /* compact */
  /* braces and quotes balance: a cheap well-formedness check */
  int depth = 0, quotes = 0;
  for (size_t i = 0; i < n; i++) {
    depth += buf[i] == '{' ? 1 : buf[i] == '}' ? -1 : 0;
    quotes += buf[i] == '"';
  }
  CHECK_EQ(depth, 0);
  CHECK_EQ(quotes % 2, 0);
  /* truncation: snprintf semantics */
  char small[16];
  CHECK_EQ(rcache_stats_json(&s, small, sizeof small), need);
  CHECK_EQ(strlen(small), sizeof small - 1);
  CHECK(strncmp(small, buf, sizeof small - 1) == 0);

  need = rcache_stats_prometheus(&s, NULL, 0);
  CHECK(need > 100 && need < sizeof buf);
  n = rcache_stats_prometheus(&s, buf, sizeof buf);
  CHECK_EQ(n, need);
  CHECK_EQ(strlen(buf), n);
  CHECK_EQ(number_after(buf, "\nrcache_misses_total "), (long long)s.misses);
  CHECK_EQ(number_after(buf, "\nrcache_sets_total "), (long long)s.sets);
  CHECK_EQ(number_after(buf, "\nrcache_available "), 1);
  CHECK(strstr(buf, "# TYPE rcache_hits_total counter") != NULL);
  CHECK(buf[n - 1] == '\n');
  /* every non-comment line is "name[{labels}] value" */
  int bad = 0, samples = 0;
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    if (line[0] == '#') continue;
    samples++;
    char *sp = strrchr(line, ' ');
    bad += !sp || strncmp(line, "rcache_", 7) != 0 || sp[1] == '\0';
  }
  CHECK(samples >= 15);
  CHECK_EQ(bad, 0);
  CHECK_EQ(rcache_stats_json(NULL, buf, sizeof buf), 0);
  CHECK_STR(buf, "");
}

CONTRACT_ANY_TEST(errmsg_after_failures) {
  CHECK_EQ(rcache_get(e->c, "", NULL), RCACHE_EINVAL);
  const char *m = rcache_errmsg(e->c);
  CHECK_MSG(m[0] != '\0', "errmsg empty after EINVAL");
  CHECK(rcache_errmsg(NULL) != NULL);
  /* a failed open leaves its reason for rcache_errmsg(NULL), naming the option */
  rcache_options o;
  rcache_options_init(&o);
  o.pool_size = 0;
  rcache *c = (rcache *)1;
  CHECK_EQ(rcache_open(&c, e->url, &o), RCACHE_EINVAL);
  CHECK(c == NULL);
  CHECK_MSG(strstr(rcache_errmsg(NULL), "pool_size") != NULL, "\"%s\"", rcache_errmsg(NULL));
  /* a handle's message belongs to that handle: another handle has none of it */
  rcache *other = ct_open(e, NULL);
  if (other) CHECK_STR(rcache_errmsg(other), "");
  CHECK_STR(rcache_mode(NULL), "");
}

/* ---- per-operation histograms, key families, the event sink (issue 20) ---------------------- */

typedef struct ev_log {
  int calls[RCACHE_OP_COUNT];
  rcache_status last[RCACHE_OP_COUNT];
  char family[RCACHE_OP_COUNT][32];
  size_t bytes[RCACHE_OP_COUNT];
  bool server_set;
} ev_log;

static void on_event(const rcache_event *ev, void *ud) {
  ev_log *l = ud;
  if ((unsigned)ev->op >= RCACHE_OP_COUNT) return;
  l->calls[ev->op]++;
  l->last[ev->op] = ev->status;
  snprintf(l->family[ev->op], sizeof l->family[ev->op], "%s", ev->family);
  l->bytes[ev->op] = ev->bytes;
  l->server_set = ev->server && ev->server[0];
}

static rcache_status load_v(void *ud, rcache_value *out) {
  (void)ud;
  out->data = strdup("loaded");
  out->len = 6;
  return RCACHE_OK;
}

static uint64_t op_count(rcache *c, rcache_op op) {
  rcache_op_stats h;
  if (rcache_get_op_stats(c, op, &h) != RCACHE_OK) return UINT64_MAX;
  uint64_t sum = 0;
  for (int i = 0; i < RCACHE_OP_BUCKETS; i++)
    sum += h.bucket[i];
  return sum == h.count && h.size == sizeof h ? h.count : UINT64_MAX - 1;
}

/* A known sequence of calls: get 3 (1 hit, 2 misses), set 3 (one tagged), delete 1,
 * get_or_set 2 (one load, one hit), incr 1, delete_prefix 1, get_many 1, set_many 1,
 * health 1, invalidate_tag 1, get_tagged 1 (a miss). */
static void known_calls(rcache *c) {
  rcache_value v;
  CHECK_EQ(rcache_set(c, "user:1", "abc", 3, 0), RCACHE_OK);
  CHECK_EQ(rcache_set(c, "wf:def:1", "x", 1, 0), RCACHE_OK);
  const char *tags[1] = {"t1"};
  CHECK_EQ(rcache_set_tagged(c, "tg:1", "y", 1, 0, tags, 1), RCACHE_OK);
  CHECK_EQ(rcache_invalidate_tag(c, "t1"), RCACHE_OK);
  CHECK_EQ(rcache_get_tagged(c, "tg:1", tags, 1, &v), RCACHE_MISS); /* its tag moved on */
  CHECK_EQ(rcache_get(c, "user:1", &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(rcache_get(c, "user:2", &v), RCACHE_MISS);
  CHECK_EQ(rcache_get(c, "wf:def:2", &v), RCACHE_MISS);
  CHECK_EQ(rcache_get_or_set(c, "credit:7", 60, load_v, NULL, &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(rcache_get_or_set(c, "credit:7", 60, load_v, NULL, &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(rcache_delete(c, "wf:def:1"), RCACHE_OK);
  CHECK_EQ(rcache_incr(c, "n:1", 2, NULL), RCACHE_OK);
  CHECK_EQ(rcache_delete_prefix(c, "zz:", NULL), RCACHE_OK);
  const char *keys[2] = {"user:1", "m:2"};
  rcache_value vals[2];
  rcache_status sts[2];
  CHECK_EQ(rcache_get_many(c, keys, 2, vals, sts), RCACHE_OK);
  rcache_value_free(&vals[0]);
  rcache_value_free(&vals[1]);
  rcache_value sv[1] = {{(char *)"q", 1}};
  const char *sk[1] = {"m:3"};
  CHECK_EQ(rcache_set_many(c, sk, sv, 1, 0), RCACHE_OK);
  rcache_health h;
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_OK);
}

static const uint64_t expect_counts[RCACHE_OP_COUNT] = {[RCACHE_OP_GET] = 3,
                                                        [RCACHE_OP_SET] = 3,
                                                        [RCACHE_OP_DELETE] = 1,
                                                        [RCACHE_OP_GET_OR_SET_HIT] = 1,
                                                        [RCACHE_OP_GET_OR_SET_LOAD] = 1,
                                                        [RCACHE_OP_INCR] = 1,
                                                        [RCACHE_OP_DELETE_MATCH] = 1,
                                                        [RCACHE_OP_GET_MANY] = 1,
                                                        [RCACHE_OP_SET_MANY] = 1,
                                                        [RCACHE_OP_HEALTH] = 1,
                                                        [RCACHE_OP_LOADER] = 1,
                                                        [RCACHE_OP_INVALIDATE_TAG] = 1,
                                                        [RCACHE_OP_GET_TAGGED] = 1};

CONTRACT_TEST(op_histograms_and_events_count_exactly) {
  ev_log l;
  memset(&l, 0, sizeof l);
  rcache_options o;
  rcache_options_init(&o);
  o.key_family_segments = 1;
  o.event_sink.on_event = on_event;
  o.event_sink.ud = &l;
  rcache *c = ct_open(e, &o);
  if (!c) return;
  int ev0[RCACHE_OP_COUNT]; /* ct_open's own calls (health checks) are not ours */
  uint64_t h0[RCACHE_OP_COUNT];
  for (int op = 0; op < RCACHE_OP_COUNT; op++) {
    ev0[op] = l.calls[op];
    h0[op] = op_count(c, (rcache_op)op);
  }
  known_calls(c);
  for (int op = 0; op < RCACHE_OP_COUNT; op++) {
    int ev = l.calls[op] - ev0[op];
    uint64_t n = op_count(c, (rcache_op)op) - h0[op];
    CHECK_MSG(ev == (int)expect_counts[op], "%s: %d events", rcache_op_name(op), ev);
    CHECK_MSG(n == expect_counts[op], "%s: %llu in the histogram", rcache_op_name(op),
              (unsigned long long)n);
  }
  CHECK_EQ(l.last[RCACHE_OP_GET], RCACHE_MISS);
  CHECK_STR(l.family[RCACHE_OP_GET], "wf");
  CHECK_STR(l.family[RCACHE_OP_GET_TAGGED], "tg");
  CHECK_EQ(l.last[RCACHE_OP_GET_TAGGED], RCACHE_MISS);
  CHECK_STR(l.family[RCACHE_OP_GET_OR_SET_HIT], "credit");
  CHECK_EQ(l.bytes[RCACHE_OP_GET_OR_SET_HIT], 6);
  CHECK_EQ(l.bytes[RCACHE_OP_LOADER], 6);
  CHECK(l.server_set);
  rcache_op_stats h;
  CHECK_EQ(rcache_get_op_stats(c, RCACHE_OP_COUNT, &h), RCACHE_EINVAL);
  CHECK(rcache_op_name(RCACHE_OP_COUNT) == NULL);
  CHECK_STR(rcache_op_name(RCACHE_OP_GET_OR_SET_LOAD), "get_or_set_load");
  CHECK_EQ(rcache_op_bucket_le_us(0), 1);
  CHECK_EQ(rcache_op_bucket_le_us(10), 1024);
  CHECK_EQ(rcache_op_bucket_le_us(RCACHE_OP_BUCKETS - 1), UINT64_MAX);
}

CONTRACT_TEST(family_hits_and_misses) {
  rcache_options o;
  rcache_options_init(&o);
  o.key_family_segments = 1;
  rcache *c = ct_open(e, &o);
  if (!c) return;
  known_calls(c);
  rcache_value v;
  rcache_stats st0, st1;
  rcache_get_stats(c, &st0);
  for (int i = 0; i < 100; i++) { /* with --near, nearly all near hits: counted as well */
    CHECK_EQ(rcache_get(c, "user:1", &v), RCACHE_OK);
    rcache_value_free(&v);
  }
  rcache_get_stats(c, &st1);
  if (ct_near()) CHECK(st1.near_hits > st0.near_hits);
  char name[64];
  uint64_t hi, mi;
  int seen = 0;
  for (size_t i = 0; rcache_get_family_stats(c, i, name, sizeof name, &hi, &mi) == RCACHE_OK; i++) {
    if (strcmp(name, "user") == 0) {
      CHECK_EQ(hi, 1 + 100);
      CHECK_EQ(mi, 1);
      seen++;
    } else if (strcmp(name, "wf") == 0) {
      CHECK_EQ(hi, 0);
      CHECK_EQ(mi, 1);
      seen++;
    } else if (strcmp(name, "credit") == 0) {
      CHECK_EQ(hi, 1);
      CHECK_EQ(mi, 1);
      seen++;
    } else if (strcmp(name, "tg") == 0) { /* rcache_get_tagged counts as a read */
      CHECK_EQ(hi, 0);
      CHECK_EQ(mi, 1);
      seen++;
    } else if (strcmp(name, "other") == 0) {
      CHECK_EQ(hi + mi, 0);
      seen++;
    }
    CHECK(i <= RCACHE_MAX_FAMILIES);
  }
  CHECK_EQ(seen, 5);
  /* past RCACHE_MAX_FAMILIES distinct families, the rest count under "other" */
  for (int i = 0; i < RCACHE_MAX_FAMILIES + 5; i++) {
    char k[32];
    snprintf(k, sizeof k, "f%d:x", i);
    CHECK_EQ(rcache_get(c, k, &v), RCACHE_MISS);
  }
  size_t n = 0;
  while (rcache_get_family_stats(c, n, name, sizeof name, &hi, &mi) == RCACHE_OK)
    n++;
  CHECK_EQ(n, RCACHE_MAX_FAMILIES + 1);
  CHECK_EQ(rcache_get_family_stats(c, RCACHE_MAX_FAMILIES, name, sizeof name, &hi, &mi), RCACHE_OK);
  CHECK_STR(name, "other");
  CHECK_EQ(mi, 4 + 5); /* 28 slots were free after user, wf, credit, tg */
}

/* Whether the n bytes at p hold the string w. */
static bool has(const char *p, size_t n, const char *w) {
  size_t wl = strlen(w);
  for (size_t i = 0; i + wl <= n; i++)
    if (memcmp(p + i, w, wl) == 0) return true;
  return false;
}

/* Checks the op's histogram lines: buckets cumulative, +Inf == _count; returns _count. */
static double check_op_lines(const char *text, const char *op) {
  char want[64];
  snprintf(want, sizeof want, "op=\"%s\"", op);
  double prev = 0, inf = -1, count = -2;
  for (const char *p = text; *p;) {
    const char *eol = strchr(p, '\n');
    size_t n = eol ? (size_t)(eol - p) : strlen(p);
    const char *close = memchr(p, '}', n);
    if (close && has(p, n, want)) {
      double v = strtod(close + 1, NULL);
      if (strncmp(p, "rcache_op_duration_seconds_bucket{", 34) == 0) {
        CHECK_MSG(v >= prev, "%s: bucket %.0f after %.0f", op, v, prev);
        prev = v;
        if (has(p, n, "le=\"+Inf\"")) inf = v;
      } else if (strncmp(p, "rcache_op_duration_seconds_count{", 33) == 0) {
        count = v;
      }
    }
    p += n + (eol ? 1 : 0);
  }
  CHECK_MSG(inf == count, "%s: +Inf %.0f, _count %.0f", op, inf, count);
  return count;
}

CONTRACT_TEST(prometheus_histograms_are_well_formed) {
  rcache_options o;
  rcache_options_init(&o);
  o.key_family_segments = 1;
  o.client_name = "obs\"test";
  rcache *c = ct_open(e, &o);
  if (!c) return;
  known_calls(c);
  size_t need = rcache_metrics_prometheus(c, NULL, 0);
  char *buf = malloc(need + 1);
  if (!buf) return;
  CHECK_EQ(rcache_metrics_prometheus(c, buf, need + 1), need);
  CHECK_EQ(strlen(buf), need);
  CHECK(strstr(buf, "# TYPE rcache_op_duration_seconds histogram\n") != NULL);
  CHECK(strstr(buf, "client=\"obs\\\"test\"") != NULL);
  for (int op = 0; op < RCACHE_OP_COUNT; op++) {
    double n = check_op_lines(buf, rcache_op_name(op));
    CHECK_MSG(n >= (double)expect_counts[op], "%s: _count %.0f", rcache_op_name(op), n);
  }
  CHECK(strstr(buf, "rcache_family_hits_total{") != NULL);
  CHECK(strstr(buf, "family=\"user\"} 1\n") != NULL);
  free(buf);
  need = rcache_metrics_json(c, NULL, 0);
  buf = malloc(need + 1);
  if (!buf) return;
  CHECK_EQ(rcache_metrics_json(c, buf, need + 1), need);
  CHECK(buf[0] == '{' && buf[need - 1] == '}');
  CHECK(strstr(buf, "\"get_or_set_load\":{\"count\":1,") != NULL);
  CHECK(strstr(buf, "\"wf\":{\"hits\":0,\"misses\":1}") != NULL);
  char small[8];
  CHECK_EQ(rcache_metrics_json(c, small, sizeof small), need);
  CHECK(strlen(small) < sizeof small);
  free(buf);
}

/* The JSON rendering is JSON whatever the keys: key families are bytes (cut to 63 of
 * them), and a document that does not parse would make `rcache stats --clients` and `watch`
 * fail for every process of the namespace. A family longer than the cut, of two-byte
 * characters, must not end in half a character; one that is not UTF-8, or holds control
 * bytes, must come out as valid JSON too. */
CONTRACT_TEST(metrics_json_parses_whatever_the_keys) {
  rcache_options o;
  rcache_options_init(&o);
  o.key_family_segments = 1;
  rcache *c = ct_open(e, &o);
  if (!c) return;
  char longkey[160] = "";
  for (int i = 0; i < 40; i++)
    strcat(longkey, "\xc3\xa9"); /* é: 80 bytes, 40 characters */
  strcat(longkey, ":1");
  const char *keys[] = {longkey, "\xff\xfe:1", "t\tab\x01:1"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    rcache_value v;
    CHECK_EQ(rcache_get(c, keys[i], &v), RCACHE_MISS);
  }
  size_t need = rcache_metrics_json(c, NULL, 0);
  char *buf = malloc(need + 1);
  if (!buf) return;
  CHECK_EQ(rcache_metrics_json(c, buf, need + 1), need);
  json_error_t err;
  json_t *doc = json_loadb(buf, need, 0, &err);
  CHECK_MSG(doc != NULL, "rcache_metrics_json is not JSON: %s at %d", err.text, err.position);
  json_t *fams = json_object_get(doc, "families");
  CHECK_EQ(json_object_size(fams), 4); /* the three, and "other" */
  json_decref(doc);
  free(buf);
}

/* Near-cache hits are timed one in 64 (per shard of the near table: all of one key's hits
 * go to one shard), each timed one counting for 64, with an event sink set or not; reads the
 * remote tier answered are each counted. The count is exact given how many reads the near
 * cache answered; without a near cache it is the number of reads. An event sink is told of
 * every read, near hits included. */
CONTRACT_TEST(near_hits_in_histograms) {
  rcache *c = ct_open(e, NULL); /* a fresh handle: its near table has served no hit yet */
  if (!c) return;
  CHECK_EQ(rcache_set(c, "nh", "v", 1, 0), RCACHE_OK);
  rcache_stats a, b;
  rcache_get_stats(c, &a);
  uint64_t h0 = op_count(c, RCACHE_OP_GET);
  rcache_value v;
  for (int i = 0; i < 640; i++) {
    CHECK_EQ(rcache_get(c, "nh", &v), RCACHE_OK);
    rcache_value_free(&v);
  }
  rcache_get_stats(c, &b);
  uint64_t near = b.near_hits - a.near_hits, remote = 640 - near;
  if (!ct_near()) CHECK_EQ(near, 0);
  CHECK_MSG(op_count(c, RCACHE_OP_GET) - h0 == remote + near / 64 * 64,
            "%llu counted for %llu near and %llu remote reads",
            (unsigned long long)(op_count(c, RCACHE_OP_GET) - h0), (unsigned long long)near,
            (unsigned long long)remote);

  /* with an event sink, every near hit is reported, and sampled in the histogram as above */
  ev_log l;
  memset(&l, 0, sizeof l);
  rcache_options o;
  rcache_options_init(&o);
  o.key_family_segments = 1;
  o.event_sink.on_event = on_event;
  o.event_sink.ud = &l;
  rcache *t = ct_open(e, &o);
  if (!t) return;
  CHECK_EQ(rcache_set(t, "nh", "v", 1, 0), RCACHE_OK); /* memory://: each handle its store */
  int ev0 = l.calls[RCACHE_OP_GET];
  rcache_get_stats(t, &a);
  h0 = op_count(t, RCACHE_OP_GET);
  for (int i = 0; i < 100; i++) {
    CHECK_EQ(rcache_get(t, "nh:1", &v), RCACHE_MISS);
    CHECK_EQ(rcache_get(t, "nh", &v), RCACHE_OK);
    rcache_value_free(&v);
  }
  rcache_get_stats(t, &b);
  near = b.near_hits - a.near_hits;
  remote = 200 - near;
  CHECK_EQ(l.calls[RCACHE_OP_GET] - ev0, 200);
  CHECK_MSG(op_count(t, RCACHE_OP_GET) - h0 == remote + near / 64 * 64,
            "with a sink: %llu counted for %llu near and %llu remote reads",
            (unsigned long long)(op_count(t, RCACHE_OP_GET) - h0), (unsigned long long)near,
            (unsigned long long)remote);
  CHECK_EQ(l.last[RCACHE_OP_GET], RCACHE_OK);
  CHECK_STR(l.family[RCACHE_OP_GET], "nh");
  CHECK_EQ(l.bytes[RCACHE_OP_GET], 1);
}

/* Per-server gauges: a server per standalone or Sentinel handle, one per known node in a
 * cluster, none for memory://. */
/* The calls-in-flight gauge: a get_or_set is in it while its loader runs, and once calls
 * have returned nothing is left in it. A path that enters without leaving leaves it above 0;
 * one that leaves twice takes the loader's 1 down to 0 (the sum is read clamped at 0). */
typedef struct gauge_seen {
  rcache *c;
  uint64_t in_flight, loads;
} gauge_seen;

static rcache_status load_gauge(void *ud, rcache_value *out) {
  gauge_seen *g = ud;
  rcache_stats st;
  rcache_get_stats(g->c, &st);
  g->in_flight = st.calls_in_flight;
  g->loads = st.loads_in_progress;
  return load_v(NULL, out);
}

CONTRACT_TEST(calls_in_flight_gauge) {
  rcache *c = e->c;
  known_calls(c); /* every kind of call, each path that enters the gauge */
  CHECK_EQ(rcache_get_many(c, NULL, 1, NULL, NULL), RCACHE_EINVAL); /* never entered */
  CHECK_EQ(rcache_set(c, "", "x", 1, 0), RCACHE_EINVAL);
  gauge_seen g = {c, 0, 0};
  rcache_value v;
  CHECK_EQ(rcache_get_or_set(c, "gauge:1", 60, load_gauge, &g, &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(g.in_flight, 1);
  CHECK_EQ(g.loads, 1);
  rcache_stats st;
  rcache_get_stats(c, &st);
  CHECK_EQ(st.calls_in_flight, 0);
  CHECK_EQ(st.calls_queued, 0);
  CHECK_EQ(st.loads_in_progress, 0);
  char buf[8192];
  CHECK(rcache_stats_prometheus(&st, buf, sizeof buf) < sizeof buf);
  CHECK(strstr(buf, "# TYPE rcache_calls_in_flight gauge\nrcache_calls_in_flight 0\n") != NULL);
  CHECK(strstr(buf, "\nrcache_calls_queued 0\n") != NULL);
  CHECK(rcache_stats_json(&st, buf, sizeof buf) < sizeof buf);
  CHECK(strstr(buf, "\"calls_in_flight\":0,\"calls_queued\":0,\"loads_in_progress\":0") != NULL);
}

CONTRACT_TEST(server_gauges) {
  rcache_server_stats g;
  CHECK_EQ(rcache_set(e->c, "sg", "v", 1, 0), RCACHE_OK);
  size_t n = 0;
  while (rcache_get_server_stats(e->c, n, &g) == RCACHE_OK) {
    CHECK_EQ(g.size, sizeof g);
    CHECK(g.server[0] != '\0');
    CHECK(g.busy <= g.connections);
    CHECK(g.breaker_state >= RCACHE_BREAKER_CLOSED && g.breaker_state <= RCACHE_BREAKER_HALF_OPEN);
    n++;
    CHECK(n < 1000);
  }
  CHECK_EQ(g.size, sizeof g); /* zeroed, size set */
  CHECK_STR(g.server, "");
  if (strcmp(rcache_mode(e->c), "memory") == 0) {
    CHECK_EQ(n, 0);
  } else {
    CHECK(n >= 1);
    CHECK_EQ(rcache_get_server_stats(e->c, 0, &g), RCACHE_OK);
    if (strcmp(rcache_mode(e->c), "cluster") != 0) {
      CHECK_EQ(g.breaker_state, RCACHE_BREAKER_CLOSED);
      CHECK(g.connections >= 1); /* the set above went through it */
    }
  }
  size_t small = sizeof g.size; /* an older program's struct: only what it has */
  rcache_server_stats tiny;
  memset(&tiny, 0x5a, sizeof tiny);
  rcache_get_server_stats_sized(e->c, 0, &tiny, small);
  CHECK_EQ(tiny.size, small);
  CHECK_EQ((unsigned char)tiny.server[0], 0x5a);
  CHECK_EQ(rcache_get_server_stats(NULL, 0, &g), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_server_stats(e->c, 0, NULL), RCACHE_EINVAL);
}

/* none://: calls are timed too (nothing is cached, every call answers at once). */
CONTRACT_NONE_TEST(none_calls_are_timed) {
  uint64_t g0 = op_count(e->c, RCACHE_OP_GET), s0 = op_count(e->c, RCACHE_OP_SET);
  rcache_value v;
  for (int i = 0; i < 3; i++)
    (void)rcache_get(e->c, "k", &v);
  (void)rcache_set(e->c, "k", "v", 1, 0);
  CHECK_EQ(op_count(e->c, RCACHE_OP_GET) - g0, 3);
  CHECK_EQ(op_count(e->c, RCACHE_OP_SET) - s0, 1);
  rcache_server_stats g;
  CHECK_EQ(rcache_get_server_stats(e->c, 0, &g), RCACHE_MISS);
}
