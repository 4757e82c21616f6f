/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The near cache's listener for one server (see tracking.h).
 *
 * Why each flush: Redis remembers which keys a tracking connection read and, on a change,
 * sends one invalidation to the connection it redirects to. In RESP2 nobody is told when
 * either end goes away, so
 *  - the listener gone (EOF, error, or no PONG within command_timeout_ms): invalidations
 *    for every data connection are being dropped → block the table, flush, reconnect,
 *    announce the new id, drop the pool's connections (they redirect to the old id),
 *    flush again, serve;
 *  - a data connection gone: the keys it read are no longer tracked → flush (the pool
 *    tells us when a call finds one dead; idle ones are checked every tick);
 *  - the pool's breaker open: serve nothing until it closes;
 *  - a null invalidation message: FLUSHDB/FLUSHALL happened → flush.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "near/tracking.h"

#define TICK_US 5000         /* idle-connection check and stop-flag period */
#define PING_EVERY_US 500000 /* the listener's liveness PING */
#define CHANNEL "__redis__:invalidate"

struct rcache__tracking {
  rcache__ctx *ctx;
  rcache__conn_setup setup; /* the listener's: CLIENT ID, no tracking */
  rcache__addr addr;
  rcache__near *near;
  rcache__pool *pool;
  _Atomic long long redirect; /* the listener's id, -1 while down */
  _Atomic bool data_refused;  /* a data connection's CLIENT TRACKING was refused (conn.c) */
  _Atomic bool stop;
  pthread_t thread;
  bool has_thread;
  rcache__conn *conn; /* the listener connection: the thread's (or start()'s, before it) */

  bool refused; /* the server refused tracking or the channel (thread only) */

  pthread_mutex_t mu; /* guards the fields below */
  bool registered;    /* counted as a source of the near table */
  bool blocked;       /* our share of the table's gate is closed */
  bool listener_up, data_up;
  bool moved; /* addr changed: the listener must leave the old server */
  bool tried; /* the thread's first connect is over (rcache__tracking_wait_first) */

  rcache__pool_event_fn next_event; /* chained pool events (Sentinel's) */
  void *next_ud;
};

/* ---- the gate -------------------------------------------------------------------------------- */

/* Counted before the flush: whoever sees the table emptied (through its lock) also sees the
 * counter moved, so near_flushes never lags behind a flush a reader has already observed. */
static void flush(rcache__tracking *t) {
  atomic_fetch_add_explicit(&t->ctx->n.near_flushes, 1, memory_order_relaxed);
  rcache__near_flush(t->near);
}

/* Re-evaluates whether the table may serve, flushing before it opens again. */
static void update_gate(rcache__tracking *t) {
  pthread_mutex_lock(&t->mu);
  bool block = !(t->listener_up && t->data_up);
  if (t->registered && block != t->blocked) {
    if (block) {
      rcache__near_block(t->near);
    } else {
      flush(t); /* nothing from the time it was closed survives */
      rcache__near_unblock(t->near);
    }
    t->blocked = block;
  }
  pthread_mutex_unlock(&t->mu);
}

static void set_state(rcache__tracking *t, int listener_up, int data_up) {
  pthread_mutex_lock(&t->mu);
  if (listener_up >= 0) t->listener_up = listener_up;
  if (data_up >= 0) t->data_up = data_up;
  pthread_mutex_unlock(&t->mu);
  update_gate(t);
}

/* The pool lost a connection or changed state: whatever it tracked is gone. */
static void on_pool_event(void *ud, rcache__pool *p, bool up) {
  rcache__tracking *t = ud;
  if (!up) flush(t);
  set_state(t, -1, rcache__pool_available(p));
  if (t->next_event) t->next_event(t->next_ud, p, up);
}

void rcache__tracking_chain_events(rcache__tracking *t, rcache__pool_event_fn fn, void *ud) {
  t->next_event = fn;
  t->next_ud = ud;
}

void rcache__tracking_set_addr(rcache__tracking *t, const rcache__addr *a) {
  pthread_mutex_lock(&t->mu);
  if (memcmp(&t->addr, a, sizeof *a) != 0) {
    t->addr = *a;
    t->moved = true;
  }
  pthread_mutex_unlock(&t->mu);
}

static bool take_moved(rcache__tracking *t) {
  pthread_mutex_lock(&t->mu);
  bool m = t->moved;
  t->moved = false;
  pthread_mutex_unlock(&t->mu);
  return m;
}

/* ---- the listener connection ------------------------------------------------------------------
 */

static bool is_str(const redisReply *r, const char *s) {
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
         r->len == strlen(s) && strncasecmp(r->str, s, r->len) == 0;
}

/* Connects, checks that the server can track (CLIENT TRACKING off is refused by servers
 * without it, or by an ACL without the permission), subscribes; then announces the id:
 * the pool's connections redirect to an older id, so they go. */
static rcache_status listener_connect(rcache__tracking *t) {
  const rcache_options *o = &t->ctx->opt;
  rcache__conn *c = NULL;
  pthread_mutex_lock(&t->mu);
  rcache__addr a = t->addr;
  t->moved = false; /* connecting to the current address */
  pthread_mutex_unlock(&t->mu);
  if (!a.path[0] && a.port <= 0) {
    rcache__errf("near cache listener: the server's address is not known yet");
    return RCACHE_EUNAVAILABLE;
  }
  rcache_status s = rcache__conn_open(&t->setup, &a,
                                      rcache__now_us() + (int64_t)o->connect_timeout_ms * 1000, &c);
  if (s == RCACHE_ESERVER) t->refused = true; /* CLIENT ID refused: an ACL without +client|id */
  if (s != RCACHE_OK) return s;
  rcache__cmds b = {0};
  redisReply *rep[2] = {0};
  s = rcache__cmds_addv(&b, "CLIENT", "TRACKING", "off", NULL);
  if (s == RCACHE_OK) s = rcache__cmds_addv(&b, "SUBSCRIBE", CHANNEL, NULL);
  if (s == RCACHE_OK)
    s = rcache__conn_exec(c, &b, rep, rcache__now_us() + (int64_t)o->command_timeout_ms * 1000,
                          1 << 20);
  rcache__cmds_free(&b);
  if (s == RCACHE_OK) {
    /* refused (an old server, an ACL without CLIENT or the channel): ESERVER or EAUTH */
    redisReply *e = rep[0]->type == REDIS_REPLY_ERROR ? rep[0] : rep[1];
    if (e->type == REDIS_REPLY_ERROR) {
      s = rcache__reply_status(e);
      if (s != RCACHE_EAUTH) s = RCACHE_ESERVER;
      t->refused = true;
    } else if (rep[1]->type != REDIS_REPLY_ARRAY || rep[1]->elements < 1 ||
               !is_str(rep[1]->element[0], "subscribe")) {
      rcache__errf("unexpected reply to SUBSCRIBE " CHANNEL);
      s = RCACHE_EPROTO;
    }
    freeReplyObject(rep[0]);
    freeReplyObject(rep[1]);
  }
  if (s != RCACHE_OK || c->client_id < 0) {
    rcache__conn_close(c);
    return s != RCACHE_OK ? s : RCACHE_EPROTO;
  }
  t->conn = c;
  atomic_store(&t->redirect, c->client_id);
  rcache__pool_drop_idle(t->pool); /* bumps the epoch: in-use ones close when returned */
  set_state(t, 1, rcache__pool_available(t->pool));
  rcache__log(t->ctx, RCACHE_LOG_DEBUG, "near cache: invalidation listener up (client id %lld)",
              c->client_id);
  return RCACHE_OK;
}

static void listener_lost(rcache__tracking *t, const char *why) {
  set_state(t, 0, -1); /* block first, then flush: nothing is served in between */
  flush(t);
  atomic_store(&t->redirect, -1);
  rcache__conn_close(t->conn);
  t->conn = NULL;
  bool closing = why && strcmp(why, "closing") == 0;
  rcache__log(t->ctx, closing ? RCACHE_LOG_INFO : RCACHE_LOG_WARN,
              "near cache: invalidation listener lost (%s); flushed",
              why && *why ? why : "connection closed");
}

/* One message from the channel: keys to forget, or a null (FLUSHDB/FLUSHALL). */
static void handle(rcache__tracking *t, const redisReply *r, bool *pong) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) return;
  if (is_str(r->element[0], "pong")) {
    *pong = true;
    return;
  }
  if (!is_str(r->element[0], "message") || r->elements < 3 || !is_str(r->element[1], CHANNEL))
    return;
  const redisReply *p = r->element[2];
  if (p->type == REDIS_REPLY_NIL) {
    flush(t);
    return;
  }
  if (p->type == REDIS_REPLY_STRING) {
    rcache__near_invalidate(t->near, p->str, p->len);
    atomic_fetch_add_explicit(&t->ctx->n.near_invalidations, 1, memory_order_relaxed);
    return;
  }
  if (p->type != REDIS_REPLY_ARRAY) return;
  for (size_t i = 0; i < p->elements; i++) {
    const redisReply *k = p->element[i];
    if (k->type != REDIS_REPLY_STRING) continue;
    rcache__near_invalidate(t->near, k->str, k->len);
    atomic_fetch_add_explicit(&t->ctx->n.near_invalidations, 1, memory_order_relaxed);
  }
}

/* Reads messages until the connection is lost or the tracker stops. */
static void listen_loop(rcache__tracking *t) {
  rcache__cmds ping = {0}; /* in a subscription PING is answered ["pong", ""] */
  if (rcache__cmds_addv(&ping, "PING", NULL) != RCACHE_OK) {
    listener_lost(t, "out of memory");
    return;
  }
  const int64_t timeout_us = (int64_t)t->ctx->opt.command_timeout_ms * 1000;
  int64_t next_ping = rcache__now_us() + PING_EVERY_US, ping_deadline = 0, next_check = 0;
  char why[256] = "";
  while (!atomic_load(&t->stop)) {
    int64_t now = rcache__now_us();
    if (ping_deadline && now > ping_deadline) {
      snprintf(why, sizeof why, "no reply to PING within %d ms", t->ctx->opt.command_timeout_ms);
      break;
    }
    if (!ping_deadline && now >= next_ping) {
      rcache__err_clear();
      if (rcache__conn_send(t->conn, ping.one, ping.one_len, now + timeout_us) != RCACHE_OK) {
        snprintf(why, sizeof why, "%s", rcache__err_peek());
        break;
      }
      ping_deadline = now + timeout_us;
      next_ping = now + PING_EVERY_US;
    }
    if (take_moved(t)) {
      snprintf(why, sizeof why, "the server moved");
      break;
    }
    if (atomic_exchange(&t->data_refused, false)) { /* its reads go untracked */
      snprintf(why, sizeof why, "the server refused CLIENT TRACKING on a data connection");
      break;
    }
    if (now >= next_check) {            /* once per tick, however busy the channel is */
      rcache__pool_check_idle(t->pool); /* a dead one tells on_pool_event */
      set_state(t, -1, rcache__pool_available(t->pool));
      next_check = now + TICK_US;
    }
    redisReply *r = NULL;
    rcache__err_clear();
    rcache_status s = rcache__conn_listen(t->conn, &r, next_check, rcache__reply_max(&t->ctx->opt));
    if (s == RCACHE_ETIMEOUT) continue;
    if (s != RCACHE_OK) {
      snprintf(why, sizeof why, "%s",
               *rcache__err_peek() ? rcache__err_peek() : rcache_strerror(s));
      break;
    }
    bool pong = false;
    handle(t, r, &pong);
    if (pong) ping_deadline = 0;
    freeReplyObject(r);
  }
  rcache__cmds_free(&ping);
  listener_lost(t, atomic_load(&t->stop) ? "closing" : why);
}

/* Sleeps up to us, waking early when the tracker stops. */
static void nap(rcache__tracking *t, int64_t us) {
  int64_t end = rcache__now_us() + us;
  while (!atomic_load(&t->stop)) {
    int64_t left = end - rcache__now_us();
    if (left <= 0) return;
    rcache__sleep_us(left < TICK_US ? left : TICK_US);
  }
}

static void *listener_main(void *arg) {
  rcache__tracking *t = arg;
  const rcache_options *o = &t->ctx->opt;
  rcache__io_abort_on(&t->stop); /* rcache__tracking_stop never waits for a connect */
  int attempt = 0;
  bool refused_logged = false;
  while (!atomic_load(&t->stop)) {
    if (!t->conn) {
      rcache__err_clear();
      t->refused = false;
      rcache_status s = listener_connect(t);
      if (!t->tried) {
        pthread_mutex_lock(&t->mu);
        t->tried = true;
        pthread_mutex_unlock(&t->mu);
      }
      if (s != RCACHE_OK) {
        if (t->refused && !refused_logged) {
          rcache__log(t->ctx, RCACHE_LOG_WARN,
                      "near cache off: the server refused the invalidation listener (%s); "
                      "it needs CLIENT ID, CLIENT TRACKING and SUBSCRIBE to " CHANNEL,
                      rcache__err_peek());
          refused_logged = true;
        }
        /* exponential backoff with jitter, like the pool's prober; the first retry is now */
        int64_t d = o->reconnect_min_ms;
        for (int i = 1; i < attempt && d < o->reconnect_max_ms; i++)
          d *= 2;
        if (d > o->reconnect_max_ms) d = o->reconnect_max_ms;
        d = (int64_t)((double)d * (1 - o->reconnect_jitter * rcache__rand01()));
        if (t->refused)
          nap(t, (int64_t)o->reconnect_max_ms * 1000); /* not soon */
        else if (attempt++ > 0)
          nap(t, d * 1000);
        else
          nap(t, TICK_US);
        continue;
      }
      attempt = 0;
      rcache__wipe_stack(); /* what the connect (AUTH) left below */
    }
    listen_loop(t);
  }
  rcache__wipe_stack();
  return NULL;
}

/* ---- life ------------------------------------------------------------------------------------ */

rcache_status rcache__tracking_new(rcache__ctx *ctx, const rcache__conn_setup *setup,
                                   const rcache__addr *a, rcache__near *near,
                                   rcache__tracking **out) {
  rcache__tracking *t = rcache__calloc(1, sizeof *t);
  if (!t) return RCACHE_ENOMEM;
  t->ctx = ctx;
  t->setup = *setup;
  t->setup.want_id = true;
  t->setup.tracking_redirect = NULL;
  t->setup.tracking_refused = NULL;
  t->addr = *a;
  t->near = near;
  atomic_init(&t->redirect, -1);
  pthread_mutex_init(&t->mu, NULL);
  *out = t;
  return RCACHE_OK;
}

void rcache__tracking_wait_first(rcache__tracking *t, bool up, int64_t deadline_us) {
  if (!t) return;
  for (;;) { /* in slices: the listener says nothing, and rcache_close must not wait */
    pthread_mutex_lock(&t->mu);
    bool tried = (up ? t->listener_up : t->tried) || !t->has_thread;
    pthread_mutex_unlock(&t->mu);
    if (tried || atomic_load(&t->ctx->closing) || rcache__now_us() >= deadline_us) return;
    rcache__sleep_us(TICK_US);
  }
}

_Atomic long long *rcache__tracking_redirect(rcache__tracking *t) {
  return &t->redirect;
}

rcache_status rcache__tracking_start(rcache__tracking *t, rcache__pool *pool) {
  t->pool = pool;
  pthread_mutex_lock(&t->mu);
  t->registered = true;
  t->blocked = true;
  t->data_up = rcache__pool_available(pool);
  pthread_mutex_unlock(&t->mu);
  rcache__near_add_source(t->near); /* counts as blocked until the listener is up */
  rcache__pool_on_event(pool, on_pool_event, t);
  /* the thread connects at once: the table serves from when the listener is up, and
   * rcache_open waits for no server */
  if (rcache__bg_spawn(&t->thread, listener_main, t) != 0) return RCACHE_ENOMEM;
  t->has_thread = true;
  return RCACHE_OK;
}

void rcache__tracking_after_fork(rcache__tracking *t) {
  if (!t) return;
  pthread_mutex_init(&t->mu, NULL);
  if (t->conn) rcache__conn_close(t->conn); /* our copy of the parent's: closed, never read */
  t->conn = NULL;
  atomic_store(&t->redirect, -1);
  atomic_store(&t->stop, false);
  t->has_thread = false;
  if (!t->registered) return; /* not started yet: its owner starts it when needed */
  set_state(t, 0, -1);        /* the parent's listener does not listen for us */
  flush(t);
  t->has_thread = rcache__bg_spawn(&t->thread, listener_main, t) == 0;
}

void rcache__tracking_stop(rcache__tracking *t) {
  if (!t) return;
  atomic_store(&t->stop, true);
  if (t->has_thread) rcache__bg_join(t->thread);
  t->has_thread = false;
  if (t->conn) listener_lost(t, "closing");
}

void rcache__tracking_free(rcache__tracking *t) {
  if (!t) return;
  rcache__tracking_stop(t);
  pthread_mutex_lock(&t->mu);
  if (t->registered) rcache__near_remove_source(t->near, t->blocked);
  t->registered = false;
  pthread_mutex_unlock(&t->mu);
  pthread_mutex_destroy(&t->mu);
  rcache__free(t);
}

/* ---- tracked pools --------------------------------------------------------------------------- */

rcache_status rcache__tracked_pool_new(rcache__ctx *ctx, rcache__conn_setup *setup,
                                       const rcache__addr *a, bool near, rcache__pool **pool,
                                       rcache__tracking **trk) {
  *pool = NULL;
  *trk = NULL;
  rcache_status s = near ? rcache__tracking_new(ctx, setup, a, ctx->near, trk) : RCACHE_OK;
  if (s == RCACHE_OK && *trk) {
    setup->tracking_redirect = rcache__tracking_redirect(*trk);
    setup->tracking_refused = &(*trk)->data_refused;
  }
  if (s == RCACHE_OK) s = rcache__pool_new(ctx, setup, a, pool);
  if (s != RCACHE_OK) {
    rcache__tracking_free(*trk);
    *trk = NULL;
  }
  return s;
}

void rcache__tracked_pool_free(rcache__pool *pool, rcache__tracking *trk) {
  rcache__tracking_stop(trk); /* its thread uses the pool */
  rcache__pool_free(pool);
  rcache__tracking_free(trk); /* after its pool: it gets the pool's events */
}

void rcache__tracked_pool_after_fork(rcache__pool *pool, rcache__tracking *trk) {
  rcache__pool_after_fork(pool);
  rcache__tracking_after_fork(trk); /* after its pool: it starts using it */
}
