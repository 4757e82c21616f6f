/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A pool of connections to one server, with its circuit breaker and its background
 * prober. Connections are created lazily up to pool_size; a caller waits for a free one no
 * longer than its deadline; a broken connection is discarded, never reused.
 *
 * When the breaker opens (breaker_failures consecutive transport failures), the pool
 * drops its idle connections, logs "unavailable" once, and wakes the prober thread (started
 * by the pool's first outage and kept until the pool is freed), which
 * tries a connection + PING with exponential backoff and full jitter until one succeeds;
 * then the breaker closes and "available again" is logged once, with the outage length.
 * While the breaker is open, rcache__pool_submit() costs one atomic load. Internal.
 */
#ifndef RCACHE_POOL_H
#define RCACHE_POOL_H

#include <pthread.h>

#include "engine/breaker.h"
#include "engine/conn.h"
#include "engine/wakeup.h"

typedef struct rcache__pool rcache__pool;

/* Told about state changes, from the thread that saw them (never with the pool lock
 * held): up = false when the breaker opened or any connection was lost (a listener of
 * invalidations may have missed messages), true when the prober brought it back. */
typedef void (*rcache__pool_event_fn)(void *ud, rcache__pool *p, bool up);

/* A new pool for server `a`. It does not connect; rcache__pool_warm() does. */
rcache_status rcache__pool_new(rcache__ctx *ctx, const rcache__conn_setup *setup,
                               const rcache__addr *a, rcache__pool **out);
/* Stops the prober and closes every connection. No call may be using the pool. */
void rcache__pool_free(rcache__pool *p);

/* Opens one connection now (bounded by connect_timeout_ms); when it fails the breaker is
 * tripped and the prober takes over. Returns the connect status. */
rcache_status rcache__pool_warm(rcache__pool *p);

void rcache__pool_on_event(rcache__pool *p, rcache__pool_event_fn fn, void *ud);

/*
 * The pipelined exchange (see "the pipelined exchange" in pool.c): a batch goes on one of
 * p's connections, pipelined with other callers' batches. rcache__pool_submit takes an
 * idle connection or opens one while fewer than pool_size are in use (waiting no later
 * than acquire_by) and writes the batch at once, else joins the least loaded connection;
 * rcache__pool_finish then waits for its replies (or reads them itself, leading the
 * connection). As when a caller had a connection to itself, the command timeout counts
 * from the moment the request is written, and the wait before that from the acquire
 * budget: a batch joined behind others has timeout_us for its replies from the write of
 * its request, and ends by acquire_by (or the submit, when later) + timeout_us at the
 * latest. Submitting several batches (to several servers) before finishing any puts them
 * all under way together. An idempotent batch may be written on an idle connection
 * without the poll() that looks for bytes waiting on it (pool.c, make_ready): when its
 * reply is found to be such bytes, finish says RCACHE_EIO with `reused`, and the caller
 * runs it again (exchange.c).
 *
 * The caller owns the call (on its stack) from submit to the end of finish, reads only
 * `queued`, `reused`, `lead` and `bystander`, and calls finish exactly when submit returned
 * RCACHE_OK. A call queued behind others is armed to sleep in finish on its own wake-up
 * (wakeup.h), so that finish can wait without the pool's lock.
 * Statuses: submit gives RCACHE_OK, RCACHE_EUNAVAILABLE (breaker open, or the connect
 * failed), RCACHE_ETIMEOUT (no connection to take or join by acquire_by), RCACHE_EAUTH,
 * RCACHE_ETLS or RCACHE_ENOMEM, told to the breaker as fits. finish gives
 * RCACHE_OK with replies[0..b->n) the caller's (freeReplyObject), or none and
 * RCACHE_ETIMEOUT, RCACHE_EIO, RCACHE_EPROTO (desynchronised: the connection is closed),
 * RCACHE_ETOOBIG or RCACHE_ENOMEM, which the caller reports to the breaker when `queued`
 * (false: the batch was moved to another connection and found none; already told) and not
 * `bystander` (one broken connection is one failure: another call on it tells it).
 */
typedef struct rcache__call {
  const rcache__cmds *b; /* the batch: the caller's, or a tombstone's hdr */
  redisReply **rep;      /* the caller's replies (NULL for a tombstone) */
  size_t len;            /* request bytes */
  size_t max_reply;
  int64_t acquire_by, timeout_us;
  int64_t end_by;         /* the latest it may end: acquire_by (or the submit) + timeout_us */
  int64_t deadline_us;    /* end_by until written, then the write's time + timeout_us (or end_by) */
  struct rcache__conn *c; /* where it is queued */
  int got;                /* replies delivered */
  rcache_status s;        /* when done */
  bool done;              /* complete, or failed (s) */
  bool lead;              /* the connection is handed over to this call's caller (out: it
                           * read its connection, or followed a leader's reads) */
  bool requeue;           /* its connection failed before it was written: take another */
  bool gone;              /* a tombstone */
  bool idempotent;        /* may run twice (no poll() before it on a stamped connection) */
  bool asleep;            /* its caller sleeps on w, armed (wake it when it may go on) */
  bool parked;            /* the caller's own: armed by submit, to sleep on by park_by */
  int64_t park_by;
  bool queued;      /* out: it is (or was) on a connection */
  bool reused;      /* out: written on a connection that had served before */
  bool bystander;   /* out: failed with its connection for another call (fail_locked) */
  rcache__wakeup w; /* the follower sleeps here, without the pool's lock */
  rcache__cmds hdr; /* a tombstone's copy of b's counts and expected types */
  struct rcache__call *next;
} rcache__call;

rcache_status rcache__pool_submit(rcache__pool *p, rcache__call *k, const rcache__cmds *b,
                                  redisReply **replies, size_t max_reply, int64_t acquire_by,
                                  int64_t timeout_us, bool idempotent);
rcache_status rcache__pool_finish(rcache__pool *p, rcache__call *k);

/* Reports a call's outcome to the breaker: transport failures count, anything else
 * (including error replies) is a success of the transport. */
void rcache__pool_report(rcache__pool *p, rcache_status s);

/* A connection to p's server that is not in the pool (the non-blocking API's loop owns
 * one): opened as the pool's own are, by connect_timeout_ms or deadline_us; a failure is told
 * to the breaker. Statuses as rcache__conn_open's. The owner closes it with
 * rcache__conn_close, and stops using it once rcache__pool_current says the pool moved on
 * (a failover, a restart detected: the pool's own connections are dropped then). */
rcache_status rcache__pool_open_conn(rcache__pool *p, int64_t deadline_us, rcache__conn **c);
bool rcache__pool_current(rcache__pool *p, const rcache__conn *c);

/* Forgets every idle connection (e.g. after a server restart was detected). */
void rcache__pool_drop_idle(rcache__pool *p);

/* Closes the idle connections that the server closed (or that have bytes nobody asked
 * for), telling the event callback (up = false) when there were any: the near cache's
 * listener calls it every few ms, since a dead connection's tracking is gone. Returns how
 * many were closed. */
int rcache__pool_check_idle(rcache__pool *p);

/* In a forked child, before anything else uses the pool (no other thread may): forgets
 * the parent's connections without sending a byte (each descriptor copy is closed, the
 * parent's stay open), reinitialises the locks a parent thread may have held at fork time,
 * and starts a prober when the breaker is not closed (the parent's does not exist here). */
void rcache__pool_after_fork(rcache__pool *p);

/* Points the pool at another server (Sentinel failover). Existing connections are dropped
 * as they come back. */
void rcache__pool_set_addr(rcache__pool *p, const rcache__addr *a);
void rcache__pool_addr(rcache__pool *p, rcache__addr *a);

/* The pool's gauges (internal.h), read under its lock. */
void rcache__pool_gauges(rcache__pool *p, rcache__server_gauges *g);

bool rcache__pool_available(rcache__pool *p);
int rcache__pool_breaker_state(rcache__pool *p);
/* Why the pool is unavailable ("" when it is not), and the status that says it:
 * RCACHE_OK when available, else RCACHE_EUNAVAILABLE, RCACHE_EAUTH or RCACHE_ETLS. */
rcache_status rcache__pool_last_error(rcache__pool *p, char *buf, size_t size);

/* A probe hook: when set, the prober calls it instead of connect + PING (Sentinel uses it
 * to look the master up again). Returns RCACHE_OK when the server is usable. */
typedef rcache_status (*rcache__probe_fn)(void *ud, rcache__pool *p);
void rcache__pool_on_probe(rcache__pool *p, rcache__probe_fn fn, void *ud);

/* The default probe: connect, PING, keep the connection as an idle one. */
rcache_status rcache__pool_ping(rcache__pool *p);

#endif
