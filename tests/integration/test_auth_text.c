/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A server's error text never carries the password into rcache's output (regression,
 * issue 11): where AUTH is renamed away (rename-command AUTH ""), Redis answers
 * "ERR unknown command 'AUTH', with args beginning with: 'app' '<password>'", and that text
 * reached rcache_errmsg() and rcache_health_check()'s error unmasked (log lines were masked).
 * This test starts its own redis-server so configured, on a Unix socket
 * (tests/support/redis_proc.h), and checks every output.
 */
#include "rcache/rcache.h"
#include "redis_proc.h"
#include "test.h"

#define SECRET "Tops3cret-xyz-991"

static char logbuf[16384];
static void logger(int level, const char *msg, void *ud) {
  size_t l = strlen(logbuf);
  snprintf(logbuf + l, sizeof logbuf - l, "%d %s\n", level, msg);
}

int main(void) {
  rp_server srv;
  const char *args[] = {"--rename-command", "AUTH", "", "--loglevel", "warning", NULL};
  if (rp_start(&srv, &(rp_opts){.port = RP_NO_TCP, .unix_socket = true, .args = args}) != 0) {
    CHECK_MSG(false, "redis-server did not start on a Unix socket");
    return test_report("test_auth_text");
  }
  char url[256];
  snprintf(url, sizeof url, "unix://app:%s@%s", SECRET, srv.sock);
  rcache_options o;
  rcache_options_init(&o);
  o.log_fn = logger;
  o.log_level = RCACHE_LOG_DEBUG;
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK); /* the server refuses: fallback mode */
  if (!c) return test_report("test_auth_text");

  rcache_health h;
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_EAUTH);
  /* the server's reason is there, the password is not */
  CHECK_MSG(strstr(h.error, "unknown command") != NULL, "health error: %s", h.error);
  CHECK_MSG(strstr(h.error, SECRET) == NULL, "health error shows the password: %s", h.error);
  CHECK_MSG(strstr(rcache_errmsg(c), SECRET) == NULL, "errmsg shows it: %s", rcache_errmsg(c));
  rcache_value v;
  CHECK_EQ(rcache_get(c, "k", &v), RCACHE_EUNAVAILABLE);
  CHECK_MSG(strstr(rcache_errmsg(c), SECRET) == NULL, "errmsg shows it: %s", rcache_errmsg(c));
  CHECK(strstr(logbuf, "unknown command") != NULL);
  CHECK_MSG(strstr(logbuf, SECRET) == NULL, "a log line shows it:\n%s", logbuf);
  rcache_stats st;
  char text[8192];
  rcache_get_stats(c, &st);
  rcache_stats_json(&st, text, sizeof text);
  CHECK(strstr(text, SECRET) == NULL);
  rcache_close(c);
  rp_destroy(&srv);
  return test_report("test_auth_text");
}
