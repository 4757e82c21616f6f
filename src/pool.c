/* SPDX-License-Identifier: BSD-3-Clause */
/* Connection pool, circuit breaker wiring and the background prober (see pool.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool.h"

struct rcache__pool {
  rcache__ctx *ctx;
  rcache__conn_setup setup;
  rcache__breaker br;

  pthread_mutex_t mu;   /* guards everything below */
  pthread_cond_t freed; /* a connection came back or a slot opened */
  pthread_cond_t wake;  /* the prober has work, or must stop */
  rcache__addr addr;
  rcache__conn *idle;
  int total, max;
  int waiting;    /* callers in rcache__pool_acquire's wait for a free connection */
  uint64_t epoch; /* bumped when the server was lost: older connections go */
  int64_t down_since_us;
  char last_error[256];
  _Atomic rcache_status last_status; /* why it is unavailable; read without the lock */
  bool stop;
  bool has_thread;
  pthread_t prober;

  rcache__pool_event_fn on_event;
  void *event_ud;
  rcache__probe_fn probe;
  void *probe_ud;
};

static void emit(rcache__pool *p, bool up) {
  if (p->on_event) p->on_event(p->event_ud, p, up);
}

/* Closes the idle list (called with the lock held; closing is quick, no I/O wait). */
static void drop_idle_locked(rcache__pool *p) {
  while (p->idle) {
    rcache__conn *c = p->idle;
    p->idle = c->next;
    rcache__conn_close(c);
    p->total--;
  }
  pthread_cond_broadcast(&p->freed);
}

void rcache__pool_drop_idle(rcache__pool *p) {
  pthread_mutex_lock(&p->mu);
  p->epoch++;
  drop_idle_locked(p);
  pthread_mutex_unlock(&p->mu);
}

int rcache__pool_check_idle(rcache__pool *p) {
  int dead = 0;
  pthread_mutex_lock(&p->mu);
  for (rcache__conn **pp = &p->idle; *pp;) {
    rcache__conn *c = *pp;
    if (!rcache__sock_stale(&c->sock)) {
      pp = &c->next;
      continue;
    }
    *pp = c->next;
    rcache__conn_close(c);
    p->total--;
    dead++;
  }
  if (dead) pthread_cond_broadcast(&p->freed);
  pthread_mutex_unlock(&p->mu);
  if (dead) emit(p, false);
  return dead;
}

static void *prober_main(void *arg);

/* The breaker just opened: log once, forget connections, wake the prober. */
static void tripped(rcache__pool *p, rcache_status s, const char *why) {
  char where[300];
  pthread_mutex_lock(&p->mu);
  p->last_status = rcache__transport_failure(s) ? RCACHE_EUNAVAILABLE : s;
  p->epoch++;
  drop_idle_locked(p);
  p->down_since_us = rcache__now_us();
  snprintf(p->last_error, sizeof p->last_error, "%s", why && *why ? why : "connection failed");
  char reason[sizeof p->last_error];
  memcpy(reason, p->last_error, sizeof reason); /* the prober may rewrite it once unlocked */
  rcache__addr_str(&p->addr, where, sizeof where);
  /* The prober is started by the first outage: a cluster of many nodes that never fail
   * costs no thread per node. */
  bool no_prober = false;
  if (!p->has_thread && !p->stop) {
    p->has_thread = pthread_create(&p->prober, NULL, prober_main, p) == 0;
    no_prober = !p->has_thread;
  }
  pthread_cond_signal(&p->wake);
  pthread_mutex_unlock(&p->mu);
  if (no_prober) { /* without a prober nobody would close it: let calls try themselves */
    rcache__log(p->ctx, RCACHE_LOG_ERROR, "cannot start a reconnect thread for %s", where);
    rcache__breaker_close(&p->br);
    return;
  }
  atomic_fetch_add_explicit(&p->ctx->n.breaker_opens, 1, memory_order_relaxed);
  rcache__log(p->ctx, s == RCACHE_EAUTH || s == RCACHE_ETLS ? RCACHE_LOG_ERROR : RCACHE_LOG_WARN,
              "cache unavailable: %s (server %s, %s); answering without the cache and "
              "reconnecting in the background",
              reason, where, p->ctx->url.redacted ? p->ctx->url.redacted : "");
  emit(p, false);
}

static void failure(rcache__pool *p, rcache_status s) {
  if (rcache__breaker_failure(&p->br)) tripped(p, s, rcache__err_peek());
}

void rcache__pool_report(rcache__pool *p, rcache_status s) {
  if (rcache__transport_failure(s))
    failure(p, s);
  else if (rcache__breaker_success(&p->br))
    tripped(p, RCACHE_EUNAVAILABLE, "too many failed calls (breaker_failure_rate)");
}

/* ---- the prober ------------------------------------------------------------------------------ */

rcache_status rcache__pool_ping(rcache__pool *p) {
  rcache__addr a;
  pthread_mutex_lock(&p->mu);
  a = p->addr;
  uint64_t epoch = p->epoch;
  pthread_mutex_unlock(&p->mu);
  rcache__conn *c;
  int64_t t0 = rcache__now_us();
  rcache_status s =
      rcache__conn_open(&p->setup, &a, t0 + (int64_t)p->ctx->opt.connect_timeout_ms * 1000, &c);
  if (s != RCACHE_OK) return s;
  rcache__cmds b = {0};
  redisReply *r = NULL;
  s = rcache__cmds_addv(&b, "PING", NULL);
  rcache__cmds_expect(&b, RCACHE__R_OK);
  if (s == RCACHE_OK)
    s = rcache__conn_exec(
        c, &b, &r, rcache__now_us() + (int64_t)p->ctx->opt.command_timeout_ms * 1000, 1 << 16);
  rcache__cmds_free(&b);
  if (s == RCACHE_OK) s = rcache__reply_status(r); /* -LOADING / -BUSY: not yet */
  if (r) freeReplyObject(r);
  pthread_mutex_lock(&p->mu);
  /* keep it (the first caller needs one), unless the pool moved on while it connected */
  if (s == RCACHE_OK && epoch == p->epoch && p->total < p->max) {
    c->epoch = epoch;
    c->next = p->idle;
    p->idle = c;
    p->total++;
    c = NULL;
  }
  pthread_mutex_unlock(&p->mu);
  rcache__conn_close(c);
  return s;
}

static void *prober_main(void *arg) {
  rcache__pool *p = arg;
  int attempt = 0;
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    if (atomic_load(&p->br.state) == RCACHE_BREAKER_CLOSED) {
      attempt = 0;
      pthread_cond_wait(&p->wake, &p->mu);
      continue;
    }
    struct timespec ts;
    rcache__deadline_ts(&ts,
                        rcache__now_us() + rcache__breaker_backoff_ms(&p->br, attempt++) * 1000);
    while (!p->stop && pthread_cond_timedwait(&p->wake, &p->mu, &ts) != ETIMEDOUT) {
    }
    if (p->stop) break;
    pthread_mutex_unlock(&p->mu);

    rcache__breaker_half_open(&p->br);
    atomic_fetch_add_explicit(&p->ctx->n.reconnect_attempts, 1, memory_order_relaxed);
    rcache__err_clear();
    rcache_status s = p->probe ? p->probe(p->probe_ud, p) : rcache__pool_ping(p);
    if (s == RCACHE_OK) {
      pthread_mutex_lock(&p->mu);
      double down_s = (double)(rcache__now_us() - p->down_since_us) / 1e6;
      p->last_error[0] = '\0';
      char where[300];
      rcache__addr_str(&p->addr, where, sizeof where);
      pthread_mutex_unlock(&p->mu);
      if (rcache__breaker_close(&p->br)) {
        rcache__log(p->ctx, RCACHE_LOG_WARN, "cache available again after %.1f s (server %s, %s)",
                    down_s, where, p->ctx->url.redacted ? p->ctx->url.redacted : "");
        emit(p, true);
      }
    } else {
      pthread_mutex_lock(&p->mu);
      const char *why = rcache__err_peek();
      if (*why) snprintf(p->last_error, sizeof p->last_error, "%s", why);
      p->last_status = rcache__transport_failure(s) ? RCACHE_EUNAVAILABLE : s;
      pthread_mutex_unlock(&p->mu);
      rcache__breaker_reopen(&p->br);
      rcache__log(p->ctx, RCACHE_LOG_DEBUG, "reconnect attempt %d failed: %s", attempt, why);
    }
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* ---- life ------------------------------------------------------------------------------------ */

rcache_status rcache__pool_new(rcache__ctx *ctx, const rcache__conn_setup *setup,
                               const rcache__addr *a, rcache__pool **out) {
  rcache__pool *p = rcache__calloc(1, sizeof *p);
  if (!p) return RCACHE_ENOMEM;
  p->ctx = ctx;
  p->setup = *setup;
  p->addr = *a;
  p->max = ctx->opt.pool_size;
  rcache__breaker_init(&p->br, &ctx->opt);
  pthread_mutex_init(&p->mu, NULL);
  rcache__cond_init_mono(&p->freed);
  rcache__cond_init_mono(&p->wake);
  *out = p;
  return RCACHE_OK;
}

void rcache__pool_free(rcache__pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_broadcast(&p->wake);
  bool joined = p->has_thread;
  pthread_mutex_unlock(&p->mu);
  if (joined) pthread_join(p->prober, NULL);
  drop_idle_locked(p);
  pthread_cond_destroy(&p->freed);
  pthread_cond_destroy(&p->wake);
  pthread_mutex_destroy(&p->mu);
  rcache__free(p);
}

void rcache__pool_on_event(rcache__pool *p, rcache__pool_event_fn fn, void *ud) {
  p->on_event = fn;
  p->event_ud = ud;
}

void rcache__pool_on_probe(rcache__pool *p, rcache__probe_fn fn, void *ud) {
  p->probe = fn;
  p->probe_ud = ud;
}

rcache_status rcache__pool_warm(rcache__pool *p) {
  rcache_status s = p->probe ? p->probe(p->probe_ud, p) : rcache__pool_ping(p);
  /* out of memory says nothing about the server: the caller hears it, the breaker not */
  if (s != RCACHE_OK && s != RCACHE_ENOMEM && rcache__breaker_trip(&p->br))
    tripped(p, s, rcache__err_peek());
  return s;
}

void rcache__pool_after_fork(rcache__pool *p) {
  pthread_mutex_init(&p->mu, NULL); /* over the copy: its owner may be a vanished thread */
  rcache__cond_init_mono(&p->freed);
  rcache__cond_init_mono(&p->wake);
  p->stop = false;
  p->has_thread = false;
  while (p->idle) {
    rcache__conn *c = p->idle;
    p->idle = c->next;
    rcache__conn_close(c); /* close() of our copy only: no QUIT, no TLS close_notify */
  }
  p->total = 0; /* the connections parent threads had in use stayed with those threads */
  p->waiting = 0;
  p->epoch++;
  if (atomic_load(&p->br.state) == RCACHE_BREAKER_CLOSED) return;
  p->has_thread = pthread_create(&p->prober, NULL, prober_main, p) == 0;
  if (!p->has_thread) rcache__breaker_close(&p->br); /* calls try themselves, as in tripped() */
}

/* ---- acquire / release ----------------------------------------------------------------------- */

/* The detail of a call refused by the open breaker, written only when asked for. */
static void breaker_msg(void *ud, char *buf, size_t size) {
  rcache__pool *p = ud;
  char where[300];
  pthread_mutex_lock(&p->mu);
  rcache__addr_str(&p->addr, where, sizeof where);
  snprintf(buf, size, "cache unavailable (circuit breaker open for %s): %.200s", where,
           p->last_error[0] ? p->last_error : "reconnecting");
  pthread_mutex_unlock(&p->mu);
}

rcache_status rcache__pool_acquire(rcache__pool *p, int64_t deadline_us, rcache__conn **out) {
  if (!rcache__breaker_allow(&p->br)) { /* one atomic load, and no formatting */
    rcache__err_lazy(breaker_msg, p);
    rcache__err_cause(p->last_status); /* EAUTH / ETLS: a configuration error, not an outage */
    return RCACHE_EUNAVAILABLE;
  }
  pthread_mutex_lock(&p->mu);
  for (;;) {
    if (p->idle) {
      rcache__conn *c = p->idle;
      p->idle = c->next;
      pthread_mutex_unlock(&p->mu);
      c->next = NULL;
      /* One poll() per call: bytes waiting on an idle connection were not asked for (or the
       * server closed it); read as the next reply they would answer the wrong request. */
      if (rcache__sock_stale(&c->sock)) {
        rcache__log(p->ctx, RCACHE_LOG_DEBUG,
                    "pool: an idle connection was closed by the "
                    "server or had bytes nobody asked for: dropped");
        c->broken = true;
        rcache__pool_release(p, c); /* closes it and tells the event callback */
        pthread_mutex_lock(&p->mu);
        continue;
      }
      *out = c;
      return RCACHE_OK;
    }
    if (p->total < p->max) break;
    struct timespec ts;
    rcache__deadline_ts(&ts, deadline_us);
    p->waiting++;
    int rc = pthread_cond_timedwait(&p->freed, &p->mu, &ts);
    p->waiting--;
    if (rc == ETIMEDOUT) {
      pthread_mutex_unlock(&p->mu);
      rcache__errf("no free connection within the deadline (pool_size %d)", p->max);
      return RCACHE_ETIMEOUT;
    }
  }
  p->total++;
  rcache__addr a = p->addr;
  uint64_t epoch = p->epoch;
  pthread_mutex_unlock(&p->mu);

  int64_t cd = rcache__now_us() + (int64_t)p->ctx->opt.connect_timeout_ms * 1000;
  rcache_status s = rcache__conn_open(&p->setup, &a, cd < deadline_us ? cd : deadline_us, out);
  if (s != RCACHE_OK) {
    pthread_mutex_lock(&p->mu);
    p->total--;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->mu);
    if (s == RCACHE_ENOMEM) return s; /* not the server's fault: the breaker is not told */
    failure(p, s); /* whatever the reason (refused, auth, TLS), the server is unusable */
    if (s == RCACHE_ETIMEOUT) return s; /* counted as a timeout, answered as unavailable */
    return rcache__transport_failure(s) ? RCACHE_EUNAVAILABLE : s;
  }
  (*out)->epoch = epoch;
  return RCACHE_OK;
}

void rcache__pool_release(rcache__pool *p, rcache__conn *c) {
  if (!c) return;
  pthread_mutex_lock(&p->mu);
  bool lost = c->broken;
  if (c->broken || c->epoch != p->epoch) {
    p->total--;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->mu);
    rcache__conn_close(c);
    if (lost) emit(p, false);
    return;
  }
  c->next = p->idle;
  p->idle = c;
  pthread_cond_signal(&p->freed);
  pthread_mutex_unlock(&p->mu);
}

/* ---- state ----------------------------------------------------------------------------------- */

void rcache__pool_set_addr(rcache__pool *p, const rcache__addr *a) {
  pthread_mutex_lock(&p->mu);
  if (memcmp(&p->addr, a, sizeof *a) != 0) {
    p->addr = *a;
    p->epoch++;
    drop_idle_locked(p);
  }
  pthread_mutex_unlock(&p->mu);
}

void rcache__pool_addr(rcache__pool *p, rcache__addr *a) {
  pthread_mutex_lock(&p->mu);
  *a = p->addr;
  pthread_mutex_unlock(&p->mu);
}

bool rcache__pool_available(rcache__pool *p) {
  return rcache__breaker_allow(&p->br);
}

void rcache__pool_gauges(rcache__pool *p, rcache__server_gauges *g) {
  memset(g, 0, sizeof *g);
  pthread_mutex_lock(&p->mu);
  rcache__addr_str(&p->addr, g->server, sizeof g->server);
  int idle = 0;
  for (rcache__conn *c = p->idle; c; c = c->next)
    idle++;
  g->connections = p->total;
  g->busy = p->total > idle ? p->total - idle : 0;
  g->waiting = p->waiting;
  pthread_mutex_unlock(&p->mu);
  g->breaker_state = rcache__pool_breaker_state(p);
}

int rcache__pool_breaker_state(rcache__pool *p) {
  return atomic_load_explicit(&p->br.state, memory_order_relaxed);
}

rcache_status rcache__pool_last_error(rcache__pool *p, char *buf, size_t size) {
  pthread_mutex_lock(&p->mu);
  bool up = rcache__breaker_allow(&p->br);
  snprintf(buf, size, "%s", up ? "" : p->last_error);
  rcache_status s = up ? RCACHE_OK : p->last_status ? p->last_status : RCACHE_EUNAVAILABLE;
  pthread_mutex_unlock(&p->mu);
  return s;
}
