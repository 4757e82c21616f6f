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

/* Longest text cli_shown() produces (with its NUL). */
#define CLI_SHOWN_MAX 1024
/* Longest escape cli_escape_unit() writes, with its NUL (backslash, u, 4 hex digits). */
#define CLI_ESC_MAX 8

/* Options every command accepts, and the handle opened from them. */
typedef struct cli {
  const char *url;               /* --url, else $REDIS_URL, else redis://localhost:6379 */
  char url_shown[CLI_SHOWN_MAX]; /* url through cli_shown(): password replaced by *** */
  const char *password_file;     /* --password-file */
  bool askpass;                  /* --askpass */
  const char *prefix;            /* --prefix: key_prefix (namespace) */
  int64_t connect_timeout_ms;    /* --connect-timeout, 0 = not given: the library's default */
  int64_t timeout_ms;            /* --timeout (command timeout), 0 = not given */
  bool verbose;                  /* --verbose: pass the library's log messages through */
  const char *cmd;               /* the subcommand's name, for messages */
  rcache *c;                     /* opened by cli_open() */
} cli;

/* One command-line option of a subcommand. */
/* OPT_MS: milliseconds, 1..3600000 (a timeout). */
enum { OPT_FLAG, OPT_STR, OPT_I64, OPT_MS };
typedef struct cli_opt {
  const char *name;  /* "--ttl" */
  const char *alias; /* "-y" or NULL */
  int kind;
  void *dst; /* bool *, const char **, int64_t * (OPT_I64, OPT_MS) */
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
 * exit code for s. Each thing is said once: a detail that starts with the status text
 * replaces it, and the URL is left out when the detail names it already. what (an argument,
 * left out when empty) goes through cli_shown(), the rest through cli_escape(). */
int cli_fail(cli *g, const char *what, rcache_status s);
/* The same with an explicit detail (e.g. rcache_health.error); falls back to the library's
 * last logged warning when detail is empty. */
int cli_fail_detail(cli *g, const char *what, rcache_status s, const char *detail);
/* Prints a usage error "rcache <cmd>: <msg>" with a pointer to --help; returns CLI_USAGE.
 * An argument quoted in msg must have gone through cli_shown() first. */
int cli_usage_error(cli *g, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int cli_exit_code(rcache_status s);

/* tools/text.c: the one rule for what reaches a terminal (see there). */
/* Copies s to out with any credentials (from the first ':' to the last '@') as ***. */
void cli_redact(const char *s, char *out, size_t outlen);
/* cli_redact(), then escaped as cli_write_text() does, truncated with "..." to outlen. For
 * every argument, URL or server text quoted in a message. */
void cli_shown(const char *s, char *out, size_t outlen);
/* Only the escaping, for text that is not an argument (the library's messages, which never
 * hold a password, and server text). */
void cli_escape(const char *s, char *out, size_t outlen);
/* Writes len bytes of s to f, escaped unless raw; false on a write error. */
bool cli_write_text(FILE *f, const char *s, size_t len, bool raw);
/* The escape for the unit (one byte, or one UTF-8 sequence) at s into esc ("" when the unit
 * is shown as it is); returns the unit's length (>= 1; len must be >= 1). */
size_t cli_escape_unit(const char *s, size_t len, char esc[CLI_ESC_MAX]);

/* tools/password.c: --askpass, --password-file, $RCACHE_PASSWORD. */
/* Into *url_out (malloc'd, for rcache_open, to be freed with cli_url_free) the URL g->url
 * with the password of the chosen source, or NULL when there is none. Returns CLI_OK or an
 * exit code after printing why. */
int cli_url_with_password(cli *g, char **url_out);
/* Wipes and frees a URL from cli_url_with_password() (NULL-safe). */
void cli_url_free(char *url);
/* Pure: url with password (pwlen bytes, percent-encoded) put into its user info. Returns
 * 0 and *out (malloc'd), 1 when url already has a password, 2 when its scheme takes none
 * (memory://, none://), 3 when url is not a URL the library would accept (passed on as it
 * is, for the library's message), -1 when out of memory. */
int cli_inject_password(const char *url, const char *pw, size_t pwlen, char **out);
/* Overwrites n bytes at p with zeros in a way the compiler cannot drop. */
void cli_wipe(void *p, size_t n);
/* Backslash-escapes the Redis glob metacharacters * ? [ ] \ of lit into out; false when
 * out is too small. */
bool cli_glob_escape(const char *lit, char *out, size_t outlen);
/* Strict decimal int64 (optional sign); false on junk or overflow. */
bool cli_parse_i64(const char *s, int64_t *out);
/* A duration for people: "812.0 µs", "3.41 ms", "1.20 s" (cmd_info.c). */
const char *cli_fmt_us(double us, char *buf, size_t size);
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
/* cmd_clients.c: `stats --clients` on the opened g->c; exit 1 when none publishes. */
int cmd_stats_clients(cli *g, bool json);
/* cmd_clients.c, under each health line of `watch`: every publishing process's per-operation
 * p50/p99 and hit ratios overall and per key family, or this CLI's own handle's when none
 * publishes or the published figures cannot be read. */
void cli_watch_figures(cli *g);

#endif
