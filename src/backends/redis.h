/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The Redis backends' shared core. Every single-key operation is written once, in
 * redis.c, against `exec`: standalone (and Sentinel) sends it to its one pool; Cluster
 * routes it by slot and follows MOVED / ASK. Multi-key operations (get_many, set_many,
 * del_match, scan, flushdb) and health are per topology. Internal.
 */
#ifndef RCACHE_REDIS_H
#define RCACHE_REDIS_H

#include "engine/exchange.h"

typedef struct rcache__redis rcache__redis;

/* Runs the batch b (all of whose keys hash like `key`) and returns its replies. Transport
 * failures come back as RCACHE_EUNAVAILABLE or RCACHE_ETIMEOUT; an error reply meaning
 * "cannot serve now" (LOADING, BUSY, MASTERDOWN) as RCACHE_EUNAVAILABLE with no replies;
 * other error replies are returned as replies for the caller to map. */
typedef rcache_status (*rcache__exec_fn)(rcache__redis *r, const char *key, size_t klen,
                                         const rcache__cmds *b, redisReply **replies,
                                         bool idempotent);

struct rcache__redis {
  rcache__backend base;
  rcache__tls_ctx *tls;
  rcache__conn_setup setup;
  rcache__exec_fn exec;
  rcache__pool *pool;                /* standalone / sentinel: the one server */
  struct rcache__tracking *tracking; /* standalone with a near cache: its listener */
  void *topo;                        /* cluster / sentinel state */
  /* a cluster whose key_prefix has no hash tag: version keys (tags.c) live in other slots
   * than the values, so get_tagged reads the value alone */
  bool vers_apart;
  /* the server refused get_tagged's script (NOPERM, no Lua): not tried again */
  atomic_bool script_off;
  /* the first contact (rcache__redis_first_contact), under first_mu */
  pthread_mutex_t first_mu;
  pthread_cond_t first_cv;
  void (*first_fn)(rcache__redis *r);
  bool has_first;           /* the first contact runs on a thread of its own */
  _Atomic int first_thread; /* that thread is not joined yet (rcache__bg_run) */
};

/* Fills r->setup (and r->tls for rediss://) from the context. */
rcache_status rcache__redis_init(rcache__redis *r, rcache__ctx *ctx);
void rcache__redis_fini(rcache__redis *r);

/*
 * The first contact with the server (connect, and for a standalone URL the question "are
 * you a cluster node?"): fn(r) runs in a thread of its own, so that rcache_open waits
 * neither for a server that is down nor for one that accepts and never answers. With
 * strict_config it runs before this returns: open must find out whether the server refuses
 * the credentials or the certificate. No thread (none could be started): also here.
 * While it is under way ctx->first_going is true and the facade's calls wait for it
 * (rcache__redis_await_first, the ops' await_first), by connect_timeout_ms.
 * _wait blocks until it is over (health checks, so that their answer covers it: bounded
 * by its connect and command deadlines); _join in destroy, quick since rcache_close has
 * raised ctx->closing (the thread is detached: _join waits for its end, as _wait does);
 * _after_fork in a child (the thread stayed with the parent).
 */
void rcache__redis_first_contact(rcache__redis *r, void (*fn)(rcache__redis *r));
void rcache__redis_await_first(rcache__backend *be, int64_t deadline_us);
void rcache__redis_first_contact_wait(rcache__redis *r);
void rcache__redis_first_contact_join(rcache__redis *r);
void rcache__redis_first_contact_after_fork(rcache__redis *r);

/* A pool's probe hook (rcache__pool_on_probe, ud = the context) for pools with no other:
 * rcache__pool_ping with the prober's I/O abandoned once ctx->closing is raised. */
rcache_status rcache__redis_probe(void *ud, rcache__pool *p);

/* A GET's reply into *out (hiredis' buffer is taken): RCACHE_OK, RCACHE_MISS, or the error
 * reply's status (rcache__reply_status); another type is RCACHE_EPROTO. */
rcache_status rcache__redis_take_value(redisReply *v, rcache_value *out);
/* n version keys' values (nil: absent, 0) from e[0..n) into vers (tags.c's versions; bit i
 * of vers->bad: e[i] is not a version). */
void rcache__redis_take_versions(redisReply **e, size_t n, rcache__versions *vers);
/* Appends GET key to b, and PTTL key when pttl (the remaining TTL in the same round trip). */
rcache_status rcache__redis_get_cmds(rcache__cmds *b, const char *key, size_t klen, bool pttl);
/* An integer reply into *out: RCACHE_OK, the error reply's status, or RCACHE_EPROTO. */
rcache_status rcache__redis_take_int(const redisReply *rep, long long *out);
/* SET key value [PX ttl_ms] [NX] (RCACHE__SET_NX) appended to b, and its reply's status:
 * RCACHE_OK, RCACHE_MISS (NX and the key existed), the error reply's status. */
rcache_status rcache__redis_set_cmds(rcache__cmds *b, const char *key, size_t klen,
                                     const void *data, size_t len, int64_t ttl_ms, int flags);
rcache_status rcache__redis_set_reply(const redisReply *rep);
/* cmd key, expecting an integer (UNLINK, PTTL), appended to b; UNLINK's reply's status:
 * RCACHE_OK, RCACHE_MISS (nothing deleted), the error reply's status. */
rcache_status rcache__redis_key_cmds(rcache__cmds *b, const char *cmd, const char *key,
                                     size_t klen);
rcache_status rcache__redis_del_reply(const redisReply *rep);
/* INCRBY key by appended to b; with ttl_ms > 0, the transaction that also gives a counter it
 * creates that TTL (rcache__redis_incr; its reply is EXEC's, not one integer). */
rcache_status rcache__redis_incr_cmds(rcache__cmds *b, const char *key, size_t klen, int64_t by,
                                      int64_t ttl_ms);

/* The single-key operations, usable in any topology's ops table. */
rcache_status rcache__redis_get(rcache__backend *b, const char *key, size_t klen, rcache_value *out,
                                int64_t *pttl_ms);
/* get_tagged (internal.h) in one round trip: GET pipelined with an MGET of the named
 * version keys, or the tags.c script by EVALSHA (EVAL when the server does not have it); a
 * plain GET when the version keys live apart, or the script was refused. */
rcache_status rcache__redis_get_tagged(rcache__backend *b, const char *key, size_t klen,
                                       rcache_value *out, int64_t *pttl_ms,
                                       const char *const *vkeys, const size_t *vlens, size_t nv,
                                       rcache__versions *vers);
rcache_status rcache__redis_set(rcache__backend *b, const char *key, size_t klen, const void *data,
                                size_t len, int64_t ttl_ms, int flags);
rcache_status rcache__redis_del(rcache__backend *b, const char *key, size_t klen);
rcache_status rcache__redis_incr(rcache__backend *b, const char *key, size_t klen, int64_t by,
                                 int64_t ttl_ms, int64_t *out);
rcache_status rcache__redis_pttl(rcache__backend *b, const char *key, size_t klen, int64_t *ms);

/* The operations of a one-server topology (standalone, Sentinel): the batches go through
 * r->exec, the scans and health to r->pool. */
rcache_status rcache__redis_one_del_match(rcache__backend *b, const char *g, size_t gl,
                                          rcache__progress *p);
rcache_status rcache__redis_one_scan(rcache__backend *b, const char *g, size_t gl, uint64_t limit,
                                     rcache_scan_fn fn, void *ud);
rcache_status rcache__redis_one_flushdb(rcache__backend *b);
rcache_status rcache__redis_one_get_many(rcache__backend *b, const char *const *keys,
                                         const size_t *klens, size_t n, rcache_value *vals,
                                         rcache_status *st);
rcache_status rcache__redis_one_set_many(rcache__backend *b, const char *const *keys,
                                         const size_t *klens, const rcache_value *vals, size_t n,
                                         const int64_t *ttl_ms);
rcache_status rcache__redis_one_health(rcache__backend *b, rcache_health *h);
bool rcache__redis_one_available(rcache__backend *b);
void rcache__redis_one_stats(rcache__backend *b, rcache_stats *s);
bool rcache__redis_one_server(rcache__backend *b, size_t i, rcache__server_gauges *g);

/* Node-level helpers for a topology with several servers. */
/* SCAN … MATCH glob COUNT scan_count over one server. With del (non-NULL), UNLINK each
 * batch (pipelined with the next SCAN) and report every round trip to del, stopping when
 * it says so; *count is then this server's deleted keys. Without, visit keys with fn. */
rcache_status rcache__redis_scan_node(rcache__redis *r, rcache__pool *p, const char *glob,
                                      size_t glen, rcache__progress *del, uint64_t limit,
                                      uint64_t *count, rcache_scan_fn fn, void *ud);
/* Appends SET key value [PX ttl] for keys idx[0..n) (idx NULL: 0..n) to b. */
rcache_status rcache__redis_add_sets(rcache__cmds *b, const char *const *keys, const size_t *klens,
                                     const rcache_value *vals, const size_t *idx, size_t n,
                                     const int64_t *ttl_ms);
/* PING latency and the server version from INFO server. */
rcache_status rcache__redis_health_node(rcache__redis *r, rcache__pool *p, rcache_health *h);

#endif
