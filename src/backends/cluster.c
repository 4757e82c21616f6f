/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Redis Cluster: keys routed by slot (slot.c) to the master that serves it, one pool (with
 * its own breaker and prober) per master, so a dead master costs only its own slots.
 *
 * The slot map comes from CLUSTER SHARDS (CLUSTER SLOTS on servers without it) asked of
 * any node that answers, at open, on every MOVED, when a node's connections fail, and
 * periodically from a background thread. Redirections are followed within the call's
 * deadline: MOVED (retry at the new node and refresh the map), ASK (ASKING, then one
 * retry there, map unchanged), TRYAGAIN and CLUSTERDOWN (short waits, then retry), with
 * at most opt.max_redirects MOVED/ASK hops per call. A batch's keys are split by master and
 * run at all masters at once; those redirected are followed together in the same way, one
 * more round for all of them (batch_run), not one call per key.
 *
 * Nodes are never freed before the backend is: a slot's entry is an atomic pointer to a
 * node that stays valid, so routing takes no lock.
 *
 * Near cache: each node has its own invalidation listener (tracking.c), started the first
 * time the node serves as a master (in a map, or as the target of a redirection); all of
 * them feed the handle's one near table, which serves only while every started listener
 * and its node's pool are up. Any change of a slot's master, and any ASK, flushes the
 * table: keys read from one node are not tracked by the next. A node that died for good
 * keeps the near cache from serving (never from serving stale values) until it is back.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/cluster_map.h"
#include "backends/redis.h"
#include "backends/slot.h"
#include "backends/topology.h"
#include "near/tracking.h"

#define REFRESH_EVERY_MS 2000   /* periodic refresh while every slot's master is up */
#define REFRESH_DEGRADED_MS 250 /* while a master is down or slots are unserved */
#define REFRESH_MIN_GAP_MS 100  /* at most one refresh per this, however many asked */

typedef struct cnode {
  rcache__addr addr;
  rcache__pool *pool;
  struct cluster *cl;
  rcache__tracking *trk;   /* near cache listener (NULL when the near cache is off) */
  atomic_bool trk_started; /* set once started */
  pthread_mutex_t trk_mu;  /* one start at a time */
} cnode;

typedef struct cluster {
  rcache__redis r; /* first: the backend */
  _Atomic(cnode *) slots[RCACHE__SLOTS];

  pthread_mutex_t mu; /* guards the node list and the refresher's flags */
  pthread_cond_t wake;
  cnode **nodes;
  size_t nnodes, cap;
  cnode **slotless; /* the map's masters without slots: one importing a slot holds some keys */
  size_t nslotless;
  bool stop, has_thread;
  atomic_bool refresh_wanted; /* set by callers, cleared by the refresher when it runs */
  pthread_t refresher;
  pthread_mutex_t refresh_mu; /* one refresh at a time */
  atomic_bool near_on;        /* the near table is ours to feed (decided at open) */
  bool near_hold;             /* a seed list's first contact holds the near table (a source) */
  rcache_status first_s;      /* the seed list's first map (seeds_first) */
  bool seeds;                 /* opened for a seed list: its first contact is its own */
} cluster;

#define CL(b) ((cluster *)(b))

/* ---- small helpers --------------------------------------------------------------------------- */

/* Asks the refresher for a new map. While one is already asked for this costs one atomic
 * load, so calls failing fast on a dead master stay fast (no lock, no syscall). */
static void want_refresh(cluster *cl) {
  if (atomic_load_explicit(&cl->refresh_wanted, memory_order_relaxed) ||
      atomic_exchange(&cl->refresh_wanted, true))
    return;
  pthread_mutex_lock(&cl->mu);
  pthread_cond_signal(&cl->wake);
  pthread_mutex_unlock(&cl->mu);
}

/* A node's pool lost a connection or its breaker changed state: the map may be stale. */
static void node_event(void *ud, rcache__pool *p, bool up) {
  (void)p;
  (void)up;
  want_refresh(ud);
}

/* Redis Cluster's own recommended limit is 1000 nodes; a map naming more is refused. */
#define RCACHE__CLUSTER_MAX_NODES 1000

/* The node at host:port, created (with its pool) when new. NULL on ENOMEM or past
 * RCACHE__CLUSTER_MAX_NODES. */
static cnode *node_get(cluster *cl, const char *host, int port);

/* Why node_get() returned NULL. */
static rcache_status node_get_failure(cluster *cl) {
  pthread_mutex_lock(&cl->mu);
  bool full = cl->nnodes >= RCACHE__CLUSTER_MAX_NODES;
  pthread_mutex_unlock(&cl->mu);
  return full ? RCACHE_EPROTO : RCACHE_ENOMEM;
}

static cnode *node_get(cluster *cl, const char *host, int port) {
  pthread_mutex_lock(&cl->mu);
  for (size_t i = 0; i < cl->nnodes; i++) {
    cnode *n = cl->nodes[i];
    if (n->addr.port == port && strcmp(n->addr.host, host) == 0) {
      pthread_mutex_unlock(&cl->mu);
      return n;
    }
  }
  cnode *n = NULL;
  if (cl->nnodes >= RCACHE__CLUSTER_MAX_NODES) { /* a hostile map, or MOVED to new hosts forever */
    rcache__errf("cluster: more than %d nodes named; refusing %s:%d", RCACHE__CLUSTER_MAX_NODES,
                 host, port);
    goto out;
  }
  if (cl->nnodes == cl->cap) {
    size_t cap = cl->cap ? cl->cap * 2 : 8;
    cnode **nn = rcache__realloc(cl->nodes, cap * sizeof *nn);
    if (!nn) goto out;
    cl->nodes = nn;
    cl->cap = cap;
  }
  n = rcache__calloc(1, sizeof *n);
  if (!n) goto out;
  snprintf(n->addr.host, sizeof n->addr.host, "%s", host);
  n->addr.port = port;
  n->cl = cl;
  pthread_mutex_init(&n->trk_mu, NULL);
  rcache__ctx *ctx = cl->r.base.ctx;
  rcache__conn_setup setup = cl->r.setup;
  /* a listener for the near cache, made now since the pool's connections need its id;
   * started when the node first serves as a master (node_use) */
  bool near = atomic_load(&cl->near_on); /* ctx->near is read only while it is ours */
  if (rcache__tracked_pool_new(ctx, &setup, &n->addr, near, &n->pool, &n->trk) != RCACHE_OK) {
    pthread_mutex_destroy(&n->trk_mu);
    rcache__free(n);
    n = NULL;
    goto out;
  }
  rcache__pool_on_event(n->pool, node_event, cl);
  rcache__pool_on_probe(n->pool, rcache__redis_probe, ctx); /* abandoned by rcache_close */
  cl->nodes[cl->nnodes++] = n;
out:
  pthread_mutex_unlock(&cl->mu);
  return n;
}

/* The node is about to serve keys as a master: with a near cache, its listener must be
 * running first (starting it blocks the table until it is subscribed, then flushes it). */
static void node_use(cluster *cl, cnode *n) {
  if (!n->trk || atomic_load_explicit(&n->trk_started, memory_order_acquire) ||
      !atomic_load_explicit(&cl->near_on, memory_order_acquire))
    return;
  pthread_mutex_lock(&n->trk_mu);
  if (!atomic_load(&n->trk_started)) {
    if (rcache__tracking_start(n->trk, n->pool) != RCACHE_OK)
      rcache__log(cl->r.base.ctx, RCACHE_LOG_WARN,
                  "cluster: near cache listener for %s:%d not started", n->addr.host, n->addr.port);
    atomic_store_explicit(&n->trk_started, true, memory_order_release);
  }
  pthread_mutex_unlock(&n->trk_mu);
}

void rcache__cluster_wait_listeners(rcache__backend *be, int64_t deadline_us) {
  cluster *cl = CL(be);
  for (size_t i = 0;; i++) {
    pthread_mutex_lock(&cl->mu); /* the list grows (never shrinks) under it */
    cnode *n = i < cl->nnodes ? cl->nodes[i] : NULL;
    pthread_mutex_unlock(&cl->mu);
    if (!n) return;
    if (atomic_load_explicit(&n->trk_started, memory_order_acquire))
      rcache__tracking_wait_first(n->trk, false, deadline_us);
  }
}

/* Keys read from one node are not tracked by another: after any change of a slot's
 * master, nothing in the near table can be trusted. */
static void near_flush(cluster *cl) {
  rcache__ctx *ctx = cl->r.base.ctx;
  if (!atomic_load_explicit(&cl->near_on, memory_order_acquire)) return;
  atomic_fetch_add_explicit(&ctx->n.near_flushes, 1, memory_order_relaxed); /* first: tracking.c */
  rcache__near_flush(ctx->near);
}

/* The distinct masters of the current map, in slot order, then those without slots
 * (malloc'd; *n gets the count). *unserved (may be NULL) counts slots that no known node
 * serves. */
static cnode **masters(cluster *cl, size_t *n, size_t *unserved) {
  size_t cap = 8, k = 0, u = 0;
  cnode **m = rcache__malloc(cap * sizeof *m);
  cnode *last = NULL;
  pthread_mutex_lock(&cl->mu);
  for (size_t s = 0; m && s < RCACHE__SLOTS + cl->nslotless; s++) {
    cnode *x = s < RCACHE__SLOTS ? atomic_load_explicit(&cl->slots[s], memory_order_acquire)
                                 : cl->slotless[s - RCACHE__SLOTS];
    if (!x) {
      u++;
      continue;
    }
    if (x == last) continue;
    last = x;
    bool seen = false;
    for (size_t i = 0; i < k && !seen; i++)
      seen = m[i] == x;
    if (seen) continue;
    if (k == cap) {
      cnode **mm = rcache__realloc(m, (cap *= 2) * sizeof *m);
      if (!mm) {
        rcache__free(m);
        m = NULL;
        break;
      }
      m = mm;
    }
    m[k++] = x;
  }
  pthread_mutex_unlock(&cl->mu);
  *n = m ? k : 0;
  if (unserved) *unserved = u;
  return m;
}

/* ---- the slot map ---------------------------------------------------------------------------- */

/* Asks node n for the map. */
static rcache_status ask_map(cluster *cl, cnode *n, rcache__ranges *rs) {
  for (int form = 0; form < 2; form++) {
    rcache__cmds b = {0};
    redisReply *rep = NULL;
    rcache_status s = rcache__cmds_addv(&b, "CLUSTER", form ? "SLOTS" : "SHARDS", NULL);
    rcache__cmds_expect(&b, RCACHE__R_ARR);
    if (s == RCACHE_OK) s = rcache__exchange(cl->r.base.ctx, n->pool, &b, &rep, true);
    rcache__cmds_free(&b);
    if (s != RCACHE_OK) return s;
    if (rep->type == REDIS_REPLY_ERROR && form == 0) { /* before Redis 7: no SHARDS */
      freeReplyObject(rep);
      continue;
    }
    if (rep->type == REDIS_REPLY_ERROR)
      s = rcache__reply_status(rep);
    else
      s = rcache__map_parse(rep, !form, cl->r.base.ctx->url.tls, n->addr.host, rs);
    freeReplyObject(rep);
    return s;
  }
  return RCACHE_EPROTO;
}

/* Installs a map; true when any slot changed hands. */
static rcache_status install(cluster *cl, const rcache__ranges *rs, bool *changed) {
  cnode **owner = rcache__calloc(RCACHE__SLOTS, sizeof *owner);
  cnode **slotless = rcache__malloc((rs->n ? rs->n : 1) * sizeof *slotless);
  size_t nslotless = 0;
  rcache_status s = owner && slotless ? RCACHE_OK : RCACHE_ENOMEM;
  for (size_t i = 0; s == RCACHE_OK && i < rs->n; i++) {
    cnode *n = node_get(cl, rs->v[i].host, rs->v[i].port);
    if (!n) {
      s = node_get_failure(cl);
      break;
    }
    node_use(cl, n);
    if (rs->v[i].lo > rs->v[i].hi) slotless[nslotless++] = n;
    for (unsigned x = rs->v[i].lo; x <= rs->v[i].hi; x++)
      owner[x] = n;
  }
  *changed = false;
  if (s == RCACHE_OK) {
    pthread_mutex_lock(&cl->mu);
    cnode **old = cl->slotless;
    cl->slotless = slotless;
    cl->nslotless = nslotless;
    slotless = old;
    pthread_mutex_unlock(&cl->mu);
    for (unsigned x = 0; x < RCACHE__SLOTS; x++) {
      if (atomic_load_explicit(&cl->slots[x], memory_order_relaxed) != owner[x]) {
        atomic_store_explicit(&cl->slots[x], owner[x], memory_order_release);
        *changed = true;
      }
    }
  }
  rcache__free(owner);
  rcache__free(slotless);
  if (*changed) near_flush(cl);
  return s;
}

/* Reads the map from the first node that answers: the current masters first, then every
 * other node known (seeds, replicas met in redirections). Gives up at deadline_us. */
static rcache_status refresh(cluster *cl, int64_t deadline_us) {
  pthread_mutex_lock(&cl->refresh_mu);
  size_t nm = 0;
  cnode **m = masters(cl, &nm, NULL);
  pthread_mutex_lock(&cl->mu);
  size_t nall = cl->nnodes;
  cnode **all = rcache__malloc((nall ? nall : 1) * sizeof *all);
  if (all && nall) memcpy(all, cl->nodes, nall * sizeof *all);
  pthread_mutex_unlock(&cl->mu);
  rcache_status s = m && all ? RCACHE_EUNAVAILABLE : RCACHE_ENOMEM;
  if (s != RCACHE_ENOMEM) rcache__errf("no cluster node answered CLUSTER SHARDS");
  for (size_t pass = 0; pass < 2 && s != RCACHE_OK && s != RCACHE_ENOMEM; pass++) {
    size_t cnt = pass == 0 ? nm : nall;
    for (size_t i = 0; i < cnt && rcache__now_us() < deadline_us; i++) {
      cnode *n = pass == 0 ? m[i] : all[i];
      if (pass == 1) { /* skip the masters already asked */
        bool asked = false;
        for (size_t j = 0; j < nm && !asked; j++)
          asked = m[j] == n;
        if (asked) continue;
      }
      if (!rcache__pool_available(n->pool)) continue;
      rcache__ranges rs = {0};
      s = ask_map(cl, n, &rs);
      size_t served = 0;
      for (size_t r = 0; s == RCACHE_OK && r < rs.n; r++)
        served += rs.v[r].lo <= rs.v[r].hi;
      if (s == RCACHE_OK && served == 0) {
        rcache__errf("node %s:%d serves no slots", n->addr.host, n->addr.port);
        s = RCACHE_EUNAVAILABLE;
      }
      bool changed = false;
      if (s == RCACHE_OK) s = install(cl, &rs, &changed);
      rcache__free(rs.v);
      if (s == RCACHE_ENOMEM) break; /* another node would not help */
      if (s == RCACHE_OK) {
        if (changed)
          rcache__log(cl->r.base.ctx, RCACHE_LOG_INFO, "cluster: slot map updated from %s:%d",
                      n->addr.host, n->addr.port);
        break;
      }
    }
  }
  rcache__free(m);
  rcache__free(all);
  pthread_mutex_unlock(&cl->refresh_mu);
  return s;
}

/* True when every slot has a master whose breaker is closed. */
static bool map_healthy(cluster *cl) {
  size_t n = 0, unserved = 0;
  cnode **m = masters(cl, &n, &unserved);
  bool ok = m && n > 0 && unserved == 0;
  for (size_t i = 0; ok && i < n; i++)
    ok = rcache__pool_available(m[i]->pool);
  rcache__free(m);
  return ok;
}

static void *refresher_main(void *arg) {
  cluster *cl = arg;
  rcache__io_abort_on(&cl->r.base.ctx->closing); /* rcache_close joins it at once */
  int64_t last = rcache__now_us();
  bool healthy = true;
  pthread_mutex_lock(&cl->mu);
  while (!cl->stop) {
    int64_t now = rcache__now_us();
    int64_t due = last + (int64_t)(healthy ? REFRESH_EVERY_MS : REFRESH_DEGRADED_MS) * 1000;
    if (atomic_load(&cl->refresh_wanted)) {
      int64_t soonest = last + (int64_t)REFRESH_MIN_GAP_MS * 1000;
      if (soonest < due) due = soonest;
    }
    if (now < due) {
      struct timespec ts;
      rcache__deadline_ts(&ts, due);
      rcache__cond_timedwait(&cl->wake, &cl->mu, &ts);
      continue;
    }
    atomic_store(&cl->refresh_wanted, false);
    pthread_mutex_unlock(&cl->mu);
    rcache__err_clear();
    refresh(cl, rcache__now_us() + (int64_t)cl->r.base.ctx->opt.connect_timeout_ms * 1000);
    healthy = map_healthy(cl);
    last = rcache__now_us();
    pthread_mutex_lock(&cl->mu);
  }
  pthread_mutex_unlock(&cl->mu);
  return NULL;
}

/* ---- routing --------------------------------------------------------------------------------- */

/* The first redirection among the n replies (those of the commands todo says, all when
 * NULL; all keys of a batch share one slot). */
static int find_redirect(redisReply **rep, int n, const bool *todo, rcache__redirect *rd) {
  for (int i = 0; i < n; i++) {
    if (todo && !todo[i]) continue;
    int k = rcache__redirect_of(rep[i], rd);
    if (k != RCACHE__REDIR_NONE) {
      rd->kind = k;
      rcache__errf("server: %.200s", rep[i]->str);
      return k;
    }
  }
  return RCACHE__REDIR_NONE;
}

/* Runs the commands of b that pick says (every one when NULL) on n, each after ASKING when
 * asking (the flag lasts one command); their replies go to their places in rep. */
static rcache_status run_some(cluster *cl, cnode *n, const rcache__cmds *b, const bool *pick,
                              bool asking, redisReply **rep, bool idempotent) {
  if (!pick && !asking) return rcache__exchange(cl->r.base.ctx, n->pool, b, rep, idempotent);
  rcache__cmds sub;
  rcache_status s = rcache__cmds_pick(b, pick, asking ? "ASKING" : NULL, RCACHE__R_OK, &sub);
  if (s != RCACHE_OK) return s;
  redisReply **all = rcache__calloc((size_t)sub.n, sizeof *all);
  if (!all) s = RCACHE_ENOMEM;
  if (s == RCACHE_OK) s = rcache__exchange(cl->r.base.ctx, n->pool, &sub, all, idempotent);
  if (s == RCACHE_OK) {
    int at = 0;
    for (int i = 0; i < b->n; i++) {
      if (pick && !pick[i]) continue;
      if (asking) freeReplyObject(all[at++]); /* +OK of ASKING */
      rep[i] = all[at++];
    }
  }
  rcache__free(all);
  rcache__cmds_free(&sub);
  return s;
}

static cnode *owner(cluster *cl, unsigned slot) {
  cnode *n = atomic_load_explicit(&cl->slots[slot], memory_order_acquire);
  if (n) return n;
  want_refresh(cl);
  /* Unknown slot (no map yet): any node will redirect us. */
  pthread_mutex_lock(&cl->mu);
  for (size_t i = 0; i < cl->nnodes && !n; i++)
    if (rcache__pool_available(cl->nodes[i]->pool)) n = cl->nodes[i];
  if (!n && cl->nnodes) n = cl->nodes[0];
  pthread_mutex_unlock(&cl->mu);
  return n;
}

/* Runs b (keys all in `slot`) where the slot lives, following redirections. Only the
 * commands redirected run again: during a migration the source answers for the keys it still
 * holds and sends the others (ASK) to the importing node, which has only those, so a key
 * not yet moved would read as absent there (a version key read as never bumped: a stale
 * value taken as valid). */
static rcache_status route(cluster *cl, unsigned slot, const rcache__cmds *b, redisReply **rep,
                           bool idempotent) {
  const rcache_options *o = &cl->r.base.ctx->opt;
  int64_t deadline =
      rcache__now_us() + (int64_t)(o->connect_timeout_ms + o->command_timeout_ms) * 1000;
  cnode *n = owner(cl, slot);
  if (n) node_use(cl, n);
  bool asking = false;
  bool *todo = NULL; /* after a redirection: the commands still to run (NULL: all) */
  int hops = 0, waits = 0;
  rcache_status s;
  for (;;) {
    if (!n) {
      rcache__errf("no cluster node is known for slot %u", slot);
      s = RCACHE_EUNAVAILABLE;
      break;
    }
    /* MOVED/ASK mean the command did not run: repeating even INCR is safe. */
    s = run_some(cl, n, b, todo, asking, rep, idempotent);
    if (s != RCACHE_OK) {
      if (rcache__transport_failure(s)) want_refresh(cl);
      break;
    }
    rcache__redirect rd;
    int kind = find_redirect(rep, b->n, todo, &rd);
    if (kind == RCACHE__REDIR_NONE) break;
    if (!todo && !(todo = rcache__calloc((size_t)b->n, sizeof *todo))) {
      rcache__replies_free(rep, b->n);
      s = RCACHE_ENOMEM;
      break;
    }
    /* a transaction (MULTI ... EXEC) with a command redirected was discarded whole
     * (EXECABORT): nothing of it ran, and all of it runs again, MULTI and EXEC included */
    bool whole = false;
    for (int i = 0; i < b->n && !whole; i++)
      whole = rep[i] && rep[i]->type == REDIS_REPLY_ERROR && rep[i]->str &&
              strncmp(rep[i]->str, "EXECABORT", 9) == 0;
    for (int i = 0; i < b->n; i++) { /* the replies that are answers stay */
      rcache__redirect any;
      todo[i] = rep[i] && (whole || rcache__redirect_of(rep[i], &any) != RCACHE__REDIR_NONE);
      if (!todo[i]) continue;
      freeReplyObject(rep[i]);
      rep[i] = NULL;
    }
    if (kind == RCACHE__REDIR_MOVED || kind == RCACHE__REDIR_ASK) {
      if (rcache__now_us() >= deadline) {
        rcache__errf("the deadline passed while following cluster redirections (last: %s)",
                     rcache__err_peek());
        s = RCACHE_ETIMEOUT;
        break;
      }
      if (++hops > o->max_redirects) {
        rcache__errf("more than %d cluster redirections for slot %u (last: %s)", o->max_redirects,
                     slot, rcache__err_peek());
        s = RCACHE_EUNAVAILABLE;
        break;
      }
      cnode *t = node_get(cl, rd.host[0] ? rd.host : n->addr.host, rd.port);
      if (!t) {
        s = node_get_failure(cl);
        break;
      }
      node_use(cl, t);
      near_flush(cl); /* the slot is moving or has moved: its keys' tracking with it */
      if (kind == RCACHE__REDIR_MOVED) {
        if (rd.slot == slot) atomic_store_explicit(&cl->slots[slot], t, memory_order_release);
        want_refresh(cl);
      }
      n = t;
      asking = kind == RCACHE__REDIR_ASK;
      continue;
    }
    /* TRYAGAIN (a multi-key command during a migration) or CLUSTERDOWN: wait a little. */
    if (kind == RCACHE__REDIR_DOWN) want_refresh(cl);
    int64_t wait_us = (int64_t)10000 << (waits < 4 ? waits : 4);
    waits++;
    if (rcache__now_us() + wait_us > deadline) {
      rcache__errf("cluster still answering %s at the deadline",
                   kind == RCACHE__REDIR_DOWN ? "CLUSTERDOWN" : "TRYAGAIN");
      s = RCACHE_EUNAVAILABLE;
      break;
    }
    rcache__sleep_us(wait_us);
    if (kind == RCACHE__REDIR_DOWN) {
      n = owner(cl, slot);
      if (n) node_use(cl, n);
      asking = false;
    }
  }
  if (s != RCACHE_OK && todo) rcache__replies_free(rep, b->n); /* the answers kept so far */
  rcache__free(todo);
  return s;
}

static rcache_status cluster_exec(rcache__redis *r, const char *key, size_t klen,
                                  const rcache__cmds *b, redisReply **rep, bool idempotent) {
  return route(CL(r), rcache__slot(key, klen), b, rep, idempotent);
}

/* ---- multi-key operations -------------------------------------------------------------------- */

/* One master's share of a batch: its keys (indexes into the caller's arrays), their
 * commands, and their replies. */
typedef struct share {
  cnode *node;
  size_t *idx;
  size_t k;
  rcache__cmds b;
  redisReply **rep;
  rcache_status s;
} share;

static int share_cmp(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)((const share *)a)->node, y = (uintptr_t)((const share *)b)->node;
  return x < y ? -1 : x > y;
}

/* Splits the keys which[0..m) (indexes into the caller's arrays) by their node, node_of[key].
 * idx (m entries) and rep (2m: room for an ASKING before each command) are the arrays the
 * shares point into. *out (malloc'd) gets the shares, *ns their count. */
static rcache_status split(cnode *const *node_of, const size_t *which, size_t m, size_t *idx,
                           redisReply **rep, share **out, size_t *ns) {
  share *sh = rcache__calloc(m ? m : 1, sizeof *sh);
  bool *done = rcache__calloc(m ? m : 1, sizeof *done);
  if (!sh || !done) {
    rcache__free(sh);
    rcache__free(done);
    return RCACHE_ENOMEM;
  }
  size_t used = 0, k = 0;
  for (size_t i = 0; i < m; i++) {
    if (done[i]) continue;
    share *x = &sh[k++];
    x->node = node_of[which[i]];
    x->idx = idx + used;
    x->rep = rep + 2 * used;
    for (size_t j = i; j < m; j++) {
      if (done[j] || node_of[which[j]] != x->node) continue;
      done[j] = true;
      x->idx[x->k++] = which[j];
    }
    used += x->k;
  }
  rcache__free(done);
  /* one order for every caller: two batches never wait for each other's connections */
  qsort(sh, k, sizeof *sh, share_cmp);
  *out = sh;
  *ns = k;
  return RCACHE_OK;
}

static void free_shares(share *sh, size_t ns) {
  for (size_t i = 0; i < ns; i++) {
    rcache__replies_free(sh[i].rep, sh[i].b.n);
    rcache__cmds_free(&sh[i].b);
  }
  rcache__free(sh);
}

/* Every share's batch at once (rcache__exchange_all), so a batch costs one round trip and
 * one deadline however many masters it spans. The shares are in node order (split): two
 * batches never wait for each other's connections. */
static void exchange_all(cluster *cl, share *sh, size_t ns) {
  rcache__job *jobs = rcache__calloc(ns ? ns : 1, sizeof *jobs);
  for (size_t i = 0; i < ns; i++) {
    share *x = &sh[i];
    if (x->s == RCACHE_OK && !jobs) x->s = RCACHE_ENOMEM;
    if (x->s == RCACHE_OK && !x->node) {
      rcache__errf("no cluster node is known for a key's slot");
      x->s = RCACHE_EUNAVAILABLE;
    }
    if (jobs)
      jobs[i] = (rcache__job){.pool = x->node ? x->node->pool : NULL,
                              .b = &x->b,
                              .rep = x->rep,
                              .idempotent = true,
                              .s = x->s};
  }
  if (!jobs) return;
  rcache__exchange_all(cl->r.base.ctx, jobs, ns);
  for (size_t i = 0; i < ns; i++) {
    sh[i].s = jobs[i].s;
    if (rcache__transport_failure(sh[i].s)) want_refresh(cl);
  }
  rcache__free(jobs);
}

/* A batch of one command per key: add appends those of the keys idx[0..k). */
typedef struct batch {
  const char *const *keys;
  const size_t *klens;
  const rcache_value *vals; /* set_many's */
  const int64_t *ttl_ms;    /* set_many's */
  rcache_status (*add)(rcache__cmds *b, const struct batch *bt, const size_t *idx, size_t k);
} batch;

/* One round of a batch: the keys which[0..m) run at node_of[key] (after ASKING where
 * asking[key]), every node's share at once. rep[key] gets the key's reply, or st[key] its
 * share's failure; *ran is set when a share ran. RCACHE_ENOMEM when nothing could run. */
static rcache_status batch_round(cluster *cl, const batch *bt, const size_t *which, size_t m,
                                 cnode *const *node_of, const bool *asking, redisReply **rep,
                                 rcache_status *st, bool *ran) {
  size_t *idx = rcache__malloc(m * sizeof *idx), ns = 0;
  redisReply **rr = rcache__calloc(2 * m, sizeof *rr);
  share *sh = NULL;
  rcache_status s = idx && rr ? split(node_of, which, m, idx, rr, &sh, &ns) : RCACHE_ENOMEM;
  for (size_t i = 0; s == RCACHE_OK && i < ns; i++) {
    share *x = &sh[i];
    for (size_t j = 0; x->s == RCACHE_OK && j < x->k; j++) {
      if (asking[x->idx[j]]) { /* the flag lasts one command */
        x->s = rcache__cmds_addv(&x->b, "ASKING", NULL);
        rcache__cmds_expect(&x->b, RCACHE__R_OK);
      }
      if (x->s == RCACHE_OK) x->s = bt->add(&x->b, bt, &x->idx[j], 1);
    }
  }
  if (s == RCACHE_OK) exchange_all(cl, sh, ns);
  for (size_t i = 0; s == RCACHE_OK && i < ns; i++) {
    share *x = &sh[i];
    *ran = *ran || x->s == RCACHE_OK;
    for (size_t j = 0, at = 0; j < x->k; j++) {
      size_t key = x->idx[j];
      st[key] = x->s;
      if (x->s != RCACHE_OK) continue;
      at += asking[key]; /* past ASKING's +OK, freed with the share */
      rep[key] = x->rep[at];
      x->rep[at++] = NULL;
    }
  }
  if (sh) free_shares(sh, ns);
  rcache__free(idx);
  rcache__free(rr);
  return s;
}

/* Of the keys which[0..m) just run, those answered by a redirection, kept at the front of
 * which (their count is returned), each reply freed and the key's next node in node_of (and
 * asking), as route() follows them. *hop: some were sent elsewhere (MOVED, ASK); *wait: some
 * are to be asked again after a wait (TRYAGAIN, CLUSTERDOWN). */
static size_t redirected(cluster *cl, const batch *bt, size_t *which, size_t m, cnode **node_of,
                         bool *asking, redisReply **rep, rcache_status *st, bool *hop, bool *wait) {
  size_t left = 0;
  *hop = *wait = false;
  for (size_t i = 0; i < m; i++) {
    size_t key = which[i];
    rcache__redirect rd;
    int kind = rep[key] ? rcache__redirect_of(rep[key], &rd) : RCACHE__REDIR_NONE;
    if (kind == RCACHE__REDIR_NONE) continue;
    rcache__errf("server: %.200s", rep[key]->str);
    freeReplyObject(rep[key]);
    rep[key] = NULL;
    unsigned slot = rcache__slot(bt->keys[key], bt->klens[key]);
    if (kind == RCACHE__REDIR_MOVED || kind == RCACHE__REDIR_ASK) {
      cnode *t = node_get(cl, rd.host[0] ? rd.host : node_of[key]->addr.host, rd.port);
      if (!t) {
        st[key] = node_get_failure(cl);
        continue;
      }
      node_use(cl, t);
      if (kind == RCACHE__REDIR_MOVED) {
        if (rd.slot == slot) atomic_store_explicit(&cl->slots[slot], t, memory_order_release);
        want_refresh(cl);
      }
      node_of[key] = t;
      asking[key] = kind == RCACHE__REDIR_ASK;
      *hop = true;
    } else {
      if (kind == RCACHE__REDIR_DOWN) {
        want_refresh(cl);
        node_of[key] = owner(cl, slot);
        if (node_of[key]) node_use(cl, node_of[key]);
        asking[key] = false;
      }
      *wait = true;
    }
    which[left++] = key;
  }
  if (*hop) near_flush(cl); /* slots are moving or have moved: their keys' tracking with them */
  return left;
}

/* Why the keys still redirected after a round are not asked again (RCACHE_OK: they are, after
 * the wait asked for), by route()'s rules: at most max_redirects hops, none after the
 * deadline, and waits for TRYAGAIN or CLUSTERDOWN that end before it. */
static rcache_status may_go_on(const rcache_options *o, bool hop, bool wait, int *hops, int *waits,
                               int64_t deadline) {
  if (hop && rcache__now_us() >= deadline) {
    rcache__errf("the deadline passed while following cluster redirections (last: %s)",
                 rcache__err_peek());
    return RCACHE_ETIMEOUT;
  }
  if (hop && ++*hops > o->max_redirects) {
    rcache__errf("more than %d cluster redirections for a batch's keys (last: %s)",
                 o->max_redirects, rcache__err_peek());
    return RCACHE_EUNAVAILABLE;
  }
  if (!wait) return RCACHE_OK;
  int64_t wait_us = (int64_t)10000 << (*waits < 4 ? *waits : 4);
  ++*waits;
  if (rcache__now_us() + wait_us > deadline) {
    rcache__errf("cluster still answering TRYAGAIN or CLUSTERDOWN at the deadline");
    return RCACHE_EUNAVAILABLE;
  }
  rcache__sleep_us(wait_us);
  return RCACHE_OK;
}

/* Runs a batch where its keys' slots live: every master's share at once, then the keys
 * redirected, grouped by the node that now serves them, again all at once, and so on while
 * may_go_on() allows, within one deadline (route()'s): a batch over a slot that moved or is
 * moving costs one more round trip, not one per key. rep[key] gets each key's reply (the
 * caller's to free), or st[key] why it has none. RCACHE_OK when a master answered (see st),
 * else the first key's failure. */
static rcache_status batch_run(cluster *cl, const batch *bt, size_t n, redisReply **rep,
                               rcache_status *st) {
  const rcache_options *o = &cl->r.base.ctx->opt;
  int64_t deadline =
      rcache__now_us() + (int64_t)(o->connect_timeout_ms + o->command_timeout_ms) * 1000;
  cnode **node_of = rcache__malloc((n ? n : 1) * sizeof *node_of);
  bool *asking = rcache__calloc(n ? n : 1, sizeof *asking);
  size_t *which = rcache__malloc((n ? n : 1) * sizeof *which), m = n;
  rcache_status s = node_of && asking && which ? RCACHE_OK : RCACHE_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (s == RCACHE_OK) node_of[i] = owner(cl, rcache__slot(bt->keys[i], bt->klens[i]));
    if (s == RCACHE_OK) which[i] = i;
    st[i] = s;
  }
  bool ran = false;
  int hops = 0, waits = 0;
  while (s == RCACHE_OK && m > 0) {
    s = batch_round(cl, bt, which, m, node_of, asking, rep, st, &ran);
    bool hop = false, wait = false;
    if (s == RCACHE_OK) m = redirected(cl, bt, which, m, node_of, asking, rep, st, &hop, &wait);
    if (s == RCACHE_OK && m > 0) s = may_go_on(o, hop, wait, &hops, &waits, deadline);
    for (size_t i = 0; s != RCACHE_OK && i < m; i++)
      st[which[i]] = s;
  }
  rcache__free(node_of);
  rcache__free(asking);
  rcache__free(which);
  return ran || n == 0 ? RCACHE_OK : st[0];
}

static rcache_status add_gets(rcache__cmds *b, const batch *bt, const size_t *idx, size_t k) {
  rcache_status s = RCACHE_OK;
  for (size_t j = 0; j < k && s == RCACHE_OK; j++)
    s = rcache__redis_get_cmds(b, bt->keys[idx[j]], bt->klens[idx[j]], false);
  return s;
}

static rcache_status add_sets(rcache__cmds *b, const batch *bt, const size_t *idx, size_t k) {
  return rcache__redis_add_sets(b, bt->keys, bt->klens, bt->vals, idx, k, bt->ttl_ms);
}

static rcache_status cluster_get_many(rcache__backend *be, const char *const *keys,
                                      const size_t *klens, size_t n, rcache_value *vals,
                                      rcache_status *st) {
  batch bt = {.keys = keys, .klens = klens, .add = add_gets};
  redisReply **rep = rcache__calloc(n ? n : 1, sizeof *rep);
  if (!rep) return RCACHE_ENOMEM;
  rcache_status s = batch_run(CL(be), &bt, n, rep, st);
  for (size_t i = 0; i < n; i++) {
    if (!rep[i]) continue;
    st[i] = rcache__redis_take_value(rep[i], &vals[i]);
    if (st[i] == RCACHE_ETYPE) st[i] = RCACHE_MISS; /* as MGET: not a string */
    freeReplyObject(rep[i]);
  }
  rcache__free(rep);
  return s;
}

static rcache_status cluster_set_many(rcache__backend *be, const char *const *keys,
                                      const size_t *klens, const rcache_value *vals, size_t n,
                                      const int64_t *ttl_ms) {
  batch bt = {.keys = keys, .klens = klens, .vals = vals, .ttl_ms = ttl_ms, .add = add_sets};
  redisReply **rep = rcache__calloc(n ? n : 1, sizeof *rep);
  rcache_status *st = rcache__malloc((n ? n : 1) * sizeof *st);
  rcache_status first = rep && st ? RCACHE_OK : RCACHE_ENOMEM;
  if (first == RCACHE_OK) batch_run(CL(be), &bt, n, rep, st);
  for (size_t i = 0; rep && st && i < n; i++) { /* the first error, in the keys' order */
    rcache_status e = rep[i] ? rcache__reply_status(rep[i]) : st[i];
    if (e != RCACHE_OK && first == RCACHE_OK) first = e;
    if (rep[i]) freeReplyObject(rep[i]);
  }
  rcache__free(rep);
  rcache__free(st);
  return first;
}

/* Every master, for the operations that visit them all; RCACHE_EUNAVAILABLE when slots
 * have no known master (then the visit would be incomplete). */
static rcache_status all_masters(cluster *cl, cnode ***m, size_t *n) {
  size_t unserved = 0;
  *m = masters(cl, n, &unserved);
  if ((!*m || *n == 0 || unserved) &&
      refresh(cl, rcache__now_us() + (int64_t)cl->r.base.ctx->opt.connect_timeout_ms * 1000) ==
          RCACHE_OK) {
    rcache__free(*m);
    *m = masters(cl, n, &unserved);
  }
  if (!*m) return RCACHE_ENOMEM;
  if (*n == 0 || unserved) {
    rcache__errf("%zu of %d cluster slots have no known master", *n ? unserved : RCACHE__SLOTS,
                 RCACHE__SLOTS);
    return RCACHE_EUNAVAILABLE;
  }
  return RCACHE_OK;
}

/* Deleting on one master: SCAN there, and UNLINK what it finds one key per command
 * (pipelined), since a multi-key UNLINK across slots is refused with CROSSSLOT. */
#define DEL_BATCH 512

typedef struct del_ud {
  cluster *cl;
  cnode *node;
  char **keys;
  size_t *lens;
  size_t n;
  rcache__progress *pr; /* one batch is one report */
  rcache_status s;
} del_ud;

static void del_flush(del_ud *d) {
  if (d->n == 0) return;
  rcache__cmds b = {0};
  rcache_status s = RCACHE_OK;
  for (size_t i = 0; i < d->n && s == RCACHE_OK; i++) {
    const char *argv[2] = {"UNLINK", d->keys[i]};
    size_t lens[2] = {6, d->lens[i]};
    s = rcache__cmds_add(&b, 2, argv, lens);
    rcache__cmds_expect(&b, RCACHE__R_INT);
  }
  redisReply *rep[DEL_BATCH] = {0};
  /* not run twice: the count would leave out what the first run deleted */
  if (s == RCACHE_OK) s = rcache__exchange(d->cl->r.base.ctx, d->node->pool, &b, rep, false);
  uint64_t deleted = 0;
  if (s == RCACHE_OK) {
    for (int i = 0; i < b.n; i++) {
      rcache__redirect rd;
      if (rep[i]->type == REDIS_REPLY_INTEGER) {
        deleted += (uint64_t)rep[i]->integer;
      } else if (rcache__redirect_of(rep[i], &rd) == RCACHE__REDIR_MOVED ||
                 rcache__redirect_of(rep[i], &rd) == RCACHE__REDIR_ASK) {
        /* not run (MOVED/ASK): a key that moved away meanwhile, or one an importing node
         * listed and answers for only after ASKING. Followed where the slot lives. */
        rcache_status e = rcache__redis_del(&d->cl->r.base, d->keys[i], d->lens[i]);
        if (e == RCACHE_OK)
          deleted++;
        else if (e != RCACHE_MISS && s == RCACHE_OK)
          s = e;
      }
    }
    rcache__replies_free(rep, b.n);
  }
  rcache__progress_add(d->pr, deleted);
  rcache__cmds_free(&b);
  for (size_t i = 0; i < d->n; i++)
    rcache__free(d->keys[i]);
  d->n = 0;
  if (s != RCACHE_OK && d->s == RCACHE_OK) d->s = s;
}

static bool del_visit(const char *key, size_t len, void *ud) {
  del_ud *d = ud;
  if (rcache__progress_keeps(d->pr, key, len)) return true;
  char *k = rcache__memdup0(key, len);
  if (!k) {
    d->s = RCACHE_ENOMEM;
    return false;
  }
  d->keys[d->n] = k;
  d->lens[d->n++] = len;
  if (d->n == DEL_BATCH) del_flush(d);
  return d->s == RCACHE_OK && !d->pr->stopped;
}

static rcache_status cluster_del_match(rcache__backend *be, const char *g, size_t gl,
                                       rcache__progress *p) {
  cluster *cl = CL(be);
  cnode **m;
  size_t n;
  rcache_status s = all_masters(cl, &m, &n), first = s == RCACHE_ENOMEM ? s : RCACHE_OK;
  char *keys[DEL_BATCH];
  size_t lens[DEL_BATCH];
  for (size_t i = 0; m && i < n && !p->stopped; i++) {
    del_ud d = {cl, m[i], keys, lens, 0, p, RCACHE_OK};
    uint64_t seen = 0;
    rcache_status e =
        rcache__redis_scan_node(&cl->r, m[i]->pool, g, gl, NULL, 0, &seen, del_visit, &d);
    del_flush(&d);
    if (e == RCACHE_OK) e = d.s;
    if (e != RCACHE_OK && first == RCACHE_OK) first = e;
  }
  rcache__free(m);
  return first != RCACHE_OK ? first : s;
}

typedef struct scan_ud {
  rcache_scan_fn fn;
  void *ud;
  bool stopped;
} scan_ud;

static bool scan_visit(const char *key, size_t len, void *ud) {
  scan_ud *su = ud;
  if (!su->fn(key, len, su->ud)) su->stopped = true;
  return !su->stopped;
}

static rcache_status cluster_scan(rcache__backend *be, const char *g, size_t gl, uint64_t limit,
                                  rcache_scan_fn fn, void *ud) {
  cluster *cl = CL(be);
  cnode **m;
  size_t n;
  rcache_status s = all_masters(cl, &m, &n), first = s == RCACHE_ENOMEM ? s : RCACHE_OK;
  scan_ud su = {fn, ud, false};
  uint64_t seen = 0;
  for (size_t i = 0; m && i < n && !su.stopped && (!limit || seen < limit); i++) {
    uint64_t c = 0;
    rcache_status e = rcache__redis_scan_node(&cl->r, m[i]->pool, g, gl, NULL,
                                              limit ? limit - seen : 0, &c, scan_visit, &su);
    seen += c;
    if (e != RCACHE_OK && first == RCACHE_OK) first = e;
  }
  rcache__free(m);
  return first != RCACHE_OK ? first : s;
}

static rcache_status cluster_flushdb(rcache__backend *be) {
  cluster *cl = CL(be);
  cnode **m;
  size_t n;
  rcache_status s = all_masters(cl, &m, &n), first = s == RCACHE_ENOMEM ? s : RCACHE_OK;
  for (size_t i = 0; m && i < n; i++) {
    rcache__cmds b = {0};
    redisReply *rep = NULL;
    rcache_status e = rcache__cmds_addv(&b, "FLUSHDB", "ASYNC", NULL);
    rcache__cmds_expect(&b, RCACHE__R_OK);
    if (e == RCACHE_OK) e = rcache__exchange(cl->r.base.ctx, m[i]->pool, &b, &rep, true);
    rcache__cmds_free(&b);
    if (e == RCACHE_OK) {
      e = rcache__reply_status(rep);
      freeReplyObject(rep);
    }
    if (e != RCACHE_OK && first == RCACHE_OK) first = e;
  }
  rcache__free(m);
  return first != RCACHE_OK ? first : s;
}

/* The server version out of an INFO server reply. */
static void version_of(const redisReply *info, char *out, size_t size) {
  const char *v = info->type == REDIS_REPLY_STRING ? strstr(info->str, "redis_version:") : NULL;
  if (v) snprintf(out, size, "%.*s", (int)strcspn(v + 14, "\r\n"), v + 14);
}

/* Healthy when every master answers PING. All are asked at once (one deadline, however
 * many stall); the latency is the whole exchange's, so the slowest master's. */
static rcache_status cluster_health(rcache__backend *be, rcache_health *h) {
  if (CL(be)->seeds) /* a seed list's first map: part of the answer */
    rcache__redis_first_contact_wait(&CL(be)->r);
  cluster *cl = CL(be);
  cnode **m;
  size_t n;
  rcache_status s = all_masters(cl, &m, &n);
  share *sh = s == RCACHE_OK ? rcache__calloc(n, sizeof *sh) : NULL;
  redisReply **rep = s == RCACHE_OK ? rcache__calloc(2 * n, sizeof *rep) : NULL;
  if (s == RCACHE_OK && (!sh || !rep)) s = RCACHE_ENOMEM;
  if (s != RCACHE_OK) {
    snprintf(h->error, sizeof h->error, "%s", rcache__err_peek());
    rcache__free(m);
    rcache__free(sh);
    rcache__free(rep);
    return s;
  }
  for (size_t i = 0; i < n; i++) {
    sh[i].node = m[i];
    sh[i].rep = rep + 2 * i;
    sh[i].s = rcache__cmds_addv(&sh[i].b, "PING", NULL);
    rcache__cmds_expect(&sh[i].b, RCACHE__R_OK);
    if (sh[i].s == RCACHE_OK) sh[i].s = rcache__cmds_addv(&sh[i].b, "INFO", "server", NULL);
    rcache__cmds_expect(&sh[i].b, RCACHE__R_STR);
  }
  qsort(sh, n, sizeof *sh, share_cmp);
  int64_t t0 = rcache__now_us();
  exchange_all(cl, sh, n);
  h->latency_ms = (double)(rcache__now_us() - t0) / 1000.0;
  for (size_t i = 0; i < n; i++) {
    share *x = &sh[i];
    rcache_status e = x->s == RCACHE_OK ? rcache__reply_status(x->rep[0]) : x->s;
    if (e == RCACHE_OK && !h->server_version[0])
      version_of(x->rep[1], h->server_version, sizeof h->server_version);
    if (e == RCACHE_OK || s != RCACHE_OK) continue;
    char why[256];
    if (rcache__pool_last_error(x->node->pool, why, sizeof why) != RCACHE_OK && why[0]) {
      e = rcache__pool_last_error(x->node->pool, why, sizeof why); /* the breaker's reason */
    } else {
      snprintf(why, sizeof why, "%s",
               *rcache__err_peek() ? rcache__err_peek() : rcache_strerror(e));
    }
    s = e;
    snprintf(h->error, sizeof h->error, "master %.40s:%d: %.190s", x->node->addr.host,
             x->node->addr.port, why);
  }
  free_shares(sh, n);
  rcache__free(rep);
  rcache__free(m);
  return s;
}

static bool cluster_available(rcache__backend *be) {
  return map_healthy(CL(be));
}

static void cluster_stats(rcache__backend *be, rcache_stats *st) {
  cluster *cl = CL(be);
  size_t n = 0, unserved = 0;
  cnode **m = masters(cl, &n, &unserved);
  int worst = m && n && !unserved ? RCACHE_BREAKER_CLOSED : RCACHE_BREAKER_OPEN;
  for (size_t i = 0; m && i < n; i++) {
    int b = rcache__pool_breaker_state(m[i]->pool);
    if (b == RCACHE_BREAKER_OPEN ||
        (b == RCACHE_BREAKER_HALF_OPEN && worst == RCACHE_BREAKER_CLOSED))
      worst = b;
  }
  rcache__free(m);
  st->breaker_state = worst;
  st->available = worst == RCACHE_BREAKER_CLOSED;
}

static bool cluster_server(rcache__backend *be, size_t i, rcache__server_gauges *g) {
  cluster *cl = CL(be);
  pthread_mutex_lock(&cl->mu); /* nodes are added, never removed, until the backend goes */
  rcache__pool *p = i < cl->nnodes ? cl->nodes[i]->pool : NULL;
  pthread_mutex_unlock(&cl->mu);
  if (p) rcache__pool_gauges(p, g);
  return p != NULL;
}

/* ---- life ------------------------------------------------------------------------------------ */

static void cluster_destroy(rcache__backend *be) {
  cluster *cl = CL(be);
  rcache__redis_first_contact_join(&cl->r); /* it starts the refresher and uses the nodes */
  pthread_mutex_lock(&cl->mu);
  cl->stop = true;
  pthread_cond_broadcast(&cl->wake);
  pthread_mutex_unlock(&cl->mu);
  if (cl->has_thread) rcache__bg_join(cl->refresher);
  for (size_t i = 0; i < cl->nnodes; i++) {
    rcache__tracked_pool_free(cl->nodes[i]->pool, cl->nodes[i]->trk);
    pthread_mutex_destroy(&cl->nodes[i]->trk_mu);
    rcache__free(cl->nodes[i]);
  }
  rcache__free(cl->nodes);
  rcache__free(cl->slotless);
  pthread_mutex_destroy(&cl->refresh_mu);
  pthread_cond_destroy(&cl->wake);
  pthread_mutex_destroy(&cl->mu);
  rcache__redis_fini(&cl->r);
  rcache__free(cl);
}

/* A forked child: every node's pool and listener become this process's own, and the
 * refresher (which stayed with the parent) is started again. */
static void cluster_after_fork(rcache__backend *be) {
  cluster *cl = CL(be);
  pthread_mutex_init(&cl->mu, NULL);
  pthread_mutex_init(&cl->refresh_mu, NULL);
  rcache__cond_init_mono(&cl->wake);
  cl->stop = false;
  atomic_store(&cl->refresh_wanted, false);
  rcache__redis_first_contact_after_fork(&cl->r); /* the refresher below asks for the map */
  for (size_t i = 0; i < cl->nnodes; i++) {
    pthread_mutex_init(&cl->nodes[i]->trk_mu, NULL);
    rcache__tracked_pool_after_fork(cl->nodes[i]->pool, cl->nodes[i]->trk);
  }
  cl->has_thread = rcache__bg_spawn(&cl->refresher, refresher_main, cl) == 0;
}

static const rcache__backend_ops cluster_ops = {
    .mode = "cluster",
    .destroy = cluster_destroy,
    .get = rcache__redis_get,
    .get_tagged = rcache__redis_get_tagged,
    .set = rcache__redis_set,
    .del = rcache__redis_del,
    .del_match = cluster_del_match,
    .scan = cluster_scan,
    .incr = rcache__redis_incr,
    .pttl = rcache__redis_pttl,
    .flushdb = cluster_flushdb,
    .get_many = cluster_get_many,
    .set_many = cluster_set_many,
    .health = cluster_health,
    .available = cluster_available,
    .stats = cluster_stats,
    .server = cluster_server,
    .after_fork = cluster_after_fork,
    .await_first = rcache__redis_await_first,
};

/* The first map, bounded by connect_timeout_ms, then the refresher. Without the map the
 * handle still works: calls go to a seed (which redirects) and the refresher keeps asking.
 * The near cache works only when the map came now (its listeners are started with it).
 * RCACHE_ENOMEM when memory ran out and `can_fail` (nothing started then); otherwise that
 * too is "no map yet", asked again by the refresher. */
static rcache_status first_map(cluster *cl, bool can_fail) {
  rcache__ctx *ctx = cl->r.base.ctx;
  rcache_status m = refresh(cl, rcache__now_us() + (int64_t)ctx->opt.connect_timeout_ms * 1000);
  if (m == RCACHE_ENOMEM && can_fail) return m; /* reported, not worked around */
  if (m != RCACHE_OK) {
    atomic_store(&cl->near_on, false);
    rcache__log(ctx, RCACHE_LOG_WARN,
                "cluster: no slot map yet (%s); retrying in the background (%s)",
                rcache__err_peek(), ctx->url.redacted ? ctx->url.redacted : "");
    if (ctx->near)
      rcache__log(ctx, RCACHE_LOG_WARN,
                  "cluster: near cache off (the slot map was not known at open)");
  }
  rcache__err_clear();
  /* the refresher starts after the first map: the near cache's decision above is final */
  if (rcache__bg_spawn(&cl->refresher, refresher_main, cl) != 0) {
    if (can_fail) return RCACHE_ENOMEM;
    rcache__log(ctx, RCACHE_LOG_WARN, "cluster: no refresher thread: the map follows MOVED only");
    return RCACHE_OK;
  }
  cl->has_thread = true;
  return RCACHE_OK;
}

/* A seed list's first contact: the first map (then its masters' listeners' first attempt,
 * so that the first calls find the near cache serving), and the near table released. */
static void seeds_first(rcache__redis *r) {
  cluster *cl = CL(r);
  rcache__ctx *ctx = r->base.ctx;
  const rcache_options *o = &ctx->opt;
  int64_t start = rcache__now_us();
  /* with strict_config open waits for this and fails on ENOMEM (nothing started) */
  cl->first_s = first_map(cl, o->strict_config);
  if (cl->first_s != RCACHE_OK) return;
  if (!o->strict_config)
    rcache__cluster_wait_listeners(
        &r->base, start + (int64_t)(o->connect_timeout_ms + o->command_timeout_ms) * 1000);
  if (cl->near_hold) { /* the listeners (if the map came) are the sources now */
    cl->near_hold = false;
    if (atomic_load(&cl->near_on)) rcache__near_remove_source(ctx->near, true);
  }
}

rcache_status rcache__cluster_open(rcache__ctx *ctx, rcache__backend **out, bool seeds) {
  if (ctx->url.db != 0) {
    rcache__errf("URL: database %d: a Redis Cluster has only database 0", ctx->url.db);
    return RCACHE_EURL;
  }
  cluster *cl = rcache__calloc(1, sizeof *cl);
  if (!cl) return RCACHE_ENOMEM;
  cl->r.base.ops = &cluster_ops;
  cl->r.exec = cluster_exec;
  for (unsigned s = 0; s < RCACHE__SLOTS; s++)
    atomic_init(&cl->slots[s], NULL);
  pthread_mutex_init(&cl->mu, NULL);
  pthread_mutex_init(&cl->refresh_mu, NULL);
  rcache__cond_init_mono(&cl->wake);
  atomic_init(&cl->near_on, ctx->near != NULL);
  /* a tagged read's script reads version keys under the prefix: one slot only with a hash
   * tag in the prefix (docs/semantics.md, "Tags"); otherwise two round trips */
  cl->r.vers_apart = !rcache__slot_fixed(ctx->prefix, ctx->prefix_len);
  rcache_status s = rcache__redis_init(&cl->r, ctx);
  for (size_t i = 0; s == RCACHE_OK && i < ctx->url.nhosts; i++)
    if (!node_get(cl, ctx->url.hosts[i].host, ctx->url.hosts[i].port)) s = RCACHE_ENOMEM;
  if (s != RCACHE_OK) {
    cluster_destroy(&cl->r.base);
    return s;
  }
  cl->seeds = seeds;
  if (!seeds) {
    s = first_map(cl, true);
  } else {
    /* in the background (open waits for no server): the near table is held by one source
     * of ours that never unblocks, so it neither serves nor is dropped by open for want of
     * a listener, until the map (and the listeners it starts) came, or for good if not */
    if (ctx->near) {
      rcache__near_add_source(ctx->near);
      cl->near_hold = true;
    }
    rcache__redis_first_contact(&cl->r, seeds_first);
    if (!cl->r.has_first) s = cl->first_s; /* made here (strict_config): ENOMEM fails open */
  }
  if (s != RCACHE_OK) {
    if (cl->near_hold) rcache__near_remove_source(ctx->near, true);
    cluster_destroy(&cl->r.base);
    return s;
  }
  *out = &cl->r.base;
  return RCACHE_OK;
}
