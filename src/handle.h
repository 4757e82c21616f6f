/* SPDX-License-Identifier: BSD-3-Clause */
/* The handle's layout and the facade's helpers, shared by the facade's files
 * (rcache.c, getorset.c). Internal. */
#ifndef RCACHE_HANDLE_H
#define RCACHE_HANDLE_H

#include "flight.h"
#include "internal.h"
#include "observe.h"

#define RCACHE__LOAD_SLOTS 4096    /* per-key load durations for early refresh, by hash */
#define RCACHE__INVAL_STRIPES 1024 /* invalidation epochs, by key hash */

struct rcache {
  rcache__ctx ctx;
  rcache__backend *b;
  rcache__flights *flights;
  int64_t stale_ms;                             /* stale-if-error window, 0 = off */
  _Atomic uint32_t load_us[RCACHE__LOAD_SLOTS]; /* last load time (µs), by key hash */
  /* Invalidation epochs, for get_or_set's loads (getorset.c): rcache_delete and the setters
   * (a value the application writes is newer than a load begun before it) bump their key's
   * stripe, delete_prefix/pattern and flush inval_all, rcache_clear and invalidate_tag
   * inval_versions, each before its command goes out. Only ever grow. */
  _Atomic uint64_t inval_all;
  _Atomic uint64_t inval_versions;
  _Atomic uint64_t inval[RCACHE__INVAL_STRIPES];
  _Atomic uint64_t gen;        /* rcache__fork_gen() this process's state is for */
  _Atomic uint64_t fork_claim; /* the generation whose recovery a thread has taken on */
  /* tags.c's hint, a bit per key hash: the last value there was tagged; NULL until this
   * handle meets a tagged value */
  _Atomic(_Atomic uint64_t *) tag_hint;
  /* tags.c's remembered tags of tagged keys, a slot per key hash; NULL until the first */
  _Atomic(_Atomic(struct rcache__tag_memo *) *) tag_memo;
  /* tags.c: the clear key's version as this handle last read it (0: absent, the namespace
   * never cleared) and when (µs, 0: never), for what it writes (rcache__tags_plain) */
  _Atomic int64_t clear_ver;
  _Atomic int64_t clear_us;
  /* bumped before each change of clear_ver: a reading whose request went out before a change
   * was noted (rcache__clear_asked then) may be older than it (rcache__tags_clear_seen) */
  _Atomic uint64_t clear_seq;
  /* the ACL user may not read the clear key: the namespace reads as never cleared */
  _Atomic bool clear_denied;
  rcache__obs obs;               /* per-operation histograms, key families (observe.c) */
  struct rcache__publisher *pub; /* publish_stats_s's thread (publish.c), NULL when off */
  /* the non-blocking API's machinery (async.c), made by the first async call; NULL until then */
  _Atomic(struct rcache__async *) async;
};

/* publish.c: with publish_stats_s set (and a Redis backend), starts the thread that writes
 * the handle's figures to Redis. RCACHE_OK (also when there is nothing to start), or
 * RCACHE_ENOMEM when memory or a thread is missing (nothing started). */
rcache_status rcache__publish_start(rcache *c);
/* Publishes once more (marked closed), stops and joins the thread. NULL-safe. */
void rcache__publish_stop(rcache *c);
/* One publish on the calling thread, now (tests: the allocation walks count only the
 * calling thread's allocations). The write's status; RCACHE_EINVAL when c does not publish. */
rcache_status rcache__publish_now(rcache *c);
/* In a forked child: the parent's thread is not here; starts this process's own (its key
 * names this pid). */
void rcache__publish_after_fork(rcache *c);

/* A handle inherited across fork(): makes its state this process's own (rcache.c). */
void rcache__forked(rcache *c);
/* async.c: completes every pending async operation and stops the workers (rcache_close,
 * first); forgets the parent's machinery in a forked child (after_fork). */
void rcache__async_close(rcache *c);
void rcache__async_after_fork(rcache *c);

/* Every call that can reach the near table, the flights or a connection starts here: in a
 * forked child the first call drops the parent's connections and restarts the threads
 * first. Costs one relaxed load and one acquire load (a plain load on x86). */
static inline void rcache__enter(rcache *c) {
  if (atomic_load_explicit(&c->gen, memory_order_acquire) != rcache__fork_gen()) rcache__forked(c);
}

/* What a reader of the clear key's version notes before its request goes out, for
 * rcache__tags_clear_seen. */
static inline uint64_t rcache__clear_asked(rcache *c) {
  return atomic_load_explicit(&c->clear_seq, memory_order_acquire);
}

/* FNV-1a (32 bits) of a stored key: the per-key tables of a handle (load times, tag hints,
 * invalidation stripes) pick their slot with it. */
static inline uint32_t rcache__key_hash(const char *p, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++)
    h = (h ^ (unsigned char)p[i]) * 16777619u;
  return h;
}

/* The invalidation epochs of the stored key p (len bytes), sums of counters that only grow,
 * so each moves when any of its parts does. Two or three loads, no lock.
 *  - rcache__inval_store: its stripe and inval_all, what deletes or overwrites values. A
 *    load that saw it move does not store (getorset.c). rcache_clear and invalidate_tag are
 *    not in it: the versions a load reads before its loader already leave its value stale.
 *  - rcache__inval_join: all three. A caller whose miss came after any invalidation of the
 *    key does not take the value of a flight (flight.h) that began before it. */
static inline _Atomic uint64_t *rcache__inval_stripe(rcache *c, const char *p, size_t len) {
  return &c->inval[rcache__key_hash(p, len) % RCACHE__INVAL_STRIPES];
}
static inline uint64_t rcache__inval_store(rcache *c, const char *p, size_t len) {
  return atomic_load(&c->inval_all) + atomic_load(rcache__inval_stripe(c, p, len));
}
static inline uint64_t rcache__inval_join(rcache *c, const char *p, size_t len) {
  return atomic_load(&c->inval_versions) + rcache__inval_store(c, p, len);
}
/* Each called before the invalidation's command is sent (see load_and_store in getorset.c). */
static inline void rcache__inval_key(rcache *c, const char *p, size_t len) {
  atomic_fetch_add(rcache__inval_stripe(c, p, len), 1);
}
static inline void rcache__inval_everything(rcache *c) {
  atomic_fetch_add(&c->inval_all, 1);
}
static inline void rcache__inval_by_version(rcache *c) {
  atomic_fetch_add(&c->inval_versions, 1);
}

/* The backend as it is now: the one opened, or the cluster one that replaced it (redis.c).
 * For what only reads state (mode, statistics, gauges). */
static inline rcache__backend *rcache__be_now(rcache *c) {
  rcache__backend *s = atomic_load_explicit(&c->ctx.successor, memory_order_acquire);
  return s ? s : c->b;
}

/* Waits, at most connect_timeout_ms, for the backend's first contact (see first_going in
 * internal.h). */
void rcache__first_await(rcache *c);

/* The backend to call. A call made while the first contact with the server is under way
 * (right after rcache_open) waits for it, within connect_timeout_ms, so that it goes where
 * the first contact found to go (a cluster node: the cluster backend; Sentinel: the master)
 * and the first contact alone connects. One acquire load otherwise. */
static inline rcache__backend *rcache__be(rcache *c) {
  if (atomic_load_explicit(&c->ctx.first_going, memory_order_acquire)) rcache__first_await(c);
  return rcache__be_now(c);
}

#define COUNT(c, field) atomic_fetch_add_explicit(&(c)->ctx.n.field, 1, memory_order_relaxed)

/* A prefixed key, on the stack when small. */
typedef struct rcache__key {
  char *p;
  size_t len;
  char stack[256];
} rcache__key;

rcache_status rcache__key_make(rcache *c, const char *key, rcache__key *k);
/* keys.c: the stored length of a key of kl bytes (prefix included; max_key_bytes when
 * long_key_digest shortens it), RCACHE_ETOOBIG when it does not fit; and writing it
 * (prefix + key or its digest form, NUL-terminated) into out (len + 1 bytes). */
rcache_status rcache__key_stored_len(const rcache__ctx *ctx, size_t kl, size_t *len);
rcache_status rcache__key_write(const rcache__ctx *ctx, const char *key, size_t kl, char *out,
                                size_t len);
/* keys.c: how many leading bytes of any key its stored form keeps as they are, after
 * key_prefix (SIZE_MAX without long_key_digest: every stored key is prefix + key). */
size_t rcache__key_kept(const rcache__ctx *ctx);
void rcache__key_free(rcache__key *k);

/* Ends every public call: failed calls leave their detail for rcache_errmsg() and count. */
rcache_status rcache__done(rcache *c, rcache_status s);
rcache_status rcache__einval(rcache *c, const char *what);
/* true for statuses meaning "the store could not be reached" */
bool rcache__unreachable(rcache_status s);
/* maps timeouts/unavailability to RCACHE_EUNAVAILABLE and counts the fallback */
rcache_status rcache__remote(rcache *c, rcache_status s);
/* s (from rcache__remote) says the call was answered without the cache: RCACHE_EUNAVAILABLE,
 * or with strict_config the RCACHE_EAUTH / RCACHE_ETLS behind it. */
bool rcache__without_cache(const rcache *c, rcache_status s);
/* logical ttl_s → ms with default and jitter; -1 when out of range */
int64_t rcache__ttl_ms(rcache *c, int64_t ttl_s);

/* The tags a caller says a value was written with (rcache_get_tagged,
 * rcache_get_or_set_tagged): their version keys are read with the value (tags.c). */
typedef struct rcache__tagdecl {
  const char *const *tag;
  const size_t *tlen;
  size_t n;
} rcache__tagdecl;

/* Reads through the backend; counts hits/misses. When stale is non-NULL (get_or_set) and a
 * stale window is set, a value in its stale tail is a miss and is handed over in *stale;
 * *pttl (may be NULL) gets the logical remaining ms. decl (may be NULL): tags declared.
 * rd: a public read's context (observe.h; its clock reading is the near cache's "now"),
 * NULL for the library's own reads, whose near hits are neither counted in a family nor
 * timed. */
rcache_status rcache__get_full(rcache *c, const rcache__key *k, rcache_value *out, int64_t *pttl,
                               rcache_value *stale, const rcache__tagdecl *decl, rcache__read *rd);
/* rcache__get_full without the tag check nor the hit/miss counts (the near cache's are
 * counted); *near_hit tells whether the near cache answered. With vers (may be NULL), a key
 * with declared tags (decl), or that the hint says is tagged, is read through tags.c's
 * rcache__tags_read, which may fill *vers. vers NULL: tags.c reading a version key, whose
 * absence a near cache keeps (as "", read as version 0). */
rcache_status rcache__get_stored(rcache *c, const rcache__key *k, rcache_value *out, int64_t *pttl,
                                 rcache_value *stale, rcache__read *rd, bool *near_hit,
                                 rcache__versions *vers, const rcache__tagdecl *decl);
/* A value with pttl ms left is in its stale tail (logically expired, kept for
 * stale-if-error: stale_window_s). */
bool rcache__in_stale_tail(const rcache *c, int64_t pttl);
/* set_full flag (facade only, never passed to a backend): a get_or_set value, whose TTL
 * is extended by the stale window. */
#define RCACHE__SET_STALE 0x100
/* set_full flag (facade only): data is a frame built by tags.c, stored as it is. Without
 * it, a plain value that looks like a frame is stored escaped (tags.h). */
#define RCACHE__SET_FRAME 0x200
/* Writes through the backend (logical ttl_ms; with RCACHE__SET_STALE the stale window is
 * added here; a plain value is stored as rcache__tags_plain says, stamped with *clear when
 * clear is not NULL, see RCACHE__SET_FRAME). Of the flags, only RCACHE__SET_NX reaches the
 * backend. */
rcache_status rcache__set_full(rcache *c, const rcache__key *k, const void *data, size_t len,
                               int64_t ttl_ms, int flags, const int64_t *clear);
/* rcache_get_or_set for rcache_get_or_set_tagged (getorset.c): the loader's values are frames
 * (tags.c), stored as they are; callers get their payloads; reads declare decl's tags. */
rcache_status rcache__get_or_set_framed(rcache *c, const char *key, int64_t ttl_s,
                                        rcache_loader_fn load, void *ud,
                                        const rcache__tagdecl *decl, rcache_value *out);

/* Ends a public read (op GET, GET_TAGGED, GET_OR_SET_HIT or _LOAD) that returned s: a near
 * hit costs a branch or two unless it is one to time (observe.h). */
static inline void rcache__observe_read(rcache *c, rcache_op op, const rcache__read *rd,
                                        rcache_status s, size_t bytes) {
  if (!rd->near_hit)
    rcache__observe_us(c, op, rd->key, s, rcache__since(rd->now_us), bytes);
  else if (rd->sample || c->ctx.opt.event_sink.on_event)
    rcache__observe_near(c, op, rd, bytes);
  if (rd->in_flight) rcache__in_flight(c, -1);
}

/* Opening lines shared by every keyed operation. */
#define BEGIN_KEYED(c, key, k)                                                                     \
  rcache__err_clear();                                                                             \
  if (!(c)) return rcache__einval(NULL, "handle is NULL");                                         \
  rcache__enter(c);                                                                                \
  rcache__key k;                                                                                   \
  do {                                                                                             \
    rcache_status _s = rcache__key_make((c), (key), &k);                                           \
    if (_s != RCACHE_OK) return rcache__done((c), _s);                                             \
  } while (0)

#endif
