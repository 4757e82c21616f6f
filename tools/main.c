/* SPDX-License-Identifier: BSD-3-Clause */
/* rcache — the command-line tool: option parsing, dispatch, exit codes, error messages. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const cli_cmd commands[] = {
    {"health", cmd_health, "[--json]", "ping the cache: latency, mode, server version",
     "Exit status 0 when healthy, 3 when the cache cannot be reached, 4 on other errors."},
    {"get", cmd_get, "KEY [--raw | --escape]", "print the value stored at KEY (exit 1 when absent)",
     "Into a pipe or a file the value is written exactly as stored (bytes). On a terminal it\n"
     "is escaped - \\\\ \\n \\r \\t, \\xNN for other control bytes and bytes that are not\n"
     "UTF-8, \\uNNNN for C1 controls and bidirectional overrides - and ends with a newline.\n"
     "--raw writes the bytes to a terminal too; --escape escapes into a pipe as well."},
    {"set", cmd_set, "KEY [VALUE] [--ttl S]", "store VALUE (or stdin) at KEY",
     "Without VALUE the value is read from stdin (binary-safe). --ttl 0 (the default)\n"
     "means no expiry."},
    {"del", cmd_del, "KEY...", "delete keys (exit 1 when none existed)", NULL},
    {"del-prefix", cmd_del_prefix, "PREFIX [--yes] [--no-progress]",
     "delete every key starting with PREFIX",
     "PREFIX is literal: glob characters in it match themselves. \"user:12\" also matches\n"
     "\"user:123\"; say \"user:12:\" to mean user 12's keys only.\n"
     "Asks for confirmation (showing how many keys match) unless --yes; without --yes and\n"
     "with stdin not a terminal it refuses (exit 2). Shows progress on stderr when stderr\n"
     "is a terminal, at a price: with progress keys are deleted one per round trip, without\n"
     "it (--no-progress, or stderr not a terminal) in the library's batched SCAN + UNLINK,\n"
     "several times faster on millions of keys."},
    {"del-pattern", cmd_del_pattern, "GLOB [--yes] [--no-progress]",
     "delete every key matching the Redis glob GLOB",
     "GLOB uses Redis' rules: * ? [a-z] [^x] and \\ escapes. Confirmation and progress as\n"
     "for del-prefix."},
    {"incr", cmd_incr, "KEY [--by N]", "add N (default 1) to the integer at KEY, print it", NULL},
    {"decr", cmd_decr, "KEY [--by N]", "subtract N (default 1) from the integer at KEY, print it",
     NULL},
    {"exists", cmd_exists, "KEY", "print 1 and exit 0 when KEY exists, else print 0, exit 1", NULL},
    {"ttl", cmd_ttl, "KEY", "print KEY's remaining seconds (-1: no expiry; -2 and exit 1: absent)",
     NULL},
    {"scan", cmd_scan, "[PATTERN] [--limit N] [--raw | --escape]",
     "list keys matching PATTERN (default *), one a line (exit 1 when none)",
     "Uses SCAN, never KEYS. --limit 0 (the default) lists all. Keys are escaped as for get\n"
     "on a terminal (a key holding a newline shows as one line) and raw into a pipe; --escape\n"
     "makes a pipe's list unambiguous too, --raw writes raw bytes to a terminal."},
    {"stats", cmd_stats, "[--json | --prometheus] [--clients]",
     "health and this handle's statistics, as text, JSON or Prometheus",
     "--clients lists instead the figures every running process publishes under the\n"
     "namespace (--prefix) - handles opened with publish_stats_s (e.g. the URL option\n"
     "?publish_stats_s=5): client, host, pid, age, gets with p50/p99, hit ratio, calls in\n"
     "flight and queued, errors. With --json, the published documents as a JSON array.\n"
     "Reads at most 256 (SCAN, never KEYS); exit 1 when none publishes."},
    {"flush", cmd_flush, "[--yes] [--no-progress]",
     "delete the namespace's keys (--prefix), or the whole logical database",
     "Confirmation and progress as for del-prefix. Without a namespace this is FLUSHDB ASYNC."},
    {"bench", cmd_bench, "[--requests N] [--threads N] [--size BYTES] [--keys N] [--json]",
     "a quick benchmark of set, get, incr and get_or_set",
     "Keys are written under rcache-bench:<pid>: with a 60 s TTL and deleted afterwards."},
    {"watch", cmd_watch, "[--interval S] [--count N]",
     "every S seconds (default 1): health, latency, per-operation p50/p99, hit ratios",
     "Each refresh prints a line of health like redis-cli --stat (status, min/avg/max of ten\n"
     "pings spread over the interval, breaker, reconnects, errors), then, for every process\n"
     "that publishes its figures under the namespace (option publish_stats_s, see\n"
     "stats --clients), each operation's count and p50/p99 (upper bounds of the histogram's\n"
     "buckets) and the hit ratio overall and per key family (key_family_segments); when none\n"
     "publishes, this CLI's own handle's. On a terminal the screen is redrawn in place. Stops\n"
     "after N refreshes (default: never) or on Ctrl-C; with --count, exit 3 when a ping failed."},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

#define DEFAULT_URL "redis://localhost:6379"

static const char global_help[] =
    "Global options (accepted before or after the command):\n"
    "  --url URL              cache URL (default: $REDIS_URL, else " DEFAULT_URL ";\n"
    "                         an empty REDIS_URL counts as unset, with a warning);\n"
    "                         redis://, rediss://, unix://, redis+sentinel://, memory://, none://\n"
    "  --prefix P             namespace: P is prepended to every key, pattern and flush\n"
    "  --timeout MS           command timeout in milliseconds (1..3600000)\n"
    "  --connect-timeout MS   connect timeout in milliseconds (1..3600000)\n"
    "  --askpass              ask for the password on the terminal (echo off)\n"
    "  --password-file PATH   read the password from the first line of PATH\n"
    "  -v, --verbose          show the library's log messages on stderr\n"
    "  -h, --help             help (also: rcache COMMAND --help)\n"
    "  --                     ends the options (for a key or value starting with -)\n"
    "  --version              print the version\n"
    "\n"
    "Password: from --askpass or --password-file, else from $RCACHE_PASSWORD when the URL\n"
    "has none; it goes into the URL after its user name (redis://app@host), and so into\n"
    "neither the process list nor the shell's history.\n"
    "\n"
    "Exit status: 0 ok/found, 1 miss (absent, nothing matched, declined), 2 usage error,\n"
    "3 cache unavailable, 4 other error. Errors go to stderr; in them, whatever looks like\n"
    "credentials (from a ':' to the last '@') is shown as *** and control bytes escaped.\n";

static void main_help(FILE *f) {
  fprintf(f, "usage: rcache [options] COMMAND [args]\n\nCommands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\n%s", global_help);
}

void cli_help(const cli_cmd *cmd, FILE *f) {
  fprintf(f, "usage: rcache [options] %s %s\n\n%s.\n", cmd->name, cmd->synopsis, cmd->summary);
  if (cmd->details) fprintf(f, "\n%s\n", cmd->details);
  fprintf(f, "\n%s", global_help);
}

const cli_cmd *cli_current(const cli *g) {
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(commands[i].name, g->cmd) == 0) return &commands[i];
  return &commands[0];
}

/* ---- small pure helpers ---------------------------------------------------------------------- */

bool cli_parse_i64(const char *s, int64_t *out) {
  if (!s || !*s) return false;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || end == s) return false;
  *out = (int64_t)v;
  return true;
}

int64_t cli_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool cli_glob_escape(const char *lit, char *out, size_t outlen) {
  size_t o = 0;
  for (const char *p = lit; *p; p++) {
    if (strchr("*?[]\\", *p)) {
      if (o + 1 >= outlen) return false;
      out[o++] = '\\';
    }
    if (o + 1 >= outlen) return false;
    out[o++] = *p;
  }
  out[o] = '\0';
  return true;
}

void cli_json_str(FILE *f, const char *s, size_t len) {
  fputc('"', f);
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\')
      fprintf(f, "\\%c", ch);
    else if (ch == '\n')
      fputs("\\n", f);
    else if (ch < 0x20 || ch == 0x7f)
      fprintf(f, "\\u%04x", ch);
    else
      fputc(ch, f);
  }
  fputc('"', f);
}

/* ---- errors ---------------------------------------------------------------------------------- */

int cli_exit_code(rcache_status s) {
  switch (s) {
  case RCACHE_OK:
    return CLI_OK;
  case RCACHE_MISS:
    return CLI_MISS;
  case RCACHE_EURL:
  case RCACHE_EINVAL:
    return CLI_USAGE;
  case RCACHE_EUNAVAILABLE:
  case RCACHE_ETIMEOUT:
    return CLI_UNAVAILABLE;
  default:
    return CLI_ERROR;
  }
}

/* The library's last warning or error (its log callback), as a detail for messages:
 * "cache unavailable: cannot connect to h:p: Connection refused (server ...); ..." is
 * shortened to "cannot connect to h:p: Connection refused". */
static char last_log[512];

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *log_detail(void) {
  static char out[512];
  char copy[sizeof last_log];
  pthread_mutex_lock(&log_mu);
  memcpy(copy, last_log, sizeof copy);
  pthread_mutex_unlock(&log_mu);
  const char *m = copy;
  if (strncmp(m, "cache unavailable: ", 19) == 0) m += 19;
  const char *end = strstr(m, " (server ");
  snprintf(out, sizeof out, "%.*s", end ? (int)(end - m) : (int)strlen(m), m);
  return out;
}

/* "rcache get" or, before a command was found, "rcache" */
static const char *tool_name(const cli *g, char *buf, size_t n) {
  snprintf(buf, n, "rcache%s%s", g->cmd && *g->cmd ? " " : "", g->cmd ? g->cmd : "");
  return buf;
}

int cli_fail_detail(cli *g, const char *what, rcache_status s, const char *detail) {
  const char *text = rcache_strerror(s);
  size_t tl = strlen(text);
  if (!detail || !*detail || strcmp(detail, text) == 0) detail = log_detail();
  char msg[CLI_SHOWN_MAX], shown[CLI_SHOWN_MAX], name[64], w[CLI_SHOWN_MAX];
  if (!*detail || strcmp(detail, text) == 0)
    snprintf(msg, sizeof msg, "%s", text);
  else if (strncmp(detail, text, tl) == 0 && (detail[tl] == ' ' || detail[tl] == ':'))
    snprintf(msg, sizeof msg, "%s", detail); /* "cache unavailable (breaker open ...)" */
  else if (s == RCACHE_EURL && strncmp(detail, "URL: ", 5) == 0)
    snprintf(msg, sizeof msg, "%s: %s", text, detail + 5);
  else
    snprintf(msg, sizeof msg, "%s: %s", text, detail);
  cli_escape(msg, shown, sizeof shown); /* the library's text holds no password */
  cli_shown(what, w, sizeof w);
  fprintf(stderr, "%s: %s%s%s", tool_name(g, name, sizeof name), w, *w ? ": " : "", shown);
  if (!strstr(shown, g->url_shown)) fprintf(stderr, " (%s)", g->url_shown);
  fputc('\n', stderr);
  return cli_exit_code(s);
}

int cli_fail(cli *g, const char *what, rcache_status s) {
  return cli_fail_detail(g, what, s, rcache_errmsg(g->c));
}

int cli_usage_error(cli *g, const char *fmt, ...) {
  va_list ap;
  char name[64];
  fprintf(stderr, "%s: ", tool_name(g, name, sizeof name));
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n(see %s --help)\n", name);
  return CLI_USAGE;
}

/* ---- options --------------------------------------------------------------------------------- */

/* Matches "--name" or "--name=value"; *inline_val gets the value after '=' if any. */
static bool opt_is(const char *arg, const char *name, const char *alias, const char **inline_val) {
  size_t n = strlen(name);
  *inline_val = NULL;
  if (alias && strcmp(arg, alias) == 0) return true;
  if (strncmp(arg, name, n) != 0) return false;
  if (arg[n] == '\0') return true;
  if (arg[n] == '=') {
    *inline_val = arg + n + 1;
    return true;
  }
  return false;
}

/* Applies one option; returns the number of extra argv entries consumed, or -1. */
static int opt_apply(cli *g, const cli_opt *o, const char *arg, const char *inl, const char *next) {
  if (o->kind == OPT_FLAG) {
    if (inl) return cli_usage_error(g, "%s takes no value", o->name), -1;
    *(bool *)o->dst = true;
    return 0;
  }
  const char *v = inl ? inl : next;
  if (!v) return cli_usage_error(g, "%s needs a value", o->name), -1;
  char shown[CLI_SHOWN_MAX];
  cli_shown(v, shown, sizeof shown);
  int64_t *n = o->dst;
  if (o->kind == OPT_STR) {
    *(const char **)o->dst = v;
  } else if (!cli_parse_i64(v, n)) {
    return cli_usage_error(g, "%s: not an integer: '%s'", o->name, shown), -1;
  } else if (o->kind == OPT_MS && (*n < 1 || *n > 3600000)) {
    /* 0 is refused, as rcache_open() refuses it, rather than read as "the default" */
    return cli_usage_error(g, "%s: milliseconds from 1 to 3600000, not %s", o->name, shown), -1;
  }
  return inl ? 0 : 1;
}

int cli_parse(cli *g, int argc, char **argv, const cli_opt *opts, size_t nopts, char **pos,
              int *npos, int minpos, int maxpos) {
  const cli_opt globals[] = {
      {"--url", NULL, OPT_STR, &g->url},
      {"--prefix", NULL, OPT_STR, &g->prefix},
      {"--timeout", NULL, OPT_MS, &g->timeout_ms},
      {"--connect-timeout", NULL, OPT_MS, &g->connect_timeout_ms},
      {"--verbose", "-v", OPT_FLAG, &g->verbose},
      {"--password-file", NULL, OPT_STR, &g->password_file},
      {"--askpass", NULL, OPT_FLAG, &g->askpass},
  };
  bool only_pos = false;
  char shown[CLI_SHOWN_MAX];
  *npos = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *inl;
    if (!only_pos && strcmp(a, "--") == 0) {
      only_pos = true;
      continue;
    }
    if (!only_pos && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
      cli_help(cli_current(g), stdout);
      return 1;
    }
    bool is_opt = !only_pos && (strncmp(a, "--", 2) == 0 ||
                                (a[0] == '-' && a[1] >= 'a' && a[1] <= 'z' && a[2] == '\0'));
    cli_shown(a, shown, sizeof shown);
    if (!is_opt) {
      if (*npos >= maxpos) return cli_usage_error(g, "unexpected argument '%s'", shown), -1;
      pos[(*npos)++] = argv[i];
      continue;
    }
    const cli_opt *hit = NULL;
    for (size_t k = 0; k < nopts && !hit; k++)
      if (opt_is(a, opts[k].name, opts[k].alias, &inl)) hit = &opts[k];
    for (size_t k = 0; k < sizeof globals / sizeof globals[0] && !hit; k++)
      if (opt_is(a, globals[k].name, globals[k].alias, &inl)) hit = &globals[k];
    if (!hit) return cli_usage_error(g, "unknown option '%s'", shown), -1;
    int used = opt_apply(g, hit, a, inl, i + 1 < argc ? argv[i + 1] : NULL);
    if (used < 0) return -1;
    i += used;
  }
  if (*npos < minpos) return cli_usage_error(g, "missing argument"), -1;
  return 0;
}

/* ---- the handle ------------------------------------------------------------------------------ */

static void log_to_stderr(int level, const char *msg, void *ud) {
  static const char *names[] = {"error", "warning", "info", "debug"};
  char shown[CLI_SHOWN_MAX]; /* the library masks passwords; server text may hold escapes */
  cli_escape(msg, shown, sizeof shown);
  fprintf(stderr, "rcache: %s: %s\n", names[level >= 0 && level <= 3 ? level : 3], shown);
}

/* Keeps the last warning/error for cli_fail(); the library logs state changes once, from
 * the calling thread or a background one, hence the lock (log_mu). */

static void log_keep(int level, const char *msg, void *ud) {
  cli *g = ud;
  if (level <= RCACHE_LOG_WARN) {
    pthread_mutex_lock(&log_mu);
    snprintf(last_log, sizeof last_log, "%s", msg);
    pthread_mutex_unlock(&log_mu);
  }
  if (g->verbose) log_to_stderr(level, msg, NULL);
}

int cli_open(cli *g) {
  if (!g->url) { /* the library's rule for rcache_open(NULL), so that the URL can be shown */
    const char *env = getenv("REDIS_URL");
    g->url = env && *env ? env : DEFAULT_URL;
    if (env && !*env) /* an unfilled template: never none:// (only --url "" or none:// is) */
      log_to_stderr(RCACHE_LOG_WARN, "REDIS_URL is set but empty: using " DEFAULT_URL, NULL);
  }
  cli_shown(g->url, g->url_shown, sizeof g->url_shown);
  char *url_pw;
  int rc = cli_url_with_password(g, &url_pw);
  if (rc != CLI_OK) return rc;
  rcache_options o;
  rcache_options_init(&o);
  if (g->prefix && *g->prefix) o.key_prefix = g->prefix;
  if (g->timeout_ms) o.command_timeout_ms = (int)g->timeout_ms;
  if (g->connect_timeout_ms) o.connect_timeout_ms = (int)g->connect_timeout_ms;
  o.client_name = "rcache-cli";
  /* an operator's tool: values up to what `bench --size` and `set` accept (64 MiB), above the
   * library's 4 MiB default for applications */
  o.max_value_bytes = (size_t)64 << 20;
  o.log_fn = log_keep;
  o.log_ud = g;
  o.log_level = g->verbose ? RCACHE_LOG_DEBUG : RCACHE_LOG_WARN;
  rcache_status s = rcache_open(&g->c, url_pw ? url_pw : g->url, &o);
  cli_url_free(url_pw); /* rcache_open() keeps its own copy */
  if (s != RCACHE_OK) return cli_fail(g, "cannot open the cache", s);
  return CLI_OK;
}

static int unknown_command(const char *name) {
  char shown[CLI_SHOWN_MAX];
  cli_shown(name, shown, sizeof shown);
  fprintf(stderr, "rcache: unknown command '%s' (see rcache --help)\n", shown);
  return CLI_USAGE;
}

int main(int argc, char **argv) {
  cli g = {0};
  int i = 1;
  /* global options before the command */
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      main_help(stdout);
      return CLI_OK;
    }
    if (strcmp(a, "--version") == 0) {
      printf("rcache %s\n", rcache_version());
      return CLI_OK;
    }
    /* reuse the subcommand parser on a one-option slice */
    bool flag = strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0 || strcmp(a, "--askpass") == 0;
    int take = strchr(a, '=') || flag ? 1 : 2;
    if (i + take > argc) take = argc - i;
    char *slice[3] = {"rcache", argv[i], take == 2 ? argv[i + 1] : NULL};
    char *none[1];
    int np;
    g.cmd = "";
    if (cli_parse(&g, take + 1, slice, NULL, 0, none, &np, 0, 0) != 0) return CLI_USAGE;
    i += take - 1;
  }
  if (i >= argc) {
    main_help(stderr);
    return CLI_USAGE;
  }
  if (strcmp(argv[i], "help") == 0) {
    if (i + 1 >= argc) {
      main_help(stdout);
      return CLI_OK;
    }
    for (size_t k = 0; k < NCOMMANDS; k++)
      if (strcmp(commands[k].name, argv[i + 1]) == 0) {
        cli_help(&commands[k], stdout);
        return CLI_OK;
      }
    return unknown_command(argv[i + 1]);
  }
  for (size_t k = 0; k < NCOMMANDS; k++) {
    if (strcmp(commands[k].name, argv[i]) != 0) continue;
    g.cmd = commands[k].name;
    int rc = commands[k].run(&g, argc - i, argv + i);
    rcache_close(g.c);
    return rc;
  }
  return unknown_command(argv[i]);
}
