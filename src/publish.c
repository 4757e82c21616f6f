/* SPDX-License-Identifier: BSD-3-Clause */
/* Figures from outside the process: a handle with publish_stats_s set writes its
 * rcache_metrics_json(), wrapped with host name and pid, to
 * "<key_prefix>__rc:stats:<client_name>:<host>:<pid>" every publish_stats_s seconds from a
 * thread of its own, with a TTL of three intervals, so that `rcache stats --clients` and
 * `rcache watch` can read every running process's figures with the access operators already
 * have (docs/operations.md says why Redis rather than a local socket). Bounded: one SET of
 * at most PUBLISH_MAX bytes per interval, straight to the backend, so the handle's own
 * call figures do not count it. A failure to write is logged once (info) until a write
 * succeeds, and never reaches a caller; a publisher that cannot start fails rcache_open. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "handle.h"

#define PUBLISH_MAX (64 * 1024) /* a document; past it, the stats without per-op detail */
#define PUBLISH_TTLS 3          /* a key outlives three missed intervals, not more */

struct rcache__publisher {
  rcache *c;
  pthread_t thread;
  pthread_mutex_t mu; /* stop and wake */
  pthread_cond_t wake;
  bool stop;
  pthread_mutex_t write_mu; /* one publish at a time: buf and failing */
  bool failing;             /* the last write failed (logged once) */
  char *key;
  size_t klen;
  char host[256];
  char buf[PUBLISH_MAX];
};

/* The document: {"host":…,"pid":…,"interval_s":…,"time_ms":…,"closed":…,"truncated":…,
 * "metrics":{…}}; 0 when even the short form does not fit (it always does). */
static size_t render(struct rcache__publisher *p, bool closed) {
  rcache *c = p->c;
  rcache__sink s = {p->buf, sizeof p->buf, 0};
  rcache__put(&s, "{\"host\":\"");
  rcache__put_escaped(&s, p->host);
  rcache__put(&s, "\",\"pid\":%ld,\"interval_s\":%u,\"time_ms\":%" PRId64 ",\"closed\":%s",
              (long)getpid(), c->ctx.opt.publish_stats_s, rcache__wall_ms(),
              closed ? "true" : "false");
  size_t head = s.len;
  rcache__put(&s, ",\"truncated\":false,\"metrics\":");
  size_t room = s.len < s.size ? s.size - s.len : 0;
  size_t n = rcache_metrics_json(c, s.buf + s.len, room);
  if (n + 1 < room) { /* the whole of it and the closing brace */
    s.len += n;
  } else { /* many cluster nodes or long family names: the counters and gauges only */
    rcache_stats st;
    rcache_get_stats(c, &st);
    s.len = head;
    rcache__put(&s, ",\"truncated\":true,\"metrics\":");
    s.len += rcache_stats_json(&st, s.buf + s.len, s.size - s.len);
  }
  rcache__put(&s, "}");
  return rcache__sink_end(&s) < s.size ? s.len : 0;
}

static rcache_status publish(struct rcache__publisher *p, bool closed) {
  rcache *c = p->c;
  pthread_mutex_lock(&p->write_mu);
  size_t n = render(p, closed);
  rcache_status s = RCACHE_ETOOBIG;
  if (n > 0) {
    rcache__backend *be = rcache__be(c);
    int64_t ttl_ms = (int64_t)c->ctx.opt.publish_stats_s * 1000 * PUBLISH_TTLS;
    s = be->ops->set(be, p->key, p->klen, p->buf, n, ttl_ms, 0);
  }
  if (s != RCACHE_OK && !p->failing)
    rcache__log(&c->ctx, RCACHE_LOG_INFO, "publish_stats_s: cannot write the figures: %s",
                rcache_strerror(s));
  else if (s == RCACHE_OK && p->failing)
    rcache__log(&c->ctx, RCACHE_LOG_INFO, "publish_stats_s: figures written again");
  p->failing = s != RCACHE_OK;
  pthread_mutex_unlock(&p->write_mu);
  return s;
}

static void *publisher_main(void *arg) {
  struct rcache__publisher *p = arg;
  int64_t every_us = (int64_t)p->c->ctx.opt.publish_stats_s * 1000000;
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    pthread_mutex_unlock(&p->mu);
    publish(p, false);
    pthread_mutex_lock(&p->mu);
    int64_t next = rcache__now_us() + every_us;
    while (!p->stop && rcache__now_us() < next) {
      struct timespec ts;
      rcache__deadline_ts(&ts, next);
      rcache__cond_timedwait(&p->wake, &p->mu, &ts);
    }
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* The key: <key_prefix>__rc:stats:<client_name>:<host>:<pid>. */
static bool make_key(struct rcache__publisher *p) {
  const rcache__ctx *ctx = &p->c->ctx;
  const char *name = ctx->opt.client_name ? ctx->opt.client_name : "rcache";
  int n = snprintf(NULL, 0, "%s__rc:stats:%s:%s:%ld", ctx->prefix, name, p->host, (long)getpid());
  if (n < 0 || !(p->key = rcache__malloc((size_t)n + 1))) return false;
  snprintf(p->key, (size_t)n + 1, "%s__rc:stats:%s:%s:%ld", ctx->prefix, name, p->host,
           (long)getpid());
  p->klen = (size_t)n;
  return true;
}

static void publisher_free(struct rcache__publisher *p) {
  rcache__free(p->key);
  rcache__free(p);
}

rcache_status rcache__publish_start(rcache *c) {
  c->pub = NULL;
  const char *mode = c->b->ops->mode;
  if (!c->ctx.opt.publish_stats_s || strcmp(mode, "memory") == 0 || strcmp(mode, "none") == 0)
    return RCACHE_OK;
  struct rcache__publisher *p = rcache__calloc(1, sizeof *p);
  if (p) {
    p->c = c;
    if (gethostname(p->host, sizeof p->host - 1) != 0) snprintf(p->host, sizeof p->host, "-");
  }
  if (!p || !make_key(p)) {
    if (p) publisher_free(p);
    return RCACHE_ENOMEM;
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_mutex_init(&p->write_mu, NULL);
  rcache__cond_init_mono(&p->wake);
  if (rcache__bg_spawn(&p->thread, publisher_main, p) != 0) {
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->write_mu);
    pthread_mutex_destroy(&p->mu);
    publisher_free(p);
    return RCACHE_ENOMEM;
  }
  c->pub = p;
  return RCACHE_OK;
}

rcache_status rcache__publish_now(rcache *c) {
  return c->pub ? publish(c->pub, false) : RCACHE_EINVAL;
}

void rcache__publish_stop(rcache *c) {
  struct rcache__publisher *p = c->pub;
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_signal(&p->wake);
  pthread_mutex_unlock(&p->mu);
  rcache__bg_join(p->thread);
  publish(p, true); /* the last figures: a short-lived job's stay readable for a while */
  pthread_cond_destroy(&p->wake);
  pthread_mutex_destroy(&p->write_mu);
  pthread_mutex_destroy(&p->mu);
  publisher_free(p);
  c->pub = NULL;
}

void rcache__publish_after_fork(rcache *c) {
  /* the parent's thread is not in this process and its lock may be held: the memory is
   * let go of without touching either */
  if (c->pub) publisher_free(c->pub);
  if (rcache__publish_start(c) != RCACHE_OK)
    rcache__log(&c->ctx, RCACHE_LOG_WARN,
                "publish_stats_s: cannot start the publisher (out of memory or threads); this "
                "process does not publish");
}
