/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The standalone backend: one server (redis://host, rediss://, unix://), one pool, and the
 * late hand-over to a cluster backend when the server turns out to be a cluster node. Its
 * operations are the shared ones of redis.c, sent through standalone_exec.
 */
#include <stdio.h>
#include <string.h>

#include "backends/redis.h"
#include "backends/topology.h"
#include "near/tracking.h"

#define R(b) ((rcache__redis *)(b))

/*
 * The standalone backend, and its late cluster detection: a one-host redis:// URL whose
 * server could not be asked "cluster_enabled?" at open (down or stalled) asks on its
 * first successful exchange, and any MOVED/ASK reply makes it ask again. A cluster node
 * gets a cluster backend of its own, published in ctx->successor (read by the facade with
 * one acquire load); the standalone one stays alive until rcache_close, since calls may
 * still be running in it, and hands every later exchange over to its successor.
 */
typedef struct standalone {
  rcache__redis r;     /* first: the backend */
  atomic_bool pending; /* not asked yet whether the server is a cluster node */
  atomic_bool busy;    /* a thread is asking now */
  atomic_bool moved;   /* a MOVED/ASK reply came and no cluster backend replaced us */
  bool gave_up;        /* a cluster backend could not be made (e.g. db != 0): stay */
} standalone;

#define SA(b) ((standalone *)(b))

static rcache__backend *successor(const rcache__redis *r) {
  return atomic_load_explicit(&r->base.ctx->successor, memory_order_acquire);
}

static bool is_redirect(const redisReply *x) {
  return x && x->type == REDIS_REPLY_ERROR && x->str &&
         (strncmp(x->str, "MOVED ", 6) == 0 || strncmp(x->str, "ASK ", 4) == 0);
}

static bool detect(standalone *sa, bool first, rcache_status *why);
static rcache_status standalone_health(rcache__backend *be, rcache_health *h);

static rcache_status standalone_exec(rcache__redis *r, const char *key, size_t klen,
                                     const rcache__cmds *b, redisReply **rep, bool idempotent) {
  rcache__backend *succ = successor(r);
  if (succ) return R(succ)->exec(R(succ), key, klen, b, rep, idempotent);
  rcache_status s = rcache__exchange(r->base.ctx, r->pool, b, rep, idempotent);
  if (s != RCACHE_OK) return s;
  bool moved = false;
  for (int i = 0; i < b->n && !moved; i++)
    moved = is_redirect(rep[i]);
  if (moved) atomic_store(&SA(r)->moved, true);
  if (!moved && !atomic_load_explicit(&SA(r)->pending, memory_order_relaxed)) return s;
  rcache_status why = RCACHE_OK;
  if (!detect(SA(r), false, &why) || !moved || !key) {
    if (moved && why == RCACHE_ENOMEM) { /* the redirection was not followed for want of memory */
      rcache__replies_free(rep, b->n);
      return RCACHE_ENOMEM;
    }
    return s;
  }
  /* MOVED/ASK: the command did not run, so sending it again (even INCR) is safe */
  rcache__replies_free(rep, b->n);
  succ = successor(r);
  return R(succ)->exec(R(succ), key, klen, b, rep, idempotent);
}

static void standalone_destroy(rcache__backend *be) {
  rcache__redis *r = R(be);
  rcache__redis_first_contact_join(r); /* it uses the pool */
  rcache__tracked_pool_free(r->pool, r->tracking);
  rcache__redis_fini(r);
  rcache__free(r);
}

static void standalone_after_fork(rcache__backend *be) {
  atomic_store(&SA(be)->busy, false); /* a parent thread may have been asking */
  rcache__redis_first_contact_after_fork(R(be));
  rcache__tracked_pool_after_fork(R(be)->pool, R(be)->tracking);
}

static const rcache__backend_ops standalone_ops = {
    .mode = "standalone",
    .destroy = standalone_destroy,
    .get = rcache__redis_get,
    .get_tagged = rcache__redis_get_tagged,
    .set = rcache__redis_set,
    .del = rcache__redis_del,
    .del_match = rcache__redis_one_del_match,
    .scan = rcache__redis_one_scan,
    .incr = rcache__redis_incr,
    .pttl = rcache__redis_pttl,
    .flushdb = rcache__redis_one_flushdb,
    .get_many = rcache__redis_one_get_many,
    .set_many = rcache__redis_one_set_many,
    .health = standalone_health,
    .available = rcache__redis_one_available,
    .stats = rcache__redis_one_stats,
    .server = rcache__redis_one_server,
    .after_fork = standalone_after_fork,
    .await_first = rcache__redis_await_first,
};

static void addr_of_url(const rcache__url *u, size_t i, rcache__addr *a) {
  memset(a, 0, sizeof *a);
  if (u->scheme == RCACHE__SCHEME_UNIX) {
    snprintf(a->path, sizeof a->path, "%s", u->path);
  } else {
    snprintf(a->host, sizeof a->host, "%s", u->hosts[i].host);
    a->port = u->hosts[i].port;
  }
}

/* Asks the server whether it is part of a cluster: RCACHE_OK with *yes, or why it could
 * not be asked. */
static rcache_status cluster_enabled(rcache__redis *r, bool *yes) {
  rcache__cmds b = {0};
  redisReply *rep = NULL;
  *yes = false;
  rcache_status s = rcache__cmds_addv(&b, "INFO", "cluster", NULL);
  rcache__cmds_expect(&b, RCACHE__R_STR);
  if (s == RCACHE_OK) s = rcache__exchange(r->base.ctx, r->pool, &b, &rep, true);
  rcache__cmds_free(&b);
  if (s != RCACHE_OK) return s;
  if (rep->type == REDIS_REPLY_STRING)
    *yes = strstr(rep->str, "cluster_enabled:1") != NULL;
  else
    s = rcache__reply_status(rep); /* an ACL without INFO: stays standalone */
  freeReplyObject(rep);
  return s;
}

/* Detection (see struct standalone): asks, and on a cluster node opens the cluster backend
 * and publishes it. True once a successor exists; else *why (may be NULL) is RCACHE_ENOMEM
 * when memory ran out on the way (asked again next time). One thread at a time asks; the
 * others go on as standalone meanwhile. `first`: the first contact asks (no news for the log). */
static bool detect(standalone *sa, bool first, rcache_status *why) {
  if (successor(&sa->r)) return true;
  if (sa->gave_up || atomic_exchange(&sa->busy, true)) return false;
  rcache__ctx *ctx = sa->r.base.ctx;
  bool yes = false;
  rcache_status s = cluster_enabled(&sa->r, &yes);
  if (s == RCACHE_ENOMEM && why) *why = s;
  if (!rcache__transport_failure(s) && s != RCACHE_ENOMEM) /* it answered */
    atomic_store(&sa->pending, false);
  rcache__backend *cl = NULL;
  if (s == RCACHE_OK && yes && !successor(&sa->r)) {
    int sources = ctx->near ? rcache__near_sources(ctx->near) : 0;
    s = rcache__cluster_open(ctx, &cl, false);
    /* a cluster backend without listeners (no map yet) would fill the near table with
     * values nobody invalidates: a source that never unblocks keeps it from serving */
    if (s == RCACHE_OK && ctx->near && rcache__near_sources(ctx->near) == sources)
      rcache__near_add_source(ctx->near);
    if (s == RCACHE_OK) {
      atomic_store_explicit(&ctx->successor, cl, memory_order_release);
      atomic_store(&sa->moved, false);
      rcache__log(ctx, first ? RCACHE_LOG_DEBUG : RCACHE_LOG_WARN,
                  "the server is a Redis Cluster node%s: switched to cluster mode (%s)",
                  first ? "" : " (it could not be asked at first contact)",
                  ctx->url.redacted ? ctx->url.redacted : "");
    } else if (s == RCACHE_ENOMEM) {
      atomic_store(&sa->pending, true); /* asked again by the next exchange */
      if (why) *why = s;
    } else {
      sa->gave_up = true;
      rcache__log(ctx, RCACHE_LOG_ERROR, "the server is a Redis Cluster node, but: %s (%s)",
                  rcache__err_peek(), ctx->url.redacted ? ctx->url.redacted : "");
    }
  }
  atomic_store(&sa->busy, false);
  return successor(&sa->r) != NULL;
}

/* Health asks whether the server became a cluster node; a handle that still gets MOVED is
 * not healthy (its keys are answered by errors). */
static rcache_status standalone_health(rcache__backend *be, rcache_health *h) {
  standalone *sa = SA(be);
  rcache__redis_first_contact_wait(&sa->r); /* its answer is part of this one */
  rcache_status why = RCACHE_OK;
  if (atomic_load(&sa->pending) || atomic_load(&sa->moved)) detect(sa, false, &why);
  rcache__backend *succ = successor(&sa->r);
  if (succ) return succ->ops->health(succ, h);
  if (why == RCACHE_ENOMEM) return why; /* not asked: no answer on the mode to give */
  rcache_status s = rcache__redis_one_health(be, h);
  if (s == RCACHE_OK && atomic_load(&sa->moved)) {
    snprintf(h->error, sizeof h->error,
             "the server redirects keys (MOVED): it is a Redis Cluster node, and cluster "
             "mode could not be set up");
    s = RCACHE_ESERVER;
  }
  return s;
}

/* The first connection, bounded by connect_timeout_ms, then the cluster question. When the
 * connection fails -- refused, timed out, or even a wrong password or a refused
 * certificate -- the breaker opens (the reason is logged, and rcache_health_check()
 * returns it) and the prober keeps trying: the server never makes rcache_open fail. */
static void standalone_first(rcache__redis *r) {
  const rcache_options *o = &r->base.ctx->opt;
  /* the near cache's listener first (it connects in its own thread): the connection made
   * next then redirects to it and stays, and the first calls find the near cache serving */
  int64_t bound = (int64_t)(o->connect_timeout_ms + o->command_timeout_ms) * 1000;
  if (!o->strict_config) /* there open waits for this: connect_timeout_ms at most */
    rcache__tracking_wait_first(r->tracking, false, rcache__now_us() + bound);
  if (rcache__pool_warm(r->pool) == RCACHE_OK && atomic_load(&SA(r)->pending))
    detect(SA(r), true, NULL);
  /* a cluster found: its masters' listeners too, for the same reason */
  rcache__backend *succ = successor(r);
  if (succ && !o->strict_config) rcache__cluster_wait_listeners(succ, rcache__now_us() + bound);
}

rcache_status rcache__standalone_open(rcache__ctx *ctx, rcache__backend **out) {
  const rcache__url *u = &ctx->url;
  standalone *sa = rcache__calloc(1, sizeof *sa);
  if (!sa) return RCACHE_ENOMEM;
  rcache__redis *r = &sa->r;
  r->base.ops = &standalone_ops;
  r->exec = standalone_exec;
  rcache_status s = rcache__redis_init(r, ctx);
  rcache__addr a;
  addr_of_url(u, 0, &a);
  /* near cache: data connections redirect their invalidations to the tracker's listener */
  if (s == RCACHE_OK)
    s = rcache__tracked_pool_new(ctx, &r->setup, &a, ctx->near != NULL, &r->pool, &r->tracking);
  if (s != RCACHE_OK) {
    rcache__redis_fini(r);
    rcache__free(r);
    return s;
  }
  rcache__pool_on_probe(r->pool, rcache__redis_probe, ctx);
  /* asked by the first contact, or else by the first exchange that succeeds */
  atomic_store(&sa->pending, u->scheme != RCACHE__SCHEME_UNIX);
  if (r->tracking && rcache__tracking_start(r->tracking, r->pool) != RCACHE_OK) {
    standalone_destroy(&r->base);
    return RCACHE_ENOMEM;
  }
  rcache__redis_first_contact(r, standalone_first);
  *out = &r->base;
  return RCACHE_OK;
}
