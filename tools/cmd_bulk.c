/* SPDX-License-Identifier: BSD-3-Clause */
/* rcache CLI: deleting many keys (del-prefix, del-pattern, flush), with a confirmation
 * prompt and, when stderr is a terminal, progress.
 *
 * The work is one library call (SCAN + UNLINK in batches); with a terminal, its progress
 * callback shows how far it got after each batch. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define PROGRESS_EVERY_US 100000

enum { BULK_PREFIX, BULK_PATTERN, BULK_FLUSH };

typedef struct bulk {
  cli *g;
  int kind;
  const char *arg; /* what the user typed: prefix, glob, or NULL for flush */
  char *glob;      /* the glob for rcache_scan (prefix escaped + "*") */
  bool progress;   /* stderr is a terminal and --no-progress was not given */
  int64_t last_us; /* last progress line */
} bulk;

static void progress_line(bulk *b, const char *verb, uint64_t done, uint64_t total, bool last) {
  int64_t now = cli_now_us();
  if (!b->progress || (!last && now - b->last_us < PROGRESS_EVERY_US)) return;
  b->last_us = now;
  if (total && done <= total)
    fprintf(stderr, "\r%s: %llu/%llu keys (%d%%)\033[K", verb, (unsigned long long)done,
            (unsigned long long)total, (int)(done * 100 / total));
  else
    fprintf(stderr, "\r%s: %llu keys\033[K", verb, (unsigned long long)done);
  if (last) fputc('\n', stderr);
  fflush(stderr);
}

/* ---- counting (for the prompt) --------------------------------------------------------------- */

typedef struct {
  bulk *b;
  uint64_t n;
} counter;

static bool count_key(const char *key, size_t len, void *ud) {
  counter *ct = ud;
  ct->n++;
  progress_line(ct->b, "counting", ct->n, 0, false);
  return true;
}

static bool has_namespace(const cli *g) {
  return (g->prefix && *g->prefix) || strstr(g->url, "key_prefix=") != NULL;
}

/* ---- deleting ------------------------------------------------------------------------------ */

typedef struct {
  bulk *b;
  uint64_t total;
} shown;

static bool show_deleted(uint64_t n, void *ud) {
  shown *sh = ud;
  progress_line(sh->b, "deleting", n, sh->total, false);
  return true;
}

/* One library call (SCAN + UNLINK in batches); with progress, a line per batch at most
 * every PROGRESS_EVERY_US. A flush within a namespace is every key of the namespace. */
static rcache_status library_delete(bulk *b, uint64_t total, uint64_t *n) {
  shown sh = {b, total};
  rcache_progress_fn fn = b->progress ? show_deleted : NULL;
  rcache_status s;
  *n = 0;
  if (fn && !(b->kind == BULK_FLUSH && !has_namespace(b->g))) {
    b->last_us = 0; /* the line starts at once, however fast the batches come */
    progress_line(b, "deleting", 0, total, false);
  }
  if (b->kind == BULK_PREFIX)
    s = rcache_delete_prefix_progress(b->g->c, b->arg, fn, &sh, n);
  else if (b->kind == BULK_PATTERN)
    s = rcache_delete_pattern_progress(b->g->c, b->arg, fn, &sh, n);
  else if (b->progress && has_namespace(b->g))
    s = rcache_delete_pattern_progress(b->g->c, "*", fn, &sh, n);
  else
    return rcache_flush(b->g->c); /* without a namespace, FLUSHDB ASYNC: nothing to show */
  if (b->progress) progress_line(b, "deleted", *n, total, true);
  return s;
}

/* ---- the commands ---------------------------------------------------------------------------- */

/* Asks "...? [y/N]" on stderr, reads the answer from stdin. */
static bool confirm(bulk *b, uint64_t n) {
  cli *g = b->g;
  char arg[CLI_SHOWN_MAX], prefix[CLI_SHOWN_MAX];
  cli_shown(b->arg ? b->arg : "", arg, sizeof arg);
  cli_shown(g->prefix ? g->prefix : "(from the URL)", prefix, sizeof prefix);
  if (b->kind == BULK_FLUSH && !has_namespace(g))
    fprintf(stderr, "Flush the whole database (%llu keys) at %s? [y/N] ", (unsigned long long)n,
            g->url_shown);
  else if (b->kind == BULK_FLUSH)
    fprintf(stderr, "Delete all %llu keys of namespace '%s' at %s? [y/N] ", (unsigned long long)n,
            prefix, g->url_shown);
  else
    fprintf(stderr, "Delete %llu keys %s '%s' at %s? [y/N] ", (unsigned long long)n,
            b->kind == BULK_PREFIX ? "starting with" : "matching", arg, g->url_shown);
  fflush(stderr);
  char line[64];
  if (!fgets(line, sizeof line, stdin)) return false;
  return strcmp(line, "y\n") == 0 || strcmp(line, "Y\n") == 0 || strcmp(line, "yes\n") == 0 ||
         strcmp(line, "y") == 0 || strcmp(line, "yes") == 0;
}

static int run_bulk(cli *g, int argc, char **argv, int kind) {
  bool yes = false, no_progress = false;
  const cli_opt opts[] = {{"--yes", "-y", OPT_FLAG, &yes},
                          {"--no-progress", NULL, OPT_FLAG, &no_progress}};
  char *pos[1];
  int npos;
  int need = kind == BULK_FLUSH ? 0 : 1;
  int r = cli_parse(g, argc, argv, opts, 2, pos, &npos, need, need);
  if (r) return r < 0 ? CLI_USAGE : CLI_OK;
  if (need && !*pos[0])
    return cli_usage_error(g, "the %s is empty", kind == BULK_PREFIX ? "prefix" : "pattern");
  if (!yes && !isatty(STDIN_FILENO))
    return cli_usage_error(g, "refusing to delete without --yes: stdin is not a terminal");
  int o = cli_open(g);
  if (o) return o;

  bulk b = {g, kind, need ? pos[0] : NULL, NULL, isatty(STDERR_FILENO) && !no_progress, 0};
  size_t gl = need ? 2 * strlen(pos[0]) + 2 : 2;
  if (!(b.glob = malloc(gl))) return cli_fail(g, "out of memory", RCACHE_ENOMEM);
  if (kind == BULK_PATTERN) {
    memcpy(b.glob, pos[0], strlen(pos[0]) + 1);
  } else if (kind == BULK_PREFIX) {
    cli_glob_escape(pos[0], b.glob, gl - 1);
    strcat(b.glob, "*");
  } else {
    strcpy(b.glob, "*");
  }

  int rc = CLI_OK;
  uint64_t total = 0, n = 0;
  rcache_status s = RCACHE_OK;
  if (!yes) {
    counter ct = {&b, 0};
    s = rcache_scan(g->c, b.glob, 0, count_key, &ct);
    progress_line(&b, "counting", ct.n, 0, true);
    if (s != RCACHE_OK) {
      rc = cli_fail(g, "counting keys", s);
      goto out;
    }
    total = ct.n;
    /* nothing counted, nothing deleted: a flush the user was not asked about must not run
     * (a FLUSHDB would take keys written since the count) */
    if (total == 0) {
      fprintf(stderr, "rcache %s: no key %s, nothing deleted\n", g->cmd,
              kind == BULK_FLUSH ? "to flush" : "matches");
      if (kind != BULK_FLUSH) printf("0\n");
      rc = CLI_MISS;
      goto out;
    }
    if (!confirm(&b, total)) {
      fprintf(stderr, "rcache %s: not confirmed, nothing deleted\n", g->cmd);
      rc = CLI_MISS;
      goto out;
    }
  }
  s = library_delete(&b, total, &n);
  if (s != RCACHE_OK) {
    rc = cli_fail(g, b.arg ? b.arg : "flush", s);
    goto out;
  }
  if (kind != BULK_FLUSH) {
    printf("%llu\n", (unsigned long long)n);
    rc = n ? CLI_OK : CLI_MISS;
  }
out:
  free(b.glob);
  return rc;
}

int cmd_del_prefix(cli *g, int argc, char **argv) {
  return run_bulk(g, argc, argv, BULK_PREFIX);
}

int cmd_del_pattern(cli *g, int argc, char **argv) {
  return run_bulk(g, argc, argv, BULK_PATTERN);
}

int cmd_flush(cli *g, int argc, char **argv) {
  return run_bulk(g, argc, argv, BULK_FLUSH);
}
