/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Key helpers (<rcache/keys.h>): pure string building with snprintf semantics, the
 * SHA-256 shortening of over-long keys (also used by the facade when long_key_digest is
 * set), and rcache_invalidate_user() on top of the public API.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "handle.h"
#include "rcache/keys.h"

/* ---- a bounded writer: counts everything, stores what fits ----------------------------------- */

typedef struct {
  char *buf;
  size_t size; /* 0: measure only */
  size_t n;    /* bytes the whole output needs so far */
} kout;

static void put(kout *o, const char *s, size_t len) {
  if (o->size > 0 && o->n < o->size - 1) {
    size_t room = o->size - 1 - o->n;
    memcpy(o->buf + o->n, s, len < room ? len : room);
  }
  o->n += len;
}

static int finish(kout *o) {
  if (o->size > 0) o->buf[o->n < o->size - 1 ? o->n : o->size - 1] = '\0';
  return o->n > INT_MAX ? -1 : (int)o->n;
}

/* -1 after putting "" into buf (when there is room for it). */
static int invalid(char *buf, size_t size) {
  if (buf && size > 0) buf[0] = '\0';
  return -1;
}

/* A part is one segment: non-NULL, non-empty, no ':'. */
static bool part_ok(const char *p) {
  return p && *p && !strchr(p, ':');
}

/* Joins parts with ':' (and a trailing ':' when `open`, for prefixes). */
static int join(char *buf, size_t size, size_t nparts, const char *const *parts, bool open) {
  if (!buf && size > 0) return -1;
  if (nparts == 0 || !parts) return invalid(buf, size);
  for (size_t i = 0; i < nparts; i++) {
    if (!part_ok(parts[i])) return invalid(buf, size);
  }
  kout o = {buf, size, 0};
  for (size_t i = 0; i < nparts; i++) {
    if (i > 0) put(&o, ":", 1);
    put(&o, parts[i], strlen(parts[i]));
  }
  if (open) put(&o, ":", 1);
  return finish(&o);
}

int rcache_key_build(char *buf, size_t size, size_t nparts, const char *const *parts) {
  return join(buf, size, nparts, parts, false);
}

#define KEY2(a, b) join(buf, size, 2, (const char *const[]){(a), (b)}, false)
#define KEY3(a, b, c) join(buf, size, 3, (const char *const[]){(a), (b), (c)}, false)

int rcache_key_user(char *buf, size_t size, const char *user_id) {
  return KEY2("user", user_id);
}

int rcache_key_user_credits(char *buf, size_t size, const char *user_id) {
  return KEY3("user", user_id, "credits");
}

int rcache_key_workflow(char *buf, size_t size, const char *workflow_id) {
  return KEY2("workflow", workflow_id);
}

int rcache_key_workflow_definition(char *buf, size_t size, const char *workflow_id) {
  return KEY3("workflow", workflow_id, "definition");
}

int rcache_key_session(char *buf, size_t size, const char *session_id) {
  return KEY2("session", session_id);
}

int rcache_key_rate_limit(char *buf, size_t size, const char *user_id, const char *endpoint) {
  return KEY3("rate", user_id, endpoint);
}

int rcache_key_feature_flag(char *buf, size_t size, const char *flag) {
  return KEY2("feature", flag);
}

int rcache_key_user_all(char *buf, size_t size, const char *user_id) {
  return join(buf, size, 2, (const char *const[]){"user", user_id}, true);
}

int rcache_key_rate_limit_all(char *buf, size_t size, const char *user_id) {
  return join(buf, size, 2, (const char *const[]){"rate", user_id}, true);
}

int rcache_key_all_workflows(char *buf, size_t size) {
  return join(buf, size, 1, (const char *const[]){"workflow"}, true);
}

/* ---- long keys ------------------------------------------------------------------------------- */

/* ":sha256:" + hex SHA-256 of key into suffix (RCACHE_KEY_DIGEST_SUFFIX_LEN + 1 bytes). */
static bool digest_suffix(const char *key, size_t kl, char *suffix) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (EVP_Digest(key, kl, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) return false;
  static const char hex[] = "0123456789abcdef";
  memcpy(suffix, ":sha256:", 8);
  for (unsigned i = 0; i < 32; i++) {
    suffix[8 + 2 * i] = hex[md[i] >> 4];
    suffix[9 + 2 * i] = hex[md[i] & 15];
  }
  suffix[RCACHE_KEY_DIGEST_SUFFIX_LEN] = '\0';
  return true;
}

/* Writes the shortened form of key (kl > max_len >= suffix length) into o. */
static bool put_digested(kout *o, const char *key, size_t kl, size_t max_len) {
  char suffix[RCACHE_KEY_DIGEST_SUFFIX_LEN + 1];
  if (!digest_suffix(key, kl, suffix)) return false;
  put(o, key, max_len - RCACHE_KEY_DIGEST_SUFFIX_LEN);
  put(o, suffix, RCACHE_KEY_DIGEST_SUFFIX_LEN);
  return true;
}

int rcache_key_digest(char *buf, size_t size, const char *key, size_t max_len) {
  if (!buf && size > 0) return -1;
  if (!key || !*key) return invalid(buf, size);
  size_t kl = strlen(key);
  kout o = {buf, size, 0};
  if (kl <= max_len) {
    put(&o, key, kl);
  } else if (max_len < RCACHE_KEY_DIGEST_SUFFIX_LEN || !put_digested(&o, key, kl, max_len)) {
    return invalid(buf, size);
  }
  return finish(&o);
}

/* The facade's side (handle.h): the stored length of a key of kl bytes, digested when
 * long_key_digest is set and the key does not fit. */
rcache_status rcache__key_stored_len(const rcache__ctx *ctx, size_t kl, size_t *len) {
  size_t max = ctx->opt.max_key_bytes;
  *len = ctx->prefix_len + kl;
  if (*len <= max) return RCACHE_OK;
  if (ctx->opt.long_key_digest && max >= ctx->prefix_len + RCACHE_KEY_DIGEST_SUFFIX_LEN) {
    *len = max;
    return RCACHE_OK;
  }
  rcache__errf("key of %zu bytes (with prefix) exceeds max_key_bytes %zu", *len, max);
  return RCACHE_ETOOBIG;
}

size_t rcache__key_kept(const rcache__ctx *ctx) {
  if (!ctx->opt.long_key_digest) return SIZE_MAX;
  size_t used = ctx->prefix_len + RCACHE_KEY_DIGEST_SUFFIX_LEN; /* put_digested's layout */
  return ctx->opt.max_key_bytes > used ? ctx->opt.max_key_bytes - used : 0;
}

rcache_status rcache__key_write(const rcache__ctx *ctx, const char *key, size_t kl, char *out,
                                size_t len) {
  kout o = {out, len + 1, 0};
  put(&o, ctx->prefix, ctx->prefix_len);
  if (ctx->prefix_len + kl <= len) {
    put(&o, key, kl);
  } else if (!put_digested(&o, key, kl, len - ctx->prefix_len)) {
    rcache__errf("SHA-256 of a long key failed");
    return RCACHE_ENOMEM;
  }
  finish(&o);
  return RCACHE_OK;
}

/* ---- invalidation ---------------------------------------------------------------------------- */

rcache_status rcache_invalidate_user(rcache *c, const char *user_id, uint64_t *deleted) {
  rcache__err_clear();
  if (deleted) *deleted = 0;
  if (!c) return rcache__einval(NULL, "handle is NULL");
  int n = rcache_key_user_all(NULL, 0, user_id);
  if (n < 0) return rcache__einval(c, "user_id is NULL, empty or contains ':'");
  char stack[128];
  char *key = (size_t)n < sizeof stack ? stack : rcache__malloc((size_t)n + 1);
  if (!key) return rcache__done(c, RCACHE_ENOMEM);
  rcache_key_user_all(key, (size_t)n + 1, user_id);
  uint64_t subs = 0;
  /* "user:<id>" is the prefix without its trailing ':' */
  key[n - 1] = '\0';
  rcache_status s = rcache_delete(c, key);
  uint64_t one = s == RCACHE_OK ? 1 : 0;
  if (s == RCACHE_OK || s == RCACHE_MISS) {
    key[n - 1] = ':';
    s = rcache_delete_prefix(c, key, &subs);
  }
  if (key != stack) rcache__free(key);
  if (deleted) *deleted = one + subs;
  /* a failure was already recorded for rcache_errmsg() by the call that failed */
  return s == RCACHE_MISS ? RCACHE_OK : s;
}
