/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Typed helpers against a real Redis where another party is involved: interop with values
 * written and read by redis-cli (as another service would), and the fallback rules of the
 * typed calls while Redis is unreachable. What every backend shares (the typed calls, JSON,
 * key helpers, namespaces) is in the contract suite: tests/contract/typed.c, json.c, keys.c,
 * run on memory:// and every Redis flavour.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/socket.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rcache/json.h"
#include "rcache/keys.h"
#include "rcache/rcache.h"
#include "test.h"

static const char *tcp_url;
static char ns[64];

/* Runs `redis-cli -u <tcp_url> <args>` (args already shell-quoted, with ns substituted for
 * each %s) and returns its output without the final newline, in out. */
static void cli(char *out, size_t outlen, const char *fmt, ...) {
  char args[1024], cmd[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  snprintf(cmd, sizeof cmd, "redis-cli -u '%s' %s 2>&1", tcp_url, args);
  out[0] = '\0';
  FILE *p = popen(cmd, "r");
  if (!p) {
    CHECK_MSG(0, "popen %s", cmd);
    return;
  }
  size_t n = fread(out, 1, outlen - 1, p);
  out[n] = '\0';
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
    out[--n] = '\0';
  int rc = pclose(p);
  CHECK_MSG(rc == 0, "%s exited %d: %s", cmd, rc, out);
}

static json_t *load_fixed(void *ud) {
  (*(int *)ud)++;
  return json_pack("{s:i, s:s}", "id", 9, "name", "loaded");
}

static void interop(void) {
  snprintf(ns, sizeof ns, "typedinterop:%ld:", (long)getpid());
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = ns;
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, tcp_url, &o), RCACHE_OK);
  if (!c) return;
  char out[1024];

  /* JSON another service stored with redis-cli is read by rcache */
  cli(out, sizeof out, "SET '%suser:1' '{\"id\":1,\"name\":\"x\",\"meta\":{\"role\":\"admin\"}}'",
      ns);
  CHECK_STR(out, "OK");
  json_t *j = NULL;
  CHECK_EQ(rcache_get_json(c, "user:1", &j), RCACHE_OK);
  CHECK(j && json_integer_value(json_object_get(j, "id")) == 1);
  CHECK(j && strcmp(json_string_value(json_object_get(j, "name")), "x") == 0);
  CHECK(j && strcmp(json_string_value(json_object_get(json_object_get(j, "meta"), "role")),
                    "admin") == 0);
  /* and rcache's JSON is the plain compact text other clients read */
  CHECK_EQ(rcache_set_json(c, "user:2", j, 0), RCACHE_OK);
  json_decref(j);
  cli(out, sizeof out, "GET '%suser:2'", ns);
  CHECK_STR(out, "{\"id\":1,\"name\":\"x\",\"meta\":{\"role\":\"admin\"}}");

  /* invalid JSON written by someone else: EDECODE on get, reloaded by get_or_set */
  cli(out, sizeof out, "SET '%suser:3' '{\"id\":1'", ns);
  j = (json_t *)1;
  CHECK_EQ(rcache_get_json(c, "user:3", &j), RCACHE_EDECODE);
  CHECK(j == NULL);
  CHECK(strstr(rcache_errmsg(c), "invalid JSON") != NULL);
  int calls = 0;
  CHECK_EQ(rcache_get_or_set_json(c, "user:3", 60, load_fixed, &calls, &j), RCACHE_OK);
  CHECK_EQ(calls, 1);
  json_decref(j);
  cli(out, sizeof out, "GET '%suser:3'", ns);
  CHECK_STR(out, "{\"id\":9,\"name\":\"loaded\"}");
  cli(out, sizeof out, "TTL '%suser:3'", ns);
  CHECK(atoi(out) > 0 && atoi(out) <= 60);

  /* integers: rcache's text is a number to Redis, and Redis' numbers are read back */
  int64_t n = 0;
  CHECK_EQ(rcache_set_i64(c, "ctr", 41, 0), RCACHE_OK);
  cli(out, sizeof out, "INCR '%sctr'", ns);
  CHECK_STR(out, "42");
  CHECK_EQ(rcache_get_i64(c, "ctr", &n), RCACHE_OK);
  CHECK_EQ(n, 42);
  cli(out, sizeof out, "SET '%sn' -9223372036854775808", ns);
  CHECK_EQ(rcache_get_i64(c, "n", &n), RCACHE_OK);
  CHECK(n == INT64_MIN);
  CHECK_EQ(rcache_set_i64(c, "max", INT64_MAX, 0), RCACHE_OK);
  cli(out, sizeof out, "INCR '%smax'", ns);
  CHECK(strstr(out, "overflow") != NULL);
  cli(out, sizeof out, "SET '%sf' 4.5", ns);
  CHECK_EQ(rcache_get_i64(c, "f", &n), RCACHE_ETYPE); /* INCR refuses it too */
  cli(out, sizeof out, "INCR '%sf'", ns);
  CHECK(strstr(out, "not an integer") != NULL);

  /* doubles: INCRBYFLOAT works on what rcache wrote, rcache reads what it wrote */
  double d = 0;
  CHECK_EQ(rcache_set_double(c, "d", 0.1, 0), RCACHE_OK);
  cli(out, sizeof out, "GET '%sd'", ns);
  CHECK_STR(out, "0.1");
  cli(out, sizeof out, "INCRBYFLOAT '%sd' 0.5", ns);
  CHECK_STR(out, "0.6");
  CHECK_EQ(rcache_get_double(c, "d", &d), RCACHE_OK);
  CHECK(d == 0.6);
  CHECK_EQ(rcache_set_double(c, "d", -0.0, 0), RCACHE_OK);
  cli(out, sizeof out, "INCRBYFLOAT '%sd' 1", ns);
  CHECK_STR(out, "1");
  CHECK_EQ(rcache_set_double(c, "d", 1e300, 0), RCACHE_OK);
  cli(out, sizeof out, "GET '%sd'", ns);
  CHECK_STR(out, "1e+300");
  cli(out, sizeof out, "SET '%sd' 3.14", ns);
  CHECK_EQ(rcache_get_double(c, "d", &d), RCACHE_OK);
  CHECK(d == 3.14);

  /* strings, UTF-8 included, byte for byte */
  CHECK_EQ(rcache_set_str(c, "s", "h\xc3\xa9llo", 0), RCACHE_OK);
  cli(out, sizeof out, "--raw GET '%ss'", ns);
  CHECK_STR(out, "h\xc3\xa9llo");
  cli(out, sizeof out, "STRLEN '%ss'", ns);
  CHECK_STR(out, "6");

  /* the key helpers name the keys other services use; invalidation spares user 123 */
  cli(out, sizeof out,
      "MSET '%suser:12' a '%suser:12:credits' 5 '%suser:123' b "
      "'%suser:123:credits' 7 '%suser:12:sessions:9' c",
      ns, ns, ns, ns, ns);
  CHECK_STR(out, "OK");
  char key[64];
  rcache_key_user_credits(key, sizeof key, "12");
  CHECK_EQ(rcache_get_i64(c, key, &n), RCACHE_OK);
  CHECK_EQ(n, 5);
  uint64_t del = 0;
  CHECK_EQ(rcache_invalidate_user(c, "12", &del), RCACHE_OK);
  CHECK_EQ(del, 3);
  cli(out, sizeof out, "EXISTS '%suser:12' '%suser:12:credits' '%suser:12:sessions:9'", ns, ns, ns);
  CHECK_STR(out, "0");
  cli(out, sizeof out, "EXISTS '%suser:123' '%suser:123:credits'", ns, ns);
  CHECK_STR(out, "2");

  /* a digested long key is a plain key to redis-cli too */
  rcache_options lo = o;
  lo.max_key_bytes = 128;
  lo.long_key_digest = true;
  rcache *lc = NULL;
  CHECK_EQ(rcache_open(&lc, tcp_url, &lo), RCACHE_OK);
  char longkey[300], name[200];
  memset(longkey, 'k', sizeof longkey - 1);
  longkey[sizeof longkey - 1] = '\0';
  CHECK_EQ(rcache_set_str(lc, longkey, "via digest", 0), RCACHE_OK);
  rcache_key_digest(name, sizeof name, longkey, 128 - strlen(ns));
  cli(out, sizeof out, "GET '%s%s'", ns, name);
  CHECK_STR(out, "via digest");
  rcache_close(lc);

  CHECK_EQ(rcache_flush(c), RCACHE_OK);
  cli(out, sizeof out, "--scan --pattern '%s*'", ns);
  CHECK_STR(out, "");
  rcache_close(c);
}

/* A loopback port nobody listens on (bound, then released). */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof a;
  int port = 0;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &l) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0) close(fd);
  return port;
}

/* The smallest user codec: an int64 as decimal text. */
static rcache_status int_encode(const void *obj, rcache_value *out, void *ud) {
  char buf[24];
  int n = snprintf(buf, sizeof buf, "%" PRId64, *(const int64_t *)obj);
  out->data = malloc((size_t)n + 1);
  if (!out->data) return RCACHE_ENOMEM;
  memcpy(out->data, buf, (size_t)n + 1);
  out->len = (size_t)n;
  return RCACHE_OK;
}

static rcache_status int_decode(const char *data, size_t len, void *obj, void *ud) {
  char *end = NULL;
  *(int64_t *)obj = strtoll(data, &end, 10);
  return end == data + len ? RCACHE_OK : RCACHE_EDECODE;
}

static rcache_status load_int(void *ud, void *obj) {
  (*(int *)ud)++;
  *(int64_t *)obj = 4;
  return RCACHE_OK;
}

/* While Redis cannot be reached the typed calls follow the byte API's rules. */
static void unavailable(void) {
  char url[128];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d?connect_timeout_ms=200&command_timeout_ms=200",
           closed_port());
  rcache_options o;
  rcache_options_init(&o);
  o.log_level = RCACHE_LOG_ERROR;
  o.log_fn = NULL;
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  if (!c) return;
  int64_t n = 7;
  double d = 7;
  char *s = (char *)"x";
  json_t *j = (json_t *)1;
  CHECK_EQ(rcache_get_i64(c, "k", &n), RCACHE_EUNAVAILABLE);
  CHECK_EQ(n, 0);
  CHECK_EQ(rcache_get_double(c, "k", &d), RCACHE_EUNAVAILABLE);
  CHECK_EQ(rcache_get_str(c, "k", &s), RCACHE_EUNAVAILABLE);
  CHECK(s == NULL);
  CHECK_EQ(rcache_get_json(c, "k", &j), RCACHE_EUNAVAILABLE);
  CHECK(j == NULL);
  CHECK_EQ(rcache_set_i64(c, "k", 1, 0), RCACHE_EUNAVAILABLE);
  json_t *doc = json_pack("{s:i}", "a", 1);
  CHECK_EQ(rcache_set_json(c, "k", doc, 0), RCACHE_EUNAVAILABLE);
  json_decref(doc);
  int calls = 0;
  CHECK_EQ(rcache_get_or_set_json(c, "k", 60, load_fixed, &calls, &j), RCACHE_OK);
  CHECK_EQ(calls, 1);
  CHECK(j && json_integer_value(json_object_get(j, "id")) == 9);
  json_decref(j);
  const rcache_codec codec = {int_encode, int_decode, NULL};
  int64_t obj = 0;
  calls = 0;
  CHECK_EQ(rcache_get_or_set_obj(c, "o", 60, &codec, load_int, &calls, &obj), RCACHE_OK);
  CHECK_EQ(calls, 1);
  CHECK_EQ(obj, 4);
  uint64_t del = 9;
  CHECK_EQ(rcache_invalidate_user(c, "12", &del), RCACHE_EUNAVAILABLE);
  CHECK_EQ(del, 0);
  rcache_close(c);
}

int main(void) {
  tcp_url = test_env_url("RCACHE_TEST_URL_TCP");
  interop();
  unavailable();
  return test_report("test_typed");
}
