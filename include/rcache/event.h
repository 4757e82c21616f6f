/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rcache's non-blocking API on a libevent 2 loop (docs/async.md). Header-only: include it in a
 * program that links libevent (pkg-config libevent); the rcache library itself does not.
 *
 *   rcache_levent e;
 *   rcache_levent_attach(&e, base, c);            // once, on the loop's thread
 *   rcache_get_async(c, "user:42", on_user, req); // from any callback on that loop
 *   ...
 *   rcache_levent_detach(&e);                     // then rcache_close(c), on the loop's thread
 *
 * A persistent read event on rcache_async_fd() and a timer at rcache_async_timeout_ms() both
 * call rcache_async_process(), so callbacks run on the loop's thread.
 */
#ifndef RCACHE_EVENT_H
#define RCACHE_EVENT_H

#include <event2/event.h>

#include "rcache/rcache.h"

/* The adapter's state: the caller's memory, valid from attach to detach. */
typedef struct rcache_levent {
  struct event *rd, *timer;
  rcache *c;
} rcache_levent;

static inline void rcache_levent__run(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  rcache_levent *e = (rcache_levent *)arg;
  rcache_async_process(e->c);
  if (!e->c) return; /* a callback detached */
  int64_t ms = rcache_async_timeout_ms(e->c);
  if (ms < 0) {
    evtimer_del(e->timer);
  } else {
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(e->timer, &tv);
  }
}

/* Drives c's async operations from base. Returns 0, or -1 (no memory, no descriptor). */
static inline int rcache_levent_attach(rcache_levent *e, struct event_base *base, rcache *c) {
  int fd = rcache_async_fd(c);
  if (fd < 0) return -1;
  e->c = c;
  e->rd = event_new(base, fd, EV_READ | EV_PERSIST, rcache_levent__run, e);
  e->timer = evtimer_new(base, rcache_levent__run, e);
  if (!e->rd || !e->timer || event_add(e->rd, NULL) != 0) {
    if (e->rd) event_free(e->rd);
    if (e->timer) event_free(e->timer);
    e->rd = e->timer = NULL;
    return -1;
  }
  rcache_levent__run(fd, 0, e);
  return 0;
}

/* Stops watching and frees the events. May be called from a callback. Call it before
 * rcache_close(c). */
static inline void rcache_levent_detach(rcache_levent *e) {
  e->c = NULL;
  if (e->rd) event_free(e->rd);
  if (e->timer) event_free(e->timer);
  e->rd = e->timer = NULL;
}

#endif
