/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Allocation failure against a real Redis, standalone (RCACHE_TEST_URL_TCP), Cluster
 * (RCACHE_TEST_URL_CLUSTER) and Sentinel (RCACHE_TEST_URL_SENTINEL); tests/alloc_walk.h
 * explains the walk: rcache_open with URL options and
 * the near cache (its invalidation listener and the prober start in their own threads), set, get, a
 * near-cache hit, get_or_set, delete, health, tags, close (and on standalone again without the
 * near cache, for tagged reads by script and by GET + MGET; on Cluster again with strict_config,
 * whose open detects the cluster in the calling thread). Every call returns RCACHE_ENOMEM or
 * what it returns without the failure, nothing leaks, and the handle works again afterwards. Then
 * every allocation of every thread fails for a while (the background threads included): nothing
 * crashes or wedges, and once memory comes back the handle and its near cache (which must hear
 * another client's write again) work. Last, with publish_stats_s on (standalone): open, a few
 * calls, a publish on the calling thread (rcache__publish_now: the walk counts only this
 * thread's allocations, and the publisher's thread would publish when it likes) and close;
 * afterwards the handle works and publishes again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc_walk.h"
#include "handle.h" /* rcache__publish_now */

/* One server flavour: its URL (with options) and a handle that resets the keys between
 * runs (never armed). */
typedef struct target {
  const char *name;
  char name_buf[64];
  char url[1024];
  rcache *admin;
} target;

static char prefix[64];
static rcache_options opt;

static void quiet_log(int level, const char *msg, void *ud) {
  (void)level;
  (void)msg;
  (void)ud;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void reset_keys(rcache *admin) {
  /* tag state too: every run creates its version keys afresh (the same allocations) */
  const char *keys[] = {"k1",
                        "g1",
                        "absent",
                        "m1",
                        "m2",
                        "n1",
                        "ta1",
                        "tb1",
                        "tb2",
                        "tb3",
                        "tc1",
                        "tc2",
                        "tc3",
                        "td1",
                        "__rc:clear",
                        "__rc:tag:tag:a",
                        "__rc:tag:tag:c",
                        "__rc:tag:tag:c2",
                        "__rc:tag:tag:d"};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    rcache_status s = rcache_delete(admin, keys[i]);
    CHECK_MSG(s == RCACHE_OK || s == RCACHE_MISS, "reset %s: %s", keys[i], rcache_errmsg(admin));
  }
}

static void calls(aw *w, rcache *c) {
  char t[256];
  rcache_value v;
  aw_group(w);
  rcache_status s = rcache_set(c, "k1", "value1", 6, 60);
  AW_REC(w, s, NULL);
  s = rcache_get(c, "k1", &v); /* a near-cache miss: the value is kept */
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  rcache_value_free(&v);
  s = rcache_get(c, "k1", &v); /* a near-cache hit, once the listener is up */
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  rcache_value_free(&v);
  s = rcache_delete(c, "k1");
  AW_REC(w, s, NULL);
  aw_group(w);
  s = rcache_get(c, "absent", &v);
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  aw_group(w);
  s = rcache_get_or_set(c, "g1", 60, aw_load_text, "loaded", &v);
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  rcache_value_free(&v);
  s = rcache_get_or_set(c, "g1", 60, aw_load_text, "not this", &v);
  AW_REC(w, s, aw_vtext(t, sizeof t, &v));
  rcache_value_free(&v);
  aw_group(w);
  const char *keys[2] = {"m1", "m2"};
  rcache_value vals[2] = {{"one", 3}, {"two", 3}};
  s = rcache_set_many(c, keys, vals, 2, 60);
  AW_REC(w, s, NULL);
  aw_rec_get_many(w, __LINE__, c, keys, 2);
  uint64_t n = 0;
  s = rcache_delete_prefix(c, "m", &n);
  snprintf(t, sizeof t, "%llu", (unsigned long long)n);
  AW_REC(w, s, s == RCACHE_ENOMEM ? NULL : t);
  aw_group(w);
  int64_t x = 0;
  s = rcache_incr(c, "n1", 3, &x);
  snprintf(t, sizeof t, "%lld", (long long)x);
  AW_REC(w, s, t);
  aw_group(w);
  rcache_health h;
  s = rcache_health_check(c, &h);
  AW_REC(w, s, h.mode);
}

/* A flow's start: tg's keys reset, the walk armed, the handle opened (NULL when it failed) and
 * recorded. */
static rcache *flow_open(aw *w, target *tg) {
  reset_keys(tg->admin);
  rcache *c = NULL;
  w->c = NULL;
  aw_arm(w);
  rcache_status s = rcache_open(&c, tg->url, &opt);
  if (s == RCACHE_ENOMEM && !*rcache_errmsg(NULL)) aw_fail(w, __LINE__, "ENOMEM without message");
  AW_REC(w, s, s == RCACHE_OK ? rcache_mode(c) : NULL);
  w->c = c;
  return c;
}

static void redis_flow(aw *w, void *ud) {
  target *tg = ud;
  rcache *c = flow_open(w, tg);
  if (c) {
    calls(w, c);
    aw_tag_calls(w, c);
  }
  aw_disarm(w);
  if (c && !aw_round_trip(c, "after:walk"))
    aw_fail(w, 0, "the handle does not work after the walk: %s", rcache_errmsg(c));
  rcache_close(c);
  w->c = NULL;
}

/* A write by another client reaches c's near cache (bounded wait). */
static bool near_hears(rcache *c, const char *val) {
  for (int i = 0; i < 500; i++) {
    rcache_value v = {NULL, 0};
    bool seen = rcache_get(c, "k1", &v) == RCACHE_OK && v.len == strlen(val) &&
                memcmp(v.data, val, v.len) == 0;
    rcache_value_free(&v);
    if (seen) return true;
    sleep_ms(10);
  }
  return false;
}

/* Every allocation of every thread fails for a while; then everything works again. */
static void all_threads(target *tg) {
  rcache *admin = tg->admin;
  rcache *c = NULL;
  CHECK(rcache_open(&c, tg->url, &opt) == RCACHE_OK);
  if (!c) return;
  rcache_value v = {NULL, 0};
  CHECK(rcache_set(admin, "k1", "before", 6, 60) == RCACHE_OK);
  CHECK(rcache_get(c, "k1", &v) == RCACHE_OK); /* tracked: its invalidations come */
  rcache_value_free(&v);
  rcache__alloc_fail_all(true);
  int odd = 0;
  for (int i = 0; i < 50; i++) { /* calls go on meanwhile */
    rcache_status s = rcache_set(c, "k2", "x", 1, 60);
    if (s != RCACHE_ENOMEM && s != RCACHE_OK) odd++;
    s = rcache_get(c, "k1", &v);
    rcache_value_free(&v);
    if (s != RCACHE_ENOMEM && s != RCACHE_OK) odd++;
    sleep_ms(5);
  }
  rcache__alloc_fail_all(false);
  CHECK_MSG(odd == 0, "%d calls returned neither ENOMEM nor OK while memory was out", odd);
  bool works = false;
  for (int i = 0; i < 500 && !works; i++) { /* the breaker may need a probe to close */
    works = aw_round_trip(c, "after:all");
    if (!works) sleep_ms(10);
  }
  CHECK_MSG(works, "the handle does not work after every thread ran out: %s", rcache_errmsg(c));
  CHECK(rcache_set(admin, "k1", "after", 5, 60) == RCACHE_OK);
  CHECK_MSG(near_hears(c, "after"), "the near cache no longer hears other clients");
  rcache_close(c);
  reset_keys(admin);
}

/* publish_flow's handle's key: <prefix>__rc:stats:walker:<host>:<pid> (publish.c's), less the
 * prefix, which the admin handle has too. */
static void stats_key(char *key, size_t size) {
  char host[256] = "";
  if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "-");
  snprintf(key, size, "__rc:stats:walker:%s:%ld", host, (long)getpid());
}

/* The document is gone (admin deletes it), then a publish on c writes it again. */
static bool publishes_again(rcache *admin, rcache *c) {
  char key[512];
  stats_key(key, sizeof key);
  rcache_status d = rcache_delete(admin, key);
  rcache_status s = rcache__publish_now(c);
  rcache_value v = {NULL, 0};
  bool there = rcache_get(admin, key, &v) == RCACHE_OK && v.data &&
               strstr(v.data, "\"client\":\"walker\"") && strstr(v.data, "\"closed\":false");
  rcache_value_free(&v);
  return (d == RCACHE_OK || d == RCACHE_MISS) && s == RCACHE_OK && there;
}

/* open, a few calls, a publish, close: with publish_stats_s (a long interval, so that the
 * publisher's own thread writes only as the handle opens and closes). */
static void publish_flow(aw *w, void *ud) {
  target *tg = ud;
  char t[256];
  rcache *c = flow_open(w, tg);
  rcache_status s;
  if (c) {
    rcache_value v;
    aw_group(w);
    s = rcache_set(c, "k1", "value1", 6, 60);
    AW_REC(w, s, NULL);
    aw_rec_get(w, __LINE__, c, "k1", NULL, 0);
    aw_group(w);
    s = rcache_get_or_set(c, "g1", 60, aw_load_text, "loaded", &v);
    AW_REC(w, s, aw_vtext(t, sizeof t, &v));
    rcache_value_free(&v);
    aw_group(w);
    w->c = NULL; /* internal: its ENOMEM leaves no message for rcache_errmsg() */
    AW_REC(w, rcache__publish_now(c), NULL);
    w->c = c;
  }
  aw_disarm(w);
  if (c && !aw_round_trip(c, "after:walk"))
    aw_fail(w, 0, "the handle does not work after the walk: %s", rcache_errmsg(c));
  if (c && !publishes_again(tg->admin, c))
    aw_fail(w, 0, "the handle does not publish again after the walk");
  aw_arm(w);
  rcache_close(c); /* its last publish, on this thread */
  aw_disarm(w);
  w->c = NULL;
}

static bool target_open(target *tg, const char *name, const char *var) {
  const char *base = test_env_url(var);
  tg->name = name;
  /* URL options as well as struct ones; generous timeouts for the sanitizer builds */
  snprintf(tg->url, sizeof tg->url,
           "%s%cconnect_timeout_ms=2000&command_timeout_ms=2000&pool=2&client_name=walker"
           "&key_prefix=%s",
           base, strchr(base, '?') ? '&' : '?', prefix);
  if (rcache_open(&tg->admin, tg->url, NULL) == RCACHE_OK) return true;
  fprintf(stderr, "FAIL: open %s: %s\n", tg->url, rcache_errmsg(NULL));
  t_failed++;
  return false;
}

int main(void) {
  rcache__alloc_route_deps();
  snprintf(prefix, sizeof prefix, "allocwalk:%ld:", (long)getpid());
  rcache_options_init(&opt);
  opt.log_fn = quiet_log;
  opt.near_cache_bytes = 1 << 20;
  opt.lease = true;
  target tg[3];
  if (target_open(&tg[0], "redis flow (standalone)", "RCACHE_TEST_URL_TCP")) {
    aw_walk_x(tg[0].name, true, false, redis_flow, &tg[0]);
    aw_walk_x(tg[0].name, false, false, redis_flow, &tg[0]);
    all_threads(&tg[0]);
    /* without the near cache: tagged reads by script and by GET + MGET */
    opt.near_cache_bytes = 0;
    snprintf(tg[0].name_buf, sizeof tg[0].name_buf, "%s", "redis flow (standalone, no near cache)");
    tg[0].name = tg[0].name_buf;
    aw_walk_x(tg[0].name, true, false, redis_flow, &tg[0]);
    aw_walk_x(tg[0].name, false, false, redis_flow, &tg[0]);
    /* the stats publisher, without the near cache (walked above) */
    opt.near_cache_bytes = 0;
    opt.publish_stats_s = 3600;
    snprintf(tg[0].name_buf, sizeof tg[0].name_buf, "%s", "publish flow (standalone)");
    aw_walk_x(tg[0].name, true, false, publish_flow, &tg[0]);
    aw_walk_x(tg[0].name, false, false, publish_flow, &tg[0]);
    opt.publish_stats_s = 0;
    opt.near_cache_bytes = 1 << 20;
    char key[512];
    stats_key(key, sizeof key);
    CHECK(rcache_delete(tg[0].admin, key) == RCACHE_OK); /* closed: its last figures */
    rcache_close(tg[0].admin);
  }
  if (target_open(&tg[1], "redis flow (cluster)", "RCACHE_TEST_URL_CLUSTER")) {
    aw_walk_x(tg[1].name, true, false, redis_flow, &tg[1]);
    aw_walk_x(tg[1].name, false, false, redis_flow, &tg[1]);
    /* strict_config: open makes the first contact itself, so the walk reaches the cluster
     * detection of the one-seed URL (in the background it is another thread's) */
    opt.strict_config = true;
    snprintf(tg[1].name_buf, sizeof tg[1].name_buf, "%s", "redis flow (cluster, strict_config)");
    tg[1].name = tg[1].name_buf;
    aw_walk_x(tg[1].name, true, false, redis_flow, &tg[1]);
    aw_walk_x(tg[1].name, false, false, redis_flow, &tg[1]);
    opt.strict_config = false;
    rcache_close(tg[1].admin);
  }
  if (target_open(&tg[2], "redis flow (sentinel)", "RCACHE_TEST_URL_SENTINEL")) {
    aw_walk_x(tg[2].name, true, false, redis_flow, &tg[2]);
    aw_walk_x(tg[2].name, false, false, redis_flow, &tg[2]);
    rcache_close(tg[2].admin);
  }
  return test_report("test_alloc_fail_redis");
}
