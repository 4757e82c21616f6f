/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The near cache's table (src/near/near.c), without a server: the serving gate, the fetch
 * protocol (an invalidation or flush that arrives before the reply wins; replies that
 * disagree leave nothing behind), seals, lifetimes, LRU by bytes and the byte bound measured
 * against what malloc really holds, and concurrent use.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "near/near.h"
#include "sanitizers.h"
#include "test.h"

/* Under ASan or TSan malloc is the sanitizer's (mallinfo2() reads 0): ask it instead. */
#ifdef TEST_SANITIZER_HEAP
/* from <sanitizer/allocator_interface.h>, which is not always installed */
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t heap_in_use(void) {
  return __sanitizer_get_current_allocated_bytes();
}
#else
static size_t heap_in_use(void) {
  return mallinfo2().uordblks;
}
#endif

#define K(s) s, sizeof s - 1
#define T0 ((int64_t)1000000000) /* any "now": the table has no clock of its own */

static rcache__near *serving(size_t bytes, int64_t max_ttl_ms) {
  rcache__near *n = rcache__near_new(bytes, max_ttl_ms);
  CHECK(n != NULL);
  rcache__near_add_source(n);
  rcache__near_unblock(n);
  return n;
}

/* get: status, and the value compared with want (NULL = expect a miss) */
static void expect(rcache__near *n, const char *key, int64_t now, const char *want) {
  rcache_value v = {NULL, 0};
  rcache_status s = rcache__near_get(n, key, strlen(key), now, &v, NULL, NULL, NULL);
  if (!want) {
    CHECK_MSG(s == RCACHE_MISS, "%s: expected a miss, got %d", key, s);
  } else {
    CHECK_MSG(s == RCACHE_OK && v.len == strlen(want) && strcmp(v.data, want) == 0,
              "%s: expected %s, got %d %s", key, want, s, v.data ? v.data : "(null)");
  }
  rcache_value_free(&v);
}

static bool put(rcache__near *n, const char *key, const char *val, int64_t now, int64_t ttl_ms) {
  uint64_t t = rcache__near_begin(n, key, strlen(key));
  return rcache__near_fill(n, t, key, strlen(key), val, strlen(val), now, ttl_ms,
                           RCACHE__NEAR_NOGROUP);
}

static void test_gate(void) {
  rcache__near *n = rcache__near_new(1 << 20, 0);
  CHECK(!rcache__near_serving(n)); /* no source of coherence: never serves */
  uint64_t w = rcache__near_begin(n, K("a"));
  CHECK(w != 0);
  CHECK(!rcache__near_fill(n, w, K("a"), "1", 1, T0, -1,
                           RCACHE__NEAR_NOGROUP)); /* a witness installs nothing */
  rcache__near_add_source(n);
  CHECK(!rcache__near_serving(n)); /* a new source starts blocked */
  CHECK_EQ(rcache__near_sources(n), 1);
  rcache__near_unblock(n);
  CHECK(rcache__near_serving(n));
  CHECK(put(n, "a", "1", T0, -1));
  expect(n, "a", T0, "1");
  rcache__near_block(n); /* e.g. the listener is reconnecting: serve nothing */
  expect(n, "a", T0, NULL);
  w = rcache__near_begin(n, K("b"));
  CHECK(!rcache__near_fill(n, w, K("b"), "2", 1, T0, -1, RCACHE__NEAR_NOGROUP));
  CHECK(!rcache__near_fill(n, 0, K("b"), "2", 1, T0, -1, RCACHE__NEAR_NOGROUP));
  rcache__near_add_source(n); /* a second server: both must be up */
  rcache__near_unblock(n);
  CHECK(!rcache__near_serving(n));
  rcache__near_unblock(n);
  CHECK(rcache__near_serving(n));
  rcache__near_remove_source(n, false);
  CHECK(rcache__near_serving(n));
  rcache__near_remove_source(n, false);
  CHECK(!rcache__near_serving(n));
  rcache__near_free(n);
}

static void test_basic(void) {
  rcache__near *n = serving(1 << 20, 0);
  expect(n, "k", T0, NULL);
  CHECK(put(n, "k", "hello", T0, -1));
  rcache_value v = {NULL, 0};
  int64_t ttl = 0;
  CHECK_EQ(rcache__near_get(n, K("k"), T0, &v, &ttl, NULL, NULL), RCACHE_OK);
  CHECK_STR(v.data, "hello");
  CHECK_EQ(ttl, -1);
  rcache_value_free(&v);
  /* binary keys and values, with NULs */
  uint64_t t = rcache__near_begin(n, "a\0b", 3);
  CHECK(rcache__near_fill(n, t, "a\0b", 3, "x\0y", 3, T0, 5000, RCACHE__NEAR_NOGROUP));
  CHECK_EQ(rcache__near_get(n, "a\0b", 3, T0 + 1000000, &v, &ttl, NULL, NULL), RCACHE_OK);
  CHECK(v.len == 3 && memcmp(v.data, "x\0y", 3) == 0 && v.data[3] == '\0');
  CHECK_EQ(ttl, 4000);
  rcache_value_free(&v);
  expect(n, "a", T0, NULL);
  /* an empty value is a value */
  CHECK(put(n, "empty", "", T0, -1));
  expect(n, "empty", T0, "");
  uint64_t entries, bytes;
  rcache__near_usage(n, &entries, &bytes);
  CHECK_EQ(entries, 3);
  CHECK(bytes > 0);
  CHECK(rcache__near_invalidate(n, K("k")));
  CHECK(!rcache__near_invalidate(n, K("k")));
  expect(n, "k", T0, NULL);
  rcache__near_flush(n);
  rcache__near_usage(n, &entries, NULL);
  CHECK_EQ(entries, 0);
  expect(n, "empty", T0, NULL);
  rcache__near_free(n);
}

/* The documented race: an invalidation (or flush, or a local write) that arrives between
 * "being fetched" and the reply makes the reply be dropped. */
static void test_race(void) {
  rcache__near *n = serving(1 << 20, 0);
  uint64_t t = rcache__near_begin(n, K("k"));
  CHECK(t != 0);
  expect(n, "k", T0, NULL);                  /* being fetched is not a value */
  CHECK(rcache__near_invalidate(n, K("k"))); /* the placeholder is what it removes */
  CHECK(!rcache__near_fill(n, t, K("k"), "old", 3, T0, -1, RCACHE__NEAR_NOGROUP));
  expect(n, "k", T0, NULL);

  t = rcache__near_begin(n, K("k"));
  rcache__near_flush(n);
  CHECK(!rcache__near_fill(n, t, K("k"), "old", 3, T0, -1, RCACHE__NEAR_NOGROUP));
  expect(n, "k", T0, NULL);

  /* blocked while fetching (the listener went away): the flush that follows wins */
  t = rcache__near_begin(n, K("k"));
  rcache__near_block(n);
  rcache__near_flush(n);
  rcache__near_unblock(n);
  CHECK(!rcache__near_fill(n, t, K("k"), "old", 3, T0, -1, RCACHE__NEAR_NOGROUP));
  expect(n, "k", T0, NULL);

  /* a fetch that failed gives its placeholder up: the next one can fill */
  t = rcache__near_begin(n, K("k"));
  rcache__near_end(n, t, K("k"), false);
  CHECK(put(n, "k", "v", T0, -1));
  expect(n, "k", T0, "v");
  rcache__near_free(n);
}

/* Concurrent fetches of one key: they may install only when they agree. */
static void test_followers(void) {
  rcache__near *n = serving(1 << 20, 0);
  /* agree: the leader installs */
  uint64_t a = rcache__near_begin(n, K("k")), b = rcache__near_begin(n, K("k"));
  CHECK(a != 0 && b != 0 && a != b);
  CHECK(!rcache__near_fill(n, b, K("k"), "5", 1, T0, -1,
                           RCACHE__NEAR_NOGROUP)); /* a follower never installs */
  CHECK(rcache__near_fill(n, a, K("k"), "5", 1, T0, -1, RCACHE__NEAR_NOGROUP));
  expect(n, "k", T0, "5");
  rcache__near_invalidate(n, K("k"));

  /* disagree, follower first: the leader's (older) value is not installed */
  a = rcache__near_begin(n, K("k"));
  b = rcache__near_begin(n, K("k"));
  rcache__near_fill(n, b, K("k"), "7", 1, T0, -1, RCACHE__NEAR_NOGROUP);
  CHECK(!rcache__near_fill(n, a, K("k"), "5", 1, T0, -1, RCACHE__NEAR_NOGROUP));
  expect(n, "k", T0, NULL);

  /* disagree, leader first: the follower's reply removes the installed value before its
   * caller sees "7", so it can never find "5" here afterwards */
  a = rcache__near_begin(n, K("k"));
  b = rcache__near_begin(n, K("k"));
  CHECK(rcache__near_fill(n, a, K("k"), "5", 1, T0, -1, RCACHE__NEAR_NOGROUP));
  rcache__near_fill(n, b, K("k"), "7", 1, T0, -1, RCACHE__NEAR_NOGROUP);
  expect(n, "k", T0, NULL);

  /* a follower that saw the key absent */
  a = rcache__near_begin(n, K("k"));
  b = rcache__near_begin(n, K("k"));
  rcache__near_end(n, b, K("k"), true);
  CHECK(!rcache__near_fill(n, a, K("k"), "5", 1, T0, -1, RCACHE__NEAR_NOGROUP));
  /* ... and one whose fetch failed (it saw nothing): no say */
  a = rcache__near_begin(n, K("k"));
  b = rcache__near_begin(n, K("k"));
  rcache__near_end(n, b, K("k"), false);
  CHECK(rcache__near_fill(n, a, K("k"), "5", 1, T0, -1, RCACHE__NEAR_NOGROUP));
  expect(n, "k", T0, "5");

  /* an overtaken leader (its placeholder was invalidated, a new fetch started) reports
   * to the new one: different values → nothing installed */
  rcache__near_invalidate(n, K("k"));
  a = rcache__near_begin(n, K("k"));
  rcache__near_invalidate(n, K("k"));
  b = rcache__near_begin(n, K("k"));
  CHECK(!rcache__near_fill(n, a, K("k"), "7", 1, T0, -1, RCACHE__NEAR_NOGROUP));
  CHECK(!rcache__near_fill(n, b, K("k"), "5", 1, T0, -1, RCACHE__NEAR_NOGROUP));
  expect(n, "k", T0, NULL);
  /* ... same value → the new leader installs */
  a = rcache__near_begin(n, K("k"));
  rcache__near_invalidate(n, K("k"));
  b = rcache__near_begin(n, K("k"));
  CHECK(!rcache__near_fill(n, a, K("k"), "8", 1, T0, -1, RCACHE__NEAR_NOGROUP));
  CHECK(rcache__near_fill(n, b, K("k"), "8", 1, T0, -1, RCACHE__NEAR_NOGROUP));
  expect(n, "k", T0, "8");
  /* a fetch that started after a value was installed follows it */
  rcache__near_invalidate(n, K("k"));
  a = rcache__near_begin(n, K("k"));
  CHECK(rcache__near_fill(n, a, K("k"), "8", 1, T0, -1, RCACHE__NEAR_NOGROUP));
  b = rcache__near_begin(n, K("k"));
  rcache__near_fill(n, b, K("k"), "8", 1, T0, -1, RCACHE__NEAR_NOGROUP);
  expect(n, "k", T0, "8");
  b = rcache__near_begin(n, K("k"));
  rcache__near_fill(n, b, K("k"), "9", 1, T0, -1, RCACHE__NEAR_NOGROUP);
  expect(n, "k", T0, NULL);
  rcache__near_free(n);
}

/* A read made while the table was closed (a witness) still has its say: the chaos test
 * found a reader that saw 12 remotely while blocked, then 11 from a fill whose GET was
 * processed earlier but began after the table reopened. */
static void test_witness(void) {
  rcache__near *n = serving(1 << 20, 0);
  rcache__near_block(n);
  uint64_t w = rcache__near_begin(n, K("k")); /* closed: a witness */
  rcache__near_flush(n);
  rcache__near_unblock(n);
  uint64_t l = rcache__near_begin(n, K("k")); /* a leader after reopening */
  rcache__near_fill(n, w, K("k"), "12", 2, T0, -1,
                    RCACHE__NEAR_NOGROUP); /* the witness's newer reply first */
  CHECK(!rcache__near_fill(n, l, K("k"), "11", 2, T0, -1, RCACHE__NEAR_NOGROUP));
  expect(n, "k", T0, NULL);
  /* the other order: the leader installs, the witness's reply removes it */
  rcache__near_block(n);
  w = rcache__near_begin(n, K("k"));
  rcache__near_unblock(n);
  CHECK(put(n, "k", "11", T0, -1));
  rcache__near_fill(n, w, K("k"), "12", 2, T0, -1, RCACHE__NEAR_NOGROUP);
  expect(n, "k", T0, NULL);
  /* batch reads (get_many) report what they saw the same way */
  CHECK(put(n, "k", "11", T0, -1));
  rcache__near_saw(n, K("k"), "11", 2);
  expect(n, "k", T0, "11");
  rcache__near_saw(n, K("k"), "12", 2);
  expect(n, "k", T0, NULL);
  CHECK(put(n, "k", "11", T0, -1));
  rcache__near_saw(n, K("k"), NULL, 0); /* absent */
  expect(n, "k", T0, NULL);
  rcache__near_free(n);
}

/* Seals (near.h): the generation advances on every removal of a watched key that is not an
 * eviction or an expiry, found or not, and on every flush; a seal sticks to the entry it was
 * given for. */
static rcache__near_mark mark_of(rcache__near *n, const char *key) {
  rcache__near_mark m = {.ticket = 0};
  rcache_value v = {NULL, 0};
  CHECK_EQ(rcache__near_get(n, key, strlen(key), T0, &v, NULL, NULL, &m), RCACHE_OK);
  rcache_value_free(&v);
  return m;
}

static void test_seals(void) {
  rcache__near *n = serving(1 << 20, 0);
  CHECK_EQ(rcache__near_watch(n, K("p:__rc:")), RCACHE_OK);
  uint64_t g = rcache__near_gen(n);
  CHECK(g != 0);
  CHECK(put(n, "p:v", "framed", T0, -1));
  CHECK(put(n, "p:__rc:tag:a", "7", T0, -1));
  rcache__near_mark m = mark_of(n, "p:v");
  CHECK(m.ticket != 0);
  CHECK_EQ(m.seal, 0);
  rcache__near_seal(n, K("p:v"), m.ticket, g, 7);
  CHECK_EQ(mark_of(n, "p:v").seal, g);
  CHECK_EQ(mark_of(n, "p:v").aux, 7);
  /* keys that are not watched: invalidated, disagreed with, evicted: no advance */
  CHECK(put(n, "p:other", "x", T0, -1));
  CHECK(rcache__near_invalidate(n, K("p:other")));
  CHECK(!rcache__near_invalidate(n, K("p:other")));
  CHECK(put(n, "p:other", "x", T0, -1));
  rcache__near_saw(n, K("p:other"), "y", 1);
  CHECK_EQ(rcache__near_gen(n), g);
  /* a watched key: invalidated (present or not), a reply that disagreed, a flush */
  CHECK(rcache__near_invalidate(n, K("p:__rc:tag:a")));
  CHECK(rcache__near_gen(n) > g);
  g = rcache__near_gen(n);
  CHECK(!rcache__near_invalidate(n, K("p:__rc:tag:b")));
  CHECK(rcache__near_gen(n) > g);
  g = rcache__near_gen(n);
  CHECK(put(n, "p:__rc:clear", "5", T0, -1));
  rcache__near_saw(n, K("p:__rc:clear"), "5", 1); /* agrees: stays */
  CHECK_EQ(rcache__near_gen(n), g);
  rcache__near_saw(n, K("p:__rc:clear"), "6", 1);
  CHECK(rcache__near_gen(n) > g);
  expect(n, "p:__rc:clear", T0, NULL);
  g = rcache__near_gen(n);
  rcache__near_flush(n);
  CHECK(rcache__near_gen(n) > g);
  /* a seal given for an entry that was replaced meanwhile is not taken by the new one */
  CHECK(put(n, "p:v", "one", T0, -1));
  m = mark_of(n, "p:v");
  CHECK(rcache__near_invalidate(n, K("p:v")));
  CHECK(put(n, "p:v", "two", T0, -1));
  g = rcache__near_gen(n);
  rcache__near_seal(n, K("p:v"), m.ticket, g, 7);
  CHECK_EQ(mark_of(n, "p:v").seal, 0);
  rcache__near_seal(n, K("p:v"), mark_of(n, "p:v").ticket, g, 9);
  CHECK_EQ(mark_of(n, "p:v").seal, g);
  CHECK_EQ(mark_of(n, "p:v").aux, 9);
  rcache__near_free(n);
}

static void test_lifetime(void) {
  rcache__near *n = serving(1 << 20, 1000); /* near_cache_max_ttl_ms = 1 s */
  CHECK(put(n, "short", "v", T0, 100));     /* the key's own TTL: 100 ms */
  expect(n, "short", T0 + 99999, "v");
  expect(n, "short", T0 + 100000, NULL);
  CHECK(put(n, "forever", "v", T0, -1)); /* no TTL in Redis: the cap applies */
  expect(n, "forever", T0 + 999999, "v");
  expect(n, "forever", T0 + 1000000, NULL);
  CHECK(put(n, "long", "v", T0, 3600000));
  int64_t ttl;
  rcache_value v = {NULL, 0};
  CHECK_EQ(rcache__near_get(n, K("long"), T0 + 500000, &v, &ttl, NULL, NULL), RCACHE_OK);
  CHECK_EQ(ttl, 3600000 - 500); /* the key's remaining TTL, not the near lifetime */
  rcache_value_free(&v);
  expect(n, "long", T0 + 1000000, NULL);
  CHECK(!put(n, "gone", "v", T0, 0)); /* nothing left to live */
  rcache__near_free(n);
  n = serving(1 << 20, 0); /* no cap */
  CHECK(put(n, "forever", "v", T0, -1));
  expect(n, "forever", INT64_MAX - 1, "v");
  rcache__near_free(n);
}

static void test_lru(void) {
  rcache__near *n = serving(16 * 1024, 0); /* one shard */
  char key[32], val[200];
  memset(val, 'x', sizeof val - 1);
  val[sizeof val - 1] = '\0';
  CHECK(put(n, "keep", val, T0, -1));
  for (int i = 0; i < 200; i++) {
    snprintf(key, sizeof key, "k%d", i);
    CHECK(put(n, key, val, T0, -1));
    expect(n, "keep", T0, val); /* used all along: never the least recently used */
  }
  expect(n, "k0", T0, NULL); /* the oldest went */
  expect(n, "k199", T0, val);
  uint64_t entries, bytes;
  rcache__near_usage(n, &entries, &bytes);
  CHECK_MSG(bytes <= 16 * 1024, "%llu bytes", (unsigned long long)bytes);
  CHECK(entries > 20 && entries < 200);
  /* a value too big for the table is not kept (and does not empty it) */
  size_t big = rcache__near_max_entry(n) + 1;
  char *b = calloc(1, big);
  uint64_t t = rcache__near_begin(n, K("big"));
  CHECK(!rcache__near_fill(n, t, K("big"), b, big, T0, -1, RCACHE__NEAR_NOGROUP));
  free(b);
  expect(n, "keep", T0, val);
  rcache__near_free(n);
}

/* 100,000 keys through a 4 MiB table: the accounted bytes stay under the bound, the table
 * is actually used up to it, and malloc's own count agrees within 5 %. */
static void test_bound(void) {
  const size_t bound = 4u << 20;
  size_t before = heap_in_use();
  rcache__near *n = serving(bound, 0);
  char key[48], val[160];
  for (int i = 0; i < 100000; i++) {
    snprintf(key, sizeof key, "user:%d:profile", i);
    int vl = 20 + i % 130; /* varied sizes */
    memset(val, 'a' + i % 26, (size_t)vl);
    val[vl] = '\0';
    put(n, key, val, T0, -1);
  }
  uint64_t entries, bytes;
  rcache__near_usage(n, &entries, &bytes);
  size_t held = heap_in_use() - before;
  printf("bound %zu: accounted %llu, malloc in use %zu, %llu entries\n", bound,
         (unsigned long long)bytes, held, (unsigned long long)entries);
  CHECK(bytes <= bound);
  CHECK(bytes >= bound * 95 / 100);
  CHECK_MSG(held <= bound * 105 / 100, "held %zu", held);
  CHECK(held >= bound * 80 / 100);
  CHECK(entries > 10000 && entries < 100000);
  rcache__near_free(n);
}

/* Threads reading, fetching, invalidating and flushing one table at once (ASan/UBSan
 * runs catch what goes wrong). Readers check every value they get is one that was put. */
static rcache__near *shared;
static atomic_bool stop_threads;
static atomic_int bad_values;

static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  char key[16], val[32];
  unsigned seed = (unsigned)id * 7919u + 1;
  while (!atomic_load(&stop_threads)) {
    seed = seed * 1103515245u + 12345u;
    int k = (int)(seed >> 16) % 64;
    snprintf(key, sizeof key, "k%d", k);
    rcache_value v = {NULL, 0};
    if (rcache__near_get(shared, key, strlen(key), T0, &v, NULL, NULL, NULL) == RCACHE_OK) {
      int kk = -1;
      if (sscanf(v.data, "v%d", &kk) != 1 || kk != k) atomic_fetch_add(&bad_values, 1);
      rcache_value_free(&v);
    } else {
      uint64_t t = rcache__near_begin(shared, key, strlen(key));
      snprintf(val, sizeof val, "v%d", k);
      rcache__near_fill(shared, t, key, strlen(key), val, strlen(val), T0, -1,
                        RCACHE__NEAR_NOGROUP);
    }
    if (id == 0 && seed % 17 == 0) rcache__near_invalidate(shared, key, strlen(key));
    if (id == 1 && seed % 1001 == 0) rcache__near_flush(shared);
  }
  return NULL;
}

static void test_threads(void) {
  shared = serving(64 * 1024, 0);
  pthread_t th[8];
  for (int i = 0; i < 8; i++)
    pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
  struct timespec ts = {0, 300 * 1000 * 1000};
  nanosleep(&ts, NULL);
  atomic_store(&stop_threads, true);
  for (int i = 0; i < 8; i++)
    pthread_join(th[i], NULL);
  CHECK_EQ(atomic_load(&bad_values), 0);
  /* the table still serves (whether entries are left depends on which thread ran last: a
   * flush just before the stop leaves none, which made this check fail under load) */
  CHECK(put(shared, "after", "x", T0, -1));
  rcache_value v = {NULL, 0};
  CHECK_EQ(rcache__near_get(shared, "after", 5, T0, &v, NULL, NULL, NULL), RCACHE_OK);
  CHECK(v.len == 1 && v.data && v.data[0] == 'x');
  rcache_value_free(&v);
  rcache__near_free(shared);
}

int main(void) {
  test_gate();
  test_basic();
  test_race();
  test_followers();
  test_witness();
  test_seals();
  test_lifetime();
  test_lru();
  test_bound();
  test_threads();
  return test_report("test_near");
}
