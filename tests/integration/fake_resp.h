/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A hostile Redis for tests (header-only, one includer per test): a thread serving a Unix
 * socket in /tmp that answers what rcache sends while it opens a handle (AUTH, SELECT,
 * CLIENT SETNAME/ID/TRACKING, INFO, SUBSCRIBE, PING) like a server would, and once a
 * connection sends the trigger command (e.g. "GET" for the data path; "SUBSCRIBE" for the
 * near cache's listener, where it starts with the next command, the listener's first PING,
 * so that it never arrives with the SUBSCRIBE reply) streams the hostile reply at it: a
 * head (e.g. "*100000000\r\n")
 * then a body repeated as long as the client reads (e.g. ":1\r\n"). A connection the
 * client closes is dropped; everything stops with fr_stop(). Errors answer a fixed text
 * (fr->error_text) when set, to check what rcache shows of server text.
 */
#ifndef RCACHE_TEST_FAKE_RESP_H
#define RCACHE_TEST_FAKE_RESP_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define FR_CONNS 16

typedef struct fr_conn {
  int fd;
  char in[8192];
  size_t in_len;
  bool armed; /* subscribed: the stream starts with the next command (the listener's PING) */
  bool streaming;
} fr_conn;

typedef struct fake_resp {
  char path[108];
  int lfd;
  pthread_t thread;
  atomic_bool stop;
  const char *trigger;     /* command that starts the hostile stream; NULL = never */
  const char *head, *body; /* the stream: head once, then body over and over */
  const char *error_text;  /* when set, PING and INFO answer "-<error_text>" */
  atomic_ullong streamed;  /* bytes of hostile body sent */
  fr_conn c[FR_CONNS];
} fake_resp;

static void fr_send(int fd, const char *p, size_t len) {
  while (len > 0) {
    ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd pf = {fd, POLLOUT, 0};
      if (poll(&pf, 1, 200) <= 0) return;
      continue;
    }
    if (w <= 0) return;
    p += w;
    len -= (size_t)w;
  }
}

static void fr_sends(int fd, const char *s) {
  fr_send(fd, s, strlen(s));
}

/* Parses one command (an array of bulk strings) off the front of c->in: argc and the first
 * two arguments (NUL-terminated, cut at 31 bytes). Returns false when incomplete. */
static bool fr_command(fr_conn *c, int *argc, char a0[32], char a1[32]) {
  char *p = c->in, *end = c->in + c->in_len, *nl;
  if (c->in_len < 4 || *p != '*' || !(nl = memchr(p, '\n', (size_t)(end - p)))) return false;
  int n = atoi(p + 1);
  p = nl + 1;
  a0[0] = a1[0] = '\0';
  for (int i = 0; i < n; i++) {
    if (p >= end || *p != '$' || !(nl = memchr(p, '\n', (size_t)(end - p)))) return false;
    size_t len = (size_t)atol(p + 1);
    p = nl + 1;
    if ((size_t)(end - p) < len + 2) return false;
    char *dst = i == 0 ? a0 : i == 1 ? a1 : NULL;
    if (dst) snprintf(dst, 32, "%.*s", (int)(len < 31 ? len : 31), p);
    p += len + 2;
  }
  *argc = n;
  c->in_len = (size_t)(end - p);
  memmove(c->in, p, c->in_len);
  return true;
}

static void fr_answer(fake_resp *f, fr_conn *c, const char *a0, const char *a1) {
  char err[512];
  if (c->armed || (f->trigger && strcasecmp(a0, f->trigger) == 0 && strcasecmp(a0, "SUBSCRIBE"))) {
    fr_sends(c->fd, f->head);
    c->streaming = true;
  } else if (f->trigger && strcasecmp(a0, f->trigger) == 0) {
    fr_sends(c->fd, "*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n");
    c->armed = true;
  } else if (f->error_text && (!strcasecmp(a0, "PING") || !strcasecmp(a0, "INFO"))) {
    snprintf(err, sizeof err, "-%s\r\n", f->error_text);
    fr_sends(c->fd, err);
  } else if (!strcasecmp(a0, "PING")) {
    fr_sends(c->fd, "+PONG\r\n");
  } else if (!strcasecmp(a0, "CLIENT") && !strcasecmp(a1, "ID")) {
    fr_sends(c->fd, ":7\r\n");
  } else if (!strcasecmp(a0, "INFO")) {
    fr_sends(c->fd, "$0\r\n\r\n");
  } else if (!strcasecmp(a0, "SUBSCRIBE")) {
    fr_sends(c->fd, "*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n");
  } else if (!strcasecmp(a0, "GET")) {
    fr_sends(c->fd, "$-1\r\n");
  } else {
    fr_sends(c->fd, "+OK\r\n");
  }
}

static void fr_close(fr_conn *c) {
  close(c->fd);
  c->fd = -1;
  c->in_len = 0;
  c->armed = c->streaming = false;
}

/* Reads what a connection sent and answers every whole command in it. */
static void fr_read(fake_resp *f, fr_conn *c) {
  if (c->in_len == sizeof c->in) c->in_len = 0; /* junk: forget it */
  ssize_t got = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, MSG_DONTWAIT);
  if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
    fr_close(c);
    return;
  }
  if (got > 0) c->in_len += (size_t)got;
  int argc;
  char a0[32], a1[32];
  while (!c->streaming && fr_command(c, &argc, a0, a1))
    fr_answer(f, c, a0, a1);
}

/* One more piece of the endless body, without blocking. */
static void fr_stream(fake_resp *f, fr_conn *c) {
  char chunk[65536];
  size_t bl = strlen(f->body), n = 0;
  while (n + bl <= sizeof chunk) {
    memcpy(chunk + n, f->body, bl);
    n += bl;
  }
  ssize_t w = send(c->fd, chunk, n, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (w > 0) atomic_fetch_add(&f->streamed, (unsigned long long)w);
  if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) fr_close(c);
}

static void *fr_main(void *arg) {
  fake_resp *f = arg;
  while (!atomic_load(&f->stop)) {
    struct pollfd pf[FR_CONNS + 1];
    int idx[FR_CONNS + 1], n = 0;
    for (int i = 0; i < FR_CONNS; i++) {
      if (f->c[i].fd < 0) continue;
      pf[n] = (struct pollfd){f->c[i].fd, (short)(POLLIN | (f->c[i].streaming ? POLLOUT : 0)), 0};
      idx[n++] = i;
    }
    pf[n] = (struct pollfd){f->lfd, POLLIN, 0};
    idx[n++] = -1;
    if (poll(pf, (nfds_t)n, 20) <= 0) continue;
    for (int k = 0; k < n; k++) {
      if (!pf[k].revents) continue;
      if (idx[k] < 0) {
        int fd = accept(f->lfd, NULL, NULL);
        int slot = -1;
        for (int i = 0; i < FR_CONNS && slot < 0 && fd >= 0; i++)
          if (f->c[i].fd < 0) slot = i;
        if (slot < 0) {
          if (fd >= 0) close(fd);
          continue;
        }
        f->c[slot] = (fr_conn){.fd = fd};
        continue;
      }
      fr_conn *c = &f->c[idx[k]];
      if (pf[k].revents & (POLLIN | POLLHUP | POLLERR)) fr_read(f, c);
      if (c->fd >= 0 && c->streaming && (pf[k].revents & POLLOUT)) fr_stream(f, c);
    }
  }
  for (int i = 0; i < FR_CONNS; i++)
    if (f->c[i].fd >= 0) fr_close(&f->c[i]);
  return NULL;
}

/* Starts f (zeroed by the caller, trigger/head/body/error_text set). */
static bool fr_start(fake_resp *f, const char *name) {
  snprintf(f->path, sizeof f->path, "/tmp/rcache-%s-%d.sock", name, (int)getpid());
  unlink(f->path);
  for (int i = 0; i < FR_CONNS; i++)
    f->c[i].fd = -1;
  atomic_store(&f->stop, false);
  atomic_store(&f->streamed, 0);
  f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->path);
  if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(f->lfd, 16) != 0)
    return false;
  return pthread_create(&f->thread, NULL, fr_main, f) == 0;
}

static void fr_stop(fake_resp *f) {
  atomic_store(&f->stop, true);
  pthread_join(f->thread, NULL);
  close(f->lfd);
  unlink(f->path);
}

#endif
