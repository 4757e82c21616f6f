/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Receive timestamps (engine/transport.c, check_stamp): on a plain TCP connection every read
 * knows when the kernel received its bytes, which is how a pooled connection finds bytes
 * nobody asked for without a poll() before each write (pool.c, make_ready). Against a
 * loopback listener of this test (no server needed):
 *  - an exchange whose answer comes after the question vouches for the socket (`stamped`)
 *    and is not out of step;
 *  - bytes sent while nothing was asked, then read as the answer to a question written
 *    after them, are found (`early`); so are they when they are sent in two segments;
 *  - bytes that come after the question, the answer a slow server sends late, are not;
 *  - a Unix socket carries no timestamps: never vouched for, so the pool polls it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "engine/transport.h"
#include "test.h"

static void sleep_ms(int ms) {
  struct timespec ts = {0, (long)ms * 1000000L};
  nanosleep(&ts, NULL);
}

/* The server's end of a connection, without Nagle's delay (as Redis sets it): junk written
 * right after an answer is not held back until the client's next segment acknowledges it. */
static int accept_peer(int lfd) {
  int fd = accept(lfd, NULL, NULL), one = 1;
  if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static int listener(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0)
    return -1;
  *port = ntohs(a.sin_port);
  return fd;
}

/* One question (written by the client, read by the server) and its answer (written by the
 * server after `delay_ms`, then read by the client); `junk`, when set, is sent by the server
 * before the question is written (and `junk2` after a pause, a second segment). */
static void exchange(rcache__sock *s, int peer, const char *junk, const char *junk2, int delay_ms) {
  char buf[256];
  if (junk) {
    CHECK(write(peer, junk, strlen(junk)) == (ssize_t)strlen(junk));
    sleep_ms(5); /* in the client's socket buffer */
  }
  if (junk2) {
    CHECK(write(peer, junk2, strlen(junk2)) == (ssize_t)strlen(junk2));
    sleep_ms(5);
  }
  rcache__sock_ask(s);
  CHECK_EQ(rcache__sock_write(s, "q", 1, rcache__now_us() + 2000000), RCACHE_OK);
  CHECK(read(peer, buf, sizeof buf) == 1);
  if (!junk) { /* the answer, maybe late; with junk waiting, the read below returns it */
    if (delay_ms) sleep_ms(delay_ms);
    CHECK(write(peer, "a", 1) == 1);
  }
  size_t n = 0;
  CHECK_EQ(rcache__sock_read(s, buf, sizeof buf, &n, rcache__now_us() + 2000000), RCACHE_OK);
}

/* Exchanges until an answer vouches for the socket. The kernel turns its receive timestamps on
 * a moment after a socket asks for them when no socket had them on (a static key switched by
 * deferred work; closing the last one switches it off the same way): answers may carry none
 * for a few milliseconds (seen: 200 exchanges in a row without a pause, on a connection made
 * just after the one before closed). */
static void vouch(rcache__sock *s, int peer) {
  for (int i = 0; i < 200 && !s->stamped; i++) {
    exchange(s, peer, NULL, NULL, 0);
    rcache__sock_answered(s);
    if (!s->stamped) sleep_ms(5);
  }
  CHECK_MSG(s->stamped, "no answer vouched for the socket's receive timestamps");
  CHECK(!s->early);
}

static void tcp(void) {
  int port = 0, lfd = listener(&port);
  CHECK(lfd >= 0);
  if (lfd < 0) return;
  rcache__addr a = {.host = "127.0.0.1", .port = port};
  rcache__sock_opts o = {.command_timeout_ms = 2000};
  rcache__sock s;
  CHECK_EQ(rcache__sock_connect(&s, &o, NULL, &a, rcache__now_us() + 2000000), RCACHE_OK);
  int peer = accept_peer(lfd);
  CHECK(peer >= 0);
  CHECK(s.stamps_on);
  vouch(&s, peer);
  for (int i = 0; i < 20; i++) { /* answers at once and late: never out of step */
    exchange(&s, peer, NULL, NULL, i % 2 ? 3 : 0);
    CHECK_MSG(!s.early, "exchange %d: an answer that came after its question taken as early", i);
    rcache__sock_answered(&s);
  }
  CHECK(s.stamped);
  exchange(&s, peer, "junk", NULL, 0);
  CHECK_MSG(s.early, "bytes waiting before the question were read as its answer unseen");
  rcache__sock_close(&s);
  close(peer);

  /* the same, the junk in two segments */
  CHECK_EQ(rcache__sock_connect(&s, &o, NULL, &a, rcache__now_us() + 2000000), RCACHE_OK);
  peer = accept_peer(lfd);
  vouch(&s, peer);
  exchange(&s, peer, "ju", "nk", 0);
  CHECK_MSG(s.early, "junk in two segments read as the answer unseen");
  rcache__sock_close(&s);
  close(peer);
  close(lfd);
}

static void unix_socket(void) {
  char path[108];
  snprintf(path, sizeof path, "/tmp/rcache-stamps-%d.sock", (int)getpid());
  unlink(path);
  int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
  CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&sun, sizeof sun) == 0 && listen(lfd, 4) == 0);
  rcache__addr a = {.port = 0};
  snprintf(a.path, sizeof a.path, "%s", path);
  rcache__sock_opts o = {.command_timeout_ms = 2000};
  rcache__sock s;
  CHECK_EQ(rcache__sock_connect(&s, &o, NULL, &a, rcache__now_us() + 2000000), RCACHE_OK);
  int peer = accept(lfd, NULL, NULL);
  CHECK(peer >= 0);
  for (int i = 0; i < 5; i++) {
    exchange(&s, peer, NULL, NULL, 0);
    rcache__sock_answered(&s);
  }
  CHECK_MSG(!s.stamps_on && !s.stamped, "a Unix socket taken as stamped");
  rcache__sock_close(&s);
  close(peer);
  close(lfd);
  unlink(path);
}

int main(void) {
  tcp();
  unix_socket();
  return test_report("test_stamps");
}
