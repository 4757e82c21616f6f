/* SPDX-License-Identifier: BSD-3-Clause */
/* Statistics: a lock-free latency histogram and the Prometheus / JSON renderings.
 * Pure code: formatting takes a snapshot, never the handle. */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Log-linear buckets: exact below 16 µs, then 8 buckets per power of two (≤ 12.5 %
 * error), up to ~2^31 µs. */
static int bucket_of(int64_t us) {
  if (us < 16) return us < 0 ? 0 : (int)us;
  int e = 63 - __builtin_clzll((unsigned long long)us);
  int i = 16 + (e - 4) * 8 + (int)((us >> (e - 3)) & 7);
  return i < RCACHE__LAT_BUCKETS ? i : RCACHE__LAT_BUCKETS - 1;
}

static double bucket_upper_us(int i) {
  if (i < 16) return i + 1;
  int e = 4 + (i - 16) / 8, sub = (i - 16) % 8;
  return (double)((uint64_t)(8 + sub + 1) << (e - 3));
}

void rcache__latency_add(rcache__latency *l, int64_t us) {
  atomic_fetch_add_explicit(&l->bucket[bucket_of(us)], 1, memory_order_relaxed);
  uint64_t u = us < 0 ? 0 : (uint64_t)us,
           m = atomic_load_explicit(&l->max_us, memory_order_relaxed);
  while (u > m && !atomic_compare_exchange_weak(&l->max_us, &m, u)) {
  }
}

double rcache__latency_quantile(const rcache__latency *l, double q) {
  uint64_t counts[RCACHE__LAT_BUCKETS], total = 0;
  for (int i = 0; i < RCACHE__LAT_BUCKETS; i++) {
    counts[i] = atomic_load_explicit(&l->bucket[i], memory_order_relaxed);
    total += counts[i];
  }
  if (total == 0) return 0;
  uint64_t rank = (uint64_t)(q * (double)total + 0.999999);
  if (rank < 1) rank = 1;
  uint64_t seen = 0;
  for (int i = 0; i < RCACHE__LAT_BUCKETS; i++) {
    seen += counts[i];
    if (seen >= rank) {
      double up = bucket_upper_us(i) / 1000.0;
      double mx = (double)atomic_load_explicit(&l->max_us, memory_order_relaxed) / 1000.0;
      return up < mx ? up : mx;
    }
  }
  return (double)atomic_load_explicit(&l->max_us, memory_order_relaxed) / 1000.0;
}

/* One table drives both renderings so that they can never disagree. */
#define RCACHE__COUNTER_FIELDS(X)                                                                  \
  X(breaker_opens, "breaker_opens_total", "Times the circuit breaker opened")                      \
  X(reconnect_attempts, "reconnect_attempts_total", "Background reconnect attempts")               \
  X(hits, "hits_total", "Remote-tier hits")                                                        \
  X(misses, "misses_total", "Remote-tier misses")                                                  \
  X(near_hits, "near_hits_total", "Near-cache hits")                                               \
  X(near_misses, "near_misses_total", "Near-cache misses")                                         \
  X(sets, "sets_total", "Values written")                                                          \
  X(deletes, "deletes_total", "Keys deleted")                                                      \
  X(errors, "errors_total", "Calls that failed with an error")                                     \
  X(timeouts, "timeouts_total", "Calls that timed out")                                            \
  X(fallbacks, "fallbacks_total", "Calls answered without the cache")                              \
  X(loads, "loads_total", "get_or_set loader calls")                                               \
  X(load_errors, "load_errors_total", "get_or_set loader failures")                                \
  X(coalesced, "coalesced_total", "get_or_set callers that waited for another's load")             \
  X(early_refreshes, "early_refreshes_total", "Early (XFetch) refreshes")                          \
  X(stale_served, "stale_served_total", "Stale values served after a loader failure")              \
  X(near_invalidations, "near_invalidations_total", "Near-cache invalidations received")           \
  X(near_flushes, "near_flushes_total", "Whole near-cache flushes")

#define RCACHE__GAUGE_FIELDS(X)                                                                    \
  X(near_entries, "near_entries", "Entries in the near cache")                                     \
  X(near_bytes, "near_bytes", "Bytes held by the near cache")                                      \
  X(calls_in_flight, "calls_in_flight", "Calls inside the handle now")                             \
  X(calls_queued, "calls_queued", "Calls waiting for room on a connection")                        \
  X(loads_in_progress, "loads_in_progress", "get_or_set loaders running now")

void rcache__put(rcache__sink *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t room = s->len < s->size ? s->size - s->len : 0;
  int n = vsnprintf(room ? s->buf + s->len : NULL, room, fmt, ap);
  va_end(ap);
  if (n > 0) s->len += (size_t)n;
}

/* Length of the valid, shortest-form UTF-8 sequence at v (v[0] >= 0x80), 0 when there is
 * none. v is NUL-terminated: a NUL ends a sequence early, as any other byte would. */
static size_t utf8_len(const unsigned char *v) {
  size_t n = v[0] < 0xc2 ? 0 : v[0] < 0xe0 ? 2 : v[0] < 0xf0 ? 3 : v[0] < 0xf5 ? 4 : 0;
  unsigned char lo = 0x80, hi = 0xbf; /* the second byte: no overlong form, no surrogate */
  if (v[0] == 0xe0) lo = 0xa0;
  if (v[0] == 0xed) hi = 0x9f;
  if (v[0] == 0xf0) lo = 0x90;
  if (v[0] == 0xf4) hi = 0x8f;
  if (n == 0 || v[1] < lo || v[1] > hi) return 0;
  for (size_t i = 2; i < n; i++)
    if ((v[i] & 0xc0) != 0x80) return 0;
  return n;
}

void rcache__put_escaped(rcache__sink *s, const char *v) {
  while (*v) {
    unsigned char ch = (unsigned char)*v;
    size_t n = ch >= 0x80 ? utf8_len((const unsigned char *)v) : 1;
    if (ch == '"' || ch == '\\')
      rcache__put(s, "\\%c", ch);
    else if (ch == '\n')
      rcache__put(s, "\\n");
    else if (n > 1)
      rcache__put(s, "%.*s", (int)n, v);
    else if (ch >= 0x80) /* not UTF-8 (a binary key's family): U+FFFD, which both formats take */
      rcache__put(s, "\xef\xbf\xbd");
    else if (ch >= 0x20)
      rcache__put(s, "%c", ch);
    v += n ? n : 1;
  }
}

size_t rcache__sink_end(rcache__sink *s) {
  if (s->size && s->len >= s->size) s->buf[s->size - 1] = '\0';
  return s->len;
}

/* A snapshot holds only the fields within its st->size bytes (docs/abi.md): a program built
 * against an older header has fewer; the renderings leave the missing ones out. */
static size_t known_bytes(const rcache_stats *st) {
  return st->size < sizeof *st ? st->size : sizeof *st;
}
#define HAS(st, f) (offsetof(rcache_stats, f) + sizeof(st)->f <= known_bytes(st))

size_t rcache_stats_prometheus(const rcache_stats *st, char *buf, size_t size) {
  rcache__sink s = {buf, size, 0};
  if (size) buf[0] = '\0';
  if (!st) return 0;
  if (!HAS(st, breaker_state)) return rcache__sink_end(&s);
  rcache__put(&s,
              "# HELP rcache_available Whether the cache is in use (1) or bypassed (0)\n"
              "# TYPE rcache_available gauge\nrcache_available %d\n",
              st->available ? 1 : 0);
  rcache__put(&s,
              "# HELP rcache_breaker_state 0 closed, 1 open, 2 half-open\n"
              "# TYPE rcache_breaker_state gauge\nrcache_breaker_state %d\n",
              st->breaker_state);
#define X(f, name, help)                                                                           \
  if (HAS(st, f))                                                                                  \
    rcache__put(&s,                                                                                \
                "# HELP rcache_" name " " help "\n# TYPE rcache_" name " counter\nrcache_" name    \
                " %" PRIu64 "\n",                                                                  \
                st->f);
  RCACHE__COUNTER_FIELDS(X)
#undef X
#define X(f, name, help)                                                                           \
  if (HAS(st, f))                                                                                  \
    rcache__put(&s,                                                                                \
                "# HELP rcache_" name " " help "\n# TYPE rcache_" name " gauge\nrcache_" name      \
                " %" PRIu64 "\n",                                                                  \
                st->f);
  RCACHE__GAUGE_FIELDS(X)
#undef X
  if (!HAS(st, latency_max_ms)) return rcache__sink_end(&s);
  rcache__put(&s,
              "# HELP rcache_latency_seconds Remote call latency\n"
              "# TYPE rcache_latency_seconds summary\n"
              "rcache_latency_seconds{quantile=\"0.5\"} %.6f\n"
              "rcache_latency_seconds{quantile=\"0.99\"} %.6f\n"
              "rcache_latency_seconds{quantile=\"1\"} %.6f\n",
              st->latency_p50_ms / 1000.0, st->latency_p99_ms / 1000.0,
              st->latency_max_ms / 1000.0);
  return rcache__sink_end(&s);
}

size_t rcache_stats_json(const rcache_stats *st, char *buf, size_t size) {
  rcache__sink s = {buf, size, 0};
  if (size) buf[0] = '\0';
  if (!st) return 0;
  if (!HAS(st, breaker_state)) {
    rcache__put(&s, "{}");
    return rcache__sink_end(&s);
  }
  rcache__put(&s, "{\"available\":%s,\"breaker_state\":%d", st->available ? "true" : "false",
              st->breaker_state);
#define X(f, name, help)                                                                           \
  if (HAS(st, f)) rcache__put(&s, ",\"" #f "\":%" PRIu64, st->f);
  RCACHE__COUNTER_FIELDS(X)
  RCACHE__GAUGE_FIELDS(X)
#undef X
  if (HAS(st, latency_max_ms))
    rcache__put(&s, ",\"latency_p50_ms\":%.3f,\"latency_p99_ms\":%.3f,\"latency_max_ms\":%.3f",
                st->latency_p50_ms, st->latency_p99_ms, st->latency_max_ms);
  rcache__put(&s, "}");
  return rcache__sink_end(&s);
}
