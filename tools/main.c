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
    {"get", cmd_get, "KEY", "print the value stored at KEY (exit 1 when absent)",
     "The value is written to stdout exactly as stored (bytes); a newline is added only\n"
     "when stdout is a terminal."},
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
    {"scan", cmd_scan, "[PATTERN] [--limit N]",
     "list keys matching PATTERN (default *), one a line (exit 1 when none)",
     "Uses SCAN, never KEYS. --limit 0 (the default) lists all."},
    {"stats", cmd_stats, "[--json | --prometheus]",
     "health and this handle's statistics, as text, JSON or Prometheus", NULL},
    {"flush", cmd_flush, "[--yes] [--no-progress]",
     "delete the namespace's keys (--prefix), or the whole logical database",
     "Confirmation and progress as for del-prefix. Without a namespace this is FLUSHDB ASYNC."},
    {"bench", cmd_bench, "[--requests N] [--threads N] [--size BYTES] [--keys N] [--json]",
     "a quick benchmark of set, get, incr and get_or_set",
     "Keys are written under rcache-bench:<pid>: with a 60 s TTL and deleted afterwards."},
    {"watch", cmd_watch, "[--interval S] [--count N]",
     "print a line of health and latency every S seconds (like redis-cli --stat)",
     "Each line shows min/avg/max of ten pings spread over the interval. Stops after N lines\n"
     "(default: never) or on Ctrl-C."},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

#define DEFAULT_URL "redis://localhost:6379"

static const char global_help[] =
    "Global options (accepted before or after the command):\n"
    "  --url URL              cache URL (default: $REDIS_URL, else " DEFAULT_URL ";\n"
    "                         an empty REDIS_URL counts as unset, with a warning);\n"
    "                         redis://, rediss://, unix://, redis+sentinel://, memory://, none://\n"
    "  --prefix P             namespace: P is prepended to every key, pattern and flush\n"
    "  --timeout MS           command timeout in milliseconds\n"
    "  --connect-timeout MS   connect timeout in milliseconds\n"
    "  -v, --verbose          show the library's log messages on stderr\n"
    "  -h, --help             help (also: rcache COMMAND --help)\n"
    "  --                     ends the options (for a key or value starting with -)\n"
    "  --version              print the version\n"
    "\n"
    "Exit status: 0 ok/found, 1 miss (absent, nothing matched, declined), 2 usage error,\n"
    "3 cache unavailable, 4 other error. Errors go to stderr with the URL's password\n"
    "shown as ***.\n";

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

/* The password runs from the first ':' after "scheme://" to the '@' ending the user info.
 * Unencoded passwords may hold '@', '/', '?' or "://", so the LAST '@' of the URL is taken:
 * a stray '@' in a query can only make more of the URL hidden, never show a password. */
void cli_redact(const char *url, char *out, size_t outlen) {
  const char *p = strstr(url, "://");
  const char *at = p ? strrchr(p + 3, '@') : NULL;
  const char *colon = at ? memchr(p + 3, ':', (size_t)(at - (p + 3))) : NULL;
  if (!colon) {
    snprintf(out, outlen, "%s", url);
    return;
  }
  snprintf(out, outlen, "%.*s***%s", (int)(colon + 1 - url), url, at);
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

int cli_fail_detail(cli *g, const char *what, rcache_status s, const char *detail) {
  const char *text = rcache_strerror(s);
  if (!detail || !*detail || strcmp(detail, text) == 0) detail = log_detail();
  fprintf(stderr, "rcache %s: %s: %s", g->cmd ? g->cmd : "", what, text);
  if (detail && *detail && strcmp(detail, text) != 0) fprintf(stderr, ": %s", detail);
  fprintf(stderr, " (%s)\n", g->url_shown);
  return cli_exit_code(s);
}

int cli_fail(cli *g, const char *what, rcache_status s) {
  return cli_fail_detail(g, what, s, rcache_errmsg(g->c));
}

int cli_usage_error(cli *g, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "rcache %s: ", g->cmd ? g->cmd : "");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n(see rcache %s --help)\n", g->cmd ? g->cmd : "");
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
  if (o->kind == OPT_STR) {
    *(const char **)o->dst = v;
  } else if (!cli_parse_i64(v, (int64_t *)o->dst)) {
    return cli_usage_error(g, "%s: not an integer: '%s'", o->name, v), -1;
  }
  return inl ? 0 : 1;
}

int cli_parse(cli *g, int argc, char **argv, const cli_opt *opts, size_t nopts, char **pos,
              int *npos, int minpos, int maxpos) {
  const cli_opt globals[] = {
      {"--url", NULL, OPT_STR, &g->url},
      {"--prefix", NULL, OPT_STR, &g->prefix},
      {"--timeout", NULL, OPT_I64, &g->timeout_ms},
      {"--connect-timeout", NULL, OPT_I64, &g->connect_timeout_ms},
      {"--verbose", "-v", OPT_FLAG, &g->verbose},
  };
  bool only_pos = false;
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
    if (!is_opt) {
      if (*npos >= maxpos) return cli_usage_error(g, "unexpected argument '%s'", a), -1;
      pos[(*npos)++] = argv[i];
      continue;
    }
    const cli_opt *hit = NULL;
    for (size_t k = 0; k < nopts && !hit; k++)
      if (opt_is(a, opts[k].name, opts[k].alias, &inl)) hit = &opts[k];
    for (size_t k = 0; k < sizeof globals / sizeof globals[0] && !hit; k++)
      if (opt_is(a, globals[k].name, globals[k].alias, &inl)) hit = &globals[k];
    if (!hit) return cli_usage_error(g, "unknown option '%s'", a), -1;
    int used = opt_apply(g, hit, a, inl, i + 1 < argc ? argv[i + 1] : NULL);
    if (used < 0) return -1;
    i += used;
  }
  if (*npos < minpos) return cli_usage_error(g, "missing argument"), -1;
  if (g->timeout_ms < 0 || g->connect_timeout_ms < 0 || g->timeout_ms > 3600000 ||
      g->connect_timeout_ms > 3600000)
    return cli_usage_error(g, "timeouts are milliseconds between 0 and 3600000"), -1;
  return 0;
}

/* ---- the handle ------------------------------------------------------------------------------ */

static void log_to_stderr(int level, const char *msg, void *ud) {
  static const char *names[] = {"error", "warning", "info", "debug"};
  fprintf(stderr, "rcache: %s: %s\n", names[level >= 0 && level <= 3 ? level : 3], msg);
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
  cli_redact(g->url, g->url_shown, sizeof g->url_shown);
  rcache_options o;
  rcache_options_init(&o);
  if (g->prefix && *g->prefix) o.key_prefix = g->prefix;
  if (g->timeout_ms) o.command_timeout_ms = (int)g->timeout_ms;
  if (g->connect_timeout_ms) o.connect_timeout_ms = (int)g->connect_timeout_ms;
  o.client_name = "rcache-cli";
  o.log_fn = log_keep;
  o.log_ud = g;
  o.log_level = g->verbose ? RCACHE_LOG_DEBUG : RCACHE_LOG_WARN;
  rcache_status s = rcache_open(&g->c, g->url, &o);
  if (s != RCACHE_OK) return cli_fail(g, "cannot open the cache", s);
  return CLI_OK;
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
    int take = strchr(a, '=') || strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0 ? 1 : 2;
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
    fprintf(stderr, "rcache: unknown command '%s' (see rcache --help)\n", argv[i + 1]);
    return CLI_USAGE;
  }
  for (size_t k = 0; k < NCOMMANDS; k++) {
    if (strcmp(commands[k].name, argv[i]) != 0) continue;
    g.cmd = commands[k].name;
    int rc = commands[k].run(&g, argc - i, argv + i);
    rcache_close(g.c);
    return rc;
  }
  fprintf(stderr, "rcache: unknown command '%s' (see rcache --help)\n", argv[i]);
  return CLI_USAGE;
}
