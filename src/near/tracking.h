/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Keeps the near cache coherent with one Redis server (server-assisted client-side
 * caching, RESP2): a listener connection of its own, subscribed to __redis__:invalidate,
 * read by its own thread; data connections of the server's pool are opened with
 * CLIENT TRACKING on REDIRECT <listener id> (conn.c reads the id from
 * rcache__tracking_redirect()). One tracking object per server address, so a topology
 * with several servers makes one per node, all feeding the same near table.
 *
 * The near table is flushed whenever an invalidation may have been missed: the listener
 * lost or silent past its PING deadline, a data connection lost (the pool's event, and a
 * check of idle connections every tick), and Redis' FLUSHDB/FLUSHALL notice. It serves
 * only while the listener is subscribed and the pool's breaker is closed. Internal.
 */
#ifndef RCACHE_TRACKING_H
#define RCACHE_TRACKING_H

#include "engine/pool.h"
#include "near/near.h"

typedef struct rcache__tracking rcache__tracking;

/* A tracker for server a, authenticating like setup (copied; its tracking_redirect is
 * ignored). Does not connect yet. RCACHE_OK or RCACHE_ENOMEM. */
rcache_status rcache__tracking_new(rcache__ctx *ctx, const rcache__conn_setup *setup,
                                   const rcache__addr *a, rcache__near *near,
                                   rcache__tracking **out);

/* The listener's client id (-1 while down), for the data pool's set-up. */
_Atomic long long *rcache__tracking_redirect(rcache__tracking *t);

/* Attaches the data pool (its event callback becomes the tracker's), registers with the
 * near table (blocked until the listener is up) and starts the listener thread, which
 * connects at once: nothing here waits for the server. RCACHE_OK or RCACHE_ENOMEM. */
rcache_status rcache__tracking_start(rcache__tracking *t, rcache__pool *pool);

/* Waits until the listener thread's first connect is over (up, or failed; with `up`: until
 * it is up), deadline_us, or rcache_close: the first contact covers the near cache
 * (redis.c, sentinel.c), so that the connections the first calls use redirect to it. */
void rcache__tracking_wait_first(rcache__tracking *t, bool up, int64_t deadline_us);

/* Points the tracker at another server (Sentinel failover): the listener leaves the old
 * one (the near table is blocked and flushed, the redirect id reset) and subscribes on a,
 * after which the pool's connections are replaced as on any listener change. */
void rcache__tracking_set_addr(rcache__tracking *t, const rcache__addr *a);

/* Also tells fn(ud, pool, up) about the pool's events, after the tracker's own handling
 * (the tracker takes the pool's one event slot in rcache__tracking_start). */
void rcache__tracking_chain_events(rcache__tracking *t, rcache__pool_event_fn fn, void *ud);

/* In a forked child (no other thread uses it; after the pool's rcache__pool_after_fork):
 * forgets the parent's listener connection without writing to it, reinitialises its lock,
 * blocks and flushes the table, and starts a listener thread of its own when it had been
 * started. NULL-safe. */
void rcache__tracking_after_fork(rcache__tracking *t);

/* Stops the listener thread and closes its connection (the tracker stays valid for pool
 * events until freed). NULL-safe. */
void rcache__tracking_stop(rcache__tracking *t);
/* Frees it; call after the pool is freed. NULL-safe. */
void rcache__tracking_free(rcache__tracking *t);

/*
 * A tracked pool: a server's connections as every Redis topology makes them, its pool and,
 * with a near cache, the tracker its connections redirect their invalidations to. These
 * three are the one place that knows the order: the tracker is made before the pool (the
 * pool's set-up carries its listener's id), its listener stopped before the pool is freed
 * (it uses the pool) and freed after it (it gets the pool's events until then), and after a
 * fork it starts again after its pool.
 */
/* Makes *trk (when near) and *pool for server a; setup->tracking_redirect is pointed at
 * the tracker's listener id (or left as it is without near). Nothing connects; the tracker
 * is started by rcache__tracking_start. RCACHE_OK, or RCACHE_ENOMEM with nothing left. */
rcache_status rcache__tracked_pool_new(rcache__ctx *ctx, rcache__conn_setup *setup,
                                       const rcache__addr *a, bool near, rcache__pool **pool,
                                       rcache__tracking **trk);
/* Stops the listener, frees the pool, then the tracker. NULL-safe. */
void rcache__tracked_pool_free(rcache__pool *pool, rcache__tracking *trk);
/* In a forked child: rcache__pool_after_fork, then rcache__tracking_after_fork. */
void rcache__tracked_pool_after_fork(rcache__pool *pool, rcache__tracking *trk);

#endif
