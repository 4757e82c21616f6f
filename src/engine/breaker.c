/* SPDX-License-Identifier: BSD-3-Clause */
#include "engine/breaker.h"

void rcache__breaker_init(rcache__breaker *b, const rcache_options *o) {
  atomic_init(&b->state, RCACHE_BREAKER_CLOSED);
  atomic_init(&b->failures, 0);
  atomic_init(&b->opened_us, 0);
  atomic_init(&b->win, 0);
  b->threshold = o->breaker_failures > 0 ? o->breaker_failures : 1;
  b->window = o->breaker_window > 0 ? o->breaker_window : 20;
  b->rate_fails = 0;
  if (o->breaker_failure_rate > 0) {
    double f = o->breaker_failure_rate * b->window + 0.999999;
    b->rate_fails = f < 1 ? 1 : (uint32_t)f;
  }
  b->min_ms = o->reconnect_min_ms > 0 ? o->reconnect_min_ms : 1;
  b->max_ms = o->reconnect_max_ms >= b->min_ms ? o->reconnect_max_ms : b->min_ms;
  b->jitter = o->reconnect_jitter;
}

/* Counts a call in the failure-rate window; true when a full window had too many
 * failures. A window starts at a failure and spans `window` calls; it restarts when full
 * (a lost race only shifts one window). */
static bool window_add(rcache__breaker *b, bool failed) {
  /* only calls made while closed count: late failures of an outage that is over must not
   * reopen it */
  if (b->rate_fails == 0 ||
      atomic_load_explicit(&b->state, memory_order_relaxed) != RCACHE_BREAKER_CLOSED)
    return false;
  /* a window opens at a failure: while all is well a success costs a load, not a shared
   * read-modify-write on every call */
  if (!failed && atomic_load_explicit(&b->win, memory_order_relaxed) == 0) return false;
  uint64_t w = atomic_fetch_add_explicit(&b->win, ((uint64_t)1 << 32) | (failed ? 1u : 0u),
                                         memory_order_relaxed) +
               (((uint64_t)1 << 32) | (failed ? 1u : 0u));
  if ((w >> 32) < (uint64_t)b->window) return false;
  if (!atomic_compare_exchange_strong(&b->win, &w, 0)) return false;
  return (uint32_t)w >= b->rate_fails;
}

bool rcache__breaker_success(rcache__breaker *b) {
  if (atomic_load_explicit(&b->failures, memory_order_relaxed) != 0)
    atomic_store_explicit(&b->failures, 0, memory_order_relaxed);
  /* a success can complete a window that had too many failures */
  return window_add(b, false) && rcache__breaker_trip(b);
}

bool rcache__breaker_trip(rcache__breaker *b) {
  int expect = RCACHE_BREAKER_CLOSED;
  if (!atomic_compare_exchange_strong(&b->state, &expect, RCACHE_BREAKER_OPEN)) return false;
  atomic_store(&b->opened_us, rcache__now_us());
  atomic_store(&b->failures, 0);
  atomic_store(&b->win, 0);
  return true;
}

bool rcache__breaker_failure(rcache__breaker *b) {
  bool rate = window_add(b, true);
  if (atomic_fetch_add(&b->failures, 1) + 1 < b->threshold && !rate) return false;
  return rcache__breaker_trip(b);
}

void rcache__breaker_half_open(rcache__breaker *b) {
  atomic_store(&b->state, RCACHE_BREAKER_HALF_OPEN);
}

bool rcache__breaker_close(rcache__breaker *b) {
  atomic_store(&b->win, 0);
  atomic_store(&b->failures, 0);
  int prev = atomic_exchange(&b->state, RCACHE_BREAKER_CLOSED);
  return prev != RCACHE_BREAKER_CLOSED;
}

void rcache__breaker_reopen(rcache__breaker *b) {
  atomic_store(&b->state, RCACHE_BREAKER_OPEN);
}

int64_t rcache__breaker_backoff_ms(const rcache__breaker *b, int attempt) {
  int64_t d = b->min_ms;
  for (int i = 0; i < attempt && d < b->max_ms; i++)
    d *= 2;
  if (d > b->max_ms) d = b->max_ms;
  /* the fixed part keeps probes from hammering; the random part spreads a fleet */
  double fixed = (double)d * (1.0 - b->jitter);
  int64_t ms = (int64_t)(fixed + (double)d * b->jitter * rcache__rand01());
  return ms < 1 ? 1 : ms;
}
