/* SPDX-License-Identifier: BSD-3-Clause */
/* rcache CLI: deleting many keys (del-prefix, del-pattern, flush), with a confirmation
 * prompt and, when stderr is a terminal, progress.
 *
 * Without a terminal the work is one library call (SCAN + UNLINK in batches, the fastest
 * path). With one, the tool deletes batch by batch so that it can show how far it got:
 * it lists up to BATCH keys with rcache_scan(), deletes them from a few threads, and
 * repeats; a last library call then sweeps whatever appeared meanwhile. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define BATCH 20000
#define THREADS 8
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

/* ---- one batch: list, then delete from THREADS threads --------------------------------------- */

typedef struct batch {
  rcache *c;
  char **keys;
  size_t n;
  _Atomic size_t next, done;
  _Atomic uint64_t deleted;
  _Atomic int workers_left;
  _Atomic int status; /* first error, RCACHE_OK when none */
} batch;

static bool collect_key(const char *key, size_t len, void *ud) {
  batch *bt = ud;
  if (memchr(key, '\0', len)) return true; /* not addressable as a C string: left to the sweep */
  char *k = malloc(len + 1);
  if (!k) return false;
  memcpy(k, key, len);
  k[len] = '\0';
  bt->keys[bt->n++] = k;
  return bt->n < BATCH;
}

static void *delete_worker(void *arg) {
  batch *bt = arg;
  for (;;) {
    size_t i = atomic_fetch_add(&bt->next, 1);
    if (i >= bt->n || atomic_load(&bt->status) != RCACHE_OK) break;
    rcache_status s = rcache_delete(bt->c, bt->keys[i]);
    if (s == RCACHE_OK) {
      atomic_fetch_add(&bt->deleted, 1);
    } else if (s != RCACHE_MISS) {
      int ok = RCACHE_OK;
      atomic_compare_exchange_strong(&bt->status, &ok, (int)s); /* keep the first error */
    }
    atomic_fetch_add(&bt->done, 1);
  }
  atomic_fetch_sub(&bt->workers_left, 1);
  return NULL;
}

/* Deletes bt->keys from THREADS threads, showing progress; returns the first error. */
static rcache_status delete_batch(bulk *b, batch *bt, uint64_t before, uint64_t total) {
  pthread_t th[THREADS];
  int started = 0;
  atomic_store(&bt->workers_left, THREADS);
  for (; started < THREADS; started++)
    if (pthread_create(&th[started], NULL, delete_worker, bt) != 0) break;
  atomic_fetch_sub(&bt->workers_left, THREADS - started);
  if (started == 0) delete_worker(bt); /* no thread could start: do it here */
  while (atomic_load(&bt->workers_left) > 0) {
    progress_line(b, "deleting", before + atomic_load(&bt->deleted), total, false);
    usleep(20000);
  }
  for (int i = 0; i < started; i++)
    pthread_join(th[i], NULL);
  return (rcache_status)atomic_load(&bt->status);
}

/* The terminal path: batches with progress. *deleted receives the count. */
static rcache_status delete_with_progress(bulk *b, uint64_t total, uint64_t *deleted) {
  batch bt = {.c = b->g->c};
  bt.keys = malloc(BATCH * sizeof *bt.keys);
  rcache_status s = bt.keys ? RCACHE_OK : RCACHE_ENOMEM;
  *deleted = 0;
  progress_line(b, "deleting", 0, total, false);
  while (s == RCACHE_OK) {
    bt.n = 0;
    atomic_store(&bt.next, 0);
    atomic_store(&bt.done, 0);
    atomic_store(&bt.deleted, 0);
    s = rcache_scan(b->g->c, b->glob, BATCH, collect_key, &bt);
    if (s == RCACHE_OK && bt.n) s = delete_batch(b, &bt, *deleted, total);
    *deleted += atomic_load(&bt.deleted);
    for (size_t i = 0; i < bt.n; i++)
      free(bt.keys[i]);
    /* a short batch was the last one; a batch that deleted nothing would repeat forever */
    if (bt.n < BATCH || atomic_load(&bt.deleted) == 0) break;
  }
  free(bt.keys);
  progress_line(b, "deleted", *deleted, total, true);
  return s;
}

/* ---- the commands ---------------------------------------------------------------------------- */

static bool has_namespace(const cli *g) {
  return (g->prefix && *g->prefix) || strstr(g->url, "key_prefix=") != NULL;
}

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

/* The library's own one-call deletion (the sweep, or all of it without a terminal). */
static rcache_status library_delete(bulk *b, uint64_t *n) {
  *n = 0;
  switch (b->kind) {
  case BULK_PREFIX:
    return rcache_delete_prefix(b->g->c, b->arg, n);
  case BULK_PATTERN:
    return rcache_delete_pattern(b->g->c, b->arg, n);
  default:
    return rcache_flush(b->g->c);
  }
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
  uint64_t total = 0, n = 0, swept = 0;
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
    if (total == 0 && kind != BULK_FLUSH) {
      fprintf(stderr, "rcache %s: no key matches\n", g->cmd);
      printf("0\n");
      rc = CLI_MISS;
      goto out;
    }
    if (total && !confirm(&b, total)) {
      fprintf(stderr, "rcache %s: not confirmed, nothing deleted\n", g->cmd);
      rc = CLI_MISS;
      goto out;
    }
  }
  /* Without a namespace, flush is FLUSHDB ASYNC: instant, nothing to show. */
  bool batched = b.progress && !(kind == BULK_FLUSH && !has_namespace(g));
  if (batched) s = delete_with_progress(&b, total, &n);
  if (s == RCACHE_OK) s = library_delete(&b, &swept);
  n += swept;
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
