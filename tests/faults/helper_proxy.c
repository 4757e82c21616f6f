/* SPDX-License-Identifier: BSD-3-Clause */
/* A loopback TCP proxy with faults on demand: see helper_proxy.h. */
#include "helper_proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "cpu_wait.h"

#define PX_MAX_PAIRS 256
#define PX_READ 65536
#define PX_QUEUE_CAP (4u << 20) /* stop reading a side whose output queue is this full */

typedef struct chunk {
  struct chunk *next;
  int64_t due_us; /* not written before this time */
  size_t len, off;
  char data[];
} chunk;

typedef struct queue {
  chunk *head, *tail;
  size_t bytes;
} queue;

typedef struct pair {
  bool used;
  int cfd, sfd;         /* client side, server side */
  queue up, down;       /* bytes towards the server, towards the client */
  bool closing;         /* close once `down` is flushed (server gone, or a half reply cut) */
  bool server_dead;     /* error/hang-up seen on sfd while black-holed: stop polling it */
  uint64_t chunks_down; /* server→client chunks read */
} pair;

struct proxy {
  int lfd, port, target;
  int wake[2];
  pthread_t th;
  _Atomic int mode, delay_ms, stop, open;
  _Atomic uint64_t accepted, cut, bytes_down, flaky_n, injected;
  _Atomic int64_t cpu_wait_us; /* the thread's wait for a CPU as of its last wake-up */
  pthread_mutex_t inj_mu;      /* guards the injection below */
  char inj[256];
  size_t inj_len;
  int inj_when;
  bool inj_pending;
  pair pairs[PX_MAX_PAIRS];
};

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void set_nonblock(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void q_push(queue *q, const char *d, size_t n, int64_t due) {
  chunk *c = malloc(sizeof *c + (n ? n : 1));
  if (!c) abort(); /* a test helper: no point going on */
  c->next = NULL;
  c->due_us = due;
  c->len = n;
  c->off = 0;
  memcpy(c->data, d, n);
  if (q->tail) {
    q->tail->next = c;
  } else {
    q->head = c;
  }
  q->tail = c;
  q->bytes += n;
}

static void q_clear(queue *q) {
  while (q->head) {
    chunk *c = q->head;
    q->head = c->next;
    free(c);
  }
  q->tail = NULL;
  q->bytes = 0;
}

/* Writes due chunks to fd. -1 when the socket failed. */
static int q_flush(queue *q, int fd, int64_t now) {
  while (q->head && q->head->due_us <= now) {
    chunk *c = q->head;
    if (c->off < c->len) {
      ssize_t w = send(fd, c->data + c->off, c->len - c->off, MSG_NOSIGNAL);
      if (w < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
      c->off += (size_t)w;
      q->bytes -= (size_t)w;
      if (c->off < c->len) return 0;
    }
    q->head = c->next;
    if (!q->head) q->tail = NULL;
    free(c);
  }
  return 0;
}

static bool q_due(const queue *q, int64_t now) {
  return q->head && q->head->due_us <= now;
}

static void pair_close(proxy *p, pair *pr) {
  if (!pr->used) return;
  close(pr->cfd);
  close(pr->sfd);
  q_clear(&pr->up);
  q_clear(&pr->down);
  memset(pr, 0, sizeof *pr);
  atomic_fetch_sub(&p->open, 1);
}

static void accept_all(proxy *p) {
  for (;;) {
    int cfd = accept(p->lfd, NULL, NULL);
    if (cfd < 0) return;
    atomic_fetch_add(&p->accepted, 1);
    pair *slot = NULL;
    for (int i = 0; i < PX_MAX_PAIRS && !slot; i++) {
      if (!p->pairs[i].used) slot = &p->pairs[i];
    }
    int sfd = slot ? socket(AF_INET, SOCK_STREAM, 0) : -1;
    if (sfd < 0) {
      close(cfd);
      continue;
    }
    set_nonblock(cfd);
    set_nonblock(sfd);
    /* no Nagle: a small write (an injection) right after a reply the client has not
     * acknowledged yet would otherwise wait for its delayed ACK (40 ms) */
    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)p->target);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* non-blocking: a paused server with a full backlog must not stall the proxy; a
     * refused connect shows up as an error on sfd and closes the pair */
    if (connect(sfd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
      close(cfd);
      close(sfd);
      continue;
    }
    memset(slot, 0, sizeof *slot);
    slot->used = true;
    slot->cfd = cfd;
    slot->sfd = sfd;
    atomic_fetch_add(&p->open, 1);
  }
}

/* Reads what fd has; 1 data, 0 nothing now, -1 closed or failed. */
static int read_some(int fd, char *buf, size_t *n) {
  ssize_t r = recv(fd, buf, PX_READ, 0);
  if (r > 0) {
    *n = (size_t)r;
    return 1;
  }
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
  return -1;
}

/* A pending BEFORE/AFTER injection goes out with this chunk, in one queue entry (so in one
 * write): true when it did. */
static bool inject_glued(proxy *p, pair *pr, const char *buf, size_t n, int64_t due) {
  pthread_mutex_lock(&p->inj_mu);
  bool go = p->inj_pending && p->inj_when != PROXY_INJECT_NOW;
  if (go) {
    char *all = malloc(n + p->inj_len);
    if (!all) abort();
    bool before = p->inj_when == PROXY_INJECT_BEFORE;
    memcpy(all + (before ? 0 : n), p->inj, p->inj_len);
    memcpy(all + (before ? p->inj_len : 0), buf, n);
    q_push(&pr->down, all, n + p->inj_len, due);
    free(all);
    p->inj_pending = false;
    atomic_fetch_add(&p->injected, 1);
  }
  pthread_mutex_unlock(&p->inj_mu);
  return go;
}

/* A pending NOW injection goes to every open connection. */
static void inject_now(proxy *p) {
  pthread_mutex_lock(&p->inj_mu);
  if (p->inj_pending && p->inj_when == PROXY_INJECT_NOW) {
    for (int i = 0; i < PX_MAX_PAIRS; i++)
      if (p->pairs[i].used && !p->pairs[i].closing)
        q_push(&p->pairs[i].down, p->inj, p->inj_len, 0);
    for (int i = 0; i < PX_MAX_PAIRS; i++) /* sent now: the count says it is on its way */
      if (p->pairs[i].used && q_flush(&p->pairs[i].down, p->pairs[i].cfd, now_us()) < 0)
        p->pairs[i].closing = true;
    p->inj_pending = false;
    atomic_fetch_add(&p->injected, 1);
  }
  pthread_mutex_unlock(&p->inj_mu);
}

static void service_pair(proxy *p, pair *pr, short crev, short srev, int mode, char *buf) {
  int64_t now = now_us();
  size_t n;
  if (mode == PROXY_BLACKHOLE) {
    /* forward nothing; only a client that went away is cleaned up */
    if (crev & (POLLERR | POLLHUP))
      pair_close(p, pr);
    else if (srev & (POLLERR | POLLHUP))
      pr->server_dead = true;
    return;
  }
  if (crev & (POLLIN | POLLHUP | POLLERR)) {
    int r = read_some(pr->cfd, buf, &n);
    if (r < 0) {
      pair_close(p, pr);
      return;
    }
    if (r > 0) q_push(&pr->up, buf, n, now);
  }
  if (!pr->closing && (srev & (POLLIN | POLLHUP | POLLERR))) {
    int r = read_some(pr->sfd, buf, &n);
    if (r < 0) {
      pr->closing = true; /* deliver what the server said, then close */
    } else if (r > 0 && mode == PROXY_FLAKY && ++pr->chunks_down >= 2 &&
               atomic_fetch_add(&p->flaky_n, 1) % 2 == 1) {
      pr->closing = true; /* dropped: the client sees the connection close */
      atomic_fetch_add(&p->cut, 1);
      n = 0;
    } else if (r > 0 && mode == PROXY_HALF) {
      q_push(&pr->down, buf, n / 2, now);
      pr->closing = true;
      atomic_fetch_add(&p->cut, 1);
    } else if (r > 0) {
      int64_t due = mode == PROXY_DELAY ? now + (int64_t)atomic_load(&p->delay_ms) * 1000 : now;
      if (!inject_glued(p, pr, buf, n, due)) q_push(&pr->down, buf, n, due);
    }
    if (r > 0) atomic_fetch_add(&p->bytes_down, mode == PROXY_HALF ? n / 2 : n);
  }
  now = now_us();
  if (q_flush(&pr->down, pr->cfd, now) < 0) {
    pair_close(p, pr);
    return;
  }
  if (!pr->closing && q_flush(&pr->up, pr->sfd, now) < 0) {
    pr->closing = true;
  }
  if (pr->closing && !pr->down.head) pair_close(p, pr);
}

static void *proxy_main(void *arg) {
  proxy *p = arg;
  struct pollfd *fds = calloc(2 + 2 * PX_MAX_PAIRS, sizeof *fds);
  char *buf = malloc(PX_READ);
  int sched_fd = -1;
  if (!fds || !buf) abort();
  while (!atomic_load(&p->stop)) {
    int mode = atomic_load(&p->mode);
    int64_t now = now_us(), next_due = now + 100000;
    fds[0] = (struct pollfd){p->wake[0], POLLIN, 0};
    fds[1] = (struct pollfd){p->lfd, POLLIN, 0};
    for (int i = 0; i < PX_MAX_PAIRS; i++) {
      pair *pr = &p->pairs[i];
      struct pollfd *cf = &fds[2 + 2 * i], *sf = &fds[3 + 2 * i];
      *cf = (struct pollfd){-1, 0, 0};
      *sf = (struct pollfd){-1, 0, 0};
      if (!pr->used) continue;
      cf->fd = pr->cfd;
      sf->fd = pr->server_dead && mode == PROXY_BLACKHOLE ? -1 : pr->sfd;
      if (mode == PROXY_BLACKHOLE) continue; /* errors/hang-ups only */
      if (pr->up.bytes < PX_QUEUE_CAP) cf->events |= POLLIN;
      if (!pr->closing && pr->down.bytes < PX_QUEUE_CAP) sf->events |= POLLIN;
      if (q_due(&pr->down, now)) cf->events |= POLLOUT;
      if (q_due(&pr->up, now)) sf->events |= POLLOUT;
      if (pr->down.head && pr->down.head->due_us > now && pr->down.head->due_us < next_due)
        next_due = pr->down.head->due_us;
    }
    int timeout = (int)((next_due - now + 999) / 1000);
    if (poll(fds, 2 + 2 * PX_MAX_PAIRS, timeout < 0 ? 0 : timeout) < 0 && errno != EINTR) break;
    atomic_store(&p->cpu_wait_us, cpu_wait_us(&sched_fd));
    if (fds[0].revents & POLLIN) {
      char drain[64];
      while (read(p->wake[0], drain, sizeof drain) > 0) {
      }
    }
    mode = atomic_load(&p->mode);
    inject_now(p);
    if (fds[1].revents & POLLIN) accept_all(p);
    for (int i = 0; i < PX_MAX_PAIRS; i++) {
      pair *pr = &p->pairs[i];
      /* a pair accepted in this round has no poll result yet: its fds slot still says -1 */
      if (!pr->used || fds[2 + 2 * i].fd != pr->cfd) continue;
      service_pair(p, pr, fds[2 + 2 * i].revents, fds[3 + 2 * i].revents, mode, buf);
    }
  }
  for (int i = 0; i < PX_MAX_PAIRS; i++)
    pair_close(p, &p->pairs[i]);
  if (sched_fd >= 0) close(sched_fd);
  free(fds);
  free(buf);
  return NULL;
}

proxy *proxy_start(int target_port) {
  proxy *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->target = target_port;
  p->wake[0] = p->wake[1] = -1;
  pthread_mutex_init(&p->inj_mu, NULL);
  p->lfd = socket(AF_INET, SOCK_STREAM, 0);
  if (p->lfd < 0 || pipe(p->wake) != 0) goto fail;
  set_nonblock(p->wake[0]);
  set_nonblock(p->wake[1]);
  unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL) ^ (unsigned)target_port;
  for (int tries = 0; tries < 500 && !p->port; tries++) {
    int port = 20000 + (int)(rand_r(&seed) % 10000);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(p->lfd, (struct sockaddr *)&a, sizeof a) == 0) p->port = port;
  }
  if (!p->port || listen(p->lfd, 128) != 0) goto fail;
  set_nonblock(p->lfd);
  if (pthread_create(&p->th, NULL, proxy_main, p) != 0) goto fail;
  return p;
fail:
  fprintf(stderr, "proxy: could not start: %s\n", strerror(errno));
  if (p->lfd >= 0) close(p->lfd);
  if (p->wake[0] >= 0) close(p->wake[0]);
  if (p->wake[1] >= 0) close(p->wake[1]);
  free(p);
  return NULL;
}

int proxy_port(const proxy *p) {
  return p->port;
}

void proxy_set_mode(proxy *p, proxy_mode m, int delay_ms) {
  atomic_store(&p->delay_ms, delay_ms);
  atomic_store(&p->mode, (int)m);
  ssize_t w = write(p->wake[1], "m", 1);
  (void)w;
}

void proxy_inject(proxy *p, const char *data, size_t len, proxy_inject_when when) {
  pthread_mutex_lock(&p->inj_mu);
  p->inj_len = len < sizeof p->inj ? len : sizeof p->inj;
  memcpy(p->inj, data, p->inj_len);
  p->inj_when = (int)when;
  p->inj_pending = true;
  pthread_mutex_unlock(&p->inj_mu);
  ssize_t w = write(p->wake[1], "i", 1);
  (void)w;
}

uint64_t proxy_injected(const proxy *p) {
  return atomic_load(&p->injected);
}

uint64_t proxy_accepted(const proxy *p) {
  return atomic_load(&p->accepted);
}

int64_t proxy_cpu_wait_us(const proxy *p) {
  return atomic_load(&p->cpu_wait_us);
}

uint64_t proxy_cut(const proxy *p) {
  return atomic_load(&p->cut);
}

uint64_t proxy_bytes_down(const proxy *p) {
  return atomic_load(&p->bytes_down);
}

int proxy_open_pairs(const proxy *p) {
  return atomic_load(&p->open);
}

void proxy_stop(proxy *p) {
  if (!p) return;
  atomic_store(&p->stop, 1);
  ssize_t w = write(p->wake[1], "s", 1);
  (void)w;
  pthread_join(p->th, NULL);
  close(p->lfd);
  close(p->wake[0]);
  close(p->wake[1]);
  free(p);
}
