/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Waiting for the state a test asserts on, instead of assuming it is there. rcache_open
 * returns before its first contact with the server (made in a background thread), and the
 * near cache serves only once its listener (one per master on a cluster) is subscribed; on
 * a loaded machine either can take a while. Each wait polls with a generous bound
 * (AWAIT_MS unless told) and says whether the state came, so the caller fails with a
 * message instead of hanging or deciding on a guess. Header-only, public API only.
 */
#ifndef RCACHE_TEST_AWAIT_H
#define RCACHE_TEST_AWAIT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "rcache/rcache.h"

#define AWAIT_MS 20000 /* far above anything a loaded machine takes; only failures wait it out */

static inline int64_t await_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void await_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Health checks until one says healthy, for at most bound_ms (the first one waits for the
 * handle's first contact). RCACHE_OK, or the last check's status with its reason in *h. */
static inline rcache_status await_healthy(rcache *c, rcache_health *h, int bound_ms) {
  rcache_status s = RCACHE_EINVAL;
  memset(h, 0, sizeof *h);
  for (int64_t t0 = await_now_ms(); c;) {
    if ((s = rcache_health_check(c, h)) == RCACHE_OK || await_now_ms() - t0 >= bound_ms) break;
    await_sleep_ms(20);
  }
  return s;
}

/* Reads key (which holds a value) until a read is answered by the near cache (near_hits
 * moves), for at most bound_ms: the near cache serves. */
static inline bool await_near(rcache *c, const char *key, int bound_ms) {
  for (int64_t t0 = await_now_ms(); c && await_now_ms() - t0 < bound_ms; await_sleep_ms(5)) {
    rcache_stats before, after;
    rcache_get_stats(c, &before);
    rcache_value v = {NULL, 0};
    rcache_status s = rcache_get(c, key, &v);
    rcache_value_free(&v);
    rcache_get_stats(c, &after);
    if (s == RCACHE_OK && after.near_hits > before.near_hits) return true;
  }
  return false;
}

#endif
