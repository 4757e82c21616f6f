/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Allocation-failure walks, as SQLite's malloc fault injection and jansson's
 * test_memory_funcs.c test it: a flow of public calls runs once without failures (the
 * reference), then again with its Nth allocation failing for N = 0, 1, 2, … until a run
 * hits no failure. Each call must return RCACHE_ENOMEM (with a message for rcache_errmsg)
 * or exactly what it returned in the reference. Calls are grouped by the keys they touch;
 * once a call of a group failed, the group's later calls may see a different state and are
 * not compared (they must still not crash or leak: LeakSanitizer checks the ASan build).
 *
 * Only allocations of the calling thread count (rcache__alloc_fail_after), so N names the
 * same allocation in every run whatever background threads do.
 */
#ifndef RCACHE_ALLOC_WALK_H
#define RCACHE_ALLOC_WALK_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "rcache/rcache.h"
#include "test.h"

#define AW_MAX_STEPS 512
#define AW_MAX_WALK 20000 /* far above any flow's allocations: bounds the loop */
#define AW_MAX_REPORTS 20 /* mismatches printed per walk; all are counted */

typedef struct aw {
  /* the reference run's trace */
  int nref;
  int ref_line[AW_MAX_STEPS];
  rcache_status ref_status[AW_MAX_STEPS];
  uint64_t ref_digest[AW_MAX_STEPS];
  bool recording;
  /* the current run */
  const char *flow;
  bool once;
  int64_t n;      /* the allocation that fails in this run (-1 in the reference) */
  int step;       /* index of the next recorded call */
  bool broken;    /* a call of the current group returned RCACHE_ENOMEM */
  bool hit;       /* the injected failure happened during the armed part */
  uint64_t calls; /* allocations made while armed (reference run) */
  uint64_t calls0;
  int enomem;  /* calls that returned RCACHE_ENOMEM over the whole walk */
  int reports; /* mismatches printed */
  const rcache *c;
} aw;

static uint64_t aw_digest(const char *text) {
  uint64_t h = 1469598103934665603ull;
  for (const char *p = text ? text : "\x01(null)"; *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ull;
  return h;
}

static void aw_fail(aw *w, int line, const char *fmt, ...) RCACHE__PRINTF(3, 4);
static void aw_fail(aw *w, int line, const char *fmt, ...) {
  t_failed++;
  if (w->reports++ >= AW_MAX_REPORTS) return;
  fprintf(stderr, "FAIL %s (%s, allocation %lld) line %d: ", w->flow, w->once ? "once" : "sticky",
          (long long)w->n, line);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

/* A new group of calls: keys no earlier group touched. */
static void aw_group(aw *w) {
  w->broken = false;
}

/* Records one public call's status and the text of its outputs. */
static void aw_rec(aw *w, int line, rcache_status s, const char *text) {
  if (w->recording) {
    if (getenv("AW_DEBUG"))
      fprintf(stderr, "%s line %d: %llu allocations\n", w->flow, line,
              (unsigned long long)(rcache__alloc_calls() - w->calls0));
    if (w->nref >= AW_MAX_STEPS) {
      aw_fail(w, line, "too many steps");
      return;
    }
    w->ref_line[w->nref] = line;
    w->ref_status[w->nref] = s;
    w->ref_digest[w->nref++] = aw_digest(text);
    return;
  }
  int i = w->step++;
  if (i >= w->nref || w->ref_line[i] != line) {
    aw_fail(w, line, "the flow took another path than the reference");
    return;
  }
  if (s == RCACHE_ENOMEM) {
    w->enomem++;
    w->broken = true;
    if (w->c && !*rcache_errmsg(w->c)) aw_fail(w, line, "RCACHE_ENOMEM without a message");
    return;
  }
  if (w->broken) return;
  if (s != w->ref_status[i])
    aw_fail(w, line, "status %d (%s), reference %d", (int)s, rcache_strerror(s),
            (int)w->ref_status[i]);
  else if (aw_digest(text) != w->ref_digest[i])
    aw_fail(w, line, "output \"%s\" differs from the reference", text ? text : "(null)");
}

#define AW_REC(w, s, text) aw_rec((w), __LINE__, (s), (text))

/* Armed from here to aw_disarm() (the reference run only counts). */
static void aw_arm(aw *w) {
  w->broken = false;
  rcache__alloc_fail_after(w->recording ? -1 : w->n, w->once);
  w->calls0 = rcache__alloc_calls();
}

static void aw_disarm(aw *w) {
  w->hit = w->hit || (!w->recording && rcache__alloc_fail_hit());
  uint64_t calls = rcache__alloc_calls() - w->calls0;
  if (calls > w->calls) w->calls = calls; /* a flow may arm twice with the same N */
  rcache__alloc_fail_after(-1, true);
}

static void aw_run(aw *w, void (*flow)(aw *, void *), void *ud) {
  w->step = 0;
  w->hit = false;
  w->calls = 0;
  flow(w, ud);
  if (!w->recording && !w->hit && w->step != w->nref)
    aw_fail(w, 0, "%d calls recorded, the reference made %d", w->step, w->nref);
}

/* Runs flow(w, ud) as the reference, then with allocation N failing for every N (once, or
 * from N on when !once) until a run hits no failure. Returns the allocations walked.
 * exact: the flow allocates the same on every run (memory://, none://), so the walk must end
 * at the reference's count. A flow over the network may allocate a little more or less
 * from run to run (a connection the server closed, say): its walk ends only after
 * AW_SETTLE runs in a row hit no failure, and it must cover the smallest count of the
 * unarmed runs: three before the walk, and the walk's own runs that hit no failure (a
 * background thread, such as open's first contact, may take some allocations off this one). */
#define AW_SETTLE 3
static int64_t aw_walk_x(const char *name, bool once, bool exact, void (*flow)(aw *, void *),
                         void *ud) {
  static aw w;                                                         /* large: not on the stack */
  if (getenv("AW_ONLY") && !strstr(name, getenv("AW_ONLY"))) return 0; /* to debug one flow */
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  memset(&w, 0, sizeof w);
  w.flow = name;
  w.once = once;
  w.n = -1;
  w.recording = true;
  aw_run(&w, flow, ud);
  w.recording = false;
  uint64_t ref_calls = w.calls;
  /* over the network the count varies a little (a reconnect, a refresh): the walk must
   * cover the fewest of three reference runs */
  for (int i = 0; !exact && i < 2; i++) {
    w.n = -1;
    aw_run(&w, flow, ud);
    if (w.calls < ref_calls) ref_calls = w.calls;
  }
  int64_t n = getenv("AW_FROM") ? atoll(getenv("AW_FROM")) : 0; /* to debug one allocation */
  int64_t walked = n;
  for (int misses = 0; n < AW_MAX_WALK && misses < (exact ? 1 : AW_SETTLE); n++) {
    int before = w.enomem;
    w.n = n;
    aw_run(&w, flow, ud);
    misses = w.hit ? 0 : misses + 1;
    if (w.hit) walked = n + 1;
    /* a run that hit no failure is one more unarmed run: its count is a reference too */
    if (!w.hit && !exact && w.calls < ref_calls) ref_calls = w.calls;
    if (getenv("AW_DEBUG") && w.hit && w.enomem == before) /* a failure no call reported */
      fprintf(stderr, "%s (%s): allocation %lld failed unreported\n", name,
              once ? "once" : "sticky", (long long)n);
  }
  CHECK_MSG(n < AW_MAX_WALK, "%s: the walk did not end", name);
  /* the Nth allocation fails iff the flow makes more than N: the walk ends at the count */
  CHECK_MSG(exact ? (uint64_t)walked == ref_calls : (uint64_t)walked >= ref_calls,
            "%s: walked %lld, the reference made %llu allocations", name, (long long)walked,
            (unsigned long long)ref_calls);
  CHECK(w.reports == 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("%s (%s): walked %lld allocations, %d calls returned RCACHE_ENOMEM (%.1f s)\n", name,
         once ? "once" : "sticky", (long long)walked, w.enomem, secs);
  fflush(stdout);
  return walked;
}

static inline int64_t aw_walk(const char *name, bool once, void (*flow)(aw *, void *), void *ud) {
  return aw_walk_x(name, once, true, flow, ud);
}

/* The handle works once allocations succeed again: a set + get round trip. */
static bool aw_round_trip(rcache *c, const char *key) {
  rcache_value v = {NULL, 0};
  bool ok = rcache_set(c, key, "after", 5, 0) == RCACHE_OK && rcache_get(c, key, &v) == RCACHE_OK &&
            v.len == 5 && memcmp(v.data, "after", 5) == 0;
  rcache_value_free(&v);
  return ok;
}

/* ---- calls both walks make ---------------------------------------------------------------- */

/* A value as text for the trace. */
static const char *aw_vtext(char *buf, size_t size, const rcache_value *v) {
  snprintf(buf, size, "%zu:%.*s", v->len, (int)(v->len < 200 ? v->len : 200),
           v->data ? v->data : "");
  return buf;
}

/* A loader of the text ud. The test's own allocations use malloc: only the library's are
 * walked. */
static rcache_status aw_load_text(void *ud, rcache_value *out) {
  const char *s = ud;
  out->len = strlen(s);
  out->data = malloc(out->len + 1);
  if (!out->data) return RCACHE_ENOMEM;
  memcpy(out->data, s, out->len + 1);
  return RCACHE_OK;
}

static rcache_status aw_load_tagged_text(void *ud, rcache_value *out, rcache_tags *tags) {
  (void)tags;
  return aw_load_text(ud, out);
}

static void aw_rec_get(aw *w, int line, rcache *c, const char *key, const char *const *tags,
                       size_t ntags) {
  char t[256];
  rcache_value v;
  rcache_status s = ntags ? rcache_get_tagged(c, key, tags, ntags, &v) : rcache_get(c, key, &v);
  aw_rec(w, line, s, aw_vtext(t, sizeof t, &v));
  rcache_value_free(&v);
}

/* A batch read of n (at most 8) keys, each value recorded. */
static void aw_rec_get_many(aw *w, int line, rcache *c, const char *const *keys, size_t n) {
  char t[256];
  rcache_value v[8] = {{NULL, 0}};
  rcache_status st[8];
  rcache_status s = n <= 8 ? rcache_get_many(c, keys, n, v, st) : RCACHE_EINVAL;
  for (size_t i = 0; i < n && i < 8; i++) {
    aw_rec(w, line, s == RCACHE_OK ? st[i] : s, aw_vtext(t, sizeof t, &v[i]));
    rcache_value_free(&v[i]);
  }
}

/* Tags: set_tagged, the reads (one round trip by script or declared tags, a batch), plain
 * values that look like tagged ones (escaped), get_or_set_tagged, an invalidation. Each
 * group has keys and tags of its own. */
static void aw_tag_calls(aw *w, rcache *c) {
  char t[256];
  const char *ta[] = {"tag:a"}, *tc[] = {"tag:c", "tag:c2"};
  aw_group(w);
  rcache_status s = rcache_set_tagged(c, "ta1", "tv1", 3, 60, ta, 1);
  AW_REC(w, s, NULL);
  aw_rec_get(w, __LINE__, c, "ta1", NULL, 0);
  aw_rec_get(w, __LINE__, c, "ta1", ta, 1);
  aw_group(w);
  s = rcache_set(c, "tb1", "\xffRC\x01x", 5, 60);
  AW_REC(w, s, NULL);
  aw_rec_get(w, __LINE__, c, "tb1", NULL, 0);
  const char *bk[3] = {"tb2", "tb3", "tb1"};
  rcache_value bv[2] = {{"\xff\xffRC\x01", 5}, {"plain", 5}};
  s = rcache_set_many(c, bk, bv, 2, 60);
  AW_REC(w, s, NULL);
  aw_rec_get_many(w, __LINE__, c, bk, 3);
  aw_group(w);
  s = rcache_set_tagged(c, "tc1", "c1", 2, 60, tc, 1);
  AW_REC(w, s, NULL);
  s = rcache_set_tagged(c, "tc2", "c2", 2, 60, tc, 2);
  AW_REC(w, s, NULL);
  const char *ck[3] = {"tc1", "tc2", "tc3"};
  aw_rec_get_many(w, __LINE__, c, ck, 3);
  s = rcache_invalidate_tag(c, "tag:c2");
  AW_REC(w, s, NULL);
  aw_rec_get(w, __LINE__, c, "tc2", NULL, 0);
  aw_rec_get(w, __LINE__, c, "tc1", NULL, 0);
  aw_group(w);
  const char *td[] = {"tag:d"};
  rcache_value v;
  s = rcache_get_or_set_tagged(c, "td1", 60, td, 1, aw_load_tagged_text, "loaded", &v);
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  rcache_value_free(&v);
  aw_rec_get(w, __LINE__, c, "td1", td, 1);
}

#endif
