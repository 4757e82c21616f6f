/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A large SET to a server that reads slowly ends by its deadline (rcache.h "Deadlines"),
 * over a Unix socket, against an in-process fake server that answers PING and then, once a
 * SET starts, (a) reads nothing until shortly before the call's deadline, drains what is
 * buffered once and stalls again, (b) drains 64 KiB every 300 ms and never answers. Writes
 * were blocking send()s bounded by SO_SNDTIMEO: on a Unix socket each buffer the kernel
 * allocates waits a whole timeout again, so (b) lasted as long as the 2 MiB took to drain
 * (8.5 s on a 1.1 s budget), and (a) overshot by up to half the command timeout (1.4 s).
 * Now every plain write is non-blocking, with poll() by the deadline. The bound checked is
 * twice the budget, so that a busy machine cannot fail the test; (a)'s time is printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "rcache/rcache.h"
#include "test.h"

#define CMD_MS 1000
#define CONN_MS 100

static char path[108];
static int lfd;
static atomic_bool stop, trickle;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *serve(void *arg) {
  int fd = (int)(intptr_t)arg;
  char buf[65536];
  redisReader *rd = redisReaderCreate();
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    if (n >= 13 && buf[0] == '*' && memcmp(buf + 4, "$3\r\nSET\r\n", 9) == 0) {
      double t0 = now_ms();        /* the SET's write began about now */
      if (atomic_load(&trickle)) { /* 64 KiB every 300 ms, never an answer */
        size_t drained = (size_t)n;
        while (!atomic_load(&stop) && (n = recv(fd, buf, sizeof buf, 0)) > 0) {
          drained += (size_t)n;
          usleep(300000);
        }
        printf("server: trickle drained %zu bytes in %.0f ms\n", drained, now_ms() - t0);
        break;
      }
      while (now_ms() < t0 + CMD_MS - 80)
        usleep(1000);
      int fl = fcntl(fd, F_GETFL);
      fcntl(fd, F_SETFL, fl | O_NONBLOCK);
      size_t drained = 0;
      while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
        drained += (size_t)n;
      printf("server: drained %zu bytes at +%.0f ms, then stalls\n", drained, now_ms() - t0);
      while (!atomic_load(&stop))
        usleep(10000);
      break;
    }
    redisReaderFeed(rd, buf, (size_t)n);
    void *r = NULL;
    while (redisReaderGetReply(rd, &r) == REDIS_OK && r) {
      redisReply *cmd = r;
      const char *c0 = cmd->type == REDIS_REPLY_ARRAY && cmd->elements ? cmd->element[0]->str : "";
      printf("server: %s %s\n", c0, cmd->elements > 1 ? cmd->element[1]->str : "");
      if (!strcasecmp(c0, "PING"))
        send(fd, "+PONG\r\n", 7, MSG_NOSIGNAL);
      else if (!strcasecmp(c0, "GET"))
        send(fd, "$-1\r\n", 5, MSG_NOSIGNAL);
      else if (!strcasecmp(c0, "INFO"))
        send(fd, "$0\r\n\r\n", 6, MSG_NOSIGNAL);
      else
        send(fd, "+OK\r\n", 5, MSG_NOSIGNAL);
      freeReplyObject(r);
    }
  }
  redisReaderFree(rd);
  close(fd);
  return NULL;
}

static void *acceptor(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) continue;
    pthread_t t;
    pthread_create(&t, NULL, serve, (void *)(intptr_t)fd);
    pthread_detach(t);
  }
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  snprintf(path, sizeof path, "/tmp/rcache-send-deadline-%d.sock", (int)getpid());
  unlink(path);
  lfd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
  CHECK(bind(lfd, (struct sockaddr *)&sun, sizeof sun) == 0 && listen(lfd, 16) == 0);
  pthread_t at;
  pthread_create(&at, NULL, acceptor, NULL);

  char url[160];
  snprintf(url, sizeof url, "unix://%s", path);
  rcache_options o;
  rcache_options_init(&o);
  o.connect_timeout_ms = CONN_MS;
  o.command_timeout_ms = CMD_MS;
  o.log_level = RCACHE_LOG_ERROR;
  rcache *c = NULL;
  CHECK(rcache_open(&c, url, &o) == RCACHE_OK);
  if (c) {
    rcache_health h;
    CHECK(rcache_health_check(c, &h) == RCACHE_OK); /* the first contact is over */
    size_t len = (size_t)2 << 20;
    char *v = malloc(len);
    memset(v, 'x', len);
    double t0 = now_ms();
    rcache_status s = rcache_set(c, "big", v, len, 0);
    double took = now_ms() - t0;
    printf("set: %s in %.0f ms (%s)\n", rcache_strerror(s), took, rcache_errmsg(c));
    CHECK(s == RCACHE_EUNAVAILABLE);
    CHECK_MSG(took <= 2 * (CONN_MS + CMD_MS),
              "the call took %.0f ms: over twice connect + "
              "command (%d)",
              took, CONN_MS + CMD_MS);
    /* a server that drains 64 KiB every 300 ms: a blocking send() waits a fresh
     * SO_SNDTIMEO for each buffer on a Unix socket, so the call lasted as long as the
     * whole value took to drain */
    atomic_store(&trickle, true);
    t0 = now_ms();
    s = rcache_set(c, "big2", v, len, 0);
    took = now_ms() - t0;
    printf("set (trickle): %s in %.0f ms (%s)\n", rcache_strerror(s), took, rcache_errmsg(c));
    CHECK(s == RCACHE_EUNAVAILABLE);
    CHECK_MSG(took <= 2 * (CONN_MS + CMD_MS),
              "the call took %.0f ms: over twice connect + "
              "command (%d)",
              took, CONN_MS + CMD_MS);
    free(v);
    rcache_close(c);
  }
  atomic_store(&stop, true);
  shutdown(lfd, SHUT_RDWR); /* the acceptor's accept() fails: it sees stop */
  pthread_join(at, NULL);
  close(lfd);
  unlink(path);
  return test_report("integration_test_send_deadline");
}
