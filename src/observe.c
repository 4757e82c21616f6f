/* SPDX-License-Identifier: BSD-3-Clause */
/* Observability: per-operation latency histograms with fixed log-scale buckets, hits and
 * misses per key family, the event sink, and their Prometheus / JSON renderings with the
 * handle's labels. A call costs two clock readings (a read's first is the near cache's
 * "now" as well) and two relaxed atomic adds (bucket, sum); the count is the buckets' sum,
 * so it needs no add of its own. A near-cache hit costs neither unless it is the one in
 * RCACHE__NEAR_SAMPLE its shard picks (observe.h), and its family hit is counted by the
 * near table; an event sink gets every hit, untimed. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "handle.h"

static const char *const op_names[RCACHE_OP_COUNT] = {
    "get",          "set",      "delete",   "get_or_set_hit", "get_or_set_load", "incr",
    "delete_match", "get_many", "set_many", "health",         "loader",          "invalidate_tag",
    "get_tagged"};

const char *rcache_op_name(rcache_op op) {
  return (unsigned)op < RCACHE_OP_COUNT ? op_names[op] : NULL;
}

uint64_t rcache_op_bucket_le_us(int i) {
  return i >= 0 && i < RCACHE_OP_BUCKETS - 1 ? (uint64_t)1 << i : UINT64_MAX;
}

/* The smallest i with us <= 2^i: ceil(log2(us)), one bit scan. */
static int op_bucket(uint64_t us) {
  if (us <= 1) return 0;
  int i = 64 - __builtin_clzll(us - 1);
  return i < RCACHE_OP_BUCKETS - 1 ? i : RCACHE_OP_BUCKETS - 1;
}

void rcache__obs_init(rcache *c) {
  rcache__obs *o = &c->obs;
  const rcache__url *u = &c->ctx.url;
  if (u->path)
    snprintf(o->server, sizeof o->server, "%s", u->path);
  else if (u->nhosts > 0)
    snprintf(o->server, sizeof o->server, "%s:%d", u->hosts[0].host, u->hosts[0].port);
  else
    snprintf(o->server, sizeof o->server, "%s", c->b ? c->b->ops->mode : "");
}

/* The family of key: its first n ':'-separated segments. */
static size_t family_len(const char *key, unsigned n) {
  size_t i = 0;
  for (; key[i]; i++)
    if (key[i] == ':' && --n == 0) break;
  return i;
}

/* The family's slot, added on first use; NULL when the table is full ("other"). Lock-free:
 * every thread scans in the same order and claims the first free slot, and waits for a
 * slot being written, so one name never takes two slots. */
static rcache__family *family_of(rcache__obs *o, const char *name, size_t len) {
  if (len >= RCACHE__FAMILY_NAME) { /* cut, but not inside a UTF-8 character */
    len = RCACHE__FAMILY_NAME - 1;
    for (size_t k = 0; k < 3 && len > 0 && ((unsigned char)name[len] & 0xc0) == 0x80; k++)
      len--;
  }
  for (int i = 0; i < RCACHE_MAX_FAMILIES; i++) {
    rcache__family *f = &o->fam[i];
    int st = atomic_load_explicit(&f->state, memory_order_acquire);
    if (st == 0) {
      int zero = 0;
      if (atomic_compare_exchange_strong(&f->state, &zero, 1)) {
        memcpy(f->name, name, len);
        f->name[len] = '\0';
        f->len = len;
        atomic_store_explicit(&f->state, 2, memory_order_release);
        return f;
      }
      st = zero;
    }
    while (st == 1) /* a few bytes being copied by another thread */
      st = atomic_load_explicit(&f->state, memory_order_acquire);
    if (f->len == len && memcmp(f->name, name, len) == 0) return f;
  }
  return NULL;
}

static bool is_read(rcache_op op) {
  return op == RCACHE_OP_GET || op == RCACHE_OP_GET_TAGGED || op == RCACHE_OP_GET_OR_SET_HIT ||
         op == RCACHE_OP_GET_OR_SET_LOAD;
}

/* Counts a read of key in its family (or "other"); returns the name it counted under. */
static const char *count_family(rcache *c, const char *key, bool hit) {
  size_t len = family_len(key, c->ctx.opt.key_family_segments);
  rcache__family *f = family_of(&c->obs, key, len);
  _Atomic uint64_t *n =
      f ? (hit ? &f->hits : &f->misses) : (hit ? &c->obs.other_hits : &c->obs.other_misses);
  atomic_fetch_add_explicit(n, 1, memory_order_relaxed);
  return f ? f->name : "other";
}

static void record(rcache *c, rcache_op op, uint64_t us, uint64_t weight) {
  rcache__ophist *h = &c->obs.op[op];
  atomic_fetch_add_explicit(&h->bucket[op_bucket(us)], weight, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->sum_us, us * weight, memory_order_relaxed);
}

/* The name of a near-table group (NULL for RCACHE__NEAR_NOGROUP). */
static const char *group_name(rcache *c, uint8_t g) {
  return g < RCACHE_MAX_FAMILIES ? c->obs.fam[g].name : g == RCACHE_MAX_FAMILIES ? "other" : NULL;
}

/* The event sink's call; fam is the name the read was counted under, or NULL. */
static void emit(rcache *c, rcache_op op, const char *key, const char *fam, rcache_status s,
                 uint64_t us, size_t bytes) {
  char buf[RCACHE__FAMILY_NAME];
  buf[0] = '\0'; /* not "" in the declaration: that would zero all of it, on every call */
  if (!fam && key && c->ctx.opt.key_family_segments) {
    size_t len = family_len(key, c->ctx.opt.key_family_segments);
    snprintf(buf, sizeof buf, "%.*s", (int)len, key);
  }
  rcache_event ev = {op, s, fam ? fam : buf, us, c->obs.server, bytes};
  c->ctx.opt.event_sink.on_event(&ev, c->ctx.opt.event_sink.ud);
}

void rcache__observe_us(rcache *c, rcache_op op, const char *key, rcache_status s, uint64_t us,
                        size_t bytes) {
  record(c, op, us, 1);
  const char *fam = NULL;
  if (c->ctx.opt.key_family_segments && key && is_read(op) && (s == RCACHE_OK || s == RCACHE_MISS))
    fam = count_family(c, key,
                       op == RCACHE_OP_GET || op == RCACHE_OP_GET_TAGGED
                           ? s == RCACHE_OK
                           : op == RCACHE_OP_GET_OR_SET_HIT);
  if (c->ctx.opt.event_sink.on_event) emit(c, op, key, fam, s, us, bytes);
}

uint64_t rcache__since(int64_t t0_us) {
  int64_t d = rcache__now_us() - t0_us;
  return d > 0 ? (uint64_t)d : 0;
}

/* This thread's stripe, picked round robin at its first call. */
static unsigned my_stripe(void) {
  static _Thread_local unsigned mine; /* stripe + 1; 0 until the first call */
  if (!mine) {
    static _Atomic unsigned next;
    mine = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) % RCACHE__STRIPES + 1;
  }
  return mine - 1;
}

void rcache__in_flight(rcache *c, int d) {
  atomic_fetch_add_explicit(&c->obs.in_flight[my_stripe()].n, d, memory_order_relaxed);
}

uint64_t rcache__in_flight_now(rcache *c) {
  int64_t n = 0;
  for (int i = 0; i < RCACHE__STRIPES; i++)
    n += atomic_load_explicit(&c->obs.in_flight[i].n, memory_order_relaxed);
  return n > 0 ? (uint64_t)n : 0; /* read stripe by stripe: a leave may be seen before its enter */
}

void rcache__obs_after_fork(rcache *c) {
  for (int i = 0; i < RCACHE__STRIPES; i++)
    atomic_store_explicit(&c->obs.in_flight[i].n, 0, memory_order_relaxed);
  atomic_store_explicit(&c->obs.loads_in_progress, 0, memory_order_relaxed);
}

void rcache__observe(rcache *c, rcache_op op, const char *key, rcache_status s, int64_t t0_us,
                     size_t bytes) {
  rcache__observe_us(c, op, key, s, rcache__since(t0_us), bytes);
  rcache__in_flight(c, -1);
}

void rcache__observe_near(rcache *c, rcache_op op, const rcache__read *rd, size_t bytes) {
  if (rd->sample) record(c, op, rcache__since(rd->now_us), RCACHE__NEAR_SAMPLE);
  /* every hit goes to a tracer, untimed (0 µs): a hit takes well under a microsecond, and a
   * clock reading would cost a third of one (docs/perf.md) */
  if (c->ctx.opt.event_sink.on_event)
    emit(c, op, rd->key, group_name(c, rd->group), RCACHE_OK, 0, bytes);
}

uint8_t rcache__obs_group(rcache *c, const char *key) {
  if (!c->ctx.opt.key_family_segments || !key) return RCACHE__NEAR_NOGROUP;
  rcache__family *f = family_of(&c->obs, key, family_len(key, c->ctx.opt.key_family_segments));
  return (uint8_t)(f ? f - c->obs.fam : RCACHE_MAX_FAMILIES);
}

static void op_snapshot(const rcache__ophist *h, rcache_op_stats *s) {
  memset(s, 0, sizeof *s);
  for (int i = 0; i < RCACHE_OP_BUCKETS; i++) {
    s->bucket[i] = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
    s->count += s->bucket[i];
  }
  s->sum_us = atomic_load_explicit(&h->sum_us, memory_order_relaxed);
  s->size = sizeof *s;
}

rcache_status rcache_get_op_stats_sized(rcache *c, rcache_op op, rcache_op_stats *out,
                                        size_t size) {
  if (!out || size < sizeof out->size) return RCACHE_EINVAL;
  rcache_op_stats s;
  memset(&s, 0, sizeof s);
  rcache_status st = RCACHE_EINVAL;
  if (c && (unsigned)op < RCACHE_OP_COUNT) {
    op_snapshot(&c->obs.op[op], &s);
    st = RCACHE_OK;
  }
  memset(out, 0, size);
  memcpy(out, &s, size < sizeof s ? size : sizeof s);
  out->size = size < sizeof s ? size : sizeof s;
  return st;
}

rcache_status rcache_get_family_stats(rcache *c, size_t i, char *name, size_t namelen,
                                      uint64_t *hits, uint64_t *misses) {
  if (!c) return RCACHE_EINVAL;
  size_t n = 0;
  while (n < RCACHE_MAX_FAMILIES &&
         atomic_load_explicit(&c->obs.fam[n].state, memory_order_acquire) == 2)
    n++;
  if (i > n) return RCACHE_MISS;
  const char *nm = i < n ? c->obs.fam[i].name : "other";
  _Atomic uint64_t *h = i < n ? &c->obs.fam[i].hits : &c->obs.other_hits;
  _Atomic uint64_t *m = i < n ? &c->obs.fam[i].misses : &c->obs.other_misses;
  uint64_t near[RCACHE__NEAR_GROUPS] = {0}; /* hits the near table answered */
  if (hits && c->ctx.near) rcache__near_group_hits(c->ctx.near, near);
  if (name && namelen) snprintf(name, namelen, "%s", nm);
  if (hits)
    *hits = atomic_load_explicit(h, memory_order_relaxed) + near[i < n ? i : RCACHE_MAX_FAMILIES];
  if (misses) *misses = atomic_load_explicit(m, memory_order_relaxed);
  return RCACHE_OK;
}

rcache_status rcache_get_server_stats_sized(rcache *c, size_t i, rcache_server_stats *out,
                                            size_t size) {
  if (!c || !out || size < sizeof out->size) return RCACHE_EINVAL;
  rcache_server_stats s;
  memset(&s, 0, sizeof s);
  rcache__server_gauges g;
  rcache__backend *be = rcache__be_now(c);
  rcache_status st = RCACHE_MISS;
  if (be->ops->server && be->ops->server(be, i, &g)) {
    snprintf(s.server, sizeof s.server, "%s", g.server);
    s.breaker_state = g.breaker_state;
    s.connections = (unsigned)g.connections;
    s.busy = (unsigned)g.busy;
    s.calls = (unsigned)g.calls;
    s.waiting = (unsigned)g.waiting;
    st = RCACHE_OK;
  }
  size_t n = size < sizeof s ? size : sizeof s;
  memset(out, 0, size);
  memcpy(out, &s, n);
  out->size = n;
  return st;
}

/* ---- renderings -------------------------------------------------------------------------- */

static void put_labels_of(rcache__sink *s, rcache *c, const char *server, const char *op,
                          const char *le) {
  rcache__put(s, "{client=\"");
  rcache__put_escaped(s, c->ctx.opt.client_name ? c->ctx.opt.client_name : "rcache");
  rcache__put(s, "\",server=\"");
  rcache__put_escaped(s, server);
  rcache__put(s, "\"");
  if (op) rcache__put(s, ",op=\"%s\"", op);
  if (le) rcache__put(s, ",le=\"%s\"", le);
  rcache__put(s, "}");
}

static void put_labels(rcache__sink *s, rcache *c, const char *op, const char *le) {
  put_labels_of(s, c, c->obs.server, op, le);
}

/* The gauges of each server's pool, labelled with that server (a cluster's node). */
static void prom_servers(rcache__sink *s, rcache *c) {
  static const struct {
    const char *name, *help;
  } g[5] = {
      {"server_connections", "Connections open to the server"},
      {"server_connections_busy", "Connections in use now"},
      {"server_calls", "Calls sent and unanswered or queued on a connection"},
      {"server_calls_waiting", "Calls waiting for room on a connection"},
      {"server_breaker_state", "Circuit breaker of the server (0 closed, 1 open, 2 half-open)"},
  };
  for (int k = 0; k < 5; k++) {
    rcache_server_stats v;
    for (size_t i = 0; rcache_get_server_stats(c, i, &v) == RCACHE_OK; i++) {
      if (i == 0)
        rcache__put(s, "# HELP rcache_%s %s\n# TYPE rcache_%s gauge\n", g[k].name, g[k].help,
                    g[k].name);
      unsigned x[5] = {v.connections, v.busy, v.calls, v.waiting, (unsigned)v.breaker_state};
      rcache__put(s, "rcache_%s", g[k].name);
      put_labels_of(s, c, v.server, NULL, NULL);
      rcache__put(s, " %u\n", x[k]);
    }
  }
}

static void prom_histograms(rcache__sink *s, rcache *c) {
  rcache__put(s, "# HELP rcache_op_duration_seconds Call duration per operation\n"
                 "# TYPE rcache_op_duration_seconds histogram\n");
  for (int op = 0; op < RCACHE_OP_COUNT; op++) {
    rcache_op_stats h;
    op_snapshot(&c->obs.op[op], &h);
    uint64_t cum = 0;
    for (int i = 0; i < RCACHE_OP_BUCKETS; i++) {
      char le[32];
      cum += h.bucket[i];
      if (i == RCACHE_OP_BUCKETS - 1)
        snprintf(le, sizeof le, "+Inf");
      else
        snprintf(le, sizeof le, "%.6g", (double)rcache_op_bucket_le_us(i) / 1e6);
      rcache__put(s, "rcache_op_duration_seconds_bucket");
      put_labels(s, c, op_names[op], le);
      rcache__put(s, " %" PRIu64 "\n", cum);
    }
    rcache__put(s, "rcache_op_duration_seconds_sum");
    put_labels(s, c, op_names[op], NULL);
    rcache__put(s, " %.6f\n", (double)h.sum_us / 1e6);
    rcache__put(s, "rcache_op_duration_seconds_count");
    put_labels(s, c, op_names[op], NULL);
    rcache__put(s, " %" PRIu64 "\n", h.count);
  }
}

static void prom_families(rcache__sink *s, rcache *c) {
  if (!c->ctx.opt.key_family_segments) return;
  static const char *const kind[2] = {"hits", "misses"};
  for (int k = 0; k < 2; k++) {
    rcache__put(s,
                "# HELP rcache_family_%s_total Reads per key family\n"
                "# TYPE rcache_family_%s_total counter\n",
                kind[k], kind[k]);
    char name[RCACHE__FAMILY_NAME];
    uint64_t n[2];
    for (size_t i = 0; rcache_get_family_stats(c, i, name, sizeof name, &n[0], &n[1]) == RCACHE_OK;
         i++) {
      rcache__put(s, "rcache_family_%s_total", kind[k]);
      put_labels(s, c, NULL, NULL);
      s->len--; /* reopen the label set for the family */
      rcache__put(s, ",family=\"");
      rcache__put_escaped(s, name);
      rcache__put(s, "\"} %" PRIu64 "\n", n[k]);
    }
  }
}

/* A sink holding the handle's rcache_stats as render writes them, less its last `drop` bytes
 * (JSON's closing brace, for more fields to follow); one that only counts when buf cannot
 * hold them. */
static rcache__sink stats_first(rcache *c, char *buf, size_t size,
                                size_t (*render)(const rcache_stats *, char *, size_t),
                                size_t drop) {
  rcache__sink s = {buf, size, 0};
  rcache_stats st;
  rcache_get_stats(c, &st);
  size_t n = render(&st, NULL, 0);
  if (n < size)
    render(&st, buf, size);
  else
    s.size = 0; /* too small: only the length needed */
  s.len = n - drop;
  return s;
}

size_t rcache_metrics_prometheus(rcache *c, char *buf, size_t size) {
  if (size) buf[0] = '\0';
  if (!c) return 0;
  rcache__sink s = stats_first(c, buf, size, rcache_stats_prometheus, 0);
  prom_servers(&s, c);
  prom_histograms(&s, c);
  prom_families(&s, c);
  return rcache__sink_end(&s);
}

size_t rcache_metrics_json(rcache *c, char *buf, size_t size) {
  if (size) buf[0] = '\0';
  if (!c) return 0;
  rcache__sink s = stats_first(c, buf, size, rcache_stats_json, 1); /* "{...": more follows */
  rcache__put(&s, ",\"client\":\"");
  rcache__put_escaped(&s, c->ctx.opt.client_name ? c->ctx.opt.client_name : "rcache");
  rcache__put(&s, "\",\"server\":\"");
  rcache__put_escaped(&s, c->obs.server);
  rcache__put(&s, "\",\"servers\":[");
  rcache_server_stats v;
  for (size_t i = 0; rcache_get_server_stats(c, i, &v) == RCACHE_OK; i++) {
    rcache__put(&s, "%s{\"server\":\"", i ? "," : "");
    rcache__put_escaped(&s, v.server);
    rcache__put(
        &s, "\",\"breaker_state\":%d,\"connections\":%u,\"busy\":%u,\"calls\":%u,\"waiting\":%u}",
        v.breaker_state, v.connections, v.busy, v.calls, v.waiting);
  }
  rcache__put(&s, "],\"ops\":{");
  for (int op = 0; op < RCACHE_OP_COUNT; op++) {
    rcache_op_stats h;
    op_snapshot(&c->obs.op[op], &h);
    rcache__put(&s, "%s\"%s\":{\"count\":%" PRIu64 ",\"sum_us\":%" PRIu64 ",\"buckets\":[",
                op ? "," : "", op_names[op], h.count, h.sum_us);
    for (int i = 0; i < RCACHE_OP_BUCKETS; i++)
      rcache__put(&s, "%s%" PRIu64, i ? "," : "", h.bucket[i]);
    rcache__put(&s, "]}");
  }
  rcache__put(&s, "},\"families\":{");
  char name[RCACHE__FAMILY_NAME];
  uint64_t hi, mi;
  for (size_t i = 0; c->ctx.opt.key_family_segments &&
                     rcache_get_family_stats(c, i, name, sizeof name, &hi, &mi) == RCACHE_OK;
       i++) {
    rcache__put(&s, "%s\"", i ? "," : "");
    rcache__put_escaped(&s, name);
    rcache__put(&s, "\":{\"hits\":%" PRIu64 ",\"misses\":%" PRIu64 "}", hi, mi);
  }
  rcache__put(&s, "}}");
  return rcache__sink_end(&s);
}
