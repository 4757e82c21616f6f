/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A one-shot wake-up for one sleeping caller of a pipelined connection (pool.c): the
 * caller arms it and sleeps on it by its deadline, without the pool's lock; the thread that
 * completes its call sets it under the pool's lock, then wakes it after the lock is
 * released. The sleeper therefore wakes to a lock nobody holds, or to no lock at all when
 * its call is complete: one sleep and one wake-up per call, where a condition variable on
 * the pool's lock cost a second sleep on that lock (the waker still held it).
 *
 * On Linux it is a futex word: rcache__wakeup_kick() uses the word's address only, so it
 * may run after the sleeper has seen the word set and gone (a futex wake on memory reused
 * since is at worst a spurious wake-up, which every futex user rechecks). Elsewhere it is
 * a mutex and a condition variable signalled by rcache__wakeup_set() itself, under the
 * caller's lock that keeps the sleeper from leaving; rcache__wakeup_kick() does nothing.
 * Internal.
 */
#ifndef RCACHE_WAKEUP_H
#define RCACHE_WAKEUP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#if defined(__linux__) && !defined(RCACHE_PORTABLE_WAKEUP)
#define RCACHE__FUTEX 1
#endif

typedef struct rcache__wakeup {
  _Atomic uint32_t word; /* 0: armed; else why it was set */
#ifndef RCACHE__FUTEX
  bool init;
  pthread_mutex_t mu;
  pthread_cond_t cv;
#endif
} rcache__wakeup;

/* Before the first arm (the non-futex build sets up its lock on first use). */
void rcache__wakeup_init(rcache__wakeup *w);
void rcache__wakeup_destroy(rcache__wakeup *w);
/* By the sleeper, under the caller's lock: a later set() will wake it. */
void rcache__wakeup_arm(rcache__wakeup *w);
/* By the waker, under the caller's lock: why (non-zero) is what the sleeper reads. */
void rcache__wakeup_set(rcache__wakeup *w, uint32_t why);
/* By the waker, after the caller's lock is released. */
void rcache__wakeup_kick(rcache__wakeup *w);
/* By the sleeper, without the caller's lock: sleeps until set or deadline_us (monotonic,
 * rcache__now_us); returns why it was set, 0 at the deadline. */
uint32_t rcache__wakeup_wait(rcache__wakeup *w, int64_t deadline_us);

#endif
