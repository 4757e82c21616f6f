/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fork() with an open handle (issue 15, point 1), the prefork model of nginx, Apache,
 * uWSGI or PHP-FPM: a handle opened and used in a master, then inherited by workers.
 *  a) prefork: the parent and 4 children on the inherited handle (standalone, Cluster,
 *     Sentinel; near cache off and on), each doing set + get of its own keys while the
 *     parent keeps working: no get answers RCACHE_OK with a value this process did not
 *     write; children that close the handle and children that just exit leave the
 *     parent's handle working;
 *  b) a child forked during an outage (its server stalled, or killed and started again)
 *     recovers within
 *     reconnect_max_ms + 1 s of the server coming back;
 *  c) a child's near cache sees another client's write within 1 s;
 *  d) with publish_stats_s, a child publishes its own figures under its own pid;
 *  e) the gauges of calls in progress (calls_in_flight, loads_in_progress) start from zero
 *     in a child: a parent thread's call caught by the fork never ends there.
 * Children are bounded (alarm, bounded loops) and always reaped; they leave by _exit (the
 * private servers' atexit handler belongs to the parent).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "await.h"
#include "rcache/rcache.h"
#include "redis_proc.h"
#include "test.h"

#define CHILDREN 4
#define ROUNDS 300

typedef struct tally {
  int ok, wrong, failed;
} tally;

/* set + get of this process's keys: a get must answer exactly what this process wrote,
 * or a non-OK status. */
static void work(rcache *c, const char *who, int rounds, tally *t) {
  size_t wl = strlen(who);
  for (int i = 0; i < rounds; i++) {
    char key[64], val[64];
    snprintf(key, sizeof key, "fork:%s:%d", who, i % 16);
    snprintf(val, sizeof val, "%s:%d", who, i);
    rcache_status s = rcache_set(c, key, val, strlen(val), 60);
    rcache_value v = {0};
    rcache_status g = rcache_get(c, key, &v);
    bool exact = g == RCACHE_OK && v.len == strlen(val) && memcmp(v.data, val, v.len) == 0;
    bool ours = g == RCACHE_OK && v.len > wl && memcmp(v.data, who, wl) == 0 && v.data[wl] == ':';
    if (exact)
      t->ok++;
    else if (g == RCACHE_OK && !(s != RCACHE_OK && ours)) /* someone else's, or stale */
      t->wrong++ < 3
          ? fprintf(stderr, "  %s: %s = '%.*s' (set %d)\n", who, key, (int)v.len, v.data, s)
          : 0;
    else if (g != RCACHE_OK)
      t->failed++;
    rcache_value_free(&v);
  }
}

/* In a child: signals the private servers' handlers must not run here. */
static void child_setup(void) {
  int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGSEGV, SIGABRT, SIGBUS, SIGQUIT};
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
    signal(sigs[i], SIG_DFL);
  alarm(60); /* whatever happens, the child ends */
}

/* Waits for pid by deadline (killing it then); its exit code, or -1. */
static int reap(pid_t pid, int ms) {
  int st = 0;
  for (int64_t until = rp_now_ms() + ms; rp_now_ms() < until; rp_sleep_ms(10))
    if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

static void prefork(const char *name, const char *url, bool near) {
  rcache_options o;
  rcache_options_init(&o);
  if (near) o.near_cache_bytes = 1 << 20;
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  if (!c) return;
  tally warm = {0};
  work(c, "warm", 32, &warm); /* pooled connections (and a listener) before the fork */
  CHECK_MSG(warm.ok == 32, "%s: warm-up %d/32", name, warm.ok);
  pid_t kids[CHILDREN];
  for (int k = 0; k < CHILDREN; k++) {
    kids[k] = fork();
    if (kids[k] == 0) {
      child_setup();
      char who[32];
      snprintf(who, sizeof who, "child%d-%ld", k, (long)getpid());
      tally t = {0};
      work(c, who, ROUNDS, &t);
      fprintf(stderr, "  %s %s: %d right, %d wrong, %d failed\n", name, who, t.ok, t.wrong,
              t.failed);
      if (k % 2 == 0) rcache_close(c); /* must not disturb the parent's connections */
      _exit(t.wrong ? 1 : t.ok < ROUNDS / 2 ? 2 : 0);
    }
    CHECK(kids[k] > 0);
  }
  char who[32];
  snprintf(who, sizeof who, "parent-%ld", (long)getpid());
  tally t = {0};
  work(c, who, ROUNDS, &t);
  for (int k = 0; k < CHILDREN; k++)
    if (kids[k] > 0) CHECK_MSG(reap(kids[k], 60000) == 0, "%s: child %d failed", name, k);
  tally after = {0};
  work(c, who, 50, &after); /* the children are gone, some after closing the handle */
  printf("%s%s: parent %d right, %d wrong, %d failed; after the children %d/50 right\n", name,
         near ? " + near cache" : "", t.ok, t.wrong, t.failed, after.ok);
  CHECK_EQ(t.wrong, 0);
  CHECK_EQ(after.wrong, 0);
  CHECK(t.ok >= ROUNDS / 2);
  CHECK_EQ(after.ok, 50);
  rcache_close(c);
}

/* b) A child forked while the server is down — stalled (SIGSTOP), or killed and started
 * again on its port: its breaker is open and its parent's prober thread is not there; it
 * must reconnect by itself. */
static void outage(bool killed) {
  rp_server n;
  if (rp_start(&n, &(rp_opts){.tag = "fork-outage"}) != 0) {
    CHECK_MSG(0, "could not start a private server");
    return;
  }
  rcache_options o;
  rcache_options_init(&o);
  o.connect_timeout_ms = 200;
  o.command_timeout_ms = 200;
  o.breaker_failures = 1;
  o.reconnect_max_ms = 500;
  char url[64];
  rp_url(&n, url, sizeof url, NULL);
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  CHECK_EQ(rcache_set(c, "fork:outage", "v", 1, 0), RCACHE_OK);
  if (killed)
    rp_kill(&n); /* the key is gone with it: the child writes it again below */
  else
    rp_pause(&n);
  rcache_stats st = {0};
  for (int i = 0; i < 50; i++) { /* until the breaker opens */
    rcache_value v = {0};
    rcache_get(c, "fork:outage", &v);
    rcache_value_free(&v);
    rcache_get_stats(c, &st);
    if (!st.available) break;
  }
  CHECK_MSG(!st.available, "the breaker did not open while the server was stopped");
  int go[2], done[2];
  CHECK(pipe(go) == 0 && pipe(done) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    child_setup();
    char b;
    if (read(go[0], &b, 1) != 1) _exit(3);
    int64_t t0 = rp_now_ms(), took = -1;
    while (took < 0 && rp_now_ms() - t0 < 5000) {
      rcache_value v = {0};
      if (rcache_set(c, "fork:outage", "v", 1, 0) == RCACHE_OK &&
          rcache_get(c, "fork:outage", &v) == RCACHE_OK && v.len == 1 && v.data[0] == 'v')
        took = rp_now_ms() - t0;
      rcache_value_free(&v);
      rp_sleep_ms(10);
    }
    fprintf(stderr, "  outage child (%s): answered %lld ms after the server was back\n",
            killed ? "killed, restarted" : "stopped, resumed", (long long)took);
    _exit(took >= 0 && took <= o.reconnect_max_ms + 1000 ? 0 : 1);
  }
  rp_sleep_ms(300); /* the child is forked during the outage, and stays in it a while */
  if (killed)
    CHECK_MSG(rp_launch(&n, false) == 0, "could not start the server again on port %d", n.port);
  else
    rp_resume(&n);
  CHECK(write(go[1], "g", 1) == 1);
  CHECK_MSG(reap(pid, 20000) == 0, "the child forked during the outage did not recover in time");
  rcache_close(c);
  close(go[0]);
  close(go[1]);
  close(done[0]);
  close(done[1]);
  rp_destroy(&n);
}

/* b') A child forked right after open, its first contact (finding the master through the
 * sentinels) perhaps not over: the parent's first-contact thread is not there, so the
 * child's first calls look the master up themselves. They never try a connection to no
 * address ("DNS look-up of  failed", as a child once did). */
static void early_child(const char *url) {
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, NULL), RCACHE_OK);
  if (!c) return;
  pid_t pid = fork();
  if (pid == 0) {
    child_setup();
    int64_t t0 = rp_now_ms();
    int rc = 1;
    while (rc == 1 && rp_now_ms() - t0 < 5000) {
      rcache_value v = {0};
      if (rcache_set(c, "fork:early", "e", 1, 60) == RCACHE_OK &&
          rcache_get(c, "fork:early", &v) == RCACHE_OK && v.len == 1 && v.data[0] == 'e')
        rc = 0;
      else if (strstr(rcache_errmsg(c), "look-up of  ") || strstr(rcache_errmsg(c), "to :"))
        rc = 2;
      rcache_value_free(&v);
      if (rc == 1) rp_sleep_ms(10);
    }
    if (rc == 2) fprintf(stderr, "  early child: %s\n", rcache_errmsg(c));
    _exit(rc);
  }
  int rc = reap(pid, 20000);
  CHECK_MSG(rc == 0, "the child forked right after open: %s",
            rc == 2 ? "it connected to no address" : "no answer within 5 s");
  rcache_close(c);
}

/* c) The near cache in a child: filled there, then another client writes the key. */
static void near_child(const char *url) {
  rcache_options o;
  rcache_options_init(&o);
  o.near_cache_bytes = 1 << 20;
  rcache *c = NULL, *other = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  CHECK_EQ(rcache_open(&other, url, NULL), RCACHE_OK);
  if (!c || !other) return;
  CHECK_EQ(rcache_set(other, "fork:near", "v1", 2, 60), RCACHE_OK);
  rcache_value v = {0};
  for (int i = 0; i < 3; i++) { /* in the parent's near table too */
    CHECK_EQ(rcache_get(c, "fork:near", &v), RCACHE_OK);
    rcache_value_free(&v);
  }
  int ready[2], wrote[2];
  CHECK(pipe(ready) == 0 && pipe(wrote) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    child_setup();
    rcache_stats s0, s1;
    rcache_get_stats(c, &s0);
    bool served = false; /* the child's own table serves (once its own listener is up) */
    for (int64_t t0 = rp_now_ms(); !served && rp_now_ms() - t0 < AWAIT_MS;) {
      rcache_value w = {0};
      rcache_status s = rcache_get(c, "fork:near", &w);
      if (s != RCACHE_OK || w.len != 2 || memcmp(w.data, "v1", 2) != 0) _exit(4);
      rcache_value_free(&w);
      rcache_get_stats(c, &s1);
      served = s1.near_hits > s0.near_hits + 1;
      if (!served) rp_sleep_ms(10);
    }
    if (!served) _exit(5);
    char b;
    if (write(ready[1], "r", 1) != 1 || read(wrote[0], &b, 1) != 1) _exit(3);
    int64_t t0 = rp_now_ms(), took = -1;
    while (took < 0 && rp_now_ms() - t0 < AWAIT_MS) {
      rcache_value w = {0};
      if (rcache_get(c, "fork:near", &w) == RCACHE_OK && w.len == 2 && !memcmp(w.data, "v2", 2))
        took = rp_now_ms() - t0;
      rcache_value_free(&w);
      if (took < 0) rp_sleep_ms(5);
    }
    fprintf(stderr, "  near child: saw the other client's write after %lld ms\n", (long long)took);
    _exit(took >= 0 ? 0 : 1);
  }
  char b;
  bool ok = read(ready[0], &b, 1) == 1;
  CHECK_MSG(ok, "the child's near cache never served");
  if (ok) CHECK_EQ(rcache_set(other, "fork:near", "v2", 2, 60), RCACHE_OK);
  CHECK(write(wrote[1], "w", 1) == 1);
  CHECK_MSG(reap(pid, AWAIT_MS + 10000) == 0, "the child did not see the write within %d ms",
            AWAIT_MS);
  for (int i = 0; i < 4; i++)
    close(i < 2 ? ready[i] : wrote[i - 2]);
  rcache_close(other);
  rcache_close(c);
}

/* d) publish_stats_s across fork(): the child's publisher is its own (its key names its
 * pid) and its last figures, written as it closes the handle, count the child's gets. */
static bool published(rcache *c, long pid, const char *want) {
  char host[256] = "", key[512];
  gethostname(host, sizeof host - 1);
  snprintf(key, sizeof key, "__rc:stats:forkpub:%s:%ld", host, pid);
  rcache_value v = {0};
  bool ok = rcache_get(c, key, &v) == RCACHE_OK && strstr(v.data, want) != NULL;
  if (!ok) fprintf(stderr, "  %s: %s\n", key, v.data ? v.data : "(absent)");
  rcache_value_free(&v);
  return ok;
}

static void publish_child(const char *url) {
  rcache_options o;
  rcache_options_init(&o);
  o.publish_stats_s = 60;
  o.client_name = "forkpub";
  char prefix[64];
  snprintf(prefix, sizeof prefix, "forkpub:%ld:", (long)getpid());
  o.key_prefix = prefix;
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  if (!c) return;
  /* the first contact over before the fork: under TSan a child forked while it was connecting
   * once never exited (a clean-clone run on 2026-12-06; see the issue note) */
  rcache_health h;
  CHECK_EQ(await_healthy(c, &h, 20000), RCACHE_OK);
  pid_t pid = fork();
  if (pid == 0) {
    child_setup();
    rcache_value v;
    for (int i = 0; i < 5; i++)
      rcache_get(c, "absent", &v);
    rcache_close(c); /* the last figures go out */
    _exit(0);
  }
  CHECK(pid > 0 && reap(pid, 60000) == 0);
  CHECK_MSG(published(c, (long)pid, "\"get\":{\"count\":5,"), "the child's figures");
  CHECK_MSG(published(c, (long)getpid(), "\"closed\":false"), "the parent's figures");
  rcache_close(c);
}

/* e) A parent thread inside a get_or_set loader at the fork: in the child that call does not
 * exist, so neither gauge may count it (they would for ever: nobody ends it there). */
static int gauge_pipe[2], release_pipe[2];

static rcache_status blocking_loader(void *ud, rcache_value *out) {
  char b;
  if (write(gauge_pipe[1], "l", 1) != 1 || read(release_pipe[0], &b, 1) != 1) return RCACHE_ELOADER;
  out->data = strdup("v");
  out->len = 1;
  return out->data ? RCACHE_OK : RCACHE_ELOADER;
}

static void *gauge_caller(void *arg) {
  rcache_value v = {0};
  rcache_get_or_set(arg, "fork:gauge", 60, blocking_loader, NULL, &v);
  rcache_value_free(&v);
  return NULL;
}

static void gauges_child(void) {
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, "memory://", NULL), RCACHE_OK);
  if (!c || pipe(gauge_pipe) != 0 || pipe(release_pipe) != 0) {
    CHECK_MSG(0, "setup");
    rcache_close(c);
    return;
  }
  pthread_t t;
  CHECK(pthread_create(&t, NULL, gauge_caller, c) == 0);
  char b;
  CHECK(read(gauge_pipe[0], &b, 1) == 1); /* the loader runs */
  rcache_stats s;
  rcache_get_stats(c, &s);
  CHECK_EQ(s.calls_in_flight, 1);
  CHECK_EQ(s.loads_in_progress, 1);
  pid_t pid = fork();
  if (pid == 0) {
    child_setup();
    if (rcache_set(c, "fork:gauge:child", "c", 1, 60) != RCACHE_OK) _exit(3);
    rcache_get_stats(c, &s);
    fprintf(stderr, "  gauges in the child: calls_in_flight %llu, loads_in_progress %llu\n",
            (unsigned long long)s.calls_in_flight, (unsigned long long)s.loads_in_progress);
    _exit(s.calls_in_flight == 0 && s.loads_in_progress == 0 ? 0 : 1);
  }
  CHECK_MSG(pid > 0 && reap(pid, 60000) == 0, "the child counts its parent's call in progress");
  CHECK(write(release_pipe[1], "r", 1) == 1);
  pthread_join(t, NULL);
  rcache_get_stats(c, &s);
  CHECK_EQ(s.calls_in_flight, 0);
  CHECK_EQ(s.loads_in_progress, 0);
  for (int i = 0; i < 2; i++) {
    close(gauge_pipe[i]);
    close(release_pipe[i]);
  }
  rcache_close(c);
}

int main(void) {
  const char *tcp = test_env_url("RCACHE_TEST_URL_TCP");
  const char *cluster = test_env_url("RCACHE_TEST_URL_CLUSTER");
  const char *sentinel = test_env_url("RCACHE_TEST_URL_SENTINEL");
  for (int near = 0; near < 2; near++) {
    prefork("standalone", tcp, near);
    prefork("cluster", cluster, near);
    prefork("sentinel", sentinel, near);
  }
  outage(false);
  outage(true);
  for (int i = 0; i < 5; i++)
    early_child(sentinel);
  near_child(tcp);
  publish_child(tcp);
  gauges_child();
  return test_report("test_fork");
}
