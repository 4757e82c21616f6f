/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Configuration errors are not outages (issue 19, point 8), against the real servers: with
 * strict_config, rcache_open() fails with RCACHE_EAUTH on a wrong password and RCACHE_ETLS
 * on a certificate it cannot trust, and succeeds on a server that is merely down; a
 * password changed on the server while the handle is open turns data calls into
 * RCACHE_EAUTH (get_or_set still answers from its loader). Without the option nothing
 * changes: open succeeds and reads say RCACHE_EUNAVAILABLE.
 *
 * The password-change case uses an ACL user of its own (created and deleted here through
 * the TCP server's default user), so no other test's user is touched.
 *
 * Every open against a server that answers has generous deadlines (VERDICT_MS): a connect
 * or TLS handshake that times out is "the server is slow", no verdict on the password or
 * the certificate (the refusal comes inside the handshake, before any wait could end it),
 * so on a loaded machine a short deadline would make the expected refusal an outage.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rcache/rcache.h"
#include "test.h"

#define USER "h9strict"
#define VERDICT_MS 10000 /* connect and command deadlines: the server always answers first */

static int port;

static void admin(const char *fmt, const char *arg) {
  redisContext *r = redisConnect("127.0.0.1", port);
  CHECK(r && !r->err);
  if (!r || r->err) {
    if (r) redisFree(r);
    return;
  }
  redisReply *rep = redisCommand(r, fmt, arg);
  CHECK_MSG(rep && rep->type != REDIS_REPLY_ERROR, "%s: %s", fmt,
            rep && rep->str ? rep->str : "no reply");
  if (rep) freeReplyObject(rep);
  redisFree(r);
}

static void quiet(int level, const char *msg, void *ud) {
  (void)level, (void)msg, (void)ud; /* the refusals are expected: keep stderr clean */
}

static rcache_options strict(void) {
  rcache_options o;
  rcache_options_init(&o);
  o.strict_config = true;
  o.log_fn = quiet;
  o.breaker_failures = 1;
  o.connect_timeout_ms = VERDICT_MS;
  o.command_timeout_ms = VERDICT_MS;
  return o;
}

static void test_wrong_password(void) {
  char url[256];
  snprintf(url, sizeof url, "redis://app:not-the-password@127.0.0.1:%d", port);
  rcache_options o = strict();
  rcache *c = (rcache *)1;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_EAUTH);
  CHECK(c == NULL);
  CHECK_MSG(strstr(rcache_errmsg(NULL), "WRONGPASS") != NULL, "%s", rcache_errmsg(NULL));
  CHECK(strstr(rcache_errmsg(NULL), "not-the-password") == NULL);
  /* the default: open succeeds in fallback mode, reads look like an outage */
  o.strict_config = false;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  if (!c) return;
  rcache_value v;
  CHECK_EQ(rcache_get(c, "k", &v), RCACHE_EUNAVAILABLE);
  rcache_health h;
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_EAUTH);
  rcache_close(c);
  /* the right password opens */
  o.strict_config = true;
  CHECK_EQ(rcache_open(&c, test_env_url("RCACHE_TEST_URL_ACL"), &o), RCACHE_OK);
  CHECK_EQ(rcache_set(c, "strict", "v", 1, 10), RCACHE_OK);
  rcache_close(c);
}

static void test_untrusted_certificate(void) {
  const char *tport = test_env_url("RCACHE_TEST_TLS_PORT");
  char url[256]; /* no tls_ca: the system store, which does not know the test CA */
  snprintf(url, sizeof url, "rediss://localhost:%s", tport);
  rcache_options o = strict();
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_ETLS);
  CHECK(c == NULL);
  CHECK_MSG(strstr(rcache_errmsg(NULL), "certificate") != NULL, "%s", rcache_errmsg(NULL));
  rcache_status s = rcache_open(&c, test_env_url("RCACHE_TEST_URL_TLS"), &o);
  CHECK_MSG(s == RCACHE_OK, "trusted open: %s", rcache_errmsg(NULL));
  rcache_close(c);
}

static void test_down_is_no_config_error(void) {
  rcache_options o = strict();
  o.connect_timeout_ms = 300;
  rcache *c = NULL; /* port 1 on loopback: refused at once */
  CHECK_EQ(rcache_open(&c, "redis://127.0.0.1:1", &o), RCACHE_OK);
  if (!c) return;
  rcache_value v;
  CHECK_EQ(rcache_get(c, "k", &v), RCACHE_EUNAVAILABLE);
  rcache_close(c);
}

static rcache_status loader(void *ud, rcache_value *out) {
  (*(int *)ud)++;
  out->data = strdup("loaded");
  out->len = out->data ? 6 : 0;
  return out->data ? RCACHE_OK : RCACHE_ENOMEM;
}

static void test_password_changed_while_open(void) {
  admin("ACL SETUSER " USER " on >first-pw ~* +@all", NULL);
  char url[256];
  snprintf(url, sizeof url, "redis://" USER ":first-pw@127.0.0.1:%d", port);
  rcache_options o = strict();
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  if (c) {
    CHECK_EQ(rcache_set(c, "strict:k", "v", 1, 10), RCACHE_OK);
    admin("ACL SETUSER " USER " resetpass >second-pw", NULL);
    admin("CLIENT KILL USER %s", USER);
    rcache_value v = {0};
    rcache_status s = RCACHE_OK;
    for (int i = 0; i < 50 && s != RCACHE_EAUTH; i++) /* the first call may see the kill */
      s = rcache_get(c, "strict:k", &v);
    CHECK_EQ(s, RCACHE_EAUTH);
    CHECK_EQ(rcache_get(c, "strict:k", &v), RCACHE_EAUTH); /* the breaker says why */
    CHECK_EQ(rcache_set(c, "strict:k", "v", 1, 10), RCACHE_EAUTH);
    int calls = 0;
    CHECK_EQ(rcache_get_or_set(c, "strict:k", 10, loader, &calls, &v), RCACHE_OK);
    CHECK_EQ(calls, 1);
    CHECK(v.len == 6 && memcmp(v.data, "loaded", 6) == 0);
    rcache_value_free(&v);
    rcache_close(c);
  }
  admin("ACL DELUSER %s", USER);
}

int main(void) {
  port = atoi(test_env_url("RCACHE_TEST_PORT"));
  test_wrong_password();
  test_untrusted_certificate();
  test_down_is_no_config_error();
  test_password_changed_while_open();
  return test_report("test_strict_config");
}
