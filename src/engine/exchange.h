/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The exchange policy of the engine: the one place that runs batches of commands for every
 * Redis topology, on the pools of the servers they go to. Internal.
 */
#ifndef RCACHE_EXCHANGE_H
#define RCACHE_EXCHANGE_H

#include "engine/pool.h"

/* One batch for one server's pool, for rcache__exchange_all. */
typedef struct rcache__job {
  rcache__pool *pool;
  const rcache__cmds *b;
  redisReply **rep; /* b->n replies, the caller's on RCACHE_OK */
  /* may be sent again on a fresh connection: running it twice changes nothing the first run
   * did not, and the second answers as the first would have (GET, a plain SET, SCAN; not
   * INCRBY, UNLINK, SET NX, whose second run would answer otherwise). It may run again
   * after it ran: its connection failed after the server had read it (a reply before its own
   * too large, out of step, the server gone after answering it). */
  bool idempotent;
  rcache_status s; /* in: RCACHE_OK to run it (else it is skipped); out: the outcome */
  bool run;        /* private */
  rcache__call call;
} rcache__job;

/* Runs the jobs: every job's batch is submitted to its pool's pipeline (a connection within
 * connect_timeout_ms) before any reply is waited for, so jobs on several servers cost one
 * round trip; replies by command_timeout_ms. A job whose reused connection turned out dead
 * runs once more on a fresh one when idempotent. Each job's s: RCACHE_OK with its replies;
 * RCACHE_EUNAVAILABLE (transport failure, or an error reply meaning "cannot serve now":
 * LOADING, BUSY, MASTERDOWN; no replies), RCACHE_ETIMEOUT, RCACHE_ETOOBIG, RCACHE_ENOMEM, or
 * the pool's RCACHE_EAUTH / RCACHE_ETLS. Breaker reports and latency bookkeeping included.
 * While ctx->first_going, every job fails at once (RCACHE_EUNAVAILABLE) except in the
 * thread marked by rcache__exchange_first_contact. */
void rcache__exchange_all(rcache__ctx *ctx, rcache__job *jobs, size_t n);

/* rcache__exchange_all of one job. */
rcache_status rcache__exchange(rcache__ctx *ctx, rcache__pool *p, const rcache__cmds *b,
                               redisReply **replies, bool idempotent);

/* Marks the calling thread as the first contact's (its exchanges are the first contact). */
void rcache__exchange_first_contact(void);

#endif
