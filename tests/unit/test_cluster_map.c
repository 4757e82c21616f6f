/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The cluster's reply parsers, without a server: CLUSTER SHARDS (Redis 7) and CLUSTER SLOTS
 * (Redis 6) maps written here in RESP as servers send them — TLS ports, empty and unknown
 * endpoints, replicas and failed masters — plus malformed and hostile maps, and the
 * MOVED / ASK / TRYAGAIN / CLUSTERDOWN error texts.
 */
#include <stdio.h>
#include <string.h>

#include "backends/cluster_map.h"
#include "test.h"

/* ---- RESP writing ---------------------------------------------------------------------------- */

static char buf[8192];
static size_t blen;

static void put(const char *fmt, long long v, const char *s) {
  blen += (size_t)snprintf(buf + blen, sizeof buf - blen, fmt, v, s ? s : "");
}
static void arr(long long n) {
  put("*%lld\r\n%s", n, NULL);
}
static void num(long long v) {
  put(":%lld\r\n%s", v, NULL);
}
static void str(const char *s) {
  put("$%lld\r\n%s\r\n", (long long)strlen(s), s);
}
static void reset(void) {
  blen = 0;
}

/* ---- collecting ranges ----------------------------------------------------------------------- */

typedef struct got {
  int n;
  unsigned lo[16], hi[16];
  char host[16][64];
  int port[16];
} got;

static void on_range(void *ud, unsigned lo, unsigned hi, const char *host, int port) {
  got *g = ud;
  if (g->n == 16) return;
  g->lo[g->n] = lo;
  g->hi[g->n] = hi;
  snprintf(g->host[g->n], sizeof g->host[0], "%s", host);
  g->port[g->n++] = port;
}

static rcache_status parse(bool shards, bool tls, got *g) {
  memset(g, 0, sizeof *g);
  return rcache__cluster_parse_map(buf, blen, shards, tls, "asked.host", on_range, g);
}

/* one node of a CLUSTER SHARDS shard */
static void shard_node(const char *ip, const char *endpoint, int port, int tls_port,
                       const char *role, const char *health) {
  arr(tls_port ? 14 : 12);
  str("id"), str("0123456789abcdef");
  str("port"), num(port);
  if (tls_port) str("tls-port"), num(tls_port);
  str("ip"), str(ip);
  str("endpoint"), str(endpoint);
  str("role"), str(role);
  str("health"), str(health);
}

static void test_shards(void) {
  got g;
  /* two shards; the first has its master second, after a replica */
  reset();
  arr(2);
  arr(4), str("slots"), arr(4), num(0), num(100), num(200), num(300);
  str("nodes"), arr(2);
  shard_node("10.0.0.2", "10.0.0.2", 7002, 0, "replica", "online");
  shard_node("10.0.0.1", "node1.example", 7001, 0, "master", "online");
  arr(4), str("slots"), arr(2), num(301), num(16383);
  str("nodes"), arr(1);
  shard_node("10.0.0.3", "?", 7003, 0, "master", "online"); /* unknown endpoint: the ip */
  CHECK_EQ(parse(true, false, &g), RCACHE_OK);
  CHECK_EQ(g.n, 3);
  CHECK(g.lo[0] == 0 && g.hi[0] == 100 && g.port[0] == 7001);
  CHECK_STR(g.host[0], "node1.example");
  CHECK(g.lo[1] == 200 && g.hi[1] == 300 && g.port[1] == 7001);
  CHECK(g.lo[2] == 301 && g.hi[2] == 16383 && g.port[2] == 7003);
  CHECK_STR(g.host[2], "10.0.0.3");

  /* TLS ports; a failed old master and its promoted replica (the online one wins); a
   * shard without slots: its online master as lo > hi (it may be importing a slot, and hold
   * some of its keys), a failed one skipped */
  reset();
  arr(3);
  arr(4), str("slots"), arr(2), num(0), num(16383);
  str("nodes"), arr(2);
  shard_node("127.0.0.1", "127.0.0.1", 7001, 8001, "master", "failed");
  shard_node("127.0.0.1", "127.0.0.1", 7004, 8004, "master", "online");
  arr(4), str("slots"), arr(0), str("nodes"), arr(1);
  shard_node("127.0.0.1", "127.0.0.1", 7009, 8009, "master", "online");
  arr(4), str("slots"), arr(0), str("nodes"), arr(1);
  shard_node("127.0.0.1", "127.0.0.1", 7010, 8010, "master", "failed");
  CHECK_EQ(parse(true, true, &g), RCACHE_OK);
  CHECK_EQ(g.n, 2);
  CHECK_EQ(g.port[0], 8004);
  CHECK(g.lo[1] > g.hi[1] && g.port[1] == 8009);
  CHECK_EQ(parse(true, false, &g), RCACHE_OK); /* without TLS: the plain port */
  CHECK_EQ(g.port[0], 7004);
  CHECK_EQ(g.port[1], 7009);

  /* an empty endpoint and ip: the node that answered */
  reset();
  arr(1), arr(4), str("slots"), arr(2), num(5), num(5), str("nodes"), arr(1);
  shard_node("", "", 7005, 0, "master", "online");
  CHECK_EQ(parse(true, false, &g), RCACHE_OK);
  CHECK_EQ(g.n, 1);
  CHECK_STR(g.host[0], "asked.host");
}

static void test_slots(void) {
  got g;
  reset();
  arr(3);
  arr(4), num(0), num(5460);
  arr(3), str("127.0.0.1"), num(7000), str("id0");
  arr(3), str("127.0.0.1"), num(7003), str("id3"); /* a replica: not used */
  arr(3), num(5461), num(10922);
  arr(3), str(""), num(7001), str("id1"); /* "" is the node asked */
  arr(3), num(10923), num(16383);
  arr(4), str("?"), num(7002), str("id2"), arr(0); /* unknown endpoint: skipped */
  CHECK_EQ(parse(false, false, &g), RCACHE_OK);
  CHECK_EQ(g.n, 2);
  CHECK(g.lo[0] == 0 && g.hi[0] == 5460 && g.port[0] == 7000);
  CHECK_STR(g.host[0], "127.0.0.1");
  CHECK(g.lo[1] == 5461 && g.hi[1] == 10922 && g.port[1] == 7001);
  CHECK_STR(g.host[1], "asked.host");
}

/* Malformed or hostile maps: refused as a whole, nothing reported. */
static void test_hostile(void) {
  got g;
  reset(); /* a slot past 16383 */
  arr(1), arr(3), num(0), num(16384), arr(2), str("h"), num(1);
  CHECK_EQ(parse(false, false, &g), RCACHE_EPROTO);
  CHECK_EQ(g.n, 0);
  reset(); /* a reversed range */
  arr(1), arr(3), num(10), num(9), arr(2), str("h"), num(1);
  CHECK_EQ(parse(false, false, &g), RCACHE_EPROTO);
  reset(); /* a negative slot */
  arr(1), arr(3), num(-1), num(9), arr(2), str("h"), num(1);
  CHECK_EQ(parse(false, false, &g), RCACHE_EPROTO);
  reset(); /* port 0, and port 70000 */
  arr(1), arr(3), num(0), num(9), arr(2), str("h"), num(0);
  CHECK_EQ(parse(false, false, &g), RCACHE_EPROTO);
  reset();
  arr(1), arr(3), num(0), num(9), arr(2), str("h"), num(70000);
  CHECK_EQ(parse(false, false, &g), RCACHE_EPROTO);
  reset(); /* a string where a number goes */
  arr(1), arr(3), str("0"), num(9), arr(2), str("h"), num(1);
  CHECK_EQ(parse(false, false, &g), RCACHE_EPROTO);
  reset(); /* a node entry too short */
  arr(1), arr(3), num(0), num(9), arr(1), str("h");
  CHECK_EQ(parse(false, false, &g), RCACHE_EPROTO);
  reset(); /* not an array at all */
  str("hello");
  CHECK_EQ(parse(false, false, &g), RCACHE_EPROTO);
  CHECK_EQ(parse(true, false, &g), RCACHE_EPROTO);
  reset(); /* a host longer than any name */
  char longhost[400];
  memset(longhost, 'a', sizeof longhost - 1);
  longhost[sizeof longhost - 1] = '\0';
  arr(1), arr(3), num(0), num(9), arr(2), str(longhost), num(1);
  CHECK_EQ(parse(false, false, &g), RCACHE_EPROTO);
  reset(); /* a host with a NUL byte in it (found by fuzz/fuzz_cluster.c) */
  arr(1), arr(3), num(0), num(9), arr(2);
  blen += (size_t)snprintf(buf + blen, sizeof buf - blen, "$3\r\n");
  memcpy(buf + blen, "\0ab\r\n", 5);
  blen += 5;
  num(7000);
  CHECK_EQ(parse(false, false, &g), RCACHE_EPROTO);
  reset(); /* an array announcing far more elements than the bytes could hold */
  arr(1), arr(2000000000);
  CHECK_EQ(parse(false, false, &g), RCACHE_EPROTO);
  reset(); /* a shard whose slots are odd in number, or not numbers */
  arr(1), arr(4), str("slots"), arr(2), num(0), str("x"), str("nodes"), arr(1);
  shard_node("h", "h", 1, 0, "master", "online");
  CHECK_EQ(parse(true, false, &g), RCACHE_EPROTO);
  reset(); /* a shard without "nodes" */
  arr(1), arr(2), str("slots"), arr(2), num(0), num(1);
  CHECK_EQ(parse(true, false, &g), RCACHE_EPROTO);
  reset(); /* half a reply */
  arr(2), arr(3), num(0), num(9);
  CHECK_EQ(parse(false, false, &g), RCACHE_EPROTO);
  reset(); /* not RESP */
  blen = (size_t)snprintf(buf, sizeof buf, "?garbage\r\n");
  CHECK_EQ(parse(false, false, &g), RCACHE_EPROTO);
}

static void test_redirects(void) {
  unsigned slot = 0;
  char host[64];
  int port = 0;
  CHECK_EQ(
      rcache__cluster_parse_redirect("MOVED 3999 127.0.0.1:6381", &slot, host, sizeof host, &port),
      1);
  CHECK_EQ(slot, 3999);
  CHECK_STR(host, "127.0.0.1");
  CHECK_EQ(port, 6381);
  CHECK_EQ(rcache__cluster_parse_redirect("ASK 12 :7000", &slot, host, sizeof host, &port), 2);
  CHECK_EQ(slot, 12);
  CHECK_STR(host, ""); /* the node that answered */
  CHECK_EQ(port, 7000);
  CHECK_EQ(rcache__cluster_parse_redirect("MOVED 1 [::1]:7001", &slot, host, sizeof host, &port),
           1);
  CHECK_STR(host, "::1");
  CHECK_EQ(port, 7001);
  CHECK_EQ(rcache__cluster_parse_redirect("MOVED 1 cache-3.internal:7001", &slot, host, sizeof host,
                                          &port),
           1);
  CHECK_STR(host, "cache-3.internal");
  CHECK_EQ(rcache__cluster_parse_redirect("TRYAGAIN Multiple keys request during rehashing of slot",
                                          &slot, host, sizeof host, &port),
           3);
  CHECK_EQ(rcache__cluster_parse_redirect("CLUSTERDOWN The cluster is down", &slot, host,
                                          sizeof host, &port),
           4);
  /* malformed: left to the caller as a plain error */
  CHECK_EQ(rcache__cluster_parse_redirect("MOVED 16384 h:1", &slot, host, sizeof host, &port), 0);
  CHECK_EQ(rcache__cluster_parse_redirect("MOVED x h:1", &slot, host, sizeof host, &port), 0);
  CHECK_EQ(rcache__cluster_parse_redirect("MOVED 1 h:0", &slot, host, sizeof host, &port), 0);
  CHECK_EQ(rcache__cluster_parse_redirect("MOVED 1 h:99999", &slot, host, sizeof host, &port), 0);
  CHECK_EQ(rcache__cluster_parse_redirect("MOVED 1 nocolon", &slot, host, sizeof host, &port), 0);
  CHECK_EQ(rcache__cluster_parse_redirect("MOVED 1", &slot, host, sizeof host, &port), 0);
  CHECK_EQ(rcache__cluster_parse_redirect("MOVEDX 1 h:1", &slot, host, sizeof host, &port), 0);
  CHECK_EQ(rcache__cluster_parse_redirect("ERR unknown command", &slot, host, sizeof host, &port),
           0);
}

int main(void) {
  test_shards();
  test_slots();
  test_hostile();
  test_redirects();
  return test_report("test_cluster_map");
}
