/* SPDX-License-Identifier: BSD-3-Clause */
/* One-shot wake-ups of a pipelined connection's callers (see wakeup.h). */
#include "engine/wakeup.h"

#include <errno.h>
#include <time.h>

#include "internal.h"

#ifdef RCACHE__FUTEX
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

void rcache__wakeup_init(rcache__wakeup *w) {
  atomic_store_explicit(&w->word, 0, memory_order_relaxed);
}

void rcache__wakeup_destroy(rcache__wakeup *w) {
  (void)w;
}

void rcache__wakeup_arm(rcache__wakeup *w) {
  atomic_store_explicit(&w->word, 0, memory_order_relaxed);
}

void rcache__wakeup_set(rcache__wakeup *w, uint32_t why) {
  atomic_store_explicit(&w->word, why, memory_order_release);
}

void rcache__wakeup_kick(rcache__wakeup *w) {
  syscall(SYS_futex, &w->word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

uint32_t rcache__wakeup_wait(rcache__wakeup *w, int64_t deadline_us) {
  for (;;) {
    uint32_t why = atomic_load_explicit(&w->word, memory_order_acquire);
    if (why) return why;
    if (rcache__now_us() >= deadline_us) return 0;
    struct timespec ts; /* absolute, CLOCK_MONOTONIC: FUTEX_WAIT_BITSET's clock */
    rcache__deadline_ts(&ts, deadline_us);
    /* returns at once when the word is no longer 0; EINTR and spurious wake-ups loop; a
     * background thread's wait is parked, as every wait of one is (internal.h, fork gate) */
    rcache__bg_park();
    syscall(SYS_futex, &w->word, FUTEX_WAIT_BITSET_PRIVATE, 0, &ts, NULL, FUTEX_BITSET_MATCH_ANY);
    rcache__bg_unpark();
  }
}

#else

void rcache__wakeup_init(rcache__wakeup *w) {
  atomic_store_explicit(&w->word, 0, memory_order_relaxed);
  w->init = false;
}

void rcache__wakeup_destroy(rcache__wakeup *w) {
  if (!w->init) return;
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  w->init = false;
}

void rcache__wakeup_arm(rcache__wakeup *w) {
  if (!w->init) {
    pthread_mutex_init(&w->mu, NULL);
    rcache__cond_init_mono(&w->cv);
    w->init = true;
  }
  atomic_store_explicit(&w->word, 0, memory_order_relaxed);
}

void rcache__wakeup_set(rcache__wakeup *w, uint32_t why) {
  pthread_mutex_lock(&w->mu);
  atomic_store_explicit(&w->word, why, memory_order_release);
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

void rcache__wakeup_kick(rcache__wakeup *w) {
  (void)w;
}

uint32_t rcache__wakeup_wait(rcache__wakeup *w, int64_t deadline_us) {
  struct timespec ts;
  rcache__deadline_ts(&ts, deadline_us);
  pthread_mutex_lock(&w->mu);
  uint32_t why;
  while (!(why = atomic_load_explicit(&w->word, memory_order_acquire)))
    if (rcache__cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT) break;
  why = atomic_load_explicit(&w->word, memory_order_acquire);
  pthread_mutex_unlock(&w->mu);
  return why;
}

#endif
