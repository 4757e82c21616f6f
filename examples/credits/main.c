/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * `make demo`: the credits service (service.c) under a scripted load, printed as tables.
 *
 *   1. the same requests without a cache (none://) and with one (memory://, or Redis when
 *      REDIS_URL is set): SQLite queries, hit rate, time per request;
 *   2. a rate limit (rcache_rate_limit);
 *   3. an outage: the service's cache handle points at a loopback port nobody listens on;
 *      every request still succeeds from SQLite, each within its deadline;
 *   4. recovery: back on the real cache, dropped invalidations replayed, no stale balance.
 *
 * usage: credits_demo [--db PATH] [--url URL] [--requests N] [--json]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "service.h"

#define PREFIX "credits-demo:"
#define HOT_USERS 20
#define RL_LIMIT 20
#define RL_CALLS 30
#define DEAD_TIMEOUT_MS 200

typedef struct figures {
  const char *name;
  char url[256];
  uint64_t requests, failed, writes, hits, selects, loads, fallbacks, dropped, over_deadline;
  double median_us, p99_us, max_us, db_ms;
} figures;

typedef struct demo {
  credits_svc svc;
  int64_t users;
  bool json;
  char logs[4][256]; /* the first library log lines of the outage handle */
  int nlogs;
} demo;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint32_t next(uint32_t *r) { /* xorshift32: the same workload on every run */
  *r ^= *r << 13;
  *r ^= *r >> 17;
  *r ^= *r << 5;
  return *r;
}

/* "350 ns", "4.1 µs", "812 µs", "3.41 ms" */
static const char *dur(double us, char *buf, size_t size) {
  if (us < 1)
    snprintf(buf, size, "%.0f ns", us * 1000);
  else if (us < 10)
    snprintf(buf, size, "%.1f µs", us);
  else if (us < 1000)
    snprintf(buf, size, "%.0f µs", us);
  else if (us < 10000)
    snprintf(buf, size, "%.2f ms", us / 1000);
  else if (us < 1000000)
    snprintf(buf, size, "%.0f ms", us / 1000);
  else
    snprintf(buf, size, "%.2f s", us / 1e6);
  return buf;
}

/* As the CLI does: the password ends at the URL's last '@' (it may hold '@', '?', '/'). */
static void redact(const char *url, char *out, size_t size) {
  const char *p = strstr(url, "://"), *at = p ? strrchr(p + 3, '@') : NULL;
  const char *colon = at ? memchr(p + 3, ':', (size_t)(at - p - 3)) : NULL;
  if (colon)
    snprintf(out, size, "%.*s***%s", (int)(colon + 1 - url), url, at);
  else
    snprintf(out, size, "%s", url);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void pick_user(uint32_t *r, int64_t users, char *buf, size_t size) {
  int64_t hot = users < HOT_USERS ? users : HOT_USERS;
  int64_t id = next(r) % 100 < 80 ? 1 + next(r) % hot : 1 + next(r) % users;
  snprintf(buf, size, "%lld", (long long)id);
}

/* n requests of a fixed mix (55% balances, 10% profiles, 15% sessions, 15% flags, plus 5%
 * credit updates that invalidate) through the service, on cache handle c. */
static void workload(demo *d, rcache *c, uint32_t seed, int n, int64_t deadline_us, figures *f) {
  static const char *const flags[] = {"new_dashboard", "dark_mode", "beta_export",  "ai_summaries",
                                      "bulk_invoices", "sso_login", "usage_alerts", "legacy_api"};
  credits_svc *s = &d->svc;
  s->cache = c;
  rcache_stats a, b;
  rcache_get_stats(c, &a);
  uint64_t sel0 = s->selects, load0 = s->loads, w0 = s->writes, drop0 = s->dropped;
  int64_t db0 = s->db_ns;
  int64_t *lat = malloc((size_t)n * sizeof *lat); /* ns */
  uint32_t r = seed;
  for (int i = 0; i < n && lat; i++) {
    char id[24], buf[128];
    uint32_t kind = next(&r) % 100;
    pick_user(&r, d->users, id, sizeof id);
    if (kind < 5) { /* a write: not counted as a read request */
      if (credits_update_user_credits(s, id, -(int64_t)(1 + next(&r) % 20), "usage") != 0)
        f->failed++;
      i--;
      continue;
    }
    int64_t t0 = now_ns(), credits;
    int rc;
    if (kind < 60) {
      rc = credits_get_user_credits(s, id, &credits);
    } else if (kind < 70) {
      rc = credits_get_user(s, id, buf, sizeof buf);
    } else if (kind < 85) {
      credits_session sess;
      snprintf(buf, sizeof buf, "sess-%04lld", strtoll(id, NULL, 10));
      rc = credits_get_session(s, buf, &sess);
    } else {
      bool on;
      rc = credits_is_feature_enabled(s, flags[next(&r) % 8], &on);
    }
    lat[i] = now_ns() - t0;
    f->requests++;
    if (rc != 0) f->failed++;
    if (deadline_us && lat[i] > deadline_us * 1000) f->over_deadline++;
  }
  rcache_get_stats(c, &b);
  f->hits = b.hits - a.hits;
  f->fallbacks = b.fallbacks - a.fallbacks;
  f->selects = s->selects - sel0;
  f->loads = s->loads - load0;
  f->writes = s->writes - w0;
  f->dropped = s->dropped - drop0;
  f->db_ms = (double)(s->db_ns - db0) / 1e6;
  if (lat && f->requests) {
    qsort(lat, f->requests, sizeof *lat, cmp_i64);
    f->median_us = (double)lat[(f->requests - 1) / 2] / 1000.0;
    f->p99_us = (double)lat[(f->requests * 99 + 99) / 100 - 1] / 1000.0;
    f->max_us = (double)lat[f->requests - 1] / 1000.0;
  }
  free(lat);
}

static bool consistent(const figures *f) {
  return f->selects + f->hits == f->requests && f->loads == f->selects && f->failed == 0;
}

/* Users whose cached balance (read without loading) differs from SQLite. */
static int stale_balances(demo *d, rcache *c) {
  int stale = 0;
  for (int64_t u = 1; u <= d->users; u++) {
    char id[24], key[64], tag[64];
    snprintf(id, sizeof id, "%lld", (long long)u);
    rcache_key_user_credits(key, sizeof key, id);
    credits_user_tag(tag, sizeof tag, id);
    const char *tags[] = {tag};
    rcache_value v;
    int64_t truth;
    if (rcache_get_tagged(c, key, tags, 1, &v) == RCACHE_OK &&
        credits_db_balance(&d->svc, id, &truth) == 0 && strtoll(v.data, NULL, 10) != truth)
      stale++;
    rcache_value_free(&v);
  }
  return stale;
}

/* The library may log from its background threads: the lines are kept under a lock. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void capture_log(int level, const char *msg, void *ud) {
  demo *d = ud;
  pthread_mutex_lock(&log_mu);
  if (d->nlogs < 4) snprintf(d->logs[d->nlogs++], sizeof d->logs[0], "%s", msg);
  pthread_mutex_unlock(&log_mu);
}

static int dead_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  int port = -1;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0) close(fd); /* released: nobody listens there now */
  return port;
}

/* "  label  text..." with text wrapped at 92 columns under itself. */
static void print_wrapped(const char *label, const char *text) {
  const int indent = 37, width = 92 - indent;
  printf("  %-34s ", label);
  while (*text) {
    int len = (int)strlen(text), cut = len;
    if (len > width) {
      cut = width;
      while (cut > 0 && text[cut] != ' ')
        cut--;
      if (cut == 0) cut = width;
    }
    printf("%.*s\n", cut, text);
    text += cut;
    while (*text == ' ')
      text++;
    if (*text) printf("%*s", indent, "");
  }
}

/* "redis://127.0.0.1:6379/3" -> "(redis://)": fits a column */
static const char *scheme(const char *url, char *buf, size_t size) {
  const char *p = strstr(url, "://");
  snprintf(buf, size, "(%.*s)", p ? (int)(p + 3 - url) : (int)strlen(url), url);
  return buf;
}

static void row(const char *label, const char *a, const char *b) {
  printf("  %-34s %14s %16s\n", label, a, b);
}

static void print_compare(const figures *no, const figures *yes) {
  char a[32], b[32];
#define NUM(v, buf) (snprintf(buf, sizeof buf, "%llu", (unsigned long long)(v)), buf)
#define PCT(f, buf)                                                                                \
  (snprintf(buf, sizeof buf, "%.1f%%",                                                             \
            (f)->requests ? 100.0 * (double)(f)->hits / (double)(f)->requests : 0.0),              \
   buf)
  row("", "without cache", "with cache");
  row("", scheme(no->url, a, sizeof a), scheme(yes->url, b, sizeof b));
  row("requests served", NUM(no->requests, a), NUM(yes->requests, b));
  row("SQLite queries", NUM(no->selects, a), NUM(yes->selects, b));
  row("cache hits", NUM(no->hits, a), NUM(yes->hits, b));
  row("hit rate", PCT(no, a), PCT(yes, b));
  row("median time per request", dur(no->median_us, a, sizeof a), dur(yes->median_us, b, sizeof b));
  row("99th percentile", dur(no->p99_us, a, sizeof a), dur(yes->p99_us, b, sizeof b));
  row("time spent in SQLite", dur(no->db_ms * 1000, a, sizeof a),
      dur(yes->db_ms * 1000, b, sizeof b));
  row("credit updates (each invalidates)", NUM(no->writes, a), NUM(yes->writes, b));
  row("check: queries + hits = requests", consistent(no) ? "ok" : "MISMATCH",
      consistent(yes) ? "ok" : "MISMATCH");
}

/* A JSON string literal. */
static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      printf("\\%c", ch);
    else if (ch < 0x20)
      printf("\\u%04x", ch);
    else
      putchar(ch);
  }
  putchar('"');
}

static void json_figures(const figures *f, bool last) {
  printf("{\"name\":\"%s\",\"url\":", f->name);
  json_str(f->url);
  printf(",\"requests\":%llu,\"failed\":%llu,\"sqlite_selects\":%llu,"
         "\"loads\":%llu,\"cache_hits\":%llu,\"fallbacks\":%llu,\"writes\":%llu,"
         "\"dropped_invalidations\":%llu,\"over_deadline\":%llu,\"median_us\":%.1f,"
         "\"p99_us\":%.1f,\"max_us\":%.1f,\"sqlite_ms\":%.3f}%s",
         (unsigned long long)f->requests, (unsigned long long)f->failed,
         (unsigned long long)f->selects, (unsigned long long)f->loads, (unsigned long long)f->hits,
         (unsigned long long)f->fallbacks, (unsigned long long)f->writes,
         (unsigned long long)f->dropped, (unsigned long long)f->over_deadline, f->median_us,
         f->p99_us, f->max_us, f->db_ms, last ? "" : ",");
}

static rcache *open_cache(const char *url, int timeout_ms, demo *d) {
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = PREFIX;
  if (timeout_ms) {
    o.connect_timeout_ms = o.command_timeout_ms = timeout_ms;
    o.log_fn = capture_log;
    o.log_ud = d;
  }
  rcache *c = NULL;
  rcache_status s = rcache_open(&c, url, &o);
  if (s != RCACHE_OK) {
    char shown[512];
    redact(url, shown, sizeof shown);
    fprintf(stderr, "credits_demo: cannot open %s: %s: %s\n", shown, rcache_strerror(s),
            rcache_errmsg(NULL));
    return NULL;
  }
  return c;
}

/* Everything the run measured, printed as tables or JSON at the end. */
typedef struct report {
  const char *db;
  char shown[256]; /* the cache URL, password hidden */
  bool created, healthy, is_memory, dead_is_redis, ok;
  char health_error[256], dead_url[160];
  int n, rl_allowed, down_allowed, stale_before, stale_after, replayed, matching;
  size_t queued;
  figures none, cache, outage, recovery;
  rcache_stats dead_stats;
  double secs;
} report;

static int rate_limit_calls(demo *d, rcache *c, int calls) {
  int allowed = 0;
  d->svc.cache = c;
  for (int i = 0; i < calls; i++) {
    bool ok = false;
    int64_t count;
    if (credits_check_rate_limit(&d->svc, "7", "/api/generate", RL_LIMIT, 60, &ok, &count) == 0 &&
        ok)
      allowed++;
  }
  return allowed;
}

/* 3. The service's cache handle points at a loopback port nobody listens on. */
static void run_outage(demo *d, report *r) {
  snprintf(r->dead_url, sizeof r->dead_url, "redis://127.0.0.1:%d", dead_port());
  rcache *dead = open_cache(r->dead_url, DEAD_TIMEOUT_MS, d);
  r->dead_is_redis = dead != NULL;
  if (!dead) { /* no Redis backend in this build: caching off stands in for the outage */
    snprintf(r->dead_url, sizeof r->dead_url, "none://");
    dead = open_cache(r->dead_url, 0, d);
  }
  r->outage = (figures){.name = "outage"};
  snprintf(r->outage.url, sizeof r->outage.url, "%s", r->dead_url);
  int64_t deadline_us = 2 * DEAD_TIMEOUT_MS * 1000; /* connect + command, per cache call */
  workload(d, dead, 11, r->n / 3, deadline_us, &r->outage);
  r->down_allowed = rate_limit_calls(d, dead, 5);
  rcache_get_stats(dead, &r->dead_stats);
  rcache_close(dead);
}

/* 4. Back on the real cache: replay what the outage dropped, then check every balance. */
static void run_recovery(demo *d, report *r, rcache *cache) {
  d->svc.cache = cache;
  r->stale_before = stale_balances(d, cache);
  r->queued = d->svc.npending;
  r->replayed = credits_replay_invalidations(&d->svc);
  r->stale_after = stale_balances(d, cache);
  r->recovery = (figures){.name = "recovery"};
  snprintf(r->recovery.url, sizeof r->recovery.url, "%s", r->shown);
  workload(d, cache, 13, r->n / 3, 0, &r->recovery);
  d->svc.counting = false; /* the check's own reads are not part of the figures */
  for (int64_t u = 1; u <= d->users; u++) {
    char id[24];
    int64_t cached_v, truth;
    snprintf(id, sizeof id, "%lld", (long long)u);
    if (credits_get_user_credits(&d->svc, id, &cached_v) == 0 &&
        credits_db_balance(&d->svc, id, &truth) == 0 && cached_v == truth)
      r->matching++;
  }
  d->svc.counting = true;
}

static void print_intro(const demo *d, const report *r) {
  printf("rcache demo: the credits service (examples/credits/)\n\n");
  printf("  database   %s (%s)\n", r->db, r->created ? "created and seeded just now" : "existing");
  printf("  cache      %s, namespace \"%s\"%s%s\n", r->shown, PREFIX,
         r->healthy ? "" : " - NOT REACHABLE: ", r->healthy ? "" : r->health_error);
  if (r->is_memory) printf("             (set REDIS_URL=redis://... to use Redis)\n");
  printf("\n1. The same %d requests without and with the cache\n", r->n);
  printf("   (%lld users; a balance is a SUM() over the user's ledger of ~1500 rows;\n"
         "   also profiles, sessions and feature flags; 5%% of requests spend credits)\n\n",
         (long long)d->users);
}

static void print_outage(const demo *d, const report *r) {
  const figures *f = &r->outage;
  const rcache_stats *ds = &r->dead_stats;
  char a[32], b[32];
  printf("\n3. Outage: the service's cache now points at %s\n", r->dead_url);
  printf("   (%s; timeouts %d ms)\n\n",
         r->dead_is_redis ? "nobody listens there" : "no Redis backend in this build",
         DEAD_TIMEOUT_MS);
  printf("  %-34s %llu, %s\n", "requests served", (unsigned long long)f->requests,
         f->failed ? "SOME FAILED" : "none failed: answered from SQLite");
  printf("  %-34s %llu / %llu\n", "SQLite queries / cache hits", (unsigned long long)f->selects,
         (unsigned long long)f->hits);
  printf("  %-34s %s / %s\n", "median / slowest request", dur(f->median_us, a, sizeof a),
         dur(f->max_us, b, sizeof b));
  printf("  %-34s %llu (deadline per cache call: %d ms)\n", "requests over the deadline",
         (unsigned long long)f->over_deadline, 2 * DEAD_TIMEOUT_MS);
  printf("  %-34s %s, opened %llu time%s; %llu calls answered without the cache\n",
         "circuit breaker", ds->breaker_state == RCACHE_BREAKER_CLOSED ? "closed" : "open",
         (unsigned long long)ds->breaker_opens, ds->breaker_opens == 1 ? "" : "s",
         (unsigned long long)ds->fallbacks);
  printf("  %-34s %llu (queued for replay: %zu users)\n", "invalidations dropped",
         (unsigned long long)f->dropped, d->svc.npending);
  printf("  %-34s fails open: %d of 5 calls allowed\n", "rate limit while down", r->down_allowed);
  pthread_mutex_lock(&log_mu);
  for (int i = 0; i < d->nlogs; i++)
    print_wrapped(i ? "" : "library log (once per change)", d->logs[i]);
  pthread_mutex_unlock(&log_mu);
  printf("  %-34s %s\n", "check: queries + hits = requests", consistent(f) ? "ok" : "MISMATCH");
}

static void print_recovery(const demo *d, const report *r) {
  const figures *f = &r->recovery;
  char a[32];
  printf("\n4. Recovery: the service is back on %s\n\n", r->shown);
  printf("  %-34s %d\n", "stale cached balances", r->stale_before);
  printf("  %-34s %d of %zu users (rcache_invalidate_tag)\n", "replayed invalidations",
         r->replayed < 0 ? 0 : r->replayed, r->queued);
  printf("  %-34s %d\n", "stale cached balances after replay", r->stale_after);
  printf("  %-34s %llu, hit rate %.1f%%, median %s\n", "requests served",
         (unsigned long long)f->requests,
         f->requests ? 100.0 * (double)f->hits / (double)f->requests : 0,
         dur(f->median_us, a, sizeof a));
  printf("  %-34s %d of %lld users\n", "cached balance = SQLite balance", r->matching,
         (long long)d->users);
  printf("  %-34s %s\n", "check: queries + hits = requests", consistent(f) ? "ok" : "MISMATCH");
  if (!r->healthy)
    printf("\n  The cache at %s was unreachable for the whole run: every request was\n"
           "  answered from SQLite, none failed. That is the fallback; start Redis to see\n"
           "  the cache at work.\n",
           r->shown);
  printf("\n%s in %.1f s.\n", r->ok ? "All checks passed" : "SOME CHECKS FAILED", r->secs);
}

static void print_json(const demo *d, const report *r) {
  printf("{\"db\":");
  json_str(r->db);
  printf(",\"db_created\":%s,\"url\":", r->created ? "true" : "false");
  json_str(r->shown);
  printf(",\"healthy\":%s,\"users\":%lld,\"phases\":[", r->healthy ? "true" : "false",
         (long long)d->users);
  json_figures(&r->none, false);
  json_figures(&r->cache, false);
  json_figures(&r->outage, false);
  json_figures(&r->recovery, true);
  printf("],\"rate_limit\":{\"limit\":%d,\"calls\":%d,\"allowed\":%d},"
         "\"outage_rate_limit\":{\"calls\":5,\"allowed\":%d},\"outage_backend\":\"%s\","
         "\"outage_breaker_opens\":%llu,\"stale_before_replay\":%d,\"queued\":%zu,"
         "\"replayed\":%d,\"stale_after_replay\":%d,\"matching_users\":%d,\"ok\":%s,"
         "\"seconds\":%.2f}\n",
         RL_LIMIT, RL_CALLS, r->rl_allowed, r->down_allowed, r->dead_is_redis ? "redis" : "none",
         (unsigned long long)r->dead_stats.breaker_opens, r->stale_before, r->queued, r->replayed,
         r->stale_after, r->matching, r->ok ? "true" : "false", r->secs);
}

static int parse_args(int argc, char **argv, report *r, const char **url, bool *json) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--db") == 0 && i + 1 < argc)
      r->db = argv[++i];
    else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
      *url = argv[++i];
    else if (strcmp(argv[i], "--requests") == 0 && i + 1 < argc)
      r->n = atoi(argv[++i]);
    else if (strcmp(argv[i], "--json") == 0)
      *json = true;
    else {
      fprintf(stderr, "usage: credits_demo [--db PATH] [--url URL] [--requests N] [--json]\n"
                      "  the cache is --url, else $REDIS_URL, else memory://\n");
      return -1;
    }
  }
  if (r->n < 30 || r->n > 10000000) {
    fprintf(stderr, "credits_demo: --requests must be 30..10000000\n");
    return -1;
  }
  const char *env = getenv("REDIS_URL");
  if (!*url && env && !*env) /* as rcache_open(NULL) does: empty is unset, and said so */
    fprintf(stderr, "credits_demo: REDIS_URL is set but empty: using memory://\n");
  if (!*url) *url = env && *env ? env : "memory://";
  return 0;
}

int main(int argc, char **argv) {
  static demo d; /* large (log lines); one per process */
  static report r;
  const char *url = NULL;
  r.db = "credits-demo.db";
  r.n = 3000;
  if (parse_args(argc, argv, &r, &url, &d.json) != 0) return 2;
  int64_t t_start = now_ns();
  redact(url, r.shown, sizeof r.shown);
  r.is_memory = strncmp(url, "memory://", 9) == 0;

  rcache *cache = open_cache(url, 0, &d), *none = open_cache("none://", 0, &d);
  if (!cache || !none || credits_open(&d.svc, r.db, cache, &r.created) != 0) {
    rcache_close(cache);
    rcache_close(none);
    return 1;
  }
  d.users = credits_user_count(&d.svc);
  rcache_health h;
  r.healthy = rcache_health_check(cache, &h) == RCACHE_OK;
  snprintf(r.health_error, sizeof r.health_error, "%s", h.error);
  rcache_flush(cache); /* our namespace only: start cold, like a fresh deployment */
  if (!d.json) print_intro(&d, &r);

  /* 1. without and with the cache: the same workload (same seed) */
  r.none = (figures){.name = "no_cache", .url = "none://"};
  r.cache = (figures){.name = "cache"};
  snprintf(r.cache.url, sizeof r.cache.url, "%s", r.shown);
  workload(&d, none, 7, r.n, 0, &r.none);
  workload(&d, cache, 7, r.n, 0, &r.cache);
  if (!d.json) print_compare(&r.none, &r.cache);

  /* 2. a rate limit */
  r.rl_allowed = rate_limit_calls(&d, cache, RL_CALLS);
  if (!d.json) {
    printf("\n2. Rate limit (rcache_rate_limit: %d calls per 60 s per user and endpoint)\n\n",
           RL_LIMIT);
    printf("  user 7 calls /api/generate %d times: %d allowed, %d denied\n", RL_CALLS, r.rl_allowed,
           RL_CALLS - r.rl_allowed);
  }

  run_outage(&d, &r);
  if (!d.json) print_outage(&d, &r);
  run_recovery(&d, &r, cache);

  r.secs = (double)(now_ns() - t_start) / 1e9;
  r.ok = consistent(&r.none) && consistent(&r.cache) && consistent(&r.outage) &&
         consistent(&r.recovery) && r.outage.over_deadline == 0 && r.stale_after == 0 &&
         r.matching == d.users && (r.replayed >= 0 || !r.healthy);
  if (d.json)
    print_json(&d, &r);
  else
    print_recovery(&d, &r);
  credits_close(&d.svc);
  rcache_close(none);
  rcache_close(cache);
  return r.ok ? 0 : 1;
}
