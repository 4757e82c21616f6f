#include "breaker.h"

void rcache__breaker_init(rcache__breaker *b, const rcache_options *o) {
  atomic_init(&b->state, RCACHE_BREAKER_CLOSED);
  atomic_init(&b->failures, 0);
  atomic_init(&b->opened_us, 0);
  b->threshold = o->breaker_failures > 0 ? o->breaker_failures : 1;
  b->min_ms = o->reconnect_min_ms > 0 ? o->reconnect_min_ms : 1;
  b->max_ms = o->reconnect_max_ms >= b->min_ms ? o->reconnect_max_ms : b->min_ms;
  b->jitter = o->reconnect_jitter;
}

void rcache__breaker_success(rcache__breaker *b) {
  if (atomic_load_explicit(&b->failures, memory_order_relaxed) != 0)
    atomic_store_explicit(&b->failures, 0, memory_order_relaxed);
}

bool rcache__breaker_trip(rcache__breaker *b) {
  int expect = RCACHE_BREAKER_CLOSED;
  if (!atomic_compare_exchange_strong(&b->state, &expect, RCACHE_BREAKER_OPEN)) return false;
  atomic_store(&b->opened_us, rcache__now_us());
  atomic_store(&b->failures, 0);
  return true;
}

bool rcache__breaker_failure(rcache__breaker *b) {
  if (atomic_fetch_add(&b->failures, 1) + 1 < b->threshold) return false;
  return rcache__breaker_trip(b);
}

void rcache__breaker_half_open(rcache__breaker *b) {
  atomic_store(&b->state, RCACHE_BREAKER_HALF_OPEN);
}

bool rcache__breaker_close(rcache__breaker *b) {
  int prev = atomic_exchange(&b->state, RCACHE_BREAKER_CLOSED);
  atomic_store(&b->failures, 0);
  return prev != RCACHE_BREAKER_CLOSED;
}

void rcache__breaker_reopen(rcache__breaker *b) {
  atomic_store(&b->state, RCACHE_BREAKER_OPEN);
}

int64_t rcache__breaker_backoff_ms(const rcache__breaker *b, int attempt) {
  int64_t d = b->min_ms;
  for (int i = 0; i < attempt && d < b->max_ms; i++) d *= 2;
  if (d > b->max_ms) d = b->max_ms;
  /* the fixed part keeps probes from hammering; the random part spreads a fleet */
  double fixed = (double)d * (1.0 - b->jitter);
  int64_t ms = (int64_t)(fixed + (double)d * b->jitter * rcache__rand01());
  return ms < 1 ? 1 : ms;
}
