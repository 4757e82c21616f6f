/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Typed helpers, JSON, key helpers and namespaces against real servers: the shared checks
 * of tests/typed_checks.h over RCACHE_TEST_URL_TCP, _UNIX, _TLS, _CLUSTER and _SENTINEL,
 * and over TCP with the near cache on;
 * interop with values written and read by redis-cli (as another service would); and the
 * fallback rules of the typed calls while Redis is unreachable.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/socket.h>

#include "test.h"
#include "typed_checks.h"

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
  tc_user_loader l = {0, RCACHE_OK, {4, "dan", "ops"}};
  tc_user u = {0, "", ""};
  CHECK_EQ(rcache_get_or_set_obj(c, "o", 60, &tc_user_codec, tc_load_user, &l, &u), RCACHE_OK);
  CHECK(tc_user_eq(&u, &l.value));
  uint64_t del = 9;
  CHECK_EQ(rcache_invalidate_user(c, "12", &del), RCACHE_EUNAVAILABLE);
  CHECK_EQ(del, 0);
  rcache_close(c);
}

int main(void) {
  tcp_url = test_env_url("RCACHE_TEST_URL_TCP");
  const char *unix_url = test_env_url("RCACHE_TEST_URL_UNIX");
  const char *tls_url = test_env_url("RCACHE_TEST_URL_TLS");
  typed_checks_run(tcp_url, true);
  typed_checks_run(unix_url, true);
  typed_checks_run(tls_url, true);
  typed_checks_run(test_env_url("RCACHE_TEST_URL_CLUSTER"), true);
  typed_checks_run(test_env_url("RCACHE_TEST_URL_SENTINEL"), true);
  typed_checks_run_near(tcp_url, true, (size_t)4 << 20);
  interop();
  unavailable();
  return test_report("test_typed");
}
