/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * docs/abi.md: a program built against an older, shorter rcache_options / rcache_stats keeps
 * working with a newer library. The "older header" is simulated by copies of the structs cut
 * short (the first fields, at the same offsets: checked below). Each struct is allocated on
 * the heap at exactly its short size, so the ASan build catches any read or write past its
 * end; the normal build catches them with a canary after the struct.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "rcache/rcache.h"
#include "test.h"

/* rcache_options as an older header had it: everything up to client_name. */
typedef struct old_options {
  size_t size;
  const char *key_prefix;
  int connect_timeout_ms, command_timeout_ms, pool_size;
  int64_t default_ttl_s;
  double ttl_jitter;
  int breaker_failures;
  double breaker_failure_rate;
  int breaker_window, reconnect_min_ms, reconnect_max_ms;
  double reconnect_jitter;
  bool rate_limit_fail_closed;
  size_t near_cache_bytes;
  int64_t near_cache_max_ttl_ms;
  int flight_wait_ms;
  bool lease;
  int lease_ms;
  double early_refresh_beta;
  int64_t stale_window_s;
  const char *tls_ca_file, *tls_cert_file, *tls_key_file, *tls_server_name;
  bool tls_insecure;
  size_t max_key_bytes, max_value_bytes;
  int max_redirects, scan_count;
  const char *client_name;
} old_options;

/* rcache_stats as an older header had it: the counters up to stale_served. */
typedef struct old_stats {
  size_t size;
  bool available;
  int breaker_state;
  uint64_t breaker_opens, reconnect_attempts, hits, misses, near_hits, near_misses, sets, deletes,
      errors, timeouts, fallbacks, loads, load_errors, coalesced, early_refreshes, stale_served;
} old_stats;

#define SAME(T, U, f) _Static_assert(offsetof(T, f) == offsetof(U, f), #f " moved")
SAME(old_options, rcache_options, pool_size);
SAME(old_options, rcache_options, stale_window_s);
SAME(old_options, rcache_options, tls_insecure);
SAME(old_options, rcache_options, client_name);
SAME(old_stats, rcache_stats, available);
SAME(old_stats, rcache_stats, stale_served);
_Static_assert(sizeof(old_options) < sizeof(rcache_options), "not an older, shorter struct");
_Static_assert(sizeof(old_stats) < sizeof(rcache_stats), "not an older, shorter struct");

#define CANARY 32 /* bytes of 0xA5 after a struct in the canary buffers */

static void *canaried(size_t size) {
  unsigned char *p = malloc(size + CANARY);
  if (p) memset(p, 0xA5, size + CANARY);
  return p;
}

static bool canary_intact(const void *p, size_t size) {
  const unsigned char *c = (const unsigned char *)p + size;
  for (size_t i = 0; i < CANARY; i++)
    if (c[i] != 0xA5) return false;
  return true;
}

/* What the old program's rcache_options_init(o) expands to: its own sizeof. */
static void old_init(old_options *o) {
  rcache_options_init_sized((rcache_options *)o, sizeof *o);
}

static void old_options_work(void) {
  old_options *o = malloc(sizeof *o); /* exactly the old size: ASan sees any overrun */
  if (!o) abort();
  old_init(o);
  CHECK_EQ(o->size, sizeof *o);
  CHECK_EQ(o->connect_timeout_ms, 1000);
  CHECK_EQ(o->scan_count, 1000);
  CHECK(o->client_name == NULL);
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, "memory://", (rcache_options *)o), RCACHE_OK);
  CHECK_EQ(rcache_set(c, "k", "v", 1, 0), RCACHE_OK);
  rcache_close(c);
  /* the fields it has are read: an invalid one is refused */
  o->pool_size = 0;
  CHECK_EQ(rcache_open(&c, "memory://", (rcache_options *)o), RCACHE_EINVAL);
  CHECK(strstr(rcache_errmsg(NULL), "pool_size") != NULL);
  free(o);

  /* the bytes after it are never written by init, nor read by open: 0xA5 there would be an
   * invalid log_level (and a wild log_fn) if rcache_open took them */
  o = canaried(sizeof *o);
  if (!o) abort();
  old_init(o);
  CHECK(canary_intact(o, sizeof *o));
  CHECK_EQ(rcache_open(&c, "memory://?key_prefix=abi:", (rcache_options *)o), RCACHE_OK);
  CHECK(canary_intact(o, sizeof *o));
  rcache_close(c);
  free(o);
}

static void bad_sizes(void) {
  rcache_options o;
  rcache_options_init(&o);
  CHECK_EQ(o.size, sizeof o);
  rcache *c = NULL;
  o.size = 0; /* never initialised */
  CHECK_EQ(rcache_open(&c, "memory://", &o), RCACHE_EINVAL);
  CHECK(strstr(rcache_errmsg(NULL), "rcache_options_init") != NULL);
  o.size = sizeof o + 8; /* from a newer header: fields this library cannot honour */
  CHECK_EQ(rcache_open(&c, "memory://", &o), RCACHE_EINVAL);
  CHECK(strstr(rcache_errmsg(NULL), "newer") != NULL);
  CHECK(c == NULL);
}

/* Fields appended after the first size-recording release must default to zero bytes: in an
 * older program's struct they may fall in its trailing padding, which init zeroed. */
static void appended_fields_default_to_zero(void) {
  rcache_options o;
  memset(&o, 0xA5, sizeof o);
  rcache_options_init(&o);
  size_t first = offsetof(rcache_options, long_key_digest) + sizeof o.long_key_digest;
  const unsigned char *p = (const unsigned char *)&o;
  size_t nonzero = 0;
  for (size_t i = first; i < sizeof o; i++)
    nonzero += p[i] != 0;
  CHECK_MSG(nonzero == 0, "%zu byte(s) after long_key_digest are not 0 after init", nonzero);
}

static void old_stats_work(void) {
  rcache *c = NULL;
  if (rcache_open(&c, "memory://", NULL) != RCACHE_OK) abort();
  rcache_value v = {0};
  CHECK_EQ(rcache_get(c, "absent", &v), RCACHE_MISS);
  CHECK_EQ(rcache_set(c, "k", "v", 1, 0), RCACHE_OK);
  CHECK_EQ(rcache_get(c, "k", &v), RCACHE_OK);
  rcache_value_free(&v);

  old_stats *s = malloc(sizeof *s); /* exactly the old size */
  if (!s) abort();
  rcache_get_stats_sized(c, (rcache_stats *)s, sizeof *s);
  CHECK_EQ(s->size, sizeof *s);
  CHECK_EQ(s->hits, 1);
  CHECK_EQ(s->misses, 1);
  CHECK_EQ(s->sets, 1);
  CHECK(s->available);
  char buf[4096];
  size_t n = rcache_stats_json((rcache_stats *)s, buf, sizeof buf);
  CHECK(n > 0 && n < sizeof buf && buf[n - 1] == '}');
  CHECK(strstr(buf, "\"stale_served\":0") != NULL);
  CHECK(strstr(buf, "near_entries") == NULL && strstr(buf, "latency") == NULL);
  n = rcache_stats_prometheus((rcache_stats *)s, buf, sizeof buf);
  CHECK(n > 0 && n < sizeof buf && strstr(buf, "rcache_hits_total 1\n") != NULL);
  CHECK(strstr(buf, "near_entries") == NULL && strstr(buf, "latency") == NULL);
  free(s);

  s = canaried(sizeof *s);
  if (!s) abort();
  rcache_get_stats_sized(c, (rcache_stats *)s, sizeof *s);
  CHECK(canary_intact(s, sizeof *s));
  CHECK_EQ(s->hits, 1);
  free(s);

  /* a newer program's bigger struct: ours filled, the rest zeroed, size says what is known */
  unsigned char *big = canaried(sizeof(rcache_stats) + 16);
  if (!big) abort();
  rcache_get_stats_sized(c, (rcache_stats *)big, sizeof(rcache_stats) + 16);
  CHECK_EQ(((rcache_stats *)big)->size, sizeof(rcache_stats));
  CHECK_EQ(((rcache_stats *)big)->hits, 1);
  CHECK(big[sizeof(rcache_stats) + 15] == 0 && canary_intact(big, sizeof(rcache_stats) + 16));
  free(big);

  rcache_stats full;
  rcache_get_stats(c, &full);
  CHECK_EQ(full.size, sizeof full);
  n = rcache_stats_json(&full, buf, sizeof buf);
  CHECK(strstr(buf, "near_entries") != NULL && strstr(buf, "latency_max_ms") != NULL);
  rcache_close(c);
}

/* rcache_op_stats and rcache_server_stats grow like rcache_stats: an older program's
 * shorter struct gets exactly its bytes, a newer one's longer struct ours and zeros. */
typedef struct old_op_stats {
  size_t size;
  uint64_t count;
} old_op_stats;
SAME(old_op_stats, rcache_op_stats, count);

static void sized_observe_structs(void) {
  rcache *c = NULL;
  if (rcache_open(&c, "memory://", NULL) != RCACHE_OK) abort();
  rcache_value v = {0};
  CHECK_EQ(rcache_get(c, "absent", &v), RCACHE_MISS);
  CHECK_EQ(rcache_get(c, "absent", &v), RCACHE_MISS);
  old_op_stats *o = canaried(sizeof *o);
  if (!o) abort();
  CHECK_EQ(rcache_get_op_stats_sized(c, RCACHE_OP_GET, (rcache_op_stats *)o, sizeof *o), RCACHE_OK);
  CHECK_EQ(o->size, sizeof *o);
  CHECK_EQ(o->count, 2);
  CHECK(canary_intact(o, sizeof *o));
  free(o);
  unsigned char *big = canaried(sizeof(rcache_op_stats) + 16);
  if (!big) abort();
  CHECK_EQ(rcache_get_op_stats_sized(c, RCACHE_OP_GET, (rcache_op_stats *)big,
                                     sizeof(rcache_op_stats) + 16),
           RCACHE_OK);
  CHECK_EQ(((rcache_op_stats *)big)->size, sizeof(rcache_op_stats));
  CHECK(big[sizeof(rcache_op_stats) + 15] == 0 && canary_intact(big, sizeof(rcache_op_stats) + 16));
  free(big);
  size_t *tiny = canaried(sizeof *tiny); /* just the size field */
  if (!tiny) abort();
  CHECK_EQ(rcache_get_server_stats_sized(c, 0, (rcache_server_stats *)tiny, sizeof *tiny),
           RCACHE_MISS); /* memory:// has no server */
  CHECK_EQ(*tiny, sizeof *tiny);
  CHECK(canary_intact(tiny, sizeof *tiny));
  CHECK_EQ(rcache_get_server_stats_sized(c, 0, (rcache_server_stats *)tiny, sizeof *tiny - 1),
           RCACHE_EINVAL);
  free(tiny);
  rcache_close(c);
}

int main(void) {
  old_options_work();
  sized_observe_structs();
  bad_sizes();
  appended_fields_default_to_zero();
  old_stats_work();
  return test_report("test_abi");
}
