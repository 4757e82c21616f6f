/* SPDX-License-Identifier: BSD-3-Clause */
/* rcache CLI: health, stats, watch (with cmd_clients.c's figures) and bench. */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define OPEN_OR_RETURN(opts, nopts)                                                                \
  do {                                                                                             \
    char *_pos[1];                                                                                 \
    int _np;                                                                                       \
    int _r = cli_parse(g, argc, argv, opts, nopts, _pos, &_np, 0, 0);                              \
    if (_r) return _r < 0 ? CLI_USAGE : CLI_OK;                                                    \
    int _o = cli_open(g);                                                                          \
    if (_o) return _o;                                                                             \
  } while (0)

const char *cli_fmt_us(double us, char *buf, size_t size) {
  if (us < 1000)
    snprintf(buf, size, "%.1f µs", us);
  else if (us < 1000000)
    snprintf(buf, size, "%.2f ms", us / 1000);
  else
    snprintf(buf, size, "%.2f s", us / 1000000);
  return buf;
}

static const char *breaker_name(int st) {
  return st == RCACHE_BREAKER_OPEN        ? "open"
         : st == RCACHE_BREAKER_HALF_OPEN ? "half-open"
                                          : "closed";
}

/* ---- health ---------------------------------------------------------------------------------- */

static void health_json(FILE *f, const cli *g, const rcache_health *h) {
  fprintf(f, "{\"url\":");
  cli_json_str(f, g->url_shown, strlen(g->url_shown));
  fprintf(f, ",\"healthy\":%s,\"latency_ms\":%.3f,\"mode\":", h->healthy ? "true" : "false",
          h->latency_ms);
  cli_json_str(f, h->mode, strlen(h->mode));
  fprintf(f, ",\"server_version\":");
  cli_json_str(f, h->server_version, strlen(h->server_version));
  fprintf(f, ",\"error\":");
  cli_json_str(f, h->error, strlen(h->error));
  fprintf(f, "}");
}

int cmd_health(cli *g, int argc, char **argv) {
  bool json = false;
  const cli_opt opts[] = {{"--json", NULL, OPT_FLAG, &json}};
  OPEN_OR_RETURN(opts, 1);
  rcache_health h;
  rcache_status s = rcache_health_check(g->c, &h);
  if (json) {
    health_json(stdout, g, &h);
    fputc('\n', stdout);
  } else {
    char version[CLI_SHOWN_MAX];
    cli_escape(h.server_version[0] ? h.server_version : "-", version, sizeof version);
    printf("status:   %s\n", h.healthy ? "healthy" : "UNHEALTHY");
    printf("latency:  %.3f ms\n", h.latency_ms);
    printf("mode:     %s\n", h.mode);
    printf("server:   %s\n", version);
    printf("url:      %s\n", g->url_shown);
  }
  return s == RCACHE_OK ? CLI_OK : cli_fail_detail(g, "health check", s, h.error);
}

/* ---- stats ----------------------------------------------------------------------------------- */

static void stats_text(const cli *g, const rcache_health *h, const rcache_stats *st) {
  char error[CLI_SHOWN_MAX], version[CLI_SHOWN_MAX]; /* server text: escaped */
  cli_escape(h->error, error, sizeof error);
  cli_escape(h->server_version[0] ? h->server_version : "-", version, sizeof version);
  printf("url                %s\n", g->url_shown);
  printf("mode               %s\n", h->mode);
  printf("healthy            %s%s%s\n", h->healthy ? "yes" : "no", error[0] ? " - " : "", error);
  printf("server_version     %s\n", version);
  printf("ping_latency_ms    %.3f\n", h->latency_ms);
  printf("available          %s\n", st->available ? "yes" : "no");
  printf("breaker            %s (opened %" PRIu64 " times)\n", breaker_name(st->breaker_state),
         st->breaker_opens);
#define F(f) printf("%-18s %" PRIu64 "\n", #f, st->f)
  F(reconnect_attempts);
  F(hits);
  F(misses);
  F(near_hits);
  F(near_misses);
  F(sets);
  F(deletes);
  F(errors);
  F(timeouts);
  F(fallbacks);
  F(loads);
  F(load_errors);
  F(coalesced);
  F(early_refreshes);
  F(stale_served);
  F(near_entries);
  F(near_bytes);
  F(near_invalidations);
  F(near_flushes);
#undef F
  printf("latency_p50_ms     %.3f\nlatency_p99_ms     %.3f\nlatency_max_ms     %.3f\n",
         st->latency_p50_ms, st->latency_p99_ms, st->latency_max_ms);
}

int cmd_stats(cli *g, int argc, char **argv) {
  bool json = false, prom = false, clients = false;
  const cli_opt opts[] = {{"--json", NULL, OPT_FLAG, &json},
                          {"--prometheus", NULL, OPT_FLAG, &prom},
                          {"--clients", NULL, OPT_FLAG, &clients}};
  char *pos[1];
  int np;
  int r = cli_parse(g, argc, argv, opts, 3, pos, &np, 0, 0);
  if (r) return r < 0 ? CLI_USAGE : CLI_OK;
  if (json && prom) return cli_usage_error(g, "--json and --prometheus exclude each other");
  if (clients && prom) return cli_usage_error(g, "--clients takes --json, not --prometheus");
  int o = cli_open(g);
  if (o) return o;
  if (clients) return cmd_stats_clients(g, json);
  rcache_health h;
  rcache_status s = rcache_health_check(g->c, &h);
  rcache_stats st;
  rcache_get_stats(g->c, &st);
  size_t need = json ? rcache_stats_json(&st, NULL, 0) : rcache_stats_prometheus(&st, NULL, 0);
  char *buf = malloc(need + 1);
  if (!buf) return cli_fail(g, "stats", RCACHE_ENOMEM);
  if (json) {
    rcache_stats_json(&st, buf, need + 1);
    printf("{\"health\":");
    health_json(stdout, g, &h);
    printf(",\"stats\":%s}\n", buf);
  } else if (prom) {
    rcache_stats_prometheus(&st, buf, need + 1);
    fputs(buf, stdout);
    printf("# HELP rcache_health_up Whether the last health check succeeded\n"
           "# TYPE rcache_health_up gauge\nrcache_health_up %d\n"
           "# HELP rcache_health_latency_seconds PING round trip of the last health check\n"
           "# TYPE rcache_health_latency_seconds gauge\nrcache_health_latency_seconds %.6f\n",
           h.healthy ? 1 : 0, h.latency_ms / 1000.0);
  } else {
    stats_text(g, &h, &st);
  }
  free(buf);
  /* Stats are printed either way; the exit status still says whether the cache answered. */
  return s == RCACHE_OK ? CLI_OK : cli_fail_detail(g, "health check", s, h.error);
}

/* ---- watch ----------------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_watch;

static void on_stop(int sig) {
  (void)sig;
  stop_watch = 1;
}

/* Sleeps us microseconds, or until Ctrl-C / SIGTERM. */
static void sleep_us(int64_t us) {
  struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
  while (!stop_watch && nanosleep(&ts, &ts) != 0) {
  }
}

/* One line of health: ten pings spread over the interval; false when one failed. */
static bool watch_health(cli *g, int64_t interval) {
  const int samples = 10;
  int64_t step = interval * 1000000 / samples;
  double mn = 0, mx = 0, sum = 0;
  int ok = 0;
  rcache_health h;
  memset(&h, 0, sizeof h);
  for (int i = 0; i < samples && !stop_watch; i++) {
    int64_t t0 = cli_now_us();
    rcache_status s = rcache_health_check(g->c, &h);
    double us = (double)(cli_now_us() - t0);
    if (s == RCACHE_OK) {
      mn = ok == 0 || us < mn ? us : mn;
      mx = us > mx ? us : mx;
      sum += us;
      ok++;
    }
    int64_t left = step - (cli_now_us() - t0);
    if (left > 0) sleep_us(left);
  }
  if (stop_watch) return true;
  rcache_stats st;
  rcache_get_stats(g->c, &st);
  char tbuf[16], a[24], b[24], c[24];
  time_t now = time(NULL);
  struct tm tmv;
  strftime(tbuf, sizeof tbuf, "%H:%M:%S", localtime_r(&now, &tmv));
  const char *status = ok == samples ? "up" : ok ? "flapping" : "DOWN";
  if (isatty(STDOUT_FILENO)) fputs("\033[H\033[2J", stdout); /* a screen, redrawn in place */
  printf("%-8s  %-9s  %-10s  %10s  %10s  %10s  %-9s  %10s  %6s\n", "time", "status", "mode", "min",
         "avg", "max", "breaker", "reconnects", "errors");
  printf("%-8s  %-9s  %-10s  %10s  %10s  %10s  %-9s  %10" PRIu64 "  %6" PRIu64 "\n\n", tbuf, status,
         h.mode, ok ? cli_fmt_us(mn, a, sizeof a) : "-",
         ok ? cli_fmt_us(sum / ok, b, sizeof b) : "-", ok ? cli_fmt_us(mx, c, sizeof c) : "-",
         breaker_name(st.breaker_state), st.reconnect_attempts, st.errors);
  return ok == samples;
}

int cmd_watch(cli *g, int argc, char **argv) {
  int64_t interval = 1, count = 0;
  const cli_opt opts[] = {{"--interval", NULL, OPT_I64, &interval},
                          {"--count", NULL, OPT_I64, &count}};
  char *pos[1];
  int np;
  int r = cli_parse(g, argc, argv, opts, 2, pos, &np, 0, 0);
  if (r) return r < 0 ? CLI_USAGE : CLI_OK;
  if (interval < 1 || interval > 3600 || count < 0)
    return cli_usage_error(g, "--interval is 1..3600 seconds, --count >= 0");
  int o = cli_open(g);
  if (o) return o;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  int worst = CLI_OK;
  for (int64_t n = 0; !stop_watch && (count == 0 || n < count); n++) {
    bool up = watch_health(g, interval);
    if (stop_watch) break;
    if (!up) worst = CLI_UNAVAILABLE;
    cli_watch_figures(g);
    fflush(stdout);
  }
  /* With --count, say whether the cache was up throughout; interrupted watches end 0. */
  return count ? worst : CLI_OK;
}

/* ---- bench ----------------------------------------------------------------------------------- */

enum { OP_SET, OP_GET, OP_INCR, OP_GET_OR_SET, NOPS };
static const char *op_names[NOPS] = {"set", "get", "incr", "get_or_set"};

typedef struct bench_cfg {
  rcache *c;
  int op;
  int64_t per_thread, keys, size;
  const char *value;
  char base[64];
} bench_cfg;

typedef struct bench_thread {
  bench_cfg *cfg;
  int id;
  int64_t *lat_us; /* per request */
  int64_t errors, unavailable;
  pthread_t th;
} bench_thread;

static rcache_status bench_loader(void *ud, rcache_value *out) {
  const bench_cfg *cfg = ud;
  out->data = malloc((size_t)cfg->size + 1);
  if (!out->data) return RCACHE_ENOMEM;
  memcpy(out->data, cfg->value, (size_t)cfg->size);
  out->data[cfg->size] = '\0';
  out->len = (size_t)cfg->size;
  return RCACHE_OK;
}

static void *bench_run(void *arg) {
  bench_thread *t = arg;
  bench_cfg *cfg = t->cfg;
  char key[128];
  for (int64_t i = 0; i < cfg->per_thread; i++) {
    int64_t k = (t->id * cfg->per_thread + i) % cfg->keys;
    snprintf(key, sizeof key, "%s%s%lld", cfg->base,
             cfg->op == OP_INCR ? "n:" : "k:", (long long)k);
    rcache_value v = {NULL, 0};
    int64_t n, t0 = cli_now_us();
    rcache_status s;
    switch (cfg->op) {
    case OP_SET:
      s = rcache_set(cfg->c, key, cfg->value, (size_t)cfg->size, 60);
      break;
    case OP_GET:
      s = rcache_get(cfg->c, key, &v);
      break;
    case OP_INCR:
      s = rcache_incr(cfg->c, key, 1, &n);
      break;
    default:
      s = rcache_get_or_set(cfg->c, key, 60, bench_loader, cfg, &v);
      break;
    }
    t->lat_us[i] = cli_now_us() - t0;
    rcache_value_free(&v);
    if (s < 0) t->errors++;
    if (s == RCACHE_EUNAVAILABLE || s == RCACHE_ETIMEOUT) t->unavailable++;
  }
  return NULL;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

typedef struct bench_result {
  double ops_per_s, p50_us, p99_us, max_us;
  int64_t errors, unavailable;
} bench_result;

static int bench_op(bench_cfg *cfg, int64_t threads, bench_result *res) {
  bench_thread *ts = calloc((size_t)threads, sizeof *ts);
  int64_t *all = malloc((size_t)(cfg->per_thread * threads) * sizeof *all);
  if (!ts || !all) {
    free(ts);
    free(all);
    return -1;
  }
  int64_t t0 = cli_now_us();
  int64_t started = 0;
  for (; started < threads; started++) {
    ts[started] = (bench_thread){cfg, (int)started, all + started * cfg->per_thread, 0, 0, 0};
    if (pthread_create(&ts[started].th, NULL, bench_run, &ts[started]) != 0) break;
  }
  for (int64_t i = 0; i < started; i++)
    pthread_join(ts[i].th, NULL);
  int64_t elapsed = cli_now_us() - t0;
  int64_t n = started * cfg->per_thread;
  memset(res, 0, sizeof *res);
  for (int64_t i = 0; i < started; i++) {
    res->errors += ts[i].errors;
    res->unavailable += ts[i].unavailable;
  }
  if (n > 0) {
    qsort(all, (size_t)n, sizeof *all, cmp_i64);
    res->ops_per_s = elapsed > 0 ? (double)n * 1e6 / (double)elapsed : 0;
    res->p50_us = (double)all[(n - 1) / 2];
    res->p99_us = (double)all[(n * 99 + 99) / 100 - 1];
    res->max_us = (double)all[n - 1];
  }
  free(ts);
  free(all);
  return started == threads ? 0 : -1;
}

static void bench_print(const cli *g, const rcache_health *h, const bench_cfg *cfg, int64_t threads,
                        const bench_result *res, bool json) {
  long long total = (long long)(cfg->per_thread * threads);
  if (json) {
    printf("{\"url\":");
    cli_json_str(stdout, g->url_shown, strlen(g->url_shown));
    printf(",\"mode\":\"%s\",\"server_version\":", h->mode);
    cli_json_str(stdout, h->server_version, strlen(h->server_version));
    printf(",\"requests\":%lld,\"threads\":%lld,\"size\":%lld,\"keys\":%lld,\"results\":[", total,
           (long long)threads, (long long)cfg->size, (long long)cfg->keys);
    for (int op = 0; op < NOPS; op++)
      printf("%s{\"op\":\"%s\",\"ops_per_sec\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
             "\"max_us\":%.1f,\"errors\":%lld}",
             op ? "," : "", op_names[op], res[op].ops_per_s, res[op].p50_us, res[op].p99_us,
             res[op].max_us, (long long)res[op].errors);
    printf("]}\n");
    return;
  }
  char version[CLI_SHOWN_MAX];
  cli_escape(h->server_version, version, sizeof version);
  printf("rcache bench: %s (%s%s%s), %lld requests per op, %lld thread%s, %lld-byte values, "
         "%lld keys\n\n",
         g->url_shown, h->mode, version[0] ? " " : "", version, total, (long long)threads,
         threads == 1 ? "" : "s", (long long)cfg->size, (long long)cfg->keys);
  printf("%-11s %12s %11s %11s %11s %8s\n", "op", "ops/s", "p50", "p99", "max", "errors");
  for (int op = 0; op < NOPS; op++) {
    char a[24], b[24], c[24];
    printf("%-11s %12.0f %11s %11s %11s %8lld\n", op_names[op], res[op].ops_per_s,
           cli_fmt_us(res[op].p50_us, a, sizeof a), cli_fmt_us(res[op].p99_us, b, sizeof b),
           cli_fmt_us(res[op].max_us, c, sizeof c), (long long)res[op].errors);
  }
}

int cmd_bench(cli *g, int argc, char **argv) {
  int64_t requests = 10000, threads = 1, size = 100, keys = 1000;
  bool json = false;
  const cli_opt opts[] = {{"--requests", "-n", OPT_I64, &requests},
                          {"--threads", "-t", OPT_I64, &threads},
                          {"--size", NULL, OPT_I64, &size},
                          {"--keys", NULL, OPT_I64, &keys},
                          {"--json", NULL, OPT_FLAG, &json}};
  char *pos[1];
  int np;
  int r = cli_parse(g, argc, argv, opts, 5, pos, &np, 0, 0);
  if (r) return r < 0 ? CLI_USAGE : CLI_OK;
  if (requests < 1 || requests > 100000000 || threads < 1 || threads > 256 || size < 0 ||
      size > 64 * 1024 * 1024 || keys < 1)
    return cli_usage_error(g, "need --requests 1..1e8, --threads 1..256, --size 0..64 MiB, "
                              "--keys >= 1");
  int o = cli_open(g);
  if (o) return o;
  rcache_health h;
  rcache_status hs = rcache_health_check(g->c, &h);
  if (hs != RCACHE_OK) return cli_fail_detail(g, "health check before the benchmark", hs, h.error);

  bench_cfg cfg = {g->c, 0, (requests + threads - 1) / threads, keys, size, NULL, ""};
  char *value = malloc((size_t)size + 1);
  if (!value) return cli_fail(g, "bench", RCACHE_ENOMEM);
  memset(value, 'x', (size_t)size);
  cfg.value = value;
  snprintf(cfg.base, sizeof cfg.base, "rcache-bench:%ld:", (long)getpid());

  bench_result res[NOPS];
  int rc = CLI_OK;
  bool ran_all = true;
  for (int op = 0; op < NOPS && ran_all; op++) {
    cfg.op = op;
    if (bench_op(&cfg, threads, &res[op]) != 0) {
      rc = cli_fail(g, "cannot start the benchmark threads", RCACHE_ENOMEM);
      ran_all = false;
      break;
    }
    if (res[op].unavailable)
      rc = CLI_UNAVAILABLE;
    else if (res[op].errors && rc == CLI_OK)
      rc = CLI_ERROR;
  }
  uint64_t removed = 0;
  rcache_delete_prefix(g->c, cfg.base, &removed);
  free(value);
  if (ran_all) bench_print(g, &h, &cfg, threads, res, json);
  if (rc == CLI_UNAVAILABLE)
    fprintf(stderr, "rcache bench: the cache became unavailable during the run (%s)\n",
            g->url_shown);
  return rc;
}
