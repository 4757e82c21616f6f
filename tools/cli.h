/* SPDX-License-Identifier: BSD-3-Clause */
/* The rcache command-line tool: shared declarations. The tool uses only the public API
 * (include/rcache/rcache.h), like any other program would. */
#ifndef RCACHE_CLI_H
#define RCACHE_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rcache/rcache.h"

/* Exit codes (documented in --help and docs/rcache.1; never renumbered). */
enum {
  CLI_OK = 0,          /* done, found */
  CLI_MISS = 1,        /* key absent, nothing matched, or the confirmation was declined */
  CLI_USAGE = 2,       /* bad arguments, bad URL */
  CLI_UNAVAILABLE = 3, /* the cache could not be reached within the deadline */
  CLI_ERROR = 4        /* any other error (wrong type, server error, I/O...) */
};

/* Options every command accepts, and the handle opened from them. */
typedef struct cli {
  const char *url;            /* --url, else $REDIS_URL, else redis://localhost:6379 */
  char url_shown[1024];       /* url with any password replaced by *** */
  const char *prefix;         /* --prefix: key_prefix (namespace) */
  int64_t connect_timeout_ms; /* --connect-timeout, 0 = library default */
  int64_t timeout_ms;         /* --timeout (command timeout), 0 = library default */
  bool verbose;               /* --verbose: pass the library's log messages through */
  const char *cmd;            /* the subcommand's name, for messages */
  rcache *c;                  /* opened by cli_open() */
} cli;

/* One command-line option of a subcommand. */
enum { OPT_FLAG, OPT_STR, OPT_I64 };
typedef struct cli_opt {
  const char *name;  /* "--ttl" */
  const char *alias; /* "-y" or NULL */
  int kind;
  void *dst; /* bool *, const char **, int64_t * */
} cli_opt;

typedef struct cli_cmd {
  const char *name;
  int (*run)(cli *g, int argc, char **argv);
  const char *synopsis; /* arguments, e.g. "KEY [--ttl S] [VALUE]" */
  const char *summary;  /* one line */
  const char *details;  /* extra help text, may be NULL */
} cli_cmd;

/* Parses argv[1..argc) of a subcommand: its own options (opts), the global ones, and up to
 * maxpos positional arguments into pos[] (*npos receives their number). Options may come
 * anywhere; "--" ends them. Returns -1 after printing a usage error, 1 after printing the
 * command's help (--help / -h), 0 otherwise. */
int cli_parse(cli *g, int argc, char **argv, const cli_opt *opts, size_t nopts, char **pos,
              int *npos, int minpos, int maxpos);
/* The cli_cmd for g->cmd (never NULL once main() dispatched). */
const cli_cmd *cli_current(const cli *g);
void cli_help(const cli_cmd *cmd, FILE *f);

/* Opens g->c from g's options. Returns CLI_OK or an exit code after printing why. */
int cli_open(cli *g);

/* Prints "rcache <cmd>: <what>: <status text>[: detail] (<url>)" to stderr and returns the
 * exit code for s. */
int cli_fail(cli *g, const char *what, rcache_status s);
/* The same with an explicit detail (e.g. rcache_health.error); falls back to the library's
 * last logged warning when detail is empty. */
int cli_fail_detail(cli *g, const char *what, rcache_status s, const char *detail);
/* Prints a usage error "rcache <cmd>: <msg>" with a pointer to --help; returns CLI_USAGE. */
int cli_usage_error(cli *g, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int cli_exit_code(rcache_status s);

/* Copies url to out with the password of scheme://user:password@ replaced by ***. */
void cli_redact(const char *url, char *out, size_t outlen);
/* Backslash-escapes the Redis glob metacharacters * ? [ ] \ of lit into out; false when
 * out is too small. */
bool cli_glob_escape(const char *lit, char *out, size_t outlen);
/* Strict decimal int64 (optional sign); false on junk or overflow. */
bool cli_parse_i64(const char *s, int64_t *out);
/* Monotonic clock in microseconds. */
int64_t cli_now_us(void);
/* Writes a JSON string literal (quotes included) for len bytes of s. */
void cli_json_str(FILE *f, const char *s, size_t len);

/* The subcommands (cmd_*.c). */
int cmd_health(cli *g, int argc, char **argv);
int cmd_get(cli *g, int argc, char **argv);
int cmd_set(cli *g, int argc, char **argv);
int cmd_del(cli *g, int argc, char **argv);
int cmd_del_prefix(cli *g, int argc, char **argv);
int cmd_del_pattern(cli *g, int argc, char **argv);
int cmd_incr(cli *g, int argc, char **argv);
int cmd_decr(cli *g, int argc, char **argv);
int cmd_exists(cli *g, int argc, char **argv);
int cmd_ttl(cli *g, int argc, char **argv);
int cmd_scan(cli *g, int argc, char **argv);
int cmd_stats(cli *g, int argc, char **argv);
int cmd_flush(cli *g, int argc, char **argv);
int cmd_bench(cli *g, int argc, char **argv);
int cmd_watch(cli *g, int argc, char **argv);

#endif
