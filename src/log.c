/* SPDX-License-Identifier: BSD-3-Clause */
/* Logging and per-thread error details. Every text that can reach a user passes through
 * rcache__redact() (URL passwords) and rcache__mask() (the handle's password, whole or in
 * part): log lines, rcache_errmsg() and rcache_health.error. */
#include <stdio.h>
#include <string.h>

#include "handle.h"

/* The calling thread's detail for its current call, and the handle it belongs to once
 * the call has failed. Per thread, so concurrent calls never see each other's message. */
static _Thread_local struct {
  const rcache *owner; /* handle of the failed call; NULL for rcache_open */
  bool committed;      /* msg belongs to `owner` */
  bool pending;        /* a backend wrote a detail during the current call */
  rcache__err_fn lazy; /* the detail is written by lazy(lazy_ud) when asked for */
  void *lazy_ud;
  rcache_status cause; /* RCACHE_EAUTH / RCACHE_ETLS behind an unavailable cache, else OK */
  char msg[512];
} tl_err;

void rcache__err_clear(void) {
  tl_err.pending = false;
  tl_err.cause = RCACHE_OK;
}

void rcache__err_cause(rcache_status s) {
  tl_err.cause = s == RCACHE_EAUTH || s == RCACHE_ETLS ? s : RCACHE_OK;
}

rcache_status rcache__err_cause_get(void) {
  return tl_err.cause;
}

void rcache__errf(const char *fmt, ...) {
  char raw[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(raw, sizeof raw, fmt, ap);
  va_end(ap);
  rcache__redact(raw, tl_err.msg, sizeof tl_err.msg);
  tl_err.pending = true;
  tl_err.committed = false;
  tl_err.lazy = NULL;
}

void rcache__err_lazy(rcache__err_fn fn, void *ud) {
  tl_err.lazy = fn;
  tl_err.lazy_ud = ud;
  tl_err.pending = true;
  tl_err.committed = false;
}

/* Writes a lazy detail out (redacted) now. */
static void err_resolve(void) {
  if (!tl_err.lazy) return;
  char raw[512];
  tl_err.lazy(tl_err.lazy_ud, raw, sizeof raw);
  rcache__redact(raw, tl_err.msg, sizeof tl_err.msg);
  tl_err.lazy = NULL;
}

const char *rcache__err_peek(void) {
  if (!tl_err.pending) return "";
  err_resolve();
  return tl_err.msg;
}

void rcache__err_commit(const rcache *c, rcache_status s) {
  if (!tl_err.pending) {
    tl_err.lazy = NULL;
    snprintf(tl_err.msg, sizeof tl_err.msg, "%s", rcache_strerror(s));
  }
  tl_err.owner = c;
  tl_err.committed = true;
  tl_err.pending = false;
}

/* The masking rule (docs/operations.md, "Security"): every run of MASK_RUN or more
 * consecutive characters of text that also occurs in the secret becomes '*' (the whole
 * secret when it is shorter). A run, not only the whole secret, because servers truncate
 * what they echo (Redis cuts an echoed argument list at 128 characters) and so do our
 * buffers: a prefix or any middle part of a long password must not show either. Windows are
 * tested on the original text (positions are masked only once passed), so a run longer than
 * MASK_RUN is masked whole. O(len(text) * len(secret)): messages are short. */
#define MASK_RUN 4

static bool occurs_in(const char *secret, size_t sl, const char *w, size_t k) {
  for (size_t j = 0; j + k <= sl; j++)
    if (secret[j] == w[0] && memcmp(secret + j, w, k) == 0) return true;
  return false;
}

void rcache__mask(char *text, const char *secret) {
  if (!text || !secret || !*secret) return;
  size_t sl = strlen(secret), tl = strlen(text);
  size_t k = sl < MASK_RUN ? sl : MASK_RUN;
  size_t until = 0; /* text[i] with i < until is in a matching run */
  for (size_t i = 0; i < tl; i++) {
    if (i + k <= tl && occurs_in(secret, sl, text + i, k)) until = i + k;
    if (i < until) text[i] = '*';
  }
}

const char *rcache_errmsg(const rcache *c) {
  if (!tl_err.committed || tl_err.owner != c) return "";
  err_resolve();
  /* belt and braces, as for log lines: the handle's password never shows, however the
   * text reached the message (a server echoing a command, say) */
  if (c) rcache__mask(tl_err.msg, c->ctx.url.password);
  return tl_err.msg;
}

static void default_log(int level, const char *msg, void *ud) {
  (void)ud;
  static const char *names[] = {"error", "warning", "info", "debug"};
  fprintf(stderr, "rcache %s: %s\n", names[level < 0 ? 0 : level > 3 ? 3 : level], msg);
}

void rcache__log(const rcache__ctx *ctx, int level, const char *fmt, ...) {
  if (level > ctx->opt.log_level) return;
  /* rcache_close abandons the connects under way: "cache unavailable" then is no news */
  if (level == RCACHE_LOG_WARN && atomic_load(&ctx->closing)) return;
  char raw[1024], msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(raw, sizeof raw, fmt, ap);
  va_end(ap);
  rcache__redact(raw, msg, sizeof msg);
  /* Belt and braces: a password that reached the text some other way is masked too. */
  rcache__mask(msg, ctx->url.password);
  if (ctx->opt.log_fn) {
    ctx->opt.log_fn(level, msg, ctx->opt.log_ud);
  } else {
    default_log(level, msg, NULL);
  }
}
