/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-operation latency histograms, key families, the event sink (observe.c). Internal. */
#ifndef RCACHE_OBSERVE_H
#define RCACHE_OBSERVE_H

#include <stdatomic.h>
#include <stdint.h>

#include "rcache/rcache.h"

typedef struct rcache__ophist {
  _Atomic uint64_t bucket[RCACHE_OP_BUCKETS];
  _Atomic uint64_t sum_us;
} rcache__ophist;

#define RCACHE__FAMILY_NAME 64
typedef struct rcache__family {
  _Atomic int state; /* 0 free, 1 being written, 2 ready */
  size_t len;
  char name[RCACHE__FAMILY_NAME];
  _Atomic uint64_t hits, misses;
} rcache__family;

typedef struct rcache__obs {
  rcache__ophist op[RCACHE_OP_COUNT];
  rcache__family fam[RCACHE_MAX_FAMILIES];
  _Atomic uint64_t other_hits, other_misses;
  _Atomic int64_t loads_in_progress;
  char server[128]; /* label: host:port, socket path or mode; never a password */
} rcache__obs;

/* The clock of the histograms: a raw tick (TSC on x86-64, where a clock_gettime() may cost
 * 100 ns under a hypervisor; rcache__now_us() elsewhere), converted to µs only for a
 * duration. Calibrated once per process by rcache__obs_init(). */
#if defined(__x86_64__)
#include <x86intrin.h>
static inline int64_t rcache__obs_ticks(void) {
  return (int64_t)__rdtsc();
}
#else
static inline int64_t rcache__obs_ticks(void) {
  return rcache__now_us();
}
#endif

struct rcache;
/* Fills the server label from the parsed URL (at open). */
void rcache__obs_init(struct rcache *c);
/* Ends a timed call started at t0_us (rcache__obs_ticks()): histogram, family hit/miss for
 * reads (key = the caller's key, may be NULL), event sink. */
void rcache__observe(struct rcache *c, rcache_op op, const char *key, rcache_status s,
                     int64_t t0_us, size_t bytes);

#endif
