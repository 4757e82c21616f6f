/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The exchange policy (exchange.h): jobs submitted to their pools' pipelines before any is
 * waited for, the outcome of each told to its server's breaker, "cannot serve now" replies
 * mapped to RCACHE_EUNAVAILABLE, and one more attempt on a fresh connection for an
 * idempotent batch whose reused connection was found dead.
 */
#include "engine/exchange.h"

/* True in the first contact's thread, whose exchanges are the first contact. */
static _Thread_local bool tl_first_contact;

void rcache__exchange_first_contact(void) {
  tl_first_contact = true;
}

/* A job's outcome, once its replies are in (or not): the statuses a caller sees, and the
 * breaker told. True when it is to run again (a pooled connection found dead). */
static bool settle(rcache__job *j, int attempt) {
  if (!j->call.queued) return false; /* no connection: the pool has told the breaker */
  if (j->s == RCACHE_OK) {
    for (int i = 0; i < j->b->n; i++) { /* LOADING, BUSY, MASTERDOWN: cannot serve now */
      if (rcache__reply_busy(j->rep[i])) {
        rcache__reply_status(j->rep[i]); /* records the server's text */
        rcache__replies_free(j->rep, j->b->n);
        rcache__pool_report(j->pool, RCACHE_EUNAVAILABLE);
        j->s = RCACHE_EUNAVAILABLE;
        return false;
      }
    }
    rcache__pool_report(j->pool, RCACHE_OK);
    return false;
  }
  /* A pooled connection that died while idle (server restarted, CLIENT KILL): its
   * siblings are likely dead too. Forget them and try once on a fresh connection. */
  if (j->s == RCACHE_EIO && j->call.reused && attempt == 0 && j->idempotent) {
    rcache__pool_drop_idle(j->pool);
    j->s = RCACHE_OK;
    return true;
  }
  /* A connection that stalls or breaks is one failure, not one per call pipelined on it: a
   * follower's timeout is its leader's too, and the leader's counts (pool.h,
   * rcache__call.lead); a broken connection's failure is told by one of its calls
   * (rcache__call.bystander). */
  if (!j->call.bystander && (j->s != RCACHE_ETIMEOUT || j->call.lead))
    rcache__pool_report(j->pool, j->s);
  if (j->s != RCACHE_ETIMEOUT && j->s != RCACHE_ETOOBIG && j->s != RCACHE_ENOMEM)
    j->s = RCACHE_EUNAVAILABLE;
  return false;
}

void rcache__exchange_all(rcache__ctx *ctx, rcache__job *jobs, size_t n) {
  const rcache_options *o = &ctx->opt;
  if (atomic_load_explicit(&ctx->first_going, memory_order_acquire) && !tl_first_contact) {
    /* the facade waited connect_timeout_ms for it (rcache__be): the call's connect budget is
     * spent, and its own connect would meet what stalls the first one */
    rcache__errf("cache unavailable: the first connection to the server is still under way");
    for (size_t i = 0; i < n; i++)
      if (jobs[i].s == RCACHE_OK) jobs[i].s = RCACHE_EUNAVAILABLE;
    return;
  }
  size_t max_reply = rcache__reply_max(o);
  int64_t acquire_by = rcache__now_us() + (int64_t)o->connect_timeout_ms * 1000;
  int64_t timeout_us = (int64_t)o->command_timeout_ms * 1000;
  for (size_t i = 0; i < n; i++)
    jobs[i].run = jobs[i].s == RCACHE_OK;
  for (int attempt = 0; attempt < 2; attempt++) {
    int64_t start = rcache__now_us();
    for (size_t i = 0; i < n; i++) { /* all under way before any is waited for */
      rcache__job *j = &jobs[i];
      if (!j->run) continue;
      /* a second attempt has what is left of the first one's command timeout */
      int64_t left = attempt ? j->call.deadline_us - rcache__now_us() : timeout_us;
      j->s = rcache__pool_submit(j->pool, &j->call, j->b, j->rep, max_reply, acquire_by,
                                 left > 1000 ? left : 1000, j->idempotent);
      if (j->s != RCACHE_OK) j->run = false; /* call.queued is false */
    }
    bool again = false;
    for (size_t i = 0; i < n; i++) {
      rcache__job *j = &jobs[i];
      if (!j->run) continue;
      j->s = rcache__pool_finish(j->pool, &j->call);
      rcache__latency_add(&ctx->lat, rcache__now_us() - start); /* failures too */
      j->run = settle(j, attempt);
      again = again || j->run;
    }
    if (!again) break;
  }
}

rcache_status rcache__exchange(rcache__ctx *ctx, rcache__pool *p, const rcache__cmds *b,
                               redisReply **rep, bool idempotent) {
  rcache__job j = {.pool = p, .b = b, .rep = rep, .idempotent = idempotent};
  rcache__exchange_all(ctx, &j, 1);
  return j.s;
}
