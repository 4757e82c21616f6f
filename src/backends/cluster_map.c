/* SPDX-License-Identifier: BSD-3-Clause */
/* The cluster's replies, parsed (cluster_map.h): no I/O, no state. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cluster_map.h"
#include "backends/slot.h"
#include "engine/conn.h"

/* ---- the slot map ---------------------------------------------------------------------------- */

/* Appends lo..hi served by host:port; with none, a master without slots (lo 1, hi 0). */
static rcache_status ranges_add(rcache__ranges *rs, bool none, long long lo, long long hi,
                                const char *host, size_t hlen, int port) {
  if ((!none && (lo < 0 || hi >= RCACHE__SLOTS || lo > hi)) || port <= 0 || port > 65535 ||
      hlen == 0 || hlen >= sizeof rs->v[0].host || memchr(host, '\0', hlen))
    return RCACHE_EPROTO;
  if (rs->n == rs->cap) {
    size_t cap = rs->cap ? rs->cap * 2 : 16;
    rcache__range *nv = rcache__realloc(rs->v, cap * sizeof *nv);
    if (!nv) return RCACHE_ENOMEM;
    rs->v = nv;
    rs->cap = cap;
  }
  rcache__range *r = &rs->v[rs->n++];
  r->lo = none ? 1 : (unsigned)lo;
  r->hi = none ? 0 : (unsigned)hi;
  memcpy(r->host, host, hlen);
  r->host[hlen] = '\0';
  r->port = port;
  return RCACHE_OK;
}

static bool is_str(const redisReply *x, const char *s) {
  return x && (x->type == REDIS_REPLY_STRING || x->type == REDIS_REPLY_STATUS) &&
         x->len == strlen(s) && memcmp(x->str, s, x->len) == 0;
}

/* The value after key `k` in a flat key/value array (RESP2 map), or NULL. */
static const redisReply *field(const redisReply *m, const char *k) {
  if (!m || m->type != REDIS_REPLY_ARRAY) return NULL;
  for (size_t i = 0; i + 1 < m->elements; i += 2)
    if (is_str(m->element[i], k)) return m->element[i + 1];
  return NULL;
}

/* A node entry's address: endpoint (or ip when the endpoint is unknown), and the TLS port
 * for rediss://. asked is the node that answered, for an empty endpoint. */
static bool shard_node_addr(const redisReply *nd, bool tls, const char *asked, const char **h,
                            size_t *hl, int *port) {
  const redisReply *ep = field(nd, "endpoint"), *ip = field(nd, "ip");
  const redisReply *p = tls ? field(nd, "tls-port") : NULL;
  if (!p || p->type != REDIS_REPLY_INTEGER || p->integer <= 0) p = field(nd, "port");
  if (!p || p->type != REDIS_REPLY_INTEGER) return false;
  const redisReply *hr =
      ep && ep->type == REDIS_REPLY_STRING && ep->len && !is_str(ep, "?") ? ep : ip;
  if (hr && hr->type == REDIS_REPLY_STRING && hr->len && !is_str(hr, "?")) {
    *h = hr->str;
    *hl = hr->len;
  } else {
    *h = asked;
    *hl = strlen(asked);
  }
  *port = (int)p->integer;
  return true;
}

/* CLUSTER SHARDS (Redis 7): each shard's slot ranges and its online master. */
static rcache_status parse_shards(const redisReply *rep, bool tls, const char *asked,
                                  rcache__ranges *rs) {
  if (rep->type != REDIS_REPLY_ARRAY) return rcache__reply_unexpected(rep);
  for (size_t i = 0; i < rep->elements; i++) {
    const redisReply *sh = rep->element[i];
    const redisReply *sl = field(sh, "slots"), *nodes = field(sh, "nodes");
    if (!sl || sl->type != REDIS_REPLY_ARRAY || !nodes || nodes->type != REDIS_REPLY_ARRAY)
      return rcache__reply_unexpected(sh);
    const redisReply *best = NULL;
    for (size_t j = 0; j < nodes->elements; j++) {
      const redisReply *nd = nodes->element[j];
      if (!is_str(field(nd, "role"), "master")) continue;
      if (!best ||
          (is_str(field(nd, "health"), "online") && !is_str(field(best, "health"), "online")))
        best = nd;
    }
    const char *h;
    size_t hl;
    int port;
    if (!best || !shard_node_addr(best, tls, asked, &h, &hl, &port)) continue;
    if (sl->elements == 0) { /* a master without slots yet: it may be importing one */
      if (is_str(field(best, "health"), "online") &&
          ranges_add(rs, true, 0, 0, h, hl, port) == RCACHE_ENOMEM)
        return RCACHE_ENOMEM; /* an address not taken: skipped, as before it had slots */
      continue;
    }
    for (size_t k = 0; k + 1 < sl->elements; k += 2) {
      if (sl->element[k]->type != REDIS_REPLY_INTEGER ||
          sl->element[k + 1]->type != REDIS_REPLY_INTEGER)
        return rcache__reply_unexpected(sl);
      rcache_status s =
          ranges_add(rs, false, sl->element[k]->integer, sl->element[k + 1]->integer, h, hl, port);
      if (s != RCACHE_OK) return s == RCACHE_EPROTO ? rcache__reply_unexpected(sl) : s;
    }
  }
  return RCACHE_OK;
}

/* CLUSTER SLOTS: [start, end, [host, port, id...], replicas...]. */
static rcache_status parse_slots(const redisReply *rep, const char *asked, rcache__ranges *rs) {
  if (rep->type != REDIS_REPLY_ARRAY) return rcache__reply_unexpected(rep);
  for (size_t i = 0; i < rep->elements; i++) {
    const redisReply *e = rep->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
        e->element[0]->type != REDIS_REPLY_INTEGER || e->element[1]->type != REDIS_REPLY_INTEGER ||
        e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
        e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
        e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
      return rcache__reply_unexpected(e);
    const redisReply *h = e->element[2]->element[0];
    if (is_str(h, "?")) continue; /* endpoint unknown */
    const char *hs = h->len ? h->str : asked;
    size_t hl = h->len ? h->len : strlen(asked);
    rcache_status s = ranges_add(rs, false, e->element[0]->integer, e->element[1]->integer, hs, hl,
                                 (int)e->element[2]->element[1]->integer);
    if (s != RCACHE_OK) return s == RCACHE_EPROTO ? rcache__reply_unexpected(e) : s;
  }
  return RCACHE_OK;
}

rcache_status rcache__map_parse(const redisReply *rep, bool shards, bool tls, const char *asked,
                                rcache__ranges *rs) {
  return shards ? parse_shards(rep, tls, asked, rs) : parse_slots(rep, asked, rs);
}

/* ---- redirections ---------------------------------------------------------------------------- */

/* "MOVED 3999 127.0.0.1:6381" / "ASK 3999 :6381" (an empty host: the node that answered). */
static bool parse_target(const char *s, rcache__redirect *rd) {
  char *end;
  unsigned long slot = strtoul(s, &end, 10);
  if (end == s || *end != ' ' || slot >= RCACHE__SLOTS) return false;
  const char *hp = end + 1;
  const char *colon = strrchr(hp, ':');
  if (!colon || (size_t)(colon - hp) >= sizeof rd->host) return false;
  long port = strtol(colon + 1, &end, 10);
  if (end == colon + 1 || port <= 0 || port > 65535) return false;
  size_t hl = (size_t)(colon - hp);
  if (hl >= 2 && hp[0] == '[' && hp[hl - 1] == ']') { /* [ipv6]:port */
    hp++;
    hl -= 2;
  }
  memcpy(rd->host, hp, hl);
  rd->host[hl] = '\0';
  rd->port = (int)port;
  rd->slot = (unsigned)slot;
  return true;
}

int rcache__redirect_of(const redisReply *x, rcache__redirect *rd) {
  if (!x || x->type != REDIS_REPLY_ERROR || !x->str) return RCACHE__REDIR_NONE;
  if (strncmp(x->str, "MOVED ", 6) == 0)
    return parse_target(x->str + 6, rd) ? RCACHE__REDIR_MOVED : RCACHE__REDIR_NONE;
  if (strncmp(x->str, "ASK ", 4) == 0)
    return parse_target(x->str + 4, rd) ? RCACHE__REDIR_ASK : RCACHE__REDIR_NONE;
  if (strncmp(x->str, "TRYAGAIN", 8) == 0) return RCACHE__REDIR_TRYAGAIN;
  if (strncmp(x->str, "CLUSTERDOWN", 11) == 0) return RCACHE__REDIR_DOWN;
  return RCACHE__REDIR_NONE;
}

/* ---- on their own, from bytes (unit tests and fuzzing) ----------------------------------------
 */

/* As conn.c does for replies from a socket: hiredis allocates an array's table when it
 * reads "*<n>", so the elements of one reply are capped by the bytes given (an honest
 * element takes 4 bytes or more). */
static void *(*parse_default_array)(const redisReadTask *, int);
static redisReplyObjectFunctions parse_fns;
static pthread_once_t parse_once = PTHREAD_ONCE_INIT;

static void *parse_capped_array(const redisReadTask *t, int n) {
  size_t *left = t->privdata;
  if (n > 0 && (size_t)n > *left) return NULL; /* hiredis reports it as an error */
  if (n > 0) *left -= (size_t)n;
  return parse_default_array(t, n);
}

static void parse_init(void) {
  redisReader *r = redisReaderCreate();
  if (!r) return;
  parse_fns = *r->fn;
  parse_default_array = parse_fns.createArray;
  parse_fns.createArray = parse_capped_array;
  redisReaderFree(r);
}

rcache_status rcache__cluster_parse_map(const char *resp, size_t len, bool shards, bool tls,
                                        const char *asked_host, rcache__range_fn fn, void *ud) {
  redisReader *rd = redisReaderCreate();
  if (!rd) return RCACHE_ENOMEM;
  size_t left = len / 4 + 16;
  pthread_once(&parse_once, parse_init);
  if (parse_default_array) {
    rd->fn = &parse_fns;
    rd->privdata = &left;
  }
  void *r = NULL;
  rcache_status s = RCACHE_OK;
  if (redisReaderFeed(rd, resp, len) != REDIS_OK)
    s = RCACHE_ENOMEM;
  else if (redisReaderGetReply(rd, &r) != REDIS_OK || !r)
    s = RCACHE_EPROTO;
  redisReaderFree(rd);
  if (s != RCACHE_OK) {
    if (r) freeReplyObject(r);
    return s;
  }
  rcache__ranges rs = {0};
  s = rcache__map_parse(r, shards, tls, asked_host, &rs);
  for (size_t i = 0; s == RCACHE_OK && i < rs.n; i++)
    fn(ud, rs.v[i].lo, rs.v[i].hi, rs.v[i].host, rs.v[i].port);
  rcache__free(rs.v);
  freeReplyObject(r);
  return s;
}

int rcache__cluster_parse_redirect(const char *err, unsigned *slot, char *host, size_t hsize,
                                   int *port) {
  redisReply x;
  memset(&x, 0, sizeof x);
  x.type = REDIS_REPLY_ERROR;
  x.str = (char *)err;
  x.len = strlen(err);
  rcache__redirect rd;
  memset(&rd, 0, sizeof rd);
  int k = rcache__redirect_of(&x, &rd);
  if (k == RCACHE__REDIR_MOVED || k == RCACHE__REDIR_ASK) {
    *slot = rd.slot;
    snprintf(host, hsize, "%s", rd.host);
    *port = rd.port;
  }
  return k;
}
