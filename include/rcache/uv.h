/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rcache's non-blocking API on a libuv loop (docs/async.md). Header-only: include it in a
 * program that links libuv (pkg-config libuv); the rcache library itself does not.
 *
 *   rcache_uv u;
 *   rcache_uv_attach(&u, uv_default_loop(), c);   // once, on the loop's thread
 *   rcache_get_async(c, "user:42", on_user, req); // from any callback on that loop
 *   ...
 *   rcache_uv_detach(&u);                         // then rcache_close(c), on the loop's thread
 *
 * A uv_poll_t watches rcache_async_fd() and a uv_timer_t fires at rcache_async_timeout_ms();
 * both call rcache_async_process(), so callbacks run on the loop's thread.
 */
#ifndef RCACHE_UV_H
#define RCACHE_UV_H

#include <uv.h>

#include "rcache/rcache.h"

/* The adapter's state: the caller's memory, valid from rcache_uv_attach() until the loop has
 * closed its handles after rcache_uv_detach() (the next turn of the loop). */
typedef struct rcache_uv {
  uv_poll_t poll;
  uv_timer_t timer;
  rcache *c;
} rcache_uv;

static inline void rcache_uv__on_timer(uv_timer_t *t);

static inline void rcache_uv__run(rcache_uv *u) {
  rcache_async_process(u->c);
  if (!u->c) return; /* a callback detached */
  int64_t ms = rcache_async_timeout_ms(u->c);
  if (ms < 0)
    uv_timer_stop(&u->timer);
  else
    uv_timer_start(&u->timer, rcache_uv__on_timer, (uint64_t)ms, 0);
}

static inline void rcache_uv__on_timer(uv_timer_t *t) {
  rcache_uv__run((rcache_uv *)t->data);
}

static inline void rcache_uv__on_poll(uv_poll_t *p, int status, int events) {
  (void)status;
  (void)events;
  rcache_uv__run((rcache_uv *)p->data);
}

/* Drives c's async operations from loop. Returns 0, or a libuv error (UV_EINVAL when the
 * descriptor cannot be made: see rcache_async_fd). */
static inline int rcache_uv_attach(rcache_uv *u, uv_loop_t *loop, rcache *c) {
  int fd = rcache_async_fd(c);
  if (fd < 0) return UV_EINVAL;
  u->c = c;
  int rc = uv_poll_init(loop, &u->poll, fd);
  if (rc != 0) return rc;
  uv_timer_init(loop, &u->timer);
  u->poll.data = u->timer.data = u;
  rc = uv_poll_start(&u->poll, UV_READABLE, rcache_uv__on_poll);
  if (rc != 0) {
    uv_close((uv_handle_t *)&u->poll, NULL);
    uv_close((uv_handle_t *)&u->timer, NULL);
    return rc;
  }
  rcache_uv__run(u);
  return 0;
}

/* Stops watching (the handles close on the loop's next turn). May be called from a callback.
 * Call it before rcache_close(c); the loop then has nothing of rcache's left to run. */
static inline void rcache_uv_detach(rcache_uv *u) {
  u->c = NULL;
  uv_close((uv_handle_t *)&u->poll, NULL);
  uv_close((uv_handle_t *)&u->timer, NULL);
}

#endif
