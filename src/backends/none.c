/* SPDX-License-Identifier: BSD-3-Clause */
/* none:// — caching off. Reads miss, writes are accepted and dropped, counters have no
 * count to give (RCACHE_EUNAVAILABLE, never a made-up number). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void none_destroy(rcache__backend *b) {
  rcache__free(b);
}

static rcache_status none_get(rcache__backend *b, const char *k, size_t kl, rcache_value *out,
                              int64_t *pttl) {
  if (pttl) *pttl = -2;
  return RCACHE_MISS;
}

static rcache_status none_set(rcache__backend *b, const char *k, size_t kl, const void *d, size_t l,
                              int64_t ttl, int flags) {
  return RCACHE_OK;
}

static rcache_status none_del(rcache__backend *b, const char *k, size_t kl) {
  return RCACHE_MISS;
}

static rcache_status none_del_match(rcache__backend *b, const char *g, size_t gl,
                                    rcache__progress *p) {
  rcache__progress_add(p, 0); /* one empty batch: a progress display still sees its total */
  return RCACHE_OK;
}

static rcache_status none_scan(rcache__backend *b, const char *g, size_t gl, uint64_t limit,
                               rcache_scan_fn fn, void *ud) {
  return RCACHE_OK;
}

static rcache_status none_incr(rcache__backend *b, const char *k, size_t kl, int64_t by,
                               int64_t ttl, int64_t *out) {
  rcache__errf("caching is off (none://): no counter to increment");
  return RCACHE_EUNAVAILABLE;
}

static rcache_status none_pttl(rcache__backend *b, const char *k, size_t kl, int64_t *ms) {
  *ms = -2;
  return RCACHE_OK;
}

static rcache_status none_flushdb(rcache__backend *b) {
  return RCACHE_OK;
}

static rcache_status none_get_many(rcache__backend *b, const char *const *keys, const size_t *klens,
                                   size_t n, rcache_value *vals, rcache_status *st) {
  for (size_t i = 0; i < n; i++)
    st[i] = RCACHE_MISS;
  return RCACHE_OK;
}

static rcache_status none_set_many(rcache__backend *b, const char *const *keys, const size_t *klens,
                                   const rcache_value *vals, size_t n, const int64_t *ttl) {
  return RCACHE_OK;
}

static rcache_status none_health(rcache__backend *b, rcache_health *h) {
  return RCACHE_OK;
}

static bool none_available(rcache__backend *b) {
  return true;
}

static const rcache__backend_ops none_ops = {
    .mode = "none",
    .destroy = none_destroy,
    .get = none_get,
    .set = none_set,
    .del = none_del,
    .del_match = none_del_match,
    .scan = none_scan,
    .incr = none_incr,
    .pttl = none_pttl,
    .flushdb = none_flushdb,
    .get_many = none_get_many,
    .set_many = none_set_many,
    .health = none_health,
    .available = none_available,
};

rcache_status rcache__none_open(rcache__ctx *ctx, rcache__backend **out) {
  rcache__backend *b = rcache__calloc(1, sizeof *b);
  if (!b) return RCACHE_ENOMEM;
  b->ops = &none_ops;
  b->ctx = ctx;
  *out = b;
  return RCACHE_OK;
}
