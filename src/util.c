/* SPDX-License-Identifier: BSD-3-Clause */
/* Small helpers shared by the library. */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- the one allocator indirection ----------------------------------------------------------- */

/* Armed by a test: `countdown` allocations succeed, then one fails (and, when sticky, every
 * one after it). Unarmed, an allocation costs one relaxed load more than malloc. */
static _Atomic bool armed;
static _Atomic bool sticky;
static _Atomic int64_t countdown;
static _Atomic uint64_t alloc_calls;

static bool inject_failure(void) {
  atomic_fetch_add_explicit(&alloc_calls, 1, memory_order_relaxed);
  if (!atomic_load_explicit(&armed, memory_order_relaxed)) return false;
  int64_t left = atomic_fetch_sub_explicit(&countdown, 1, memory_order_relaxed);
  if (left > 0) return false;
  bool keep = atomic_load_explicit(&sticky, memory_order_relaxed);
  if (left == 0 && !keep) atomic_store_explicit(&armed, false, memory_order_relaxed);
  return left == 0 || keep;
}

void *rcache__malloc(size_t n) {
  return inject_failure() ? NULL : malloc(n ? n : 1);
}

void *rcache__calloc(size_t n, size_t size) {
  return inject_failure() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

void *rcache__realloc(void *p, size_t n) {
  return inject_failure() ? NULL : realloc(p, n ? n : 1);
}

void rcache__free(void *p) {
  free(p);
}

void rcache__alloc_fail_after(int64_t n, bool once) {
  atomic_store(&armed, false);
  atomic_store(&countdown, n);
  atomic_store(&sticky, !once);
  atomic_store(&armed, n >= 0);
}

uint64_t rcache__alloc_calls(void) {
  return atomic_load(&alloc_calls);
}

/* ---- small helpers ------------------------------------------------------------------------- */

char *rcache__memdup0(const void *p, size_t len) {
  char *d = rcache__malloc(len + 1);
  if (!d) return NULL;
  if (len) memcpy(d, p, len);
  d[len] = '\0';
  return d;
}

char *rcache__strdup(const char *s) {
  return s ? rcache__memdup0(s, strlen(s)) : NULL;
}

/* Redis' string2ll rules: optional '-', digits, no leading zeros (except "0"), no spaces,
 * no '+', must fit int64. That is what INCR accepts, so memory:// must agree. */
bool rcache__parse_i64(const char *s, size_t len, int64_t *out) {
  if (len == 0 || len > 20) return false;
  size_t i = 0;
  bool neg = false;
  if (s[0] == '-') {
    neg = true;
    if (++i == len) return false;
  }
  if (s[i] == '0') {
    if (len == 1) {
      *out = 0;
      return true;
    }
    return false; /* leading zero, or "-0" */
  }
  uint64_t v = 0;
  for (; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  if (neg) {
    if (v > (uint64_t)INT64_MAX + 1) return false;
    *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
  } else {
    if (v > (uint64_t)INT64_MAX) return false;
    *out = (int64_t)v;
  }
  return true;
}

/* ---- secrets ------------------------------------------------------------------------------- */

void rcache__wipe(void *p, size_t n) {
  if (p && n) OPENSSL_cleanse(p, n); /* a memset the compiler may not drop */
}

void rcache__free_secret(char *s) {
  if (s) rcache__wipe(s, strlen(s));
  rcache__free(s);
}
