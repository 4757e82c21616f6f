/* SPDX-License-Identifier: BSD-3-Clause */
/* rcache CLI: commands on single keys, and scan. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define PARSE(opts, nopts, minpos, maxpos)                                                         \
  char *pos[64];                                                                                   \
  int npos;                                                                                        \
  do {                                                                                             \
    int _r = cli_parse(g, argc, argv, opts, nopts, pos, &npos, minpos, maxpos);                    \
    if (_r) return _r < 0 ? CLI_USAGE : CLI_OK;                                                    \
    int _o = cli_open(g);                                                                          \
    if (_o) return _o;                                                                             \
  } while (0)

/* --raw and --escape: what get and scan write is escaped (tools/text.c) when stdout is a
 * terminal, so that a value cannot drive the terminal and a key holding a newline does not
 * read as two; raw bytes otherwise, so that pipes and files get exactly what is stored. */
typedef struct {
  bool raw, escape;
} out_mode;

/* true: write raw; -1 after a usage error */
static int out_raw(cli *g, const out_mode *m) {
  if (m->raw && m->escape) return cli_usage_error(g, "--raw and --escape exclude each other"), -1;
  return m->raw || (!m->escape && !isatty(STDOUT_FILENO));
}

int cmd_get(cli *g, int argc, char **argv) {
  out_mode m = {false, false};
  const cli_opt opts[] = {{"--raw", NULL, OPT_FLAG, &m.raw},
                          {"--escape", NULL, OPT_FLAG, &m.escape}};
  PARSE(opts, 2, 1, 1);
  int raw = out_raw(g, &m);
  if (raw < 0) return CLI_USAGE;
  rcache_value v = {NULL, 0};
  rcache_status s = rcache_get(g->c, pos[0], &v);
  if (s == RCACHE_MISS) return CLI_MISS;
  if (s != RCACHE_OK) return cli_fail(g, pos[0], s);
  bool ok = cli_write_text(stdout, v.data, v.len, raw);
  /* a terminal gets its line ended; escaped output never ends in a raw newline */
  bool nl = isatty(STDOUT_FILENO) && (!raw || v.len == 0 || v.data[v.len - 1] != '\n');
  if (ok && nl) ok = fputc('\n', stdout) != EOF;
  rcache_value_free(&v);
  return fflush(stdout) == 0 && ok ? CLI_OK : CLI_ERROR;
}

/* Reads all of stdin into a malloc'd buffer. */
static char *read_stdin(size_t *len) {
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    size_t got = fread(buf + n, 1, cap - n, stdin);
    n += got;
    if (got == 0) break;
    if (n == cap) {
      char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
      if (!nb) free(buf);
      buf = nb;
      cap *= 2;
    }
  }
  if (buf && ferror(stdin)) {
    free(buf);
    return NULL;
  }
  *len = n;
  return buf;
}

int cmd_set(cli *g, int argc, char **argv) {
  int64_t ttl = 0;
  const cli_opt opts[] = {{"--ttl", NULL, OPT_I64, &ttl}};
  char *pos_[2];
  int np;
  int r = cli_parse(g, argc, argv, opts, 1, pos_, &np, 1, 2);
  if (r) return r < 0 ? CLI_USAGE : CLI_OK;
  if (ttl < 0) return cli_usage_error(g, "--ttl must be >= 0 (0 = no expiry)");
  if (np == 1 && isatty(STDIN_FILENO))
    return cli_usage_error(g, "no VALUE given and stdin is a terminal");
  size_t len;
  char *data = NULL;
  if (np == 2) {
    len = strlen(pos_[1]);
  } else if (!(data = read_stdin(&len))) {
    fprintf(stderr, "rcache set: cannot read the value from stdin\n");
    return CLI_ERROR;
  }
  int o = cli_open(g);
  if (o) {
    free(data);
    return o;
  }
  rcache_status s = rcache_set(g->c, pos_[0], data ? data : pos_[1], len, ttl);
  free(data);
  return s == RCACHE_OK ? CLI_OK : cli_fail(g, pos_[0], s);
}

int cmd_del(cli *g, int argc, char **argv) {
  char **pos = malloc((size_t)argc * sizeof *pos); /* as many keys as arguments */
  if (!pos) return cli_fail(g, "del", RCACHE_ENOMEM);
  int npos, rc = cli_parse(g, argc, argv, NULL, 0, pos, &npos, 1, argc);
  if (rc) { /* a usage error, or --help */
    free(pos);
    return rc < 0 ? CLI_USAGE : CLI_OK;
  }
  rc = cli_open(g);
  int deleted = 0;
  for (int i = 0; !rc && i < npos; i++) {
    rcache_status s = rcache_delete(g->c, pos[i]);
    if (s == RCACHE_OK)
      deleted++;
    else if (s != RCACHE_MISS)
      rc = cli_fail(g, pos[i], s);
  }
  free(pos);
  if (rc) return rc;
  printf("%d\n", deleted);
  return deleted ? CLI_OK : CLI_MISS;
}

static int incr_decr(cli *g, int argc, char **argv, bool decr) {
  int64_t by = 1;
  const cli_opt opts[] = {{"--by", NULL, OPT_I64, &by}};
  PARSE(opts, 1, 1, 1);
  int64_t out;
  rcache_status s =
      decr ? rcache_decr(g->c, pos[0], by, &out) : rcache_incr(g->c, pos[0], by, &out);
  if (s != RCACHE_OK) return cli_fail(g, pos[0], s);
  printf("%lld\n", (long long)out);
  return CLI_OK;
}

int cmd_incr(cli *g, int argc, char **argv) {
  return incr_decr(g, argc, argv, false);
}

int cmd_decr(cli *g, int argc, char **argv) {
  return incr_decr(g, argc, argv, true);
}

int cmd_exists(cli *g, int argc, char **argv) {
  PARSE(NULL, 0, 1, 1);
  bool e;
  rcache_status s = rcache_exists(g->c, pos[0], &e);
  if (s != RCACHE_OK) return cli_fail(g, pos[0], s);
  printf("%d\n", e ? 1 : 0);
  return e ? CLI_OK : CLI_MISS;
}

int cmd_ttl(cli *g, int argc, char **argv) {
  PARSE(NULL, 0, 1, 1);
  int64_t t;
  rcache_status s = rcache_ttl(g->c, pos[0], &t);
  if (s != RCACHE_OK) return cli_fail(g, pos[0], s);
  printf("%lld\n", (long long)t);
  return t == -2 ? CLI_MISS : CLI_OK;
}

typedef struct {
  uint64_t n;
  bool raw, write_error;
} scan_out;

static bool print_key(const char *key, size_t len, void *ud) {
  scan_out *so = ud;
  so->n++;
  if (!cli_write_text(stdout, key, len, so->raw) || fputc('\n', stdout) == EOF) {
    so->write_error = true; /* e.g. `rcache scan | head`: stop quietly */
    return false;
  }
  return true;
}

int cmd_scan(cli *g, int argc, char **argv) {
  int64_t limit = 0;
  out_mode m = {false, false};
  const cli_opt opts[] = {{"--limit", NULL, OPT_I64, &limit},
                          {"--raw", NULL, OPT_FLAG, &m.raw},
                          {"--escape", NULL, OPT_FLAG, &m.escape}};
  PARSE(opts, 3, 0, 1);
  if (limit < 0) return cli_usage_error(g, "--limit must be >= 0 (0 = all)");
  int raw = out_raw(g, &m);
  if (raw < 0) return CLI_USAGE;
  scan_out so = {0, raw, false};
  rcache_status s = rcache_scan(g->c, npos ? pos[0] : "*", (uint64_t)limit, print_key, &so);
  if (s != RCACHE_OK) return cli_fail(g, npos ? pos[0] : "*", s);
  if (fflush(stdout) != 0 || so.write_error) return CLI_ERROR;
  return so.n ? CLI_OK : CLI_MISS;
}
