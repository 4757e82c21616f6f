/* SPDX-License-Identifier: BSD-3-Clause */
/* Small helpers shared by the library. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

char *rcache__memdup0(const void *p, size_t len) {
  char *d = malloc(len + 1);
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
