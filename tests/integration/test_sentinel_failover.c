/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SENTINEL FAILOVER under load, on private servers started here: a master and a replica,
 * both with a password, and three sentinels that also require it (so every connection
 * rcache makes, to sentinels and to the master, authenticates).
 *
 * Checks: without the password the handle stays in fallback mode with an authentication
 * reason; with it, the master is found. Then 4 threads read fixed keys (written and
 * replicated before: any other answer, a miss included, is a wrong value) and write and
 * read their own keys (a value must always be one this thread wrote to that key) while
 * the group fails over. Every call returns within its deadline; within 5 s of the
 * promotion every call succeeds again and writes land on the new master.
 * Then the new master is killed (SIGKILL): the sentinels promote the old one back, and
 * rcache follows it too (same checks; calls fail fast while no master exists).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "await.h"
#include "rcache/rcache.h"
#include "redis_proc.h"
#include "test.h"

#define PW "sf-pw-0k"
#define GROUP "sf-group"
#define NFIXED 100
#define NWORKERS 4
#define CONNECT_MS 500
#define COMMAND_MS 500
#define SLACK_MS 1000

static rp_server master, replica, sent[3];

/* log lines about the master moving */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char moved_line[512];
static int moved_lines;

static void on_log(int level, const char *msg, void *ud) {
  (void)level;
  (void)ud;
  pthread_mutex_lock(&log_mu);
  if (strstr(msg, "moved from")) {
    moved_lines++;
    snprintf(moved_line, sizeof moved_line, "%s", msg);
  }
  pthread_mutex_unlock(&log_mu);
}
static atomic_bool stop_workers;
static _Atomic int64_t last_error_ms;

static int start_sentinel(rp_server *n) {
  char conf[512];
  snprintf(conf, sizeof conf,
           "sentinel monitor " GROUP " 127.0.0.1 %d 2\nsentinel auth-pass " GROUP " %s\n"
           "sentinel down-after-milliseconds " GROUP " 1000\n"
           "sentinel failover-timeout " GROUP " 2000\n",
           master.port, PW);
  return rp_start(n, &(rp_opts){.tag = "sentinel", .password = PW, .sentinel = true, .conf = conf});
}

static bool sentinels_ready(void) {
  for (int i = 0; i < 3; i++) {
    redisReply *r = rp_cmd_auth(sent[i].port, PW, "SENTINEL MASTER " GROUP);
    bool ok = false;
    int fields = 0;
    for (size_t j = 0; r && r->type == REDIS_REPLY_ARRAY && j + 1 < r->elements; j += 2) {
      const char *k = r->element[j]->str, *v = r->element[j + 1]->str;
      if (!strcmp(k, "num-slaves") && !strcmp(v, "1")) fields++;
      if (!strcmp(k, "num-other-sentinels") && !strcmp(v, "2")) fields++;
    }
    ok = fields == 2;
    if (r) freeReplyObject(r);
    if (!ok) return false;
  }
  return true;
}

typedef struct worker {
  rcache *c;
  int id;
  long ops, errors, wrong;
  int64_t max_ms;
  int written[64]; /* per own key: the last iteration this thread wrote */
} worker;

static void track(worker *w, int64_t t0, rcache_status s) {
  int64_t now = rp_now_ms();
  if (now - t0 > w->max_ms) w->max_ms = now - t0;
  if (s != RCACHE_OK && s != RCACHE_MISS) {
    w->errors++;
    atomic_store(&last_error_ms, now);
  }
}

static void *work(void *arg) {
  worker *w = arg;
  char k[64], v[64];
  for (int it = 1; !atomic_load(&stop_workers); it++) {
    /* a fixed key: its one value, or nothing (unavailable) */
    int f = (it * 7 + w->id) % NFIXED;
    snprintf(k, sizeof k, "fixed:%d", f);
    rcache_value got = {NULL, 0};
    int64_t t0 = rp_now_ms();
    rcache_status s = rcache_get(w->c, k, &got);
    track(w, t0, s);
    snprintf(v, sizeof v, "fixed-value-%d", f);
    if ((s == RCACHE_OK && strcmp(got.data, v) != 0) || s == RCACHE_MISS) {
      if (w->wrong++ < 5)
        fprintf(stderr, "  %s: status %d value %s\n", k, s, got.data ? got.data : "");
    }
    rcache_value_free(&got);

    /* an own key: written, then read; the value read must be one this thread wrote */
    int j = it % 64;
    snprintf(k, sizeof k, "own:%d:%d", w->id, j);
    snprintf(v, sizeof v, "%d:%d:%d", w->id, j, it);
    t0 = rp_now_ms();
    s = rcache_set(w->c, k, v, strlen(v), 0);
    track(w, t0, s);
    if (s == RCACHE_OK) w->written[j] = it;
    t0 = rp_now_ms();
    s = rcache_get(w->c, k, &got);
    track(w, t0, s);
    if (s == RCACHE_OK) {
      int a, b, ver;
      if (sscanf(got.data, "%d:%d:%d", &a, &b, &ver) != 3 || a != w->id || b != j || ver > it ||
          ver <= 0) {
        if (w->wrong++ < 5)
          fprintf(stderr, "  %s: read %s, never written by this thread\n", k, got.data);
      }
    }
    rcache_value_free(&got);
    w->ops += 3;
  }
  return NULL;
}

int main(void) {
  const char *mextra[] = {"--repl-diskless-sync-delay", "0", NULL};
  if (rp_start(&master, &(rp_opts){.tag = "sf-master", .password = PW, .args = mextra}) != 0) {
    CHECK_MSG(0, "could not start the master");
    return test_report("test_sentinel_failover");
  }
  char mp[16];
  snprintf(mp, sizeof mp, "%d", master.port);
  const char *rextra[] = {"--replicaof", "127.0.0.1", mp, "--repl-diskless-sync-delay", "0", NULL};
  if (rp_start(&replica, &(rp_opts){.tag = "sf-replica", .password = PW, .args = rextra}) != 0) {
    CHECK_MSG(0, "could not start the replica");
    return test_report("test_sentinel_failover");
  }
  for (int i = 0; i < 3; i++)
    CHECK_EQ(start_sentinel(&sent[i]), 0);
  int64_t t0 = rp_now_ms();
  while (!sentinels_ready() && rp_now_ms() - t0 < 20000)
    rp_sleep_ms(50);
  CHECK_MSG(sentinels_ready(), "the sentinels did not find each other and the replica");

  char hosts[128], url[256];
  snprintf(hosts, sizeof hosts, "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", sent[0].port,
           sent[1].port, sent[2].port);

  /* without the password: fallback mode, and the reason is authentication (a deadline
   * that lets the refusal come first on a loaded machine) */
  snprintf(url, sizeof url, "redis+sentinel://%s/" GROUP "?connect_timeout_ms=%d", hosts, AWAIT_MS);
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, NULL), RCACHE_OK);
  rcache_value v = {NULL, 0};
  CHECK_EQ(rcache_get(c, "x", &v), RCACHE_EUNAVAILABLE);
  rcache_health h;
  rcache_status hs = rcache_health_check(c, &h);
  CHECK_MSG(hs == RCACHE_EAUTH, "health without the password: %d (%s)", hs, h.error);
  rcache_close(c);

  snprintf(url, sizeof url,
           "redis+sentinel://:" PW "@%s/" GROUP "?connect_timeout_ms=%d&command_timeout_ms=%d",
           hosts, CONNECT_MS, COMMAND_MS);
  c = NULL;
  rcache_options o;
  rcache_options_init(&o);
  o.log_fn = on_log;
  o.near_cache_bytes = 1 << 20; /* the near cache must follow the master across failovers */
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  CHECK_STR(rcache_mode(c), "sentinel");
  hs = await_healthy(c, &h, AWAIT_MS); /* the first contact is made in the background */
  CHECK_MSG(hs == RCACHE_OK, "not healthy within %d ms: %s", AWAIT_MS, h.error);
  char k[64], val[64];
  for (int i = 0; i < NFIXED; i++) {
    snprintf(k, sizeof k, "fixed:%d", i);
    snprintf(val, sizeof val, "fixed-value-%d", i);
    CHECK_EQ(rcache_set(c, k, val, strlen(val), 0), RCACHE_OK);
  }
  redisReply *wr = rp_cmd_auth(master.port, PW, "WAIT 1 5000"); /* on the replica too */
  CHECK(wr && wr->type == REDIS_REPLY_INTEGER && wr->integer == 1);
  if (wr) freeReplyObject(wr);

  worker w[NWORKERS];
  pthread_t th[NWORKERS];
  for (int i = 0; i < NWORKERS; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].c = c;
    w[i].id = i;
    pthread_create(&th[i], NULL, work, &w[i]);
  }
  rp_sleep_ms(300);
  atomic_store(&last_error_ms, 0);
  int64_t t_fail = rp_now_ms();
  CHECK(rp_ok(rp_cmd_auth(sent[0].port, PW, "SENTINEL FAILOVER " GROUP)));
  int64_t t_promoted = -1;
  while (rp_now_ms() - t_fail < 15000) {
    if (rp_role_master(replica.port, PW) == 1) {
      t_promoted = rp_now_ms();
      break;
    }
    rp_sleep_ms(5);
  }
  CHECK_MSG(t_promoted > 0, "the replica was not promoted within 15 s");

  /* full service: a write lands on the new master and every call succeeds */
  int64_t t_full = -1;
  for (int round = 0; t_promoted > 0 && rp_now_ms() - t_promoted < 5000; round++) {
    snprintf(val, sizeof val, "probe-%d", round);
    if (rcache_set(c, "probe", val, strlen(val), 60) == RCACHE_OK &&
        rp_reply_has(rp_cmd_auth(replica.port, PW, "GET probe"), val)) {
      t_full = rp_now_ms();
      break;
    }
    rp_sleep_ms(10);
  }
  CHECK_MSG(t_full > 0, "writes did not reach the new master within 5 s of the promotion");
  rp_sleep_ms(1500); /* the load goes on on the new master */
  atomic_store(&stop_workers, true);
  long ops = 0, errors = 0, wrong = 0;
  int64_t max_ms = 0;
  for (int i = 0; i < NWORKERS; i++) {
    pthread_join(th[i], NULL);
    ops += w[i].ops;
    errors += w[i].errors;
    wrong += w[i].wrong;
    if (w[i].max_ms > max_ms) max_ms = w[i].max_ms;
  }
  int64_t last_err = atomic_load(&last_error_ms);
  printf("SENTINEL FAILOVER: promoted %lld ms after the command; writes on the new master %lld ms "
         "after the promotion; last failed call %lld ms after it\n",
         (long long)(t_promoted - t_fail), (long long)(t_full - t_promoted),
         last_err ? (long long)(last_err - t_promoted) : -1LL);
  printf("SENTINEL FAILOVER: %ld calls, %ld answered without the cache, %ld wrong values, "
         "slowest %lld ms\n",
         ops, errors, wrong, (long long)max_ms);
  CHECK(ops > 1000);
  CHECK_EQ(wrong, 0);
  CHECK_MSG(max_ms <= CONNECT_MS + COMMAND_MS + SLACK_MS, "slowest call %lld ms",
            (long long)max_ms);
  CHECK_MSG(last_err <= t_promoted + 5000, "calls failed %lld ms after the promotion",
            (long long)(last_err - t_promoted));
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_OK);
  /* the move was logged once, naming both servers */
  char want[128];
  snprintf(want, sizeof want, "from 127.0.0.1:%d to 127.0.0.1:%d", master.port, replica.port);
  pthread_mutex_lock(&log_mu);
  printf("log: %s\n", moved_line);
  CHECK_EQ(moved_lines, 1);
  CHECK_MSG(strstr(moved_line, want) != NULL, "%s", moved_line);
  pthread_mutex_unlock(&log_mu);
  /* the old master is turned into a replica of the new one (in the sentinels' time) */
  int64_t t_demote = rp_now_ms();
  while (rp_role_master(master.port, PW) != 0 && rp_now_ms() - t_demote < 15000)
    rp_sleep_ms(50);
  CHECK_EQ(rp_role_master(master.port, PW), 0);
  int right = 0;
  for (int i = 0; i < NFIXED; i++) { /* still every fixed value, from the new master */
    snprintf(k, sizeof k, "fixed:%d", i);
    snprintf(val, sizeof val, "fixed-value-%d", i);
    rcache_value got = {NULL, 0};
    if (rcache_get(c, k, &got) == RCACHE_OK && strcmp(got.data, val) == 0) right++;
    rcache_value_free(&got);
  }
  CHECK_EQ(right, NFIXED);
  /* the near cache served, and it tracks on the new master: another client's write there
   * is seen (the key was near-cached from the new master by the reads just above) */
  rcache_stats nst;
  rcache_get_stats(c, &nst);
  CHECK_MSG(nst.near_hits > 0, "near hits %llu", (unsigned long long)nst.near_hits);
  CHECK(rp_ok(rp_cmd_auth(replica.port, PW, "SET fixed:0 changed-elsewhere")));
  bool seen = false;
  for (int64_t t1 = rp_now_ms(); !seen && rp_now_ms() - t1 < 2000; rp_sleep_ms(5)) {
    rcache_value got = {NULL, 0};
    seen =
        rcache_get(c, "fixed:0", &got) == RCACHE_OK && strcmp(got.data, "changed-elsewhere") == 0;
    rcache_value_free(&got);
  }
  CHECK_MSG(seen, "another client's write on the new master was not seen through the near cache");
  CHECK(rp_ok(rp_cmd_auth(replica.port, PW, "SET fixed:0 fixed-value-0")));
  CHECK_EQ(rcache_set(c, "after", "1", 1, 60), RCACHE_OK);
  CHECK(rp_reply_has(rp_cmd_auth(replica.port, PW, "GET after"), "1"));

  /* ---- 2. the new master killed: the sentinels promote the old one back ---------------------- */
  t0 = rp_now_ms();
  while (!sentinels_ready() && rp_now_ms() - t0 < 20000)
    rp_sleep_ms(50); /* it is seen as a replica */
  CHECK(sentinels_ready());
  wr = rp_cmd_auth(replica.port, PW, "WAIT 1 5000");
  CHECK(wr && wr->type == REDIS_REPLY_INTEGER && wr->integer == 1);
  if (wr) freeReplyObject(wr);
  atomic_store(&stop_workers, false);
  for (int i = 0; i < NWORKERS; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].c = c;
    w[i].id = i;
    pthread_create(&th[i], NULL, work, &w[i]);
  }
  rp_sleep_ms(200);
  rp_kill(&replica);
  int64_t t_kill = rp_now_ms();
  t_promoted = -1;
  while (rp_now_ms() - t_kill < 30000) {
    if (rp_role_master(master.port, PW) == 1) {
      t_promoted = rp_now_ms();
      break;
    }
    rp_sleep_ms(5);
  }
  CHECK_MSG(t_promoted > 0, "the old master was not promoted back within 30 s");
  t_full = -1;
  for (int round = 0; t_promoted > 0 && rp_now_ms() - t_promoted < 5000; round++) {
    snprintf(val, sizeof val, "probe2-%d", round);
    if (rcache_set(c, "probe", val, strlen(val), 60) == RCACHE_OK &&
        rp_reply_has(rp_cmd_auth(master.port, PW, "GET probe"), val)) {
      t_full = rp_now_ms();
      break;
    }
    rp_sleep_ms(10);
  }
  CHECK_MSG(t_full > 0, "writes did not reach the promoted master within 5 s of the promotion");
  rp_sleep_ms(1000);
  atomic_store(&stop_workers, true);
  ops = errors = wrong = 0;
  max_ms = 0;
  for (int i = 0; i < NWORKERS; i++) {
    pthread_join(th[i], NULL);
    ops += w[i].ops;
    errors += w[i].errors;
    wrong += w[i].wrong;
    if (w[i].max_ms > max_ms) max_ms = w[i].max_ms;
  }
  last_err = atomic_load(&last_error_ms);
  printf("master killed: promoted back %lld ms after the kill; writes on it %lld ms after the "
         "promotion; last failed call %lld ms after it\n",
         (long long)(t_promoted - t_kill), (long long)(t_full - t_promoted),
         last_err ? (long long)(last_err - t_promoted) : -1LL);
  printf("master killed: %ld calls, %ld answered without the cache, %ld wrong values, slowest "
         "%lld ms\n",
         ops, errors, wrong, (long long)max_ms);
  CHECK(ops > 1000);
  CHECK(errors > 0); /* there was no master for a while: calls were answered without it */
  CHECK_EQ(wrong, 0);
  CHECK_MSG(max_ms <= CONNECT_MS + COMMAND_MS + SLACK_MS, "slowest call %lld ms",
            (long long)max_ms);
  CHECK_MSG(last_err <= t_promoted + 5000, "calls failed %lld ms after the promotion",
            (long long)(last_err - t_promoted));
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_OK);
  rcache_close(c);
  return test_report("test_sentinel_failover");
}
