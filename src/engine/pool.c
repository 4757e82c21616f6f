/* SPDX-License-Identifier: BSD-3-Clause */
/* Connection pool, circuit breaker wiring and the background prober (see pool.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/pool.h"

struct rcache__pool {
  rcache__ctx *ctx;
  rcache__conn_setup setup;
  rcache__breaker br;

  pthread_mutex_t mu;  /* guards everything below */
  pthread_cond_t room; /* a connection came back, a slot opened or one has room for a call */
  pthread_cond_t wake; /* the prober has work, or must stop */
  rcache__addr addr;
  rcache__conn *idle;
  rcache__conn *shared; /* connections in the pipeline's use */
  int total, max;
  int depth;        /* calls per connection at most (pipeline_depth) */
  size_t max_bytes; /* request bytes per connection at most, beyond the first call */
  int joining;      /* callers of rcache__pool_submit waiting (on room) */
  /* callers to wake once the lock is released (pool_unlock): woken under it, each would
   * wake to a lock its waker still holds */
  rcache__wakeup *kick[32];
  int nkick;
  /* bumped (under mu) when the server was lost: older connections go; read without the lock
   * by rcache__pool_current */
  _Atomic uint64_t epoch;
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
  pthread_cond_broadcast(&p->room);
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
  if (dead) pthread_cond_broadcast(&p->room);
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
    p->has_thread = rcache__bg_spawn(&p->prober, prober_main, p) == 0;
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
      rcache__cond_wait(&p->wake, &p->mu);
      continue;
    }
    struct timespec ts;
    rcache__deadline_ts(&ts,
                        rcache__now_us() + rcache__breaker_backoff_ms(&p->br, attempt++) * 1000);
    while (!p->stop && rcache__cond_timedwait(&p->wake, &p->mu, &ts) != ETIMEDOUT) {
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
  p->depth = ctx->opt.pipeline_depth;
  p->max_bytes = ctx->opt.pipeline_max_bytes;
  rcache__breaker_init(&p->br, &ctx->opt);
  pthread_mutex_init(&p->mu, NULL);
  rcache__cond_init_mono(&p->room);
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
  if (joined) rcache__bg_join(p->prober);
  drop_idle_locked(p);
  pthread_cond_destroy(&p->room);
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
  rcache__cond_init_mono(&p->room);
  rcache__cond_init_mono(&p->wake);
  p->stop = false;
  p->has_thread = false;
  while (p->idle) {
    rcache__conn *c = p->idle;
    p->idle = c->next;
    rcache__conn_close(c); /* close() of our copy only: no QUIT, no TLS close_notify */
  }
  p->shared = NULL; /* those in use by parent threads stayed with those threads, */
  p->total = 0;
  p->joining = 0;
  p->nkick = 0;
  p->epoch++;
  if (atomic_load(&p->br.state) == RCACHE_BREAKER_CLOSED) return;
  p->has_thread = rcache__bg_spawn(&p->prober, prober_main, p) == 0;
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

/* The open breaker's answer: one atomic load, and no formatting. */
static rcache_status refused(rcache__pool *p) {
  rcache__err_lazy(breaker_msg, p);
  rcache__err_cause(p->last_status); /* EAUTH / ETLS: a configuration error, not an outage */
  return RCACHE_EUNAVAILABLE;
}

/* Under the lock: a connection went back to the pool, or closed (room for a new one), or
 * a connection in use has room for one more call. */
static void room_locked(rcache__pool *p) {
  if (p->joining) pthread_cond_signal(&p->room);
}

/* Under the lock: takes an idle connection (*c set) or the room for a new one (*c NULL);
 * false when there is neither. */
static bool take_locked(rcache__pool *p, rcache__conn **c) {
  if (p->idle) {
    *c = p->idle;
    p->idle = (*c)->next;
    (*c)->next = NULL;
    return true;
  }
  if (p->total >= p->max) return false;
  p->total++;
  *c = NULL;
  return true;
}

/* Opens a connection as the pool's own are opened (its set-up, its current address, by
 * connect_timeout_ms or deadline_us), stamped with the pool's epoch. A failure is told to the
 * breaker, whatever the reason (refused, auth, TLS: the server is unusable), except running
 * out of memory, which is not the server's fault. */
rcache_status rcache__pool_open_conn(rcache__pool *p, int64_t deadline_us, rcache__conn **c) {
  pthread_mutex_lock(&p->mu);
  rcache__addr a = p->addr;
  uint64_t epoch = p->epoch;
  pthread_mutex_unlock(&p->mu);
  int64_t cd = rcache__now_us() + (int64_t)p->ctx->opt.connect_timeout_ms * 1000;
  rcache_status s = rcache__conn_open(&p->setup, &a, cd < deadline_us ? cd : deadline_us, c);
  if (s == RCACHE_OK)
    (*c)->epoch = epoch;
  else if (s != RCACHE_ENOMEM)
    failure(p, s);
  return s;
}

bool rcache__pool_current(rcache__pool *p, const rcache__conn *c) {
  return c->epoch == atomic_load_explicit(&p->epoch, memory_order_acquire);
}

/* Outside the lock, after take_locked: checks the idle connection taken for k, or opens the
 * new one by k's acquire_by. RCACHE_OK with *c ready; *again when the idle one was dropped
 * (take another); else the failure, told to the breaker. */
static rcache_status make_ready(rcache__pool *p, rcache__conn **c, const rcache__call *k,
                                bool *again) {
  *again = false;
  if (*c) {
    /* Bytes waiting on an idle connection were not asked for (or the server closed it); read
     * as the next reply they would answer the wrong request. A socket with receive
     * timestamps finds them as it reads (conn.c: a reply received before it was asked), and
     * an idempotent call then runs again on a fresh connection, as after a connection found
     * dead (exchange.c): no poll() is needed. Others poll first: a call that may not run
     * twice must not be written on a connection the server has closed. */
    if ((k->idempotent && (*c)->sock.stamped) || !rcache__sock_stale(&(*c)->sock)) return RCACHE_OK;
    rcache__log(p->ctx, RCACHE_LOG_DEBUG,
                "pool: an idle connection was closed by the server or had bytes nobody asked "
                "for: dropped");
    pthread_mutex_lock(&p->mu);
    p->total--;
    room_locked(p);
    pthread_mutex_unlock(&p->mu);
    rcache__conn_close(*c);
    emit(p, false); /* a listener's tracking may have gone with it */
    *c = NULL;
    *again = true;
    return RCACHE_OK;
  }
  rcache_status s = rcache__pool_open_conn(p, k->acquire_by, c);
  if (s == RCACHE_OK) return s;
  pthread_mutex_lock(&p->mu);
  p->total--;
  room_locked(p);
  pthread_mutex_unlock(&p->mu);
  if (s == RCACHE_ENOMEM) return s;
  if (s == RCACHE_ETIMEOUT) return s; /* counted as a timeout, answered as unavailable */
  return rcache__transport_failure(s) ? RCACHE_EUNAVAILABLE : s;
}

/* Under the lock: waits by deadline_us for a connection to take or join (on room); false
 * (with the message) when it passed. A waiter that leaves passes on a wake-up it may have
 * taken while there is something to take, so that no other waiter sleeps past it. */
static bool wait_room(rcache__pool *p, int64_t deadline_us) {
  struct timespec ts;
  rcache__deadline_ts(&ts, deadline_us);
  p->joining++;
  int rc = rcache__cond_timedwait(&p->room, &p->mu, &ts);
  p->joining--;
  if (rc != ETIMEDOUT) return true;
  if (p->joining && (p->idle || p->total < p->max)) pthread_cond_signal(&p->room);
  rcache__errf("no free connection within the deadline (pool_size %d)", p->max);
  return false;
}

/* ---- the pipelined exchange ------------------------------------------------------------------ */

/*
 * Leader and followers. A caller that takes an idle connection (or opens one) is its
 * leader: it writes, reads and returns it to the pool when nothing is left on it, as a call
 * that held the connection did before, at the same cost: one write, one read. When
 * pool_size connections are in use, a caller joins the least loaded one (rcache__call on
 * its queue) and sleeps. The leader, between replies, writes everything queued in one write
 * and hands each reply to the call it answers (replies come in the order of the requests).
 * When its own call is complete, the leader hands the connection over to the first call
 * still waiting for replies, whose caller carries on.
 *
 * Deadlines stay per call, and a call's command timeout runs from the write of its request
 * (take_queue_locked), as it did when each caller had a connection to itself: time spent
 * queued behind a leader's read is the wait for a connection (end_by bounds both). Under
 * load (or when the machine does not schedule the leader) a follower would otherwise lose
 * its whole command timeout before its request left. A follower whose deadline passes
 * leaves, and if its request was
 * written, a heap copy of its call (a tombstone) takes its place so that its replies are
 * read and dropped and every later reply still reaches its own caller. A leader whose
 * deadline passes hands over in the same way; when nobody is left to hand over to, the
 * connection is closed (as a timed-out exchange always closed it). Any other failure
 * closes the connection and fails the calls written on it (a call queued but not written
 * goes on to another connection).
 *
 * Under the pool's lock: the lists, the counters and each call's fields below b. The
 * connection's socket and parser belong to its leader alone, outside the lock; the
 * leader never keeps a pointer to another caller's call across an unlock (the caller may
 * leave, its call replaced by a tombstone), and copies the requests it writes for others
 * (their buffers leave with them).
 *
 * What a call costs with 64 threads on 8 connections is sleeps and wake-ups, so each
 * follower sleeps once and takes the lock once: it is armed (wakeup.h) in the same locked
 * stretch that queues it, sleeps on its own word without the lock, and is woken after the
 * waker released the lock (pool_unlock), not into a lock its waker still holds; a call
 * complete when woken returns without the lock. A leader hands out under one lock all the
 * replies that one read brought (next_replies), not one lock per reply.
 */

static const char *call_bytes(const rcache__call *k) {
  return k->b->one ? k->b->one : k->b->buf;
}

static void push(rcache__call **head, rcache__call ***tail, rcache__call *k) {
  k->next = NULL;
  **tail = k;
  *tail = &k->next;
}

/* Unlinks k from a list; true when it was there. */
static bool unlink_call(rcache__call **head, rcache__call ***tail, rcache__call *k) {
  for (rcache__call **pp = head; *pp; pp = &(*pp)->next) {
    if (*pp != k) continue;
    *pp = k->next;
    if (*tail == &k->next) *tail = pp;
    return true;
  }
  return false;
}

/* Why a sleeping caller is woken (rcache__wakeup_set): its call is complete and it may
 * return without the lock, or it must look (under the lock) at what changed. */
enum { WOKEN_DONE = 1, WOKEN_LOOK = 2 };

/* Under the lock: k's caller, if asleep, may go on; it is woken once the lock is released
 * (pool_unlock). */
static void wake(rcache__pool *p, rcache__call *k, uint32_t why) {
  if (!k->asleep) return;
  k->asleep = false;
  rcache__wakeup_set(&k->w, why);
  if (p->nkick < (int)(sizeof p->kick / sizeof p->kick[0]))
    p->kick[p->nkick++] = &k->w;
  else
    rcache__wakeup_kick(&k->w); /* rare: the lock is held a little longer */
}

/* Releases the lock, then wakes the callers wake() chose meanwhile. Their calls may be
 * gone by then: a kick uses the address only (wakeup.h). */
static void pool_unlock(rcache__pool *p) {
  rcache__wakeup *kick[sizeof p->kick / sizeof p->kick[0]];
  int n = p->nkick;
  if (n) memcpy(kick, p->kick, (size_t)n * sizeof kick[0]);
  p->nkick = 0;
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < n; i++)
    rcache__wakeup_kick(kick[i]);
}

/* A call is complete or failed: off the connection's counts, its caller woken (a
 * tombstone freed). */
static void finish_locked(rcache__pool *p, rcache__conn *c, rcache__call *k, rcache_status s) {
  c->calls--;
  c->bytes -= k->len;
  k->s = s;
  k->done = true;
  if (k->gone)
    rcache__free(k);
  else
    wake(p, k, WOKEN_DONE);
  room_locked(p);
}

/* Under the lock: c leaves the list of connections in the pipeline's use. */
static void unshare_locked(rcache__pool *p, rcache__conn *c) {
  for (rcache__conn **pp = &p->shared; *pp; pp = &(*pp)->next) {
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  }
  c->next = NULL;
  c->shared = false;
}

/* Under the lock: the connection failed with s (it is broken). Calls written on it fail
 * with s, or with RCACHE_EIO for those whose replies were not the cause (`cause`: the call
 * whose reply failed, or NULL); calls not written go elsewhere. One broken connection is one
 * failure for the breaker, however many calls were pipelined on it: the cause's caller (or,
 * when it left or there is none, the first caller still waiting) tells it, the others are
 * bystanders. The connection leaves the shared list; the caller closes it. */
static void fail_locked(rcache__pool *p, rcache__conn *c, rcache_status s, rcache__call *cause) {
  c->broken = true;
  if (cause && cause->gone) cause = NULL;
  while (c->flight) {
    rcache__call *k = c->flight;
    c->flight = k->next;
    if (!cause && !k->gone) cause = k;
    k->bystander = k != cause;
    finish_locked(p, c, k, k == cause ? s : RCACHE_EIO);
  }
  c->flight_tail = &c->flight;
  while (c->queue) {
    rcache__call *k = c->queue;
    c->queue = k->next;
    c->calls--;
    c->bytes -= k->len;
    k->requeue = true;
    wake(p, k, WOKEN_LOOK);
  }
  c->queue_tail = &c->queue;
  unshare_locked(p, c);
  p->total--;
  room_locked(p);
}

/* Under the lock: the caller of k leaves before its replies came; a tombstone takes its
 * place in the flight list. False when there is no memory for one: k is taken out and the
 * connection marked poisoned (its replies would go to the calls after it), for its leader to
 * fail and close. */
static bool leave_locked(rcache__conn *c, rcache__call *k) {
  rcache__call *t = rcache__malloc(sizeof *t);
  if (!t) {
    unlink_call(&c->flight, &c->flight_tail, k);
    c->calls--;
    c->bytes -= k->len;
    c->poisoned = true;
    return false;
  }
  *t = *k;
  t->hdr = *k->b;
  t->hdr.buf = t->hdr.one = NULL; /* written already */
  t->b = &t->hdr;
  t->rep = NULL;
  t->gone = true;
  t->asleep = false;
  for (rcache__call **pp = &c->flight; *pp; pp = &(*pp)->next) {
    if (*pp != k) continue;
    *pp = t;
    if (c->flight_tail == &k->next) c->flight_tail = &t->next;
    break;
  }
  return true;
}

/* Under the lock: the connection goes on with the first call still waiting for it (in
 * flight, then queued). False when there is none. */
static bool hand_over_locked(rcache__pool *p, rcache__conn *c) {
  for (rcache__call *k = c->flight; k; k = k->next) {
    if (!k->gone) {
      k->lead = true;
      wake(p, k, WOKEN_LOOK);
      return true;
    }
  }
  if (c->queue) {
    c->queue->lead = true;
    wake(p, c->queue, WOKEN_LOOK);
    return true;
  }
  return false;
}

/* Under the lock, by the leader with nothing left on c: back to the idle list (or closed
 * when the pool moved on). True when the caller must close it. */
static bool retire_locked(rcache__pool *p, rcache__conn *c) {
  unshare_locked(p, c);
  if (c->epoch != p->epoch || c->broken) {
    p->total--;
    room_locked(p);
    return true;
  }
  c->next = p->idle;
  p->idle = c;
  room_locked(p);
  return false;
}

/* Under the lock: the requests queued on c, as one buffer to write. The leader's own
 * request alone is written from its buffer; several are copied (their callers may leave
 * while the write is under way). NULL with *len 0 when nothing is queued; NULL with
 * *len > 0 when out of memory. */
static const char *take_queue_locked(rcache__conn *c, const rcache__call *me, size_t *len) {
  *len = 0;
  if (!c->queue) return NULL;
  bool alone = c->queue == me && !me->next;
  size_t total = 0;
  for (rcache__call *k = c->queue; k; k = k->next)
    total += k->len;
  *len = total;
  if (!alone && total > c->wcap) {
    char *nb = rcache__realloc(c->wbuf, total);
    if (!nb) return NULL;
    c->wbuf = nb;
    c->wcap = total;
  }
  size_t at = 0;
  int64_t now = rcache__now_us();
  while (c->queue) {
    rcache__call *k = c->queue;
    c->queue = k->next;
    if (!alone) memcpy(c->wbuf + at, call_bytes(k), k->len);
    at += k->len;
    k->reused = c->reused;
    int64_t d = now + k->timeout_us; /* its command timeout starts now */
    k->deadline_us = d < k->end_by ? d : k->end_by;
    push(&c->flight, &c->flight_tail, k);
  }
  c->queue_tail = &c->queue;
  return alone ? call_bytes(me) : c->wbuf;
}

/* Under the lock: hands reply r (read with status s) to the head of the flight list.
 * False when the connection failed (the caller closes it). */
static bool deliver_locked(rcache__pool *p, rcache__conn *c, rcache_status s, redisReply *r) {
  rcache__call *h = c->flight; /* the call whose reply this is; maybe a tombstone now */
  if (s == RCACHE_OK)
    s = rcache__conn_check(c, h->b, h->got, &r, h->got + 1 == h->b->n && !h->next);
  if (s != RCACHE_OK) {
    fail_locked(p, c, s, h);
    return false;
  }
  c->reused = true;
  if (h->gone)
    freeReplyObject(r);
  else
    h->rep[h->got] = r;
  if (++h->got == h->b->n) {
    c->flight = h->next;
    if (!c->flight) c->flight_tail = &c->flight;
    finish_locked(p, c, h, RCACHE_OK);
  }
  return true;
}

/* Replies read by one unlock of the leader, at most (a batch of replies that came together
 * is handed out under one lock, not one lock per reply). */
#define READ_AHEAD 16

/* Reads replies for the calls at the head of the flight list, the lock released meanwhile:
 * the first by deadline_us (0: only one already buffered), then those already buffered
 * whole, as many as the flight list expects and READ_AHEAD at most (each charged to its own
 * call's max_reply). Returns how many were read (r[0..n), in order); *s is the status of the
 * read after them when it failed (RCACHE_ETIMEOUT only for the first), else RCACHE_OK. The
 * flight list cannot shrink meanwhile: a caller that leaves puts a tombstone in its place
 * (or poisons the connection, and nothing read is handed out). */
static int next_replies(rcache__pool *p, rcache__conn *c, int64_t deadline_us,
                        redisReply *r[READ_AHEAD], rcache_status *s) {
  size_t cap[READ_AHEAD];
  int want = 0, n = 0;
  for (const rcache__call *k = c->flight; k && want < READ_AHEAD; k = k->next)
    for (int i = k->got; i < k->b->n && want < READ_AHEAD; i++)
      cap[want++] = k->max_reply;
  if (!want) { /* (the callers read only with calls in flight) */
    *s = RCACHE_ETIMEOUT;
    return 0;
  }
  pool_unlock(p);
  *s = rcache__conn_next(c, &r[0], deadline_us, cap[0]);
  if (*s == RCACHE_OK) {
    for (n = 1; n < want; n++) {
      rcache_status more = rcache__conn_next(c, &r[n], 0, cap[n]);
      if (more == RCACHE_ETIMEOUT) break; /* nothing more buffered */
      if (more != RCACHE_OK) {
        *s = more;
        break;
      }
    }
  }
  pthread_mutex_lock(&p->mu);
  if (c->poisoned && n) { /* a caller could not leave a tombstone */
    rcache__replies_free(r, n);
    *s = RCACHE_EIO;
    return 0;
  }
  return n;
}

/* Under the lock: hands out the n replies read, then the failure after them (s). False when
 * the connection failed (the caller closes it; replies not handed out are freed). */
static bool deliver_all_locked(rcache__pool *p, rcache__conn *c, redisReply **r, int n,
                               rcache_status s) {
  for (int i = 0; i < n; i++) {
    if (!deliver_locked(p, c, RCACHE_OK, r[i])) {
      rcache__replies_free(r + i + 1, n - i - 1);
      return false;
    }
  }
  return s == RCACHE_OK || deliver_locked(p, c, s, NULL);
}

/* The leader writes what is queued on c, the lock released meanwhile (*wrote: there was
 * something). False when the connection failed (the caller closes it). */
static bool write_locked(rcache__pool *p, rcache__conn *c, rcache__call *me, bool *wrote) {
  size_t len;
  const char *buf = take_queue_locked(c, me, &len);
  *wrote = len > 0;
  if (!len) return true;
  if (!buf) {
    fail_locked(p, c, RCACHE_ENOMEM, NULL); /* nothing of the queue was written */
    return false;
  }
  rcache__sock_ask(&c->sock); /* (the leader's alone, as the socket is) */
  pool_unlock(p);
  rcache_status s = rcache__conn_send(c, buf, len, me->deadline_us);
  pthread_mutex_lock(&p->mu);
  if (s == RCACHE_OK) return true;
  fail_locked(p, c, s, me); /* half a request may be on the wire: nothing is safe */
  return false;
}

/* The leader's loop, entered and left with the lock held: writes what is queued, reads
 * replies and hands them out, until its own call is done or its deadline passes. Returns
 * true when the caller must close c (failed, or retired with the pool moved on). */
static bool lead_locked(rcache__pool *p, rcache__conn *c, rcache__call *me) {
  for (;;) {
    if (c->poisoned) { /* a caller could not leave a tombstone */
      fail_locked(p, c, RCACHE_EIO, NULL);
      return true;
    }
    bool wrote;
    if (!write_locked(p, c, me, &wrote)) return true;
    if (wrote) continue;
    if (me->done) break;
    redisReply *r[READ_AHEAD];
    rcache_status s;
    int n = next_replies(p, c, me->deadline_us, r, &s);
    if (c->poisoned) continue; /* failed at the top */
    if (!n && s == RCACHE_ETIMEOUT) {
      if (!leave_locked(c, me)) continue;
      if (hand_over_locked(p, c)) return false;
      fail_locked(p, c, RCACHE_ETIMEOUT, NULL); /* only tombstones are left */
      return true;
    }
    if (!deliver_all_locked(p, c, r, n, s)) return true;
  }
  /* hand out the replies already buffered: the next leader may take a while to run */
  while (c->flight && !c->poisoned) {
    redisReply *r[READ_AHEAD];
    rcache_status s;
    int n = next_replies(p, c, 0, r, &s);
    if (c->poisoned) break;
    if (!n && s == RCACHE_ETIMEOUT) break;
    if (!deliver_all_locked(p, c, r, n, s)) return true;
  }
  if (c->poisoned) {
    fail_locked(p, c, RCACHE_EIO, NULL);
    return true;
  }
  if (c->flight || c->queue) {
    if (hand_over_locked(p, c)) return false;
    /* only tombstones: their replies are on the way; reading them is not worth a caller's
     * time, and the connection is out of step without them */
    fail_locked(p, c, RCACHE_ETIMEOUT, NULL);
    return true;
  }
  return retire_locked(p, c);
}

/* The least loaded connection in use that a request may join, or NULL. */
static rcache__conn *joinable_locked(const rcache__pool *p) {
  rcache__conn *best = NULL;
  for (rcache__conn *c = p->shared; c; c = c->next) {
    /* a connection holding max_bytes of requests takes no more; a larger request may still
     * join one below (waiting for an idle one would starve it while the pool stays busy) */
    if (c->poisoned || c->epoch != p->epoch || c->calls >= p->depth || c->bytes >= p->max_bytes ||
        atomic_load_explicit(&c->heavy, memory_order_relaxed))
      continue;
    if (!best || c->calls < best->calls) best = c;
  }
  return best;
}

/* Closes a connection its leader gave up (failed, or retired with the pool moved on). */
static void closed(rcache__pool *p, rcache__conn *c) {
  bool lost = c->broken;
  rcache__conn_close(c);
  if (lost) emit(p, false);
}

/* Puts k on a connection: an idle one or a new one (k leads it, and writes at once), else
 * the least loaded one in use, else waits for either by k->acquire_by. */
static rcache_status enqueue(rcache__pool *p, rcache__call *k) {
  bool waited = false;
  for (;;) {
    if (!rcache__breaker_allow(&p->br)) return refused(p);
    pthread_mutex_lock(&p->mu);
    rcache__conn *c = NULL;
    bool took = false;
    for (;;) {
      /* first come, first served: a caller does not take a connection from under those
       * already waiting for one (each connection freed wakes one of them); it may join a
       * connection with room, which they could not */
      if ((waited || !p->joining) && (took = take_locked(p, &c))) break;
      if ((c = joinable_locked(p))) break;
      if (!wait_room(p, k->acquire_by)) {
        pool_unlock(p);
        return RCACHE_ETIMEOUT;
      }
      waited = true;
    }
    if (took) {
      pool_unlock(p);
      bool again;
      rcache_status s = make_ready(p, &c, k, &again);
      if (again) continue;
      if (s != RCACHE_OK) return s;
      pthread_mutex_lock(&p->mu);
      c->shared = true;
      c->calls = 0;
      c->bytes = 0;
      c->queue = c->flight = NULL;
      c->queue_tail = &c->queue;
      c->flight_tail = &c->flight;
      c->next = p->shared;
      p->shared = c;
      /* one more to join, when calls may share it: without pipelining nobody can, and
       * waking every waiter for each call taken made 64 threads on 8 connections crawl
       * (9,000 calls/s against 22,000 without the herd) */
      if (p->joining && p->depth > 1) pthread_cond_broadcast(&p->room);
      k->lead = true;
    }
    k->c = c;
    k->queued = true;
    if (!k->end_by) { /* a call moved to another connection keeps it */
      int64_t now = rcache__now_us();
      k->end_by = (now > k->acquire_by ? now : k->acquire_by) + k->timeout_us;
    }
    k->deadline_us = k->end_by; /* until written */
    k->requeue = k->done = false;
    push(&c->queue, &c->queue_tail, k);
    c->calls++;
    c->bytes += k->len;
    bool wrote, failed = k->lead && !write_locked(p, c, k, &wrote);
    if (!k->lead) { /* a follower: armed now, it sleeps in finish without taking the lock */
      rcache__wakeup_arm(&k->w);
      k->asleep = k->parked = true;
      k->park_by = k->deadline_us;
    }
    pool_unlock(p);
    if (failed) closed(p, c); /* k is done, failed */
    return RCACHE_OK;
  }
}

rcache_status rcache__pool_submit(rcache__pool *p, rcache__call *k, const rcache__cmds *b,
                                  redisReply **rep, size_t max_reply, int64_t acquire_by,
                                  int64_t timeout_us, bool idempotent) {
  if (b->values > 1) /* an MGET's reply holds up to that many values */
    max_reply = max_reply > SIZE_MAX / b->values ? SIZE_MAX : max_reply * b->values;
  *k = (rcache__call){.b = b,
                      .rep = rep,
                      .len = b->one ? b->one_len : b->len,
                      .max_reply = max_reply,
                      .acquire_by = acquire_by,
                      .timeout_us = timeout_us,
                      .idempotent = idempotent};
  rcache__wakeup_init(&k->w);
  return enqueue(p, k);
}

rcache_status rcache__pool_finish(rcache__pool *p, rcache__call *k) {
  rcache_status s;
  for (;;) { /* again when a connection failed before our request was written on it */
    /* armed by enqueue: the first sleep needs no lock; WOKEN_DONE: as below */
    if (k->parked) {
      k->parked = false;
      if (rcache__wakeup_wait(&k->w, k->park_by) == WOKEN_DONE) {
        s = k->s;
        break;
      }
    }
    pthread_mutex_lock(&p->mu);
    k->asleep = false;
    rcache__conn *c = k->c;
    bool complete = false; /* woken with the call complete: the lock was not taken again */
    while (!k->lead && !k->done && !k->requeue) {
      int64_t deadline_us = k->deadline_us;
      rcache__wakeup_arm(&k->w);
      k->asleep = true;
      pool_unlock(p);
      uint32_t why = rcache__wakeup_wait(&k->w, deadline_us);
      /* WOKEN_DONE: the waker set k->s and the replies before the word (release), and
       * nobody touches a complete call again */
      if (why == WOKEN_DONE) {
        complete = true;
        break;
      }
      pthread_mutex_lock(&p->mu);
      k->asleep = false;
      if (k->lead || k->done || k->requeue) break;
      if (rcache__now_us() < k->deadline_us) continue; /* written meanwhile: a new deadline */
      if (unlink_call(&c->queue, &c->queue_tail, k)) { /* not written: just leave */
        rcache__errf("the request could not be sent in time: every connection was busy "
                     "(pool_size %d, pipeline_depth %d)",
                     p->max, p->depth);
        c->calls--;
        c->bytes -= k->len;
        room_locked(p);
      } else { /* written: a tombstone stays (or, without memory for one, the connection
                * is marked poisoned for its leader to close) */
        rcache__errf("no reply within the command timeout");
        leave_locked(c, k);
      }
      k->s = RCACHE_ETIMEOUT;
      k->done = true;
    }
    if (complete) {
      s = k->s;
      break;
    }
    bool close_it = k->lead && !k->done && !k->requeue && lead_locked(p, c, k);
    bool requeue = k->requeue;
    s = k->done ? k->s : RCACHE_ETIMEOUT;
    pool_unlock(p);
    if (close_it) closed(p, c);
    if (!requeue) break;
    k->queued = k->lead = false;
    s = enqueue(p, k);
    if (s != RCACHE_OK) break; /* k->queued false: the pool has told the breaker */
  }
  rcache__wakeup_destroy(&k->w);
  if (s != RCACHE_OK) rcache__replies_free(k->rep, k->got);
  return s;
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
  int idle = 0, shared = 0, calls = 0;
  for (rcache__conn *c = p->idle; c; c = c->next)
    idle++;
  for (rcache__conn *c = p->shared; c; c = c->next) {
    shared++;
    calls += c->calls;
  }
  g->connections = p->total;
  g->busy = p->total > idle ? p->total - idle : 0;
  g->calls = calls + (g->busy > shared ? g->busy - shared : 0); /* + one per held connection */
  g->waiting = p->joining;
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
