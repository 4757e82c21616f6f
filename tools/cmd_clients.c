/* SPDX-License-Identifier: BSD-3-Clause */
/* rcache CLI: the figures running processes publish (option publish_stats_s; the library
 * writes them under <key_prefix>__rc:stats:<client>:<host>:<pid>): `stats --clients` lists
 * them, `watch` shows per-operation p50/p99 and hit ratios per key family under its health
 * line. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "rcache/json.h"

#define CLIENTS_MAX 256 /* documents read per refresh: the SCAN stops there */
#define STATS_GLOB "__rc:stats:*"

typedef struct key_list {
  char *key[CLIENTS_MAX];
  size_t n;
} key_list;

static bool collect(const char *key, size_t len, void *ud) {
  key_list *l = ud;
  if (l->n < CLIENTS_MAX && (l->key[l->n] = strndup(key, len))) l->n++;
  return l->n < CLIENTS_MAX;
}

static int by_key(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The published documents, sorted by key, as a JSON array (each with its "key" added).
 * Keys that expired between SCAN and GET, or hold no JSON object, are left out. */
static rcache_status read_clients(rcache *c, json_t **out) {
  key_list l = {.n = 0};
  *out = NULL;
  rcache_status s = rcache_scan(c, STATS_GLOB, CLIENTS_MAX, collect, &l);
  qsort(l.key, l.n, sizeof l.key[0], by_key);
  json_t *arr = json_array();
  for (size_t i = 0; i < l.n; i++) {
    json_t *doc = NULL;
    rcache_status g = s == RCACHE_OK && arr ? rcache_get_json(c, l.key[i], &doc) : RCACHE_MISS;
    if (g == RCACHE_OK && json_is_object(doc)) {
      json_object_set_new(doc, "key", json_string(l.key[i]));
      json_array_append(arr, doc);
    } else if (g != RCACHE_OK && g != RCACHE_MISS && g != RCACHE_EINVAL) {
      s = g;
    }
    json_decref(doc);
    free(l.key[i]);
  }
  if (!arr && s == RCACHE_OK) s = RCACHE_ENOMEM;
  if (s != RCACHE_OK)
    json_decref(arr);
  else
    *out = arr;
  return s;
}

/* ---- reading a document ------------------------------------------------------------------------
 */

static uint64_t num(const json_t *o, const char *path) {
  const json_t *v = o;
  char part[64];
  for (const char *p = path; v && *p;) {
    size_t n = strcspn(p, ".");
    snprintf(part, sizeof part, "%.*s", (int)n, p);
    v = json_object_get(v, part);
    p += n + (p[n] == '.');
  }
  return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

static const char *str(const json_t *o, const char *name) {
  const char *s = json_string_value(json_object_get(o, name));
  return s ? s : "-";
}

/* The upper bound (µs) of the bucket holding quantile q of an op's histogram; -1 if empty. */
static double op_quantile(const json_t *op, double q) {
  const json_t *b = json_object_get(op, "buckets");
  uint64_t total = 0;
  for (size_t i = 0; i < json_array_size(b); i++)
    total += (uint64_t)json_integer_value(json_array_get(b, i));
  if (total == 0) return -1;
  uint64_t rank = (uint64_t)(q * (double)total + 0.999999), seen = 0;
  for (size_t i = 0; i < json_array_size(b); i++) {
    seen += (uint64_t)json_integer_value(json_array_get(b, i));
    if (seen >= (rank ? rank : 1)) {
      uint64_t le = rcache_op_bucket_le_us((int)i);
      return le == UINT64_MAX ? 1e12 : (double)le;
    }
  }
  return -1;
}

/* "<= 512.0 µs": a bucket's upper bound; "-" for an empty histogram. */
static const char *fmt_bound(double us, char *buf, size_t size) {
  char d[24];
  if (us < 0)
    snprintf(buf, size, "-");
  else if (us >= 1e12)
    snprintf(buf, size, "> 4.19 s");
  else
    snprintf(buf, size, "<= %s", cli_fmt_us(us, d, sizeof d));
  return buf;
}

static double ratio(uint64_t hits, uint64_t misses) {
  return hits + misses ? 100.0 * (double)hits / (double)(hits + misses) : 0;
}

/* ---- stats --clients ---------------------------------------------------------------------------
 */

static void clients_text(const json_t *arr) {
  printf("%-20s %-16s %8s %6s %8s %10s %10s %6s %9s %6s %7s %s\n", "client", "host", "pid", "age",
         "gets", "get p50", "get p99", "hit%", "in_flight", "queued", "errors", "state");
  int64_t now_ms = (int64_t)time(NULL) * 1000;
  size_t i;
  json_t *d;
  json_array_foreach(arr, i, d) {
    const json_t *m = json_object_get(d, "metrics");
    const json_t *get = json_object_get(json_object_get(m, "ops"), "get");
    char client[CLI_SHOWN_MAX], host[CLI_SHOWN_MAX], p50[24], p99[24];
    cli_escape(str(m, "client"), client, sizeof client);
    cli_escape(str(d, "host"), host, sizeof host);
    int64_t age_s = (now_ms - (int64_t)num(d, "time_ms")) / 1000;
    printf("%-20s %-16s %8" PRIu64 " %5llds %8" PRIu64 " %10s %10s %6.1f %9" PRIu64 " %6" PRIu64
           " %7" PRIu64 " %s\n",
           client, host, num(d, "pid"), (long long)(age_s > 0 ? age_s : 0), num(get, "count"),
           fmt_bound(op_quantile(get, 0.50), p50, sizeof p50),
           fmt_bound(op_quantile(get, 0.99), p99, sizeof p99),
           ratio(num(m, "hits") + num(m, "near_hits"), num(m, "misses")), num(m, "calls_in_flight"),
           num(m, "calls_queued"), num(m, "errors"),
           json_is_true(json_object_get(d, "closed")) ? "closed" : "running");
  }
}

int cmd_stats_clients(cli *g, bool json) {
  json_t *arr;
  rcache_status s = read_clients(g->c, &arr);
  if (s != RCACHE_OK) return cli_fail(g, "stats --clients", s);
  if (json) {
    char *text = json_dumps(arr, JSON_COMPACT);
    if (text) printf("%s\n", text);
    free(text);
  } else if (json_array_size(arr) == 0) {
    printf("no process publishes its figures under this namespace (publish_stats_s)\n");
  } else {
    clients_text(arr);
  }
  size_t n = json_array_size(arr);
  json_decref(arr);
  return n ? CLI_OK : CLI_MISS;
}

/* ---- watch's figures ----------------------------------------------------------------------------
 */

static void figures_one(const json_t *d, const char *title) {
  const json_t *m = json_object_get(d, "metrics");
  char t[CLI_SHOWN_MAX], a[24], b[24];
  cli_escape(title, t, sizeof t);
  uint64_t hits = num(m, "hits") + num(m, "near_hits"), misses = num(m, "misses");
  printf("%s  hit %.1f %% (%" PRIu64 "/%" PRIu64 ")  in flight %" PRIu64 "  queued %" PRIu64
         "  errors %" PRIu64 "%s\n",
         t, ratio(hits, misses), hits, hits + misses, num(m, "calls_in_flight"),
         num(m, "calls_queued"), num(m, "errors"),
         json_is_true(json_object_get(d, "closed")) ? "  (closed)" : "");
  printf("  %-16s %10s %12s %12s\n", "op", "count", "p50", "p99");
  const char *name;
  json_t *op;
  json_object_foreach(json_object_get(m, "ops"), name, op) {
    if (num(op, "count") == 0) continue;
    printf("  %-16s %10" PRIu64 " %12s %12s\n", name, num(op, "count"),
           fmt_bound(op_quantile(op, 0.50), a, sizeof a),
           fmt_bound(op_quantile(op, 0.99), b, sizeof b));
  }
  json_t *fams = json_object_get(m, "families");
  if (json_object_size(fams) == 0) return;
  printf("  %-24s %10s %10s %7s\n", "family", "hits", "misses", "hit%");
  json_t *f;
  json_object_foreach(fams, name, f) {
    char fn[CLI_SHOWN_MAX];
    cli_escape(name, fn, sizeof fn);
    printf("  %-24s %10" PRIu64 " %10" PRIu64 " %6.1f\n", fn, num(f, "hits"), num(f, "misses"),
           ratio(num(f, "hits"), num(f, "misses")));
  }
}

/* This CLI's own handle's figures, titled with why they are shown. */
static void figures_own(cli *g, const char *why) {
  char title[256];
  snprintf(title, sizeof title, "this CLI's own handle (%s)", why);
  size_t need = rcache_metrics_json(g->c, NULL, 0);
  char *buf = malloc(need + 1);
  json_t *own = json_object();
  if (buf && own) {
    rcache_metrics_json(g->c, buf, need + 1);
    json_object_set_new(own, "metrics", json_loads(buf, 0, NULL));
    figures_one(own, title);
  }
  json_decref(own);
  free(buf);
}

void cli_watch_figures(cli *g) {
  json_t *arr;
  rcache_status s = read_clients(g->c, &arr);
  if (s != RCACHE_OK) { /* the cache is down: what this handle saw of it, at least */
    char why[128];
    snprintf(why, sizeof why, "the published figures cannot be read: %s", rcache_strerror(s));
    figures_own(g, why);
    return;
  }
  size_t i;
  json_t *d;
  json_array_foreach(arr, i, d) {
    char title[512];
    const json_t *m = json_object_get(d, "metrics");
    snprintf(title, sizeof title, "%s@%s pid %" PRIu64, str(m, "client"), str(d, "host"),
             num(d, "pid"));
    if (i) putchar('\n');
    figures_one(d, title);
  }
  if (json_array_size(arr) == 0) figures_own(g, "no process publishes under this namespace");
  json_decref(arr);
}
