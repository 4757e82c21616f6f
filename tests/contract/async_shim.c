/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The contract suite through the non-blocking API (contract --async; contract.h): each call of
 * a test body that has an _async form starts it and runs a loop on this thread until its
 * callback has run, then hands back what the blocking call would have: the same status and
 * outputs, the test's loaders run from the loop. Around every call it checks the rules of
 * docs/async.md: exactly one callback, on the loop's thread, never before the starting call
 * returned; a refused start (RCACHE_EINVAL, RCACHE_ENOMEM) never calls back and says what the
 * blocking call says about the same arguments.
 */
#define CT_NO_SHIM
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "await.h"
#include "contract.h"

#define RING 64             /* calls whose callbacks are watched for a second run */
#define LOOP_LIMIT_MS 60000 /* far past any deadline of the suite's options */

static bool on;
static pthread_t loop_thread;
/* this thread's last call: on which handle, and whether it completed through a callback */
static _Thread_local rcache *last_c;
static _Thread_local bool last_async;

void ct_async_on(void) {
  on = true;
  loop_thread = pthread_self();
}

bool ct_async(void) {
  return on;
}

bool ct_errmsg_known(rcache *c) {
  return !(last_async && last_c == c);
}

/* A loader of the test, as the loop runs it (the blocking loader's form, finished at once). */
typedef struct wrap {
  rcache_loader_fn fn;
  rcache_tagged_loader_fn tagged;
  rcache_obj_loader_fn obj;
  rcache_json_loader_fn json;
  void *ud;
} wrap;

/* One call: where its callback writes (NULL once the call has returned), what it saw. */
typedef struct rec {
  bool used, refused; /* refused: the start failed, no callback may come */
  bool started;       /* the starting call has returned */
  int calls;
  bool early, foreign; /* a callback before the start returned / on another thread */
  rcache_status s;
  void *o1, *o2;
  size_t n; /* get_many: the batch */
  wrap w;
} rec;

static rec ring[RING];
static unsigned next_rec;

static void check_rec(const rec *r) {
  if (!r->used) return;
  CHECK_MSG(r->calls == (r->refused ? 0 : 1), "a callback ran %d times (refused start: %d)",
            r->calls, r->refused);
  CHECK_MSG(!r->early, "a callback ran before its starting call returned");
  CHECK_MSG(!r->foreign, "a callback ran on another thread than the loop's");
}

void ct_async_check(void) {
  for (int i = 0; i < RING; i++)
    check_rec(&ring[i]);
}

/* A slot for the next call (its previous call's callbacks checked first). */
static rec *take(void *o1, void *o2) {
  rec *r = &ring[next_rec++ % RING];
  check_rec(r);
  *r = (rec){.used = true, .o1 = o1, .o2 = o2};
  return r;
}

/* A non-NULL placeholder for an out-pointer a call does not have. */
static char none_;
#define NONE ((void *)&none_)

/* The call goes through the non-blocking API: on, on the loop's thread, and every out-pointer it
 * needs is there (the _async form has no way to say "NULL out"). */
static bool here(const void *o1, const void *o2) {
  return on && pthread_equal(pthread_self(), loop_thread) && o1 && o2;
}

static rcache_status blocking(rcache *c, rcache_status s) {
  last_c = c;
  last_async = false;
  return s;
}

/* Runs the loop until r's callback has run. */
static rcache_status finish(rcache *c, rec *r) {
  int64_t end = ct_now_ms() + LOOP_LIMIT_MS;
  while (r->calls == 0 && ct_now_ms() < end)
    await_async_turn(c, 1000, NULL);
  CHECK_MSG(r->calls > 0, "no callback within %d ms", LOOP_LIMIT_MS);
  r->o1 = r->o2 = NULL; /* a second callback writes nowhere (and is caught by check_rec) */
  last_c = c;
  last_async = true;
  return r->calls > 0 ? r->s : RCACHE_ETIMEOUT;
}

/* A refused start: the blocking call, given the same arguments, must refuse them alike (and
 * leaves the outputs and the message a refusal leaves). */
static rcache_status refused(rcache *c, rec *r, rcache_status s, rcache_status blocking_s) {
  r->refused = true;
  CHECK_MSG(s == blocking_s, "the async start said %s, the blocking call %s", rcache_strerror(s),
            rcache_strerror(blocking_s));
  return blocking(c, blocking_s);
}

/* A call: the blocking expression BLOCK, or START (whose user data is r) driven to its end.
 * BLOCK is evaluated only when START is not, or was refused (then it did nothing). */
#define SHIM(DECL, BLOCK, O1, O2, START)                                                           \
  DECL {                                                                                           \
    if (!here((O1), (O2))) return blocking(c, BLOCK);                                              \
    rec *r = take((O1), (O2));                                                                     \
    rcache_status s0 = (START);                                                                    \
    r->started = true;                                                                             \
    return s0 == RCACHE_OK ? finish(c, r) : refused(c, r, s0, BLOCK);                              \
  }

/* ---- the callbacks: record, then write the outputs where the caller wants them ----------------
 */

static rec *seen(void *ud, rcache_status s) {
  rec *r = ud;
  if (!r->started) r->early = true;
  if (!pthread_equal(pthread_self(), loop_thread)) r->foreign = true;
  r->calls++;
  r->s = s;
  return r;
}

static void on_status(void *ud, rcache_status s) {
  seen(ud, s);
}

static void on_value(void *ud, rcache_status s, rcache_value v) {
  rec *r = seen(ud, s);
  if (r->o1)
    *(rcache_value *)r->o1 = v;
  else
    rcache_value_free(&v);
}

static void on_int(void *ud, rcache_status s, int64_t v) {
  rec *r = seen(ud, s);
  if (r->o1) *(int64_t *)r->o1 = v;
}

static void on_bool(void *ud, rcache_status s, bool v) {
  rec *r = seen(ud, s);
  if (r->o1) *(bool *)r->o1 = v;
}

static void on_rate(void *ud, rcache_status s, bool allowed, int64_t count) {
  rec *r = seen(ud, s);
  if (r->o1) *(bool *)r->o1 = allowed;
  if (r->o2) *(int64_t *)r->o2 = count;
}

static void on_str(void *ud, rcache_status s, char *str) {
  rec *r = seen(ud, s);
  if (r->o1)
    *(char **)r->o1 = str;
  else
    free(str);
}

static void on_double(void *ud, rcache_status s, double v) {
  rec *r = seen(ud, s);
  if (r->o1) *(double *)r->o1 = v;
}

static void on_json(void *ud, rcache_status s, json_t *v) {
  rec *r = seen(ud, s);
  if (r->o1)
    *(json_t **)r->o1 = v;
  else if (v)
    json_decref(v);
}

static void on_count(void *ud, rcache_status s, uint64_t n) {
  rec *r = seen(ud, s);
  if (r->o1) *(uint64_t *)r->o1 = n;
}

static void on_health(void *ud, rcache_status s, const rcache_health *h) {
  rec *r = seen(ud, s);
  if (r->o1) *(rcache_health *)r->o1 = *h;
}

static void on_many(void *ud, rcache_status s, rcache_value *vals, const rcache_status *sts,
                    size_t n) {
  rec *r = seen(ud, s);
  CHECK_MSG(n == r->n || !r->o1, "get_many's callback got %zu values for %zu keys", n, r->n);
  for (size_t i = 0; i < n; i++) {
    if (r->o1 && i < r->n) {
      ((rcache_value *)r->o1)[i] = vals[i];
      ((rcache_status *)r->o2)[i] = sts[i];
    } else {
      rcache_value_free(&vals[i]);
    }
  }
}

/* ---- the test's loaders, run by the loop --------------------------------------------------- */

static void load_bytes(void *ud, const char *key, rcache_load *ld) {
  (void)key;
  wrap *w = ud;
  rcache_value v = {NULL, 0};
  rcache_status s = w->fn(w->ud, &v);
  rcache_load_done(ld, s, &v);
}

static void load_tagged(void *ud, const char *key, rcache_tags *tags, rcache_load *ld) {
  (void)key;
  wrap *w = ud;
  rcache_value v = {NULL, 0};
  rcache_status s = w->tagged(w->ud, &v, tags);
  rcache_load_done(ld, s, &v);
}

static void load_obj(void *ud, const char *key, void *obj, rcache_load *ld) {
  (void)key;
  wrap *w = ud;
  rcache_load_done(ld, w->obj(w->ud, obj), NULL);
}

static void load_json(void *ud, const char *key, rcache_load *ld) {
  (void)key;
  wrap *w = ud;
  rcache_load_done_json(ld, w->json(w->ud));
}

/* The loader wrapped in r (a comma expression's first half) */
#define WRAP(field, fn, ud) (r->w = (wrap){.field = (fn), .ud = (ud)})

/* ---- the calls ------------------------------------------------------------------------------ */

SHIM(rcache_status cts_get(rcache *c, const char *key, rcache_value *out), rcache_get(c, key, out),
     out, NONE, rcache_get_async(c, key, on_value, r))
SHIM(rcache_status cts_set(rcache *c, const char *key, const void *data, size_t len, int64_t ttl_s),
     rcache_set(c, key, data, len, ttl_s), NONE, NONE,
     rcache_set_async(c, key, data, len, ttl_s, on_status, r))
SHIM(rcache_status cts_delete(rcache *c, const char *key), rcache_delete(c, key), NONE, NONE,
     rcache_delete_async(c, key, on_status, r))
SHIM(rcache_status cts_delete_prefix(rcache *c, const char *prefix, uint64_t *deleted),
     rcache_delete_prefix(c, prefix, deleted), deleted, NONE,
     rcache_delete_prefix_async(c, prefix, on_count, r))
SHIM(rcache_status cts_delete_pattern(rcache *c, const char *glob, uint64_t *deleted),
     rcache_delete_pattern(c, glob, deleted), deleted, NONE,
     rcache_delete_pattern_async(c, glob, on_count, r))
SHIM(rcache_status cts_get_or_set(rcache *c, const char *key, int64_t ttl_s, rcache_loader_fn load,
                                  void *ud, rcache_value *out),
     rcache_get_or_set(c, key, ttl_s, load, ud, out), out, load ? NONE : NULL,
     (WRAP(fn, load, ud), rcache_get_or_set_async(c, key, ttl_s, load_bytes, &r->w, on_value, r)))
SHIM(rcache_status cts_incr(rcache *c, const char *key, int64_t by, int64_t *out),
     rcache_incr(c, key, by, out), out, NONE, rcache_incr_async(c, key, by, on_int, r))
SHIM(rcache_status cts_decr(rcache *c, const char *key, int64_t by, int64_t *out),
     rcache_decr(c, key, by, out), out, NONE, rcache_decr_async(c, key, by, on_int, r))
SHIM(rcache_status cts_incr_expire(rcache *c, const char *key, int64_t by, int64_t ttl_s,
                                   int64_t *out),
     rcache_incr_expire(c, key, by, ttl_s, out), out, NONE,
     rcache_incr_expire_async(c, key, by, ttl_s, on_int, r))
SHIM(rcache_status cts_rate_limit(rcache *c, const char *key, int64_t limit, int64_t window_s,
                                  bool *allowed, int64_t *count),
     rcache_rate_limit(c, key, limit, window_s, allowed, count), allowed, count,
     rcache_rate_limit_async(c, key, limit, window_s, on_rate, r))
SHIM(rcache_status cts_exists(rcache *c, const char *key, bool *exists),
     rcache_exists(c, key, exists), exists, NONE, rcache_exists_async(c, key, on_bool, r))
SHIM(rcache_status cts_ttl(rcache *c, const char *key, int64_t *ttl_s), rcache_ttl(c, key, ttl_s),
     ttl_s, NONE, rcache_ttl_async(c, key, on_int, r))
SHIM(rcache_status cts_get_many(rcache *c, const char *const *keys, size_t n, rcache_value *vals,
                                rcache_status *statuses),
     rcache_get_many(c, keys, n, vals, statuses), vals, statuses,
     (r->n = n, rcache_get_many_async(c, keys, n, on_many, r)))
SHIM(rcache_status cts_set_many(rcache *c, const char *const *keys, const rcache_value *vals,
                                size_t n, int64_t ttl_s),
     rcache_set_many(c, keys, vals, n, ttl_s), NONE, NONE,
     rcache_set_many_async(c, keys, vals, n, ttl_s, on_status, r))
SHIM(rcache_status cts_health_check(rcache *c, rcache_health *h), rcache_health_check(c, h), h,
     NONE, rcache_health_check_async(c, on_health, r))

/* tags */
SHIM(rcache_status cts_set_tagged(rcache *c, const char *key, const void *data, size_t len,
                                  int64_t ttl_s, const char *const *tags, size_t ntags),
     rcache_set_tagged(c, key, data, len, ttl_s, tags, ntags), NONE, NONE,
     rcache_set_tagged_async(c, key, data, len, ttl_s, tags, ntags, on_status, r))
SHIM(rcache_status cts_get_tagged(rcache *c, const char *key, const char *const *tags, size_t ntags,
                                  rcache_value *out),
     rcache_get_tagged(c, key, tags, ntags, out), out, NONE,
     rcache_get_tagged_async(c, key, tags, ntags, on_value, r))
SHIM(rcache_status cts_invalidate_tag(rcache *c, const char *tag), rcache_invalidate_tag(c, tag),
     NONE, NONE, rcache_invalidate_tag_async(c, tag, on_status, r))
SHIM(rcache_status cts_clear(rcache *c), rcache_clear(c), NONE, NONE,
     rcache_clear_async(c, on_status, r))
SHIM(rcache_status cts_get_or_set_tagged(rcache *c, const char *key, int64_t ttl_s,
                                         const char *const *tags, size_t ntags,
                                         rcache_tagged_loader_fn load, void *ud, rcache_value *out),
     rcache_get_or_set_tagged(c, key, ttl_s, tags, ntags, load, ud, out), out, load ? NONE : NULL,
     (WRAP(tagged, load, ud),
      rcache_get_or_set_tagged_async(c, key, ttl_s, tags, ntags, load_tagged, &r->w, on_value, r)))

/* typed values */
SHIM(rcache_status cts_set_str(rcache *c, const char *key, const char *s, int64_t ttl_s),
     rcache_set_str(c, key, s, ttl_s), NONE, NONE,
     rcache_set_str_async(c, key, s, ttl_s, on_status, r))
SHIM(rcache_status cts_get_str(rcache *c, const char *key, char **out), rcache_get_str(c, key, out),
     out, NONE, rcache_get_str_async(c, key, on_str, r))
SHIM(rcache_status cts_set_i64(rcache *c, const char *key, int64_t v, int64_t ttl_s),
     rcache_set_i64(c, key, v, ttl_s), NONE, NONE,
     rcache_set_i64_async(c, key, v, ttl_s, on_status, r))
SHIM(rcache_status cts_get_i64(rcache *c, const char *key, int64_t *out),
     rcache_get_i64(c, key, out), out, NONE, rcache_get_i64_async(c, key, on_int, r))
SHIM(rcache_status cts_set_double(rcache *c, const char *key, double v, int64_t ttl_s),
     rcache_set_double(c, key, v, ttl_s), NONE, NONE,
     rcache_set_double_async(c, key, v, ttl_s, on_status, r))
SHIM(rcache_status cts_get_double(rcache *c, const char *key, double *out),
     rcache_get_double(c, key, out), out, NONE, rcache_get_double_async(c, key, on_double, r))
SHIM(rcache_status cts_set_obj(rcache *c, const char *key, const rcache_codec *codec,
                               const void *obj, int64_t ttl_s),
     rcache_set_obj(c, key, codec, obj, ttl_s), NONE, NONE,
     rcache_set_obj_async(c, key, codec, obj, ttl_s, on_status, r))
SHIM(rcache_status cts_get_obj(rcache *c, const char *key, const rcache_codec *codec, void *obj),
     rcache_get_obj(c, key, codec, obj), NONE, NONE,
     rcache_get_obj_async(c, key, codec, obj, on_status, r))
SHIM(rcache_status cts_get_or_set_obj(rcache *c, const char *key, int64_t ttl_s,
                                      const rcache_codec *codec, rcache_obj_loader_fn load,
                                      void *ud, void *obj),
     rcache_get_or_set_obj(c, key, ttl_s, codec, load, ud, obj), NONE, load ? NONE : NULL,
     (WRAP(obj, load, ud),
      rcache_get_or_set_obj_async(c, key, ttl_s, codec, load_obj, &r->w, obj, on_status, r)))

/* JSON */
SHIM(rcache_status cts_set_json(rcache *c, const char *key, const json_t *v, int64_t ttl_s),
     rcache_set_json(c, key, v, ttl_s), NONE, NONE,
     rcache_set_json_async(c, key, v, ttl_s, on_status, r))
SHIM(rcache_status cts_get_json(rcache *c, const char *key, json_t **out),
     rcache_get_json(c, key, out), out, NONE, rcache_get_json_async(c, key, on_json, r))
SHIM(rcache_status cts_get_or_set_json(rcache *c, const char *key, int64_t ttl_s,
                                       rcache_json_loader_fn load, void *ud, json_t **out),
     rcache_get_or_set_json(c, key, ttl_s, load, ud, out), out, load ? NONE : NULL,
     (WRAP(json, load, ud),
      rcache_get_or_set_json_async(c, key, ttl_s, load_json, &r->w, on_json, r)))
SHIM(rcache_status cts_set_json_tagged(rcache *c, const char *key, const json_t *v, int64_t ttl_s,
                                       const char *const *tags, size_t ntags),
     rcache_set_json_tagged(c, key, v, ttl_s, tags, ntags), NONE, NONE,
     rcache_set_json_tagged_async(c, key, v, ttl_s, tags, ntags, on_status, r))
SHIM(rcache_status cts_get_json_tagged(rcache *c, const char *key, const char *const *tags,
                                       size_t ntags, json_t **out),
     rcache_get_json_tagged(c, key, tags, ntags, out), out, NONE,
     rcache_get_json_tagged_async(c, key, tags, ntags, on_json, r))
SHIM(rcache_status cts_get_or_set_json_tagged(rcache *c, const char *key, int64_t ttl_s,
                                              const char *const *tags, size_t ntags,
                                              rcache_json_loader_fn load, void *ud, json_t **out),
     rcache_get_or_set_json_tagged(c, key, ttl_s, tags, ntags, load, ud, out), out,
     load ? NONE : NULL,
     (WRAP(json, load, ud), rcache_get_or_set_json_tagged_async(c, key, ttl_s, tags, ntags,
                                                                load_json, &r->w, on_json, r)))
