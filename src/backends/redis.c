/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The Redis topologies' shared core (redis.h): their set-up and first contact, the
 * single-key operations written once against a topology's `exec`, and the node-level and
 * one-server helpers the topologies' ops tables are made of. Every byte goes through the
 * engine (exchange.h). The topologies: standalone.c, cluster.c, sentinel.c (topology.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/redis.h"
#include "tags.h"

/* ---- set-up ---------------------------------------------------------------------------------- */

rcache_status rcache__redis_init(rcache__redis *r, rcache__ctx *ctx) {
  r->base.ctx = ctx;
  pthread_mutex_init(&r->first_mu, NULL);
  rcache__cond_init_mono(&r->first_cv);
  if (ctx->url.tls) {
    rcache_status s = rcache__tls_ctx_new(ctx, &r->tls);
    if (s != RCACHE_OK) return s;
    if (ctx->opt.tls_insecure)
      rcache__log(ctx, RCACHE_LOG_WARN,
                  "TLS certificate verification is OFF (tls_insecure): anyone on the path "
                  "can impersonate the server (%s)",
                  ctx->url.redacted ? ctx->url.redacted : "");
  }
  r->setup.ctx = ctx;
  r->setup.tls = r->tls;
  r->setup.user = ctx->url.user;
  r->setup.password = ctx->url.password;
  r->setup.db = ctx->url.db;
  return RCACHE_OK;
}

void rcache__redis_fini(rcache__redis *r) {
  rcache__redis_first_contact_join(r);
  if (r->tls) rcache__tls_ctx_free(r->tls);
  r->tls = NULL;
  pthread_cond_destroy(&r->first_cv);
  pthread_mutex_destroy(&r->first_mu);
}

/* ---- the first contact ----------------------------------------------------------------------- */

static void first_over(rcache__redis *r) {
  pthread_mutex_lock(&r->first_mu);
  atomic_store_explicit(&r->base.ctx->first_going, false, memory_order_release);
  pthread_cond_broadcast(&r->first_cv);
  pthread_mutex_unlock(&r->first_mu);
}

static void *first_main(void *arg) {
  rcache__redis *r = arg;
  rcache__exchange_first_contact();
  rcache__io_abort_on(&r->base.ctx->closing);
  r->first_fn(r);
  rcache__err_clear();
  rcache__wipe_stack();
  first_over(r);
  return NULL;
}

void rcache__redis_first_contact(rcache__redis *r, void (*fn)(rcache__redis *r)) {
  r->first_fn = fn;
  if (!r->base.ctx->opt.strict_config) {
    atomic_store(&r->base.ctx->first_going, true);
    if (rcache__bg_run(first_main, r, &r->first_thread) == 0) {
      r->has_first = true; /* rcache_close waits for first_going, then for the thread */
      return;
    }
  }
  fn(r); /* calls cannot come before open returns: nobody waits */
  rcache__err_clear();
  first_over(r);
}

void rcache__redis_await_first(rcache__backend *be, int64_t deadline_us) {
  rcache__redis *r = (rcache__redis *)be; /* every Redis backend starts with one */
  struct timespec ts;
  rcache__deadline_ts(&ts, deadline_us);
  pthread_mutex_lock(&r->first_mu);
  while (atomic_load(&r->base.ctx->first_going) &&
         rcache__cond_timedwait(&r->first_cv, &r->first_mu, &ts) != ETIMEDOUT) {
  }
  pthread_mutex_unlock(&r->first_mu);
}

void rcache__redis_first_contact_wait(rcache__redis *r) {
  pthread_mutex_lock(&r->first_mu);
  while (atomic_load(&r->base.ctx->first_going))
    rcache__cond_wait(&r->first_cv, &r->first_mu);
  pthread_mutex_unlock(&r->first_mu);
}

void rcache__redis_first_contact_join(rcache__redis *r) {
  if (!r->has_first) return;
  rcache__redis_first_contact_wait(r); /* its last touch of r is first_over */
  rcache__bg_wait(&r->first_thread);
  r->has_first = false;
}

void rcache__redis_first_contact_after_fork(rcache__redis *r) {
  pthread_mutex_init(&r->first_mu, NULL);
  rcache__cond_init_mono(&r->first_cv);
  atomic_store(&r->first_thread, 0); /* the parent's */
  r->has_first = false;
  /* what it did not finish, the first calls and the prober do */
  atomic_store(&r->base.ctx->first_going, false);
}

rcache_status rcache__redis_probe(void *ud, rcache__pool *p) {
  const rcache__ctx *ctx = ud;
  const _Atomic bool *prev = rcache__io_abort_on(&ctx->closing);
  rcache_status s = rcache__pool_ping(p);
  rcache__io_abort_on(prev);
  rcache__wipe_stack(); /* the prober thread lives on */
  return s;
}

/* A backend of any Redis topology is an rcache__redis (its first member). */
#define R(b) ((rcache__redis *)(b))

/* ---- single-key operations ------------------------------------------------------------------- */

/* A GET's reply into *out (hiredis' buffer is taken): RCACHE_OK, RCACHE_MISS or the error. */
rcache_status rcache__redis_take_value(redisReply *v, rcache_value *out) {
  if (v->type == REDIS_REPLY_NIL) return RCACHE_MISS;
  if (v->type == REDIS_REPLY_STRING) {
    out->data = v->str; /* hiredis' buffer is malloc'd and NUL-terminated: take it */
    out->len = v->len;
    v->str = NULL;
    return RCACHE_OK;
  }
  if (v->type == REDIS_REPLY_ERROR) return rcache__reply_status(v);
  return rcache__reply_unexpected(v);
}

/* A PTTL's reply t read with a value of status s. */
static void take_pttl(const redisReply *t, rcache_status s, int64_t *pttl_ms) {
  *pttl_ms = -2;
  if (t->type == REDIS_REPLY_INTEGER) *pttl_ms = t->integer;
  if (s == RCACHE_OK && *pttl_ms == -2) *pttl_ms = -1; /* expired in between: keep it */
}

rcache_status rcache__redis_get_cmds(rcache__cmds *b, const char *key, size_t klen, bool pttl) {
  const char *argv[2] = {"GET", key};
  size_t lens[2] = {3, klen};
  rcache_status s = rcache__cmds_add(b, 2, argv, lens);
  rcache__cmds_expect(b, RCACHE__R_STR | RCACHE__R_NIL);
  if (s == RCACHE_OK && pttl) {
    argv[0] = "PTTL";
    lens[0] = 4;
    s = rcache__cmds_add(b, 2, argv, lens);
    rcache__cmds_expect(b, RCACHE__R_INT);
  }
  return s;
}

/* rcache__redis_get_cmds' replies, from rep[0] (and rep[1] when pttl_ms is not NULL): the value
 * into *out (hiredis' buffer is taken), RCACHE_OK, RCACHE_MISS or the error. */
static rcache_status read_get(redisReply **rep, rcache_value *out, int64_t *pttl_ms) {
  rcache_status s = rcache__redis_take_value(rep[0], out);
  if (pttl_ms) take_pttl(rep[1], s, pttl_ms);
  return s;
}

rcache_status rcache__redis_get(rcache__backend *be, const char *key, size_t klen,
                                rcache_value *out, int64_t *pttl_ms) {
  rcache__cmds b = {0};
  rcache_status s = rcache__redis_get_cmds(&b, key, klen, pttl_ms != NULL);
  redisReply *rep[2] = {0};
  if (s == RCACHE_OK) s = R(be)->exec(R(be), key, klen, &b, rep, true);
  int n = b.n;
  rcache__cmds_free(&b);
  if (s != RCACHE_OK) return s;
  s = read_get(rep, out, pttl_ms);
  rcache__replies_free(rep, n);
  return s;
}

/* ---- tagged reads in one round trip (tags.c has the script) ------------------------------ */

/* One run of the tagged-read script on key's server: by its SHA1, or (eval) by its text. */
static rcache_status run_script(rcache__backend *be, const char *key, size_t klen, bool eval,
                                bool pttl, redisReply **rep) {
  const char *text, *sha;
  rcache__tags_script(&text, &sha);
  const rcache__ctx *ctx = be->ctx;
  /* the clear key is declared (KEYS[2]): a cluster node importing the slot answers TRYAGAIN
   * while it lacks it, instead of reading it as absent (never cleared) */
  size_t cl = ctx->prefix_len + sizeof RCACHE__CLEAR_KEY - 1;
  char stack[256], *clear = cl < sizeof stack ? stack : rcache__malloc(cl + 1);
  if (!clear) return RCACHE_ENOMEM;
  memcpy(clear, ctx->prefix, ctx->prefix_len);
  memcpy(clear + ctx->prefix_len, RCACHE__CLEAR_KEY, sizeof RCACHE__CLEAR_KEY - 1);
  const char *argv[7] = {eval ? "EVAL" : "EVALSHA", eval ? text : sha, "2", key, clear, ctx->prefix,
                         pttl ? "1" : "0"};
  size_t lens[7] = {eval ? 4 : 7, strlen(argv[1]), 1, klen, cl, ctx->prefix_len, 1};
  rcache__cmds b = {0};
  rcache_status s = rcache__cmds_add(&b, 7, argv, lens);
  if (clear != stack) rcache__free(clear);
  rcache__cmds_expect(&b, RCACHE__R_ARR);
  b.values = 2; /* the value, and up to 33 small versions */
  if (s == RCACHE_OK) s = R(be)->exec(R(be), key, klen, &b, rep, true);
  rcache__cmds_free(&b);
  return s;
}

void rcache__redis_take_versions(redisReply **e, size_t n, rcache__versions *vers) {
  vers->n = n;
  vers->bad = 0;
  for (size_t i = 0; i < n; i++) {
    bool ok = e[i]->type == REDIS_REPLY_NIL || e[i]->type == REDIS_REPLY_STRING;
    ok = ok && rcache__version_of(e[i]->type == REDIS_REPLY_NIL ? NULL : e[i]->str, e[i]->len,
                                  &vers->v[i]);
    if (!ok) vers->bad |= (uint64_t)1 << i;
  }
}

/* The script's reply: [value or nil, PTTL or nil, the versions (nil when absent)...]. */
static rcache_status script_reply(redisReply *x, rcache_value *out, int64_t *pttl_ms,
                                  rcache__versions *vers) {
  if (x->type != REDIS_REPLY_ARRAY || x->elements < 2 || x->elements > 2 + RCACHE__VERSIONS_MAX)
    return rcache__reply_unexpected(x);
  rcache_status s = read_get(x->element, out, pttl_ms);
  if (s == RCACHE_OK) rcache__redis_take_versions(x->element + 2, x->elements - 2, vers);
  return s;
}

/* GET key [PTTL key] MGET vkeys..., in one exchange. */
static rcache_status get_with_mget(rcache__backend *be, const char *key, size_t klen,
                                   rcache_value *out, int64_t *pttl_ms, const char *const *vkeys,
                                   const size_t *vlens, size_t nv, rcache__versions *vers) {
  const char *argv[RCACHE__VERSIONS_MAX + 1] = {"MGET"};
  size_t lens[RCACHE__VERSIONS_MAX + 1] = {4};
  rcache__cmds b = {0};
  rcache_status s = rcache__redis_get_cmds(&b, key, klen, pttl_ms != NULL);
  memcpy(argv + 1, vkeys, nv * sizeof *argv);
  memcpy(lens + 1, vlens, nv * sizeof *lens);
  if (nv == 1) { /* the clear key alone: a GET, which costs the server less than an MGET */
    argv[0] = "GET";
    lens[0] = 3;
  }
  if (s == RCACHE_OK) s = rcache__cmds_add(&b, (int)nv + 1, argv, lens);
  rcache__cmds_expect(&b, nv == 1 ? RCACHE__R_STR | RCACHE__R_NIL : RCACHE__R_ARR);
  b.values = 2; /* the value, and small versions */
  redisReply *rep[3] = {0};
  if (s == RCACHE_OK) s = R(be)->exec(R(be), key, klen, &b, rep, true);
  int n = b.n;
  rcache__cmds_free(&b);
  if (s != RCACHE_OK) return s;
  s = read_get(rep, out, pttl_ms);
  redisReply *m = rep[n - 1]; /* an error (an ACL without MGET...): the value alone */
  if (s == RCACHE_OK && m->type == REDIS_REPLY_ARRAY && m->elements == nv)
    rcache__redis_take_versions(m->element, nv, vers);
  else if (s == RCACHE_OK && nv == 1 && m->type != REDIS_REPLY_ERROR)
    rcache__redis_take_versions(&m, 1, vers);
  rcache__replies_free(rep, n);
  return s;
}

static bool error_starts(const redisReply *x, const char *what) {
  return x->type == REDIS_REPLY_ERROR && x->str && strncmp(x->str, what, strlen(what)) == 0;
}

/* The value and its version keys in other slots (a cluster): one get_many, which asks each
 * master its share at once (one round trip of wall time). The versions when every one was
 * read (else vers->n stays 0: they are read after). */
static rcache_status get_apart(rcache__backend *be, const char *key, size_t klen, rcache_value *out,
                               const char *const *vkeys, const size_t *vlens, size_t nv,
                               rcache__versions *vers) {
  const char *k[RCACHE__VERSIONS_MAX + 1] = {key};
  size_t l[RCACHE__VERSIONS_MAX + 1] = {klen};
  rcache_value v[RCACHE__VERSIONS_MAX + 1] = {{0}};
  rcache_status st[RCACHE__VERSIONS_MAX + 1];
  memcpy(k + 1, vkeys, nv * sizeof *k);
  memcpy(l + 1, vlens, nv * sizeof *l);
  rcache_status s = be->ops->get_many(be, k, l, nv + 1, v, st);
  if (s == RCACHE_OK) s = st[0];
  if (s == RCACHE_OK) *out = v[0];
  bool all = s == RCACHE_OK;
  for (size_t i = 1; i <= nv; i++)
    all &= st[i] == RCACHE_OK || st[i] == RCACHE_MISS;
  vers->bad = 0;
  for (size_t i = 0; all && i < nv; i++)
    if (!rcache__version_of(st[i + 1] == RCACHE_OK ? v[i + 1].data : NULL, v[i + 1].len,
                            &vers->v[i]))
      vers->bad |= (uint64_t)1 << i;
  if (all) vers->n = nv;
  for (size_t i = s == RCACHE_OK ? 1 : 0; i <= nv; i++) /* v[0] is *out's when OK */
    rcache_value_free(&v[i]);
  return s;
}

rcache_status rcache__redis_get_tagged(rcache__backend *be, const char *key, size_t klen,
                                       rcache_value *out, int64_t *pttl_ms,
                                       const char *const *vkeys, const size_t *vlens, size_t nv,
                                       rcache__versions *vers) {
  rcache__redis *r = R(be);
  vers->n = 0;
  if (r->vers_apart && nv > 0 && nv <= RCACHE__VERSIONS_MAX && !pttl_ms)
    return get_apart(be, key, klen, out, vkeys, vlens, nv, vers);
  if (r->vers_apart || nv > RCACHE__VERSIONS_MAX ||
      (nv == 0 && atomic_load_explicit(&r->script_off, memory_order_relaxed)))
    return rcache__redis_get(be, key, klen, out, pttl_ms);
  if (nv > 0) return get_with_mget(be, key, klen, out, pttl_ms, vkeys, vlens, nv, vers);
  redisReply *rep = NULL;
  rcache_status s = run_script(be, key, klen, false, pttl_ms != NULL, &rep);
  if (s == RCACHE_OK && error_starts(rep, "NOSCRIPT")) { /* new server, restart, SCRIPT FLUSH */
    freeReplyObject(rep);
    rep = NULL;
    s = run_script(be, key, klen, true, pttl_ms != NULL, &rep);
  }
  if (s != RCACHE_OK) return s;
  if (rep->type == REDIS_REPLY_ERROR) {
    /* NOPERM (an ACL user without +evalsha +eval) or no such command (scripting renamed
     * away): from now on two round trips. Anything else (a key of another type, a slot
     * migrating under a cluster's script) concerns this read only: GET answers it. */
    const char *e = rep->str ? rep->str : "";
    if ((error_starts(rep, "NOPERM") || strstr(e, "unknown command")) &&
        !atomic_exchange(&r->script_off, true))
      rcache__log(be->ctx, RCACHE_LOG_INFO,
                  "tagged reads take two round trips from now on: the server refused their "
                  "script (%.200s)",
                  e);
    freeReplyObject(rep);
    return rcache__redis_get(be, key, klen, out, pttl_ms);
  }
  s = script_reply(rep, out, pttl_ms, vers);
  freeReplyObject(rep);
  return s;
}

rcache_status rcache__redis_set_cmds(rcache__cmds *b, const char *key, size_t klen,
                                     const void *data, size_t len, int64_t ttl_ms, int flags) {
  const char *argv[6] = {"SET", key, data};
  size_t lens[6] = {3, klen, len};
  int argc = 3;
  char ms[24];
  if (ttl_ms > 0) {
    snprintf(ms, sizeof ms, "%" PRId64, ttl_ms);
    argv[argc] = "PX";
    lens[argc++] = 2;
    argv[argc] = ms;
    lens[argc++] = strlen(ms);
  }
  if (flags & RCACHE__SET_NX) {
    argv[argc] = "NX";
    lens[argc++] = 2;
  }
  rcache_status s = rcache__cmds_add(b, argc, argv, lens);
  rcache__cmds_expect(b, RCACHE__R_OK | RCACHE__R_NIL);
  return s;
}

rcache_status rcache__redis_set_reply(const redisReply *rep) {
  if (rep->type == REDIS_REPLY_STATUS) return RCACHE_OK;
  if (rep->type == REDIS_REPLY_NIL) return RCACHE_MISS; /* NX and the key existed */
  if (rep->type == REDIS_REPLY_ERROR) return rcache__reply_status(rep);
  return rcache__reply_unexpected(rep);
}

rcache_status rcache__redis_set(rcache__backend *be, const char *key, size_t klen, const void *data,
                                size_t len, int64_t ttl_ms, int flags) {
  rcache__cmds b = {0};
  redisReply *rep = NULL;
  rcache_status s = rcache__redis_set_cmds(&b, key, klen, data, len, ttl_ms, flags);
  /* a SET NX run twice would answer "exists" for the key the first created (a lease lost to
   * itself); a plain SET answers the same */
  if (s == RCACHE_OK) s = R(be)->exec(R(be), key, klen, &b, &rep, !(flags & RCACHE__SET_NX));
  rcache__cmds_free(&b);
  if (s != RCACHE_OK) return s;
  s = rcache__redis_set_reply(rep);
  freeReplyObject(rep);
  return s;
}

rcache_status rcache__redis_take_int(const redisReply *rep, long long *out) {
  if (rep->type == REDIS_REPLY_INTEGER) {
    *out = rep->integer;
    return RCACHE_OK;
  }
  if (rep->type == REDIS_REPLY_ERROR) return rcache__reply_status(rep);
  return rcache__reply_unexpected(rep);
}

rcache_status rcache__redis_key_cmds(rcache__cmds *b, const char *cmd, const char *key,
                                     size_t klen) {
  const char *argv[2] = {cmd, key};
  size_t lens[2] = {strlen(cmd), klen};
  rcache_status s = rcache__cmds_add(b, 2, argv, lens);
  rcache__cmds_expect(b, RCACHE__R_INT);
  return s;
}

/* One command with one key and an integer reply; the reply is the caller's. idempotent: a
 * second run would answer as the first (exchange.h: it may run again after a failure). */
static rcache_status key_cmd(rcache__backend *be, const char *cmd, const char *key, size_t klen,
                             redisReply **rep, bool idempotent) {
  rcache__cmds b = {0};
  rcache_status s = rcache__redis_key_cmds(&b, cmd, key, klen);
  if (s == RCACHE_OK) s = R(be)->exec(R(be), key, klen, &b, rep, idempotent);
  rcache__cmds_free(&b);
  return s;
}

static rcache_status int_cmd(rcache__backend *be, const char *cmd, const char *key, size_t klen,
                             long long *out) {
  redisReply *rep = NULL;
  rcache_status s = key_cmd(be, cmd, key, klen, &rep, true); /* (read-only: PTTL) */
  if (s != RCACHE_OK) return s;
  s = rcache__redis_take_int(rep, out);
  freeReplyObject(rep);
  return s;
}

rcache_status rcache__redis_del_reply(const redisReply *rep) {
  long long n = 0;
  rcache_status s = rcache__redis_take_int(rep, &n);
  return s == RCACHE_OK && n == 0 ? RCACHE_MISS : s;
}

rcache_status rcache__redis_del(rcache__backend *be, const char *key, size_t klen) {
  redisReply *rep = NULL;
  /* not run twice: a second UNLINK would answer "absent" for the key the first deleted */
  rcache_status s = key_cmd(be, "UNLINK", key, klen, &rep, false);
  if (s != RCACHE_OK) return s;
  s = rcache__redis_del_reply(rep);
  freeReplyObject(rep);
  return s;
}

rcache_status rcache__redis_pttl(rcache__backend *be, const char *key, size_t klen, int64_t *ms) {
  long long n = -2;
  rcache_status s = int_cmd(be, "PTTL", key, klen, &n);
  *ms = s == RCACHE_OK ? n : -2;
  return s;
}

/* INCRBY, and a TTL only when this call created the counter, atomically and without Lua
 * (an ACL user needs no +eval, which would allow any script): MULTI, SET key 0 NX PX ttl
 * (creates the counter with its TTL only when absent), INCRBY, EXEC. A failure leaves no
 * TTL on a counter that existed, and an error queued (NOPERM, say) aborts the whole
 * transaction: nothing half done, and every call says so. */
static rcache_status incr_expire_cmds(rcache__cmds *b, const char *key, size_t klen,
                                      const char *bys, const char *ttls) {
  const char *set[6] = {"SET", key, "0", "NX", "PX", ttls};
  size_t setl[6] = {3, klen, 1, 2, 2, strlen(ttls)};
  const char *incr[3] = {"INCRBY", key, bys};
  size_t incrl[3] = {6, klen, strlen(bys)};
  /* queued: +QUEUED; run at once when MULTI was refused: SET's +OK or nil, INCRBY's count */
  rcache_status s = rcache__cmds_addv(b, "MULTI", NULL);
  rcache__cmds_expect(b, RCACHE__R_OK);
  if (s == RCACHE_OK) s = rcache__cmds_add(b, 6, set, setl);
  rcache__cmds_expect(b, RCACHE__R_OK | RCACHE__R_NIL);
  if (s == RCACHE_OK) s = rcache__cmds_add(b, 3, incr, incrl);
  rcache__cmds_expect(b, RCACHE__R_OK | RCACHE__R_INT);
  if (s == RCACHE_OK) s = rcache__cmds_addv(b, "EXEC", NULL);
  rcache__cmds_expect(b, RCACHE__R_ARR | RCACHE__R_NIL);
  return s;
}

/* The count from EXEC's array: the INCRBY's integer (in a cluster, ASKING's +OK may stand
 * between the replies), or the first error in it. Queued errors (MULTI refused, a command
 * refused at queue time) come first: the transaction did not run. */
static rcache_status incr_expire_reply(redisReply **rep, int n, int64_t *out) {
  for (int i = 0; i < n - 1; i++)
    if (rep[i]->type == REDIS_REPLY_ERROR) return rcache__reply_status(rep[i]);
  const redisReply *x = rep[n - 1];
  if (x->type == REDIS_REPLY_ERROR) return rcache__reply_status(x);
  if (x->type != REDIS_REPLY_ARRAY) return rcache__reply_unexpected(x);
  for (size_t i = 0; i < x->elements; i++)
    if (x->element[i]->type == REDIS_REPLY_ERROR) return rcache__reply_status(x->element[i]);
  for (size_t i = x->elements; i-- > 0;) {
    if (x->element[i]->type == REDIS_REPLY_INTEGER) {
      *out = x->element[i]->integer;
      return RCACHE_OK;
    }
  }
  return rcache__reply_unexpected(x);
}

rcache_status rcache__redis_incr_cmds(rcache__cmds *b, const char *key, size_t klen, int64_t by,
                                      int64_t ttl_ms) {
  char bys[24], ttls[24];
  snprintf(bys, sizeof bys, "%" PRId64, by);
  snprintf(ttls, sizeof ttls, "%" PRId64, ttl_ms);
  if (ttl_ms > 0) return incr_expire_cmds(b, key, klen, bys, ttls);
  const char *argv[3] = {"INCRBY", key, bys};
  size_t lens[3] = {6, klen, strlen(bys)};
  rcache_status s = rcache__cmds_add(b, 3, argv, lens);
  rcache__cmds_expect(b, RCACHE__R_INT);
  return s;
}

rcache_status rcache__redis_incr(rcache__backend *be, const char *key, size_t klen, int64_t by,
                                 int64_t ttl_ms, int64_t *out) {
  rcache__cmds b = {0};
  rcache_status s = rcache__redis_incr_cmds(&b, key, klen, by, ttl_ms);
  redisReply *rep[4] = {0};
  if (s == RCACHE_OK) s = R(be)->exec(R(be), key, klen, &b, rep, false);
  int n = b.n;
  rcache__cmds_free(&b);
  if (s != RCACHE_OK) return s;
  long long x = 0;
  if (ttl_ms > 0) {
    s = incr_expire_reply(rep, n, out);
  } else {
    s = rcache__redis_take_int(rep[0], &x);
    if (s == RCACHE_OK) *out = x;
  }
  rcache__replies_free(rep, n);
  return s;
}

/* ---- node-level helpers ---------------------------------------------------------------------- */

/* UNLINK of every key in a SCAN reply's key array. */
static rcache_status add_unlink(rcache__cmds *b, const redisReply *keys) {
  size_t n = keys->elements + 1;
  const char **kv = rcache__malloc(n * sizeof *kv);
  size_t *kl = rcache__malloc(n * sizeof *kl);
  rcache_status s = kv && kl ? RCACHE_OK : RCACHE_ENOMEM;
  if (s == RCACHE_OK) {
    kv[0] = "UNLINK";
    kl[0] = 6;
    for (size_t i = 1; i < n; i++) {
      kv[i] = keys->element[i - 1]->str;
      kl[i] = keys->element[i - 1]->len;
    }
    s = rcache__cmds_add(b, (int)n, kv, kl);
    rcache__cmds_expect(b, RCACHE__R_INT);
  }
  rcache__free(kv);
  rcache__free(kl);
  return s;
}

/* Leaves out of a SCAN page's keys the one the deletion keeps. */
static void drop_kept(redisReply *keys, const rcache__progress *del) {
  size_t j = 0;
  for (size_t i = 0; i < keys->elements; i++) {
    redisReply *k = keys->element[i];
    if (k->type == REDIS_REPLY_STRING && rcache__progress_keeps(del, k->str, k->len))
      freeReplyObject(k);
    else
      keys->element[j++] = k;
  }
  keys->elements = j;
}

rcache_status rcache__redis_scan_node(rcache__redis *r, rcache__pool *p, const char *glob,
                                      size_t glen, rcache__progress *del, uint64_t limit,
                                      uint64_t *count, rcache_scan_fn fn, void *ud) {
  char cursor[32] = "0", count_s[16];
  snprintf(count_s, sizeof count_s, "%d", r->base.ctx->opt.scan_count);
  redisReply *pending = NULL; /* the last SCAN's keys, to UNLINK with the next SCAN */
  rcache_status s = RCACHE_OK;
  bool stop = false;
  *count = 0;
  do {
    rcache__cmds b = {0};
    const char *argv[6] = {"SCAN", cursor, "MATCH", glob, "COUNT", count_s};
    size_t lens[6] = {4, strlen(cursor), 5, glen, 5, strlen(count_s)};
    s = rcache__cmds_add(&b, 6, argv, lens);
    rcache__cmds_expect(&b, RCACHE__R_ARR);
    int unlink_at = -1;
    if (s == RCACHE_OK && pending && pending->element[1]->elements > 0) {
      unlink_at = b.n;
      s = add_unlink(&b, pending->element[1]);
    }
    if (pending) freeReplyObject(pending);
    pending = NULL;
    redisReply *rep[2] = {0};
    /* with an UNLINK, not run twice: its count would leave out what the first deleted */
    if (s == RCACHE_OK) s = rcache__exchange(r->base.ctx, p, &b, rep, unlink_at < 0);
    int n = b.n;
    rcache__cmds_free(&b);
    if (s != RCACHE_OK) break;
    redisReply *sc = rep[0];
    if (sc->type == REDIS_REPLY_ERROR) {
      s = rcache__reply_status(sc);
    } else if (sc->type != REDIS_REPLY_ARRAY || sc->elements != 2 ||
               sc->element[0]->type != REDIS_REPLY_STRING ||
               sc->element[1]->type != REDIS_REPLY_ARRAY || sc->element[0]->len >= sizeof cursor) {
      s = rcache__reply_unexpected(sc);
    }
    uint64_t unlinked = 0;
    if (s == RCACHE_OK && unlink_at >= 0) {
      if (rep[unlink_at]->type == REDIS_REPLY_INTEGER)
        unlinked = (uint64_t)rep[unlink_at]->integer;
      else
        s = rcache__reply_status(rep[unlink_at]);
    }
    *count += unlinked;
    if (del && !rcache__progress_add(del, unlinked)) stop = true; /* also when s failed */
    if (s != RCACHE_OK) {
      rcache__replies_free(rep, n);
      break;
    }
    memcpy(cursor, sc->element[0]->str, sc->element[0]->len + 1);
    redisReply *keys = sc->element[1];
    for (size_t i = 0; i < keys->elements; i++) {
      if (keys->element[i]->type != REDIS_REPLY_STRING) {
        s = rcache__reply_unexpected(keys->element[i]);
        break;
      }
    }
    if (s == RCACHE_OK && !del) {
      for (size_t i = 0; i < keys->elements && !stop; i++) {
        (*count)++;
        stop = !fn(keys->element[i]->str, keys->element[i]->len, ud) || (limit && *count >= limit);
      }
    }
    if (s == RCACHE_OK && del) {
      drop_kept(keys, del);
      pending = sc; /* its keys go out with the next SCAN */
      rep[0] = NULL;
    }
    rcache__replies_free(rep, n);
    if (s != RCACHE_OK) break;
  } while (!stop && strcmp(cursor, "0") != 0);
  if (s == RCACHE_OK && !stop && pending && pending->element[1]->elements > 0) { /* the last */
    rcache__cmds b = {0};
    redisReply *rep = NULL;
    s = add_unlink(&b, pending->element[1]);
    if (s == RCACHE_OK) s = rcache__exchange(r->base.ctx, p, &b, &rep, false);
    rcache__cmds_free(&b);
    if (s == RCACHE_OK) {
      if (rep->type == REDIS_REPLY_INTEGER) {
        *count += (uint64_t)rep->integer;
        rcache__progress_add(del, (uint64_t)rep->integer);
      } else {
        s = rcache__reply_status(rep);
      }
      freeReplyObject(rep);
    }
  }
  if (pending) freeReplyObject(pending);
  return s;
}

rcache_status rcache__redis_health_node(rcache__redis *r, rcache__pool *p, rcache_health *h) {
  if (!rcache__pool_available(p)) return rcache__pool_last_error(p, h->error, sizeof h->error);
  rcache__cmds b = {0};
  redisReply *rep[2] = {0};
  rcache_status s = rcache__cmds_addv(&b, "PING", NULL);
  rcache__cmds_expect(&b, RCACHE__R_OK);
  if (s == RCACHE_OK) s = rcache__cmds_addv(&b, "INFO", "server", NULL);
  rcache__cmds_expect(&b, RCACHE__R_STR);
  int64_t t0 = rcache__now_us();
  if (s == RCACHE_OK) s = rcache__exchange(r->base.ctx, p, &b, rep, true);
  h->latency_ms = (double)(rcache__now_us() - t0) / 1000.0;
  int n = b.n;
  rcache__cmds_free(&b);
  if (s != RCACHE_OK) {
    snprintf(h->error, sizeof h->error, "%s", rcache__err_peek());
    return s;
  }
  s = rcache__reply_status(rep[0]);
  if (s == RCACHE_OK && rep[1]->type == REDIS_REPLY_STRING) {
    const char *v = strstr(rep[1]->str, "redis_version:");
    if (v) {
      v += 14;
      size_t l = strcspn(v, "\r\n");
      snprintf(h->server_version, sizeof h->server_version, "%.*s", (int)l, v);
    }
  }
  if (s != RCACHE_OK) snprintf(h->error, sizeof h->error, "%s", rcache__err_peek());
  rcache__replies_free(rep, n);
  return s;
}

/* ---- one-server operations (standalone and Sentinel) ----------------------------------------- */

rcache_status rcache__redis_one_del_match(rcache__backend *be, const char *g, size_t gl,
                                          rcache__progress *p) {
  uint64_t n = 0;
  return rcache__redis_scan_node(R(be), R(be)->pool, g, gl, p, 0, &n, NULL, NULL);
}

rcache_status rcache__redis_one_scan(rcache__backend *be, const char *g, size_t gl, uint64_t limit,
                                     rcache_scan_fn fn, void *ud) {
  uint64_t n;
  return rcache__redis_scan_node(R(be), R(be)->pool, g, gl, NULL, limit, &n, fn, ud);
}

rcache_status rcache__redis_one_flushdb(rcache__backend *be) {
  rcache__cmds b = {0};
  redisReply *rep = NULL;
  rcache_status s = rcache__cmds_addv(&b, "FLUSHDB", "ASYNC", NULL);
  rcache__cmds_expect(&b, RCACHE__R_OK);
  if (s == RCACHE_OK) s = R(be)->exec(R(be), NULL, 0, &b, &rep, true);
  rcache__cmds_free(&b);
  if (s != RCACHE_OK) return s;
  s = rcache__reply_status(rep);
  freeReplyObject(rep);
  return s;
}

rcache_status rcache__redis_one_get_many(rcache__backend *be, const char *const *keys,
                                         const size_t *klens, size_t n, rcache_value *vals,
                                         rcache_status *st) {
  const char **argv = rcache__malloc((n + 1) * sizeof *argv);
  size_t *lens = rcache__malloc((n + 1) * sizeof *lens);
  rcache_status s = argv && lens ? RCACHE_OK : RCACHE_ENOMEM;
  rcache__cmds b = {0};
  if (s == RCACHE_OK) {
    argv[0] = "MGET";
    lens[0] = 4;
    memcpy(argv + 1, keys, n * sizeof *argv);
    memcpy(lens + 1, klens, n * sizeof *lens);
    s = n + 1 > 0x7fffffff ? RCACHE_EINVAL : rcache__cmds_add(&b, (int)(n + 1), argv, lens);
    rcache__cmds_expect(&b, RCACHE__R_ARR);
    b.values = n;
  }
  rcache__free(argv);
  rcache__free(lens);
  redisReply *rep = NULL;
  if (s == RCACHE_OK) s = R(be)->exec(R(be), NULL, 0, &b, &rep, true);
  rcache__cmds_free(&b);
  if (s != RCACHE_OK) return s;
  if (rep->type == REDIS_REPLY_ERROR) {
    s = rcache__reply_status(rep);
  } else if (rep->type != REDIS_REPLY_ARRAY || rep->elements != n) {
    s = rcache__reply_unexpected(rep);
  } else {
    for (size_t i = 0; i < n; i++) {
      redisReply *e = rep->element[i];
      if (e->type == REDIS_REPLY_STRING) {
        vals[i].data = e->str;
        vals[i].len = e->len;
        e->str = NULL;
        st[i] = RCACHE_OK;
      } else {
        st[i] = RCACHE_MISS; /* nil: absent, or not a string */
      }
    }
  }
  freeReplyObject(rep);
  return s;
}

rcache_status rcache__redis_add_sets(rcache__cmds *b, const char *const *keys, const size_t *klens,
                                     const rcache_value *vals, const size_t *idx, size_t n,
                                     const int64_t *ttl_ms) {
  rcache_status s = RCACHE_OK;
  for (size_t j = 0; j < n && s == RCACHE_OK; j++) {
    size_t i = idx ? idx[j] : j;
    char ms[24];
    const char *argv[5] = {"SET", keys[i], vals[i].data ? vals[i].data : "", "PX", ms};
    size_t lens[5] = {3, klens[i], vals[i].len, 2, 0};
    int argc = 3;
    if (ttl_ms[i] > 0) {
      snprintf(ms, sizeof ms, "%" PRId64, ttl_ms[i]);
      lens[4] = strlen(ms);
      argc = 5;
    }
    s = rcache__cmds_add(b, argc, argv, lens);
    rcache__cmds_expect(b, RCACHE__R_OK);
  }
  return s;
}

rcache_status rcache__redis_one_set_many(rcache__backend *be, const char *const *keys,
                                         const size_t *klens, const rcache_value *vals, size_t n,
                                         const int64_t *ttl_ms) {
  rcache__cmds b = {0};
  rcache_status s = n > 0x7fffffff ? RCACHE_EINVAL
                                   : rcache__redis_add_sets(&b, keys, klens, vals, NULL, n, ttl_ms);
  redisReply **rep = rcache__calloc(n ? n : 1, sizeof *rep);
  if (!rep) s = RCACHE_ENOMEM;
  if (s == RCACHE_OK) s = R(be)->exec(R(be), NULL, 0, &b, rep, true);
  if (s == RCACHE_OK) {
    for (size_t i = 0; i < n; i++) {
      rcache_status e = rcache__reply_status(rep[i]);
      if (e != RCACHE_OK && s == RCACHE_OK) s = e;
    }
    rcache__replies_free(rep, (int)n);
  }
  rcache__cmds_free(&b);
  rcache__free(rep);
  return s;
}

rcache_status rcache__redis_one_health(rcache__backend *be, rcache_health *h) {
  rcache__redis_first_contact_wait(R(be)); /* its answer is part of this one */
  return rcache__redis_health_node(R(be), R(be)->pool, h);
}

bool rcache__redis_one_available(rcache__backend *be) {
  return rcache__pool_available(R(be)->pool);
}

void rcache__redis_one_stats(rcache__backend *be, rcache_stats *s) {
  s->breaker_state = rcache__pool_breaker_state(R(be)->pool);
  s->available = s->breaker_state == RCACHE_BREAKER_CLOSED;
}

bool rcache__redis_one_server(rcache__backend *be, size_t i, rcache__server_gauges *g) {
  if (i > 0) return false;
  rcache__pool_gauges(R(be)->pool, g);
  return true;
}
