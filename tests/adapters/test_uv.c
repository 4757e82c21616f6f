/* SPDX-License-Identifier: BSD-3-Clause */
/* <rcache/uv.h>: a real libuv loop drives the non-blocking API (adapter_test.h). */
#include <stdlib.h>

#include "rcache/uv.h"

#include "adapter_test.h"

static uv_loop_t loop;
static rcache_uv adapter;

typedef struct later {
  uv_timer_t t;
  void (*fn)(void *);
  void *arg;
} later;

static void later_closed(uv_handle_t *h) {
  free(h->data);
}

static void later_fire(uv_timer_t *t) {
  later *l = t->data;
  l->fn(l->arg);
  uv_close((uv_handle_t *)t, later_closed);
}

static void at_later(void (*fn)(void *), void *arg) {
  later *l = calloc(1, sizeof *l);
  l->fn = fn;
  l->arg = arg;
  uv_timer_init(&loop, &l->t);
  l->t.data = l;
  uv_timer_start(&l->t, later_fire, 20, 0);
}

static void stop(void) {
  rcache_uv_detach(&adapter); /* nothing else is active: uv_run returns */
}

int main(void) {
  uv_loop_init(&loop);
  rcache *c = at_open();
  if (!c) return test_report("test_uv");
  CHECK_EQ(rcache_uv_attach(&adapter, &loop, c), 0);
  at_later(at_start, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  at_check();
  CHECK_EQ(uv_loop_close(&loop), 0); /* every handle closed */
  return test_report("test_uv");
}
