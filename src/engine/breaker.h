/* SPDX-License-Identifier: BSD-3-Clause */
/* Circuit breaker: closed → open after N consecutive failures, or when at least
 * failure_rate of the calls in a window of `window` calls (starting at a failure) failed →
 * half-open (one probe) → closed on success / open again on failure. While open,
 * rcache__breaker_allow() costs a single atomic load: no lock, no syscall. */
#ifndef RCACHE_BREAKER_H
#define RCACHE_BREAKER_H

#include "internal.h"

typedef struct rcache__breaker {
  _Atomic int state;    /* RCACHE_BREAKER_* */
  _Atomic int failures; /* consecutive, while closed */
  _Atomic int64_t opened_us;
  _Atomic uint64_t win; /* calls in the current window << 32 | failures in it */
  int threshold;
  int window;          /* calls per failure-rate window */
  uint32_t rate_fails; /* failures in a window that open the breaker (0 = off) */
  int min_ms, max_ms;  /* probe backoff bounds */
  double jitter;       /* 0..1: share of the delay that is randomised (1 = full jitter) */
} rcache__breaker;

void rcache__breaker_init(rcache__breaker *b, const rcache_options *o);

/* May a call use the server now? False while open or half-open (the prober owns the
 * server then). */
static inline bool rcache__breaker_allow(rcache__breaker *b) {
  return atomic_load_explicit(&b->state, memory_order_acquire) == RCACHE_BREAKER_CLOSED;
}

/* Report a call's outcome at the transport level. Each returns true when this call opened
 * the breaker (the caller logs the state change once and wakes the prober): a failure, or
 * a success that completed a window with too high a failure rate. */
bool rcache__breaker_success(rcache__breaker *b);
bool rcache__breaker_failure(rcache__breaker *b);

/* Force the breaker open (e.g. a connect failure at open time). True if it changed. */
bool rcache__breaker_trip(rcache__breaker *b);

/* Prober side: enter half-open before a probe; close() after a good probe returns true
 * when it closed (log "available again"); a failed probe calls reopen(). */
void rcache__breaker_half_open(rcache__breaker *b);
bool rcache__breaker_close(rcache__breaker *b);
void rcache__breaker_reopen(rcache__breaker *b);

/* Delay before probe number `attempt` (0-based): exponential from min_ms, capped at max_ms,
 * with `jitter` of it randomised ("full jitter" when 1) so that a fleet does not reconnect
 * in lockstep. In milliseconds. */
int64_t rcache__breaker_backoff_ms(const rcache__breaker *b, int attempt);

#endif
