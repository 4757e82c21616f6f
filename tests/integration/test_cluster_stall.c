/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Stalled masters (SIGSTOP) under batches, on a private 3-master cluster started here (node
 * timeout 15 s, so nobody fails over while they are paused): a batch spanning several
 * masters gets its answers within ONE deadline — connect_timeout_ms + command_timeout_ms —
 * however many of its masters stall (their exchanges run at the same time, not one after
 * the other), keys on the live masters are answered, the health check too answers within
 * one deadline, and once the masters resume the cache is used again with every value
 * intact.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "await.h"
#include "backends/slot.h"
#include "rcache/rcache.h"
#include "redis_proc.h"
#include "test.h"

#define CONNECT_MS 200
#define COMMAND_MS 800
#define SLACK_MS 300
#define NKEYS 60

static rp_cluster cl;
static const char *keys[NKEYS];
static char keybuf[NKEYS][32];

static int owner_of(int i) {
  return rp_cluster_owner(&cl, rcache__slot(keys[i], strlen(keys[i])));
}

/* get_many over every key: elapsed ms. *ok counts the right values, *wrong_status the keys
 * of running masters not answered and of stopped ones answered other than unavailable. */
static int64_t batch(rcache *c, const bool *stopped, const int *owner, int *ok, int *wrong_status,
                     bool quiet) {
  rcache_value vals[NKEYS];
  rcache_status st[NKEYS];
  int64_t t0 = rp_now_ms();
  rcache_status s = rcache_get_many(c, keys, NKEYS, vals, st);
  int64_t d = rp_now_ms() - t0;
  *ok = *wrong_status = 0;
  for (int i = 0; i < NKEYS; i++) {
    bool down = stopped[owner[i]];
    if (!down && st[i] == RCACHE_OK && vals[i].len == strlen(keys[i]) &&
        memcmp(vals[i].data, keys[i], vals[i].len) == 0)
      (*ok)++;
    else if (!(down && st[i] == RCACHE_EUNAVAILABLE) && (*wrong_status)++ < 3 && !quiet)
      fprintf(stderr, "  %s (master %d %s): status %d\n", keys[i], owner[i],
              down ? "stopped" : "running", st[i]);
    rcache_value_free(&vals[i]);
  }
  (void)s;
  return d;
}

/* A seed list whose every node is stalled, with a connect deadline far away (FAR_MS):
 * rcache_open reads the slot map in the background, so it returns before that deadline,
 * and rcache_close abandons the first contact instead of waiting it out, without logging
 * an outage. The far deadline is ~100x what open and close take; both are printed. */
#define FAR_MS 20000
static int down_lines;
static void count_down(int level, const char *msg, void *ud) {
  (void)level;
  (void)ud;
  if (strstr(msg, "cache unavailable")) down_lines++;
}

static void stalled_seeds(void) {
  char url[256];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d?connect_timeout_ms=%d",
           cl.node[0].port, cl.node[1].port, cl.node[2].port, FAR_MS);
  rcache_options o;
  rcache_options_init(&o);
  o.log_fn = count_down;
  rcache *c = NULL;
  int64_t t0 = rp_now_ms();
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  int64_t open_ms = rp_now_ms() - t0;
  CHECK_MSG(open_ms < FAR_MS, "rcache_open waited for the first map: %lld ms", (long long)open_ms);
  if (!c) return;
  CHECK_STR(rcache_mode(c), "cluster");
  t0 = rp_now_ms();
  rcache_close(c);
  int64_t close_ms = rp_now_ms() - t0;
  CHECK_MSG(close_ms < FAR_MS, "rcache_close waited out the first map: %lld ms",
            (long long)close_ms);
  CHECK_EQ(down_lines, 0); /* closing is no outage */
  printf("seed list, every node stalled: opened in %lld ms, closed in %lld ms\n",
         (long long)open_ms, (long long)close_ms);
}

int main(void) {
  if (rp_cluster_start(&cl, 3, 0, 15000, NULL) != 0) {
    CHECK_MSG(0, "could not start the private cluster");
    return test_report("test_cluster_stall");
  }
  char url[160], q[96];
  snprintf(q, sizeof q, "?connect_timeout_ms=%d&command_timeout_ms=%d", CONNECT_MS, COMMAND_MS);
  rp_cluster_url(&cl, 0, url, sizeof url, q);
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, NULL), RCACHE_OK);
  rcache_health h; /* its first contact (which finds the cluster) is made in the background */
  rcache_status hs = await_healthy(c, &h, AWAIT_MS);
  CHECK_MSG(hs == RCACHE_OK, "not healthy within %d ms: %s", AWAIT_MS, h.error);
  int owner[NKEYS], per[3] = {0};
  rcache_value vals[NKEYS];
  for (int i = 0; i < NKEYS; i++) {
    snprintf(keybuf[i], sizeof keybuf[i], "stall:%d", i);
    keys[i] = keybuf[i];
    vals[i].data = keybuf[i];
    vals[i].len = strlen(keybuf[i]);
    owner[i] = owner_of(i);
    CHECK(owner[i] >= 0 && owner[i] < 3);
    if (owner[i] >= 0 && owner[i] < 3) per[owner[i]]++;
  }
  CHECK(per[0] > 0 && per[1] > 0 && per[2] > 0);
  CHECK_EQ(rcache_set_many(c, keys, vals, NKEYS, 300), RCACHE_OK);
  bool stopped[3] = {false, false, false};
  int ok, wrong;
  batch(c, stopped, owner, &ok, &wrong, false);
  CHECK_EQ(ok, NKEYS);

  /* one master stalled: its keys unavailable, the others answered, one deadline */
  kill(cl.node[0].pid, SIGSTOP);
  stopped[0] = true;
  int64_t d = batch(c, stopped, owner, &ok, &wrong, false);
  printf("one master stalled: get_many of %d keys took %lld ms; %d answered\n", NKEYS, (long long)d,
         ok);
  CHECK_EQ(ok, NKEYS - per[0]);
  CHECK_EQ(wrong, 0);
  CHECK_MSG(d <= CONNECT_MS + COMMAND_MS + SLACK_MS, "%lld ms", (long long)d);

  /* all three stalled: still one deadline, not three */
  kill(cl.node[1].pid, SIGSTOP);
  kill(cl.node[2].pid, SIGSTOP);
  stopped[1] = stopped[2] = true;
  d = batch(c, stopped, owner, &ok, &wrong, false);
  printf("three masters stalled: get_many took %lld ms (one command timeout is %d ms)\n",
         (long long)d, COMMAND_MS);
  CHECK_EQ(wrong, 0);
  CHECK_MSG(d <= CONNECT_MS + COMMAND_MS + SLACK_MS, "%lld ms", (long long)d);
  int64_t t0 = rp_now_ms();
  rcache_status s = rcache_set_many(c, keys, vals, NKEYS, 300);
  d = rp_now_ms() - t0;
  printf("three masters stalled: set_many took %lld ms (%s)\n", (long long)d, rcache_strerror(s));
  CHECK_EQ(s, RCACHE_EUNAVAILABLE);
  CHECK_MSG(d <= CONNECT_MS + COMMAND_MS + SLACK_MS, "%lld ms", (long long)d);
  t0 = rp_now_ms();
  s = rcache_health_check(c, &h);
  d = rp_now_ms() - t0;
  printf("three masters stalled: health check took %lld ms: %s\n", (long long)d, h.error);
  CHECK(s != RCACHE_OK && !h.healthy);
  CHECK(strstr(h.error, "master 127.0.0.1:") != NULL);
  CHECK_MSG(d <= CONNECT_MS + COMMAND_MS + SLACK_MS, "%lld ms", (long long)d);
  stalled_seeds();

  /* resumed: used again, values intact */
  for (int i = 0; i < 3; i++)
    kill(cl.node[i].pid, SIGCONT);
  stopped[0] = stopped[1] = stopped[2] = false;
  int64_t back = -1;
  for (t0 = rp_now_ms(); rp_now_ms() - t0 < 10000; rp_sleep_ms(50)) {
    batch(c, stopped, owner, &ok, &wrong, true); /* breakers closing again: not yet news */
    if (ok == NKEYS) {
      back = rp_now_ms() - t0;
      break;
    }
  }
  printf("resumed: every key answered again after %lld ms\n", (long long)back);
  CHECK(back >= 0);
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_OK);
  CHECK(h.healthy && h.latency_ms > 0 && strncmp(h.server_version, "7.", 2) == 0);
  rcache_close(c);
  return test_report("test_cluster_stall");
}
