/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A server's error text never carries the password into rcache's output (regression,
 * issue 11): where AUTH is renamed away (rename-command AUTH ""), Redis answers
 * "ERR unknown command 'AUTH', with args beginning with: 'app' '<password>'", and that text
 * reached rcache_errmsg() and rcache_health_check()'s error unmasked (log lines were masked).
 * This test starts its own redis-server so configured, on a Unix socket (killed by PID at
 * exit, and by the kernel if the test dies first), and checks every output.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rcache/rcache.h"
#include "test.h"

#define SECRET "Tops3cret-xyz-991"

static pid_t server_pid = -1;
static char sock[108];

static void stop_server(void) {
  if (server_pid > 0) {
    kill(server_pid, SIGKILL);
    waitpid(server_pid, NULL, 0);
    server_pid = -1;
  }
  unlink(sock);
}

static bool start_server(void) {
  snprintf(sock, sizeof sock, "/tmp/rcache-authtext-%d.sock", (int)getpid());
  unlink(sock);
  pid_t parent = getpid();
  server_pid = fork();
  if (server_pid < 0) return false;
  if (server_pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
    if (getppid() != parent) _exit(1);
    FILE *null = fopen("/dev/null", "w");
    if (null) {
      dup2(fileno(null), 1);
      dup2(fileno(null), 2);
    }
    execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
           "--appendonly", "no", "--rename-command", "AUTH", "", "--loglevel", "warning",
           (char *)NULL);
    _exit(127);
  }
  atexit(stop_server);
  for (int i = 0; i < 500; i++) { /* up to 5 s for the socket */
    struct stat st;
    if (stat(sock, &st) == 0) return true;
    usleep(10000);
  }
  return false;
}

static char logbuf[16384];
static void logger(int level, const char *msg, void *ud) {
  size_t l = strlen(logbuf);
  snprintf(logbuf + l, sizeof logbuf - l, "%d %s\n", level, msg);
}

int main(void) {
  if (!start_server()) {
    CHECK_MSG(false, "redis-server did not start on %s", sock);
    return test_report("test_auth_text");
  }
  char url[256];
  snprintf(url, sizeof url, "unix://app:%s@%s", SECRET, sock);
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
  stop_server();
  return test_report("test_auth_text");
}
