/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Typed helpers: strings, int64, double and user codecs, built only on the public byte API
 * (rcache_get / rcache_set / rcache_get_or_set) so that every backend, the key prefix, the
 * TTL policy and the fallback rules apply unchanged. Numbers are stored as the text other
 * Redis clients write: decimal integers INCR accepts, and shortest round-trip doubles.
 *
 * Errors: a failure of the inner public call is returned as it is (that call already left
 * its detail for rcache_errmsg()); failures found here go through rcache__done().
 */
#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handle.h"
#include "typed.h"

/* ---- text forms of numbers (pure) ------------------------------------------------------------ */

/* A "C" LC_NUMERIC locale, so that a program running under, say, de_DE never writes or
 * expects "0,1". uselocale() is per thread: no other thread is affected. */
static locale_t c_numeric;
static pthread_once_t c_numeric_once = PTHREAD_ONCE_INIT;

static void c_numeric_init(void) {
  c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

static locale_t enter_c_locale(void) {
  pthread_once(&c_numeric_once, c_numeric_init);
  return c_numeric ? uselocale(c_numeric) : (locale_t)0;
}

static void leave_c_locale(locale_t old) {
  if (old) uselocale(old);
}

size_t rcache__dtoa(double v, char buf[RCACHE__DTOA_MAX]) {
  if (isinf(v)) return (size_t)snprintf(buf, RCACHE__DTOA_MAX, "%s", v < 0 ? "-inf" : "inf");
  locale_t old = enter_c_locale();
  int n = 0;
  /* %.17g always reads back exactly; fewer digits give the text people expect ("0.1") */
  for (int prec = 15; prec <= 17; prec++) {
    n = snprintf(buf, RCACHE__DTOA_MAX, "%.*g", prec, v);
    double back = strtod(buf, NULL);
    if (memcmp(&back, &v, sizeof v) == 0) break;
  }
  leave_c_locale(old);
  return (size_t)n;
}

rcache_status rcache__strtod(const char *s, size_t len, double *out) {
  *out = 0;
  if (len == 0 || s[0] == ' ' || (s[0] >= '\t' && s[0] <= '\r')) return RCACHE_ETYPE;
  locale_t old = enter_c_locale();
  char *end;
  errno = 0;
  double d = strtod(s, &end);
  int e = errno;
  leave_c_locale(old);
  if (end != s + len || isnan(d)) return RCACHE_ETYPE; /* trailing bytes, embedded NUL, nan */
  if (e == ERANGE && isinf(d)) return RCACHE_ERANGE;   /* underflow keeps the nearest value */
  *out = d;
  return RCACHE_OK;
}

/* ---- strings --------------------------------------------------------------------------------- */

rcache_status rcache_set_str(rcache *c, const char *key, const char *s, int64_t ttl_s) {
  if (!s) {
    rcache__err_clear();
    return rcache__einval(c, "string is NULL");
  }
  return rcache_set(c, key, s, strlen(s), ttl_s);
}

rcache_status rcache_get_str(rcache *c, const char *key, char **out) {
  if (!out) {
    rcache__err_clear();
    return rcache__einval(c, "out is NULL");
  }
  *out = NULL;
  rcache_value v;
  rcache_status s = rcache_get(c, key, &v);
  if (s != RCACHE_OK) return s;
  const char *nul = v.len ? memchr(v.data, '\0', v.len) : NULL;
  if (nul) {
    rcache__errf("value has a NUL byte at offset %zu: read it with rcache_get()",
                 (size_t)(nul - v.data));
    rcache_value_free(&v);
    return rcache__done(c, RCACHE_EDECODE);
  }
  *out = v.data ? v.data : rcache__memdup0("", 0);
  return *out ? RCACHE_OK : rcache__done(c, RCACHE_ENOMEM);
}

/* ---- numbers --------------------------------------------------------------------------------- */

rcache_status rcache_set_i64(rcache *c, const char *key, int64_t v, int64_t ttl_s) {
  char buf[24];
  int n = snprintf(buf, sizeof buf, "%" PRId64, v);
  return rcache_set(c, key, buf, (size_t)n, ttl_s);
}

rcache_status rcache_get_i64(rcache *c, const char *key, int64_t *out) {
  if (!out) {
    rcache__err_clear();
    return rcache__einval(c, "out is NULL");
  }
  *out = 0;
  rcache_value v;
  rcache_status s = rcache_get(c, key, &v);
  if (s != RCACHE_OK) return s;
  int64_t n;
  bool ok = rcache__parse_i64(v.data, v.len, &n);
  size_t len = v.len;
  rcache_value_free(&v);
  if (!ok) {
    rcache__errf("value of %zu bytes is not a decimal int64 (as INCR reads it)", len);
    return rcache__done(c, RCACHE_ETYPE);
  }
  *out = n;
  return RCACHE_OK;
}

rcache_status rcache_set_double(rcache *c, const char *key, double v, int64_t ttl_s) {
  if (isnan(v)) {
    rcache__err_clear();
    return rcache__einval(c, "value is NaN");
  }
  char buf[RCACHE__DTOA_MAX];
  size_t n = rcache__dtoa(v, buf);
  return rcache_set(c, key, buf, n, ttl_s);
}

rcache_status rcache_get_double(rcache *c, const char *key, double *out) {
  if (!out) {
    rcache__err_clear();
    return rcache__einval(c, "out is NULL");
  }
  *out = 0;
  rcache_value v;
  rcache_status s = rcache_get(c, key, &v);
  if (s != RCACHE_OK) return s;
  s = v.data ? rcache__strtod(v.data, v.len, out) : RCACHE_ETYPE;
  size_t len = v.len;
  rcache_value_free(&v);
  if (s == RCACHE_OK) return s;
  if (s == RCACHE_ERANGE)
    rcache__errf("value of %zu bytes overflows a double", len);
  else
    rcache__errf("value of %zu bytes is not a decimal number", len);
  return rcache__done(c, s);
}

/* ---- user codecs ----------------------------------------------------------------------------- */

static bool codec_ok(const rcache_codec *codec) {
  return codec && codec->encode && codec->decode;
}

/* Runs the encoder; a non-error status other than OK is a broken encoder: EINVAL. */
static rcache_status encode(const rcache_codec *codec, const void *obj, rcache_value *out) {
  *out = (rcache_value){NULL, 0};
  rcache_status s = codec->encode(obj, out, codec->ud);
  if (s == RCACHE_OK && !out->data && out->len > 0) s = RCACHE_EINVAL;
  if (s != RCACHE_OK) {
    rcache_value_free(out);
    rcache__errf("codec encode failed with status %d (%s)", (int)s, rcache_strerror(s));
    return s < 0 ? s : RCACHE_EINVAL;
  }
  return RCACHE_OK;
}

rcache_status rcache_set_obj(rcache *c, const char *key, const rcache_codec *codec, const void *obj,
                             int64_t ttl_s) {
  rcache__err_clear();
  if (!c || !codec_ok(codec)) return rcache__einval(c, "handle or codec is NULL");
  rcache_value v;
  rcache_status s = encode(codec, obj, &v);
  if (s != RCACHE_OK) return rcache__done(c, s);
  s = rcache_set(c, key, v.data, v.len, ttl_s);
  rcache_value_free(&v);
  return s;
}

/* Runs the decoder on v: RCACHE_OK, ENOMEM, or EDECODE for any other failure. */
static rcache_status decode(const rcache_codec *codec, const rcache_value *v, void *obj) {
  rcache_status s = codec->decode(v->data ? v->data : "", v->len, obj, codec->ud);
  if (s == RCACHE_OK || s == RCACHE_ENOMEM) return s;
  rcache__errf("codec decode of %zu bytes failed with status %d (%s)", v->len, (int)s,
               rcache_strerror(s));
  return RCACHE_EDECODE;
}

rcache_status rcache_get_obj(rcache *c, const char *key, const rcache_codec *codec, void *obj) {
  rcache__err_clear();
  if (!c || !codec_ok(codec)) return rcache__einval(c, "handle or codec is NULL");
  rcache_value v;
  rcache_status s = rcache_get(c, key, &v);
  if (s != RCACHE_OK) return s;
  s = decode(codec, &v, obj);
  rcache_value_free(&v);
  return s == RCACHE_OK ? s : rcache__done(c, s);
}

/* rcache_get_or_set's loader: the user's loader fills obj, the codec encodes it. `made`
 * remembers the bytes handed over, so the caller can tell its own load from a value that
 * came from the cache (or another thread's load) and must be decoded. */
typedef struct {
  const rcache_codec *codec;
  rcache_obj_loader_fn load;
  void *ud;
  void *obj;
  const char *made;
} obj_load;

static rcache_status obj_loader(void *p, rcache_value *out) {
  obj_load *a = p;
  rcache_status s = a->load(a->ud, a->obj);
  if (s != RCACHE_OK) return s;
  if ((s = encode(a->codec, a->obj, out)) != RCACHE_OK) return s;
  if (!out->data && !(out->data = rcache__memdup0("", 0))) return RCACHE_ENOMEM;
  a->made = out->data;
  return RCACHE_OK;
}

rcache_status rcache_get_or_set_obj(rcache *c, const char *key, int64_t ttl_s,
                                    const rcache_codec *codec, rcache_obj_loader_fn load, void *ud,
                                    void *obj) {
  rcache__err_clear();
  if (!c || !codec_ok(codec) || !load) return rcache__einval(c, "handle, codec or load is NULL");
  obj_load a = {codec, load, ud, obj, NULL};
  rcache_value v;
  rcache_status s = rcache_get_or_set(c, key, ttl_s, obj_loader, &a, &v);
  if (s != RCACHE_OK) return s;
  bool ours = a.made && v.data == a.made; /* obj already holds what was stored */
  s = ours ? RCACHE_OK : decode(codec, &v, obj);
  rcache_value_free(&v);
  if (s != RCACHE_EDECODE) return s == RCACHE_OK ? s : rcache__done(c, s);
  /* The cached bytes are not a valid encoding (another writer, an old format): load again
   * and overwrite them. A dropped write is fine, as in rcache_get_or_set. */
  rcache__log(&c->ctx, RCACHE_LOG_INFO, "get_or_set_obj: undecodable value at a key, reloading");
  a.made = NULL;
  COUNT(c, loads); /* a load like get_or_set's, counted the same way */
  s = obj_loader(&a, &v);
  if (s != RCACHE_OK) {
    COUNT(c, load_errors);
    rcache_value_free(&v);
    if (s == RCACHE_ENOMEM) return rcache__done(c, s); /* as rcache_get_or_set() */
    rcache__errf("loader failed with status %d (%s)", (int)s, rcache_strerror(s));
    return rcache__done(c, RCACHE_ELOADER);
  }
  s = rcache_set(c, key, v.data, v.len, ttl_s);
  rcache_value_free(&v);
  return s == RCACHE_ENOMEM ? s : RCACHE_OK; /* other failures: a dropped write */
}
