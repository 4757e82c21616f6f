/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The non-blocking API's allocation failures (docs/async.md, "The rules"): a flow of starting
 * calls on memory:// runs with its Nth allocation failing, for N = 0, 1, 2, … until a run hits
 * no failure (the lazy machinery included). A call that returns RCACHE_ENOMEM gets no
 * callback, with a message for rcache_errmsg; every other call gets exactly one, with the
 * status it gets without failures. Nothing leaks (LeakSanitizer, in the ASan build).
 */
#include <jansson.h>

#include "await.h"
#include "internal.h"
#include "rcache/json.h"
#include "rcache/rcache.h"
#include "test.h"

enum { OPS = 8 };

typedef struct rec {
  int calls;
  rcache_status s;
  int *done;
} rec;

static void seen(rec *r, rcache_status s) {
  r->calls++;
  r->s = s;
  (*r->done)++;
}
static void on_status(void *ud, rcache_status s) {
  seen(ud, s);
}
static void on_value(void *ud, rcache_status s, rcache_value v) {
  rcache_value_free(&v);
  seen(ud, s);
}
static void on_many(void *ud, rcache_status s, rcache_value *vals, const rcache_status *sts,
                    size_t n) {
  (void)sts;
  for (size_t i = 0; i < n; i++)
    rcache_value_free(&vals[i]);
  seen(ud, s);
}
static void on_json(void *ud, rcache_status s, json_t *v) {
  if (v) json_decref(v);
  seen(ud, s);
}

static void loader(void *ud, const char *key, rcache_load *ld) {
  (void)ud;
  (void)key;
  rcache_value v = {malloc(2), 1};
  if (v.data) memcpy(v.data, "L", 2);
  rcache_load_done(ld, v.data ? RCACHE_OK : RCACHE_ENOMEM, &v);
}

/* Starts the flow's OPS operations; started[i]: whether a callback is owed. */
static void flow(rcache *c, rec *r, bool *started) {
  const char *keys[] = {"w:a", "w:b", "w:c"};
  rcache_value vals[] = {{"1", 1}, {"2", 2}};
  json_t *j = json_pack("{s:[i,i]}", "x", 1, 2);
  rcache_status s[OPS] = {
      rcache_set_async(c, "w:a", "va", 2, 60, on_status, &r[0]),
      rcache_get_async(c, "w:a", on_value, &r[1]),
      rcache_get_many_async(c, keys, 3, on_many, &r[2]),
      rcache_set_many_async(c, keys, vals, 2, 60, on_status, &r[3]),
      j ? rcache_set_json_async(c, "w:j", j, 60, on_status, &r[4]) : RCACHE_ENOMEM,
      rcache_get_or_set_async(c, "w:g", 60, loader, NULL, on_value, &r[5]),
      rcache_incr_async(c, "w:n", 1, NULL, NULL) == RCACHE_OK
          ? rcache_delete_async(c, "w:absent", on_status, &r[6])
          : RCACHE_ENOMEM,
      rcache_get_json_async(c, "w:j", on_json, &r[7]),
  };
  if (j) json_decref(j);
  for (int i = 0; i < OPS; i++) {
    started[i] = s[i] == RCACHE_OK;
    if (s[i] != RCACHE_OK && s[i] != RCACHE_ENOMEM) {
      t_failed++;
      fprintf(stderr, "FAIL: operation %d started with %s\n", i, rcache_strerror(s[i]));
    }
  }
}

int main(void) {
  rcache__alloc_route_deps();
  int64_t n = 0;
  for (; n < 2000; n++) {
    rcache *c = NULL;
    if (rcache_open(&c, "memory://", NULL) != RCACHE_OK) {
      CHECK(!"open memory://");
      break;
    }
    int done = 0;
    rec r[OPS] = {0};
    bool started[OPS];
    for (int i = 0; i < OPS; i++)
      r[i].done = &done;
    rcache__alloc_fail_after(n, true);
    flow(c, r, started);
    bool hit = rcache__alloc_fail_hit();
    rcache__alloc_fail_after(-1, false);
    int owed = 0;
    for (int i = 0; i < OPS; i++)
      owed += started[i];
    for (int k = 0; k < 10000 && done < owed; k++)
      await_async_turn(c, 10, NULL);
    rcache_async_process(c);
    for (int i = 0; i < OPS; i++) {
      CHECK_EQ(r[i].calls, started[i] ? 1 : 0);
      /* no failure reaches a callback: the workers' allocations are never failed here (the
       * reads may miss when the write before them failed to start) */
      if (started[i]) CHECK(r[i].s == RCACHE_OK || r[i].s == RCACHE_MISS);
    }
    rcache_close(c);
    if (!hit) break;
  }
  printf("async allocation walk: %lld allocations failed in turn\n", (long long)n);
  CHECK(n > 10); /* the walk did reach the flow's allocations */
  return test_report("test_async_alloc");
}
