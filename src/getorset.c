/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * get_or_set: cache-aside without stampedes.
 *  - single-flight per key in the process (flight.c);
 *  - optional cross-process lease: SET <prefix>__rc:lease:<key> NX PX lease_ms, losers poll;
 *  - optional early refresh (XFetch, Vattani et al., VLDB 2015);
 *  - optional stale-if-error (values live stale_window_s past their logical TTL).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handle.h"
#include "near/near.h"
#include "tags.h"

#define LEASE_POLL_US 10000 /* how often a process waiting on another's lease looks */

static uint32_t slot_of(const rcache__key *k) {
  return rcache__key_hash(k->p, k->len) % RCACHE__LOAD_SLOTS;
}

/* A get_or_set's loader; framed: its values are frames (tags.c, rcache_get_or_set_tagged),
 * stored as they are and returned as their payloads. */
typedef struct loader {
  rcache_loader_fn fn;
  void *ud;
  bool framed;
  const rcache__tagdecl *decl; /* the tags reads declare (NULL: none) */
} loader;

/* The value loaded from e0 on went out while an invalidation or a write of k ran (its epoch
 * moved, handle.h): it may have reached the server after that command. Delete it, so that it
 * is not served until its TTL. This may remove a fresher value that the write or another
 * caller stored meanwhile: a lost write (a later miss), never a stale hit. */
static void unstore_if_overtaken(rcache *c, const rcache__key *k, uint64_t e0) {
  if (rcache__inval_store(c, k->p, k->len) == e0) return;
  rcache__backend *be = rcache__be(c);
  (void)be->ops->del(be, k->p, k->len);
  if (c->ctx.near) rcache__near_invalidate(c->ctx.near, k->p, k->len);
}

/*
 * Runs the loader and stores its value. The loader's value is returned even when the
 * cache cannot take it: the application must keep working without the cache.
 *
 * The invalidations that delete (rcache_delete, delete_prefix/pattern, flush) and the
 * application's writes (the setters) bump the key's store epoch (handle.h) before their
 * command goes out, and it is read here before the loader runs, so (rcache_clear and
 * invalidate_tag need not: the versions read before the loader leave the value stale):
 *  - the epoch unchanged after the load: any invalidation of k still to come sends its
 *    command after our check; if our SET is then still on its way, the check after the SET
 *    (unstore_if_overtaken) sees the bump and deletes it;
 *  - moved: the loader may have read the data before the change the invalidation is for,
 *    so nothing is stored (the caller still gets the value: its call began before the
 *    invalidation returned, and the value is its answer as of then).
 * Left: between a SET that lands after the invalidation's command and our DEL (one round
 * trip), a reader may see the value. In-process only: another process's invalidation does
 * not move this handle's epochs (docs/semantics.md).
 */
static rcache_status load_and_store(rcache *c, const rcache__key *k, int64_t ttl_ms,
                                    const loader *L, rcache_value *out, bool store) {
  rcache_value v = {NULL, 0};
  uint64_t e0 = rcache__inval_store(c, k->p, k->len); /* before the loader reads anything */
  /* The clear key's version before the load (framed values carry their own, tags.c): a
   * rcache_clear while it runs leaves what it stores already stale. Unknown (unreachable):
   * the value is returned, not stored. */
  int64_t clear = 0;
  rcache_status cs = store && !L->framed ? rcache__tags_clear_now(c, &clear) : RCACHE_OK;
  if (cs == RCACHE_ENOMEM) return cs; /* as the write after the load would have said */
  if (cs != RCACHE_OK) (void)rcache__remote(c, cs); /* counted as that write's failure was */
  store = store && cs == RCACHE_OK;
  COUNT(c, loads);
  int64_t t0 = rcache__now_us();
  atomic_fetch_add_explicit(&c->obs.loads_in_progress, 1, memory_order_relaxed);
  rcache_status ls = L->fn(L->ud, &v);
  atomic_fetch_sub_explicit(&c->obs.loads_in_progress, 1, memory_order_relaxed);
  int64_t took = rcache__now_us() - t0;
  rcache__observe_us(c, RCACHE_OP_LOADER, NULL, ls, took > 0 ? (uint64_t)took : 0,
                     ls == RCACHE_OK ? v.len : 0);
  atomic_store_explicit(&c->load_us[slot_of(k)], (uint32_t)(took > UINT32_MAX ? UINT32_MAX : took),
                        memory_order_relaxed);
  if (ls != RCACHE_OK) {
    rcache_value_free(&v);
    COUNT(c, load_errors);
    if (ls == RCACHE_ENOMEM) return ls; /* the helpers' encoders (JSON, codecs) ran out */
    rcache__errf("loader failed with status %d (%s)", (int)ls, rcache_strerror(ls));
    return RCACHE_ELOADER;
  }
  if (!v.data) { /* an empty value: keep the NUL-terminated promise */
    if (!(v.data = rcache__memdup0("", 0))) return RCACHE_ENOMEM;
    v.len = 0;
  }
  /* When the read just failed to reach the cache (already counted as a fallback), the
   * write would fail too: it is dropped without spending a second deadline on it. */
  int flags = RCACHE__SET_STALE | (L->framed ? RCACHE__SET_FRAME : 0);
  store = store && rcache__inval_store(c, k->p, k->len) == e0;
  if (store && rcache__set_full(c, k, v.data, v.len, ttl_ms, flags, L->framed ? NULL : &clear) ==
                   RCACHE_ENOMEM) {
    rcache_value_free(&v); /* not cached: the caller hears why (docs/errors.md) */
    return RCACHE_ENOMEM;
  }
  if (store) unstore_if_overtaken(c, k, e0);
  if (L->framed) rcache__tags_strip(&v);
  *out = v;
  return RCACHE_OK;
}

/* The lease key: key_prefix + "__rc:lease:" + the key as stored after the prefix (rcache's
 * own keys: never one of the application's, docs/keys.md). */
#define LEASE_MARK "__rc:lease:"
static rcache_status lease_key(const rcache *c, const rcache__key *k, rcache__key *lk) {
  size_t pl = c->ctx.prefix_len, ml = sizeof LEASE_MARK - 1;
  lk->len = k->len + ml;
  lk->p = lk->len < sizeof lk->stack ? lk->stack : rcache__malloc(lk->len + 1);
  if (!lk->p) return RCACHE_ENOMEM;
  memcpy(lk->p, k->p, pl);
  memcpy(lk->p + pl, LEASE_MARK, ml);
  memcpy(lk->p + pl + ml, k->p + pl, k->len - pl);
  lk->p[lk->len] = '\0';
  return RCACHE_OK;
}

/* RCACHE_OK: the lease is ours; RCACHE_MISS: another process holds it; or an error. */
static rcache_status lease_take(rcache *c, const rcache__key *lk) {
  rcache__backend *be = rcache__be(c);
  return be->ops->set(be, lk->p, lk->len, "1", 1, c->ctx.opt.lease_ms, RCACHE__SET_NX);
}

/* The stored value of k, tags checked (RCACHE_MISS when absent, invalidated, or in its
 * stale tail: logically expired, that one is not an answer). */
static rcache_status reread(rcache *c, const rcache__key *k, rcache_value *out) {
  rcache__backend *be = rcache__be(c);
  int64_t ms = -2;
  rcache_status s = be->ops->get(be, k->p, k->len, out, c->stale_ms > 0 ? &ms : NULL);
  if (s == RCACHE_OK && rcache__in_stale_tail(c, ms)) {
    rcache_value_free(out);
    return RCACHE_MISS;
  }
  return s == RCACHE_OK ? rcache__tags_unwrap(c, k->p, k->len, out, NULL, NULL) : s;
}

/*
 * The process-wide leader's load with a lease: the process that wins the lease loads;
 * the others poll for the value, and take the lease over when it expires (its holder
 * died), so the key is still loaded once. After 2×lease_ms they load regardless.
 */
static rcache_status load_leased(rcache *c, const rcache__key *k, int64_t ttl_ms, const loader *L,
                                 rcache_value *out) {
  rcache__key lk;
  if (lease_key(c, k, &lk) != RCACHE_OK) return RCACHE_ENOMEM;
  int64_t lease_us = (int64_t)c->ctx.opt.lease_ms * 1000;
  int64_t deadline = rcache__now_us() + 2 * lease_us;
  rcache_status s;
  for (bool first = true;; first = false) {
    int64_t asked = rcache__now_us();
    s = lease_take(c, &lk);
    if (s == RCACHE_ENOMEM) break; /* not "someone else holds it": no waiting for nothing */
    if (s != RCACHE_OK && s != RCACHE_MISS) {
      /* refused (out of memory, read-only, an ACL) or unreachable: nobody holds it because
       * of us, and waiting would cost every miss 2 x lease_ms: load without it */
      s = load_and_store(c, k, ttl_ms, L, out, s != RCACHE_EUNAVAILABLE && s != RCACHE_ETIMEOUT);
      break;
    }
    if (s == RCACHE_OK) {
      /* After a poll, the holder may have stored the value and released the lease between
       * our GET and our SET NX: read again before loading a second time. */
      s = first ? RCACHE_MISS : reread(c, k, out);
      if (s == RCACHE_OK)
        COUNT(c, coalesced);
      else
        s = load_and_store(c, k, ttl_ms, L, out, true);
      /* release only while it is surely still ours: it lives lease_ms from when the server
       * took it, after we asked; our DEL reaches it within command_timeout_ms (else another
       * process may hold it by then, and its lease is not ours to delete) */
      int64_t safe_us = lease_us - (int64_t)c->ctx.opt.command_timeout_ms * 1000;
      if (rcache__now_us() - asked < safe_us) {
        rcache__backend *be = rcache__be(c);
        (void)be->ops->del(be, lk.p, lk.len);
      }
      break;
    }
    rcache__sleep_us(LEASE_POLL_US);
    s = reread(c, k, out);
    if (s == RCACHE_OK) {
      COUNT(c, coalesced);
      break;
    }
    if (s != RCACHE_MISS || rcache__now_us() >= deadline) { /* unreachable, or waited enough */
      s = load_and_store(c, k, ttl_ms, L, out, s == RCACHE_MISS);
      break;
    }
  }
  rcache__key_free(&lk);
  return s;
}

/* XFetch: refresh before expiry with probability rising as expiry nears, scaled by how
 * long a load takes (Δ) and β: refresh when −Δ·β·ln(rand) ≥ remaining. */
static bool refresh_early(rcache *c, const rcache__key *k, int64_t remaining_ms) {
  double beta = c->ctx.opt.early_refresh_beta;
  if (beta <= 0 || remaining_ms < 0) return false; /* off, or no expiry */
  double delta_ms = atomic_load_explicit(&c->load_us[slot_of(k)], memory_order_relaxed) / 1000.0;
  if (delta_ms <= 0) delta_ms = 1; /* never loaded here yet: assume a fast loader */
  double r = rcache__rand01();
  if (r < 1e-12) r = 1e-12;
  return -delta_ms * beta * log(r) >= (double)remaining_ms;
}

/* The flights this thread leads, innermost first: a loader that asks for its own key joins
 * its caller's flight, which cannot end before the loader returns. */
typedef struct leading {
  const rcache__flight *f;
  struct leading *up;
} leading;
static _Thread_local leading *led;

static bool leads(const rcache__flight *f) {
  for (const leading *l = led; l; l = l->up)
    if (l->f == f) return true;
  return false;
}

/* One caller refreshes early; the others keep returning the current value meanwhile. */
static void maybe_refresh(rcache *c, const rcache__key *k, int64_t ttl_ms, const loader *L,
                          rcache_value *out) {
  bool leader;
  uint64_t epoch = rcache__inval_join(c, k->p, k->len);
  rcache__flight *f = rcache__flight_join(c->flights, k->p, k->len, epoch, &leader);
  if (!f) return;
  if (leader) {
    COUNT(c, early_refreshes);
    rcache_value fresh = {NULL, 0};
    leading me = {f, led};
    led = &me;
    rcache_status s = load_and_store(c, k, ttl_ms, L, &fresh, true);
    led = me.up;
    rcache__flight_finish(c->flights, f, s, &fresh);
    if (s == RCACHE_OK) { /* the caller gets the fresh value; a failure keeps the old one */
      rcache_value_free(out);
      *out = fresh;
    }
  }
  rcache__flight_leave(c->flights, f);
}

/* A miss: one loader per key in the process; the others wait for it. The epoch is read after
 * the miss, so it is at least the one at the call's start (a later one only makes a caller
 * that overlapped an invalidation load itself): a flight older than it is not joined. */
static rcache_status load_once(rcache *c, const rcache__key *k, int64_t ttl_ms, const loader *L,
                               rcache_value *out, bool reachable, const rcache__read *missed) {
  bool leader;
  uint64_t epoch = rcache__inval_join(c, k->p, k->len);
  rcache__flight *f = rcache__flight_join(c->flights, k->p, k->len, epoch, &leader);
  if (!f) return RCACHE_ENOMEM;
  rcache_status s = RCACHE_MISS;
  if (leader) {
    /* Another flight for this key ended after our read: its value is in the cache now,
     * so read it rather than load a second time. */
    if (reachable && rcache__flight_done_since(c->flights, k->p, k->len, missed->now_us, epoch)) {
      rcache_value tail = {NULL, 0};
      /* the call is counted as a load: a near hit here is not a hit of its family, but a
       * value fetched is filed under it */
      rcache__read again = RCACHE__READ(missed->key);
      again.count = false;
      again.in_flight = true; /* the call is in the gauge already */
      s = rcache__get_full(c, k, out, NULL, &tail, L->decl, &again);
      rcache_value_free(&tail);
      if (s == RCACHE_OK) COUNT(c, coalesced);
    }
    leading me = {f, led};
    led = &me;
    if (s != RCACHE_OK)
      s = c->ctx.opt.lease && reachable ? load_leased(c, k, ttl_ms, L, out)
                                        : load_and_store(c, k, ttl_ms, L, out, reachable);
    led = me.up;
    rcache__flight_finish(c->flights, f, s, out);
  } else if (leads(f)) { /* our own loader's call: nobody to wait for, load as after a wait */
    s = load_and_store(c, k, ttl_ms, L, out, reachable);
  } else {
    COUNT(c, coalesced);
    int64_t deadline = rcache__now_us() + (int64_t)c->ctx.opt.flight_wait_ms * 1000;
    s = rcache__flight_wait(c->flights, f, deadline, out);
    /* the leader took too long: load ourselves rather than fail the caller */
    if (s == RCACHE_ETIMEOUT) s = load_and_store(c, k, ttl_ms, L, out, reachable);
  }
  rcache__flight_leave(c->flights, f);
  return s;
}

static rcache_status get_or_set(rcache *c, const char *key, int64_t ttl_s, const loader *L,
                                rcache_value *out) {
  if (out) *out = (rcache_value){NULL, 0};
  BEGIN_KEYED(c, key, k);
  int64_t ttl_ms = rcache__ttl_ms(c, ttl_s);
  rcache_status s = RCACHE_OK;
  if (!out || !L->fn)
    s = rcache__einval(c, "out or load is NULL");
  else if (ttl_ms < 0)
    s = rcache__einval(c, "ttl_s out of range");
  if (s != RCACHE_OK) {
    rcache__key_free(&k);
    return s;
  }
  int64_t remaining = -2;
  rcache_value stale = {NULL, 0};
  rcache__read rd = RCACHE__READ(key); /* rd.now_us: the read's time (load_once) */
  /* the remaining TTL rides along (pipelined PTTL) only when early refresh needs it */
  bool xfetch = c->ctx.opt.early_refresh_beta > 0;
  s = rcache__get_full(c, &k, out, xfetch ? &remaining : NULL, &stale, L->decl, &rd);
  rcache_op op = s == RCACHE_OK ? RCACHE_OP_GET_OR_SET_HIT : RCACHE_OP_GET_OR_SET_LOAD;
  if (s == RCACHE_OK) {
    if (refresh_early(c, &k, remaining)) maybe_refresh(c, &k, ttl_ms, L, out);
  } else if (s == RCACHE_MISS || rcache__without_cache(c, s)) {
    if (!rd.in_flight) { /* a near hit whose tags were outdated: it waits from here on */
      rcache__in_flight(c, 1);
      rd.in_flight = true;
    }
    s = load_once(c, &k, ttl_ms, L, out, s == RCACHE_MISS, &rd);
    if (s == RCACHE_ELOADER && stale.data) { /* stale-if-error */
      COUNT(c, stale_served);
      *out = stale;
      stale = (rcache_value){NULL, 0};
      s = RCACHE_OK;
    }
  }
  rcache_value_free(&stale);
  rcache__key_free(&k);
  rcache__observe_read(c, op, &rd, s, out->len);
  return rcache__done(c, s);
}

rcache_status rcache_get_or_set(rcache *c, const char *key, int64_t ttl_s, rcache_loader_fn load,
                                void *ud, rcache_value *out) {
  return get_or_set(c, key, ttl_s, &(loader){load, ud, false, NULL}, out);
}

rcache_status rcache__get_or_set_framed(rcache *c, const char *key, int64_t ttl_s,
                                        rcache_loader_fn load, void *ud,
                                        const rcache__tagdecl *decl, rcache_value *out) {
  return get_or_set(c, key, ttl_s, &(loader){load, ud, true, decl}, out);
}
