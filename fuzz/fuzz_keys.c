/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzzes the key builder (<rcache/keys.h>) and the facade's key namespacing (prefix +
 * key, or its digest form with long_key_digest) with arbitrary parts.
 *
 * Input: byte 0 = buffer size for the truncation checks, byte 1 = max_len for the digest,
 * then the parts separated by NUL bytes (a part may hold any other byte, ':' included, so
 * the rejection rules get exercised).
 *
 * Checked: snprintf semantics (the measured length equals the written one; a short buffer
 * gets a NUL-terminated prefix), the join itself, -1 exactly for the documented invalid
 * inputs, the seed helpers' shapes, and the digest's shape (head + ":sha256:" + 64 hex,
 * exactly max_len bytes).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handle.h"
#include "rcache/keys.h"

#define MAX_PARTS 16

static void fail(const char *what, const char *got) {
  fprintf(stderr, "fuzz_keys: %s (got \"%s\")\n", what, got ? got : "(null)");
  abort();
}

static bool part_ok(const char *p) {
  return p && *p && !strchr(p, ':');
}

/* What rcache_key_build must produce: -1, or the join into want (malloc'd). */
static int expected_join(size_t n, const char *const *parts, char **want) {
  *want = NULL;
  if (n == 0) return -1;
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    if (!part_ok(parts[i])) return -1;
    len += strlen(parts[i]) + (i > 0);
  }
  char *w = malloc(len + 1);
  if (!w) return -2;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (i) w[o++] = ':';
    memcpy(w + o, parts[i], strlen(parts[i]));
    o += strlen(parts[i]);
  }
  w[o] = '\0';
  *want = w;
  return (int)len;
}

/* Calls a builder three ways (measure, short buffer, big buffer) and checks them against
 * want (NULL when the input is invalid). */
#define CHECK_BUILDER(want, small, call_with)                                                      \
  do {                                                                                             \
    int _n0 = call_with(NULL, 0);                                                                  \
    char _big[8192];                                                                               \
    memset(_big, 'Z', sizeof _big);                                                                \
    int _n1 = call_with(_big, sizeof _big);                                                        \
    if (!(want)) {                                                                                 \
      if (_n0 != -1 || _n1 != -1) fail("invalid input accepted", _big);                            \
      if (_big[0] != '\0') fail("invalid input left a non-empty buffer", _big);                    \
      break;                                                                                       \
    }                                                                                              \
    if (_n0 != (int)strlen(want) || _n1 != _n0) fail("measured length differs", _big);             \
    if ((size_t)_n1 < sizeof _big && strcmp(_big, (want)) != 0) fail("wrong key", _big);           \
    char _sm[256];                                                                                 \
    memset(_sm, 'Z', sizeof _sm);                                                                  \
    int _n2 = call_with(_sm, (small));                                                             \
    if (_n2 != _n0) fail("short buffer changed the length", _sm);                                  \
    if ((small) > 0) {                                                                             \
      size_t _k = (size_t)_n0 < (small)-1 ? (size_t)_n0 : (small)-1;                               \
      if (_sm[_k] != '\0' || strncmp(_sm, (want), _k) != 0) fail("bad truncation", _sm);           \
    }                                                                                              \
  } while (0)

static const char *const *g_parts;
static size_t g_n;
#define BUILD(b, s) rcache_key_build((b), (s), g_n, g_parts)

static const char *g_one, *g_two;
#define USER(b, s) rcache_key_user((b), (s), g_one)
#define CREDITS(b, s) rcache_key_user_credits((b), (s), g_one)
#define WF(b, s) rcache_key_workflow((b), (s), g_one)
#define WFDEF(b, s) rcache_key_workflow_definition((b), (s), g_one)
#define SESSION(b, s) rcache_key_session((b), (s), g_one)
#define RATE(b, s) rcache_key_rate_limit((b), (s), g_one, g_two)
#define FLAG(b, s) rcache_key_feature_flag((b), (s), g_one)
#define USERALL(b, s) rcache_key_user_all((b), (s), g_one)
#define RATEALL(b, s) rcache_key_rate_limit_all((b), (s), g_one)

static char *shape(const char *a, const char *id, const char *b) {
  if (!part_ok(id)) return NULL;
  size_t n = strlen(a) + strlen(id) + strlen(b) + 1;
  char *w = malloc(n);
  if (w) snprintf(w, n, "%s%s%s", a, id, b);
  return w;
}

static void check_helpers(size_t small) {
  char *w;
  w = shape("user:", g_one, "");
  CHECK_BUILDER(w, small, USER);
  free(w);
  w = shape("user:", g_one, ":credits");
  CHECK_BUILDER(w, small, CREDITS);
  free(w);
  w = shape("workflow:", g_one, "");
  CHECK_BUILDER(w, small, WF);
  free(w);
  w = shape("workflow:", g_one, ":definition");
  CHECK_BUILDER(w, small, WFDEF);
  free(w);
  w = shape("session:", g_one, "");
  CHECK_BUILDER(w, small, SESSION);
  free(w);
  w = shape("feature:", g_one, "");
  CHECK_BUILDER(w, small, FLAG);
  free(w);
  w = shape("user:", g_one, ":");
  CHECK_BUILDER(w, small, USERALL);
  free(w);
  w = shape("rate:", g_one, ":");
  CHECK_BUILDER(w, small, RATEALL);
  free(w);
  w = part_ok(g_two) ? shape("rate:", g_one, "") : NULL; /* "rate:<u>:<endpoint>" */
  if (w) {
    size_t l = strlen(w) + 1 + strlen(g_two) + 1;
    char *w2 = malloc(l);
    if (w2) snprintf(w2, l, "%s:%s", w, g_two);
    free(w);
    w = w2;
  }
  CHECK_BUILDER(w, small, RATE);
  free(w);
}

static bool is_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return true;
}

static void check_digest(const char *key, size_t max_len) {
  size_t kl = strlen(key);
  char out[8192];
  int n = rcache_key_digest(out, sizeof out, key, max_len);
  int m = rcache_key_digest(NULL, 0, key, max_len);
  if (n != m) fail("digest: measured length differs", out);
  if (kl == 0 || (kl > max_len && max_len < RCACHE_KEY_DIGEST_SUFFIX_LEN)) {
    if (n != -1) fail("digest: invalid input accepted", out);
    return;
  }
  if (kl <= max_len) {
    if (n != (int)kl || strcmp(out, key) != 0) fail("digest: a short key was changed", out);
    return;
  }
  size_t head = max_len - RCACHE_KEY_DIGEST_SUFFIX_LEN;
  if (n != (int)max_len || strlen(out) != max_len) fail("digest: wrong length", out);
  if (memcmp(out, key, head) != 0) fail("digest: head not kept", out);
  if (memcmp(out + head, ":sha256:", 8) != 0 || !is_hex(out + head + 8, 64))
    fail("digest: bad suffix", out);
}

/* The facade's namespacing: prefix + key, or prefix + digest form. */
static void check_stored(const char *prefix, const char *key, size_t max, bool digest) {
  rcache__ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.opt.max_key_bytes = max;
  ctx.opt.long_key_digest = digest;
  ctx.prefix = (char *)prefix;
  ctx.prefix_len = strlen(prefix);
  size_t kl = strlen(key), len = 0;
  rcache_status s = rcache__key_stored_len(&ctx, kl, &len);
  bool fits = ctx.prefix_len + kl <= max;
  bool can_digest = digest && max >= ctx.prefix_len + RCACHE_KEY_DIGEST_SUFFIX_LEN;
  if (!fits && !can_digest) {
    if (s != RCACHE_ETOOBIG) fail("stored_len: an oversized key was accepted", key);
    return;
  }
  if (s != RCACHE_OK || len > max) fail("stored_len: refused or too long", key);
  char *out = malloc(len + 1);
  if (!out) return;
  memset(out, 'Z', len + 1);
  if (rcache__key_write(&ctx, key, kl, out, len) != RCACHE_OK) fail("key_write failed", key);
  if (out[len] != '\0' || memcmp(out, prefix, ctx.prefix_len) != 0)
    fail("key_write: bad prefix", out);
  if (fits && strcmp(out + ctx.prefix_len, key) != 0) fail("key_write: key changed", out);
  if (!fits) {
    char want[8192];
    if (rcache_key_digest(want, sizeof want, key, max - ctx.prefix_len) !=
            (int)(len - ctx.prefix_len) ||
        strcmp(out + ctx.prefix_len, want) != 0)
      fail("key_write: not the rcache_key_digest() form", out);
  }
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2 || size > 4096) return 0;
  size_t small = data[0];
  size_t max_len = data[1] * 4u;
  char *text = rcache__memdup0(data + 2, size - 2);
  if (!text) return 0;
  size_t tl = size - 2;
  const char *parts[MAX_PARTS];
  size_t n = 0;
  for (size_t i = 0; i <= tl && n < MAX_PARTS;) { /* NUL-separated, empty parts kept */
    parts[n++] = text + i;
    i += strlen(text + i) + 1;
  }

  g_parts = parts;
  g_n = n;
  char *want = NULL;
  if (expected_join(n, parts, &want) == -2) goto out;
  CHECK_BUILDER(want, small, BUILD);
  free(want);
  if (rcache_key_build(NULL, 0, 0, parts) != -1) fail("zero parts accepted", "");

  g_one = parts[0];
  g_two = n > 1 ? parts[1] : "x";
  check_helpers(small);

  check_digest(parts[0], max_len);
  check_stored(n > 1 ? parts[1] : "", parts[0], max_len ? max_len : 1, data[1] & 1);
out:
  free(text);
  return 0;
}
