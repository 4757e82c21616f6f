/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rcache-ab: what a change costs per call, measured as two builds of librcache.so side by
 * side in one process (each dlopen()ed with RTLD_LOCAL, so each keeps its own symbols and
 * state), in short interleaved rounds (ABAB...), so that a noisy moment of a shared machine
 * hurts both alike. Prints each build's 10th-percentile round and the median of the
 * per-round differences (B - A): the figure docs/perf.md quotes for the near-cache hit.
 *
 *   rcache-ab URL LIB_A LIB_B [--remote] [--families N] [--sink]
 *
 * A near-cache hit of a 10-byte value by default; --remote: a GET over the URL (no near
 * cache). --families / --sink turn key families / a no-op event sink on in B (which must
 * then be a build that has them); both handles are otherwise opened with the options every
 * build since the pipelining options knows (offsetof key_family_segments).
 */
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rcache/rcache.h"

typedef struct lib {
  void *dl;
  rcache *c;
  rcache_status (*get)(rcache *, const char *, rcache_value *);
  void (*value_free)(rcache_value *);
} lib;

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void sink_noop(const rcache_event *ev, void *ud) {
  (void)ev;
  (void)ud;
}

static void *sym(void *dl, const char *name) {
  void *p = dlsym(dl, name);
  if (!p) {
    fprintf(stderr, "rcache-ab: %s: %s\n", name, dlerror());
    exit(1);
  }
  return p;
}

static void load(lib *l, const char *path, const char *url, const rcache_options *extra,
                 bool remote) {
  if (!(l->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
    fprintf(stderr, "rcache-ab: %s\n", dlerror());
    exit(1);
  }
  void (*init)(rcache_options *, size_t);
  rcache_status (*open_fn)(rcache **, const char *, const rcache_options *);
  rcache_status (*set)(rcache *, const char *, const void *, size_t, int64_t);
  *(void **)&init = sym(l->dl, "rcache_options_init_sized");
  *(void **)&open_fn = sym(l->dl, "rcache_open");
  *(void **)&set = sym(l->dl, "rcache_set");
  *(void **)&l->get = sym(l->dl, "rcache_get");
  *(void **)&l->value_free = sym(l->dl, "rcache_value_free");
  rcache_options o;
  memset(&o, 0, sizeof o);
  init(&o, extra ? sizeof o : offsetof(rcache_options, key_family_segments));
  o.key_prefix = "rcache-ab:";
  o.near_cache_bytes = remote ? 0 : 1 << 20;
  if (extra) {
    o.key_family_segments = extra->key_family_segments;
    o.event_sink = extra->event_sink;
  }
  if (open_fn(&l->c, url, &o) != RCACHE_OK ||
      set(l->c, "user:1", "0123456789", 10, 0) != RCACHE_OK) {
    fprintf(stderr, "rcache-ab: %s cannot open or write %s\n", path, url);
    exit(1);
  }
}

static double round_ns(lib *l, int n) {
  rcache_value v;
  double t0 = now_ns();
  for (int i = 0; i < n; i++) {
    if (l->get(l->c, "user:1", &v) != RCACHE_OK) {
      fprintf(stderr, "rcache-ab: a read failed\n");
      exit(1);
    }
    l->value_free(&v);
  }
  return (now_ns() - t0) / n;
}

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

#define ROUNDS 2001

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s URL LIB_A LIB_B [--remote] [--families N] [--sink]\n", argv[0]);
    return 2;
  }
  bool remote = false, extra = false;
  rcache_options b;
  memset(&b, 0, sizeof b);
  for (int i = 4; i < argc; i++) {
    if (!strcmp(argv[i], "--remote")) {
      remote = true;
    } else if (!strcmp(argv[i], "--families") && i + 1 < argc) {
      b.key_family_segments = (unsigned)atoi(argv[++i]);
      extra = true;
    } else if (!strcmp(argv[i], "--sink")) {
      b.event_sink.on_event = sink_noop;
      extra = true;
    } else {
      fprintf(stderr, "rcache-ab: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  lib la, lb;
  load(&la, argv[2], argv[1], NULL, remote);
  load(&lb, argv[3], argv[1], extra ? &b : NULL, remote);
  int n = remote ? 100 : 5000, rounds = remote ? ROUNDS / 2 : ROUNDS;
  round_ns(&la, n); /* warm: near tables filled, connections open */
  round_ns(&lb, n);
  static double a[ROUNDS], bb[ROUNDS], d[ROUNDS];
  for (int r = 0; r < rounds; r++) {
    if (r % 2) {
      bb[r] = round_ns(&lb, n);
      a[r] = round_ns(&la, n);
    } else {
      a[r] = round_ns(&la, n);
      bb[r] = round_ns(&lb, n);
    }
    d[r] = bb[r] - a[r];
  }
  qsort(a, (size_t)rounds, sizeof *a, cmpd);
  qsort(bb, (size_t)rounds, sizeof *bb, cmpd);
  qsort(d, (size_t)rounds, sizeof *d, cmpd);
  printf("%s, %d rounds of %d: A p10 %.1f ns, B p10 %.1f ns, B - A median %.1f ns (quartiles "
         "%.1f, %.1f)\n",
         remote ? "remote GET" : "near-cache hit", rounds, n, a[rounds / 10], bb[rounds / 10],
         d[rounds / 2], d[rounds / 4], d[3 * rounds / 4]);
  return 0;
}
