/* SPDX-License-Identifier: BSD-3-Clause */
/* Clocks and randomness: the only place rcache reads the time. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

int64_t rcache__now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t rcache__wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t rcache__wall_ms(void) {
  return rcache__wall_ns() / 1000000;
}

void rcache__sleep_us(int64_t us) {
  if (us <= 0) return;
  struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
  rcache__bg_park();
  while (nanosleep(&ts, &ts) != 0) {
  }
  rcache__bg_unpark();
}

/* splitmix64 over a per-thread state seeded from the clock, the PID and the thread's
 * address: no lock, different sequences in different threads and processes (jitter must
 * not align). A forked child inherits its parent's state: it reseeds on the next call. */
double rcache__rand01(void) {
  static _Thread_local uint64_t state, state_gen;
  uint64_t gen = rcache__fork_gen();
  if (state == 0 || state_gen != gen) {
    static _Atomic uint64_t seq;
    state = (uint64_t)rcache__now_us() ^ ((uint64_t)(uintptr_t)&state << 16) ^
            (uint64_t)rcache__wall_ms() ^ ((uint64_t)getpid() << 40) ^
            (atomic_fetch_add(&seq, 1) * 0x9E3779B97F4A7C15ull);
    state_gen = gen;
  }
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (double)(z >> 11) / 9007199254740992.0; /* 2^53 */
}

void rcache__cond_init_mono(pthread_cond_t *c) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(c, &ca);
  pthread_condattr_destroy(&ca);
}

void rcache__deadline_ts(struct timespec *ts, int64_t deadline_us) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  int64_t left = deadline_us - rcache__now_us();
  if (left < 0) left = 0;
  int64_t ns = now.tv_nsec + (left % 1000000) * 1000;
  ts->tv_sec = now.tv_sec + (time_t)(left / 1000000) + (time_t)(ns / 1000000000);
  ts->tv_nsec = (long)(ns % 1000000000);
}
