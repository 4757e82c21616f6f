/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A small line-protocol server on one libuv loop that answers from the cache through the
 * non-blocking API (docs/async.md): each request line "GET <id>" is answered with the line
 * "user <id>" from rcache_get_or_set_async(), whose loader is asynchronous (a pretend database
 * query that answers from a loop timer 2 ms later). While Redis is down the loader still
 * answers (get_or_set's fallback), so clients never notice.
 *
 *   rcache-uv-server [URL [PORT]]    (URL: $REDIS_URL when absent; PORT 0: any; prints
 *                                     "listening on PORT"; SIGINT/SIGTERM stop it)
 *   printf 'GET 42\n' | nc -q1 127.0.0.1 PORT   ->  user 42
 *
 * An unknown request gets "ERR bad request"; a failed lookup "ERR <status text>".
 */
#define _POSIX_C_SOURCE 200809L
#include <rcache/rcache.h>
#include <rcache/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uv_loop_t *loop;
static rcache *cache;
static rcache_uv adapter;
static uv_tcp_t listener;
static uv_signal_t sigint, sigterm;

/* A client connection; refs: the connection itself, and each request in flight on it. */
typedef struct client {
  uv_tcp_t tcp;
  int refs;
  int closed;
  char buf[512];
  size_t len;
} client;

typedef struct request {
  client *cl;
} request;

static void client_unref(client *cl) {
  if (--cl->refs == 0) free(cl);
}

static void on_closed(uv_handle_t *h) {
  client_unref(h->data);
}

static void client_close(client *cl) {
  if (cl->closed) return;
  cl->closed = 1;
  uv_close((uv_handle_t *)&cl->tcp, on_closed);
}

static void on_written(uv_write_t *w, int status) {
  (void)status;
  free(w->data);
  free(w);
}

static void reply(client *cl, const char *text, size_t len) {
  if (cl->closed) return;
  uv_write_t *w = malloc(sizeof *w);
  char *copy = malloc(len + 1);
  if (!w || !copy) {
    free(w);
    free(copy);
    client_close(cl);
    return;
  }
  memcpy(copy, text, len);
  copy[len] = '\n';
  w->data = copy;
  uv_buf_t b = uv_buf_init(copy, (unsigned)len + 1);
  if (uv_write(w, (uv_stream_t *)&cl->tcp, &b, 1, on_written) != 0) on_written(w, 0);
}

/* ---- the pretend database: answers 2 ms later, from the loop ---------------------------- */

typedef struct query {
  uv_timer_t timer;
  rcache_load *ld;
  char id[64];
} query;

static void query_free(uv_handle_t *h) {
  free(h->data);
}

static void query_answered(uv_timer_t *t) {
  query *q = t->data;
  char row[96];
  int n = snprintf(row, sizeof row, "user %s", q->id);
  rcache_value v = {strdup(row), (size_t)n};
  rcache_load_done(q->ld, v.data ? RCACHE_OK : RCACHE_ENOMEM, &v);
  uv_close((uv_handle_t *)t, query_free);
}

static void load_user(void *ud, const char *key, rcache_load *ld) {
  (void)ud;
  query *q = calloc(1, sizeof *q);
  if (!q) {
    rcache_load_done(ld, RCACHE_ENOMEM, NULL);
    return;
  }
  q->ld = ld;
  snprintf(q->id, sizeof q->id, "%s", key + strlen("user:"));
  uv_timer_init(loop, &q->timer);
  q->timer.data = q;
  uv_timer_start(&q->timer, query_answered, 2, 0);
}

/* ---- requests ------------------------------------------------------------------------------ */

static void on_user(void *ud, rcache_status s, rcache_value v) {
  request *r = ud;
  if (s == RCACHE_OK) {
    reply(r->cl, v.data ? v.data : "", v.len);
  } else {
    char err[96];
    int n = snprintf(err, sizeof err, "ERR %s", rcache_strerror(s));
    reply(r->cl, err, (size_t)n);
  }
  rcache_value_free(&v);
  client_unref(r->cl);
  free(r);
}

static void handle_line(client *cl, char *line) {
  char key[80];
  if (strncmp(line, "GET ", 4) != 0 || !line[4] || strlen(line + 4) > 60) {
    reply(cl, "ERR bad request", 15);
    return;
  }
  snprintf(key, sizeof key, "user:%s", line + 4);
  request *r = malloc(sizeof *r);
  if (!r) {
    reply(cl, "ERR out of memory", 17);
    return;
  }
  r->cl = cl;
  cl->refs++;
  rcache_status s = rcache_get_or_set_async(cache, key, 60, load_user, NULL, on_user, r);
  if (s != RCACHE_OK) { /* no callback will come */
    reply(cl, "ERR busy", 8);
    client_unref(cl);
    free(r);
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  (void)suggested;
  client *cl = h->data;
  *b = uv_buf_init(cl->buf + cl->len, (unsigned)(sizeof cl->buf - cl->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  (void)b;
  client *cl = s->data;
  if (n < 0) {
    client_close(cl);
    return;
  }
  cl->len += (size_t)n;
  char *start = cl->buf, *nl;
  while ((nl = memchr(start, '\n', cl->len - (size_t)(start - cl->buf)))) {
    *nl = '\0';
    if (nl > start && nl[-1] == '\r') nl[-1] = '\0';
    handle_line(cl, start);
    start = nl + 1;
  }
  cl->len -= (size_t)(start - cl->buf);
  memmove(cl->buf, start, cl->len);
  if (cl->len == sizeof cl->buf) client_close(cl); /* a line too long */
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  client *cl = calloc(1, sizeof *cl);
  if (!cl) return;
  cl->refs = 1;
  uv_tcp_init(loop, &cl->tcp);
  cl->tcp.data = cl;
  if (uv_accept(server, (uv_stream_t *)&cl->tcp) != 0) {
    client_close(cl);
    return;
  }
  uv_read_start((uv_stream_t *)&cl->tcp, on_alloc, on_read);
}

/* ---- start and stop ------------------------------------------------------------------------ */

static void close_client(uv_handle_t *h, void *arg) {
  (void)arg;
  if (h->type == UV_TCP && h != (uv_handle_t *)&listener) client_close(h->data);
}

static void on_signal(uv_signal_t *s, int signum) {
  (void)s;
  (void)signum;
  uv_close((uv_handle_t *)&listener, NULL);
  uv_close((uv_handle_t *)&sigint, NULL);
  uv_close((uv_handle_t *)&sigterm, NULL);
  uv_walk(loop, close_client, NULL);
  rcache_uv_detach(&adapter);
  rcache_close(cache); /* runs the callbacks still pending: their clients are closed */
  cache = NULL;
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : NULL;
  int port = argc > 2 ? atoi(argv[2]) : 7379;
  loop = uv_default_loop();
  rcache_status s = rcache_open(&cache, url, NULL);
  if (s != RCACHE_OK) {
    fprintf(stderr, "rcache_open: %s %s\n", rcache_strerror(s), rcache_errmsg(NULL));
    return 1;
  }
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_init(loop, &listener);
  int rc = uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&listener, 128, on_connection);
  if (rc == 0) rc = rcache_uv_attach(&adapter, loop, cache);
  if (rc != 0) {
    fprintf(stderr, "start: %s\n", uv_strerror(rc));
    return 1;
  }
  struct sockaddr_storage got;
  int len = sizeof got;
  uv_tcp_getsockname(&listener, (struct sockaddr *)&got, &len);
  printf("listening on %d\n", ntohs(((struct sockaddr_in *)&got)->sin_port));
  fflush(stdout);
  uv_signal_init(loop, &sigint);
  uv_signal_init(loop, &sigterm);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
