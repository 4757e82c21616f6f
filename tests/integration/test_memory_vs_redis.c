/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * memory:// against redis-server, differentially: the same long random sequence of calls
 * (values that are and are not integers, overflowing increments, TTLs, NX-free writes,
 * prefix and glob deletes with metacharacters, batches, scans, rate limits, get_or_set) is
 * made on a memory:// handle and on a Redis handle with the same key_prefix, and every
 * status, value, count and key set must be the same. Redis is the reference: a standalone
 * server, a cluster (scans and deletes spanning masters), and a server read through the
 * near cache.
 *
 * TTLs are long (no expiry races); ttl() may differ by one second at a boundary.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rcache/rcache.h"
#include "test.h"

#define OPS 6000

static const char *keys[] = {"k1",         "k12",  "k123", "k2",  "a:b",     "a:bc",
                             "a*b",        "x[1]", "x1",   "q?",  "back\\s", "user:12:c",
                             "user:123:c", "e",    "ctr",  "ctr2"};
#define NKEYS (sizeof keys / sizeof keys[0])

static const char *values[] = {"",
                               "0",
                               "1",
                               "-1",
                               "9223372036854775807",
                               "-9223372036854775808",
                               "9223372036854775808",
                               "01",
                               " 1",
                               "abc",
                               "+5",
                               "1.5",
                               "-0",
                               "42",
                               "x\0y",
                               "100"};
static const size_t value_lens[] = {0, 1, 1, 2, 19, 20, 19, 2, 2, 3, 2, 3, 2, 2, 3, 3};
#define NVALUES (sizeof values / sizeof values[0])

static const int64_t bys[] = {1, -1, 0, 5, -7, INT64_MAX, INT64_MIN, 1000000, -1000000};
static const char *globs[] = {"*",        "k?",     "k1*",    "a:*",      "a\\*b",
                              "x\\[1\\]", "x[0-9]", "[^k]*",  "user:12*", "user:12:*",
                              "q\\?",     "*\\\\*", "k[13]*", "x[",       "nothing"};
static const char *prefixes[] = {"k1", "a:", "a*", "x[", "user:12:", "user:12", "q?", "zz"};

static unsigned seed;
static int op_no, diffs;

static unsigned pick(unsigned n) {
  return (unsigned)rand_r(&seed) % n;
}

#define SAME(what, a, b)                                                                           \
  do {                                                                                             \
    long long _a = (long long)(a), _b = (long long)(b);                                            \
    if (_a != _b && diffs++ < 20)                                                                  \
      fprintf(stderr, "op %d (%s): memory %lld, redis %lld\n", op_no, what, _a, _b);               \
    CHECK(_a == _b);                                                                               \
  } while (0)

static void same_value(const char *what, const rcache_value *a, const rcache_value *b) {
  bool eq = a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
  if (!eq && diffs++ < 20)
    fprintf(stderr, "op %d (%s): values differ (%zu vs %zu bytes)\n", op_no, what, a->len, b->len);
  CHECK(eq);
}

static rcache_status load_l(void *ud, rcache_value *out) {
  (*(int *)ud)++;
  out->data = strdup("L");
  out->len = 1;
  return RCACHE_OK;
}

typedef struct {
  char names[64][32];
  int n;
} keyset;

static bool collect(const char *k, size_t len, void *ud) {
  keyset *s = ud;
  if (s->n < 64 && len < 32) memcpy(s->names[s->n++], k, len + 1);
  return true;
}

static int cmp(const void *a, const void *b) {
  return strcmp(a, b);
}

/* One random call on both handles, compared. */
static void step(rcache *m, rcache *r) {
  const char *k = keys[pick(NKEYS)];
  unsigned v = pick(NVALUES);
  int64_t ttl = pick(4) == 0 ? 1000 : 0;
  rcache_value vm, vr;
  int64_t nm = 0, nr = 0;
  uint64_t um = 0, ur = 0;
  bool bm = false, br = false;
  switch (pick(14)) {
  case 0:
  case 1:
    SAME("set", rcache_set(m, k, values[v], value_lens[v], ttl),
         rcache_set(r, k, values[v], value_lens[v], ttl));
    break;
  case 2:
  case 3:
    SAME("get", rcache_get(m, k, &vm), rcache_get(r, k, &vr));
    same_value("get", &vm, &vr);
    rcache_value_free(&vm);
    rcache_value_free(&vr);
    break;
  case 4:
    SAME("delete", rcache_delete(m, k), rcache_delete(r, k));
    break;
  case 5: {
    int64_t by = bys[pick(sizeof bys / sizeof bys[0])];
    if (pick(2)) {
      SAME("incr", rcache_incr(m, k, by, &nm), rcache_incr(r, k, by, &nr));
    } else {
      SAME("decr", rcache_decr(m, k, by, &nm), rcache_decr(r, k, by, &nr));
    }
    SAME("incr value", nm, nr);
    break;
  }
  case 6:
    SAME("incr_expire", rcache_incr_expire(m, k, 1, 500, &nm),
         rcache_incr_expire(r, k, 1, 500, &nr));
    SAME("incr_expire value", nm, nr);
    break;
  case 7:
    SAME("exists", rcache_exists(m, k, &bm), rcache_exists(r, k, &br));
    SAME("exists value", bm, br);
    SAME("ttl", rcache_ttl(m, k, &nm), rcache_ttl(r, k, &nr));
    if (nm < 0 || nr < 0)
      SAME("ttl value", nm, nr);
    else
      CHECK_MSG(llabs(nm - nr) <= 1, "op %d: ttl %lld vs %lld", op_no, (long long)nm,
                (long long)nr);
    break;
  case 8: {
    const char *p = prefixes[pick(sizeof prefixes / sizeof prefixes[0])];
    SAME("delete_prefix", rcache_delete_prefix(m, p, &um), rcache_delete_prefix(r, p, &ur));
    SAME("delete_prefix count", um, ur);
    break;
  }
  case 9: {
    if (pick(3)) break; /* rarer: it empties much of the key space */
    const char *g = globs[pick(sizeof globs / sizeof globs[0])];
    SAME("delete_pattern", rcache_delete_pattern(m, g, &um), rcache_delete_pattern(r, g, &ur));
    SAME("delete_pattern count", um, ur);
    break;
  }
  case 10: {
    const char *g = globs[pick(sizeof globs / sizeof globs[0])];
    keyset sm = {0}, sr = {0};
    SAME("scan", rcache_scan(m, g, 0, collect, &sm), rcache_scan(r, g, 0, collect, &sr));
    qsort(sm.names, (size_t)sm.n, sizeof sm.names[0], cmp);
    qsort(sr.names, (size_t)sr.n, sizeof sr.names[0], cmp);
    SAME("scan count", sm.n, sr.n);
    bool eq = sm.n == sr.n;
    for (int i = 0; eq && i < sm.n; i++)
      eq = strcmp(sm.names[i], sr.names[i]) == 0;
    CHECK_MSG(eq, "op %d: scan %s visits different keys", op_no, g);
    break;
  }
  case 11: {
    const char *ks[3] = {keys[pick(NKEYS)], keys[pick(NKEYS)], keys[pick(NKEYS)]};
    if (pick(2)) {
      rcache_value am[3], ar[3];
      rcache_status sm[3], sr[3];
      SAME("get_many", rcache_get_many(m, ks, 3, am, sm), rcache_get_many(r, ks, 3, ar, sr));
      for (int i = 0; i < 3; i++) {
        SAME("get_many status", sm[i], sr[i]);
        same_value("get_many", &am[i], &ar[i]);
        rcache_value_free(&am[i]);
        rcache_value_free(&ar[i]);
      }
    } else {
      rcache_value vs[3];
      for (int i = 0; i < 3; i++) {
        unsigned x = pick(NVALUES);
        vs[i] = (rcache_value){(char *)values[x], value_lens[x]};
      }
      SAME("set_many", rcache_set_many(m, ks, vs, 3, ttl), rcache_set_many(r, ks, vs, 3, ttl));
    }
    break;
  }
  case 12: {
    int lm = 0, lr = 0;
    SAME("get_or_set", rcache_get_or_set(m, k, ttl, load_l, &lm, &vm),
         rcache_get_or_set(r, k, ttl, load_l, &lr, &vr));
    same_value("get_or_set", &vm, &vr);
    SAME("get_or_set loads", lm, lr);
    rcache_value_free(&vm);
    rcache_value_free(&vr);
    break;
  }
  default: {
    int64_t limit = pick(4);
    SAME("rate_limit", rcache_rate_limit(m, k, limit, 600, &bm, &nm),
         rcache_rate_limit(r, k, limit, 600, &br, &nr));
    SAME("rate_limit allowed", bm, br);
    SAME("rate_limit count", nm, nr);
    break;
  }
  }
}

/* The whole sequence against one server URL. */
static void run(const char *var, size_t near_bytes) {
  const char *url = test_env_url(var);
  char prefix[64];
  snprintf(prefix, sizeof prefix, "mvr%d:", (int)getpid());
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = prefix;
  rcache *m = NULL, *r = NULL;
  CHECK_EQ(rcache_open(&m, "memory://", &o), RCACHE_OK);
  o.near_cache_bytes = near_bytes; /* must change nothing a caller can see */
  CHECK_EQ(rcache_open(&r, url, &o), RCACHE_OK);
  if (m && r) {
    rcache_health h;
    for (int i = 0; i < 500 && rcache_health_check(r, &h) != RCACHE_OK; i++)
      usleep(10000);
    printf("%s%s: seed %u (set RCACHE_TEST_SEED to replay)\n", var,
           near_bytes ? " with the near cache" : "", seed);
    int d0 = diffs;
    for (op_no = 0; op_no < OPS; op_no++)
      step(m, r);
    CHECK_MSG(diffs == d0, "%s: %d differences", var, diffs - d0);
    CHECK_EQ(rcache_flush(r), RCACHE_OK);
  }
  rcache_close(m);
  rcache_close(r);
}

int main(void) {
  const char *s = getenv("RCACHE_TEST_SEED");
  unsigned first = s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)getpid();
  seed = first;
  run("RCACHE_TEST_URL_TCP", 0);
  seed = first; /* the same sequence on a cluster: keys spread over every master */
  run("RCACHE_TEST_URL_CLUSTER", 0);
  seed = first; /* and through the near cache */
  run("RCACHE_TEST_URL_TCP", 1 << 20);
  return test_report("test_memory_vs_redis");
}
