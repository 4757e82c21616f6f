/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The cluster's replies, parsed: the slot map (CLUSTER SHARDS, or CLUSTER SLOTS on servers
 * without it) and the redirections (MOVED, ASK, TRYAGAIN, CLUSTERDOWN). Pure functions: no
 * I/O, no state; cluster.c routes with them, the unit tests and fuzz_cluster check them on
 * their own. Internal.
 */
#ifndef RCACHE_CLUSTER_MAP_H
#define RCACHE_CLUSTER_MAP_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "rcache/rcache.h"

/* A range of slots and its master's address. lo > hi (lo 1, hi 0): a master that serves no
 * slot (a shard being filled: while it imports a slot it holds some of that slot's keys). */
typedef struct rcache__range {
  unsigned lo, hi;
  char host[256];
  int port;
} rcache__range;

typedef struct rcache__ranges {
  rcache__range *v; /* rcache__free */
  size_t n, cap;
} rcache__ranges;

/* Appends the slot ranges of a reply to CLUSTER SHARDS (shards true) or CLUSTER SLOTS to rs,
 * each with its master's address: the TLS port when tls, and `asked` (the node that
 * answered) when the reply leaves the host empty. A shard without an online master, or an
 * endpoint "?", gives no range; a shard without slots whose master is online gives one with
 * lo > hi (CLUSTER SLOTS does not list such masters). RCACHE_OK, RCACHE_EPROTO (not a well-formed
 * map, with the message), RCACHE_ENOMEM. */
rcache_status rcache__map_parse(const redisReply *rep, bool shards, bool tls, const char *asked,
                                rcache__ranges *rs);

enum {
  RCACHE__REDIR_NONE = 0,
  RCACHE__REDIR_MOVED,
  RCACHE__REDIR_ASK,
  RCACHE__REDIR_TRYAGAIN,
  RCACHE__REDIR_DOWN
};

typedef struct rcache__redirect {
  int kind;       /* RCACHE__REDIR_*; set by the caller */
  unsigned slot;  /* MOVED, ASK */
  char host[256]; /* "" means the node that answered */
  int port;
} rcache__redirect;

/* What an error reply x asks for: RCACHE__REDIR_MOVED or _ASK (then rd's slot, host and port
 * are set), _TRYAGAIN, _DOWN (CLUSTERDOWN), or _NONE (anything else, or a malformed one). */
int rcache__redirect_of(const redisReply *x, rcache__redirect *rd);

/* ---- the same, from bytes (unit tests and fuzzing) ---- */

typedef void (*rcache__range_fn)(void *ud, unsigned lo, unsigned hi, const char *host, int port);

/* Parses one RESP reply to CLUSTER SHARDS (shards true) or CLUSTER SLOTS and calls fn for
 * each slot range with its master's address (the TLS port when tls; asked_host when the
 * reply leaves the host empty), lo > hi for a master without slots (rcache__map_parse). RCACHE_OK,
 * RCACHE_EPROTO (not a well-formed map, or not one complete reply), RCACHE_ENOMEM. */
rcache_status rcache__cluster_parse_map(const char *resp, size_t len, bool shards, bool tls,
                                        const char *asked_host, rcache__range_fn fn, void *ud);

/* Classifies an error reply's text: 1 MOVED, 2 ASK (then *slot, host and *port are set;
 * host "" means the node that answered), 3 TRYAGAIN, 4 CLUSTERDOWN, 0 anything else. */
int rcache__cluster_parse_redirect(const char *err, unsigned *slot, char *host, size_t hsize,
                                   int *port);

#endif
