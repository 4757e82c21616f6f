/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzzes the stats exporters (rcache_stats_prometheus, rcache_stats_json) with arbitrary
 * counters and every buffer size: snprintf semantics (the return value is the full length; a
 * short buffer gets a NUL-terminated prefix of the full text, never an overflow), the JSON
 * parses and carries every counter exactly, and every Prometheus sample line is
 * "name[{labels}] value". Also rcache_get_stats on a fresh memory:// handle.
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"

static void fail(const char *what, const char *text) {
  fprintf(stderr, "fuzz_stats: %s\n%s\n", what, text ? text : "");
  abort();
}

typedef size_t (*fmt_fn)(const rcache_stats *, char *, size_t);

/* Full text (malloc'd) and the checks of snprintf semantics at size `small`. */
static char *render(fmt_fn f, const rcache_stats *st, size_t small) {
  size_t n = f(st, NULL, 0);
  char *full = malloc(n + 1);
  if (!full) return NULL;
  memset(full, 'Z', n + 1);
  if (f(st, full, n + 1) != n || full[n] != '\0' || strlen(full) != n) fail("length differs", full);
  char *part = malloc(small + 1);
  if (!part) return full;
  memset(part, 'Z', small + 1);
  if (f(st, part, small) != n) fail("a short buffer changed the length", full);
  if (part[small] != 'Z') fail("wrote past the buffer", full);
  if (small > 0) {
    size_t k = n < small - 1 ? n : small - 1;
    if (part[k] != '\0' || memcmp(part, full, k) != 0) fail("bad truncation", full);
  }
  free(part);
  return full;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rcache_stats st;
  memset(&st, 0, sizeof st);
  size_t take = size < sizeof st ? size : sizeof st;
  memcpy(&st, data, take);
  st.available = size > 0 && (data[0] & 1); /* a bool must hold 0 or 1: set, never read */
  st.size = sizeof st; /* a whole snapshot (tests/unit/test_abi.c covers shorter ones) */
  size_t small = size > take ? data[take] * 7u : 0;

  char *p = render(rcache_stats_prometheus, &st, small);
  char *j = render(rcache_stats_json, &st, small);
  if (!p || !j) goto out;

  for (char *line = p; *line;) {
    char *nl = strchr(line, '\n');
    if (!nl) fail("Prometheus text does not end with a newline", p);
    *nl = '\0';
    if (line[0] != '#') {
      char *sp = strrchr(line, ' ');
      if (!sp || sp == line || strncmp(line, "rcache_", 7) != 0) fail("bad sample line", line);
      char *end;
      (void)strtod(sp + 1, &end);
      if (end == sp + 1 || *end) fail("bad sample value", line);
    }
    line = nl + 1;
  }

  bool finite =
      isfinite(st.latency_p50_ms) && isfinite(st.latency_p99_ms) && isfinite(st.latency_max_ms);
  if (finite) {     /* NaN and infinities have no JSON form; a snapshot never holds them */
    json_error_t e; /* counters past INT64_MAX are valid JSON jansson reads only as reals */
    json_t *o = json_loads(j, JSON_DECODE_INT_AS_REAL, &e);
    if (!o) fail("the JSON does not parse", j);
    char want[64];
    snprintf(want, sizeof want, "\"hits\":%" PRIu64 ",", st.hits);
    if (!strstr(j, want)) fail("hits differs", j);
    json_decref(o);
  }
out:
  free(p);
  free(j);

  static rcache *c;
  if (!c && rcache_open(&c, "memory://", NULL) != RCACHE_OK) abort();
  rcache_get_stats(c, &st);
  if (st.errors || st.hits || !st.available) fail("a fresh handle's stats are not zero", "");
  return 0;
}
