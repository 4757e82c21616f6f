/* SPDX-License-Identifier: BSD-3-Clause */
/* get_or_set: hit, miss → loader → stored with TTL, failing loader, concurrent callers. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"

typedef struct {
  atomic_int calls;
  const char *value; /* NULL: fail */
  size_t len;
  rcache_status fail_with;
  int delay_ms;
} loader;

static rcache_status load(void *ud, rcache_value *out) {
  loader *l = ud;
  atomic_fetch_add(&l->calls, 1);
  if (l->delay_ms) ct_sleep_ms(l->delay_ms);
  if (!l->value) return l->fail_with;
  out->data = malloc(l->len + 1);
  if (!out->data) return RCACHE_ENOMEM;
  memcpy(out->data, l->value, l->len);
  out->data[l->len] = '\0';
  out->len = l->len;
  return RCACHE_OK;
}

CONTRACT_TEST(get_or_set_hit_and_miss) {
  loader l = {0, "from-db", 7, RCACHE_OK, 0};
  rcache_value v;
  /* hit: the cached value, no loader call */
  CHECK_EQ(rcache_set(e->c, "cached", "in-cache", 8, 0), RCACHE_OK);
  CHECK_EQ(rcache_get_or_set(e->c, "cached", 60, load, &l, &v), RCACHE_OK);
  CHECK(v.len == 8 && v.data && memcmp(v.data, "in-cache", 9) == 0);
  rcache_value_free(&v);
  CHECK_EQ(atomic_load(&l.calls), 0);
  /* miss: loader once, value returned and stored with the TTL */
  CHECK_EQ(rcache_get_or_set(e->c, "cold", 60, load, &l, &v), RCACHE_OK);
  CHECK(v.len == 7 && v.data && memcmp(v.data, "from-db", 8) == 0);
  rcache_value_free(&v);
  CHECK_EQ(atomic_load(&l.calls), 1);
  CHECK(ct_value_is(e->c, "cold", "from-db", 7));
  int64_t t = ct_ttl(e->c, "cold");
  CHECK_MSG(t > 30 && t <= 60 + ct_stale_s(), "ttl %lld", (long long)t);
  /* now a hit */
  CHECK_EQ(rcache_get_or_set(e->c, "cold", 60, load, &l, &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(atomic_load(&l.calls), 1);
  /* ttl 0: stored without expiry */
  CHECK_EQ(rcache_get_or_set(e->c, "forever", 0, load, &l, &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(ct_ttl(e->c, "forever"), -1);
  /* an empty value is a value: stored, then a hit */
  loader empty = {0, "", 0, RCACHE_OK, 0};
  CHECK_EQ(rcache_get_or_set(e->c, "empty", 60, load, &empty, &v), RCACHE_OK);
  CHECK_EQ(v.len, 0);
  rcache_value_free(&v);
  CHECK_EQ(rcache_get_or_set(e->c, "empty", 60, load, &empty, &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(atomic_load(&empty.calls), 1);
  /* binary values pass through */
  loader bin = {0, "a\0b", 3, RCACHE_OK, 0};
  CHECK_EQ(rcache_get_or_set(e->c, "bin", 60, load, &bin, &v), RCACHE_OK);
  CHECK(v.len == 3 && memcmp(v.data, "a\0b", 3) == 0);
  rcache_value_free(&v);
  CHECK(ct_value_is(e->c, "bin", "a\0b", 3));
}

CONTRACT_TEST(get_or_set_failing_loader) {
  loader bad = {0, NULL, 0, RCACHE_EIO, 0};
  rcache_value v = {(char *)"junk", 4};
  CHECK_EQ(rcache_get_or_set(e->c, "k", 60, load, &bad, &v), RCACHE_ELOADER);
  CHECK(v.data == NULL && v.len == 0);
  CHECK_EQ(atomic_load(&bad.calls), 1);
  CHECK(!ct_exists(e->c, "k")); /* nothing cached */
  CHECK(ct_errmsg_set(e->c));
  /* the next call tries again, and a good loader then fills the cache */
  CHECK_EQ(rcache_get_or_set(e->c, "k", 60, load, &bad, &v), RCACHE_ELOADER);
  CHECK_EQ(atomic_load(&bad.calls), 2);
  loader good = {0, "ok", 2, RCACHE_OK, 0};
  CHECK_EQ(rcache_get_or_set(e->c, "k", 60, load, &good, &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK(ct_value_is(e->c, "k", "ok", 2));
  /* a loader failing with a non-error status still fails (it produced no value) */
  loader odd = {0, NULL, 0, RCACHE_MISS, 0};
  CHECK_EQ(rcache_get_or_set(e->c, "k2", 60, load, &odd, &v), RCACHE_ELOADER);
  CHECK(!ct_exists(e->c, "k2"));
  /* bad arguments */
  CHECK_EQ(rcache_get_or_set(e->c, "k", 60, NULL, &good, &v), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_or_set(e->c, "k", 60, load, &good, NULL), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_or_set(e->c, "k3", -1, load, &good, &v), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_or_set(e->c, NULL, 60, load, &good, &v), RCACHE_EINVAL);
  CHECK(!ct_exists(e->c, "k3"));
}

typedef struct {
  rcache *c;
  loader *l;
  pthread_barrier_t *go;
  int ok;
} gos_arg;

static void *gos_worker(void *p) {
  gos_arg *a = p;
  rcache_value v;
  pthread_barrier_wait(a->go); /* all ask at once, well inside the leader's 200 ms */
  if (rcache_get_or_set(a->c, "hot", 60, load, a->l, &v) == RCACHE_OK && v.len == 5 &&
      memcmp(v.data, "fresh", 5) == 0)
    a->ok = 1;
  rcache_value_free(&v);
  return NULL;
}

/* Eight threads on one cold key: all get the value, the loader runs once (single-flight
 * in the process; its 200 ms keeps the others waiting well within flight_wait_ms). */
CONTRACT_TEST(get_or_set_single_flight) {
  loader l = {0, "fresh", 5, RCACHE_OK, 200};
  enum { T = 8 };
  pthread_t th[T];
  gos_arg args[T];
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, T);
  int started = 0;
  for (int i = 0; i < T; i++) {
    args[i] = (gos_arg){e->c, &l, &go, 0};
    if (pthread_create(&th[i], NULL, gos_worker, &args[i]) != 0) break;
    started++;
  }
  CHECK_EQ(started, T);
  if (started != T) abort(); /* the barrier would never open */
  int ok = 0;
  for (int i = 0; i < started; i++) {
    pthread_join(th[i], NULL);
    ok += args[i].ok;
  }
  pthread_barrier_destroy(&go);
  CHECK_EQ(ok, started);
  CHECK_EQ(atomic_load(&l.calls), 1);
}
