/* SPDX-License-Identifier: BSD-3-Clause */
/* Counters: INCRBY semantics and errors, TTL on creation only, rate limiting. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "contract.h"

CONTRACT_TEST(incr_decr) {
  int64_t n = -1;
  CHECK_EQ(rcache_incr(e->c, "ctr", 1, &n), RCACHE_OK); /* a missing key counts as 0 */
  CHECK_EQ(n, 1);
  CHECK_EQ(rcache_incr(e->c, "ctr", 41, &n), RCACHE_OK);
  CHECK_EQ(n, 42);
  CHECK(ct_value_is(e->c, "ctr", "42", 2)); /* stored as plain decimal text */
  CHECK_EQ(rcache_decr(e->c, "ctr", 50, &n), RCACHE_OK);
  CHECK_EQ(n, -8);
  CHECK_EQ(rcache_decr(e->c, "ctr", -10, &n), RCACHE_OK);
  CHECK_EQ(n, 2);
  CHECK_EQ(rcache_incr(e->c, "ctr", 0, &n), RCACHE_OK);
  CHECK_EQ(n, 2);
  CHECK_EQ(rcache_incr(e->c, "ctr", 1, NULL), RCACHE_OK); /* out may be NULL */
  CHECK(ct_value_is(e->c, "ctr", "3", 1));
  CHECK_EQ(rcache_decr(e->c, "new", 7, &n), RCACHE_OK);
  CHECK_EQ(n, -7);
  CHECK(ct_value_is(e->c, "new", "-7", 2));
  /* a value written by set that is a valid integer counts */
  CHECK_EQ(rcache_set(e->c, "text", "-100", 4, 0), RCACHE_OK);
  CHECK_EQ(rcache_incr(e->c, "text", 1, &n), RCACHE_OK);
  CHECK_EQ(n, -99);
  CHECK_EQ(rcache_set(e->c, "zero", "0", 1, 0), RCACHE_OK);
  CHECK_EQ(rcache_incr(e->c, "zero", INT64_MIN, &n), RCACHE_OK);
  CHECK(n == INT64_MIN);
  CHECK(ct_value_is(e->c, "zero", "-9223372036854775808", 20));
}

CONTRACT_TEST(incr_not_an_integer) {
  /* what Redis' INCR refuses: not string2ll, i.e. not exactly a canonical int64 */
  const char *bad[] = {"abc",
                       "",
                       " 1",
                       "1 ",
                       "+1",
                       "01",
                       "-0",
                       "1.5",
                       "1e3",
                       "0x10",
                       "9223372036854775808",
                       "-9223372036854775809",
                       "12345678901234567890123"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t n = 77;
    CHECK_EQ(rcache_set(e->c, "bad", bad[i], strlen(bad[i]), 0), RCACHE_OK);
    rcache_status s = rcache_incr(e->c, "bad", 1, &n);
    CHECK_MSG(s == RCACHE_ETYPE, "incr on \"%s\" gave %d", bad[i], (int)s);
    CHECK_EQ(n, 0);
    CHECK(ct_errmsg_has(e->c, "not an integer"));
    CHECK(ct_value_is(e->c, "bad", bad[i], strlen(bad[i]))); /* left as it was */
  }
  static const char nul[] = {'1', '\0', '2'};
  CHECK_EQ(rcache_set(e->c, "bad", nul, 3, 0), RCACHE_OK);
  CHECK_EQ(rcache_incr(e->c, "bad", 1, NULL), RCACHE_ETYPE);
  CHECK_EQ(rcache_decr(e->c, "bad", 1, NULL), RCACHE_ETYPE);
  CHECK_EQ(rcache_incr_expire(e->c, "bad", 1, 10, NULL), RCACHE_ETYPE);
  CHECK_EQ(ct_ttl(e->c, "bad"), -1); /* a failed incr_expire sets no TTL */
}

CONTRACT_TEST(incr_overflow) {
  int64_t n = 5;
  CHECK_EQ(rcache_set(e->c, "max", "9223372036854775807", 19, 0), RCACHE_OK);
  CHECK_EQ(rcache_incr(e->c, "max", 1, &n), RCACHE_ERANGE);
  CHECK_EQ(n, 0);
  CHECK(ct_errmsg_has(e->c, "overflow"));
  CHECK(ct_value_is(e->c, "max", "9223372036854775807", 19));
  CHECK_EQ(rcache_decr(e->c, "max", -1, &n), RCACHE_ERANGE);
  CHECK_EQ(rcache_incr(e->c, "max", 0, &n), RCACHE_OK);
  CHECK(n == INT64_MAX);
  CHECK_EQ(rcache_set(e->c, "min", "-9223372036854775808", 20, 0), RCACHE_OK);
  CHECK_EQ(rcache_decr(e->c, "min", 1, &n), RCACHE_ERANGE);
  CHECK_EQ(rcache_incr(e->c, "min", -1, &n), RCACHE_ERANGE);
  CHECK_EQ(rcache_incr(e->c, "min", INT64_MAX, &n), RCACHE_OK);
  CHECK_EQ(n, -1);
  /* decr by INT64_MIN cannot be negated: refused, nothing created */
  CHECK_EQ(rcache_decr(e->c, "fresh", INT64_MIN, &n), RCACHE_ERANGE);
  CHECK_EQ(n, 0);
  CHECK(!ct_exists(e->c, "fresh"));
  CHECK_EQ(rcache_set(e->c, "one", "1", 1, 0), RCACHE_OK);
  CHECK_EQ(rcache_decr(e->c, "one", INT64_MIN, &n), RCACHE_ERANGE);
  CHECK(ct_value_is(e->c, "one", "1", 1));
}

CONTRACT_TEST(incr_keeps_ttl) {
  int64_t n;
  CHECK_EQ(rcache_set(e->c, "c", "10", 2, RCACHE_TTL_LONG), RCACHE_OK);
  CHECK_EQ(rcache_incr(e->c, "c", 1, &n), RCACHE_OK);
  CHECK_EQ(n, 11);
  int64_t t = ct_ttl(e->c, "c");
  CHECK_MSG(t > 0 && t <= RCACHE_TTL_LONG, "ttl %lld", (long long)t);
  CHECK_EQ(rcache_incr(e->c, "plain", 1, &n), RCACHE_OK);
  CHECK_EQ(ct_ttl(e->c, "plain"), -1);
}

CONTRACT_TEST(incr_expire_ttl_on_creation_only) {
  int64_t n;
  CHECK_EQ(rcache_incr_expire(e->c, "win", 1, 100, &n), RCACHE_OK);
  CHECK_EQ(n, 1);
  int64_t t = ct_ttl(e->c, "win");
  CHECK_MSG(t > 70 && t <= 100, "ttl %lld", (long long)t);
  /* later calls count but leave the window alone (no extension, no shortening) */
  CHECK_EQ(rcache_incr_expire(e->c, "win", 2, 5000, &n), RCACHE_OK);
  CHECK_EQ(n, 3);
  t = ct_ttl(e->c, "win");
  CHECK_MSG(t > 70 && t <= 100, "ttl %lld after a second call", (long long)t);
  CHECK_EQ(rcache_incr_expire(e->c, "win", 1, 10, &n), RCACHE_OK);
  t = ct_ttl(e->c, "win");
  CHECK_MSG(t > 70 && t <= 100, "ttl %lld after a shorter one", (long long)t);
  /* an existing counter without TTL keeps having none */
  CHECK_EQ(rcache_incr(e->c, "perm", 5, &n), RCACHE_OK);
  CHECK_EQ(rcache_incr_expire(e->c, "perm", 1, 100, &n), RCACHE_OK);
  CHECK_EQ(n, 6);
  CHECK_EQ(ct_ttl(e->c, "perm"), -1);
  /* so does a value written by set that happens to be an integer */
  CHECK_EQ(rcache_set(e->c, "settled", "0", 1, 0), RCACHE_OK);
  CHECK_EQ(rcache_incr_expire(e->c, "settled", 0, 100, &n), RCACHE_OK);
  CHECK_EQ(ct_ttl(e->c, "settled"), -1);
  /* a counter created with by == 0 is still created with its TTL */
  CHECK_EQ(rcache_incr_expire(e->c, "zero", 0, 100, &n), RCACHE_OK);
  CHECK_EQ(n, 0);
  t = ct_ttl(e->c, "zero");
  CHECK(t > 70 && t <= 100);
  /* counts beyond 2^53 are exact (no trip through a double anywhere) */
  CHECK_EQ(rcache_set(e->c, "big", "9007199254740993", 16, 0), RCACHE_OK);
  CHECK_EQ(rcache_incr_expire(e->c, "big", 2, 100, &n), RCACHE_OK);
  CHECK(n == INT64_C(9007199254740995));
  CHECK_EQ(rcache_incr_expire(e->c, "max", INT64_MAX, 100, &n), RCACHE_OK);
  CHECK(n == INT64_MAX);
  CHECK_EQ(rcache_incr_expire(e->c, "max", INT64_MIN, 100, &n), RCACHE_OK);
  CHECK_EQ(n, -1);
  CHECK_EQ(rcache_incr_expire(e->c, "max", INT64_MIN + 1, 100, &n), RCACHE_OK);
  CHECK(n == INT64_MIN);
  CHECK_EQ(rcache_incr_expire(e->c, "max", -1, 100, &n), RCACHE_ERANGE);
  CHECK_EQ(rcache_incr(e->c, "big", 1, &n), RCACHE_OK);
  CHECK(n == INT64_C(9007199254740996));
  CHECK_EQ(rcache_incr_expire(e->c, "x", 1, 0, &n), RCACHE_EINVAL);
  CHECK_EQ(rcache_incr_expire(e->c, "x", 1, -5, &n), RCACHE_EINVAL);
  CHECK(!ct_exists(e->c, "x"));
}

CONTRACT_TEST(rate_limit) {
  bool allowed = false;
  int64_t count = -1;
  for (int i = 1; i <= 3; i++) {
    CHECK_EQ(rcache_rate_limit(e->c, "api", 3, 60, &allowed, &count), RCACHE_OK);
    CHECK_MSG(allowed, "call %d refused", i);
    CHECK_EQ(count, i);
  }
  CHECK_EQ(rcache_rate_limit(e->c, "api", 3, 60, &allowed, &count), RCACHE_OK);
  CHECK(!allowed);
  CHECK_EQ(count, 4);
  CHECK_EQ(rcache_rate_limit(e->c, "api", 3, 60, &allowed, NULL), RCACHE_OK);
  CHECK(!allowed);
  int64_t t = ct_ttl(e->c, "api"); /* the window */
  CHECK_MSG(t > 30 && t <= 60, "ttl %lld", (long long)t);
  /* limit 0 refuses everything; keys are independent */
  CHECK_EQ(rcache_rate_limit(e->c, "closed", 0, 60, &allowed, &count), RCACHE_OK);
  CHECK(!allowed);
  CHECK_EQ(count, 1);
  CHECK_EQ(rcache_rate_limit(e->c, "other", 1, 60, &allowed, &count), RCACHE_OK);
  CHECK(allowed);
  /* bad arguments */
  CHECK_EQ(rcache_rate_limit(e->c, "api", -1, 60, &allowed, &count), RCACHE_EINVAL);
  CHECK_EQ(rcache_rate_limit(e->c, "api", 3, 0, &allowed, &count), RCACHE_EINVAL);
  CHECK_EQ(rcache_rate_limit(e->c, "api", 3, 60, NULL, &count), RCACHE_EINVAL);
  CHECK_EQ(rcache_rate_limit(e->c, NULL, 3, 60, &allowed, &count), RCACHE_EINVAL);
  CHECK(!allowed);
  /* a non-integer key cannot count */
  CHECK_EQ(rcache_set(e->c, "text", "x", 1, 0), RCACHE_OK);
  CHECK_EQ(rcache_rate_limit(e->c, "text", 3, 60, &allowed, &count), RCACHE_ETYPE);
}

#define THREADS 4
#define PER_THREAD 500

static void *hammer(void *arg) {
  rcache *c = arg;
  for (int i = 0; i < PER_THREAD; i++) {
    if (rcache_incr(c, "shared", 1, NULL) != RCACHE_OK) return (void *)1;
  }
  return NULL;
}

CONTRACT_TEST(incr_is_atomic_across_threads) {
  pthread_t th[THREADS];
  int started = 0;
  for (int i = 0; i < THREADS; i++)
    started += pthread_create(&th[i], NULL, hammer, e->c) == 0;
  CHECK_EQ(started, THREADS);
  int failures = 0;
  for (int i = 0; i < started; i++) {
    void *r;
    pthread_join(th[i], &r);
    failures += r != NULL;
  }
  CHECK_EQ(failures, 0);
  int64_t n;
  CHECK_EQ(rcache_incr(e->c, "shared", 0, &n), RCACHE_OK);
  CHECK_EQ(n, (int64_t)started * PER_THREAD);
}
