/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The fault suite's own tools, checked with raw hiredis before anything relies on them:
 * tests/support/redis_proc.h's servers (start on TCP or a Unix socket only, pause, kill,
 * stop, restart on the same port, a fixed port), servers killed however the test process
 * ends (exit, abort, SIGKILL), and every proxy mode.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper_load.h"
#include "helper_proxy.h"
#include "redis_proc.h"
#include "test.h"

static int64_t ms_since(int64_t t0) {
  return (load_now_us() - t0) / 1000;
}

static redisContext *connect_port(int port, int timeout_ms) {
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
  if (c && c->err) {
    redisFree(c);
    return NULL;
  }
  if (c) redisSetTimeout(c, tv);
  return c;
}

/* 1 PONG, 0 error/timeout */
static int ping(redisContext *c) {
  redisReply *r = redisCommand(c, "PING");
  int ok = r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "PONG");
  if (r) freeReplyObject(r);
  return ok;
}

/* A process is gone when it does not exist or is a zombie nobody reaped yet. */
static bool gone(pid_t pid) {
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return true;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')');
  return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static bool wait_gone(pid_t pid, int ms) {
  for (int i = 0; i < ms / 10; i++) {
    if (gone(pid)) return true;
    usleep(10000);
  }
  return gone(pid);
}

static void test_server(void) {
  rp_server s;
  const char *extra[] = {"--maxmemory-policy", "noeviction", NULL};
  CHECK(rp_start(&s, &(rp_opts){.password = "s3cr3t-pw", .args = extra}) == 0);
  if (!s.pid) return;
  CHECK(s.port >= 20000 && s.port <= 29999);
  char url[256];
  rp_url(&s, url, sizeof url, NULL);
  CHECK(strstr(url, ":s3cr3t-pw@127.0.0.1:") != NULL);
  /* requirepass is in force: a raw connection without AUTH is refused */
  redisContext *raw = connect_port(s.port, 500);
  CHECK(raw != NULL);
  if (raw) {
    redisReply *r = redisCommand(raw, "GET x");
    CHECK(r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "NOAUTH"));
    if (r) freeReplyObject(r);
    redisFree(raw);
  }
  CHECK(rp_do(&s, "SET helper:x 1"));
  redisReply *r = rp_command(&s, "CONFIG GET maxmemory-policy");
  CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        !strcmp(r->element[1]->str, "noeviction"));
  if (r) freeReplyObject(r);
  r = rp_command(&s, "CONFIG GET bind");
  CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        !strcmp(r->element[1]->str, "127.0.0.1"));
  if (r) freeReplyObject(r);

  /* paused: connecting still works (the kernel's backlog) but nothing answers */
  rp_pause(&s);
  redisContext *c = rp_connect(&s, 300);
  CHECK(c == NULL); /* AUTH times out */
  c = connect_port(s.port, 300);
  if (c) {
    int64_t t0 = load_now_us();
    CHECK(!ping(c));
    CHECK(ms_since(t0) >= 250);
    redisFree(c);
  }
  rp_resume(&s);
  c = rp_connect(&s, 1000);
  CHECK(c && ping(c));
  if (c) redisFree(c);

  /* killed: refused; restarted on the same port: answers again (no persistence) */
  int port = s.port;
  pid_t old = s.pid;
  rp_kill(&s);
  CHECK(s.pid == 0);
  CHECK(wait_gone(old, 1000));
  CHECK(connect_port(port, 300) == NULL);
  CHECK(rp_restart(&s, false) == 0);
  CHECK(s.port == port && s.pid > 0 && s.pid != old);
  r = rp_command(&s, "EXISTS helper:x");
  CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0);
  if (r) freeReplyObject(r);

  /* paused, then destroyed: it still goes away */
  rp_pause(&s);
  pid_t last = s.pid;
  rp_destroy(&s);
  CHECK(wait_gone(last, 2000));
}

/* A Unix-socket-only server with a password, a graceful stop, and a fixed port reused
 * after its server is gone. */
static void test_server_variants(void) {
  rp_server u;
  CHECK(rp_start(&u, &(rp_opts){.port = RP_NO_TCP, .unix_socket = true, .password = "pw"}) == 0);
  CHECK(u.port == 0 && u.sock[0] == '/');
  char url[300], want[300];
  rp_url(&u, url, sizeof url, "?db=1");
  snprintf(want, sizeof want, "unix://:pw@%s?db=1", u.sock);
  CHECK_STR(url, want);
  CHECK(rp_do(&u, "SET helper:u 1"));
  redisReply *r = rp_command(&u, "CONFIG GET port");
  CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && !strcmp(r->element[1]->str, "0"));
  if (r) freeReplyObject(r);
  pid_t pid = u.pid;
  rp_pause(&u);
  CHECK_EQ(rp_stop(&u), 0); /* continued, then it exits on SIGTERM by itself */
  CHECK(u.pid == 0 && wait_gone(pid, 1000));
  rp_destroy(&u);

  int port = rp_free_port();
  CHECK(port >= 20000 && port != rp_free_port()); /* never the same port twice */
  rp_server f;
  for (int round = 0; round < 2; round++) { /* the second server gets the same port */
    CHECK(rp_start(&f, &(rp_opts){.port = port}) == 0);
    CHECK_EQ(f.port, port);
    CHECK(rp_reply_has(rp_cmd(port, "PING"), "PONG"));
    rp_destroy(&f);
  }
}

/* A child the test forks inherits the at-exit and signal handlers: its exit() and its
 * SIGTERM must not touch the parent's server. */
static void test_forked_child_spares_parent(void) {
  rp_server s;
  CHECK(rp_start(&s, NULL) == 0);
  if (!s.pid) return;
  for (int how = 0; how < 2; how++) {
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
      if (how == 1) raise(SIGTERM);
      exit(0);
    }
    waitpid(child, NULL, 0);
    CHECK_MSG(!gone(s.pid) && rp_reply_has(rp_cmd(s.port, "PING"), "PONG"),
              "a forked child's %s killed the parent's server", how ? "SIGTERM" : "exit");
  }
  rp_destroy(&s);
}

/* A child process starts a server (and pauses it), reports its PID, then ends by `how`:
 * 0 exit(), 1 abort(), 2 SIGKILL. The server must not outlive it. */
static void test_server_outlived(int how) {
  int fd[2];
  if (pipe(fd) != 0) return;
  pid_t child = fork();
  if (child == 0) {
    close(fd[0]);
    rp_server s;
    pid_t pid = rp_start(&s, NULL) == 0 ? s.pid : 0;
    rp_pause(&s);
    ssize_t w = write(fd[1], &pid, sizeof pid);
    w += write(fd[1], s.dir, sizeof s.dir);
    (void)w;
    if (how == 0) exit(0);
    if (how == 1) abort(); /* the helper's SIGABRT handler kills the server */
    raise(SIGKILL);
    _exit(3);
  }
  close(fd[1]);
  pid_t pid = 0;
  char dir[sizeof((rp_server *)0)->dir] = "";
  ssize_t n = read(fd[0], &pid, sizeof pid);
  if (read(fd[0], dir, sizeof dir) == (ssize_t)sizeof dir && dir[0]) {
    dir[sizeof dir - 1] = '\0';
  } else {
    dir[0] = '\0';
  }
  close(fd[0]);
  waitpid(child, NULL, 0);
  CHECK_MSG(n == (ssize_t)sizeof pid && pid > 0, "child could not start a server (how %d)", how);
  if (pid > 0) {
    bool ok = wait_gone(pid, 3000);
    CHECK_MSG(ok, "server %d outlived its test process (how %d)", (int)pid, how);
    if (!ok) {
      kill(pid, SIGCONT);
      kill(pid, SIGKILL);
    }
  }
  if (dir[0] && wait_gone(pid, 1000)) rp_remove_dir(dir); /* an abort or SIGKILL leaves it */
}

static void test_proxy(void) {
  rp_server s;
  CHECK(rp_start(&s, NULL) == 0);
  if (!s.pid) return;
  proxy *p = proxy_start(s.port);
  CHECK(p != NULL);
  if (!p) {
    rp_destroy(&s);
    return;
  }
  CHECK(proxy_port(p) != s.port && proxy_port(p) >= 20000);

  /* pass: big values survive both ways */
  redisContext *c = connect_port(proxy_port(p), 1000);
  CHECK(c != NULL);
  if (!c) goto out;
  static char big[300000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)('a' + i % 23);
  redisReply *r = redisCommand(c, "SET big %b", big, sizeof big);
  CHECK(r && r->type == REDIS_REPLY_STATUS);
  if (r) freeReplyObject(r);
  r = redisCommand(c, "GET big");
  CHECK(r && r->type == REDIS_REPLY_STRING && r->len == sizeof big &&
        !memcmp(r->str, big, sizeof big));
  if (r) freeReplyObject(r);
  CHECK(proxy_accepted(p) == 1 && proxy_open_pairs(p) == 1);

  /* black hole: an open connection and a new one both stall; nothing is closed */
  proxy_set_mode(p, PROXY_BLACKHOLE, 0);
  usleep(20000);
  int64_t t0 = load_now_us();
  CHECK(!ping(c));
  CHECK(ms_since(t0) >= 900);
  redisFree(c);
  c = connect_port(proxy_port(p), 300);
  CHECK(c != NULL); /* accepted... */
  if (c) {
    CHECK(!ping(c)); /* ...and silent */
    redisFree(c);
  }
  CHECK(proxy_open_pairs(p) >= 1);
  /* back to pass: new connections work, the closed ones are cleaned up */
  proxy_set_mode(p, PROXY_PASS, 0);
  c = connect_port(proxy_port(p), 1000);
  CHECK(c && ping(c));
  if (c) redisFree(c);
  usleep(100000);
  CHECK_EQ(proxy_open_pairs(p), 0);

  /* half: half of the reply arrives, then the connection is closed */
  c = connect_port(proxy_port(p), 1000);
  CHECK(c && ping(c));
  if (!c) goto out;
  uint64_t down0 = proxy_bytes_down(p);
  proxy_set_mode(p, PROXY_HALF, 0);
  usleep(20000);
  r = redisCommand(c, "GET big");
  CHECK(r == NULL && c->err != 0); /* EOF in the middle of the bulk string */
  if (r) freeReplyObject(r);
  redisFree(c);
  CHECK(proxy_cut(p) >= 1);
  CHECK(proxy_bytes_down(p) - down0 < sizeof big);
  usleep(50000);
  CHECK_EQ(proxy_open_pairs(p), 0);

  /* delay: every reply is held 150 ms */
  proxy_set_mode(p, PROXY_DELAY, 150);
  c = connect_port(proxy_port(p), 2000);
  CHECK(c != NULL);
  if (c) {
    t0 = load_now_us();
    CHECK(ping(c));
    int64_t took = ms_since(t0);
    CHECK_MSG(took >= 140 && took < 1000, "PING took %lld ms", (long long)took);
    t0 = load_now_us();
    r = redisCommand(c, "GET big");
    CHECK(r && r->type == REDIS_REPLY_STRING && r->len == sizeof big);
    if (r) freeReplyObject(r);
    CHECK(ms_since(t0) >= 140);
    proxy_set_mode(p, PROXY_PASS, 0);
    t0 = load_now_us();
    CHECK(ping(c));
    CHECK(ms_since(t0) < 140);
    redisFree(c);
  }

  /* flaky: set-up passes, then every other reply is dropped with its connection */
  proxy_set_mode(p, PROXY_FLAKY, 0);
  int ok = 0, failed = 0, pattern_ok = 1, last = -1;
  for (int i = 0; i < 10; i++) {
    c = connect_port(proxy_port(p), 1000);
    if (!c) break;
    r = redisCommand(c, "CLIENT SETNAME flaky"); /* the connection's first reply */
    CHECK(r && r->type == REDIS_REPLY_STATUS);
    if (r) freeReplyObject(r);
    int now = 0;
    while ((now = ping(c)) == 1) {
      ok++;
      if (last == 1) pattern_ok = 0;
      last = 1;
    }
    failed++;
    if (last == 0) pattern_ok = 0;
    last = 0;
    redisFree(c);
  }
  CHECK_EQ(failed, 10);
  CHECK_MSG(ok >= 9 && pattern_ok, "flaky: %d ok, %d failed, alternating %d", ok, failed,
            pattern_ok);
  proxy_set_mode(p, PROXY_PASS, 0);

  /* the server killed under the proxy: the client sees the connection close */
  c = connect_port(proxy_port(p), 1000);
  CHECK(c && ping(c));
  if (c) {
    rp_kill(&s);
    CHECK(!ping(c));
    redisFree(c);
  }
  CHECK(rp_restart(&s, false) == 0);
  c = connect_port(proxy_port(p), 1000);
  CHECK(c && ping(c));
  if (c) redisFree(c);
out:
  proxy_stop(p);
  rp_destroy(&s);
}

int main(void) {
  test_server();
  test_server_variants();
  test_forked_child_spares_parent();
  test_server_outlived(0);
  test_server_outlived(1);
  test_server_outlived(2);
  test_proxy();
  return test_report("faults_test_helpers");
}
