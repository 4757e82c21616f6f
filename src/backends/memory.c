/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * memory:// — an embedded, in-process store with Redis' semantics for everything the
 * backend interface asks: millisecond TTLs, NX, INCRBY's parsing and errors, PTTL's
 * -1/-2, glob matching, and an LRU bound on bytes (max_bytes, like maxmemory with
 * allkeys-lru).
 *
 * Layout: NSHARDS shards chosen by hash, each with its own mutex, a chained hash table
 * (power-of-two buckets, grown at load 1, halved below load 1/8 by deletes and the sweeper)
 * and an LRU list.
 *
 * The byte bound is global: one atomic byte count for the store. An entry is charged
 * rcache__memory_charge(klen, vlen) = header + key + value + NUL. LRU order is exact across
 * shards when bounded: every access takes a stamp from a global clock under its shard's
 * lock, so each shard's list is sorted by stamp and the globally least recently used
 * entry is the shard tail with the smallest stamp (published per shard in an atomic).
 * A write that takes the count over max_bytes evicts those tails, after releasing its own
 * shard lock (no two shard locks are ever held together). Concurrent writers may briefly
 * take the count over the bound; every write returns only once it is back under it.
 * Unbounded stores (max_bytes -1) skip LRU upkeep on reads entirely.
 *
 * Expiry: lazily on access (a key is gone once now > its deadline, as in Redis), and by
 * a sweeper thread started with the first key that gets a TTL. It wakes every SWEEP_MS
 * and, in every shard holding keys with a TTL, walks the next eighth of the buckets, so
 * memory held by expired keys comes back within about a second even if nobody reads them.
 * The thread is stopped and joined by destroy. Reads of keys without a TTL never read the
 * clock.
 *
 * fork(): every store is on a process-wide list, and fork.c's prepare handler, once its gate
 * has let the background threads go idle, takes every shard lock of every store on it
 * (rcache__memory_fork_hold, below), so that no shard is copied into a child half updated
 * by another thread.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/memory.h"

#define NSHARDS 16
#define SHARD_SHIFT 60 /* the top 4 bits of the hash choose the shard */
#define MIN_BUCKETS 16
#define SWEEP_MS 100

typedef struct mentry {
  struct mentry *hnext;       /* hash chain */
  struct mentry *prev, *next; /* LRU list, head = most recently used */
  uint64_t hash;
  uint64_t stamp;    /* LRU clock value at the last access (bounded stores only) */
  int64_t expire_ms; /* monotonic deadline in ms; 0 = no expiry */
  size_t klen, vlen;
  char kv[]; /* key bytes, value bytes, NUL */
} mentry;

/* Shards and the store's counters sit on their own cache lines: a lock taken on one core
 * must not evict the line another core reads its shard or the seed from. */
#define CACHE_LINE 64

typedef struct mshard {
  _Alignas(CACHE_LINE) pthread_mutex_t mu;
  mentry **tab;
  size_t nb;        /* buckets, a power of two */
  size_t count;     /* entries */
  size_t nttl;      /* entries with a TTL */
  size_t sweep_pos; /* next bucket the sweeper looks at */
  mentry *head, *tail;
  _Atomic uint64_t tail_stamp; /* stamp of tail, UINT64_MAX when empty */
} mshard;

typedef struct mstore {
  rcache__backend base;
  int64_t max_bytes; /* -1 = unbounded */
  uint64_t seed;
  _Alignas(CACHE_LINE) _Atomic int64_t bytes;
  _Atomic uint64_t keys;
  _Atomic uint64_t evictions;
  _Alignas(CACHE_LINE) _Atomic uint64_t clock;
  mshard sh[NSHARDS];
  /* the sweeper */
  pthread_mutex_t ctl;
  pthread_cond_t wake;
  pthread_t thread;
  _Atomic bool started;
  bool stop;
  struct mstore *fork_prev, *fork_next; /* the list of stores, under stores_mu */
} mstore;

static mstore *store_of(rcache__backend *b) {
  return (mstore *)b;
}

static int64_t now_ms(void) {
  return rcache__now_us() / 1000;
}

size_t rcache__memory_charge(size_t klen, size_t vlen) {
  return sizeof(mentry) + klen + vlen + 1;
}

static size_t charge_of(const mentry *e) {
  return rcache__memory_charge(e->klen, e->vlen);
}

/* ---- hashing --------------------------------------------------------------------------------- */

static uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

/* Seeded per store so that crafted keys cannot pile into one chain. */
static uint64_t hash_key(const mstore *m, const char *p, size_t n) {
  uint64_t h = m->seed ^ (n * 0x9E3779B97F4A7C15ull);
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = (h ^ fmix64(w)) * 0x100000001b3ull;
    h = (h << 29) | (h >> 35);
    p += 8;
    n -= 8;
  }
  uint64_t w = 0;
  for (size_t i = 0; i < n; i++)
    w |= (uint64_t)(unsigned char)p[i] << (8 * i);
  return fmix64(h ^ fmix64(w ^ 0x27d4eb2f165667c5ull));
}

static mshard *shard_of(mstore *m, uint64_t h) {
  return &m->sh[h >> SHARD_SHIFT];
}

/* ---- entries and the per-shard table (all under the shard's lock) ---------------------------- */

static mentry *entry_new(uint64_t h, const char *key, size_t klen, const void *data, size_t len,
                         int64_t expire_ms) {
  mentry *e = rcache__malloc(sizeof *e + klen + len + 1);
  if (!e) return NULL;
  e->hnext = e->prev = e->next = NULL;
  e->hash = h;
  e->stamp = 0;
  e->expire_ms = expire_ms;
  e->klen = klen;
  e->vlen = len;
  memcpy(e->kv, key, klen);
  if (len) memcpy(e->kv + klen, data, len);
  e->kv[klen + len] = '\0';
  return e;
}

static bool expired(const mentry *e, int64_t now) {
  return e->expire_ms != 0 && now > e->expire_ms;
}

static void tail_sync(mshard *s) {
  atomic_store_explicit(&s->tail_stamp, s->tail ? s->tail->stamp : UINT64_MAX,
                        memory_order_relaxed);
}

static void lru_unlink(mshard *s, mentry *e) {
  if (e->prev)
    e->prev->next = e->next;
  else
    s->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    s->tail = e->prev;
  e->prev = e->next = NULL;
}

static void lru_push(mstore *m, mshard *s, mentry *e) {
  if (m->max_bytes >= 0) e->stamp = atomic_fetch_add_explicit(&m->clock, 1, memory_order_relaxed);
  e->prev = NULL;
  e->next = s->head;
  if (s->head) s->head->prev = e;
  s->head = e;
  if (!s->tail) s->tail = e;
}

/* A read of a bounded store: e becomes the most recently used. */
static void lru_touch(mstore *m, mshard *s, mentry *e) {
  if (m->max_bytes < 0) return;
  lru_unlink(s, e);
  lru_push(m, s, e);
  tail_sync(s);
}

/* The link that points at key's entry, or at the NULL ending its chain. */
static mentry **find_link(mshard *s, uint64_t h, const char *key, size_t klen) {
  mentry **l = &s->tab[h & (s->nb - 1)];
  for (; *l; l = &(*l)->hnext) {
    mentry *e = *l;
    if (e->hash == h && e->klen == klen && memcmp(e->kv, key, klen) == 0) break;
  }
  return l;
}

/* Unlinks *l from its chain and the LRU list, uncharges and frees it. */
static void remove_at(mstore *m, mshard *s, mentry **l) {
  mentry *e = *l;
  *l = e->hnext;
  lru_unlink(s, e);
  s->count--;
  if (e->expire_ms) s->nttl--;
  atomic_fetch_sub_explicit(&m->bytes, (int64_t)charge_of(e), memory_order_relaxed);
  atomic_fetch_sub_explicit(&m->keys, 1, memory_order_relaxed);
  rcache__free(e);
  tail_sync(s);
}

static void remove_entry(mstore *m, mshard *s, mentry *e) {
  mentry **l = &s->tab[e->hash & (s->nb - 1)];
  while (*l != e)
    l = &(*l)->hnext;
  remove_at(m, s, l);
}

/* The live entry for key, dropping it first when it has expired (lazy expiry). *now is
 * the clock, read here only when needed (a key with a TTL) if it is still NOW_UNREAD. */
#define NOW_UNREAD INT64_MIN
static mentry *lookup(mstore *m, mshard *s, uint64_t h, const char *key, size_t klen,
                      int64_t *now) {
  mentry **l = find_link(s, h, key, klen);
  mentry *e = *l;
  if (e && e->expire_ms && *now == NOW_UNREAD) *now = now_ms();
  if (e && expired(e, *now)) {
    remove_at(m, s, l);
    return NULL;
  }
  return e;
}

/* Rehashes into nb buckets; on ENOMEM the old table stays (longer chains, still correct). */
static void resize(mshard *s, size_t nb) {
  mentry **t = rcache__calloc(nb, sizeof *t);
  if (!t) return;
  for (size_t i = 0; i < s->nb; i++) {
    for (mentry *e = s->tab[i], *nx; e; e = nx) {
      nx = e->hnext;
      e->hnext = t[e->hash & (nb - 1)];
      t[e->hash & (nb - 1)] = e;
    }
  }
  rcache__free(s->tab);
  s->tab = t;
  s->nb = nb;
  s->sweep_pos &= nb - 1;
}

/* Links a new entry in (key known absent), charges it. */
static void insert(mstore *m, mshard *s, mentry *e) {
  mentry **b = &s->tab[e->hash & (s->nb - 1)];
  e->hnext = *b;
  *b = e;
  lru_push(m, s, e);
  tail_sync(s);
  s->count++;
  if (e->expire_ms) s->nttl++;
  atomic_fetch_add_explicit(&m->bytes, (int64_t)charge_of(e), memory_order_relaxed);
  atomic_fetch_add_explicit(&m->keys, 1, memory_order_relaxed);
  if (s->count > s->nb) resize(s, s->nb * 2);
}

/* Replaces old (in the table) by e, which takes its place as most recently used. */
static void replace(mstore *m, mshard *s, mentry *old, mentry *e) {
  remove_entry(m, s, old);
  insert(m, s, e);
}

/* Frees every entry of a shard and resets its table to the minimum size. */
static void shard_clear(mstore *m, mshard *s) {
  for (size_t i = 0; i < s->nb; i++) {
    for (mentry *e = s->tab[i], *nx; e; e = nx) {
      nx = e->hnext;
      atomic_fetch_sub_explicit(&m->bytes, (int64_t)charge_of(e), memory_order_relaxed);
      atomic_fetch_sub_explicit(&m->keys, 1, memory_order_relaxed);
      rcache__free(e);
    }
    s->tab[i] = NULL;
  }
  s->head = s->tail = NULL;
  s->count = s->nttl = 0;
  tail_sync(s);
  if (s->nb > MIN_BUCKETS) resize(s, MIN_BUCKETS);
}

/* ---- the bound and the sweeper --------------------------------------------------------------- */

/* Evicts globally least recently used entries until the store is within max_bytes. Called
 * with no shard lock held. */
static void evict_to_bound(mstore *m) {
  if (m->max_bytes < 0) return;
  while (atomic_load_explicit(&m->bytes, memory_order_relaxed) > m->max_bytes) {
    int best = -1;
    uint64_t bs = UINT64_MAX;
    for (int i = 0; i < NSHARDS; i++) {
      uint64_t t = atomic_load_explicit(&m->sh[i].tail_stamp, memory_order_relaxed);
      if (t < bs) {
        bs = t;
        best = i;
      }
    }
    if (best < 0) return; /* nothing left to evict (the count is in flight elsewhere) */
    mshard *s = &m->sh[best];
    pthread_mutex_lock(&s->mu);
    if (s->tail) {
      remove_entry(m, s, s->tail);
      atomic_fetch_add_explicit(&m->evictions, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&s->mu);
  }
}

/* One sweeper step over a shard: an eighth of its buckets (at least 64), dropping expired
 * entries; then shrinks a table that has become mostly empty. */
static void sweep_shard(mstore *m, mshard *s, int64_t now) {
  pthread_mutex_lock(&s->mu);
  if (s->nttl > 0) {
    size_t budget = s->nb / 8 < 64 ? 64 : s->nb / 8;
    if (budget > s->nb) budget = s->nb;
    for (size_t i = 0; i < budget; i++) {
      mentry **l = &s->tab[s->sweep_pos];
      while (*l) {
        if (expired(*l, now))
          remove_at(m, s, l);
        else
          l = &(*l)->hnext;
      }
      s->sweep_pos = (s->sweep_pos + 1) & (s->nb - 1);
    }
  }
  if (s->nb > MIN_BUCKETS && s->count < s->nb / 8) resize(s, s->nb / 2);
  pthread_mutex_unlock(&s->mu);
}

static void *sweeper_main(void *arg) {
  mstore *m = arg;
  pthread_mutex_lock(&m->ctl);
  while (!m->stop) {
    struct timespec ts;
    rcache__deadline_ts(&ts, rcache__now_us() + SWEEP_MS * 1000);
    rcache__cond_timedwait(&m->wake, &m->ctl, &ts);
    if (m->stop) break;
    pthread_mutex_unlock(&m->ctl);
    int64_t now = now_ms();
    for (int i = 0; i < NSHARDS; i++)
      sweep_shard(m, &m->sh[i], now);
    pthread_mutex_lock(&m->ctl);
  }
  pthread_mutex_unlock(&m->ctl);
  return NULL;
}

/* Starts the sweeper with the first key that has a TTL. Should the thread not start,
 * expiry stays lazy (still correct; memory comes back when keys are touched). */
static void ensure_sweeper(mstore *m) {
  if (atomic_load_explicit(&m->started, memory_order_acquire)) return;
  pthread_mutex_lock(&m->ctl);
  if (!atomic_load_explicit(&m->started, memory_order_relaxed) && !m->stop) {
    if (rcache__bg_spawn(&m->thread, sweeper_main, m) == 0) {
      atomic_store_explicit(&m->started, true, memory_order_release);
    } else {
      rcache__log(m->base.ctx, RCACHE_LOG_WARN,
                  "memory://: could not start the expiry sweeper; expiry stays lazy");
      m->stop = true; /* do not try again on every write */
    }
  }
  pthread_mutex_unlock(&m->ctl);
}

/* ---- operations ------------------------------------------------------------------------------ */

static rcache_status too_big(const mstore *m, size_t klen, size_t vlen) {
  if (m->max_bytes >= 0 && rcache__memory_charge(klen, vlen) > (uint64_t)m->max_bytes) {
    rcache__errf("value of %zu bytes does not fit in memory:// max_bytes %lld", vlen,
                 (long long)m->max_bytes);
    return RCACHE_ETOOBIG;
  }
  return RCACHE_OK;
}

static rcache_status mem_get(rcache__backend *b, const char *key, size_t klen, rcache_value *out,
                             int64_t *pttl_ms) {
  mstore *m = store_of(b);
  uint64_t h = hash_key(m, key, klen);
  mshard *s = shard_of(m, h);
  int64_t now = NOW_UNREAD; /* keys without a TTL need no clock */
  rcache_status st = RCACHE_OK;
  int64_t pttl = -2;
  *out = (rcache_value){NULL, 0};
  pthread_mutex_lock(&s->mu);
  mentry *e = lookup(m, s, h, key, klen, &now);
  if (!e) {
    st = RCACHE_MISS;
  } else if (!(out->data = rcache__memdup0(e->kv + e->klen, e->vlen))) {
    st = RCACHE_ENOMEM;
  } else {
    out->len = e->vlen;
    pttl = e->expire_ms ? (e->expire_ms > now ? e->expire_ms - now : 0) : -1;
    lru_touch(m, s, e);
  }
  pthread_mutex_unlock(&s->mu);
  if (pttl_ms) *pttl_ms = st == RCACHE_OK ? pttl : -2;
  return st;
}

/* Stores one value. NX: RCACHE_MISS when a live key exists. Evicts to the bound after. */
static rcache_status set_one(mstore *m, const char *key, size_t klen, const void *data, size_t len,
                             int64_t ttl_ms, int flags, bool *with_ttl) {
  int64_t now = now_ms();
  uint64_t h = hash_key(m, key, klen);
  mentry *e = entry_new(h, key, klen, data, len, ttl_ms > 0 ? now + ttl_ms : 0);
  if (!e) return RCACHE_ENOMEM;
  mshard *s = shard_of(m, h);
  pthread_mutex_lock(&s->mu);
  mentry *old = lookup(m, s, h, key, klen, &now);
  if (old && (flags & RCACHE__SET_NX)) {
    pthread_mutex_unlock(&s->mu);
    rcache__free(e);
    return RCACHE_MISS;
  }
  if (old)
    replace(m, s, old, e);
  else
    insert(m, s, e);
  pthread_mutex_unlock(&s->mu);
  if (ttl_ms > 0) *with_ttl = true;
  return RCACHE_OK;
}

static rcache_status mem_set(rcache__backend *b, const char *key, size_t klen, const void *data,
                             size_t len, int64_t ttl_ms, int flags) {
  mstore *m = store_of(b);
  rcache_status st = too_big(m, klen, len);
  if (st != RCACHE_OK) return st;
  bool with_ttl = false;
  st = set_one(m, key, klen, data, len, ttl_ms, flags, &with_ttl);
  if (with_ttl) ensure_sweeper(m);
  evict_to_bound(m);
  return st;
}

static rcache_status mem_del(rcache__backend *b, const char *key, size_t klen) {
  mstore *m = store_of(b);
  uint64_t h = hash_key(m, key, klen);
  mshard *s = shard_of(m, h);
  pthread_mutex_lock(&s->mu);
  int64_t now = NOW_UNREAD;
  mentry *e = lookup(m, s, h, key, klen, &now);
  if (e) remove_entry(m, s, e);
  if (s->nb > MIN_BUCKETS && s->count < s->nb / 8) resize(s, s->nb / 2);
  pthread_mutex_unlock(&s->mu);
  return e ? RCACHE_OK : RCACHE_MISS;
}

static bool key_matches(const mentry *e, const char *glob, size_t glen) {
  return rcache__glob_match(glob, glen, e->kv, e->klen);
}

/* One shard is one batch: its count goes to p once the shard's lock is released. */
static rcache_status mem_del_match(rcache__backend *b, const char *glob, size_t glen,
                                   rcache__progress *p) {
  mstore *m = store_of(b);
  int64_t now = now_ms();
  for (int i = 0; i < NSHARDS; i++) {
    mshard *s = &m->sh[i];
    uint64_t deleted = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t j = 0; j < s->nb; j++) {
      mentry **l = &s->tab[j];
      while (*l) {
        bool live = !expired(*l, now);
        if (!live ||
            (key_matches(*l, glob, glen) && !rcache__progress_keeps(p, (*l)->kv, (*l)->klen))) {
          remove_at(m, s, l);
          deleted += live;
        } else {
          l = &(*l)->hnext;
        }
      }
    }
    pthread_mutex_unlock(&s->mu);
    if (!rcache__progress_add(p, deleted)) break;
  }
  return RCACHE_OK;
}

/* Matching keys are copied under the shard's lock and handed to fn after it is released,
 * so fn may call back into the cache (delete what it visits, for instance). The list is
 * reused from shard to shard: fewer allocations, and as many whichever shards the keys
 * hash to (the allocation-failure walk counts on that). */
static rcache_status mem_scan(rcache__backend *b, const char *glob, size_t glen, uint64_t limit,
                              rcache_scan_fn fn, void *ud) {
  mstore *m = store_of(b);
  uint64_t visited = 0;
  rcache_status st = RCACHE_OK;
  char **found = NULL;
  size_t *lens = NULL, cap = 0;
  for (int i = 0; i < NSHARDS && st == RCACHE_OK; i++) {
    mshard *s = &m->sh[i];
    int64_t now = now_ms();
    size_t nf = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t j = 0; j < s->nb && st == RCACHE_OK && !(limit && visited + nf >= limit); j++) {
      for (mentry *e = s->tab[j]; e; e = e->hnext) {
        if (limit && visited + nf >= limit) break;
        if (expired(e, now) || !key_matches(e, glob, glen)) continue;
        if (nf == cap) {
          size_t nc = cap ? 2 * cap : 64;
          char **f2 = rcache__realloc(found, nc * sizeof *f2);
          size_t *l2 = f2 ? rcache__realloc(lens, nc * sizeof *l2) : NULL;
          if (f2) found = f2;
          if (l2) lens = l2;
          if (!f2 || !l2) {
            st = RCACHE_ENOMEM;
            break;
          }
          cap = nc;
        }
        if (!(found[nf] = rcache__memdup0(e->kv, e->klen))) {
          st = RCACHE_ENOMEM;
          break;
        }
        lens[nf++] = e->klen;
      }
    }
    pthread_mutex_unlock(&s->mu);
    bool go = st == RCACHE_OK;
    for (size_t j = 0; j < nf; j++) {
      if (go) {
        visited++;
        go = fn(found[j], lens[j], ud);
      }
      rcache__free(found[j]);
    }
    if (!go || (limit && visited >= limit)) break;
  }
  rcache__free(found);
  rcache__free(lens);
  return st;
}

/* INCRBY: Redis' parsing (string2ll) and errors; the key keeps its TTL; a key created here
 * gets ttl_ms when > 0. */
static rcache_status mem_incr(rcache__backend *b, const char *key, size_t klen, int64_t by,
                              int64_t ttl_ms, int64_t *out) {
  mstore *m = store_of(b);
  int64_t now = now_ms();
  uint64_t h = hash_key(m, key, klen);
  mshard *s = shard_of(m, h);
  char num[24];
  rcache_status st = RCACHE_OK;
  bool created = false;
  pthread_mutex_lock(&s->mu);
  mentry *old = lookup(m, s, h, key, klen, &now);
  int64_t v = by, cur = 0;
  if (old && !rcache__parse_i64(old->kv + old->klen, old->vlen, &cur)) {
    rcache__errf("value is not an integer or out of range");
    st = RCACHE_ETYPE;
  } else if (old && __builtin_add_overflow(cur, by, &v)) {
    rcache__errf("increment or decrement would overflow");
    st = RCACHE_ERANGE;
  }
  size_t len = (size_t)snprintf(num, sizeof num, "%lld", (long long)v);
  if (st == RCACHE_OK) st = too_big(m, klen, len);
  if (st == RCACHE_OK) {
    int64_t expire = old ? old->expire_ms : ttl_ms > 0 ? now + ttl_ms : 0;
    mentry *e = entry_new(h, key, klen, num, len, expire);
    if (!e) {
      st = RCACHE_ENOMEM;
    } else {
      if (old)
        replace(m, s, old, e);
      else
        insert(m, s, e);
      created = !old && expire;
      *out = v;
    }
  }
  pthread_mutex_unlock(&s->mu);
  if (created) ensure_sweeper(m);
  if (st == RCACHE_OK) evict_to_bound(m);
  return st;
}

static rcache_status mem_pttl(rcache__backend *b, const char *key, size_t klen, int64_t *ms) {
  mstore *m = store_of(b);
  int64_t now = NOW_UNREAD;
  uint64_t h = hash_key(m, key, klen);
  mshard *s = shard_of(m, h);
  pthread_mutex_lock(&s->mu);
  mentry *e = lookup(m, s, h, key, klen, &now);
  *ms = !e ? -2 : !e->expire_ms ? -1 : e->expire_ms > now ? e->expire_ms - now : 0;
  pthread_mutex_unlock(&s->mu);
  return RCACHE_OK;
}

static rcache_status mem_flushdb(rcache__backend *b) {
  mstore *m = store_of(b);
  for (int i = 0; i < NSHARDS; i++) {
    pthread_mutex_lock(&m->sh[i].mu);
    shard_clear(m, &m->sh[i]);
    pthread_mutex_unlock(&m->sh[i].mu);
  }
  return RCACHE_OK;
}

static rcache_status mem_get_many(rcache__backend *b, const char *const *keys, const size_t *klens,
                                  size_t n, rcache_value *vals, rcache_status *statuses) {
  for (size_t i = 0; i < n; i++)
    statuses[i] = mem_get(b, keys[i], klens[i], &vals[i], NULL);
  return RCACHE_OK;
}

/* Like MSET: every value is checked against the bound before any is stored. */
static rcache_status mem_set_many(rcache__backend *b, const char *const *keys, const size_t *klens,
                                  const rcache_value *vals, size_t n, const int64_t *ttl_ms) {
  mstore *m = store_of(b);
  for (size_t i = 0; i < n; i++) {
    rcache_status st = too_big(m, klens[i], vals[i].len);
    if (st != RCACHE_OK) return st;
  }
  bool with_ttl = false;
  rcache_status st = RCACHE_OK;
  for (size_t i = 0; i < n && st == RCACHE_OK; i++) {
    st = set_one(m, keys[i], klens[i], vals[i].data ? vals[i].data : "", vals[i].len, ttl_ms[i], 0,
                 &with_ttl);
    evict_to_bound(m);
  }
  if (with_ttl) ensure_sweeper(m);
  return st;
}

static rcache_status mem_health(rcache__backend *b, rcache_health *h) {
  h->latency_ms = 0;
  snprintf(h->server_version, sizeof h->server_version, "memory");
  return RCACHE_OK;
}

static bool mem_available(rcache__backend *b) {
  return true;
}

/* A forked child has its own copy of the data; the sweeper thread stayed with the parent,
 * and may have held ctl then (it waits for the fork to end holding it: fork.c's gate). The
 * shard locks need nothing: the fork held them all, and the child handler released them. */
static void mem_after_fork(rcache__backend *b) {
  mstore *m = store_of(b);
  pthread_mutex_init(&m->ctl, NULL);
  rcache__cond_init_mono(&m->wake);
  atomic_store(&m->started, false); /* the next write with a TTL starts one here */
}

/* ---- fork ------------------------------------------------------------------------------------ */

/* Every store of the process, so that a fork can wait for the operations in progress on them:
 * a shard copied into a child in the middle of an update (a rehash, an LRU relink) would be
 * corrupt there for good. stores_mu is held from the prepare handler to the parent or child
 * one, so a store opened or destroyed meanwhile waits for the fork to be over.
 *
 * Why this cannot deadlock:
 *  - no memory:// code calls out of the library while it holds a shard lock (no callback, no
 *    log, no wait; only the C library's allocator, memcmp and the thread's error buffer), so
 *    the forking thread never holds one itself, and a holder always lets go in bounded time
 *    (an allocator replacing malloc registers its own fork handlers when it starts, before
 *    any store exists, so they lock it after these, as glibc does with its own);
 *  - fork.c takes them after its gate: a background thread of ours (the sweeper, an async
 *    worker) holds none while it waits, and one that wakes during the fork waits for it to
 *    end holding at most its store's ctl, never a shard lock; nobody waits for the gate while
 *    holding a shard lock (ensure_sweeper starts the sweeper with none held);
 *  - no other code holds two shard locks (evict_to_bound takes one at a time), so taking them
 *    all in a fixed order (list order, then shard index) cannot cross another thread's order.
 * Not covered: a fork() from a signal handler that interrupted a memory:// call in the same
 * thread (it would wait for itself, as glibc's fork does on its allocator's locks). The cost
 * to a fork of a process without stores: one uncontended lock of stores_mu. */
static pthread_mutex_t stores_mu = PTHREAD_MUTEX_INITIALIZER;
static mstore *stores;

static void stores_add(mstore *m) {
  pthread_mutex_lock(&stores_mu);
  m->fork_prev = NULL;
  m->fork_next = stores;
  if (stores) stores->fork_prev = m;
  stores = m;
  pthread_mutex_unlock(&stores_mu);
}

static void stores_remove(mstore *m) {
  pthread_mutex_lock(&stores_mu);
  if (m->fork_prev)
    m->fork_prev->fork_next = m->fork_next;
  else
    stores = m->fork_next;
  if (m->fork_next) m->fork_next->fork_prev = m->fork_prev;
  pthread_mutex_unlock(&stores_mu);
}

void rcache__memory_fork_hold(void) {
  pthread_mutex_lock(&stores_mu);
  for (mstore *m = stores; m; m = m->fork_next)
    for (int i = 0; i < NSHARDS; i++)
      pthread_mutex_lock(&m->sh[i].mu);
}

/* In the parent, and in the child too: there the forking thread is the only thread and owns
 * every lock it took, so it unlocks them as it would have in the parent (re-initialising a
 * locked mutex instead is undefined, and ThreadSanitizer would still count it held). What
 * they guard is whole: nobody was inside. */
void rcache__memory_fork_release(void) {
  for (mstore *m = stores; m; m = m->fork_next)
    for (int i = NSHARDS - 1; i >= 0; i--)
      pthread_mutex_unlock(&m->sh[i].mu);
  pthread_mutex_unlock(&stores_mu);
}

static void mem_destroy(rcache__backend *b) {
  mstore *m = store_of(b);
  stores_remove(m); /* first: a fork must not lock what is torn down below */
  pthread_mutex_lock(&m->ctl);
  m->stop = true;
  pthread_cond_signal(&m->wake);
  pthread_mutex_unlock(&m->ctl);
  if (atomic_load(&m->started)) rcache__bg_join(m->thread);
  for (int i = 0; i < NSHARDS; i++) {
    shard_clear(m, &m->sh[i]);
    rcache__free(m->sh[i].tab);
    pthread_mutex_destroy(&m->sh[i].mu);
  }
  pthread_cond_destroy(&m->wake);
  pthread_mutex_destroy(&m->ctl);
  rcache__free(m);
}

void rcache__memory_usage(rcache__backend *b, uint64_t *keys, uint64_t *bytes,
                          uint64_t *evictions) {
  mstore *m = store_of(b);
  if (keys) *keys = atomic_load(&m->keys);
  if (bytes) *bytes = (uint64_t)atomic_load(&m->bytes);
  if (evictions) *evictions = atomic_load(&m->evictions);
}

static const rcache__backend_ops mem_ops = {
    .mode = "memory",
    .destroy = mem_destroy,
    .get = mem_get,
    .set = mem_set,
    .del = mem_del,
    .del_match = mem_del_match,
    .scan = mem_scan,
    .incr = mem_incr,
    .pttl = mem_pttl,
    .flushdb = mem_flushdb,
    .get_many = mem_get_many,
    .set_many = mem_set_many,
    .health = mem_health,
    .available = mem_available,
    .after_fork = mem_after_fork,
};

rcache_status rcache__memory_open(rcache__ctx *ctx, rcache__backend **out) {
  mstore *m = rcache__aligned_alloc(CACHE_LINE, sizeof *m); /* sizeof is a multiple of the line */
  if (!m) return RCACHE_ENOMEM;
  memset(m, 0, sizeof *m);
  m->base.ops = &mem_ops;
  m->base.ctx = ctx;
  m->max_bytes = ctx->url.max_bytes < 0 ? -1 : ctx->url.max_bytes;
  m->seed = ((uint64_t)(rcache__rand01() * 9007199254740992.0) << 11) ^ (uint64_t)rcache__now_us();
  for (int i = 0; i < NSHARDS; i++) {
    mshard *s = &m->sh[i];
    s->nb = MIN_BUCKETS;
    s->tab = rcache__calloc(MIN_BUCKETS, sizeof *s->tab);
    atomic_init(&s->tail_stamp, UINT64_MAX);
    if (!s->tab) {
      for (int j = 0; j < i; j++) {
        rcache__free(m->sh[j].tab);
        pthread_mutex_destroy(&m->sh[j].mu);
      }
      rcache__free(m);
      return RCACHE_ENOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
  }
  pthread_mutex_init(&m->ctl, NULL);
  rcache__cond_init_mono(&m->wake);
  rcache__fork_watch(); /* rcache_open has, but a store opened alone must be held too */
  stores_add(m);
  *out = &m->base;
  return RCACHE_OK;
}
