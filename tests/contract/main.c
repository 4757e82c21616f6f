/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The contract suite's runner.
 *
 *   contract <url>                 run the caching-backend tests against url
 *   contract --none <url>          run the none:// tests (caching off)
 *   contract --env VAR             take the URL from $VAR (set by scripts/servers.sh);
 *                                  a missing variable is a failure, never a skip
 *   ... -t <substring>             run only tests whose name contains it
 *   ... --near                     every handle has the near cache on (4 MiB): the same
 *                                  contract must hold with it (no stale read of own writes)
 *   ... --stale                    every handle keeps get_or_set values 30 s past
 *                                  their TTL for stale-if-error: nothing else changes
 *   ... --lease                    every handle takes a cross-process lease in get_or_set
 *   ... --slot                     each test's namespace is a hash tag ("{<run id>:<n>}:"):
 *                                  on a cluster all its keys share one slot (the one-round-
 *                                  trip tagged reads, docs/semantics.md "Tags")
 *   ... --async                    every call with a non-blocking form goes through it, driven
 *                                  by a loop on the test's thread (async_shim.c, contract.h)
 *
 * Namespacing: every test's handle has a key_prefix "<run id>:<n>:" where the run id is
 * "ct<pid>x<random>". When the URL has no key_prefix, it is passed as the option; when it
 * has one (the URL wins over the option), the URL's key_prefix is extended instead, e.g.
 * ?key_prefix=app: becomes ?key_prefix=app:ct123x9f:4:. Either way rcache_flush() on a
 * test's handle deletes exactly that test's keys, and runs against a shared server cannot
 * see each other.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "contract.h"

#define MAX_TESTS 256
#define MAX_COUNTERS 64
#define MAX_HANDLES 16
#define HEALTHY_WAIT_MS 10000

typedef struct {
  const char *name;
  void (*fn)(ct_env *);
  int modes;
} ct_test;

static ct_test tests[MAX_TESTS];
static int ntests;
static int *passed_of[MAX_COUNTERS], *failed_of[MAX_COUNTERS];
static int ncounters;

void ct_register(const char *name, void (*fn)(ct_env *), int modes) {
  if (ntests == MAX_TESTS) {
    fprintf(stderr, "contract: too many tests, raise MAX_TESTS\n");
    exit(2);
  }
  tests[ntests++] = (ct_test){name, fn, modes};
}

void ct_counters(int *passed, int *failed) {
  if (ncounters == MAX_COUNTERS) {
    fprintf(stderr, "contract: too many files, raise MAX_COUNTERS\n");
    exit(2);
  }
  passed_of[ncounters] = passed;
  failed_of[ncounters++] = failed;
}

static int total(int **which) {
  int n = 0;
  for (int i = 0; i < ncounters; i++)
    n += *which[i];
  return n;
}

static void fail_here(const char *fmt, const char *arg) {
  t_failed++;
  fprintf(stderr, "FAIL contract: ");
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
}

/* ---- namespaces and handles ------------------------------------------------------------------ */

static char run_id[48];
static const char *g_url;
static bool g_none;
static bool g_near;  /* --near: near_cache_bytes on every handle */
static bool g_stale; /* --stale: stale_window_s on every handle */
static bool g_lease; /* --lease: get_or_set's cross-process lease on every handle */
static bool g_slot;  /* --slot: namespaces are hash tags */
static rcache *handles[MAX_HANDLES];
static int nhandles;
static char cur_ns[96];
static rcache *outer; /* kept for the whole run; deletes the outer keys at the end */
static bool used_outer;

/* Where the URL's key_prefix value ends (NULL when it has none). */
static const char *url_prefix_end(const char *url) {
  const char *q = strchr(url, '?');
  if (!q) return NULL;
  for (const char *p = q + 1; p && *p;) {
    if (strncmp(p, "key_prefix=", 11) == 0) return p + 11 + strcspn(p + 11, "&#");
    p = strchr(p, '&');
    if (p) p++;
  }
  return NULL;
}

/* Polls health until the cache answers: rcache_open() may connect in the background. */
static bool wait_healthy(rcache *c) {
  if (g_none) return true;
  int64_t until = ct_now_ms() + HEALTHY_WAIT_MS;
  rcache_health h;
  while (rcache_health_check(c, &h) != RCACHE_OK) {
    if (ct_now_ms() > until) return false;
    ct_sleep_ms(20);
  }
  return true;
}

static rcache *open_with(const char *prefix, const rcache_options *o) {
  if (nhandles == MAX_HANDLES) {
    fail_here("%s", "too many handles in one test (raise MAX_HANDLES)");
    return NULL;
  }
  rcache_options opt;
  if (o) {
    opt = *o;
  } else {
    rcache_options_init(&opt);
  }
  if (g_near) { /* backends without a near cache say so once per handle: not news here */
    opt.near_cache_bytes = 4u << 20;
    if (opt.log_level == RCACHE_LOG_WARN) opt.log_level = RCACHE_LOG_ERROR;
  }
  if (g_stale) opt.stale_window_s = ct_stale_s();
  if (g_lease) opt.lease = true;
  const char *end = url_prefix_end(g_url);
  char *url = NULL;
  opt.key_prefix = NULL;
  if (end && prefix[0]) { /* extend the URL's own key_prefix */
    size_t head = (size_t)(end - g_url), pl = strlen(prefix);
    url = malloc(strlen(g_url) + pl + 1);
    if (!url) return NULL;
    memcpy(url, g_url, head);
    memcpy(url + head, prefix, pl);
    strcpy(url + head + pl, end);
  } else if (prefix[0]) {
    opt.key_prefix = prefix;
  }
  rcache *c = NULL;
  rcache_status s = rcache_open(&c, url ? url : g_url, &opt);
  free(url);
  if (s != RCACHE_OK) {
    t_failed++;
    fprintf(stderr, "FAIL contract: rcache_open: %s (%s)\n", rcache_strerror(s),
            rcache_errmsg(NULL));
    return NULL;
  }
  if (!wait_healthy(c)) {
    fail_here("the cache did not become healthy within %s ms", "10000");
    rcache_close(c);
    return NULL;
  }
  return c;
}

rcache *ct_open_sub(ct_env *e, const char *sub, const rcache_options *o) {
  char ns[sizeof cur_ns + 64];
  snprintf(ns, sizeof ns, "%s%s", cur_ns, sub);
  rcache *c = open_with(ns, o);
  if (c) handles[nhandles++] = c;
  return c;
}

rcache *ct_open(ct_env *e, const rcache_options *o) {
  return ct_open_sub(e, "", o);
}

bool ct_shared(const ct_env *e) {
  return !e->none && strncmp(e->url, "memory:", 7) != 0;
}

bool ct_near(void) {
  return g_near;
}

size_t ct_prefix_len(const char *sub) {
  const char *end = url_prefix_end(g_url);
  size_t url_part = 0;
  if (end) { /* the value of key_prefix= in the URL */
    const char *start = end;
    while (start > g_url && start[-1] != '=')
      start--;
    url_part = (size_t)(end - start);
  }
  return url_part + strlen(cur_ns) + strlen(sub);
}

rcache *ct_open_outer(ct_env *e) {
  if (!outer) outer = open_with("", NULL);
  used_outer = outer != NULL;
  return outer;
}

const char *ct_outer_key(const char *name) {
  static char ring[16][512];
  static int next;
  char *b = ring[next++ % 16];
  snprintf(b, sizeof ring[0], "%s_out:%s", run_id, name);
  return b;
}

/* ---- helpers --------------------------------------------------------------------------------- */

void ct_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

int64_t ct_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool ct_value_is(rcache *c, const char *key, const void *data, size_t len) {
  rcache_value v;
  rcache_status s = rcache_get(c, key, &v);
  bool ok = s == RCACHE_OK && v.len == len && (len == 0 || memcmp(v.data, data, len) == 0) &&
            (v.data == NULL ? len == 0 : v.data[len] == '\0');
  if (!ok)
    fprintf(stderr, "  value of %s: status %d, len %zu (expected %zu)\n", key, (int)s, v.len, len);
  rcache_value_free(&v);
  return ok;
}

int64_t ct_stale_s(void) {
  return g_stale ? 30 : 0;
}

bool ct_exists(rcache *c, const char *key) {
  bool x = false;
  return rcache_exists(c, key, &x) == RCACHE_OK && x;
}

bool ct_absent(rcache *c, const char *key) {
  bool x = true;
  return rcache_exists(c, key, &x) == RCACHE_OK && !x;
}

bool ct_errmsg_has(rcache *c, const char *what) {
  if (!ct_errmsg_known(c)) return true; /* completed through a callback: no message */
  const char *m = rcache_errmsg(c);
  if (strstr(m, what)) return true;
  fprintf(stderr, "  errmsg \"%s\" lacks \"%s\"\n", m, what);
  return false;
}

bool ct_errmsg_set(rcache *c) {
  return !ct_errmsg_known(c) || rcache_errmsg(c)[0] != '\0';
}

int64_t ct_ttl(rcache *c, const char *key) {
  int64_t t;
  return rcache_ttl(c, key, &t) == RCACHE_OK ? t : -3;
}

bool ct_wait_gone(rcache *c, const char *key, int timeout_ms) {
  int64_t until = ct_now_ms() + timeout_ms;
  for (;;) {
    bool x = true;
    if (rcache_exists(c, key, &x) == RCACHE_OK && !x) return true;
    if (ct_now_ms() > until) return false;
    ct_sleep_ms(20);
  }
}

/* ---- the runner ------------------------------------------------------------------------------ */

static int by_name(const void *a, const void *b) {
  return strcmp(((const ct_test *)a)->name, ((const ct_test *)b)->name);
}

static bool run_one(const ct_test *t, int idx) {
  int failed0 = total(failed_of);
  snprintf(cur_ns, sizeof cur_ns, g_slot ? "{%s:%d}:" : "%s:%d:", run_id, idx);
  ct_env e = {NULL, g_none, g_url, cur_ns};
  nhandles = 0;
  e.c = ct_open(&e, NULL);
  if (e.c) t->fn(&e);
  if (e.c && !g_none) { /* drop the test's keys */
    rcache_status s = rcache_flush(e.c);
    if (s != RCACHE_OK) fail_here("cleanup: rcache_flush: %s", rcache_strerror(s));
  }
  for (int i = 0; i < nhandles; i++)
    rcache_close(handles[i]);
  nhandles = 0;
  ct_async_check(); /* no late or second callback */
  int nf = total(failed_of) - failed0;
  printf("%s %s", nf ? "FAIL" : "ok  ", t->name);
  if (nf) printf(" (%d failed checks)", nf);
  printf("\n");
  fflush(stdout);
  return nf == 0;
}

static int usage(void) {
  fprintf(stderr, "usage: contract [--none] [--near] [--stale] [--lease] [--slot] [--async] "
                  "[-t substring] (<url> | --env VAR)\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *url = NULL, *only = NULL, *label = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--none") == 0) {
      g_none = true;
    } else if (strcmp(argv[i], "--env") == 0 && i + 1 < argc) {
      label = argv[++i];
      url = test_env_url(label);
    } else if (strcmp(argv[i], "--near") == 0) {
      g_near = true;
    } else if (strcmp(argv[i], "--stale") == 0) {
      g_stale = true;
    } else if (strcmp(argv[i], "--lease") == 0) {
      g_lease = true;
    } else if (strcmp(argv[i], "--slot") == 0) {
      g_slot = true;
    } else if (strcmp(argv[i], "--async") == 0) {
      ct_async_on();
    } else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
      only = argv[++i];
    } else if (argv[i][0] != '-' || argv[i][1] == '\0') {
      url = label = argv[i];
    } else {
      return usage();
    }
  }
  if (!url) return usage();
  g_url = url;
  srand((unsigned)(time(NULL) ^ ((unsigned)getpid() << 8)));
  snprintf(run_id, sizeof run_id, "ct%ldx%04x%04x", (long)getpid(), (unsigned)rand() & 0xffff,
           (unsigned)rand() & 0xffff);
  qsort(tests, (size_t)ntests, sizeof tests[0], by_name);
  int ran = 0, bad = 0;
  /* one clear failure rather than one per test when the URL cannot be used at all */
  rcache *probe = open_with("", NULL);
  if (!probe) {
    printf("contract[%s]: 0 passed, 1 failed (cannot open or reach the cache)\n",
           label == url && strchr(url, '@') ? "<url with credentials>" : label);
    return 1;
  }
  rcache_close(probe);
  for (int i = 0; i < ntests; i++) {
    if (!(tests[i].modes & (g_none ? CT_NONE : CT_CACHE))) continue;
    if (only && !strstr(tests[i].name, only)) continue;
    ran++;
    if (!run_one(&tests[i], i)) bad++;
  }
  if (outer) {
    if (used_outer && !g_none) { /* keys a test left outside its namespace */
      char p[64];
      snprintf(p, sizeof p, "%s_out:", run_id);
      uint64_t n = 0;
      rcache_status s = rcache_delete_prefix(outer, p, &n);
      if (s != RCACHE_OK) fail_here("cleanup of outer keys: %s", rcache_strerror(s));
    }
    rcache_close(outer);
  }
  if (ran == 0) fail_here("%s", "no test matched");
  char name[160];
  /* a URL given on the command line may hold a password: show it only without one */
  const char *shown = label == url && strchr(url, '@') ? "<url with credentials>" : label;
  snprintf(name, sizeof name, "contract[%s%s%s%s%s%s] (%d tests, %d failed)",
           ct_async() ? "async " : "", g_none ? "none " : "", g_near ? "near " : "",
           g_stale ? "stale " : "", g_lease ? "lease " : "", shown, ran, bad);
  /* test_report() would count only this file's checks: sum every file's */
  int p = total(passed_of), f = total(failed_of);
  printf("%s: %d passed, %d failed\n", name, p, f);
  return f ? 1 : 0;
}
