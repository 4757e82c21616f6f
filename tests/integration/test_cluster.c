/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Redis Cluster on the shared 3-master / 3-replica cluster (scripts/servers.d/30-cluster.sh),
 * without disturbing it: detection from one node and from a seed list (with a dead seed),
 * slots computed here agree with CLUSTER KEYSLOT, each key is stored on the master that owns
 * its slot (read back raw from that node, no redirection), hash tags keep keys together,
 * get_many / set_many across every master, delete_prefix / scan / flush over all masters,
 * and the CLUSTER SLOTS fallback for servers without CLUSTER SHARDS (an ACL user denied
 * it, created on every node for the test and deleted after).
 * Every key lives under a key_prefix private to this run.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static char prefix[64];

/* Ports of the masters by slot, from CLUSTER SLOTS asked of `port`. */
static int slot_port[RCACHE__SLOTS];

static bool load_slots(int port) {
  redisReply *r = rp_cmd(port, "CLUSTER SLOTS");
  if (!r || r->type != REDIS_REPLY_ARRAY) {
    if (r) freeReplyObject(r);
    return false;
  }
  for (size_t j = 0; j < r->elements; j++) {
    redisReply *e = r->element[j];
    for (long long s = e->element[0]->integer; s <= e->element[1]->integer; s++)
      slot_port[s] = (int)e->element[2]->element[1]->integer;
  }
  freeReplyObject(r);
  return true;
}

/* The stored value of full key k, read raw from the master owning its slot; NULL when
 * absent there (including a MOVED: the key is not on that node). Caller frees. */
static char *raw_get(const char *k) {
  int port = slot_port[rcache__slot(k, strlen(k))];
  redisReply *r = rp_cmd(port, "GET %s", k);
  char *v = NULL;
  if (r && r->type == REDIS_REPLY_STRING) v = strdup(r->str);
  if (r && r->type == REDIS_REPLY_ERROR) fprintf(stderr, "  raw GET %s: %s\n", k, r->str);
  if (r) freeReplyObject(r);
  return v;
}

static rcache *open_url(const char *url) {
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = prefix;
  rcache *c = NULL;
  rcache_status s = rcache_open(&c, url, &o);
  CHECK_EQ(s, RCACHE_OK);
  return c;
}

static void test_detection(const char *url, const char *seeds, int port) {
  rcache *c = open_url(url);
  wait_first_contact(c); /* it finds the cluster, in the background */
  CHECK_STR(rcache_mode(c), "cluster");
  rcache_health h;
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_OK);
  CHECK(h.healthy);
  CHECK_STR(h.mode, "cluster");
  CHECK(strncmp(h.server_version, "7.", 2) == 0 || strncmp(h.server_version, "6.", 2) == 0);
  rcache_stats st;
  rcache_get_stats(c, &st);
  CHECK(st.available);
  CHECK_EQ(st.breaker_state, RCACHE_BREAKER_CLOSED);
  rcache_close(c);

  c = open_url(seeds);
  CHECK_STR(rcache_mode(c), "cluster");
  wait_first_contact(c); /* it reads the slot map, in the background */
  CHECK_EQ(rcache_set(c, "seeds", "1", 1, 60), RCACHE_OK);
  rcache_close(c);

  /* A database other than 0 does not exist in a cluster: a URL error, said plainly. */
  char url3[256];
  snprintf(url3, sizeof url3, "redis://127.0.0.1:%d,127.0.0.1:%d/3", port, port);
  rcache *bad = NULL;
  CHECK_EQ(rcache_open(&bad, url3, NULL), RCACHE_EURL);
  CHECK(bad == NULL);
  CHECK_MSG(strstr(rcache_errmsg(NULL), "Redis Cluster has only d") != NULL, "%s",
            rcache_errmsg(NULL));
  /* one node and a database: the node refuses SELECT, and the health check says so (a
   * deadline that lets the refusal come first on a loaded machine) */
  snprintf(url3, sizeof url3, "redis://127.0.0.1:%d/3?connect_timeout_ms=%d", port, AWAIT_MS);
  CHECK_EQ(rcache_open(&bad, url3, NULL), RCACHE_OK);
  rcache_health bh;
  CHECK(rcache_health_check(bad, &bh) != RCACHE_OK);
  CHECK_MSG(strstr(bh.error, "SELECT") != NULL, "%s", bh.error);
  rcache_close(bad);

  /* A seed list whose first node is dead: the map comes from the next one. */
  int dead = rp_free_port();
  char url2[256];
  snprintf(url2, sizeof url2, "redis://127.0.0.1:%d,127.0.0.1:%d?connect_timeout_ms=%d", dead, port,
           AWAIT_MS); /* refused at once: the deadline is for a loaded machine */
  c = open_url(url2);
  CHECK_STR(rcache_mode(c), "cluster");
  wait_first_contact(c);
  rcache_value v;
  CHECK_EQ(rcache_get(c, "seeds", &v), RCACHE_OK);
  CHECK(v.len == 1 && v.data[0] == '1');
  rcache_value_free(&v);
  rcache_close(c);
}

static void test_slots_agree(int port) {
  int agree = 0;
  char k[64];
  for (int i = 0; i < 300; i++) {
    snprintf(k, sizeof k, i % 3 ? "k:%d:%d" : "{t%d}:x:%d", i * 7919, i);
    redisReply *r = rp_cmd(port, "CLUSTER KEYSLOT %s", k);
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == rcache__slot(k, strlen(k))) agree++;
    if (r) freeReplyObject(r);
  }
  CHECK_EQ(agree, 300);
}

/* Each key on the master that owns its slot; values intact. */
static void test_routing(rcache *c) {
  char k[64], full[128], val[64];
  int placed = 0;
  for (int i = 0; i < 200; i++) {
    snprintf(k, sizeof k, "route:%d", i);
    snprintf(val, sizeof val, "value-%d", i);
    CHECK_EQ(rcache_set(c, k, val, strlen(val), 300), RCACHE_OK);
    snprintf(full, sizeof full, "%s%s", prefix, k);
    char *raw = raw_get(full);
    if (raw && strcmp(raw, val) == 0) placed++;
    free(raw);
  }
  CHECK_EQ(placed, 200);
  /* the three masters all got some */
  int ports[3] = {0}, distinct = 0;
  for (int i = 0; i < 200; i++) {
    snprintf(full, sizeof full, "%sroute:%d", prefix, i);
    int p = slot_port[rcache__slot(full, strlen(full))];
    bool seen = false;
    for (int j = 0; j < distinct; j++)
      seen = seen || ports[j] == p;
    if (!seen && distinct < 3) ports[distinct++] = p;
  }
  CHECK_EQ(distinct, 3);
  int64_t n = 0;
  CHECK_EQ(rcache_incr(c, "route:ctr", 5, &n), RCACHE_OK);
  CHECK_EQ(n, 5);
  bool e = false;
  CHECK_EQ(rcache_exists(c, "route:7", &e), RCACHE_OK);
  CHECK(e);
  CHECK_EQ(rcache_delete(c, "route:7"), RCACHE_OK);
  CHECK_EQ(rcache_delete(c, "route:7"), RCACHE_MISS);
}

/* Keys sharing a hash tag share a slot, hence a node: all of them are there. */
static void test_hash_tags(rcache *c) {
  const char *keys[] = {"{user:42}:profile", "{user:42}:credits", "{user:42}:session"};
  const char *vals[] = {"p", "c", "s"};
  char full[128];
  unsigned slot = rcache__slot("user:42", 7);
  for (int i = 0; i < 3; i++) {
    CHECK_EQ(rcache_set(c, keys[i], vals[i], 1, 300), RCACHE_OK);
    snprintf(full, sizeof full, "%s%s", prefix, keys[i]);
    CHECK_EQ(rcache__slot(full, strlen(full)), slot); /* the prefix has no '{' */
    redisReply *r = rp_cmd(slot_port[slot], "GET %s", full);
    CHECK(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, vals[i]) == 0);
    if (r) freeReplyObject(r);
  }
  /* an empty tag hashes the whole key: these two (almost surely) differ */
  snprintf(full, sizeof full, "%s{}a", prefix);
  unsigned s1 = rcache__slot(full, strlen(full));
  snprintf(full, sizeof full, "%s{}b", prefix);
  CHECK(s1 != rcache__slot(full, strlen(full)));
  rcache_value v[3];
  rcache_status st[3];
  CHECK_EQ(rcache_get_many(c, keys, 3, v, st), RCACHE_OK);
  for (int i = 0; i < 3; i++) {
    CHECK_EQ(st[i], RCACHE_OK);
    CHECK(v[i].len == 1 && v[i].data[0] == vals[i][0]);
    rcache_value_free(&v[i]);
  }
  uint64_t n = 0;
  CHECK_EQ(rcache_delete_prefix(c, "{user:42}:", &n), RCACHE_OK);
  CHECK_EQ(n, 3);
}

static bool count_key(const char *key, size_t len, void *ud) {
  (void)key;
  (void)len;
  (*(int *)ud)++;
  return true;
}

/* Batches across every master, then prefix deletion, scan and flush over all of them. */
static void test_batches(rcache *c) {
  enum { N = 300 };
  char *keys[N];
  rcache_value vals[N];
  for (int i = 0; i < N; i++) {
    keys[i] = malloc(32);
    snprintf(keys[i], 32, "batch:%d", i);
    vals[i].data = malloc(32);
    int l = snprintf(vals[i].data, 32, "v%d", i);
    memcpy(vals[i].data + l, "\0x", 2); /* binary: a NUL inside */
    vals[i].len = (size_t)l + 2;
  }
  CHECK_EQ(rcache_set_many(c, (const char *const *)keys, vals, N, 300), RCACHE_OK);
  const char *mixed[N + 1];
  for (int i = 0; i < N; i++)
    mixed[i] = keys[i];
  mixed[N] = "batch:absent";
  rcache_value got2[N + 1];
  rcache_status st2[N + 1];
  CHECK_EQ(rcache_get_many(c, mixed, N + 1, got2, st2), RCACHE_OK);
  int right = 0;
  for (int i = 0; i < N; i++) {
    if (st2[i] == RCACHE_OK && got2[i].len == vals[i].len &&
        memcmp(got2[i].data, vals[i].data, vals[i].len) == 0)
      right++;
    rcache_value_free(&got2[i]);
  }
  CHECK_EQ(right, N);
  CHECK_EQ(st2[N], RCACHE_MISS);
  rcache_value_free(&got2[N]);

  int seen = 0;
  CHECK_EQ(rcache_scan(c, "batch:*", 0, count_key, &seen), RCACHE_OK);
  CHECK_EQ(seen, N);
  seen = 0;
  CHECK_EQ(rcache_scan(c, "batch:*", 10, count_key, &seen), RCACHE_OK);
  CHECK(seen >= 10 && seen < N);

  uint64_t n = 0;
  CHECK_EQ(rcache_delete_prefix(c, "batch:1", &n), RCACHE_OK); /* 1, 10-19, 100-199 */
  CHECK_EQ(n, 111);
  CHECK_EQ(rcache_delete_pattern(c, "batch:2?", &n), RCACHE_OK);
  CHECK_EQ(n, 10);
  CHECK_EQ(rcache_flush(c), RCACHE_OK);
  seen = 0;
  CHECK_EQ(rcache_scan(c, "*", 0, count_key, &seen), RCACHE_OK);
  CHECK_EQ(seen, 0);
  for (int i = 0; i < N; i++) {
    free(keys[i]);
    free(vals[i].data);
  }
}

static long long slots_calls(int port) {
  redisReply *r = rp_cmd(port, "INFO commandstats");
  long long v = 0;
  const char *p =
      r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "cmdstat_cluster|slots:calls=") : NULL;
  if (p) v = atoll(p + strlen("cmdstat_cluster|slots:calls="));
  if (r) freeReplyObject(r);
  return v;
}

/* A user who may not run CLUSTER SHARDS: the map must come from CLUSTER SLOTS. */
static void test_slots_fallback(const char *seeds) {
  int ports[16], n = 0;
  for (const char *p = strstr(seeds, "://") + 3; p && n < 16; p = strchr(p, ',')) {
    if (*p == ',') p++;
    const char *colon = strchr(p, ':');
    if (!colon) break;
    ports[n++] = atoi(colon + 1);
  }
  CHECK_EQ(n, 6);
  char user[32];
  snprintf(user, sizeof user, "noshards%d", (int)getpid());
  for (int i = 0; i < n; i++)
    CHECK(rp_ok(rp_cmd(ports[i], "ACL SETUSER %s on >pw ~* &* +@all -cluster|shards", user)));
  long long before = 0, after = 0;
  for (int i = 0; i < n; i++)
    before += slots_calls(ports[i]);
  char url[128];
  snprintf(url, sizeof url, "redis://%s:pw@127.0.0.1:%d", user, ports[0]);
  rcache *c = open_url(url);
  wait_first_contact(c); /* it finds the cluster, in the background */
  CHECK_STR(rcache_mode(c), "cluster");
  for (int i = 0; i < n; i++)
    after += slots_calls(ports[i]);
  CHECK(after > before);
  char k[64], full[128];
  int placed = 0;
  for (int i = 0; i < 60; i++) {
    snprintf(k, sizeof k, "slotsmap:%d", i);
    CHECK_EQ(rcache_set(c, k, "s", 1, 300), RCACHE_OK);
    snprintf(full, sizeof full, "%s%s", prefix, k);
    char *raw = raw_get(full);
    if (raw && strcmp(raw, "s") == 0) placed++;
    free(raw);
  }
  CHECK_EQ(placed, 60);
  uint64_t del = 0;
  CHECK_EQ(rcache_delete_prefix(c, "slotsmap:", &del), RCACHE_OK);
  CHECK_EQ(del, 60);
  rcache_close(c);
  for (int i = 0; i < n; i++)
    CHECK(rp_ok(rp_cmd(ports[i], "ACL DELUSER %s", user)));
}

int main(void) {
  const char *url = test_env_url("RCACHE_TEST_URL_CLUSTER");
  const char *seeds = test_env_url("RCACHE_TEST_URL_CLUSTER_SEEDS");
  const char *colon = strrchr(url, ':');
  int port = colon ? atoi(colon + 1) : 0;
  snprintf(prefix, sizeof prefix, "tcl%d:", (int)getpid());
  CHECK(load_slots(port));

  test_detection(url, seeds, port);
  test_slots_agree(port);
  rcache *c = open_url(url);
  test_routing(c);
  test_hash_tags(c);
  test_batches(c);
  test_slots_fallback(seeds);
  rcache_flush(c);
  rcache_close(c);
  return test_report("test_cluster");
}
