/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The near cache's table (see near.h): sharded hash map, one mutex and one LRU list per
 * shard, bounded by the bytes malloc actually charges. Pure: no I/O, no clock.
 *
 * Fetch protocol, in the table's words. A slot is either a value or a placeholder ("being
 * fetched"). The first fetch of a key is its leader: it inserts a placeholder with a new
 * ticket. Fetches that start while a placeholder or a fresh value is there are followers
 * of it. When a follower's (or an overtaken leader's) reply comes back it compares what it
 * read with what the slot holds or will hold: a placeholder records the reply (its hash,
 * or "absent"), and the leader installs only if every recorded reply equals its own; a
 * value that differs from the reply is removed. So two replies that disagree never leave
 * either one behind, and a thread that has seen a value never finds a different, older
 * one afterwards. Invalidations, flushes and local writes simply remove the slot.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "near/near.h"

#define FOLLOW ((uint64_t)1 << 63) /* a follower's ticket: the leader's, with this bit */
#define MIN_SHARD_BYTES ((size_t)64 * 1024)
#define MAX_SHARDS 64

typedef struct lru_link {
  struct lru_link *prev, *next; /* shard->lru.next is the most recent */
} lru_link;

typedef struct entry {
  lru_link l;          /* first: a link is its entry */
  struct entry *hnext; /* bucket chain */
  uint64_t hash;
  uint64_t ticket;       /* the leader ticket that made this slot */
  int64_t expire_us;     /* end of the near lifetime */
  int64_t key_expire_us; /* the key's own expiry in Redis, -1 = none */
  size_t klen, vlen;
  size_t charge;       /* bytes accounted for this slot */
  bool pending;        /* a placeholder: the leader's reply has not come yet */
  bool seen, conflict; /* placeholder: replies recorded by followers */
  uint8_t group;       /* hit group (rcache__near_fill) */
  uint64_t seen_hash;
  uint64_t seal;     /* rcache__near_seal; 0: none */
  uint32_t seal_aux; /* kept with it */
  char data[];       /* key, then value + NUL */
} entry;

typedef struct shard {
  pthread_mutex_t mu;
  entry **buckets;
  size_t nbuckets; /* power of two */
  size_t nslots, nvalues;
  size_t bytes, budget;
  uint64_t next_ticket;
  lru_link lru;     /* sentinel */
  uint32_t hit_seq; /* counted hits (rcache__near_hit.seq) */
  uint64_t group_hits[RCACHE__NEAR_GROUPS];
  char pad[64];
} shard;

struct rcache__near {
  shard *shards;
  unsigned nshards;
  size_t max_entry;
  int64_t max_ttl_us;
  _Atomic bool serving;
  pthread_mutex_t gate_mu;
  int sources, blocked;
  _Atomic uint64_t gen; /* the seals' generation (near.h) */
  char *watch;          /* the watched keys' prefix, or NULL */
  size_t watch_len;
};

/* ---- small helpers --------------------------------------------------------------------------- */

static uint64_t hash64(const void *p, size_t len) {
  const unsigned char *s = p;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++)
    h = (h ^ s[i]) * 1099511628211ull;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 32);
}

/* What malloc charges for a block of `req` bytes at p (its header included). */
static size_t charge_of(void *p, size_t req) {
#if defined(__GLIBC__)
  (void)req;
  return malloc_usable_size(p) + sizeof(size_t);
#else
  (void)p;
  size_t c = (req + sizeof(size_t) + 15) & ~(size_t)15;
  return c < 32 ? 32 : c;
#endif
}

static shard *shard_of(rcache__near *n, uint64_t h) {
  return &n->shards[(h >> 40) & (n->nshards - 1)];
}

static entry *find(shard *s, uint64_t h, const char *key, size_t klen) {
  for (entry *e = s->buckets[h & (s->nbuckets - 1)]; e; e = e->hnext)
    if (e->hash == h && e->klen == klen && memcmp(e->data, key, klen) == 0) return e;
  return NULL;
}

static void lru_unlink(entry *e) {
  e->l.prev->next = e->l.next;
  e->l.next->prev = e->l.prev;
}

static void lru_front(shard *s, entry *e) {
  e->l.next = s->lru.next;
  e->l.prev = &s->lru;
  s->lru.next->prev = &e->l;
  s->lru.next = &e->l;
}

/* Takes e out of the shard and chains it on *dead (freed by the caller after unlocking). */
static void unlink_slot(shard *s, entry *e, entry **dead) {
  entry **pp = &s->buckets[e->hash & (s->nbuckets - 1)];
  while (*pp != e)
    pp = &(*pp)->hnext;
  *pp = e->hnext;
  lru_unlink(e);
  s->nslots--;
  if (!e->pending) s->nvalues--;
  s->bytes -= e->charge;
  e->hnext = *dead;
  *dead = e;
}

static void insert_slot(shard *s, entry *e) {
  entry **b = &s->buckets[e->hash & (s->nbuckets - 1)];
  e->hnext = *b;
  *b = e;
  lru_front(s, e);
  s->nslots++;
  if (!e->pending) s->nvalues++;
  s->bytes += e->charge;
}

/* Grows the bucket array at a load factor of 1 (when memory allows; a full chain still
 * works), then evicts least-recently-used slots down to the budget. */
static void settle(shard *s, entry **dead) {
  if (s->nslots > s->nbuckets) {
    size_t nb = s->nbuckets * 2;
    entry **b = rcache__calloc(nb, sizeof *b);
    if (b) {
      for (size_t i = 0; i < s->nbuckets; i++) {
        for (entry *e = s->buckets[i], *next; e; e = next) {
          next = e->hnext;
          e->hnext = b[e->hash & (nb - 1)];
          b[e->hash & (nb - 1)] = e;
        }
      }
      s->bytes -= charge_of(s->buckets, s->nbuckets * sizeof *b);
      rcache__free(s->buckets);
      s->buckets = b;
      s->nbuckets = nb;
      s->bytes += charge_of(b, nb * sizeof *b);
    }
  }
  while (s->bytes > s->budget && s->lru.prev != &s->lru)
    unlink_slot(s, (entry *)s->lru.prev, dead);
}

static void free_chain(entry *e) {
  while (e) {
    entry *next = e->hnext;
    rcache__free(e);
    e = next;
  }
}

static entry *slot_new(const char *key, size_t klen, const void *val, size_t vlen, bool pending) {
  size_t req = sizeof(entry) + klen + (pending ? 0 : vlen + 1);
  entry *e = rcache__malloc(req);
  if (!e) return NULL;
  memset(e, 0, sizeof *e);
  e->klen = klen;
  e->pending = pending;
  memcpy(e->data, key, klen);
  if (!pending) {
    e->vlen = vlen;
    if (vlen) memcpy(e->data + klen, val, vlen);
    e->data[klen + vlen] = '\0';
  }
  e->charge = charge_of(e, req);
  return e;
}

/* ---- life ------------------------------------------------------------------------------------ */

rcache__near *rcache__near_new(size_t max_bytes, int64_t max_ttl_ms) {
  rcache__near *n = rcache__calloc(1, sizeof *n);
  if (!n) return NULL;
  unsigned ns = 1;
  while (ns < MAX_SHARDS && max_bytes / (ns * 2) >= MIN_SHARD_BYTES)
    ns *= 2;
  n->nshards = ns;
  n->max_ttl_us = max_ttl_ms > 0 ? max_ttl_ms * 1000 : INT64_MAX;
  atomic_init(&n->gen, 1);
  n->shards = rcache__calloc(ns, sizeof *n->shards);
  pthread_mutex_init(&n->gate_mu, NULL);
  if (!n->shards) {
    rcache__near_free(n);
    return NULL;
  }
  /* what the table itself takes comes off the bound first */
  size_t fixed = charge_of(n, sizeof *n) + charge_of(n->shards, ns * sizeof *n->shards);
  size_t budget = max_bytes > fixed ? (max_bytes - fixed) / ns : 0;
  n->max_entry = budget / 4;
  for (unsigned i = 0; i < ns; i++) {
    shard *s = &n->shards[i];
    pthread_mutex_init(&s->mu, NULL);
    s->lru.next = s->lru.prev = &s->lru;
    s->budget = budget;
    s->nbuckets = 8;
    s->buckets = rcache__calloc(s->nbuckets, sizeof *s->buckets);
    if (!s->buckets) {
      n->nshards = i + 1;
      rcache__near_free(n);
      return NULL;
    }
    s->bytes = charge_of(s->buckets, s->nbuckets * sizeof *s->buckets);
  }
  return n;
}

void rcache__near_free(rcache__near *n) {
  if (!n) return;
  for (unsigned i = 0; n->shards && i < n->nshards; i++) {
    shard *s = &n->shards[i];
    for (size_t b = 0; s->buckets && b < s->nbuckets; b++)
      free_chain(s->buckets[b]);
    rcache__free(s->buckets);
    pthread_mutex_destroy(&s->mu);
  }
  rcache__free(n->shards);
  pthread_mutex_destroy(&n->gate_mu);
  rcache__free(n->watch);
  rcache__free(n);
}

void rcache__near_after_fork(rcache__near *n) {
  pthread_mutex_init(&n->gate_mu, NULL);
  for (unsigned i = 0; i < n->nshards; i++)
    pthread_mutex_init(&n->shards[i].mu, NULL);
  rcache__near_flush(n);
}

size_t rcache__near_max_entry(const rcache__near *n) {
  return n->max_entry;
}

/* ---- seals --------------------------------------------------------------------------------- */

rcache_status rcache__near_watch(rcache__near *n, const char *prefix, size_t len) {
  char *w = rcache__malloc(len + 1);
  if (!w) return RCACHE_ENOMEM;
  memcpy(w, prefix, len);
  w[len] = '\0';
  rcache__free(n->watch);
  n->watch = w;
  n->watch_len = len;
  return RCACHE_OK;
}

bool rcache__near_watched(const rcache__near *n, const char *key, size_t klen) {
  return n->watch && klen >= n->watch_len && memcmp(key, n->watch, n->watch_len) == 0;
}

/* A watched key was removed (the removal done, its lock released): every seal goes stale. */
static void advance(rcache__near *n) {
  atomic_fetch_add(&n->gen, 1);
}

uint64_t rcache__near_gen(rcache__near *n) {
  return atomic_load(&n->gen);
}

void rcache__near_seal(rcache__near *n, const char *key, size_t klen, uint64_t ticket, uint64_t gen,
                       uint32_t aux) {
  uint64_t h = hash64(key, klen);
  shard *s = shard_of(n, h);
  pthread_mutex_lock(&s->mu);
  entry *e = find(s, h, key, klen);
  if (e && !e->pending && e->ticket == ticket) {
    e->seal = gen;
    e->seal_aux = aux;
  }
  pthread_mutex_unlock(&s->mu);
}

/* ---- the serving gate ------------------------------------------------------------------------ */

static void gate(rcache__near *n, int dsources, int dblocked) {
  pthread_mutex_lock(&n->gate_mu);
  n->sources += dsources;
  n->blocked += dblocked;
  atomic_store(&n->serving, n->sources > 0 && n->blocked == 0);
  pthread_mutex_unlock(&n->gate_mu);
}

void rcache__near_add_source(rcache__near *n) {
  gate(n, 1, 1);
}
void rcache__near_remove_source(rcache__near *n, bool blocked) {
  gate(n, -1, blocked ? -1 : 0);
}
void rcache__near_block(rcache__near *n) {
  gate(n, 0, 1);
}
void rcache__near_unblock(rcache__near *n) {
  gate(n, 0, -1);
}

bool rcache__near_serving(const rcache__near *n) {
  return atomic_load_explicit(&n->serving, memory_order_acquire);
}

int rcache__near_sources(rcache__near *n) {
  pthread_mutex_lock(&n->gate_mu);
  int k = n->sources;
  pthread_mutex_unlock(&n->gate_mu);
  return k;
}

/* ---- lookups and fetches --------------------------------------------------------------------- */

rcache_status rcache__near_get(rcache__near *n, const char *key, size_t klen, int64_t now_us,
                               rcache_value *out, int64_t *key_ttl_ms, rcache__near_hit *hit,
                               rcache__near_mark *mark) {
  if (!rcache__near_serving(n)) return RCACHE_MISS;
  uint64_t h = hash64(key, klen);
  shard *s = shard_of(n, h);
  entry *dead = NULL;
  rcache_status st = RCACHE_MISS;
  pthread_mutex_lock(&s->mu);
  entry *e = find(s, h, key, klen);
  if (e && !e->pending && now_us >= e->expire_us) {
    unlink_slot(s, e, &dead);
  } else if (e && !e->pending) {
    char *d = rcache__malloc(e->vlen + 1);
    if (d) {
      memcpy(d, e->data + e->klen, e->vlen + 1);
      out->data = d;
      out->len = e->vlen;
      if (key_ttl_ms)
        *key_ttl_ms = e->key_expire_us < 0 ? -1 : (e->key_expire_us - now_us + 999) / 1000;
      lru_unlink(e);
      lru_front(s, e);
      if (hit) {
        hit->group = e->group;
        hit->seq = ++s->hit_seq;
        if (e->group < RCACHE__NEAR_GROUPS) s->group_hits[e->group]++;
      }
      if (mark)
        *mark = (rcache__near_mark){.ticket = e->ticket, .seal = e->seal, .aux = e->seal_aux};
      st = RCACHE_OK;
    } else {
      st = RCACHE_ENOMEM;
    }
  }
  pthread_mutex_unlock(&s->mu);
  free_chain(dead);
  return st;
}

uint64_t rcache__near_begin(rcache__near *n, const char *key, size_t klen) {
  /* Not serving: a witness, which follows whatever fetch is there when it completes. A
   * read that the table may not fill still reports what it saw: a fetch that began after
   * the table reopened may have read an older value than this one. */
  if (!rcache__near_serving(n)) return FOLLOW;
  uint64_t h = hash64(key, klen);
  shard *s = shard_of(n, h);
  entry *p = slot_new(key, klen, NULL, 0, true), *dead = NULL;
  if (!p) return FOLLOW;
  p->hash = h;
  uint64_t t;
  pthread_mutex_lock(&s->mu);
  entry *e = find(s, h, key, klen);
  if (e) { /* someone fetches (or just fetched) it: follow that fetch */
    t = e->ticket | FOLLOW;
    p->hnext = dead;
    dead = p;
  } else {
    t = p->ticket = ++s->next_ticket;
    insert_slot(s, p);
    settle(s, &dead);
  }
  pthread_mutex_unlock(&s->mu);
  free_chain(dead);
  return t;
}

/* A reply (value, or absent when data is NULL) meets slot e, which is not its own
 * placeholder: record it, or drop e if they disagree (true). */
static bool reconcile(shard *s, entry *e, const void *data, size_t len, entry **dead) {
  if (e->pending) {
    uint64_t vh = data ? hash64(data, len) : 0;
    if (!data || (e->seen && e->seen_hash != vh)) e->conflict = true;
    e->seen = true;
    e->seen_hash = vh;
  } else if (!data || e->vlen != len || memcmp(e->data + e->klen, data, len) != 0) {
    unlink_slot(s, e, dead);
    return true;
  }
  return false;
}

/* The common end of a fetch: e is a value to install (or NULL). */
static bool complete(rcache__near *n, uint64_t t, const char *key, size_t klen, const void *data,
                     size_t len, entry *v, bool observed) {
  uint64_t h = hash64(key, klen);
  shard *s = shard_of(n, h);
  entry *dead = NULL;
  bool installed = false, dropped = false;
  uint64_t leader = t & ~FOLLOW;
  pthread_mutex_lock(&s->mu);
  entry *e = find(s, h, key, klen);
  if (e && e->pending && e->ticket == leader && !(t & FOLLOW)) { /* our own placeholder */
    bool agree = v && !e->conflict && (!e->seen || e->seen_hash == hash64(data, len));
    unlink_slot(s, e, &dead);
    if (agree) {
      v->hash = h;
      v->ticket = leader;
      insert_slot(s, v);
      settle(s, &dead);
      installed = true;
    }
  } else if (e && e->ticket >= leader && observed) {
    dropped = reconcile(s, e, data, len, &dead);
  }
  pthread_mutex_unlock(&s->mu);
  free_chain(dead);
  if (dropped && rcache__near_watched(n, key, klen)) advance(n);
  if (!installed) rcache__free(v);
  return installed;
}

bool rcache__near_fill(rcache__near *n, uint64_t t, const char *key, size_t klen, const void *data,
                       size_t len, int64_t now_us, int64_t key_ttl_ms, uint8_t group) {
  if (t == 0) return false;
  int64_t life = n->max_ttl_us;
  if (key_ttl_ms >= 0 && key_ttl_ms * 1000 < life) life = key_ttl_ms * 1000;
  entry *v = NULL;
  if (!(t & FOLLOW) && life > 0 && klen + len <= n->max_entry &&
      (v = slot_new(key, klen, data, len, false))) {
    v->expire_us = life == INT64_MAX ? INT64_MAX : now_us + life;
    v->key_expire_us = key_ttl_ms < 0 ? -1 : now_us + key_ttl_ms * 1000;
    v->group = group;
  }
  return complete(n, t, key, klen, data ? data : "", len, v, true);
}

void rcache__near_end(rcache__near *n, uint64_t t, const char *key, size_t klen, bool observed) {
  if (t == 0) return;
  (void)complete(n, t, key, klen, NULL, 0, NULL, observed);
}

void rcache__near_saw(rcache__near *n, const char *key, size_t klen, const void *data, size_t len) {
  (void)complete(n, FOLLOW, key, klen, data, len, NULL, true);
}

/* ---- invalidation ---------------------------------------------------------------------------- */

bool rcache__near_invalidate(rcache__near *n, const char *key, size_t klen) {
  uint64_t h = hash64(key, klen);
  shard *s = shard_of(n, h);
  entry *dead = NULL;
  pthread_mutex_lock(&s->mu);
  entry *e = find(s, h, key, klen);
  bool found = e != NULL;
  if (e) unlink_slot(s, e, &dead);
  pthread_mutex_unlock(&s->mu);
  free_chain(dead);
  if (rcache__near_watched(n, key, klen))
    advance(n); /* found or not: a check may have read it remotely */
  return found;
}

void rcache__near_flush(rcache__near *n) {
  for (unsigned i = 0; i < n->nshards; i++) {
    shard *s = &n->shards[i];
    entry *dead = NULL;
    pthread_mutex_lock(&s->mu);
    while (s->lru.next != &s->lru)
      unlink_slot(s, (entry *)s->lru.next, &dead);
    pthread_mutex_unlock(&s->mu);
    free_chain(dead);
  }
  advance(n);
}

void rcache__near_group_hits(rcache__near *n, uint64_t *hits) {
  memset(hits, 0, RCACHE__NEAR_GROUPS * sizeof *hits);
  for (unsigned i = 0; i < n->nshards; i++) {
    shard *s = &n->shards[i];
    pthread_mutex_lock(&s->mu);
    for (int g = 0; g < RCACHE__NEAR_GROUPS; g++)
      hits[g] += s->group_hits[g];
    pthread_mutex_unlock(&s->mu);
  }
}

void rcache__near_usage(rcache__near *n, uint64_t *entries, uint64_t *bytes) {
  uint64_t en = 0, by = 0;
  for (unsigned i = 0; i < n->nshards; i++) {
    shard *s = &n->shards[i];
    pthread_mutex_lock(&s->mu);
    en += s->nvalues;
    by += s->bytes;
    pthread_mutex_unlock(&s->mu);
  }
  /* the table's own structures, taken off the bound at creation */
  by += charge_of(n, sizeof *n) + charge_of(n->shards, n->nshards * sizeof *n->shards);
  if (entries) *entries = en;
  if (bytes) *bytes = by;
}
