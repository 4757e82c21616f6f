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
#include <sys/resource.h>
#include <time.h>

#ifndef RUSAGE_THREAD
#define RUSAGE_THREAD 1 /* Linux's: <sys/resource.h> names it under _GNU_SOURCE only */
#endif

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
  long sleeps; /* the times it slept (gave up its core of its own accord) */
  int sched_fd;
} await_turn_times;

static inline int64_t await_clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A point in the calling thread's time (await_mark_now): the monotonic clock, the thread's
 * CPU clock, how long it has waited for a core (its schedstat, cpu_wait.h; *sched_fd as
 * there), and how many times it has given up its core of its own accord (slept). */
typedef struct await_mark {
  int64_t wall_ns, cpu_ns, wait_us;
  long slept_count;
} await_mark;

static inline long await_sleeps(void) {
  struct rusage ru;
  return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_nvcsw : -1;
}

static inline await_mark await_mark_now(int *sched_fd) {
  await_mark m;
  m.slept_count = await_sleeps();
  m.wall_ns = await_clock_ns(CLOCK_MONOTONIC);
  m.cpu_ns = await_clock_ns(CLOCK_THREAD_CPUTIME_ID);
  m.wait_us = cpu_sched_us(sched_fd, NULL);
  return m;
}

/* How long the thread slept since m (on a lock, a poll, a page read from disk): 0 when it
 * never gave up its core of its own accord (every sleep does: the kernel counts it in the
 * thread's voluntary context switches); else the wall time that it neither ran nor waited
 * for a core. The count comes first because that residual is not zero without a sleep on
 * this machine: up to 2.3 ms was measured in calls with no voluntary switch (time the kernel
 * counts as neither, whatever took it: interrupt work, the host of this virtual machine,
 * whose steal time the kernel reports as 0). The time run is the thread's CPU clock, exact when
 * read, not the first figure of its schedstat, brought up to date only at a tick or a switch (4 ms
 * apart at HZ=250): a stretch timed with it was off by up to a tick. The wait for a core is exact
 * while the thread runs. Never less than the truth when it slept: the wait is read last at
 * the mark and first here, so a preemption between the reads counts as sleep. (Without the
 * count, getrusage failing: the residual as it is.) */
static inline int64_t await_slept_since_us(const await_mark *m, int *sched_fd) {
  int64_t wait = cpu_sched_us(sched_fd, NULL);
  int64_t wall = await_clock_ns(CLOCK_MONOTONIC), cpu = await_clock_ns(CLOCK_THREAD_CPUTIME_ID);
  long sleeps = await_sleeps();
  if (sleeps >= 0 && m->slept_count >= 0 && sleeps == m->slept_count) return 0;
  int64_t slept = (wall - m->wall_ns - (cpu - m->cpu_ns)) / 1000 - (wait - m->wait_us);
  return slept > 0 ? slept : 0;
}

/* One turn of the loop: await_async_wait(c, cap_ms), then rcache_async_process(c) once, timed
 * into *m when m is not NULL. Returns what rcache_async_process returned (the callbacks and
 * loaders it ran). */
static inline int await_async_turn(rcache *c, int cap_ms, await_turn_times *m) {
  await_async_wait(c, cap_ms);
  if (!m) return rcache_async_process(c);
  await_mark at = await_mark_now(&m->sched_fd);
  int n = rcache_async_process(c);
  m->slept_us = await_slept_since_us(&at, &m->sched_fd);
  m->sleeps = await_sleeps() - at.slept_count;
  m->start_ns = at.wall_ns;
  m->cpu_start_ns = at.cpu_ns;
  m->took_ns = await_clock_ns(CLOCK_MONOTONIC) - m->start_ns;
  m->cpu_took_ns = await_clock_ns(CLOCK_THREAD_CPUTIME_ID) - m->cpu_start_ns;
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
