/* SPDX-License-Identifier: BSD-3-Clause */
/* <rcache/event.h>: a real libevent loop drives the non-blocking API (adapter_test.h). */
#include <stdlib.h>

#include "rcache/event.h"

#include "adapter_test.h"

static struct event_base *base;
static rcache_levent adapter;

typedef struct later {
  void (*fn)(void *);
  void *arg;
} later;

static void later_fire(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  later *l = arg;
  l->fn(l->arg);
  free(l);
}

static void at_later(void (*fn)(void *), void *arg) {
  later *l = calloc(1, sizeof *l);
  l->fn = fn;
  l->arg = arg;
  struct timeval tv = {0, 20000};
  event_base_once(base, -1, EV_TIMEOUT, later_fire, l, &tv);
}

static void stop(void) {
  rcache_levent_detach(&adapter); /* nothing else is pending: the loop returns */
}

int main(void) {
  base = event_base_new();
  rcache *c = at_open();
  if (!c || !base) return test_report("test_event");
  CHECK_EQ(rcache_levent_attach(&adapter, base, c), 0);
  at_later(at_start, NULL);
  CHECK_EQ(event_base_dispatch(base), 1); /* 1: it ran out of events */
  at_check();
  event_base_free(base);
  return test_report("test_event");
}
