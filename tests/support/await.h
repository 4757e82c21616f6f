/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Waiting for the state a test asserts on, instead of assuming it is there. rcache_open
 * returns before its first contact with the server (made in a background thread), and the
 * near cache serves only once its listener (one per master on a cluster) is subscribed; on
 * a loaded machine either can take a while. Each wait polls with a generous bound
 * (AWAIT_MS unless told) and says whether the state came, so the caller fails with a
 * message instead of hanging or deciding on a guess. And one turn of a loop on the
 * non-blocking API, the one every async test runs. Header-only, public API only.
 */
#ifndef RCACHE_TEST_AWAIT_H
#define RCACHE_TEST_AWAIT_H

#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "cpu_wait.h"
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

/* ---- a loop on the non-blocking API (docs/async.md) ---------------------------------------- */

/* Waits, as an application's event loop does, until rcache_async_fd(c) is readable or
 * rcache_async_timeout_ms(c) has passed, but for cap_ms at most (a caller checks its condition
 * between turns, and may stop). */
static inline void await_async_wait(rcache *c, int cap_ms) {
  int64_t t = rcache_async_timeout_ms(c);
  struct pollfd p = {.fd = rcache_async_fd(c), .events = POLLIN};
  (void)poll(&p, 1, t < 0 || t > cap_ms ? cap_ms : (int)t);
}

/* The rcache_async_process() call of a turn, timed: when it started and how long it took, on
 * the monotonic clock and in the calling thread's CPU time (which leaves out the waits for a
 * core), in ns; and, from the thread's schedstat (cpu_wait.h), how long of it the thread
 * slept: neither ran nor waited for a core (a lock, a poll: the loop blocked). sched_fd is
 * the thread's schedstat descriptor, -1 before the first turn (the caller closes it). */
typedef struct await_turn_times {
  int64_t start_ns, took_ns;
  int64_t cpu_start_ns, cpu_took_ns;
  int64_t slept_us;
  int sched_fd;
} await_turn_times;

/* Of a stretch of wall_us, what the thread slept: neither ran (run_us) nor waited for a core
 * (wait_us), both from its schedstat (0 when the kernel does not say: then the wall time). */
static inline int64_t await_slept_us(int64_t wall_us, int64_t run_us, int64_t wait_us) {
  int64_t slept = wall_us - run_us - wait_us;
  return slept > 0 ? slept : 0;
}

static inline int64_t await_clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One turn of the loop: await_async_wait(c, cap_ms), then rcache_async_process(c) once, timed
 * into *m when m is not NULL. Returns what rcache_async_process returned (the callbacks and
 * loaders it ran). */
static inline int await_async_turn(rcache *c, int cap_ms, await_turn_times *m) {
  await_async_wait(c, cap_ms);
  if (!m) return rcache_async_process(c);
  int64_t run0, wait0 = cpu_sched_us(&m->sched_fd, &run0);
  m->start_ns = await_clock_ns(CLOCK_MONOTONIC);
  m->cpu_start_ns = await_clock_ns(CLOCK_THREAD_CPUTIME_ID);
  int n = rcache_async_process(c);
  m->took_ns = await_clock_ns(CLOCK_MONOTONIC) - m->start_ns;
  m->cpu_took_ns = await_clock_ns(CLOCK_THREAD_CPUTIME_ID) - m->cpu_start_ns;
  int64_t run1, wait1 = cpu_sched_us(&m->sched_fd, &run1);
  m->slept_us = await_slept_us(m->took_ns / 1000, run1 - run0, wait1 - wait0);
  return n;
}

static inline void await__counted_get(void *ud, rcache_status s, rcache_value v) {
  (void)s;
  rcache_value_free(&v);
  atomic_fetch_add((atomic_int *)ud, 1);
}

/* Brings c's own loop connection up (the first async GETs go to workers, one of which opens
 * it; the later ones the loop sends itself): five rounds of four GETs of key, each round
 * awaited for at most bound_ms. False when one did not complete. */
static inline bool await_async_warm(rcache *c, const char *key, int bound_ms) {
  for (int round = 0; round < 5; round++) {
    atomic_int done = 0;
    for (int i = 0; i < 4; i++)
      if (rcache_get_async(c, key, await__counted_get, &done) != RCACHE_OK) return false;
    for (int64_t t0 = await_now_ms(); atomic_load(&done) < 4 && await_now_ms() - t0 < bound_ms;)
      await_async_turn(c, 50, NULL);
    if (atomic_load(&done) < 4) return false;
    await_sleep_ms(20);
  }
  return true;
}

#endif
