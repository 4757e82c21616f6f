/* SPDX-License-Identifier: BSD-3-Clause */
/* Small helpers shared by the library. */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "internal.h"

/* ---- the one allocator indirection ----------------------------------------------------------- */

/*
 * Failure injection for tests (SQLite's and jansson's way of testing allocation failure).
 * The countdown is per thread: a test arms it in the thread that makes the public calls,
 * so the Nth allocation of a flow is the same one on every run, whatever the background
 * threads (prober, near-cache listener, sweeper) allocate meanwhile. Those threads are
 * reached by rcache__alloc_fail_all(), which fails every allocation of every thread.
 * Until a test arms anything, an allocation costs a thread-local increment (the count tests
 * read) and one relaxed load more than malloc.
 */
static _Atomic bool testing;  /* some test armed a failure: look at the per-thread state */
static _Atomic bool fail_all; /* every allocation of every thread fails */
static _Thread_local struct {
  bool armed, sticky, hit;
  int64_t countdown;
  uint64_t calls;
} tl_fail;

static bool inject_failure(void) {
  tl_fail.calls++;
  if (!atomic_load_explicit(&testing, memory_order_relaxed)) return false;
  bool fail = atomic_load_explicit(&fail_all, memory_order_relaxed);
  if (tl_fail.armed && tl_fail.countdown-- <= 0) {
    fail = tl_fail.hit = true;
    tl_fail.armed = tl_fail.sticky; /* once: only this one */
  }
  if (fail) errno = ENOMEM; /* as malloc does: json.c tells jansson's OOM from its errors so */
  return fail;
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

void *rcache__aligned_alloc(size_t align, size_t n) {
  return inject_failure() ? NULL : aligned_alloc(align, n);
}

void rcache__free(void *p) {
  free(p);
}

void rcache__alloc_fail_after(int64_t n, bool once) {
  atomic_store(&testing, true);
  tl_fail.countdown = n;
  tl_fail.sticky = !once;
  tl_fail.hit = false;
  tl_fail.armed = n >= 0;
}

bool rcache__alloc_fail_hit(void) {
  return tl_fail.hit;
}

void rcache__alloc_fail_all(bool on) {
  atomic_store(&testing, true);
  atomic_store(&fail_all, on);
}

uint64_t rcache__alloc_calls(void) {
  return tl_fail.calls;
}

static char *strdup_routed(const char *s) {
  return rcache__strdup(s);
}

/* Memory from these and from libc's malloc is interchangeable (the indirection allocates
 * with malloc underneath), so blocks the libraries allocated before the switch may be
 * freed after it, and values taken over from them (hiredis' reply strings, jansson's
 * text) are freed with rcache__free either way. */
void rcache__alloc_route_deps(void) {
  atomic_store(&testing, true);
  json_set_alloc_funcs(rcache__malloc, rcache__free);
#if HIREDIS_MAJOR >= 1 /* hiredisSetAllocators() came with hiredis 1.0 */
  hiredisAllocFuncs fns = {.mallocFn = rcache__malloc,
                           .callocFn = rcache__calloc,
                           .reallocFn = rcache__realloc,
                           .strdupFn = strdup_routed,
                           .freeFn = rcache__free};
  (void)hiredisSetAllocators(&fns);
#else
  (void)strdup_routed; /* hiredis 0.14 has no allocator hook: its allocations stay libc's */
#endif
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

bool rcache__version_of(const char *s, size_t len, int64_t *ver) {
  *ver = 0;
  if (!s) return true;
  if (rcache__parse_i64(s, len, ver) && *ver != 0) return true;
  *ver = 0;
  return false;
}

/* ---- secrets ------------------------------------------------------------------------------- */

void rcache__wipe(void *p, size_t n) {
  if (p && n) OPENSSL_cleanse(p, n); /* a memset the compiler may not drop */
}

/* noinline: its frame lies below the caller's, over what the caller's callees left there */
__attribute__((noinline)) void rcache__wipe_stack(void) {
  unsigned char pad[64 << 10];
  rcache__wipe(pad, sizeof pad);
}

void rcache__free_secret(char *s) {
  if (s) rcache__wipe(s, strlen(s));
  rcache__free(s);
}
