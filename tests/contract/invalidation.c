/* SPDX-License-Identifier: BSD-3-Clause */
/* Invalidation by prefix and pattern, flush of a namespace, scan. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"

static void put(rcache *c, const char *key) {
  CHECK_MSG(rcache_set(c, key, "v", 1, 0) == RCACHE_OK, "set %s", key);
}

static void put_all(rcache *c, const char *const *keys, size_t n) {
  for (size_t i = 0; i < n; i++)
    put(c, keys[i]);
}

/* keys[i] must exist exactly when alive[i] */
static void expect_alive(rcache *c, const char *const *keys, const bool *alive, size_t n) {
  for (size_t i = 0; i < n; i++) {
    CHECK_MSG(ct_exists(c, keys[i]) == alive[i], "%s should %s", keys[i],
              alive[i] ? "survive" : "be deleted");
  }
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

CONTRACT_TEST(delete_prefix_user_12_not_123) {
  const char *keys[] = {"user:12:profile", "user:12:credits", "user:12:",   "user:123:profile",
                        "user:1:profile",  "user:12",         "xuser:12:a", "user:120"};
  const bool alive[] = {false, false, false, true, true, true, true, true};
  put_all(e->c, keys, N(keys));
  uint64_t n = 99;
  CHECK_EQ(rcache_delete_prefix(e->c, "user:12:", &n), RCACHE_OK);
  CHECK_EQ(n, 3);
  expect_alive(e->c, keys, alive, N(keys));
  /* nothing left to delete: 0, not an error */
  CHECK_EQ(rcache_delete_prefix(e->c, "user:12:", &n), RCACHE_OK);
  CHECK_EQ(n, 0);
  CHECK_EQ(rcache_delete_prefix(e->c, "user:12:", NULL), RCACHE_OK); /* count optional */
  /* "user:12" is a plain string prefix: it takes user:123 and user:120 too */
  CHECK_EQ(rcache_delete_prefix(e->c, "user:12", &n), RCACHE_OK);
  CHECK_EQ(n, 3);
  CHECK(ct_exists(e->c, "user:1:profile"));
}

CONTRACT_TEST(delete_prefix_glob_characters_are_literal) {
  const char *keys[] = {"we*rd[1]?:a", "we*rd[1]?:b",   "weXrd1Z:a",    "weird1?:a",  "we*rd[1]?",
                        "we*rd1x:a",   "back\\slash:a", "backXslash:a", "back\\slash"};
  const bool alive[] = {false, false, true, true, true, true, false, true, true};
  put_all(e->c, keys, N(keys));
  uint64_t n = 0;
  CHECK_EQ(rcache_delete_prefix(e->c, "we*rd[1]?:", &n), RCACHE_OK);
  CHECK_EQ(n, 2);
  CHECK_EQ(rcache_delete_prefix(e->c, "back\\slash:", &n), RCACHE_OK);
  CHECK_EQ(n, 1);
  expect_alive(e->c, keys, alive, N(keys));
  /* a prefix of "*" means the character '*', not everything */
  put(e->c, "*star");
  CHECK_EQ(rcache_delete_prefix(e->c, "*", &n), RCACHE_OK);
  CHECK_EQ(n, 1);
  CHECK(ct_exists(e->c, "weXrd1Z:a"));
}

CONTRACT_TEST(delete_pattern_globs) {
  struct {
    const char *glob;
    const char *keys[6];
    bool alive[6];
    uint64_t n;
  } cases[] = {
      {"h?llo",
       {"hello", "hallo", "hxllo", "heello", "hllo", "hello2"},
       {false, false, false, true, true, true},
       3},
      {"k[a-c]", {"ka", "kb", "kc", "kd", "kA", "kab"}, {false, false, false, true, true, true}, 3},
      {"m[^x]", {"ma", "mx", "mz", "m", "mxx", "m-"}, {false, true, false, true, true, false}, 3},
      {"n[xy]z",
       {"nxz", "nyz", "nzz", "nxyz", "n[xy]z", "nXz"},
       {false, false, true, true, true, true},
       2},
      {"lit\\*",
       {"lit*", "litX", "lit", "lit**", "lit\\*", "lit\\"},
       {false, true, true, true, true, true},
       1},
      {"q\\?\\[x\\]",
       {"q?[x]", "qa[x]", "q?x", "q?[x]y", "q", "q?[y]"},
       {false, true, true, true, true, true},
       1},
      {"p*:end",
       {"p:end", "pa:end", "pabc:end", "p:en", "xp:end", "p:end:"},
       {false, false, false, true, true, true},
       3},
  };
  for (size_t i = 0; i < N(cases); i++) {
    put_all(e->c, cases[i].keys, 6);
    uint64_t n = 0;
    CHECK_EQ(rcache_delete_pattern(e->c, cases[i].glob, &n), RCACHE_OK);
    CHECK_MSG(n == cases[i].n, "%s deleted %llu, expected %llu", cases[i].glob,
              (unsigned long long)n, (unsigned long long)cases[i].n);
    expect_alive(e->c, cases[i].keys, cases[i].alive, 6);
    CHECK_EQ(rcache_flush(e->c), RCACHE_OK);
  }
  /* "*" takes everything in the namespace, and only that (see flush test for outside) */
  const char *keys[] = {"a", "b:c", "d:e:f"};
  put_all(e->c, keys, 3);
  uint64_t n = 0;
  CHECK_EQ(rcache_delete_pattern(e->c, "*", &n), RCACHE_OK);
  CHECK_EQ(n, 3);
  CHECK_EQ(rcache_delete_pattern(e->c, "nothing:*", &n), RCACHE_OK);
  CHECK_EQ(n, 0);
}

CONTRACT_TEST(flush_is_limited_to_the_namespace) {
  rcache *out = ct_open_outer(e);
  if (!out) return;
  const char *mine = ct_outer_key("survivor");
  CHECK_EQ(rcache_set(out, mine, "keep", 4, 0), RCACHE_OK);
  put(e->c, "a");
  put(e->c, "b:c");
  CHECK_EQ(rcache_incr(e->c, "ctr", 1, NULL), RCACHE_OK);
  CHECK_EQ(rcache_flush(e->c), RCACHE_OK);
  CHECK(!ct_exists(e->c, "a") && !ct_exists(e->c, "b:c") && !ct_exists(e->c, "ctr"));
  CHECK(ct_value_is(out, mine, "keep", 4));
  /* pattern deletes are confined the same way */
  put(e->c, "a");
  uint64_t n = 0;
  CHECK_EQ(rcache_delete_pattern(e->c, "*", &n), RCACHE_OK);
  CHECK_EQ(n, 1);
  CHECK(ct_value_is(out, mine, "keep", 4));
  CHECK_EQ(rcache_delete(out, mine), RCACHE_OK);
  /* flushing an empty namespace is fine */
  CHECK_EQ(rcache_flush(e->c), RCACHE_OK);
}

typedef struct {
  int seen;
  int stop_after; /* 0 = never */
  bool bad_name;
  bool has[10];
} scan_acc;

static bool visit(const char *key, size_t len, void *ud) {
  scan_acc *a = ud;
  a->seen++;
  /* names come without the key prefix: "s:<digit>" */
  if (len == 3 && strncmp(key, "s:", 2) == 0 && key[2] >= '0' && key[2] <= '9' &&
      key[len] == '\0') {
    a->has[key[2] - '0'] = true;
  } else {
    a->bad_name = true;
  }
  return a->stop_after == 0 || a->seen < a->stop_after;
}

CONTRACT_TEST(scan_with_limit) {
  char key[8];
  for (int i = 0; i < 10; i++) {
    snprintf(key, sizeof key, "s:%d", i);
    put(e->c, key);
  }
  put(e->c, "t:x");
  put(e->c, "s:10");
  scan_acc a = {0};
  CHECK_EQ(rcache_scan(e->c, "s:?", 0, visit, &a), RCACHE_OK);
  CHECK_EQ(a.seen, 10);
  CHECK(!a.bad_name);
  for (int i = 0; i < 10; i++)
    CHECK_MSG(a.has[i], "s:%d not visited", i);
  memset(&a, 0, sizeof a);
  CHECK_EQ(rcache_scan(e->c, "s:?", 3, visit, &a), RCACHE_OK);
  CHECK_EQ(a.seen, 3);
  CHECK(!a.bad_name);
  memset(&a, 0, sizeof a);
  a.stop_after = 2; /* fn returning false stops the scan */
  CHECK_EQ(rcache_scan(e->c, "s:?", 0, visit, &a), RCACHE_OK);
  CHECK_EQ(a.seen, 2);
  memset(&a, 0, sizeof a);
  CHECK_EQ(rcache_scan(e->c, "nope:*", 0, visit, &a), RCACHE_OK);
  CHECK_EQ(a.seen, 0);
  CHECK_EQ(rcache_scan(e->c, "", 0, visit, &a), RCACHE_EINVAL);
  CHECK_EQ(rcache_scan(e->c, NULL, 0, visit, &a), RCACHE_EINVAL);
  CHECK_EQ(rcache_scan(e->c, "*", 0, NULL, &a), RCACHE_EINVAL);
}

static bool count_all(const char *key, size_t len, void *ud) {
  (*(int *)ud)++;
  return true;
}

CONTRACT_TEST(scan_many_keys) {
  /* enough keys for several SCAN pages on a server */
  const int n = 1500;
  const char **keys = malloc((size_t)n * sizeof *keys);
  char *names = malloc((size_t)n * 16);
  rcache_value *vals = malloc((size_t)n * sizeof *vals);
  CHECK(keys && names && vals);
  if (!keys || !names || !vals) {
    free(keys);
    free(names);
    free(vals);
    return;
  }
  for (int i = 0; i < n; i++) {
    snprintf(names + i * 16, 16, "bulk:%d", i);
    keys[i] = names + i * 16;
    vals[i] = (rcache_value){(char *)"v", 1};
  }
  CHECK_EQ(rcache_set_many(e->c, keys, vals, (size_t)n, 0), RCACHE_OK);
  int seen = 0;
  CHECK_EQ(rcache_scan(e->c, "bulk:*", 0, count_all, &seen), RCACHE_OK);
  CHECK_EQ(seen, n);
  seen = 0;
  CHECK_EQ(rcache_scan(e->c, "bulk:*", 1000, count_all, &seen), RCACHE_OK);
  CHECK_EQ(seen, 1000);
  uint64_t del = 0;
  CHECK_EQ(rcache_delete_prefix(e->c, "bulk:", &del), RCACHE_OK);
  CHECK_EQ(del, (uint64_t)n);
  seen = 0;
  CHECK_EQ(rcache_scan(e->c, "bulk:*", 0, count_all, &seen), RCACHE_OK);
  CHECK_EQ(seen, 0);
  free(keys);
  free(names);
  free(vals);
}

typedef struct {
  char seen[16][8];
  int n;
} seen_set;

static bool collect(const char *key, size_t len, void *ud) {
  seen_set *s = ud;
  if (s->n < 16 && len < sizeof s->seen[0]) memcpy(s->seen[s->n++], key, len + 1);
  return true;
}

static int by_str(const void *a, const void *b) {
  return strcmp(a, b);
}

/* Redis' glob corner cases (as redis-server 7 answers KEYS): unclosed and empty brackets,
 * reversed ranges, a trailing backslash. Every backend must agree with the server. */
CONTRACT_TEST(glob_corner_cases) {
  const char *keys[] = {"x[", "xa", "x",  "x\\", "x]",  "x-", "xb",
                        "xz", "xm", "x^", "x[a", "x[]", "xab"};
  put_all(e->c, keys, N(keys));
  struct {
    const char *glob, *expect; /* expect: the sorted matches, space-separated */
  } cases[] = {
      {"x[", ""},
      {"x[a", "xa"},
      {"x\\", "x\\"},
      {"x[]", ""},
      {"x[a-]", "x] x^ xa"},
      {"x[-a]", "x- xa"},
      {"x[z-a]", "xa xb xm xz"},
      {"x[\\]]", "x]"},
      {"x[^]", "x- x[ x\\ x] x^ xa xb xm xz"},
      {"x[^a]", "x- x[ x\\ x] x^ xb xm xz"},
      {"x[]]", ""},
      {"x*\\", "x\\"},
      {"x?*", "x- x[ x[] x[a x\\ x] x^ xa xab xb xm xz"},
  };
  for (size_t i = 0; i < N(cases); i++) {
    seen_set s = {0};
    CHECK_EQ(rcache_scan(e->c, cases[i].glob, 0, collect, &s), RCACHE_OK);
    qsort(s.seen, (size_t)s.n, sizeof s.seen[0], by_str);
    char got[160] = "";
    for (int j = 0; j < s.n; j++) {
      if (j) strcat(got, " ");
      strcat(got, s.seen[j]);
    }
    CHECK_MSG(strcmp(got, cases[i].expect) == 0, "glob \"%s\": got \"%s\", expected \"%s\"",
              cases[i].glob, got, cases[i].expect);
  }
}

/* ---- deletion with progress ------------------------------------------------------------------ */

enum { PROGRESS_KEYS = 1500, PROGRESS_MAX_CALLS = 100000 };

typedef struct {
  uint64_t counts[PROGRESS_MAX_CALLS];
  size_t calls;
  bool decreased;
  uint64_t stop_at; /* return false at the first report >= stop_at (0: never) */
} progress_log;

static bool log_progress(uint64_t n, void *ud) {
  progress_log *pl = ud;
  if (pl->calls > 0 && n < pl->counts[pl->calls - 1]) pl->decreased = true;
  if (pl->calls < PROGRESS_MAX_CALLS) pl->counts[pl->calls++] = n;
  return !(pl->stop_at && n >= pl->stop_at);
}

static bool put_many(rcache *c, const char *prefix, int n) {
  const char **keys = malloc((size_t)n * sizeof *keys);
  char *names = malloc((size_t)n * 24);
  rcache_value *vals = malloc((size_t)n * sizeof *vals);
  bool ok = keys && names && vals;
  for (int i = 0; ok && i < n; i++) {
    snprintf(names + i * 24, 24, "%s%d", prefix, i);
    keys[i] = names + i * 24;
    vals[i] = (rcache_value){(char *)"v", 1};
  }
  ok = ok && rcache_set_many(c, keys, vals, (size_t)n, 0) == RCACHE_OK;
  free(keys);
  free(names);
  free(vals);
  return ok;
}

/* A handle with small SCAN pages, so a server deletes in many batches. */
static rcache *small_pages(ct_env *e) {
  rcache_options o;
  rcache_options_init(&o);
  o.scan_count = 100;
  return ct_open(e, &o);
}

CONTRACT_TEST(delete_progress_counts_rise_to_the_total) {
  rcache *c = small_pages(e);
  if (!c || !put_many(c, "pr:", PROGRESS_KEYS)) {
    CHECK(!"setup");
    return;
  }
  CHECK(put_many(c, "other:", 10));
  progress_log *pl = calloc(1, sizeof *pl);
  if (!pl) return;
  uint64_t n = 0;
  CHECK_EQ(rcache_delete_prefix_progress(c, "pr:", log_progress, pl, &n), RCACHE_OK);
  CHECK_EQ(n, (uint64_t)PROGRESS_KEYS);
  CHECK(pl->calls >= 2); /* several batches, each reported */
  CHECK(!pl->decreased);
  CHECK(pl->calls > 0 && pl->counts[pl->calls - 1] == n);
  int seen = 0;
  CHECK_EQ(rcache_scan(c, "pr:*", 0, count_all, &seen), RCACHE_OK);
  CHECK_EQ(seen, 0);
  /* the pattern variant, and a NULL callback */
  memset(pl, 0, sizeof *pl);
  CHECK_EQ(rcache_delete_pattern_progress(c, "oth?r:*", log_progress, pl, &n), RCACHE_OK);
  CHECK_EQ(n, 10);
  CHECK(!pl->decreased);
  CHECK(pl->calls > 0 && pl->counts[pl->calls - 1] == 10);
  CHECK(put_many(c, "pr:", 10));
  CHECK_EQ(rcache_delete_prefix_progress(c, "pr:", NULL, NULL, &n), RCACHE_OK);
  CHECK_EQ(n, 10);
  free(pl);
}

CONTRACT_TEST(delete_progress_stops_when_told) {
  rcache *c = small_pages(e);
  if (!c || !put_many(c, "st:", PROGRESS_KEYS)) {
    CHECK(!"setup");
    return;
  }
  progress_log *pl = calloc(1, sizeof *pl);
  if (!pl) return;
  pl->stop_at = 1; /* stop after the first batch that deleted something */
  uint64_t n = 0;
  CHECK_EQ(rcache_delete_pattern_progress(c, "st:*", log_progress, pl, &n), RCACHE_OK);
  CHECK(n > 0 && n < PROGRESS_KEYS);
  CHECK(pl->calls > 0 && pl->counts[pl->calls - 1] == n); /* no report after the stop */
  int seen = 0; /* the count is exact: the rest are still there */
  CHECK_EQ(rcache_scan(c, "st:*", 0, count_all, &seen), RCACHE_OK);
  CHECK_EQ((uint64_t)seen, PROGRESS_KEYS - n);
  /* the rest goes with a second call */
  CHECK_EQ(rcache_delete_prefix_progress(c, "st:", NULL, NULL, &n), RCACHE_OK);
  CHECK_EQ((uint64_t)seen, n);
  free(pl);
}
