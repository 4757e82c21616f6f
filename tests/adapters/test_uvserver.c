/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * examples/uvserver (rcache-uv-server, given as argv[1]) under concurrent clients while its
 * Redis is stopped and started: every request is answered with the right line, from the
 * cache or from the asynchronous loader (get_or_set's fallback while Redis is down), and the
 * server stops cleanly on SIGTERM.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/redis_proc.h"
#include "test.h"

extern char **environ;

enum { CLIENTS = 8, REQUESTS = 300 };

static int server_port;
static atomic_int answered, wrong;

static int connect_port(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {10, 0}; /* a bound, so a bug cannot hang the test */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* One line from fd into buf (without its newline); false on EOF, error or timeout. */
static bool read_line(int fd, char *buf, size_t size) {
  size_t n = 0;
  while (n + 1 < size) {
    ssize_t r = read(fd, buf + n, 1);
    if (r <= 0) return false;
    if (buf[n] == '\n') break;
    n++;
  }
  buf[n] = '\0';
  return true;
}

static void *client(void *arg) {
  int id = (int)(intptr_t)arg;
  int fd = connect_port(server_port);
  if (fd < 0) {
    atomic_fetch_add(&wrong, REQUESTS);
    return NULL;
  }
  char req[64], want[64], got[128];
  for (int i = 0; i < REQUESTS; i++) {
    int user = (id * 7 + i) % 40; /* shared keys: single-flight between clients too */
    int n = snprintf(req, sizeof req, "GET %d\n", user);
    snprintf(want, sizeof want, "user %d", user);
    if (write(fd, req, (size_t)n) != n || !read_line(fd, got, sizeof got)) {
      atomic_fetch_add(&wrong, REQUESTS - i);
      break;
    }
    if (strcmp(got, want) != 0) {
      if (atomic_fetch_add(&wrong, 1) < 5) fprintf(stderr, "got \"%s\", want \"%s\"\n", got, want);
    }
    atomic_fetch_add(&answered, 1);
    usleep(1000);
  }
  close(fd);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PATH-TO-rcache-uv-server\n", argv[0]);
    return 2;
  }
  rp_server srv;
  if (rp_start(&srv, NULL) != 0) {
    CHECK(!"a private redis-server");
    return test_report("test_uvserver");
  }
  char url[160];
  rp_url(&srv, url, sizeof url, "?connect_timeout_ms=200&command_timeout_ms=200");
  int out[2];
  CHECK(pipe(out) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  char *args[] = {argv[1], url, "0", NULL};
  pid_t pid = 0;
  CHECK(posix_spawn(&pid, argv[1], &fa, NULL, args, environ) == 0);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  char line[64];
  CHECK(read_line(out[0], line, sizeof line) && sscanf(line, "listening on %d", &server_port) == 1);
  if (server_port <= 0) {
    if (pid > 0) kill(pid, SIGKILL);
    return test_report("test_uvserver");
  }
  pthread_t th[CLIENTS];
  for (int i = 0; i < CLIENTS; i++)
    pthread_create(&th[i], NULL, client, (void *)(intptr_t)i);
  /* Redis goes away and comes back while the clients run */
  while (atomic_load(&answered) < CLIENTS * REQUESTS / 4 && !atomic_load(&wrong))
    usleep(1000);
  rp_kill(&srv);
  int at_kill = atomic_load(&answered);
  while (atomic_load(&answered) < at_kill + CLIENTS * 20 && !atomic_load(&wrong))
    usleep(1000);
  CHECK(rp_restart(&srv, false) == 0);
  for (int i = 0; i < CLIENTS; i++)
    pthread_join(th[i], NULL);
  CHECK_EQ(atomic_load(&wrong), 0);
  CHECK_EQ(atomic_load(&answered), CLIENTS * REQUESTS);
  printf("%d answers, %d while Redis was down or coming back\n", atomic_load(&answered),
         atomic_load(&answered) - at_kill);
  /* a bad request, then a clean stop */
  int fd = connect_port(server_port);
  CHECK(fd >= 0 && write(fd, "HELLO\n", 6) == 6 && read_line(fd, line, sizeof line));
  CHECK_STR(line, "ERR bad request");
  if (fd >= 0) close(fd);
  kill(pid, SIGTERM);
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  rp_destroy(&srv);
  return test_report("test_uvserver");
}
