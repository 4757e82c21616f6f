/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A slot migrated between masters while rcache reads and writes it (private 3-master / 3-replica
 * cluster started here). During the migration the source answers ASK for keys already
 * moved (rcache must send ASKING + the command to the target); once the slot is assigned
 * to the target, the source answers MOVED (rcache must follow and update its map). No
 * error and no wrong value may reach the callers; both redirections must have happened
 * (the target counts ASKING calls, the source counts MOVED and ASK error replies).
 * A handle with max_redirects 0 refuses to follow the ASK (RCACHE_EUNAVAILABLE, reason in
 * rcache_errmsg). A second handle with the near cache on reads the moving keys all along: its reads
 * never go back in time, and once the writes stop it sees every key's last value.
 * Last, a cleared namespace whose slot moves value first (cleared_then_moving).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "await.h"
#include "backends/slot.h"
#include "rcache/rcache.h"
#include "redis_proc.h"
#include "test.h"

/* rcache_open returns before its first contact with the server, which asks whether it is a
 * cluster node; a health check waits for that contact, and asks again if it could not ask
 * (on a loaded machine a connect can time out): healthy means the cluster was found. */
static void wait_first_contact(rcache *c) {
  rcache_health h;
  rcache_status s = await_healthy(c, &h, AWAIT_MS);
  CHECK_MSG(s == RCACHE_OK, "not healthy within %d ms: %s", AWAIT_MS, h.error);
}

#define NKEYS 200
#define NWORKERS 4

static atomic_bool stop_workers;

typedef struct worker {
  rcache *c;
  int id;
  long ops, errors, wrong;
  int64_t max_ms;
  int lastver[NKEYS / NWORKERS];
} worker;

static void note_error(worker *w, const char *what, const char *k, rcache_status s) {
  if (w->errors++ < 5)
    fprintf(stderr, "  worker %d: %s %s: %s (%s)\n", w->id, what, k, rcache_strerror(s),
            rcache_errmsg(w->c));
}

static void timed(worker *w, int64_t t0) {
  int64_t d = rp_now_ms() - t0;
  if (d > w->max_ms) w->max_ms = d;
}

static void *work(void *arg) {
  worker *w = arg;
  char k[64], v[64], other[64];
  for (int it = 1; !atomic_load(&stop_workers); it++) {
    int j = it % (NKEYS / NWORKERS), i = w->id + NWORKERS * j;
    snprintf(k, sizeof k, "{mig}:k:%d", i);
    snprintf(v, sizeof v, "%d:%d", i, it);
    int64_t t0 = rp_now_ms();
    rcache_status s = rcache_set(w->c, k, v, strlen(v), 0);
    timed(w, t0);
    if (s != RCACHE_OK)
      note_error(w, "set", k, s);
    else
      w->lastver[j] = it;
    rcache_value got;
    t0 = rp_now_ms();
    s = rcache_get(w->c, k, &got);
    timed(w, t0);
    char want[64];
    snprintf(want, sizeof want, "%d:%d", i, w->lastver[j]);
    if (s != RCACHE_OK)
      note_error(w, "get", k, s);
    else if (strcmp(got.data, want) != 0 && w->wrong++ < 5)
      fprintf(stderr, "  worker %d: %s is %s, expected %s\n", w->id, k, got.data, want);
    rcache_value_free(&got);
    /* a key elsewhere, and a counter in the moving slot */
    snprintf(other, sizeof other, "other:%d:%d", w->id, j);
    if ((s = rcache_set(w->c, other, v, strlen(v), 0)) != RCACHE_OK) note_error(w, "set", other, s);
    int64_t n = 0;
    snprintf(k, sizeof k, "{mig}:ctr:%d", w->id);
    t0 = rp_now_ms();
    s = rcache_incr(w->c, k, 1, &n);
    timed(w, t0);
    if (s != RCACHE_OK)
      note_error(w, "incr", k, s);
    else if (n != it && w->wrong++ < 5)
      fprintf(stderr, "  worker %d: counter %lld, expected %d\n", w->id, (long long)n, it);
    if (it % 8 == 0) { /* a batch over the moving slot */
      const char *keys[4];
      char kb[4][64];
      for (int q = 0; q < 4; q++) {
        snprintf(kb[q], sizeof kb[q], "{mig}:k:%d",
                 w->id + NWORKERS * ((j + q) % (NKEYS / NWORKERS)));
        keys[q] = kb[q];
      }
      rcache_value vals[4];
      rcache_status st[4];
      t0 = rp_now_ms();
      s = rcache_get_many(w->c, keys, 4, vals, st);
      timed(w, t0);
      if (s != RCACHE_OK) note_error(w, "get_many", keys[0], s);
      for (int q = 0; q < 4; q++) {
        if (s == RCACHE_OK && st[q] != RCACHE_OK) note_error(w, "get_many item", keys[q], st[q]);
        rcache_value_free(&vals[q]);
      }
    }
    w->ops += 4;
  }
  return NULL;
}

/* A reader through the near cache: per key, the version read never decreases. */
typedef struct reader {
  rcache *c;
  long reads, errors, backwards;
  int last[NKEYS];
} reader;

static void *read_near(void *arg) {
  reader *r = arg;
  char k[64];
  for (int it = 0; !atomic_load(&stop_workers); it++) {
    int i = it % NKEYS;
    snprintf(k, sizeof k, "{mig}:k:%d", i);
    rcache_value got = {NULL, 0};
    rcache_status s = rcache_get(r->c, k, &got);
    r->reads++;
    int key, ver = 0;
    if (s != RCACHE_OK) {
      if (r->errors++ < 5) fprintf(stderr, "  near reader: %s: %s\n", k, rcache_strerror(s));
    } else if (strcmp(got.data, "0") != 0) {
      if (sscanf(got.data, "%d:%d", &key, &ver) != 2 || key != i) ver = -1;
      if (ver < r->last[i] && r->backwards++ < 5)
        fprintf(stderr, "  near reader: %s went back from version %d to %s\n", k, r->last[i],
                got.data);
      if (ver > r->last[i]) r->last[i] = ver;
    }
    rcache_value_free(&got);
    if (it % 16 == 15) rp_sleep_ms(1); /* near hits are fast: leave the CPU to the writers */
  }
  return NULL;
}

static long long stat_of(int port, const char *section, const char *field) {
  redisReply *r = rp_cmd(port, "INFO %s", section);
  long long v = 0;
  if (r && r->type == REDIS_REPLY_STRING) {
    const char *p = strstr(r->str, field);
    if (p) v = atoll(p + strlen(field));
  }
  if (r) freeReplyObject(r);
  return v;
}

/* MIGRATE of n (<= 8) keys from the node on port src to the one on dst; false on failure. */
static bool migrate(int src, int dst, const char *const *keys, size_t n) {
  const char *argv[16];
  size_t lens[16];
  char port[16];
  snprintf(port, sizeof port, "%d", dst);
  int a = 0;
  argv[a++] = "MIGRATE";
  argv[a++] = "127.0.0.1";
  argv[a++] = port;
  argv[a++] = "";
  argv[a++] = "0";
  argv[a++] = "5000";
  argv[a++] = "KEYS";
  for (size_t i = 0; i < n && i < 8; i++)
    argv[a++] = keys[i];
  for (int i = 0; i < a; i++)
    lens[i] = strlen(argv[i]);
  struct timeval tv = {2, 0};
  redisContext *rc = redisConnectWithTimeout("127.0.0.1", src, tv);
  redisReply *m = rc && !rc->err ? redisCommandArgv(rc, a, argv, lens) : NULL;
  bool ok = m && m->type != REDIS_REPLY_ERROR;
  if (!ok) fprintf(stderr, "  MIGRATE: %s\n", m ? m->str : "no reply");
  if (m) freeReplyObject(m);
  if (rc) redisFree(rc);
  return ok;
}

/* Moves every key left in slot from node `from` to node `to` (the slot MIGRATING there
 * already), then gives the slot to `to`: the target first, then the source, then the rest. */
static void finish_move(rp_cluster *cl, unsigned slot, int from, int to, const char *to_id) {
  for (int round = 0; round < 100; round++) {
    redisReply *r = rp_cmd(cl->node[from].port, "CLUSTER GETKEYSINSLOT %u 8", slot);
    size_t n = r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    const char *keys[8];
    for (size_t i = 0; i < n; i++)
      keys[i] = r->element[i]->str;
    bool ok = n == 0 || migrate(cl->node[from].port, cl->node[to].port, keys, n);
    if (r) freeReplyObject(r);
    if (n == 0 || !ok) break;
  }
  CHECK(rp_ok(rp_cmd(cl->node[to].port, "CLUSTER SETSLOT %u NODE %s", slot, to_id)));
  CHECK(rp_ok(rp_cmd(cl->node[from].port, "CLUSTER SETSLOT %u NODE %s", slot, to_id)));
  CHECK(rp_ok(rp_cmd(cl->node[3 - from - to].port, "CLUSTER SETSLOT %u NODE %s", slot, to_id)));
}

/* A namespace cleared for the first time, then its slot half moved: the value, written
 * before the clear (plain, valid only while the clear key is absent), on the target; the
 * clear key still on the source. The source answers ASK for the value alone; the read must
 * not take the clear key's version from the target, where it is absent (read as never
 * cleared, the value would be a hit). */
static void cleared_then_moving(rp_cluster *cl) {
  unsigned slot = rcache__slot("clr", 3);
  char url[128];
  rp_cluster_url(cl, 0, url, sizeof url, NULL);
  for (int near = 0; near < 2; near++) {
    int src = rp_cluster_owner(cl, slot), dst = (src + 1) % 3;
    char src_id[64], dst_id[64];
    CHECK(src >= 0 && rp_node_id(cl->node[src].port, src_id, sizeof src_id) &&
          rp_node_id(cl->node[dst].port, dst_id, sizeof dst_id));
    if (src < 0) return;
    rcache_options o;
    rcache_options_init(&o);
    o.key_prefix = near ? "{clr}:b:" : "{clr}:a:"; /* a namespace never cleared */
    o.near_cache_bytes = near ? 1u << 20 : 0;
    rcache *c = NULL;
    CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
    wait_first_contact(c);
    rcache_value v = {NULL, 0};
    CHECK_EQ(rcache_set(c, "v", "old", 3, 0), RCACHE_OK);
    CHECK_EQ(rcache_get(c, "v", &v), RCACHE_OK);
    rcache_value_free(&v);
    CHECK_EQ(rcache_clear(c), RCACHE_OK);
    CHECK(rp_ok(rp_cmd(cl->node[dst].port, "CLUSTER SETSLOT %u IMPORTING %s", slot, src_id)));
    CHECK(rp_ok(rp_cmd(cl->node[src].port, "CLUSTER SETSLOT %u MIGRATING %s", slot, dst_id)));
    const char *one[] = {near ? "{clr}:b:v" : "{clr}:a:v"};
    CHECK(migrate(cl->node[src].port, cl->node[dst].port, one, 1));
    for (int i = 0; i < 3; i++) {
      rcache_status s = rcache_get(c, "v", &v);
      CHECK_MSG(s == RCACHE_MISS, "%s, read %d while the value alone had moved: %s %.*s",
                near ? "near cache" : "no near cache", i, rcache_strerror(s),
                s == RCACHE_OK ? (int)v.len : 0, s == RCACHE_OK ? v.data : "");
      rcache_value_free(&v);
    }
    finish_move(cl, slot, src, dst, dst_id); /* the clear key follows */
    CHECK_EQ(rcache_get(c, "v", &v), RCACHE_MISS);
    rcache_value_free(&v);
    CHECK_EQ(rcache_set(c, "v", "new", 3, 0), RCACHE_OK);
    CHECK_EQ(rcache_get(c, "v", &v), RCACHE_OK);
    CHECK(v.data && strcmp(v.data, "new") == 0);
    rcache_value_free(&v);
    rcache_close(c);
  }
}

int main(void) {
  rp_cluster cl;
  if (rp_cluster_start(&cl, 3, 1, 2000, NULL) != 0) {
    CHECK_MSG(0, "could not start the private cluster");
    return test_report("test_cluster_migrate");
  }
  unsigned slot = rcache__slot("mig", 3);
  int src = rp_cluster_owner(&cl, slot), dst = (src + 1) % 3;
  CHECK(src >= 0);
  char src_id[64], dst_id[64];
  CHECK(rp_node_id(cl.node[src].port, src_id, sizeof src_id));
  CHECK(rp_node_id(cl.node[dst].port, dst_id, sizeof dst_id));

  char url[128];
  rp_cluster_url(&cl, 0, url, sizeof url, NULL);
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, NULL), RCACHE_OK);
  wait_first_contact(c); /* it finds the cluster, in the background */
  CHECK_STR(rcache_mode(c), "cluster");
  char k[64];
  for (int i = 0; i < NKEYS; i++) { /* the keys exist on the source before it starts */
    snprintf(k, sizeof k, "{mig}:k:%d", i);
    CHECK_EQ(rcache_set(c, k, "0", 1, 0), RCACHE_OK);
  }

  rcache_options no;
  rcache_options_init(&no);
  no.near_cache_bytes = 1u << 20;
  reader rd;
  memset(&rd, 0, sizeof rd);
  CHECK_EQ(rcache_open(&rd.c, url, &no), RCACHE_OK);
  pthread_t rth;
  pthread_create(&rth, NULL, read_near, &rd);

  worker w[NWORKERS];
  pthread_t th[NWORKERS];
  for (int i = 0; i < NWORKERS; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].c = c;
    w[i].id = i;
    pthread_create(&th[i], NULL, work, &w[i]);
  }
  rp_sleep_ms(200);

  /* Migrate: IMPORTING on the target, MIGRATING on the source, keys a few at a time. */
  CHECK(rp_ok(rp_cmd(cl.node[dst].port, "CLUSTER SETSLOT %u IMPORTING %s", slot, src_id)));
  CHECK(rp_ok(rp_cmd(cl.node[src].port, "CLUSTER SETSLOT %u MIGRATING %s", slot, dst_id)));
  int moved = 0;
  for (int round = 0; round < 1000; round++) {
    redisReply *r = rp_cmd(cl.node[src].port, "CLUSTER GETKEYSINSLOT %u 5", slot);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
      if (r) freeReplyObject(r);
      break;
    }
    const char *keys[5];
    for (size_t i = 0; i < r->elements && i < 5; i++)
      keys[i] = r->element[i]->str;
    if (migrate(cl.node[src].port, cl.node[dst].port, keys, r->elements < 5 ? r->elements : 5))
      moved += (int)r->elements;
    freeReplyObject(r);
    rp_sleep_ms(10); /* let the workers meet the half-moved slot */
  }
  CHECK(moved >= NKEYS);
  /* every key on the target, the slot still MIGRATING: ASK for all. A handle allowed no
   * redirection gives up (and says why) instead of following it. */
  rcache_options o0;
  rcache_options_init(&o0);
  o0.max_redirects = 0;
  rcache *c0 = NULL;
  CHECK_EQ(rcache_open(&c0, url, &o0), RCACHE_OK);
  rcache_value v0 = {NULL, 0};
  CHECK_EQ(rcache_get(c0, "{mig}:k:0", &v0), RCACHE_EUNAVAILABLE);
  CHECK_MSG(strstr(rcache_errmsg(c0), "redirections") && strstr(rcache_errmsg(c0), "ASK"),
            "errmsg: %s", rcache_errmsg(c0));
  rcache_close(c0);
  CHECK_EQ(rcache_get(c, "{mig}:k:0", &v0), RCACHE_OK); /* the default (5) follows it */
  rcache_value_free(&v0);
  rp_sleep_ms(300);
  CHECK(rp_ok(rp_cmd(cl.node[dst].port, "CLUSTER SETSLOT %u NODE %s", slot, dst_id)));
  CHECK(rp_ok(rp_cmd(cl.node[src].port, "CLUSTER SETSLOT %u NODE %s", slot, dst_id)));
  CHECK(rp_ok(rp_cmd(cl.node[3 - src - dst].port, "CLUSTER SETSLOT %u NODE %s", slot, dst_id)));
  rp_sleep_ms(800); /* now MOVED, until rcache's map says the target */

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
  pthread_join(rth, NULL);
  rcache_stats nst;
  rcache_get_stats(rd.c, &nst);
  printf("near reader: %ld reads (%llu near hits, %llu flushes), %ld errors, %ld went back\n",
         rd.reads, (unsigned long long)nst.near_hits, (unsigned long long)nst.near_flushes,
         rd.errors, rd.backwards);
  CHECK_EQ(rd.errors, 0);
  CHECK_EQ(rd.backwards, 0);
  printf("migration: %d keys moved, %ld calls, %ld errors, %ld wrong values, slowest %lld ms\n",
         moved, ops, errors, wrong, (long long)max_ms);
  CHECK(ops > 1000);
  CHECK_EQ(errors, 0);
  CHECK_EQ(wrong, 0);
  CHECK(max_ms < 1500 + 1000); /* connect + command timeouts, plus slack */

  long long asking = stat_of(cl.node[dst].port, "commandstats", "cmdstat_asking:calls=");
  long long ask = stat_of(cl.node[src].port, "errorstats", "errorstat_ASK:count=");
  long long movedr = stat_of(cl.node[src].port, "errorstats", "errorstat_MOVED:count=");
  printf(
      "redirections: %lld ASK and %lld MOVED answered by the source, %lld ASKING at the target\n",
      ask, movedr, asking);
  CHECK(ask > 0);
  CHECK(asking > 0);
  CHECK(movedr > 0);

  /* the slot is the target's now, and rcache reads every key there */
  CHECK_EQ(rp_cluster_owner(&cl, slot), dst);
  int readable = 0;
  for (int i = 0; i < NKEYS; i++) {
    snprintf(k, sizeof k, "{mig}:k:%d", i);
    redisReply *r = rp_cmd(cl.node[dst].port, "GET %s", k);
    rcache_value v = {NULL, 0};
    if (r && r->type == REDIS_REPLY_STRING && rcache_get(c, k, &v) == RCACHE_OK &&
        strcmp(v.data, r->str) == 0)
      readable++;
    if (r) freeReplyObject(r);
    rcache_value_free(&v);
  }
  CHECK_EQ(readable, NKEYS);
  /* the near handle sees every key's last value (polled: invalidations are asynchronous) */
  int fresh = 0;
  for (int64_t t0 = rp_now_ms(); rp_now_ms() - t0 < 2000; rp_sleep_ms(10)) {
    fresh = 0;
    for (int i = 0; i < NKEYS; i++) {
      snprintf(k, sizeof k, "{mig}:k:%d", i);
      redisReply *r = rp_cmd(cl.node[dst].port, "GET %s", k);
      rcache_value v = {NULL, 0};
      if (r && r->type == REDIS_REPLY_STRING && rcache_get(rd.c, k, &v) == RCACHE_OK &&
          strcmp(v.data, r->str) == 0)
        fresh++;
      if (r) freeReplyObject(r);
      rcache_value_free(&v);
    }
    if (fresh == NKEYS) break;
  }
  CHECK_EQ(fresh, NKEYS);
  /* quiet now: the near cache answers every key */
  rcache_stats n0, n1;
  rcache_get_stats(rd.c, &n0);
  for (int i = 0; i < NKEYS; i++) {
    snprintf(k, sizeof k, "{mig}:k:%d", i);
    rcache_value v = {NULL, 0};
    CHECK_EQ(rcache_get(rd.c, k, &v), RCACHE_OK);
    rcache_value_free(&v);
  }
  rcache_get_stats(rd.c, &n1);
  CHECK_EQ(n1.near_hits - n0.near_hits, NKEYS);
  rcache_close(rd.c);
  rcache_close(c);
  cleared_then_moving(&cl);
  return test_report("test_cluster_migrate");
}
