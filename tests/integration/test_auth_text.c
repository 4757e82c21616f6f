/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A server's error text never carries the password, whole or in part, into rcache's output
 * (issues 11 and 21): where AUTH is renamed away (rename-command AUTH ""), Redis answers
 * "ERR unknown command 'AUTH', with args beginning with: 'app' '<password>'" cut at 128
 * characters, and that text reached rcache_errmsg() and rcache_health_check()'s error (120
 * of a 160-character password; with a long user name, 15 of 22). This test starts its own
 * redis-server so configured, on a Unix socket (tests/support/redis_proc.h), and checks
 * every output for any run of 4 characters of the
 * password: short, 160 characters, with a long user name, longer than every buffer. A fake
 * server (fake_resp.h) then echoes the password, whole or truncated, in the errors it
 * answers to the health check's PING.
 */
#include "fake_resp.h"
#include "log_capture.h"
#include "rcache/rcache.h"
#include "redis_proc.h"
#include "test.h"

#define SECRET "Tops3cret-xyz-991"

/* True when text holds a run of 4 characters of secret (the whole of a shorter one). */
static bool leaks(const char *text, const char *secret) {
  size_t sl = strlen(secret), k = sl < 4 ? sl : 4;
  char w[5];
  for (size_t j = 0; j + k <= sl; j++) {
    memcpy(w, secret + j, k);
    w[k] = '\0';
    if (strstr(text, w)) return true;
  }
  return false;
}

/* Opens a handle on url (its server refuses or echoes), and checks every output. */
static void check_outputs(const char *what, const char *url, const char *secret, rcache_status want,
                          const char *reason) {
  rcache_options o;
  rcache_options_init(&o);
  o.log_fn = lc_log;
  o.log_level = RCACHE_LOG_DEBUG;
  lc_clear();
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK); /* the server refuses: fallback mode */
  if (!c) return;
  rcache_health h;
  CHECK_EQ(rcache_health_check(c, &h), want);
  /* the server's reason is there, the password is not */
  CHECK_MSG(strstr(h.error, reason) != NULL, "%s: health error: %s", what, h.error);
  CHECK_MSG(!leaks(h.error, secret), "%s: health error shows the password: %s", what, h.error);
  CHECK_MSG(!leaks(rcache_errmsg(c), secret), "%s: errmsg: %s", what, rcache_errmsg(c));
  rcache_value v;
  CHECK_EQ(rcache_get(c, "k", &v), RCACHE_EUNAVAILABLE);
  CHECK_MSG(!leaks(rcache_errmsg(c), secret), "%s: errmsg: %s", what, rcache_errmsg(c));
  rcache_stats st;
  char text[8192];
  rcache_get_stats(c, &st);
  rcache_stats_json(&st, text, sizeof text);
  CHECK(!leaks(text, secret));
  rcache_stats_prometheus(&st, text, sizeof text);
  CHECK(!leaks(text, secret));
  rcache_close(c); /* after every line the handle's threads log */
  const char *lines = lc_text();
  CHECK_MSG(strstr(lines, reason) != NULL, "%s: log:\n%s", what, lines);
  CHECK_MSG(!leaks(lines, secret), "%s: a log line shows it:\n%s", what, lines);
}

/* A password of n characters that shares no run of 4 with rcache's own messages. */
static char *password(size_t n, unsigned seed) {
  char *p = malloc(n + 1);
  for (size_t i = 0; i < n; i++, seed = seed * 1103515245u + 12345u)
    p[i] = "qzjxkvQZJXKV0123456789"[(seed >> 16) % 22];
  p[n] = '\0';
  return p;
}

int main(void) {
  rp_server srv;
  const char *args[] = {"--rename-command", "AUTH", "", "--loglevel", "warning", NULL};
  if (rp_start(&srv, &(rp_opts){.port = RP_NO_TCP, .unix_socket = true, .args = args}) != 0) {
    CHECK_MSG(false, "redis-server did not start on a Unix socket");
    return test_report("test_auth_text");
  }
  static char url[16384];
  /* AUTH renamed: a short password, a 160-character one, a long user name, and a password
   * longer than every buffer */
  static const char long_user[] = "a-rather-long-user-name-for-the-echo-to-be-cut-short-"
                                  "0123456789-0123456789-0123456789";
  const char *users[] = {"app", "app", long_user, "app"};
  size_t lens[] = {sizeof SECRET - 1, 160, 22, 5000};
  for (int i = 0; i < 4; i++) {
    char *pw = i == 0 ? strdup(SECRET) : password(lens[i], (unsigned)i);
    snprintf(url, sizeof url, "unix://%s:%s@%s", users[i], pw, srv.sock);
    check_outputs(i == 0   ? "short"
                  : i == 1 ? "160"
                  : i == 2 ? "long user"
                           : "5000",
                  url, pw, RCACHE_EAUTH, "AUTH refused by the server (ERR: unknown command)");
    free(pw);
  }
  rp_destroy(&srv);

  /* a server that echoes the password in its errors, whole or cut short (AUTH succeeds) */
  char *pw = password(160, 99);
  char echo[400];
  for (int i = 0; i < 2; i++) {
    snprintf(echo, sizeof echo, "ERR unknown command 'PING', with args beginning with: '%.*s",
             i == 0 ? 160 : 70, pw);
    fake_resp f = {.error_text = echo};
    if (!fr_start(&f, "authtext-echo")) {
      CHECK_MSG(false, "fake server did not start");
      break;
    }
    snprintf(url, sizeof url, "unix://app:%s@%s", pw, f.path);
    check_outputs(i == 0 ? "echo" : "echo cut", url, pw, RCACHE_ESERVER, "unknown command 'PING'");
    fr_stop(&f);
  }
  free(pw);
  return test_report("test_auth_text");
}
