/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What both adapter tests (test_uv.c, test_event.c) check, written once: a real loop drives
 * OPS operations against the real server (RCACHE_TEST_URL_TCP) and a get_or_set whose loader
 * finishes later from a loop timer (a database query on the same loop). The test file provides
 * at_later(): run a function on the loop after a few milliseconds, and stop(): detach the
 * adapter once everything is done.
 */
#ifndef RCACHE_ADAPTER_TEST_H
#define RCACHE_ADAPTER_TEST_H

#include <pthread.h>
#include <unistd.h>

#include "rcache/rcache.h"
#include "support/await.h"
#include "test.h"

#define OPS 500

static void at_later(void (*fn)(void *), void *arg); /* by the test file */
static void stop(void);                              /* by the test file */

static rcache *at_c;
static pthread_t at_loop;
static int at_calls[OPS + 1], at_done, at_wrong;
static rcache_status at_status[OPS + 1];
static rcache_value at_loaded;

static void at_count(int i, rcache_status s) {
  if (!pthread_equal(pthread_self(), at_loop)) at_wrong++;
  at_calls[i]++;
  at_status[i] = s;
  if (++at_done == OPS + 1) stop();
}

static void at_on_status(void *ud, rcache_status s) {
  at_count((int)(intptr_t)ud, s);
}

static void at_on_value(void *ud, rcache_status s, rcache_value v) {
  int i = (int)(intptr_t)ud;
  if (i == OPS)
    at_loaded = v;
  else
    rcache_value_free(&v);
  at_count(i, s);
}

static void at_finish_load(void *ld) {
  rcache_value v = {strdup("from-db"), 7};
  rcache_load_done(ld, RCACHE_OK, &v);
}

static void at_loader(void *ud, const char *key, rcache_load *ld) {
  (void)ud;
  (void)key;
  at_later(at_finish_load, ld); /* the query answers later, on the loop */
}

/* Starts everything, from a callback on the loop. */
static void at_start(void *arg) {
  (void)arg;
  char key[32];
  int bad = 0;
  for (int i = 0; i < OPS; i++) {
    snprintf(key, sizeof key, "ad:%d", i % 50);
    rcache_status s =
        i % 2 ? rcache_get_async(at_c, key, at_on_value, (void *)(intptr_t)i)
              : rcache_set_async(at_c, key, "v", 1, 60, at_on_status, (void *)(intptr_t)i);
    if (s != RCACHE_OK) bad++;
  }
  rcache_delete(at_c, "ad:gos");
  if (rcache_get_or_set_async(at_c, "ad:gos", 60, at_loader, NULL, at_on_value,
                              (void *)(intptr_t)OPS) != RCACHE_OK)
    bad++;
  CHECK_EQ(bad, 0);
  for (int i = 0; i <= OPS; i++)
    CHECK_EQ(at_calls[i], 0); /* none before their start returned */
}

static rcache *at_open(void) {
  char ns[64];
  snprintf(ns, sizeof ns, "adapter-%ld:", (long)getpid());
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = ns;
  rcache *c = NULL;
  rcache_status s = rcache_open(&c, test_env_url("RCACHE_TEST_URL_TCP"), &o);
  CHECK_MSG(s == RCACHE_OK, "open: %s", rcache_strerror(s));
  if (c) { /* the calls below expect the cache: its first contact is made in the background */
    rcache_health h;
    s = await_healthy(c, &h, AWAIT_MS);
    CHECK_MSG(s == RCACHE_OK, "not healthy within %d ms: %s", AWAIT_MS, h.error);
  }
  at_c = c;
  at_loop = pthread_self();
  return c;
}

/* After the loop returned: every callback once, with the blocking calls' statuses. */
static void at_check(void) {
  CHECK_EQ(at_done, OPS + 1);
  CHECK_EQ(at_wrong, 0);
  int bad = 0;
  for (int i = 0; i <= OPS; i++)
    if (at_calls[i] != 1 || (at_status[i] != RCACHE_OK && at_status[i] != RCACHE_MISS)) bad++;
  CHECK_EQ(bad, 0);
  CHECK_EQ(at_status[OPS], RCACHE_OK);
  CHECK(at_loaded.len == 7 && at_loaded.data && memcmp(at_loaded.data, "from-db", 7) == 0);
  rcache_value_free(&at_loaded);
  rcache_close(at_c);
}

#endif
