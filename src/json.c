/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * JSON helpers (<rcache/json.h>) on the public byte API: values are compact JSON text that
 * any other client can read and write. A stored value that is not JSON is an error for a
 * plain read (RCACHE_EDECODE) and a reason to reload for get_or_set.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "handle.h"
#include "rcache/json.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY)
#define LOAD_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL)

/* Compact text of v into out (malloc'd). EINVAL when jansson refuses to encode v (a
 * reference cycle), ENOMEM when an allocation failed: jansson returns NULL for both, and
 * only a failed malloc sets errno to ENOMEM. */
static rcache_status dump(const json_t *v, rcache_value *out) {
  *out = (rcache_value){NULL, 0};
  errno = 0;
  char *text = json_dumps(v, DUMP_FLAGS);
  if (!text && errno == ENOMEM) return RCACHE_ENOMEM;
  if (!text) {
    rcache__errf("JSON value could not be encoded (a reference cycle)");
    return RCACHE_EINVAL;
  }
  json_malloc_t jm;
  json_free_t jf;
  json_get_alloc_funcs(&jm, &jf);
  out->len = strlen(text); /* JSON text never holds a raw NUL: \u0000 is escaped */
  /* rcache frees values with rcache__free() (free() underneath): copy when the program
   * gave jansson allocators of its own */
  if (jf == free || jf == rcache__free) {
    out->data = text;
    return RCACHE_OK;
  }
  out->data = rcache__memdup0(text, out->len);
  jf(text);
  return out->data ? RCACHE_OK : RCACHE_ENOMEM;
}

/* ---- integers beyond int64 --------------------------------------------------------------------
 * JSON.stringify writes every number below 1e21 in integer form (1e20 is
 * "100000000000000000000"), and jansson refuses an integer outside int64 with "too big
 * integer". JSON_DECODE_INT_AS_REAL would read it, but turns EVERY integer of the document
 * into a double, so ids above 2^53 would lose digits. Instead, only when a parse fails with a
 * numeric overflow, the text is copied with ".0" after each integer literal outside int64 and
 * parsed again: those become reals (the double JSON.parse reads too), every other integer
 * stays an exact json_integer. The scan is a small lexer: it skips strings and copies every
 * other byte; jansson still validates the result. */

#define INT64_DIGITS 19 /* "9223372036854775807" */

/* Whether the integer literal s[0..n) ("-"? digits, no leading zero) lies outside int64. */
static bool int_overflows(const char *s, size_t n) {
  bool neg = s[0] == '-';
  const char *d = s + neg;
  size_t nd = n - neg;
  if (nd != INT64_DIGITS) return nd > INT64_DIGITS;
  return memcmp(d, neg ? "9223372036854775808" : "9223372036854775807", INT64_DIGITS) > 0;
}

/* Length of the number token at s[i..len): digits, '.', 'e', 'E', '+', '-' (jansson checks
 * its grammar). *is_int: it has only a sign and digits, without a leading zero. */
static size_t number_len(const char *s, size_t i, size_t len, bool *is_int) {
  size_t e = i;
  *is_int = true;
  while (e < len && (s[e] == '-' || s[e] == '+' || s[e] == '.' || s[e] == 'e' || s[e] == 'E' ||
                     (s[e] >= '0' && s[e] <= '9'))) {
    if (s[e] == '.' || s[e] == 'e' || s[e] == 'E' || s[e] == '+' || (s[e] == '-' && e > i))
      *is_int = false;
    e++;
  }
  size_t d = i + (s[i] == '-');
  if (d < e && s[d] == '0' && d + 1 < e) *is_int = false; /* "012": invalid, left as it is */
  return e - i;
}

/* Length of the string token at s[i] == '"' up to its closing quote (or the end). */
static size_t string_len(const char *s, size_t i, size_t len) {
  size_t e = i + 1;
  while (e < len && s[e] != '"')
    e += s[e] == '\\' ? 2 : 1;
  return (e < len ? e + 1 : len) - i;
}

/* Copies in[0..len) to out with ".0" after each integer literal outside int64, and returns
 * the length written; out == NULL only measures. */
static size_t widen_big_ints(const char *in, size_t len, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    size_t n = 1;
    bool is_int = false;
    if (in[i] == '"') {
      n = string_len(in, i, len);
    } else if (in[i] == '-' || (in[i] >= '0' && in[i] <= '9')) {
      n = number_len(in, i, len, &is_int);
    }
    if (out) memcpy(out + o, in + i, n);
    o += n;
    if (is_int && int_overflows(in + i, n)) {
      if (out) memcpy(out + o, ".0", 2);
      o += 2;
    }
    i += n;
  }
  return o;
}

/* Parses text[0..len) as one JSON text; on an integer outside int64, parses it again with
 * such integers as reals (see above). NULL with *err on failure. */
/* jansson's parse ran out of memory (it says so, or its malloc set errno). */
static json_t *loadb(const char *text, size_t len, json_error_t *err, rcache_status *s) {
  errno = 0;
  json_t *j = json_loadb(text, len, LOAD_FLAGS, err);
  if (!j && (json_error_code(err) == json_error_out_of_memory || errno == ENOMEM))
    *s = RCACHE_ENOMEM;
  return j;
}

static json_t *load_json(const char *text, size_t len, json_error_t *err, rcache_status *s) {
  *s = RCACHE_OK;
  json_t *j = loadb(text, len, err, s);
  if (j || *s != RCACHE_OK || json_error_code(err) != json_error_numeric_overflow) return j;
  size_t n = widen_big_ints(text, len, NULL);
  char *wide = rcache__malloc(n + 1);
  if (!wide) {
    *s = RCACHE_ENOMEM;
    return NULL;
  }
  widen_big_ints(text, len, wide);
  j = loadb(wide, n, err, s); /* a later error's column counts the ".0"s */
  rcache__free(wide);
  return j;
}

/* Parses v as one JSON text. EDECODE with jansson's reason when it is not, ENOMEM when
 * memory ran out. */
static rcache_status parse(const rcache_value *v, json_t **out) {
  json_error_t err;
  rcache_status s;
  *out = load_json(v->data ? v->data : "", v->len, &err, &s);
  if (*out || s != RCACHE_OK) return s;
  rcache__errf("invalid JSON at line %d, column %d: %s", err.line, err.column, err.text);
  return RCACHE_EDECODE;
}

rcache_status rcache_set_json(rcache *c, const char *key, const json_t *v, int64_t ttl_s) {
  rcache__err_clear();
  if (!c || !v) return rcache__einval(c, "handle or JSON value is NULL");
  rcache_value text;
  rcache_status s = dump(v, &text);
  if (s != RCACHE_OK) return rcache__done(c, s);
  s = rcache_set(c, key, text.data, text.len, ttl_s);
  rcache_value_free(&text);
  return s;
}

rcache_status rcache_get_json(rcache *c, const char *key, json_t **out) {
  rcache__err_clear();
  if (!out) return rcache__einval(c, "out is NULL");
  *out = NULL;
  rcache_value v;
  rcache_status s = rcache_get(c, key, &v);
  if (s != RCACHE_OK) return s;
  s = parse(&v, out);
  rcache_value_free(&v);
  return s == RCACHE_OK ? s : rcache__done(c, s);
}

/* rcache_get_or_set's loader: the user's loader gives a json_t, kept in `made` so that the
 * caller returns it as is instead of parsing the text it was just turned into. */
typedef struct {
  rcache_json_loader_fn load;
  void *ud;
  json_t *made;     /* the loaded value (our reference) */
  const char *text; /* its text, as handed to rcache */
} json_load;

static rcache_status json_loader(void *p, rcache_value *out) {
  json_load *a = p;
  json_t *j = a->load(a->ud);
  if (!j) {
    rcache__errf("JSON loader returned NULL");
    return RCACHE_ELOADER;
  }
  rcache_status s = dump(j, out);
  if (s != RCACHE_OK) {
    json_decref(j);
    return s;
  }
  json_decref(a->made); /* never twice in one call today; harmless if it were */
  a->made = j;
  a->text = out->data;
  return RCACHE_OK;
}

rcache_status rcache_get_or_set_json(rcache *c, const char *key, int64_t ttl_s,
                                     rcache_json_loader_fn load, void *ud, json_t **out) {
  rcache__err_clear();
  if (!out) return rcache__einval(c, "out is NULL");
  *out = NULL;
  if (!c || !load) return rcache__einval(c, "handle or load is NULL");
  json_load a = {load, ud, NULL, NULL};
  rcache_value v;
  rcache_status s = rcache_get_or_set(c, key, ttl_s, json_loader, &a, &v);
  if (s == RCACHE_OK && a.made && v.data == a.text) { /* our own load: no need to parse */
    *out = a.made;
    a.made = NULL;
  } else if (s == RCACHE_OK && (s = parse(&v, out)) == RCACHE_ENOMEM) {
    s = rcache__done(c, s); /* parse's own failure: counted here, once */
  }
  rcache_value_free(&v);
  json_decref(a.made);
  if (s != RCACHE_EDECODE) return s; /* OK, or rcache_get_or_set's own failure */
  /* Not JSON (another writer, a truncated value): load again and overwrite it. */
  rcache__log(&c->ctx, RCACHE_LOG_INFO, "get_or_set_json: invalid JSON at a key, reloading");
  a = (json_load){load, ud, NULL, NULL};
  COUNT(c, loads); /* a load like get_or_set's, counted the same way */
  s = json_loader(&a, &v);
  if (s != RCACHE_OK) {
    COUNT(c, load_errors);
    if (s == RCACHE_ENOMEM) return rcache__done(c, s); /* as rcache_get_or_set() */
    rcache__errf("loader failed with status %d (%s)", (int)s, rcache_strerror(s));
    return rcache__done(c, RCACHE_ELOADER);
  }
  s = rcache_set(c, key, v.data, v.len, ttl_s);
  rcache_value_free(&v);
  if (s == RCACHE_ENOMEM) { /* other failures: a dropped write, as in get_or_set */
    json_decref(a.made);
    return s;
  }
  *out = a.made;
  return RCACHE_OK;
}
