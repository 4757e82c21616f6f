/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzzes the decode paths of stored values: whatever bytes another client (or a bug) left at
 * a key, the typed readers must answer a status, never crash or leak. Runs on memory://
 * (the same facade and helpers as on Redis). For each input:
 *  - rcache_get_json: RCACHE_OK (then set_json + get_json must round-trip to an equal value)
 *    or RCACHE_EDECODE, nothing else;
 *  - rcache_get_or_set_json: always RCACHE_OK; a value that is not JSON is replaced by the
 *    loader's, valid JSON is returned as is;
 *  - rcache_get_str: RCACHE_EDECODE exactly when the bytes hold a NUL;
 *  - rcache_get_i64: RCACHE_OK exactly when Redis' INCR would accept the text;
 *  - rcache_get_double: OK / ETYPE / ERANGE, and a double written back reads the same.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "rcache/json.h"

static rcache *g_c;

static void fail(const char *what, rcache_status s) {
  fprintf(stderr, "fuzz_json: %s (status %d %s: %s)\n", what, (int)s, rcache_strerror(s),
          rcache_errmsg(g_c));
  abort();
}

static json_t *loader(void *ud) {
  (void)ud;
  return json_pack("{s:s}", "loaded", "yes");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) return 0;
  if (!g_c && rcache_open(&g_c, "memory://", NULL) != RCACHE_OK) abort();
  const char *key = "fuzz:v";
  rcache_status s = rcache_set(g_c, key, data, size, 0);
  /* a value starting with the tagged-value magic is refused, as documented (semantics.md) */
  bool magic = size >= 4 && memcmp(data, "\xffRC\x01", 4) == 0;
  if (magic && s == RCACHE_EINVAL) return 0;
  if (s != RCACHE_OK) fail("set", s);

  json_t *j = NULL;
  s = rcache_get_json(g_c, key, &j);
  if (s == RCACHE_OK) {
    if (!j) fail("get_json: OK without a value", s);
    /* written back compact, it must read back equal */
    if ((s = rcache_set_json(g_c, "fuzz:copy", j, 0)) != RCACHE_OK) fail("set_json", s);
    json_t *k = NULL;
    if ((s = rcache_get_json(g_c, "fuzz:copy", &k)) != RCACHE_OK)
      fail("get_json of our own text", s);
    if (!json_equal(j, k)) fail("JSON did not round-trip", s);
    json_decref(k);
  } else if (s != RCACHE_EDECODE || j) {
    fail("get_json: unexpected status", s);
  }

  json_t *g = NULL;
  s = rcache_get_or_set_json(g_c, key, 0, loader, NULL, &g);
  if (s != RCACHE_OK || !g) fail("get_or_set_json", s);
  if (j && !json_equal(j, g)) fail("get_or_set_json changed a valid value", s);
  if (!j && !json_object_get(g, "loaded")) fail("get_or_set_json kept an invalid value", s);
  json_decref(g);
  json_decref(j);

  (void)rcache_set(g_c, key, data, size, 0);
  char *str = NULL;
  s = rcache_get_str(g_c, key, &str);
  bool has_nul = memchr(data, 0, size) != NULL;
  if (has_nul ? s != RCACHE_EDECODE
              : (s != RCACHE_OK || strlen(str) != size || memcmp(str, data, size)))
    fail("get_str", s);
  free(str);

  int64_t i = 0, want = 0;
  s = rcache_get_i64(g_c, key, &i);
  bool ok = rcache__parse_i64((const char *)data, size, &want) && !has_nul;
  if (ok ? s != RCACHE_OK || i != want : s != RCACHE_ETYPE) fail("get_i64", s);

  double d = 0;
  s = rcache_get_double(g_c, key, &d);
  if (s == RCACHE_OK) {
    if (isnan(d)) fail("get_double returned NaN", s);
    double back = 0;
    if ((s = rcache_set_double(g_c, "fuzz:d", d, 0)) != RCACHE_OK) fail("set_double", s);
    if ((s = rcache_get_double(g_c, "fuzz:d", &back)) != RCACHE_OK)
      fail("get_double of our own text", s);
    if (memcmp(&back, &d, sizeof d) != 0) fail("double did not round-trip", s);
  } else if (s != RCACHE_ETYPE && s != RCACHE_ERANGE) {
    fail("get_double: unexpected status", s);
  }
  return 0;
}
