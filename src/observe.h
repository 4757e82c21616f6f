/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-operation latency histograms, key families, the event sink (observe.c). Internal. */
#ifndef RCACHE_OBSERVE_H
#define RCACHE_OBSERVE_H

#include <stdatomic.h>
#include <stdint.h>

#include "near/near.h"
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

/* The calls-in-flight gauge, striped by thread so that concurrent calls do not fight over one
 * cache line: a thread adds to its own stripe, a snapshot sums them. A call may leave on
 * another stripe than it entered (only the sum means anything). Padded, not aligned: the
 * handle comes from malloc. */
#define RCACHE__STRIPES 16
typedef struct rcache__stripe {
  _Atomic int64_t n;
  char pad[64 - sizeof(int64_t)];
} rcache__stripe;

typedef struct rcache__obs {
  rcache__ophist op[RCACHE_OP_COUNT];
  rcache__family fam[RCACHE_MAX_FAMILIES];
  _Atomic uint64_t other_hits, other_misses;
  _Atomic int64_t loads_in_progress;
  rcache__stripe in_flight[RCACHE__STRIPES];
  char server[128]; /* label: host:port, socket path or mode; never a password */
} rcache__obs;

/* Near-cache hits are timed one in RCACHE__NEAR_SAMPLE (counted by the near table's shard,
 * under the lock it takes anyway), and a timed one counts for RCACHE__NEAR_SAMPLE: a hit
 * takes ~70 ns, which the second clock read of its timing and two atomic adds would make
 * ~40 % longer. An event sink gets every hit, with a duration of 0. */
#define RCACHE__NEAR_SAMPLE 64

/* A public read (get, get_or_set) on its way through the facade. */
typedef struct rcache__read {
  int64_t now_us;  /* out: rcache__now_us() before the lookup (rcache__get_stored) */
  const char *key; /* the caller's key (its family, for a value it fetches), may be NULL */
  bool count;      /* a near hit is counted in its family and may be sampled */
  bool near_hit;   /* out: the near cache answered with a value */
  bool sample;     /* out: a near hit to time */
  uint8_t group;   /* out: a near hit's family group (rcache__near_hit) */
  bool in_flight;  /* in/out: the call is in the calls-in-flight gauge (a near miss put it
                      there; an inner read of a call already there starts with true) */
} rcache__read;
#define RCACHE__READ(key)                                                                          \
  { 0, (key), true, false, false, RCACHE__NEAR_NOGROUP, false }

struct rcache;
/* Fills the server label from the parsed URL (at open). */
void rcache__obs_init(struct rcache *c);
/* The near-table group of key's family (rcache__near_fill): its family's slot, the "other"
 * group when the table of families is full, RCACHE__NEAR_NOGROUP when families are off or
 * key is NULL. */
uint8_t rcache__obs_group(struct rcache *c, const char *key);
/* A call enters (d = 1) or leaves (d = -1) the handle's calls-in-flight gauge: a public call
 * from the point it can wait (past its argument checks; a read past the near cache) until it
 * returns. */
void rcache__in_flight(struct rcache *c, int d);
/* In a forked child: the calls and loads that parent threads had in progress are not here
 * and never end, so the gauges counting them start again from zero. */
void rcache__obs_after_fork(struct rcache *c);
/* Calls in the handle now (the stripes' sum, never below 0). */
uint64_t rcache__in_flight_now(struct rcache *c);
/* Microseconds since t0_us (rcache__now_us()), 0 if the clock went back. */
uint64_t rcache__since(int64_t t0_us);
/* Ends a call started at t0_us (rcache__now_us()) that entered the calls-in-flight gauge:
 * histogram, family hit/miss for reads (key = the caller's key, may be NULL), event sink,
 * gauge. Reads the clock once. */
void rcache__observe(struct rcache *c, rcache_op op, const char *key, rcache_status s,
                     int64_t t0_us, size_t bytes);
/* The histogram, families and event sink for a duration known already (a loader's, a
 * read's); leaves the gauge alone. */
void rcache__observe_us(struct rcache *c, rcache_op op, const char *key, rcache_status s,
                        uint64_t us, size_t bytes);
/* Ends a read the near cache answered that is to be timed (rd->sample) or told to the event
 * sink (with 0 µs); its family hit was counted by the near table. */
void rcache__observe_near(struct rcache *c, rcache_op op, const rcache__read *rd, size_t bytes);

#endif
