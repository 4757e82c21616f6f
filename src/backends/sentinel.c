/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Redis Sentinel: the master of a named group, found through the listed sentinels and
 * followed across failovers. One pool (with its breaker and prober) points at the current
 * master; everything else is the standalone behaviour.
 *
 * The master is looked up (SENTINEL get-master-addr-by-name, then ROLE on the answer must
 * say "master") at open, by the pool's prober whenever the breaker is open (the probe hook
 * replaces connect + PING), and by a watcher thread: subscribed to +switch-master on one
 * sentinel, it moves the pool as soon as a failover is announced, and it looks the master
 * up again when a connection fails, when the server answers READONLY (a demoted master),
 * and every few seconds. Credentials of the URL are sent to the sentinels too; a sentinel
 * without a password is then asked again without them.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backends/redis.h"
#include "backends/topology.h"
#include "near/tracking.h"

#define RESOLVE_EVERY_MS 3000 /* periodic look-up even when nothing was announced */
#define WATCH_TICK_MS 100     /* the watcher's poll period (and its reaction to close) */

typedef struct sentinel {
  rcache__redis r;         /* first: the backend; r.pool is the master's pool */
  rcache__conn_setup sset; /* for sentinels: the same TLS and credentials, no SELECT */
  rcache__addr *sent;
  size_t nsent;
  const char *name; /* the master group's name (ctx->url.master) */

  pthread_mutex_t mu; /* guards the flags below */
  pthread_cond_t wake;
  bool stop, has_thread;
  atomic_bool resolve_wanted; /* set by callers, taken by the watcher */
  size_t good;                /* the sentinel that answered last: asked first */
  pthread_t watcher;
  pthread_mutex_t lookup_mu; /* one call at a time looks up a master not known yet */
  atomic_bool known;         /* the pool has the master's address (set once) */
  int wake_fd[2];            /* a pipe: a byte in it ends the watcher's poll at once */
  rcache__tracking *trk;     /* the near cache's listener, following the master (or NULL) */
} sentinel;

#define ST(b) ((sentinel *)(b))

static int64_t min64(int64_t a, int64_t b) {
  return a < b ? a : b;
}

static void poke(sentinel *st) {
  if (st->wake_fd[1] >= 0) {
    ssize_t w = write(st->wake_fd[1], "x", 1);
    (void)w; /* a full pipe is already a wake-up */
  }
}

/* Asks the watcher to look the master up. While one is already asked for this costs one
 * atomic load: calls failing fast while the master is gone stay fast (no syscall). */
static void want_resolve(sentinel *st) {
  if (atomic_load_explicit(&st->resolve_wanted, memory_order_relaxed) ||
      atomic_exchange(&st->resolve_wanted, true))
    return;
  poke(st);
}

/* ---- asking the sentinels -------------------------------------------------------------------- */

/* One command on a fresh connection; the reply is the caller's. */
static rcache_status one_command(rcache__conn *c, const sentinel *st, redisReply **rep,
                                 int64_t deadline, const char *a0, const char *a1, const char *a2) {
  rcache__cmds b = {0};
  rcache_status s = rcache__cmds_addv(&b, a0, a1, a2, NULL);
  int64_t cd = rcache__now_us() + (int64_t)st->r.base.ctx->opt.command_timeout_ms * 1000;
  if (s == RCACHE_OK) s = rcache__conn_exec(c, &b, rep, min64(cd, deadline), 1 << 20);
  rcache__cmds_free(&b);
  return s;
}

/* Sentinels often have their own (or no) credentials: the URL's user and password are
 * tried first, then the password alone (a sentinel's requirepass), then nothing (a sentinel
 * without a password says so). */
static rcache_status sentinel_connect(sentinel *st, size_t i, int64_t deadline, rcache__conn **c) {
  int64_t cd = rcache__now_us() + (int64_t)st->r.base.ctx->opt.connect_timeout_ms * 1000;
  rcache_status s = rcache__conn_open(&st->sset, &st->sent[i], min64(cd, deadline), c);
  rcache__conn_setup alt = st->sset;
  if (s == RCACHE_EAUTH && alt.user && alt.password && strstr(rcache__err_peek(), "WRONGPASS")) {
    alt.user = NULL; /* a user the sentinel does not have: its default user */
    s = rcache__conn_open(&alt, &st->sent[i], min64(cd, deadline), c);
  }
  if (s == RCACHE_EAUTH && alt.password &&
      (strstr(rcache__err_peek(), "without any password") ||
       strstr(rcache__err_peek(), "no password is set"))) {
    alt.user = alt.password = NULL; /* this sentinel has no password: fine */
    s = rcache__conn_open(&alt, &st->sent[i], min64(cd, deadline), c);
  }
  return s;
}

/* Sentinel i's idea of the master's address. */
static rcache_status ask_sentinel(sentinel *st, size_t i, int64_t deadline, rcache__addr *a) {
  rcache__conn *c;
  rcache_status s = sentinel_connect(st, i, deadline, &c);
  if (s != RCACHE_OK) return s;
  redisReply *rep = NULL;
  s = one_command(c, st, &rep, deadline, "SENTINEL", "get-master-addr-by-name", st->name);
  rcache__conn_close(c);
  if (s != RCACHE_OK) return s;
  if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
      rep->element[0]->type == REDIS_REPLY_STRING && rep->element[1]->type == REDIS_REPLY_STRING &&
      rep->element[0]->len > 0 && rep->element[0]->len < sizeof a->host &&
      !memchr(rep->element[0]->str, '\0', rep->element[0]->len)) {
    memset(a, 0, sizeof *a);
    memcpy(a->host, rep->element[0]->str, rep->element[0]->len);
    a->port = atoi(rep->element[1]->str);
    if (a->port <= 0 || a->port > 65535) s = rcache__reply_unexpected(rep);
  } else if (rep->type == REDIS_REPLY_NIL) {
    rcache__errf("sentinel %s:%d does not know a master named \"%s\"", st->sent[i].host,
                 st->sent[i].port, st->name);
    s = RCACHE_EUNAVAILABLE;
  } else if (rep->type == REDIS_REPLY_ERROR) {
    s = rcache__reply_status(rep);
  } else {
    s = rcache__reply_unexpected(rep);
  }
  freeReplyObject(rep);
  return s;
}

/* The server at a must say it is a master (a sentinel may be behind a failover). */
static rcache_status check_role(sentinel *st, const rcache__addr *a, int64_t deadline) {
  rcache__conn *c;
  int64_t cd = rcache__now_us() + (int64_t)st->r.base.ctx->opt.connect_timeout_ms * 1000;
  rcache_status s = rcache__conn_open(&st->r.setup, a, min64(cd, deadline), &c);
  if (s != RCACHE_OK) return s;
  redisReply *rep = NULL;
  s = one_command(c, st, &rep, deadline, "ROLE", NULL, NULL);
  rcache__conn_close(c);
  if (s != RCACHE_OK) return s;
  if (rep->type == REDIS_REPLY_ERROR) {
    s = rcache__reply_status(rep);
  } else if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
             rep->element[0]->type != REDIS_REPLY_STRING) {
    s = rcache__reply_unexpected(rep);
  } else if (strcmp(rep->element[0]->str, "master") != 0) {
    rcache__errf("%s:%d is a %s, not the master of \"%s\"", a->host, a->port, rep->element[0]->str,
                 st->name);
    s = RCACHE_EUNAVAILABLE;
  }
  freeReplyObject(rep);
  return s;
}

/* Asks the sentinels in turn (the last good one first) until one names a master that
 * confirms it. With `routine`, an answer naming the server the pool already uses is taken
 * without asking it (the watcher's periodic look-up costs one connection, not two). */
static rcache_status resolve(sentinel *st, int64_t deadline, rcache__addr *a, bool routine) {
  pthread_mutex_lock(&st->mu);
  size_t first = st->good;
  pthread_mutex_unlock(&st->mu);
  rcache_status s = RCACHE_EUNAVAILABLE;
  for (size_t k = 0; k < st->nsent && rcache__now_us() < deadline; k++) {
    size_t i = (first + k) % st->nsent;
    s = ask_sentinel(st, i, deadline, a);
    bool same = false;
    if (s == RCACHE_OK && routine) {
      rcache__addr cur;
      rcache__pool_addr(st->r.pool, &cur);
      same = cur.port == a->port && strcmp(cur.host, a->host) == 0;
    }
    if (s == RCACHE_OK && !same) s = check_role(st, a, deadline);
    if (s == RCACHE_ENOMEM) return s; /* another sentinel would not help */
    if (s == RCACHE_OK) {
      pthread_mutex_lock(&st->mu);
      st->good = i;
      pthread_mutex_unlock(&st->mu);
      return RCACHE_OK;
    }
  }
  return s;
}

/* Points the pool at a; the move is logged once (by whichever thread made it). */
static void set_master(sentinel *st, const rcache__addr *a, const char *why) {
  rcache__addr cur;
  pthread_mutex_lock(&st->mu); /* compare and move as one step */
  rcache__pool_addr(st->r.pool, &cur);
  bool moved = cur.port != a->port || strcmp(cur.host, a->host) != 0;
  if (moved) rcache__pool_set_addr(st->r.pool, a);
  atomic_store_explicit(&st->known, true, memory_order_release);
  if (moved && st->trk) rcache__tracking_set_addr(st->trk, a); /* the near cache follows */
  pthread_mutex_unlock(&st->mu);
  if (moved && cur.host[0])
    rcache__log(st->r.base.ctx, RCACHE_LOG_WARN,
                "sentinel: master \"%s\" moved from %s:%d to %s:%d (%s)", st->name, cur.host,
                cur.port, a->host, a->port, why);
}

/* Asks the sentinels for the master's address (`timeouts` connect timeouts at most) and
 * makes it the pool's; why: for the log. */
static rcache_status lookup(sentinel *st, const char *why, int timeouts) {
  rcache__addr a;
  int64_t deadline =
      rcache__now_us() + (int64_t)st->r.base.ctx->opt.connect_timeout_ms * 1000 * timeouts;
  rcache_status s = resolve(st, deadline, &a, false);
  if (s == RCACHE_OK) set_master(st, &a, why);
  return s;
}

/* The prober's hook while the breaker is open: find the master, then connect + PING. */
static rcache_status probe(void *ud, rcache__pool *p) {
  sentinel *st = ud;
  /* the prober's I/O gives up when the handle closes (rcache_close joins it) */
  const _Atomic bool *prev = rcache__io_abort_on(&st->r.base.ctx->closing);
  rcache_status s = lookup(st, "looked up after a failure", 2);
  if (s == RCACHE_OK) s = rcache__pool_ping(p);
  rcache__io_abort_on(prev);
  rcache__wipe_stack(); /* the prober thread lives on */
  return s;
}

static void pool_event(void *ud, rcache__pool *p, bool up) {
  (void)p;
  if (!up) want_resolve(ud);
}

/* ---- the watcher ------------------------------------------------------------------------------
 */

static rcache__conn *subscribe(sentinel *st, size_t i) {
  rcache__conn *c;
  int64_t deadline = rcache__now_us() + (int64_t)st->r.base.ctx->opt.connect_timeout_ms * 1000;
  if (sentinel_connect(st, i, deadline, &c) != RCACHE_OK) return NULL;
  redisReply *rep = NULL;
  rcache_status s = one_command(c, st, &rep, deadline, "SUBSCRIBE", "+switch-master", NULL);
  if (s == RCACHE_OK && (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3)) s = RCACHE_EPROTO;
  if (rep) freeReplyObject(rep);
  if (s != RCACHE_OK) {
    rcache__conn_close(c);
    return NULL;
  }
  return c;
}

/* "<name> <old ip> <old port> <new ip> <new port>" */
static void on_message(sentinel *st, const redisReply *m) {
  if (m->type != REDIS_REPLY_ARRAY || m->elements != 3 || m->element[2]->type != REDIS_REPLY_STRING)
    return;
  char name[256], host[256];
  int port;
  if (sscanf(m->element[2]->str, "%255s %*s %*s %255s %d", name, host, &port) != 3) return;
  if (strcmp(name, st->name) != 0 || port <= 0 || port > 65535) return;
  rcache__addr a;
  memset(&a, 0, sizeof a);
  snprintf(a.host, sizeof a.host, "%s", host);
  a.port = port;
  set_master(st, &a, "+switch-master");
}

/* Bytes of c to parse, now or within WATCH_TICK_MS (c may be NULL: just wait). A byte in
 * the wake pipe (close, or a look-up wanted) ends the wait early. */
static bool readable(sentinel *st, rcache__conn *c) {
  return rcache__conn_wait(c, st->wake_fd[0], WATCH_TICK_MS);
}

static void *watcher_main(void *arg) {
  sentinel *st = arg;
  rcache__io_abort_on(&st->r.base.ctx->closing); /* rcache_close joins it at once */
  rcache__conn *sub = NULL;
  size_t next = 0;
  int64_t last_resolve = rcache__now_us();
  for (;;) {
    pthread_mutex_lock(&st->mu);
    bool stop = st->stop;
    pthread_mutex_unlock(&st->mu);
    bool wanted = atomic_exchange(&st->resolve_wanted, false);
    if (stop) break;
    rcache__err_clear();
    int64_t now = rcache__now_us();
    if (wanted || now - last_resolve > (int64_t)RESOLVE_EVERY_MS * 1000) {
      rcache__addr a;
      int64_t deadline = now + (int64_t)st->r.base.ctx->opt.connect_timeout_ms * 1000;
      if (resolve(st, deadline, &a, true) == RCACHE_OK) set_master(st, &a, "looked up");
      last_resolve = rcache__now_us();
    }
    if (!sub) {
      sub = subscribe(st, next);
      next = (next + 1) % st->nsent;
    }
    if (!sub) { /* no sentinel to listen to: wait a tick, then try the next */
      readable(st, NULL);
      continue;
    }
    if (!readable(st, sub)) continue;
    redisReply *m = NULL;
    int64_t deadline = rcache__now_us() + (int64_t)st->r.base.ctx->opt.command_timeout_ms * 1000;
    if (rcache__conn_read(sub, &m, deadline, 1 << 16) != RCACHE_OK) {
      rcache__conn_close(sub); /* that sentinel went away: listen to another */
      sub = NULL;
      continue;
    }
    on_message(st, m);
    freeReplyObject(m);
  }
  rcache__conn_close(sub);
  return NULL;
}

/* ---- operations -------------------------------------------------------------------------------
 */

static bool readonly_reply(const redisReply *x) {
  return x && x->type == REDIS_REPLY_ERROR && x->str && strncmp(x->str, "READONLY", 8) == 0;
}

/* A write refused with READONLY went to a demoted master: look it up again, and answer
 * as unavailable (the breaker counts it, so a persistent one hands over to the prober). */
static rcache_status check_readonly(sentinel *st, redisReply **rep, int n) {
  for (int i = 0; i < n; i++) {
    if (readonly_reply(rep[i])) {
      rcache__errf("server: %.200s (the master changed; looking it up again)", rep[i]->str);
      rcache__replies_free(rep, n);
      rcache__pool_report(st->r.pool, RCACHE_EUNAVAILABLE);
      want_resolve(st);
      return RCACHE_EUNAVAILABLE;
    }
  }
  return RCACHE_OK;
}

/* A master not known yet (the first contact is under way, or it could not finish: out of
 * memory, or a child forked before it did): while the first contact runs, or while the
 * breaker is open (its prober looks the master up), calls are told so at once; otherwise a
 * call looks the master up itself, one at a time (the others are told so at once), within
 * one connect timeout (a look-up of the prober or the watcher may take two: every call then
 * took that long while the sentinels stalled), instead of connecting to no address. A failed
 * look-up counts against the breaker. */
static rcache_status find_master(sentinel *st) {
  if (atomic_load_explicit(&st->known, memory_order_acquire)) return RCACHE_OK;
  if (atomic_load(&st->r.base.ctx->first_going) || !rcache__pool_available(st->r.pool) ||
      pthread_mutex_trylock(&st->lookup_mu) != 0) {
    rcache__errf("sentinel: the address of master \"%.200s\" is not known yet", st->name);
    return RCACHE_EUNAVAILABLE;
  }
  rcache_status s = lookup(st, "looked up by a call", 1);
  pthread_mutex_unlock(&st->lookup_mu);
  if (s == RCACHE_OK || s == RCACHE_ENOMEM) return s;
  rcache__err_cause(s); /* EAUTH, ETLS: a configuration error, said as the breaker says it */
  rcache__pool_report(st->r.pool, RCACHE_EUNAVAILABLE);
  return RCACHE_EUNAVAILABLE;
}

static rcache_status run(sentinel *st, const rcache__cmds *b, redisReply **rep, bool idempotent) {
  rcache_status s = find_master(st);
  if (s != RCACHE_OK) return s;
  s = rcache__exchange(st->r.base.ctx, st->r.pool, b, rep, idempotent);
  if (s == RCACHE_OK) return check_readonly(st, rep, b->n);
  if (rcache__transport_failure(s)) want_resolve(st);
  return s;
}

static rcache_status sentinel_exec(rcache__redis *r, const char *key, size_t klen,
                                   const rcache__cmds *b, redisReply **rep, bool idempotent) {
  (void)key;
  (void)klen;
  return run(ST(r), b, rep, idempotent);
}

/* ---- life --------------------------------------------------------------------------------------
 */

static void sentinel_destroy(rcache__backend *be) {
  sentinel *st = ST(be);
  pthread_mutex_lock(&st->mu);
  st->stop = true;
  pthread_cond_broadcast(&st->wake);
  pthread_mutex_unlock(&st->mu);
  poke(st);
  if (st->has_thread) rcache__bg_join(st->watcher);
  rcache__redis_first_contact_join(&st->r); /* it uses the pool */
  for (int i = 0; i < 2; i++)
    if (st->wake_fd[i] >= 0) close(st->wake_fd[i]);
  rcache__tracked_pool_free(st->r.pool, st->trk);
  rcache__free(st->sent);
  pthread_cond_destroy(&st->wake);
  pthread_mutex_destroy(&st->mu);
  pthread_mutex_destroy(&st->lookup_mu);
  rcache__redis_fini(&st->r);
  rcache__free(st);
}

/* The wake pipe, non-blocking and closed on exec. */
static rcache_status wake_pipe(sentinel *st) {
  if (pipe(st->wake_fd) != 0) {
    st->wake_fd[0] = st->wake_fd[1] = -1;
    rcache__errf("pipe: out of file descriptors");
    return RCACHE_ENOMEM;
  }
  for (int i = 0; i < 2; i++) {
    fcntl(st->wake_fd[i], F_SETFL, fcntl(st->wake_fd[i], F_GETFL) | O_NONBLOCK);
    fcntl(st->wake_fd[i], F_SETFD, FD_CLOEXEC);
  }
  return RCACHE_OK;
}

/* A forked child: the watcher stayed with the parent (its subscription with it), and the
 * wake pipe is shared with the parent's watcher, so it gets a pipe and a watcher of its own. */
static void sentinel_after_fork(rcache__backend *be) {
  sentinel *st = ST(be);
  pthread_mutex_init(&st->mu, NULL);
  pthread_mutex_init(&st->lookup_mu, NULL);
  pthread_cond_init(&st->wake, NULL);
  st->stop = false;
  st->has_thread = false;
  atomic_store(&st->resolve_wanted, false);
  for (int i = 0; i < 2; i++)
    if (st->wake_fd[i] >= 0) close(st->wake_fd[i]); /* our copies: the parent's stay open */
  if (wake_pipe(st) != RCACHE_OK)
    rcache__log(st->r.base.ctx, RCACHE_LOG_WARN, "sentinel: no wake pipe after fork");
  rcache__redis_first_contact_after_fork(&st->r);
  rcache__tracked_pool_after_fork(st->r.pool, st->trk);
  st->has_thread = rcache__bg_spawn(&st->watcher, watcher_main, st) == 0;
}

/* Everything but open and destroy is the one-server code of redis.c, through
 * sentinel_exec (which follows the master when it answers READONLY or fails). */
static const rcache__backend_ops sentinel_ops = {
    .mode = "sentinel",
    .destroy = sentinel_destroy,
    .get = rcache__redis_get,
    .get_tagged = rcache__redis_get_tagged,
    .set = rcache__redis_set,
    .del = rcache__redis_del,
    .del_match = rcache__redis_one_del_match,
    .scan = rcache__redis_one_scan,
    .incr = rcache__redis_incr,
    .pttl = rcache__redis_pttl,
    .flushdb = rcache__redis_one_flushdb,
    .get_many = rcache__redis_one_get_many,
    .set_many = rcache__redis_one_set_many,
    .health = rcache__redis_one_health,
    .available = rcache__redis_one_available,
    .stats = rcache__redis_one_stats,
    .server = rcache__redis_one_server,
    .after_fork = sentinel_after_fork,
    .await_first = rcache__redis_await_first,
};

/* The first look-up + connection; when it fails the breaker opens and the prober keeps
 * asking the sentinels. */
static void sentinel_first(rcache__redis *r) {
  sentinel *st = ST(r);
  const rcache_options *o = &r->base.ctx->opt;
  /* then the near cache's listener, which could not connect before the master was known:
   * the first calls find it up, and their connections redirect to it */
  if (rcache__pool_warm(r->pool) == RCACHE_OK && !o->strict_config)
    rcache__tracking_wait_first(
        st->trk, true,
        rcache__now_us() + (int64_t)(o->connect_timeout_ms + o->command_timeout_ms) * 1000);
}

rcache_status rcache__sentinel_open(rcache__ctx *ctx, rcache__backend **out) {
  const rcache__url *u = &ctx->url;
  if (!u->master || !*u->master || u->nhosts == 0) {
    rcache__errf("URL: redis+sentinel:// needs sentinel hosts and a master name");
    return RCACHE_EURL;
  }
  sentinel *st = rcache__calloc(1, sizeof *st);
  if (!st) return RCACHE_ENOMEM;
  st->r.base.ops = &sentinel_ops;
  st->r.exec = sentinel_exec;
  st->name = u->master;
  pthread_mutex_init(&st->mu, NULL);
  pthread_mutex_init(&st->lookup_mu, NULL);
  pthread_cond_init(&st->wake, NULL);
  st->wake_fd[0] = st->wake_fd[1] = -1;
  rcache_status s = rcache__redis_init(&st->r, ctx);
  if (s == RCACHE_OK) s = wake_pipe(st);
  st->sset = st->r.setup;
  st->sset.db = 0; /* sentinels have no databases */
  st->sset.want_id = false;
  st->sent = rcache__calloc(u->nhosts, sizeof *st->sent);
  if (!st->sent) s = RCACHE_ENOMEM;
  for (size_t i = 0; s == RCACHE_OK && i < u->nhosts; i++) {
    snprintf(st->sent[i].host, sizeof st->sent[i].host, "%s", u->hosts[i].host);
    st->sent[i].port = u->hosts[i].port;
  }
  st->nsent = u->nhosts;
  rcache__addr none;
  memset(&none, 0, sizeof none); /* not known yet: the probe looks it up */
  /* with a near cache, a listener that follows the master: the pool's connections need
   * its id, so it exists before them (and starts once the master is known) */
  if (s == RCACHE_OK)
    s = rcache__tracked_pool_new(ctx, &st->r.setup, &none, ctx->near != NULL, &st->r.pool,
                                 &st->trk);
  if (s == RCACHE_OK) {
    rcache__pool_on_probe(st->r.pool, probe, st);
    rcache__pool_on_event(st->r.pool, pool_event, st);
    if (rcache__bg_spawn(&st->watcher, watcher_main, st) != 0)
      s = RCACHE_ENOMEM;
    else
      st->has_thread = true;
  }
  if (s != RCACHE_OK) {
    sentinel_destroy(&st->r.base);
    return s;
  }
  if (st->trk) { /* takes the pool's events, and passes them on to ours */
    rcache__tracking_chain_events(st->trk, pool_event, st);
    if (rcache__tracking_start(st->trk, st->r.pool) != RCACHE_OK) {
      sentinel_destroy(&st->r.base);
      return RCACHE_ENOMEM;
    }
  }
  rcache__redis_first_contact(&st->r, sentinel_first);
  *out = &st->r.base;
  return RCACHE_OK;
}
