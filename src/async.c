/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The non-blocking API (docs/async.md). An operation is the blocking call of the same name,
 * run on one of a few internal worker threads; its completion is handed to the loop's thread
 * through a ready list and a descriptor (an eventfd, a pipe elsewhere; on Linux inside an epoll
 * set), and rcache_async_process() runs the callbacks there. Every service semantic (fallback,
 * breaker, near cache, single-flight, Cluster, Sentinel) is the blocking call's own. Except
 * that on a one-server handle without a near cache, get, set, delete, incr and decr are driven
 * by the loop itself on a connection of its own ("the loop's own I/O" below).
 *
 * An operation (aop) is described by its kind: the function that runs the blocking call on a
 * worker, and the shape of its result, which says how the one trampoline (deliver) calls the
 * callback. Its life, under the handle's async lock:
 *   QUEUED   in the FIFO and the in-flight list (its deadline is watched)
 *   RUNNING  taken by a worker (still in flight; a get_or_set whose loader is out on the loop
 *            has no deadline until rcache_load_done)
 *   READY    finished, on the ready list: the next process runs its callback
 *   EXPIRED  its deadline passed while a worker ran it: the loop ran its callback with the
 *            fallback status; the worker drops its late result.
 * refs counts who holds an op (the lists/loop: 1; a worker running it: 1); the last frees it,
 * with any result nobody received. It is atomic, so that the loop drops its references
 * without the lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#endif

#include "backends/redis.h"
#include "engine/wakeup.h"
#include "handle.h"
#include "rcache/json.h"
#include "tags.h"

#define DEFAULT_THREADS 16
#define PROCESS_BATCH 128    /* completions per rcache_async_process call, at most */
#define PROCESS_SLICE_US 250 /* ...and none started after this long (see rcache_async_process) */

/* WIRE: driven by the loop, its request in the loop connection's buffer or written (below) */
enum { QUEUED, RUNNING, READY, EXPIRED, WIRE };

/* How a kind's result reaches its callback (deliver). */
typedef enum shape {
  S_STATUS, /* rcache_async_fn */
  S_VALUE,  /* rcache_async_value_fn: v */
  S_INT,    /* rcache_async_int_fn: i */
  S_BOOL,   /* rcache_async_bool_fn: b */
  S_RATE,   /* rcache_async_rate_fn: b, i */
  S_MANY,   /* rcache_async_many_fn: vals, sts, n */
  S_STR,    /* rcache_async_str_fn: str */
  S_DOUBLE, /* rcache_async_double_fn: d */
  S_JSON,   /* rcache_async_json_fn: j */
  S_COUNT,  /* rcache_async_count_fn: u */
  S_HEALTH  /* rcache_async_health_fn: h */
} shape;

/* The loader a get_or_set kind runs on the loop (run_loader), by its type. */
typedef enum loader_type {
  L_NONE,   /* no loader */
  L_VALUE,  /* rcache_async_loader_fn: bytes (rcache_load_done) or JSON (_json) */
  L_TAGGED, /* rcache_async_tagged_loader_fn: bytes, and tags in the load's own set */
  L_OBJ     /* rcache_async_obj_loader_fn: fills op->obj, rcache_load_done(ld, s, NULL) */
} loader_type;

typedef struct aop aop;
typedef struct wire wire;
typedef struct kind {
  void (*run)(rcache *c, aop *op); /* on a worker: the blocking call, into op->s and outputs */
  shape shape;
  loader_type load; /* get_or_set: a longer deadline, and a loader on the loop */
  bool batches;     /* delete_prefix/pattern: the deadline is per batch (batch_done) */
  const wire *wire; /* one request, one reply: the loop may drive it (see "the loop's own I/O") */
} kind;

struct rcache__async;

struct aop {
  aop *prev, *next;   /* in-flight list */
  aop *qnext, *qprev; /* FIFO while QUEUED */
  aop *rnext;         /* ready list, the loop's own lists, or the spare stack */
  const kind *k;
  struct rcache__async *a;
  int state;
  atomic_int refs;
  bool expired; /* completed without its result (deadline, close) */
  bool has_out; /* outputs written by the worker and not handed to a callback */
  int64_t deadline_us;
  void (*cb)(void);
  void *ud;
  /* inputs, copied at the start */
  char *key;
  rcache_value in;
  int64_t x, y; /* by / limit / value, ttl / window */
  double dx;
  char **keys;
  rcache_value *invals;
  size_t n;
  json_t *jin;
  char **tags;
  size_t ntags;
  rcache_codec codec;   /* _obj: guarded_* over ucodec (set_obj: the replay of its encoding) */
  rcache_codec ucodec;  /* get_obj, get_or_set_obj: a copy of the caller's codec */
  bool busy;            /* a->mu: its worker is in the caller's codec, on the caller's obj */
  void *obj;            /* _obj: the caller's object */
  rcache_status pre;    /* set_obj: what the caller's encoder returned */
  void (*loader)(void); /* of the kind's loader type */
  void *lud;
  rcache_load *ld; /* while the loader is out */
  /* outputs */
  rcache_status s;
  rcache_value v;
  int64_t i;
  bool b;
  double d;
  char *str;
  json_t *j;
  rcache_value *vals;
  rcache_status *sts;
  uint64_t u;       /* delete_prefix/pattern: keys deleted */
  uint64_t seen;    /* the same at the last batch (a->mu): what an expired one reports */
  rcache_health *h; /* health_check */
  /* driven by the loop, on the loop connection's list (a->mu; the list holds a reference): its
   * request's bytes, its start */
  aop *wnext;
  size_t wlen;
  uint64_t wend; /* where its request ends in the connection's byte stream */
  int64_t t0;
  /* a GET whose request starts with the clear key's GET (its reply comes first), and whether
   * that reply has been read (clear_asked: rcache__clear_asked when it was buffered); the
   * bytes before its value's payload, as get_again settled it */
  bool clear_first, clear_read;
  uint64_t clear_asked;
  size_t head;
  /* a key, a value shorter than these: copied here (op_new, copy_in), not allocated */
  char kbuf[64];
  char vbuf[128];
};

/* A load handed to the loop; refs: the worker waiting for it, and the loader (user). The
 * worker sleeps on a wake-up of its own (engine/wakeup.h), set under mu when the load is
 * done or abandoned and kicked after: rcache_load_done, on the loop's thread, never signals
 * a condition variable (whose internal lock a preempted worker could hold). */
struct rcache_load {
  pthread_mutex_t mu;
  rcache__wakeup w;
  int refs;
  bool done, abandoned;
  bool novalue; /* an object's load: done with RCACHE_OK and no value */
  rcache_status s;
  rcache_value v;
  json_t *j;
  rcache_tags *tags; /* a tagged load's (the loader's until rcache_load_done) */
  aop *op;
  rcache_load *next; /* loaders list */
};

/* An idle worker, asleep on a wake-up of its own (engine/wakeup.h) until an operation is
 * queued: the loop's thread wakes one with a futex wake, which never sleeps, where signalling
 * a condition variable that a dozen workers wait on could sleep on the variable's internal
 * lock, held by a worker the machine had preempted (the loop was seen asleep there for
 * milliseconds during faults). */
typedef struct idler {
  rcache__wakeup w;
  struct idler *next;
} idler;

typedef struct rcache__async {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* close waits here (for a worker being created, a codec in use) */
  idler *idlers;     /* idle workers, last come first */
  int rfd, wfd;      /* the same eventfd twice, or a pipe's ends */
  bool closing;
  bool growing; /* the spawner is creating a worker (grow_locked) */
  int starting; /* workers created that have not taken the lock yet */
  int max, nthreads, idle;
  pthread_t *threads;
  /* The spawner: the one thread that creates workers after the first (spawner_main), woken
   * on grow_cv when the workers are short; started by the first worker. */
  pthread_cond_t grow_cv;
  pthread_t spawner;
  bool has_spawner;
  aop *qhead, *qtail; /* FIFO of QUEUED operations */
  /* Operations submitted while another thread held mu (submit never waits for it): a
   * lock-free stack (linked by qnext), which the lock's next holder moves to the FIFO
   * (take_subs_locked): a worker, or the loop's rcache_async_process, which the submitter
   * makes sure comes (the descriptor). */
  _Atomic(aop *) subs;
  atomic_bool has_worker; /* the first worker was started: submit may defer */
  atomic_bool shut;       /* closing, read without the lock by submit */
  /* The loop thread's own (no lock): the ready operations and the loads that
   * rcache_async_process took and has not run yet (its batch's bounds) */
  aop *own_ready, *own_rtail;
  rcache_load *own_loads;
  /* the loop connection is to be closed (loop_close found the lock held), telling the breaker
   * lclose_why: the next loop_io does it first (the loop thread's) */
  bool lclose_pending;
  rcache_status lclose_why;
  aop *inflight;      /* QUEUED and RUNNING operations */
  aop *rhead, *rtail; /* READY */
  rcache_load *lhead; /* loads to start on the loop (LIFO; order does not matter) */
  /* no in-flight deadline is earlier (may be stale-early); written under mu, read without it
   * by rcache_async_timeout_ms */
  _Atomic int64_t min_dl;
  int64_t budget_us;      /* connect + command timeout */
  int64_t load_budget_us; /* get_or_set: + flight wait + another round trip */
  rcache *c;
  /* The loop connection (see "the loop's own I/O"): a connection of the one server, written
   * and read by the loop's thread in rcache_async_process. */
  int epfd;            /* Linux: what rcache_async_fd gives, watching rfd and lconn; else -1 */
  rcache__pool *lpool; /* the server's pool; NULL: no loop I/O for this handle */
  rcache__conn *lconn; /* set and cleared by the loop, under mu */
  rcache__conn *lnew;  /* opened by a worker, for the loop to take */
  bool lopening;       /* a worker is opening one */
  char *lout, *lspare; /* requests: lout[loff, llen) not written yet; a copy being written */
  size_t loff, llen, lcap, lspare_cap;
  aop *whead, *wtail;        /* operations whose requests are in lout or written, in order */
  size_t wbytes;             /* request bytes written whose replies have not come */
  uint64_t wappended, wsent; /* request bytes buffered, and written, since the connection came */
  size_t max_reply;
  /* The namespace's clear key (tags.h), read by one GET that the GETs buffered behind it
   * share: a GET of the clear key starts at wappended offset clear_at when clear_queued; a GET
   * buffered while that one is not written yet needs no other (it executes after the GET
   * started). The loop thread's: the version the last such reply carried (clear_ok false:
   * it was not a version). */
  char *clear_req; /* its RESP request */
  size_t clear_len;
  bool clear_queued;
  uint64_t clear_at;
  int64_t clear_ver;
  bool clear_ok;
  /* Operations freed, kept for the next starting calls (spare_take, spare_put): a loop keeping
   * a thousand in flight allocated and freed a thousand at a time, mostly past the allocator's
   * per-thread cache, in an arena whose lock a worker sharing it could hold while preempted
   * (the loop was seen asleep there for milliseconds). Any thread puts one back (a lock-free
   * push); the starting call that holds spare_mu takes them, all at once, into spare_own. */
  _Atomic(aop *) spare;
  atomic_int nspare;
  pthread_mutex_t spare_mu; /* taken with a trylock only: a starting call never waits */
  aop *spare_own;
} rcache__async;

/* ---- lists (under a->mu) ------------------------------------------------------------------ */

static void inflight_add(rcache__async *a, aop *op) {
  op->prev = NULL;
  op->next = a->inflight;
  if (a->inflight) a->inflight->prev = op;
  a->inflight = op;
  if (op->deadline_us < a->min_dl) a->min_dl = op->deadline_us;
}

static void inflight_del(rcache__async *a, aop *op) {
  if (op->prev)
    op->prev->next = op->next;
  else
    a->inflight = op->next;
  if (op->next) op->next->prev = op->prev;
  op->prev = op->next = NULL;
  /* nothing in flight: the loop has no timer (rcache_async_timeout_ms says -1), so the next
   * operation must wake it (submit), however early min_dl had stayed */
  if (!a->inflight) a->min_dl = INT64_MAX;
}

static void min_recompute(rcache__async *a) {
  int64_t min = INT64_MAX; /* stored once: a reader never sees a passing value */
  for (aop *op = a->inflight; op; op = op->next)
    if (op->deadline_us < min) min = op->deadline_us;
  a->min_dl = min;
}

static void queue_del(rcache__async *a, aop *op) {
  if (op->qprev)
    op->qprev->qnext = op->qnext;
  else
    a->qhead = op->qnext;
  if (op->qnext)
    op->qnext->qprev = op->qprev;
  else
    a->qtail = op->qprev;
  op->qprev = op->qnext = NULL;
}

static void wake_loop(rcache__async *a) {
#ifdef __linux__
  uint64_t one = 1;
  ssize_t w = write(a->wfd, &one, sizeof one);
#else
  char one = 1;
  ssize_t w = write(a->wfd, &one, 1);
#endif
  (void)w; /* full (a pipe) or saturated: it is readable anyway */
}

/* Puts op (READY, or EXPIRED: completed by its deadline) at the end of the ready list; true when
 * the list was empty: the caller then wakes the loop (wake_loop), after unlocking (a system
 * call under the lock would lengthen every wait on it). */
static bool ready_append(rcache__async *a, aop *op) {
  op->rnext = NULL;
  bool was_empty = !a->rhead;
  if (a->rtail)
    a->rtail->rnext = op;
  else
    a->rhead = op;
  a->rtail = op;
  return was_empty;
}

static bool ready_add(rcache__async *a, aop *op) {
  op->state = READY;
  return ready_append(a, op);
}

/* Called with a->mu held, which it releases around the system call. */
static void wake_unlocked(rcache__async *a) {
  pthread_mutex_unlock(&a->mu);
  wake_loop(a);
  pthread_mutex_lock(&a->mu);
}

/* ---- operations --------------------------------------------------------------------------- */

/* Operations kept for reuse per handle, at most; none under AddressSanitizer, which is to see
 * every use of an operation after its free. */
#if defined(__SANITIZE_ADDRESS__)
#define SPARE_MAX 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPARE_MAX 0
#endif
#endif
#ifndef SPARE_MAX
#define SPARE_MAX 4096
#endif

/* Keeps op (freed of everything it held) for reuse; false when enough are kept. */
static bool spare_put(rcache__async *a, aop *op) {
  if (atomic_fetch_add(&a->nspare, 1) >= SPARE_MAX) {
    atomic_fetch_sub(&a->nspare, 1);
    return false;
  }
  aop *head = atomic_load_explicit(&a->spare, memory_order_relaxed);
  do
    op->rnext = head;
  while (!atomic_compare_exchange_weak_explicit(&a->spare, &head, op, memory_order_release,
                                                memory_order_relaxed));
  return true;
}

/* A kept operation, zeroed, or NULL (none kept, or another starting call is taking one). Only
 * the holder of spare_mu takes from the shared stack, and it takes it whole: no ABA. */
static aop *spare_take(rcache__async *a) {
  if (pthread_mutex_trylock(&a->spare_mu) != 0) return NULL;
  if (!a->spare_own) a->spare_own = atomic_exchange_explicit(&a->spare, NULL, memory_order_acquire);
  aop *op = a->spare_own;
  if (op) {
    a->spare_own = op->rnext;
    atomic_fetch_sub(&a->nspare, 1);
  }
  pthread_mutex_unlock(&a->spare_mu);
  if (op) memset(op, 0, sizeof *op);
  return op;
}

/* Frees the kept operations (close). */
static void spare_free(rcache__async *a) {
  aop *lists[2] = {a->spare_own, atomic_exchange(&a->spare, NULL)};
  for (int i = 0; i < 2; i++)
    for (aop *op = lists[i], *nx; op; op = nx) {
      nx = op->rnext;
      rcache__free(op);
    }
  a->spare_own = NULL;
}

static void free_op(aop *op) {
  if (op->has_out) {
    rcache_value_free(&op->v);
    rcache__free(op->str);
    if (op->j) json_decref(op->j);
    for (size_t i = 0; op->vals && i < op->n; i++)
      rcache_value_free(&op->vals[i]);
  }
  rcache__free(op->vals);
  rcache__free(op->sts);
  if (op->key != op->kbuf) rcache__free(op->key);
  if (op->in.data != op->vbuf) rcache__free(op->in.data);
  for (size_t i = 0; op->keys && i < op->n; i++)
    rcache__free(op->keys[i]);
  rcache__free(op->keys);
  for (size_t i = 0; op->tags && i < op->ntags; i++)
    rcache__free(op->tags[i]);
  rcache__free(op->tags);
  rcache__free(op->h);
  for (size_t i = 0; op->invals && i < op->n; i++)
    rcache__free(op->invals[i].data);
  rcache__free(op->invals);
  if (op->jin) json_decref(op->jin);
  if (!op->a || !spare_put(op->a, op)) rcache__free(op);
}

/* Drops one reference (atomic: no lock); the last frees the operation. */
static void op_unref(aop *op) {
  if (--op->refs == 0) free_op(op);
}

/* Drops one reference of each operation on the list (linked by rnext). */
static void unref_list(aop *list) {
  for (aop *op = list, *nx; op; op = nx) {
    nx = op->rnext;
    op_unref(op);
  }
}

/* The one trampoline: calls op's callback with its result, or with the fallback status and
 * empty outputs when it completed without one (then `s` says why; else it is ignored). The outputs
 * handed over are the callback's from here on. */
static void deliver(rcache *c, aop *op, rcache_status s) {
  bool got = !op->expired;
  if (got) s = op->s;
  if (!op->cb) return; /* outputs nobody takes: freed with op */
  if (got) op->has_out = false;
  void *ud = op->ud;
  switch (op->k->shape) {
  case S_STATUS:
    ((rcache_async_fn)op->cb)(ud, s);
    break;
  case S_VALUE:
    ((rcache_async_value_fn)op->cb)(ud, s, got ? op->v : (rcache_value){0});
    break;
  case S_INT:
    ((rcache_async_int_fn)op->cb)(ud, s, got ? op->i : 0);
    break;
  case S_BOOL:
    ((rcache_async_bool_fn)op->cb)(ud, s, got && op->b);
    break;
  case S_RATE:
    /* the blocking call's answer while the cache is unavailable: fail open unless told */
    ((rcache_async_rate_fn)op->cb)(ud, s, got ? op->b : !c->ctx.opt.rate_limit_fail_closed,
                                   got ? op->i : 0);
    break;
  case S_MANY: {
    /* an expired batch: every key with the batch's status, no values (op->vals may be in
     * use by the worker, so a zeroed array of our own) */
    rcache_value *vals = got ? op->vals : rcache__calloc(op->n ? op->n : 1, sizeof *vals);
    rcache_status *sts = got ? op->sts : rcache__calloc(op->n ? op->n : 1, sizeof *sts);
    if (!vals || !sts) s = RCACHE_ENOMEM;
    for (size_t i = 0; !got && sts && i < op->n; i++)
      sts[i] = s;
    ((rcache_async_many_fn)op->cb)(ud, s, vals, sts, vals && sts ? op->n : 0);
    if (!got) {
      rcache__free(vals);
      rcache__free(sts);
    }
    break;
  }
  case S_STR:
    ((rcache_async_str_fn)op->cb)(ud, s, got ? op->str : NULL);
    break;
  case S_DOUBLE:
    ((rcache_async_double_fn)op->cb)(ud, s, got ? op->d : 0);
    break;
  case S_JSON:
    ((rcache_async_json_fn)op->cb)(ud, s, got ? op->j : NULL);
    break;
  case S_COUNT: /* an expired deletion: the keys it had deleted by its last batch */
    ((rcache_async_count_fn)op->cb)(ud, s, got ? op->u : op->seen);
    break;
  case S_HEALTH: {
    rcache_health none = {.healthy = false};
    snprintf(none.error, sizeof none.error, "no answer by the deadline (or rcache_close)");
    snprintf(none.mode, sizeof none.mode, "%s", rcache_mode(c));
    ((rcache_async_health_fn)op->cb)(ud, s, got ? op->h : &none);
    break;
  }
  }
}

/* ---- the loop side ------------------------------------------------------------------------ */

static void drain(rcache__async *a) {
  char buf[64];
  while (read(a->rfd, buf, sizeof buf) > 0) {
  }
}

/* Moves every in-flight operation whose deadline has passed to the ready list (expired), under
 * a->mu. A QUEUED one leaves the FIFO; a RUNNING one stays with its worker, which drops its
 * result; one the loop drives stays on the loop connection's list until its reply is read. */
static void expire(rcache__async *a, int64_t now) {
  if (now < a->min_dl) return;
  int64_t min = INT64_MAX;
  for (aop *op = a->inflight, *nx; op; op = nx) {
    nx = op->next;
    if (op->busy) continue; /* in the caller's codec: completed after it (obj_leave) */
    if (op->deadline_us > now) {
      if (op->deadline_us < min) min = op->deadline_us;
      continue;
    }
    inflight_del(a, op);
    if (op->state == QUEUED) queue_del(a, op);
    op->state = EXPIRED;
    op->expired = true;
    ready_append(a, op);
  }
  a->min_dl = min;
}

static void run_loader(aop *op, rcache_load *ld) {
  switch (op->k->load) {
  case L_TAGGED:
    ((rcache_async_tagged_loader_fn)op->loader)(op->lud, op->key, ld->tags, ld);
    break;
  case L_OBJ:
    ((rcache_async_obj_loader_fn)op->loader)(op->lud, op->key, op->obj, ld);
    break;
  default:
    ((rcache_async_loader_fn)op->loader)(op->lud, op->key, ld);
    break;
  }
}

static int loop_io(rcache *c, rcache__async *a, int budget, int64_t until);

/* A callback may fork. The child returns from it into this call, with the parent's loop
 * connection and lists: it must stop there (its next call of the API recovers the handle,
 * rcache__forked), never read or write the parent's socket. */
static bool forked_since(uint64_t gen) {
  return rcache__fork_gen() != gen;
}

static bool take_subs_locked(rcache__async *a);

/* Appends the operations head..tail (linked by rnext) to the loop's own ready list (the loop's
 * thread). */
static void own_append(rcache__async *a, aop *head, aop *tail) {
  if (!head) return;
  if (a->own_rtail)
    a->own_rtail->rnext = head;
  else
    a->own_ready = head;
  a->own_rtail = tail;
}

int rcache_async_process(rcache *c) {
  if (!c) return 0;
  rcache__enter(c);
  uint64_t gen = rcache__fork_gen();
  rcache__async *a = atomic_load_explicit(&c->async, memory_order_acquire);
  if (!a) return 0;
  drain(a);
  /* PROCESS_BATCH callbacks (loaders included) at most per call, and none started after
   * PROCESS_SLICE_US (the clock read before each loader and every 8th completion or reply),
   * so that one call stays short whatever comes at once (a fault ends a thousand operations
   * together, a miss wants a thousand loads) and however slowly the machine runs it: a
   * virtual machine's core now and then runs the same work 5 to 10 times slower, and a count
   * alone then let a call take over a millisecond. The rest are the next call's, at once: the
   * descriptor is left readable. Loads first: a database query started sooner ends sooner.
   * The lock is only tried: when a worker holds it (one the machine preempted holds it for
   * milliseconds) the lists wait for the next call, at once (the descriptor), and this one
   * runs what it took before. */
  int64_t until = rcache__now_us() + PROCESS_SLICE_US;
  int budget = PROCESS_BATCH;
  rcache_load *loads = a->own_loads, *fresh = NULL;
  a->own_loads = NULL;
  bool more = false;
  if (pthread_mutex_trylock(&a->mu) == 0) {
    take_subs_locked(a); /* (their deadlines are in min_dl now: the loop asks after this) */
    fresh = a->lhead;
    a->lhead = NULL;
    expire(a, rcache__now_us());
    own_append(a, a->rhead, a->rtail); /* after those left by the last call */
    a->rhead = a->rtail = NULL;
    pthread_mutex_unlock(&a->mu);
  } else {
    more = true;
  }
  aop *ready = a->own_ready, *rtail = a->own_rtail;
  a->own_ready = a->own_rtail = NULL;
  if (!loads) { /* those left by the last call first (mostly none) */
    loads = fresh;
  } else if (fresh) {
    rcache_load *t = loads;
    while (t->next)
      t = t->next;
    t->next = fresh;
  }
  int n = 0;
  rcache_load *ld = loads;
  for (rcache_load *nx; ld && budget > 0; ld = nx, n++, budget--) {
    if (n > 0 && rcache__now_us() >= until) break;
    nx = ld->next;
    ld->next = NULL;
    run_loader(ld->op, ld);
    if (forked_since(gen)) return n + 1;
  }
  a->own_loads = ld; /* out of time or of budget: the next call's */
  rcache__err_clear();
  aop *op = ready, *end = NULL;
  for (; op && budget > 0; end = op, op = op->rnext, n++, budget--) { /* expired ones: counted
                                                                       * as timeouts */
    if (n % 8 == 7 && rcache__now_us() >= until) break; /* a few even after slow loads */
    deliver(c, op, op->expired ? rcache__remote(c, RCACHE_ETIMEOUT) : RCACHE_OK);
    if (forked_since(gen)) return n + 1;
  }
  a->own_ready = op;
  a->own_rtail = op ? rtail : NULL;
  if (end) end->rnext = NULL;
  unref_list(op == ready ? NULL : ready);
  if (a->own_loads || a->own_ready) {
    more = true;
    budget = 0;
  }
  if (more) wake_loop(a);
  return n + loop_io(c, a, budget, until);
}

int64_t rcache_async_timeout_ms(rcache *c) {
  if (!c) return -1;
  rcache__enter(c); /* in a forked child, never the parent's lock */
  rcache__async *a = atomic_load_explicit(&c->async, memory_order_acquire);
  if (!a) return -1;
  /* no lock: what is ready has made the descriptor readable (ready_append's callers, and
   * rcache_async_process when it leaves some); the timer is for the deadlines */
  if (a->own_ready || a->own_loads || atomic_load(&a->subs)) return 0;
  int64_t dl = a->min_dl;
  if (dl == INT64_MAX) return -1;
  int64_t left = dl - rcache__now_us();
  return left <= 0 ? 0 : (left + 999) / 1000;
}

/* ---- workers ------------------------------------------------------------------------------ */

static int spawn(rcache__async *a, pthread_t *t);
static int spawn_fn(rcache__async *a, pthread_t *t, void *(*fn)(void *));

/* Under a->mu: wakes the idle worker that went idle last (its cache is the warmest), taking
 * it off the list (an idle worker's wait ends only so: it has no deadline); false when none
 * is idle. The futex wake never sleeps; the woken worker looks at the queue once it has the
 * lock. */
static bool wake_idler_locked(rcache__async *a) {
  idler *i = a->idlers;
  if (!i) return false;
  a->idlers = i->next;
  rcache__wakeup_set(&i->w, 1);
  rcache__wakeup_kick(&i->w);
  return true;
}

/* Under a->mu: operations wait and no worker will take them soon (none idle, none just
 * created), and another may be created. */
static bool short_locked(const rcache__async *a) {
  return a->qhead && a->idle == 0 && a->starting == 0 && !a->growing && a->nthreads < a->max;
}

/* Under a->mu, by the spawner: one more worker when the others are short (short_locked).
 * Workers are never created by the thread that queues operations, often the loop's: creating
 * a thread takes ~0.1 ms on a quiet machine and milliseconds on a busy one (its stack's mmap
 * waits for the process' memory map, which other threads' page faults hold), and a fault
 * hands up to a thousand operations over at once (sixteen creations in one
 * rcache_async_process held the loop 1 to 3.5 ms; one under a->mu, 13 ms). The lock is
 * released meanwhile; close waits for it. */
static bool grow_locked(rcache__async *a) {
  if (a->closing || !short_locked(a)) return false;
  a->growing = true;
  a->starting++;
  pthread_mutex_unlock(&a->mu);
  pthread_t t;
  bool started = spawn(a, &t) == 0;
  pthread_mutex_lock(&a->mu);
  if (started)
    a->threads[a->nthreads++] = t;
  else
    a->starting--;
  a->growing = false;
  if (a->closing) pthread_cond_broadcast(&a->cv); /* close waits for this */
  return started;
}

/* The spawner's thread: creates a worker whenever the others are short, one at a time (each
 * new worker takes the lock before the next is judged needed), until close. After a creation
 * failed it waits for the next call for one (an operation queued, a worker started). */
static void *spawner_main(void *arg) {
  rcache__async *a = arg;
  pthread_mutex_lock(&a->mu);
  bool failed = false;
  while (!a->closing) {
    if (!failed && short_locked(a)) {
      failed = !grow_locked(a);
    } else {
      rcache__cond_wait(&a->grow_cv, &a->mu);
      failed = false;
    }
  }
  pthread_mutex_unlock(&a->mu);
  return NULL;
}

static void *worker(void *arg) {
  rcache__async *a = arg;
  pthread_mutex_lock(&a->mu);
  a->starting--;
  if (!a->has_spawner && !a->closing) { /* the first worker starts the spawner */
    a->has_spawner = true;
    a->growing = true; /* (close waits for it) */
    pthread_mutex_unlock(&a->mu);
    pthread_t t;
    bool started = spawn_fn(a, &t, spawner_main) == 0;
    pthread_mutex_lock(&a->mu);
    a->growing = false;
    if (started)
      a->spawner = t;
    else
      a->has_spawner = false;       /* the next worker to start tries again */
    pthread_cond_broadcast(&a->cv); /* close may wait for the creation */
  }
  if (short_locked(a)) pthread_cond_signal(&a->grow_cv); /* the next one */
  idler me;
  rcache__wakeup_init(&me.w);
  for (;;) {
    if (take_subs_locked(a)) wake_unlocked(a);
    while (!a->closing && !a->qhead && !atomic_load_explicit(&a->subs, memory_order_relaxed)) {
      a->idle++;
      me.next = a->idlers;
      a->idlers = &me;
      rcache__wakeup_arm(&me.w);
      pthread_mutex_unlock(&a->mu);
      rcache__wakeup_wait(&me.w, INT64_MAX); /* until wake_idler_locked took it off the list */
      pthread_mutex_lock(&a->mu);
      a->idle--;
    }
    if (a->closing) break;
    if (!a->qhead) continue; /* submitted meanwhile: taken above */
    aop *op = a->qhead;
    queue_del(a, op);
    if (op->deadline_us <= rcache__now_us()) { /* its time is up: the loop says so */
      inflight_del(a, op);
      op->expired = true;
      if (ready_add(a, op)) wake_unlocked(a);
      continue;
    }
    op->state = RUNNING;
    op->refs++;
    pthread_mutex_unlock(&a->mu);
    op->k->run(a->c, op);
    pthread_mutex_lock(&a->mu);
    op->has_out = true;
    if (op->state == EXPIRED) {
      if (--op->refs == 0) {
        pthread_mutex_unlock(&a->mu);
        free_op(op);
        pthread_mutex_lock(&a->mu);
      }
      continue;
    }
    op->refs--;
    inflight_del(a, op);
    if (ready_add(a, op)) wake_unlocked(a);
  }
  pthread_mutex_unlock(&a->mu);
  rcache__wakeup_destroy(&me.w);
  return NULL;
}

/* ---- the loop's own I/O -------------------------------------------------------------------- */

/*
 * The kinds with a wire (get, set, delete, incr, decr) on a handle of one server (standalone,
 * Sentinel) without a near cache are driven by the loop itself: the starting call formats the
 * request into the loop connection's buffer (from any thread, under a->mu), and
 * rcache_async_process (the loop's thread) writes everything buffered in one write, reads the
 * replies that have come without waiting for more, and runs their callbacks: no worker, no
 * hand-off between threads, the requests of a whole loop iteration pipelined on one
 * connection. Everything else, and an operation the loop connection cannot take (none yet: a
 * worker opens one; its breaker open; the first contact under way; a cluster found; what its
 * wire's format refuses: a key last seen tagged, a value to escape...) runs on a worker.
 * Requests wait in the buffer while LOOP_MAX_BYTES of written ones are unanswered, so a write
 * never waits for the socket.
 *
 * The engine's rules hold. Replies answer requests in order; a reply with nothing asked, or
 * of a type its request cannot get, closes the connection (desynchronised). An operation whose
 * deadline passes completes then (rcache_async_process, as any operation), and stays on the
 * list as a tombstone until its reply is read and dropped. When the oldest one on the
 * connection is past its deadline the server is stalled: the connection is closed, and told
 * to the breaker once. When the connection is closed (stalled, closed by the server,
 * desynchronised, or the pool has moved to another server), the operations still waiting go
 * to the workers, which run them as blocking calls within what is left of their deadlines: the
 * blocking path's retry on a fresh connection; but not an INCRBY written, even in part, which
 * may have been applied: it completes as unavailable, as the blocking call does. A GET whose
 * value the namespace's clear version (tags.h, read by a GET of the clear key buffered before
 * it, which the GETs buffered together share) does not settle — a tagged value, one stale
 * against the clear key —, and a MOVED / ASK / READONLY reply (blocking_error), are run again
 * there too; every other error reply is mapped as the blocking call maps it
 * (rcache__reply_status).
 */
/* requests written and not answered yet, at most: less than any socket takes without a wait
 * (the rest waits in the buffer for replies to come) */
#define LOOP_MAX_BYTES ((size_t)32 << 10)

/* Under a->mu: puts op (in flight) on the workers' FIFO; false when no worker can run it. A
 * worker is signalled unless quiet (the caller queues more and wakes them once). A worker is
 * created here when there is none, or when the others are short and none is being created;
 * the workers create the rest (grow_locked). */
static bool queue_locked(rcache__async *a, aop *op, bool quiet) {
  op->state = QUEUED;
  op->qnext = NULL;
  op->qprev = a->qtail;
  if (a->qtail)
    a->qtail->qnext = op;
  else
    a->qhead = op;
  a->qtail = op;
  /* the first worker is the first operation's (once per handle); the others the spawner's */
  if (a->nthreads == 0 && spawn(a, &a->threads[a->nthreads]) == 0) {
    a->nthreads++;
    a->starting++;
    atomic_store_explicit(&a->has_worker, true, memory_order_release);
  } else if (short_locked(a)) {
    pthread_cond_signal(&a->grow_cv);
  }
  if (a->nthreads == 0) {
    queue_del(a, op);
    return false;
  }
  if (!quiet) wake_idler_locked(a);
  return true;
}

/* Under a->mu: op leaves the loop connection's list for a worker, or when none can run it,
 * completes as expired (the loop runs its callback). *wake: the loop is to be woken. quiet:
 * as for queue_locked. */
static void to_worker_locked(rcache__async *a, aop *op, bool *wake, bool quiet) {
  op->refs--; /* the list's */
  if (queue_locked(a, op, quiet)) return;
  inflight_del(a, op);
  op->expired = true;
  if (ready_add(a, op)) *wake = true;
}

/* A worker opens the loop connection (op: no callback). */
static void run_open(rcache *c, aop *op) {
  rcache__async *a = op->a;
  rcache__conn *conn = NULL;
  (void)c;
  op->s = rcache__pool_open_conn(a->lpool, op->deadline_us, &conn);
  pthread_mutex_lock(&a->mu);
  a->lopening = false;
  if (op->s == RCACHE_OK && !a->closing) {
    a->lnew = conn;
    conn = NULL;
  }
  pthread_mutex_unlock(&a->mu);
  if (conn)
    rcache__conn_close(conn);
  else if (op->s == RCACHE_OK)
    wake_loop(a);
}
static const kind K_open = {.run = run_open, .shape = S_STATUS};

static rcache_status submit(rcache *c, aop *op);
static aop *op_new(rcache *c, const kind *k, const char *key, void (*cb)(void), void *ud);

/* Under a->mu: room for len more bytes of requests. */
static bool lout_room(rcache__async *a, size_t len) {
  if (a->loff == a->llen) a->loff = a->llen = 0;
  if (a->loff > a->lcap / 2) { /* written bytes at the front: drop them */
    memmove(a->lout, a->lout + a->loff, a->llen - a->loff);
    a->llen -= a->loff;
    a->loff = 0;
  }
  if (a->llen + len <= a->lcap) return true;
  size_t cap = a->lcap ? a->lcap : 4096;
  while (cap < a->llen + len)
    cap *= 2;
  char *p = rcache__realloc(a->lout, cap);
  if (!p) return false;
  a->lout = p;
  a->lcap = cap;
  return true;
}

/* What the loop does for a kind it drives: one request, one reply. */
struct wire {
  rcache_op op;    /* for the statistics */
  unsigned expect; /* the reply types the request can get (an error reply always fits) */
  /* may run again on a worker once written (a lost connection): a second run answers as
   * the first would have. Not INCRBY, nor UNLINK (the second finds the key gone) */
  bool idempotent;
  /* formats op's request for the full key k into b, and makes the checks and notes the
   * blocking call makes before it sends; false when the loop does not take op (a worker's
   * blocking call then says why, or serves it) */
  bool (*format)(rcache *c, aop *op, const rcache__key *k, rcache__cmds *b);
  /* the reply (of a type in expect, or an error) into op's outputs, counted as the blocking
   * call counts it; the status before rcache__remote */
  rcache_status (*finish)(rcache *c, aop *op, redisReply *r);
  size_t (*bytes)(const aop *op); /* for the statistics */
};

/* GET key; loop_start puts the clear key's GET before it when none is buffered (tags.h: the
 * value is judged with the namespace's clear version read after the call started) */
static bool get_format(rcache *c, aop *op, const rcache__key *k, rcache__cmds *b) {
  (void)op;
  if (rcache__tags_hinted(c, k->p, k->len) || rcache__tags_plain_read(c, k, NULL))
    return false; /* tags.c reads it with its versions, or without the clear key */
  return rcache__redis_get_cmds(b, k->p, k->len, false) == RCACHE_OK;
}
/* Whether a GET's value is for the blocking call to judge (loop_reply runs it again on a
 * worker): what tags.c's rcache__tags_settled cannot settle with the clear version read
 * before it. The loop's thread. */
static bool get_again(const rcache__async *a, aop *op, const redisReply *r) {
  op->head = 0;
  return r->type == REDIS_REPLY_STRING &&
         (!a->clear_ok || !rcache__tags_settled(r->str, r->len, a->clear_ver, &op->head));
}
static rcache_status get_finish(rcache *c, aop *op, redisReply *r) {
  rcache_status s = rcache__redis_take_value(r, &op->v);
  if (s == RCACHE_OK && op->head) { /* settled (get_again): what follows the header */
    memmove(op->v.data, op->v.data + op->head, op->v.len - op->head + 1); /* with the NUL */
    op->v.len -= op->head;
  }
  if (s == RCACHE_OK)
    COUNT(c, hits);
  else if (s == RCACHE_MISS)
    COUNT(c, misses);
  return s;
}
static size_t value_bytes(const aop *op) {
  return op->v.len;
}

static bool set_format(rcache *c, aop *op, const rcache__key *k, rcache__cmds *b) {
  int64_t ttl_ms = rcache__ttl_ms(c, op->y);
  if ((!op->in.data && op->in.len) || op->in.len > c->ctx.opt.max_value_bytes || ttl_ms < 0 ||
      !rcache__tags_plain_as_is(c, op->in.data, op->in.len))
    return false; /* the blocking call refuses it, or stores it escaped or framed */
  if (rcache__redis_set_cmds(b, k->p, k->len, op->in.data ? op->in.data : "", op->in.len, ttl_ms,
                             0) != RCACHE_OK)
    return false;
  rcache__tags_note(c, k->p, k->len, false);
  rcache__inval_key(c, k->p, k->len); /* before the SET goes out, as rcache_set's */
  return true;
}
static rcache_status set_finish(rcache *c, aop *op, redisReply *r) {
  (void)op;
  rcache_status s = rcache__redis_set_reply(r);
  if (s == RCACHE_OK) COUNT(c, sets);
  return s;
}
static size_t in_bytes(const aop *op) {
  return op->in.len;
}

static bool delete_format(rcache *c, aop *op, const rcache__key *k, rcache__cmds *b) {
  (void)op;
  rcache__inval_key(c, k->p, k->len); /* before the UNLINK goes out, as rcache_delete's */
  return rcache__redis_key_cmds(b, "UNLINK", k->p, k->len) == RCACHE_OK;
}
static rcache_status delete_finish(rcache *c, aop *op, redisReply *r) {
  (void)op;
  rcache_status s = rcache__redis_del_reply(r);
  if (s == RCACHE_OK) COUNT(c, deletes);
  return s;
}
static size_t no_bytes(const aop *op) {
  (void)op;
  return 0;
}

/* INCRBY op->x (rcache_decr's is negated: INT64_MIN is the blocking call's to refuse) */
static bool incr_format(rcache *c, aop *op, const rcache__key *k, rcache__cmds *b, int64_t by) {
  (void)c, (void)op;
  return rcache__redis_incr_cmds(b, k->p, k->len, by, 0) == RCACHE_OK;
}
static bool incr_fmt(rcache *c, aop *op, const rcache__key *k, rcache__cmds *b) {
  return incr_format(c, op, k, b, op->x);
}
static bool decr_fmt(rcache *c, aop *op, const rcache__key *k, rcache__cmds *b) {
  return op->x != INT64_MIN && incr_format(c, op, k, b, -op->x);
}
static rcache_status incr_finish(rcache *c, aop *op, redisReply *r) {
  (void)c;
  long long n = 0;
  rcache_status s = rcache__redis_take_int(r, &n);
  if (s == RCACHE_OK) op->i = n;
  return s;
}

static const wire W_get = {
    RCACHE_OP_GET, RCACHE__R_STR | RCACHE__R_NIL, true, get_format, get_finish, value_bytes};
static const wire W_set = {
    RCACHE_OP_SET, RCACHE__R_OK | RCACHE__R_NIL, true, set_format, set_finish, in_bytes};
static const wire W_delete = {RCACHE_OP_DELETE, RCACHE__R_INT, false,
                              delete_format,    delete_finish, no_bytes};
static const wire W_incr = {RCACHE_OP_INCR, RCACHE__R_INT, false, incr_fmt, incr_finish, no_bytes};
static const wire W_decr = {RCACHE_OP_INCR, RCACHE__R_INT, false, decr_fmt, incr_finish, no_bytes};

/* a->clear_req: the GET of the clear key, which the loop connection's GETs read before their
 * own (false without memory: no loop I/O then). */
static bool clear_request(rcache *c, rcache__async *a) {
  rcache__key ck;
  if (rcache__key_make(c, RCACHE__CLEAR_KEY, &ck) != RCACHE_OK) return false;
  rcache__cmds b = {0};
  bool ok = rcache__redis_key_cmds(&b, "GET", ck.p, ck.len) == RCACHE_OK;
  rcache__key_free(&ck);
  const char *req = b.one ? b.one : b.buf;
  a->clear_len = b.one ? b.one_len : b.len;
  a->clear_req = ok ? rcache__memdup0(req, a->clear_len) : NULL;
  rcache__cmds_free(&b);
  return a->clear_req != NULL;
}

/* Starts op (of a kind with a wire, not yet submitted) on the loop connection. False when the
 * connection cannot take it: op is then the caller's to submit to the workers. */
static bool loop_start(rcache *c, rcache__async *a, aop *op) {
  if (!a->lpool || !op->k->wire || atomic_load_explicit(&c->ctx.successor, memory_order_acquire) ||
      atomic_load_explicit(&c->ctx.first_going, memory_order_acquire))
    return false;
  rcache__key k;
  if (rcache__key_make(c, op->key, &k) != RCACHE_OK) { /* the worker's call reports it */
    rcache__err_clear();
    return false;
  }
  rcache__cmds b = {0};
  bool formatted = op->k->wire->format(c, op, &k, &b);
  rcache__key_free(&k);
  const char *req = b.one ? b.one : b.buf;
  size_t len = b.one ? b.one_len : b.len;
  bool taken = false, open = false, wake = false;
  int64_t now = rcache__now_us();
  bool get = op->k->wire == &W_get;
  if (pthread_mutex_trylock(&a->mu) != 0) { /* a worker holds it: op goes to one (submit) */
    rcache__cmds_free(&b);
    rcache__err_clear();
    return false;
  }
  /* a GET needs a GET of the clear key buffered before it and not written yet */
  size_t pre = get && !(a->clear_queued && a->clear_at >= a->wsent) ? a->clear_len : 0;
  if (!formatted || len > LOOP_MAX_BYTES / 2 || a->closing) {
    /* (a large request, a big SET, goes to a worker: the window below always has room for the
     * rest of one under way) */
  } else if (!a->lconn) { /* (not while the breaker keeps the server off: the prober tries) */
    open = !a->lopening && !a->lnew && rcache__pool_available(a->lpool);
    a->lopening = a->lopening || open;
  } else if (rcache__pool_available(a->lpool) && lout_room(a, pre + len)) {
    wake = a->llen == a->loff;
    if (pre) {
      memcpy(a->lout + a->llen, a->clear_req, pre);
      a->clear_queued = true;
      a->clear_at = a->wappended;
    }
    memcpy(a->lout + a->llen + pre, req, len);
    a->llen += pre + len;
    a->wappended += pre + len;
    op->a = a;
    op->wlen = pre + len;
    op->clear_first = pre > 0;
    op->clear_read = false;
    op->clear_asked = rcache__clear_asked(c);
    op->wend = a->wappended;
    op->wnext = NULL;
    if (a->wtail)
      a->wtail->wnext = op;
    else
      a->whead = op;
    a->wtail = op;
    op->refs = 2; /* the in-flight list's, and the loop connection's list's */
    op->state = WIRE;
    op->t0 = now;
    op->deadline_us = now + a->budget_us;
    wake = wake || op->deadline_us < a->min_dl;
    inflight_add(a, op);
    taken = true;
  }
  pthread_mutex_unlock(&a->mu);
  rcache__cmds_free(&b);
  rcache__err_clear();
  if (wake) wake_loop(a);
  if (open) {
    aop *o = op_new(c, &K_open, NULL, NULL, NULL);
    if (!o || submit(c, o) != RCACHE_OK) {
      pthread_mutex_lock(&a->mu);
      a->lopening = false;
      pthread_mutex_unlock(&a->mu);
      rcache__err_clear();
    }
  }
  return taken;
}

/* Closes the loop connection (the loop's thread); why: what to tell the breaker (RCACHE_OK:
 * nothing). The operations on it go to the workers, except one that may not run twice (INCRBY)
 * and was written, even in part: it may have been applied, and completes as unavailable, as the
 * blocking call does after a lost connection (through the ready list: their callbacks, up to a
 * quarter of a thousand in flight, run in rcache_async_process's bounded batches, not all
 * here: they go on the loop's own ready list). Tombstones are released. The lock is only
 * tried: when a worker holds it, the close is the next loop_io's, at once (the descriptor). */
static void loop_close(rcache *c, rcache__async *a, rcache_status why) {
  if (!a->lclose_pending || a->lclose_why == RCACHE_OK) a->lclose_why = why;
  a->lclose_pending = true;
  if (pthread_mutex_trylock(&a->mu) != 0) {
    wake_loop(a);
    return;
  }
  why = a->lclose_why;
  a->lclose_pending = false;
  rcache__conn *conn = a->lconn;
  aop *drop = NULL, *failed = NULL, *ftail = NULL;
  bool wake = false, handed = false;
  a->lconn = NULL;
  a->loff = a->llen = 0;
  a->wbytes = 0;
  for (aop *op = a->whead, *nx; op; op = nx) {
    nx = op->wnext;
    op->wnext = NULL;
    if (op->state == EXPIRED) {
      if (--op->refs == 0) {
        op->rnext = drop;
        drop = op;
      }
    } else if (!op->k->wire->idempotent && a->wsent > op->wend - op->wlen) {
      inflight_del(a, op);
      op->refs--; /* the list's; the other goes with it to the ready list */
      op->state = READY;
      op->rnext = failed;
      failed = op;
      if (!ftail) ftail = op;
    } else {
      to_worker_locked(a, op, &wake, true);
      handed = true;
    }
  }
  /* one wake-up for them all: a signal per operation (up to a thousand in flight) was a
   * futex call each on the loop's thread, with the woken workers queueing on a->mu */
  if (handed)
    while (wake_idler_locked(a)) {
    }
  a->whead = a->wtail = NULL;
  a->wappended = a->wsent = 0;
  a->clear_queued = false;
  pthread_mutex_unlock(&a->mu);
  if (conn) {
#ifdef __linux__
    epoll_ctl(a->epfd, EPOLL_CTL_DEL, conn->sock.fd, NULL);
#endif
    rcache__conn_close(conn);
  }
  if (why != RCACHE_OK) rcache__pool_report(a->lpool, why);
  for (aop *op = failed; op; op = op->rnext) {
    op->s = rcache__remote(c, RCACHE_EUNAVAILABLE); /* its result: no count (op->i 0) */
    rcache__observe_us(c, op->k->wire->op, op->key, op->s, rcache__since(op->t0), 0);
  }
  if (failed) { /* on the loop's own ready list: this is the loop's thread */
    own_append(a, failed, ftail);
    wake = true;
  }
  for (aop *op = drop, *nx; op; op = nx) {
    nx = op->rnext;
    free_op(op);
  }
  rcache__err_clear();
  if (wake) wake_loop(a);
}

/* An error reply that the blocking call does more with than map it (rcache__reply_status, as
 * the wires' finish functions do), so that the loop runs the operation again on a worker: a
 * MOVED / ASK (a cluster node behind a one-host URL), which it follows; a READONLY, which on a
 * Sentinel handle says the master was demoted: it looks the master up again and answers
 * unavailable (the finish functions said RCACHE_ESERVER). The command did not run: running it
 * again is safe, even an INCRBY or an UNLINK. */
static bool blocking_error(const redisReply *r) {
  return r->type == REDIS_REPLY_ERROR && r->str &&
         (strncmp(r->str, "MOVED ", 6) == 0 || strncmp(r->str, "ASK ", 4) == 0 ||
          strncmp(r->str, "READONLY", 8) == 0);
}

/* One reply read on the loop connection: the oldest request's. False when the connection is
 * out of step: nothing was asked (no request written whole and unanswered: one still in the
 * buffer cannot have been answered), or a reply its request cannot get. *ran: a callback ran.
 * Called with a->mu held, which it releases. */
static bool loop_reply(rcache *c, rcache__async *a, redisReply *r, bool *ran) {
  *ran = false;
  aop *op = a->whead;
  if (op && op->clear_first && !op->clear_read && a->wbytes >= a->clear_len &&
      (r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STRING ||
       r->type == REDIS_REPLY_NIL)) { /* the clear key's, before the GET's own */
    op->clear_read = true;
    pthread_mutex_unlock(&a->mu);
    rcache__versions v;
    rcache__redis_take_versions(&r, 1, &v);
    a->clear_ver = v.v[0];
    a->clear_ok = !v.bad;
    if (a->clear_ok) rcache__tags_clear_seen(c, a->clear_ver, op->clear_asked);
    freeReplyObject(r);
    return true;
  }
  if (!op || a->wbytes < op->wlen ||
      (r->type != REDIS_REPLY_ERROR && !(op->k->wire->expect & RCACHE__R(r->type)))) {
    pthread_mutex_unlock(&a->mu);
    rcache__errf(op && a->wbytes >= op->wlen
                     ? "a reply its request cannot get: the loop connection is out of step"
                     : "a reply nobody asked for: the loop connection is out of step");
    freeReplyObject(r);
    return false;
  }
  a->whead = op->wnext;
  if (!a->whead) a->wtail = NULL;
  op->wnext = NULL;
  a->wbytes -= op->wlen;
  bool wake = false, last = false, live = op->state != EXPIRED;
  /* a tagged or escaped value, which the blocking call unwraps; an error it does more with
   * than map it (blocking_error) */
  bool again = live && ((op->k->wire == &W_get && get_again(a, op, r)) || blocking_error(r));
  if (!live)
    last = --op->refs == 0; /* a tombstone: its reply is dropped */
  else if (again)
    to_worker_locked(a, op, &wake, false);
  else {
    inflight_del(a, op);
    op->refs--; /* the list's: the in-flight list's, ours now, is the only one left */
  }
  pthread_mutex_unlock(&a->mu);
  if (wake) wake_loop(a);
  if (!live || again) {
    freeReplyObject(r);
    if (last) free_op(op);
    return true;
  }
  const wire *w = op->k->wire;
  rcache_status s = w->finish(c, op, r);
  op->has_out = true; /* the callback's (deliver); with none, free_op frees them */
  freeReplyObject(r);
  rcache__pool_report(a->lpool, s);
  s = rcache__remote(c, s);
  rcache__observe_us(c, w->op, op->key, s, rcache__since(op->t0), w->bytes(op));
  op->s = s;
  deliver(c, op, s);
  rcache__err_clear();
  free_op(op); /* in no list, held by no worker: ours alone */
  *ran = true;
  return true;
}

/* Writes what is buffered, up to LOOP_MAX_BYTES unanswered: copied out under the lock
 * (starters append meanwhile), then written in one write that never waits on the socket.
 * *later: the lock was held by another thread, nothing written (the next process writes). */
static rcache_status loop_flush(rcache__async *a, rcache__conn *conn, bool *later) {
  if (pthread_mutex_trylock(&a->mu) != 0) {
    *later = true;
    return RCACHE_OK;
  }
  size_t len = a->llen - a->loff,
         room = LOOP_MAX_BYTES > a->wbytes ? LOOP_MAX_BYTES - a->wbytes : 0;
  if (len > room) len = room;
  if (len > a->lspare_cap) {
    char *p = rcache__realloc(a->lspare, LOOP_MAX_BYTES);
    if (p) {
      a->lspare = p;
      a->lspare_cap = LOOP_MAX_BYTES;
    } else {
      len = 0; /* tried again by the next process */
    }
  }
  char *buf = a->lspare;
  if (len) {
    memcpy(buf, a->lout + a->loff, len);
    a->loff += len;
    a->wbytes += len;
    a->wsent += len;
  }
  pthread_mutex_unlock(&a->mu);
  return len ? rcache__conn_send(conn, buf, len, rcache__now_us() + 1000) : RCACHE_OK;
}

/* The loop connection's part of rcache_async_process: takes a connection a worker opened,
 * writes what is buffered, reads the replies that have come (budget of them at most, and none
 * after until), closes a stalled connection. Returns the callbacks run. The lock is only tried
 * (as in rcache_async_process): what a worker holding it keeps from this call is the next
 * call's, at once (the descriptor). */
static int loop_io(rcache *c, rcache__async *a, int budget, int64_t until) {
  if (!a->lpool) return 0;
  uint64_t gen = rcache__fork_gen();
  int n = 0;
  bool later = false; /* the lock was held: come back */
#ifdef __linux__
  if (pthread_mutex_trylock(&a->mu) != 0) {
    later = true;
  } else {
    rcache__conn *fresh = a->lnew;
    a->lnew = NULL;
    if (fresh) {
      struct epoll_event ev = {.events = EPOLLIN, .data.ptr = fresh};
      if (!a->lconn && epoll_ctl(a->epfd, EPOLL_CTL_ADD, fresh->sock.fd, &ev) == 0) {
        a->lconn = fresh;
        fresh = NULL;
      }
    }
    pthread_mutex_unlock(&a->mu);
    if (fresh) rcache__conn_close(fresh);
  }
#endif
  if (a->lclose_pending) { /* (it wakes the loop again if the lock is still held) */
    loop_close(c, a, a->lclose_why);
    return 0;
  }
  rcache__conn *conn = a->lconn; /* written by this thread only */
  if (!conn) {
    if (later) wake_loop(a);
    return 0;
  }
  if (!rcache__pool_current(a->lpool, conn)) { /* a failover, a restart: the pool moved on */
    loop_close(c, a, RCACHE_OK);
    return 0;
  }
  /* Read the replies that have come, then write what is buffered; again while replies came
   * (room for more requests, and callbacks may have started more), a few rounds at most so
   * that the loop's other work is not held up: what is left is the next process's, which the
   * socket (replies pending) or the descriptor (a request buffered first) wakes. Reading
   * first: bytes that came while nothing was asked are read as that (out of step), never as
   * the reply to a request written after them. A reply is read under the lock (loop_reply
   * takes the oldest request off the list): tried first, so never waited for. */
  bool more = true, late = false;
  int replies = 0;
  for (int round = 0; more && round < 4; round++) {
    more = false;
    rcache_status s;
    while (replies < budget) { /* what is left of the call's callbacks, at most */
      if (replies % 8 == 7 && rcache__now_us() >= until) {
        late = true;
        break;
      }
      if (pthread_mutex_trylock(&a->mu) != 0) {
        later = true;
        break;
      }
      redisReply *r = NULL;
      s = rcache__conn_next_now(conn, &r, a->max_reply);
      if (s == RCACHE_ETIMEOUT) { /* nothing more yet */
        pthread_mutex_unlock(&a->mu);
        break;
      }
      bool ran = false;
      if (s != RCACHE_OK) pthread_mutex_unlock(&a->mu);
      if (s != RCACHE_OK || !loop_reply(c, a, r, &ran)) {
        loop_close(c, a, s != RCACHE_OK ? s : RCACHE_EPROTO);
        return n;
      }
      n += ran;
      if (ran && forked_since(gen)) return n; /* (forked_since) */
      replies++;
      more = true;
    }
    s = loop_flush(a, conn, &later);
    if (s != RCACHE_OK) {
      loop_close(c, a, s);
      return n;
    }
    if (late || later) break;
  }
  rcache__err_clear();
  bool stalled = false;
  if (pthread_mutex_trylock(&a->mu) == 0) {
    stalled = a->whead && a->whead->state == EXPIRED;
    pthread_mutex_unlock(&a->mu);
  } else {
    later = true;
  }
  if (stalled)
    loop_close(c, a, RCACHE_ETIMEOUT);
  else if (late || later || replies >= budget) /* more may be parsed already: the socket
                                                * would not say so */
    wake_loop(a);
  return n;
}

/* ---- the machinery ------------------------------------------------------------------------ */

static int make_fds(int *rfd, int *wfd) {
#ifdef __linux__
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  *rfd = *wfd = fd;
  return fd < 0 ? -1 : 0;
#else
  int p[2];
  if (pipe(p) != 0) return -1;
  for (int i = 0; i < 2; i++) {
    fcntl(p[i], F_SETFD, FD_CLOEXEC);
    fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
  }
  *rfd = p[0];
  *wfd = p[1];
  return 0;
#endif
}

static void close_fds(rcache__async *a) {
  close(a->rfd);
  if (a->wfd != a->rfd) close(a->wfd);
  if (a->epfd >= 0) close(a->epfd);
}

/* The pool of the one server whose requests the loop drives (see "the loop's own I/O"), or NULL:
 * standalone and Sentinel handles without a near cache (whose fills and invalidations the
 * loop path does not take part in). */
static rcache__pool *loop_pool(rcache *c) {
  if (c->ctx.near || !c->b) return NULL;
  const char *m = c->b->ops->mode;
  if (strcmp(m, "standalone") != 0 && strcmp(m, "sentinel") != 0) return NULL;
  return ((rcache__redis *)c->b)->pool;
}

static rcache__async *async_new(rcache *c) {
  rcache__async *a = rcache__calloc(1, sizeof *a);
  if (!a) return NULL;
  a->max = c->ctx.opt.async_threads > 0 ? c->ctx.opt.async_threads : DEFAULT_THREADS;
  a->threads = rcache__calloc((size_t)a->max, sizeof *a->threads);
  if (!a->threads || make_fds(&a->rfd, &a->wfd) != 0) {
    rcache__free(a->threads);
    rcache__free(a);
    return NULL;
  }
  pthread_mutex_init(&a->mu, NULL);
  pthread_mutex_init(&a->spare_mu, NULL);
  pthread_cond_init(&a->cv, NULL);
  pthread_cond_init(&a->grow_cv, NULL);
  a->min_dl = INT64_MAX;
  const rcache_options *o = &c->ctx.opt;
  /* the blocking call's bound plus one command timeout: the wait for a worker and the
   * hand-offs, so that a loaded machine does not turn an answer the blocking call gives into
   * an expiry (docs/async.md, "Deadlines") */
  a->budget_us = ((int64_t)o->connect_timeout_ms + 2 * (int64_t)o->command_timeout_ms) * 1000;
  a->load_budget_us = 2 * a->budget_us + (int64_t)o->flight_wait_ms * 1000;
  a->c = c;
  a->max_reply = rcache__reply_max(o);
  a->epfd = -1;
#ifdef __linux__
  /* the loop watches one descriptor: an epoll set of the eventfd and the loop connection */
  a->epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (a->epfd >= 0 && epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->rfd, &ev) != 0) {
    close(a->epfd);
    a->epfd = -1;
  }
#endif
  a->lpool = a->epfd >= 0 ? loop_pool(c) : NULL;
  if (a->lpool && !clear_request(c, a)) a->lpool = NULL; /* no loop I/O without it */
  rcache__err_clear();
  return a;
}

/* The handle's machinery, made on first use (one loop thread usually; a race between two
 * first callers is settled by a CAS, the loser's copy freed). */
static rcache__async *get_async(rcache *c) {
  rcache__async *a = atomic_load_explicit(&c->async, memory_order_acquire);
  if (a) return a;
  rcache__async *fresh = async_new(c);
  if (!fresh) return NULL;
  if (atomic_compare_exchange_strong(&c->async, &a, fresh)) return fresh;
  close_fds(fresh);
  pthread_mutex_destroy(&fresh->mu);
  pthread_mutex_destroy(&fresh->spare_mu);
  pthread_cond_destroy(&fresh->cv);
  rcache__free(fresh->threads);
  rcache__free(fresh->clear_req);
  rcache__free(fresh);
  return a;
}

int rcache_async_fd(rcache *c) {
  if (!c) return -1;
  rcache__enter(c);
  rcache__async *a = get_async(c);
  return a ? (a->epfd >= 0 ? a->epfd : a->rfd) : -1;
}

/* A new operation of c's machinery (made here on the first), with a copy of key; NULL when
 * out of memory. */
static aop *op_new(rcache *c, const kind *k, const char *key, void (*cb)(void), void *ud) {
  rcache__async *a = get_async(c);
  if (!a) return NULL;
  aop *op = spare_take(a);
  if (!op && !(op = rcache__calloc(1, sizeof *op))) return NULL;
  op->a = a;
  op->k = k;
  op->cb = cb;
  op->ud = ud;
  op->refs = 1;
  size_t len = key ? strlen(key) : 0;
  if (key && len < sizeof op->kbuf) {
    op->key = memcpy(op->kbuf, key, len + 1);
  } else if (key && !(op->key = rcache__strdup(key))) {
    free_op(op);
    return NULL;
  }
  return op;
}

/* Starts a worker with every signal blocked: the application's signals go to its own
 * threads, never to ours (a TLS write's SIGPIPE is consumed by transport.c's guard). */
static int spawn_fn(rcache__async *a, pthread_t *t, void *(*fn)(void *)) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int rc = rcache__bg_spawn(t, fn, a);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

static int spawn(rcache__async *a, pthread_t *t) {
  return spawn_fn(a, t, worker);
}

/* An operation's time from its start: a call's deadlines; get_or_set: see async_new; a
 * deletion: one batch (a SCAN and an UNLINK), renewed by each batch (batch_done). */
static int64_t budget_of(const rcache__async *a, const kind *k) {
  if (k->load != L_NONE) return a->load_budget_us;
  return k->batches ? 2 * a->budget_us : a->budget_us;
}

/* Under a->mu: op (its deadline set) in flight and on the workers' FIFO, a worker woken; or,
 * when none can run it (closing: a start racing with rcache_close; no worker could be started:
 * only before the first, which submit starts under the lock), completed as expired. True when
 * the loop is to be woken (its timer is later than op's deadline, or the ready list was
 * empty). */
static bool enqueue_locked(rcache__async *a, aop *op) {
  if (a->closing || !queue_locked(a, op, false)) {
    op->expired = true;
    return ready_add(a, op);
  }
  bool wake = op->deadline_us < a->min_dl;
  inflight_add(a, op);
  return wake;
}

/* Under a->mu: moves the operations submitted meanwhile (a->subs) to the FIFO, in the order
 * they were submitted. True when the loop is to be woken (enqueue_locked). */
static bool take_subs_locked(rcache__async *a) {
  if (!atomic_load_explicit(&a->subs, memory_order_relaxed)) return false;
  aop *op = atomic_exchange_explicit(&a->subs, NULL, memory_order_acquire), *fifo = NULL;
  while (op) { /* the stack, newest first, reversed */
    aop *nx = op->qnext;
    op->qnext = fifo;
    fifo = op;
    op = nx;
  }
  bool wake = false;
  for (aop *nx; fifo; fifo = nx) {
    nx = fifo->qnext;
    wake = enqueue_locked(a, fifo) || wake;
  }
  return wake;
}

/* Queues op (taking it over whatever the outcome) and wakes or starts a worker. Never waits
 * for the lock but for the handle's first operation (which starts the first worker): when
 * another thread holds it (a worker the machine preempted holds it for milliseconds), op goes
 * on a->subs and the loop is woken, whose rcache_async_process (or a worker, first) takes it
 * to the FIFO. */
static rcache_status submit(rcache *c, aop *op) {
  rcache__async *a = op->a;
  if (atomic_load(&a->shut)) {
    free_op(op);
    return rcache__einval(c, "the handle is being closed");
  }
  op->deadline_us = rcache__now_us() + budget_of(a, op->k);
  if (!atomic_load_explicit(&a->has_worker, memory_order_acquire)) {
    pthread_mutex_lock(&a->mu);
  } else if (pthread_mutex_trylock(&a->mu) != 0) {
    aop *head = atomic_load_explicit(&a->subs, memory_order_relaxed);
    do
      op->qnext = head;
    while (!atomic_compare_exchange_weak_explicit(&a->subs, &head, op, memory_order_release,
                                                  memory_order_relaxed));
    wake_loop(a);
    return RCACHE_OK;
  }
  if (a->closing) {
    pthread_mutex_unlock(&a->mu);
    free_op(op);
    return rcache__einval(c, "the handle is being closed");
  }
  bool wake = take_subs_locked(a);
  if (!queue_locked(a, op, false)) {
    pthread_mutex_unlock(&a->mu);
    free_op(op);
    if (wake) wake_loop(a);
    rcache__errf("async: no worker thread could be started");
    return rcache__done(c, RCACHE_ENOMEM);
  }
  /* the loop's timer is unset, or later than this deadline: say so through the descriptor,
   * so a loop that re-arms its timer after each process never misses one */
  wake = op->deadline_us < a->min_dl || wake;
  inflight_add(a, op);
  pthread_mutex_unlock(&a->mu);
  if (wake) wake_loop(a);
  return RCACHE_OK;
}

/* ---- shutdown and fork -------------------------------------------------------------------- */

static void load_unref(rcache_load *ld) {
  pthread_mutex_lock(&ld->mu);
  bool last = --ld->refs == 0;
  pthread_mutex_unlock(&ld->mu);
  if (!last) return;
  rcache_value_free(&ld->v);
  if (ld->j) json_decref(ld->j);
  rcache__tags_del(ld->tags);
  pthread_mutex_destroy(&ld->mu);
  rcache__wakeup_destroy(&ld->w);
  rcache__free(ld);
}

/* (The worker may be gone before the kick: a futex wake on its word is then a spurious one.) */
static void abandon(rcache_load *ld) {
  pthread_mutex_lock(&ld->mu);
  ld->abandoned = true;
  rcache__wakeup_set(&ld->w, 1);
  pthread_mutex_unlock(&ld->mu);
  rcache__wakeup_kick(&ld->w);
}

void rcache__async_close(rcache *c) {
  rcache__async *a = atomic_load_explicit(&c->async, memory_order_acquire);
  if (!a) return;
  pthread_mutex_lock(&a->mu);
  take_subs_locked(a); /* completed below with the rest in flight */
  a->closing = true;
  atomic_store(&a->shut, true);
  pthread_cond_broadcast(&a->cv);
  while (wake_idler_locked(a)) {
  }
  /* the loop's own lists (this is the loop's thread) first: they are older */
  own_append(a, a->rhead, a->rtail);
  aop *ready = a->own_ready, *cut = NULL;
  a->own_ready = a->own_rtail = a->rhead = a->rtail = NULL;
  rcache_load *lists[2] = {a->own_loads, a->lhead};
  for (int i = 0; i < 2; i++)
    for (rcache_load *ld = lists[i], *nx; ld; ld = nx) { /* never handed to a loader */
      nx = ld->next;
      abandon(ld);
      load_unref(ld);
    }
  a->own_loads = a->lhead = NULL;
  while (a->inflight) {
    aop *op = a->inflight;
    inflight_del(a, op);
    if (op->state == QUEUED) queue_del(a, op);
    if (op->ld) abandon(op->ld);
    op->state = EXPIRED;
    op->expired = true;
    op->rnext = cut;
    cut = op;
  }
  pthread_cond_broadcast(&a->grow_cv); /* the spawner ends */
  while (a->growing)                   /* a worker being created: it is joined below too */
    rcache__cond_wait(&a->cv, &a->mu);
  bool spawner = a->has_spawner;
  for (;;) { /* a worker in the caller's codec: obj is not the caller's until it is out */
    bool busy = false;
    for (aop *op = cut; op && !busy; op = op->rnext)
      busy = op->busy;
    if (!busy) break;
    rcache__cond_wait(&a->cv, &a->mu);
  }
  int nthreads = a->nthreads;
  pthread_mutex_unlock(&a->mu);
  for (aop *op = ready, *nx; op; op = nx) {
    nx = op->rnext;
    deliver(c, op, RCACHE_EUNAVAILABLE);
    op_unref(op);
  }
  for (aop *op = cut, *nx; op; op = nx) {
    nx = op->rnext;
    deliver(c, op, RCACHE_EUNAVAILABLE);
    op_unref(op);
  }
  for (int i = 0; i < nthreads; i++)
    rcache__bg_join(a->threads[i]);
  if (spawner) rcache__bg_join(a->spawner);
  /* the loop connection: its operations completed above; what is left is the list's references */
  for (aop *op = a->whead, *nx; op; op = nx) {
    nx = op->wnext;
    if (--op->refs == 0) free_op(op);
  }
  if (a->lconn) rcache__conn_close(a->lconn);
  if (a->lnew) rcache__conn_close(a->lnew);
  rcache__free(a->lout);
  rcache__free(a->lspare);
  rcache__free(a->clear_req);
  close_fds(a);
  spare_free(a);
  pthread_mutex_destroy(&a->spare_mu);
  pthread_mutex_destroy(&a->mu);
  pthread_cond_destroy(&a->cv);
  pthread_cond_destroy(&a->grow_cv);
  rcache__free(a->threads);
  rcache__free(a);
  atomic_store(&c->async, NULL);
}

/* In a forked child: the parent's workers are not here and its lock may be held forever.
 * Forget it all (a copy of the parent's memory) but the descriptors; the child makes its own
 * machinery on its next async call. */
void rcache__async_after_fork(rcache *c) {
  rcache__async *a = atomic_exchange(&c->async, NULL);
  if (!a) return;
  close_fds(a);
  /* our copies of the loop connection's descriptors; the parent's stay open and untouched */
  if (a->lconn) close(a->lconn->sock.fd);
  if (a->lnew) close(a->lnew->sock.fd);
}

/* ---- get_or_set: the loader on the loop --------------------------------------------------- */

/* Hands op's load to the loop and waits for rcache_load_done (or close). Returns the load with
 * the worker's reference once it is done, or NULL when op is no longer wanted (expired, closed;
 * then the loader, which may still finish it, has the only reference). */
static rcache_load *load_wait(aop *op) {
  rcache__async *a = op->a;
  rcache_load *ld = rcache__calloc(1, sizeof *ld);
  if (!ld) return NULL;
  if (op->k->load == L_TAGGED && !(ld->tags = rcache__tags_new())) {
    rcache__free(ld);
    return NULL;
  }
  pthread_mutex_init(&ld->mu, NULL);
  rcache__wakeup_init(&ld->w);
  ld->refs = 2;
  ld->op = op;
  ld->novalue = op->k->load == L_OBJ;
  pthread_mutex_lock(&a->mu);
  if (op->state == EXPIRED || a->closing) {
    pthread_mutex_unlock(&a->mu);
    ld->refs = 1;
    load_unref(ld);
    return NULL;
  }
  op->ld = ld;
  int64_t was = op->deadline_us;
  op->deadline_us = INT64_MAX;            /* the loader's time is the application's */
  if (was <= a->min_dl) min_recompute(a); /* on a worker: the loop's timer stays exact */
  bool was_empty = !a->rhead && !a->lhead;
  ld->next = a->lhead;
  a->lhead = ld;
  pthread_mutex_unlock(&a->mu);
  if (was_empty) wake_loop(a);

  pthread_mutex_lock(&ld->mu);
  while (!ld->done && !ld->abandoned) {
    rcache__wakeup_arm(&ld->w);
    pthread_mutex_unlock(&ld->mu);
    rcache__wakeup_wait(&ld->w, INT64_MAX);
    pthread_mutex_lock(&ld->mu);
  }
  bool done = ld->done; /* abandoned and not done: the loader may still write ld */
  pthread_mutex_unlock(&ld->mu);

  pthread_mutex_lock(&a->mu);
  op->ld = NULL;
  bool rearm = false;
  if (op->state == RUNNING) { /* the store that follows: a round trip's deadline */
    op->deadline_us = rcache__now_us() + a->budget_us;
    rearm = op->deadline_us < a->min_dl;
    if (rearm) a->min_dl = op->deadline_us;
  }
  pthread_mutex_unlock(&a->mu);
  if (rearm) wake_loop(a); /* its timer may wait for nothing (rcache_async_timeout_ms) */
  if (done) return ld;
  load_unref(ld);
  return NULL;
}

void rcache_load_done(rcache_load *ld, rcache_status s, rcache_value *v) {
  if (!ld) {
    rcache_value_free(v);
    return;
  }
  pthread_mutex_lock(&ld->mu);
  if (!ld->done) {
    ld->done = true;
    bool ok = s == RCACHE_OK && (v || ld->novalue);
    ld->s = ok ? RCACHE_OK : (s == RCACHE_OK ? RCACHE_ELOADER : s);
    if (v && ok && !ld->novalue) {
      ld->v = *v;
      *v = (rcache_value){0};
    }
    rcache__wakeup_set(&ld->w, 1);
  }
  pthread_mutex_unlock(&ld->mu);
  rcache__wakeup_kick(&ld->w); /* (ld lives on: our reference) */
  rcache_value_free(v);
  load_unref(ld);
}

void rcache_load_done_json(rcache_load *ld, json_t *v) {
  if (!ld) {
    if (v) json_decref(v);
    return;
  }
  pthread_mutex_lock(&ld->mu);
  if (!ld->done) {
    ld->done = true;
    ld->s = v ? RCACHE_OK : RCACHE_ELOADER;
    ld->j = v;
    v = NULL;
    rcache__wakeup_set(&ld->w, 1);
  }
  pthread_mutex_unlock(&ld->mu);
  rcache__wakeup_kick(&ld->w);
  if (v) json_decref(v);
  load_unref(ld);
}

/* A done load's bytes into *out (an empty value when it gave none); drops the worker's ref. */
static rcache_status take_bytes(rcache_load *ld, rcache_value *out) {
  rcache_status s = ld->s;
  if (s == RCACHE_OK && ld->v.data) {
    *out = ld->v;
    ld->v = (rcache_value){0};
  } else if (s == RCACHE_OK && !ld->j) {
    out->data = NULL; /* an empty value */
    out->len = 0;
  } else if (s == RCACHE_OK) {
    s = RCACHE_ELOADER; /* rcache_load_done_json for a bytes load */
  }
  load_unref(ld);
  return s;
}

static rcache_status load_bytes(void *ud, rcache_value *out) {
  rcache_load *ld = load_wait(ud);
  return ld ? take_bytes(ld, out) : RCACHE_ELOADER;
}

/* The tags the loader added on the loop go to the blocking call's set (it stamps them). */
static rcache_status load_tagged(void *ud, rcache_value *out, rcache_tags *tags) {
  rcache_load *ld = load_wait(ud);
  if (!ld) return RCACHE_ELOADER;
  rcache__tags_move(tags, ld->tags);
  return take_bytes(ld, out);
}

/* obj is op->obj, filled by the loader on the loop; the blocking call encodes it. */
static rcache_status load_obj(void *ud, void *obj) {
  (void)obj;
  rcache_load *ld = load_wait(ud);
  if (!ld) return RCACHE_ELOADER;
  rcache_status s = ld->s;
  load_unref(ld);
  return s;
}

static json_t *load_json(void *ud) {
  rcache_load *ld = load_wait(ud);
  if (!ld) return NULL;
  json_t *j = ld->s == RCACHE_OK ? ld->j : NULL;
  if (j) ld->j = NULL;
  load_unref(ld);
  return j;
}

/* A deletion's progress after each batch (on its worker): the deadline moves on by a batch, and
 * an operation that expired or is closed stops deleting. */
static bool batch_done(uint64_t deleted, void *ud) {
  aop *op = ud;
  rcache__async *a = op->a;
  pthread_mutex_lock(&a->mu);
  bool go = op->state == RUNNING && !a->closing;
  if (go) {
    op->seen = deleted;
    op->deadline_us = rcache__now_us() + budget_of(a, op->k); /* later: min_dl stays early */
  }
  pthread_mutex_unlock(&a->mu);
  return go;
}

/* set_obj_async encodes in the starting call (obj may go then); on the worker, rcache_set_obj
 * gets that encoding back from this codec, so its statuses are the blocking call's. */
static rcache_status replay_encode(const void *obj, rcache_value *out, void *ud) {
  (void)obj;
  aop *op = ud;
  *out = op->in;
  op->in = (rcache_value){0};
  return op->pre;
}

static rcache_status never_decode(const char *data, size_t len, void *obj, void *ud) {
  (void)data, (void)len, (void)obj, (void)ud;
  return RCACHE_EDECODE; /* rcache_set_obj never decodes */
}

/* get_obj and get_or_set_obj: the caller's object is the caller's again once its callback has
 * run (by the deadline, or rcache_close), so the worker enters the caller's codec (which reads or
 * writes obj) only while the operation is still RUNNING, marked busy meanwhile: expire and close
 * complete it only after. */
static bool obj_enter(aop *op) {
  rcache__async *a = op->a;
  pthread_mutex_lock(&a->mu);
  bool ok = op->state == RUNNING && !a->closing;
  op->busy = ok;
  pthread_mutex_unlock(&a->mu);
  return ok;
}

static void obj_leave(aop *op) {
  rcache__async *a = op->a;
  pthread_mutex_lock(&a->mu);
  op->busy = false;
  bool late = op->deadline_us <= rcache__now_us();
  if (op->deadline_us < a->min_dl) a->min_dl = op->deadline_us; /* expire may have skipped it */
  if (a->closing) pthread_cond_broadcast(&a->cv);               /* close waits */
  pthread_mutex_unlock(&a->mu);
  if (late) wake_loop(a);
}

/* Refused, the decoder answers OK without touching obj: the operation has completed, its
 * worker's result goes nowhere, and a failure would make rcache_get_or_set_obj take the value
 * for undecodable and load again. A refused encoder fails: nothing is stored. */
static rcache_status guarded_decode(const char *data, size_t len, void *obj, void *ud) {
  aop *op = ud;
  if (!obj_enter(op)) return RCACHE_OK; /* completed: obj is not ours */
  rcache_status s = op->ucodec.decode(data, len, obj, op->ucodec.ud);
  obj_leave(op);
  return s;
}

static rcache_status guarded_encode(const void *obj, rcache_value *out, void *ud) {
  aop *op = ud;
  if (!obj_enter(op)) return RCACHE_EUNAVAILABLE;
  rcache_status s = op->ucodec.encode(obj, out, op->ucodec.ud);
  obj_leave(op);
  return s;
}

/* ---- the kinds: one blocking call each ---------------------------------------------------- */

#define RUN(name, body)                                                                            \
  static void run_##name(rcache *c, aop *op) {                                                     \
    op->s = body;                                                                                  \
  }
RUN(get, rcache_get(c, op->key, &op->v))
RUN(set, rcache_set(c, op->key, op->in.data, op->in.len, op->y))
RUN(delete, rcache_delete(c, op->key))
RUN(get_or_set, rcache_get_or_set(c, op->key, op->y, load_bytes, op, &op->v))
RUN(incr, rcache_incr(c, op->key, op->x, &op->i))
RUN(decr, rcache_decr(c, op->key, op->x, &op->i))
RUN(incr_expire, rcache_incr_expire(c, op->key, op->x, op->y, &op->i))
RUN(rate_limit, rcache_rate_limit(c, op->key, op->x, op->y, &op->b, &op->i))
RUN(exists, rcache_exists(c, op->key, &op->b))
RUN(ttl, rcache_ttl(c, op->key, &op->i))
RUN(get_many, rcache_get_many(c, (const char *const *)op->keys, op->n, op->vals, op->sts))
RUN(set_many, rcache_set_many(c, (const char *const *)op->keys, op->invals, op->n, op->y))
RUN(get_str, rcache_get_str(c, op->key, &op->str))
RUN(get_i64, rcache_get_i64(c, op->key, &op->i))
RUN(set_i64, rcache_set_i64(c, op->key, op->x, op->y))
RUN(get_double, rcache_get_double(c, op->key, &op->d))
RUN(set_double, rcache_set_double(c, op->key, op->dx, op->y))
RUN(get_json, rcache_get_json(c, op->key, &op->j))
RUN(set_json, rcache_set_json(c, op->key, op->jin, op->y))
RUN(get_or_set_json, rcache_get_or_set_json(c, op->key, op->y, load_json, op, &op->j))
#define TAGS(op) (const char *const *)(op)->tags, (op)->ntags
RUN(set_tagged, rcache_set_tagged(c, op->key, op->in.data, op->in.len, op->y, TAGS(op)))
RUN(get_tagged, rcache_get_tagged(c, op->key, TAGS(op), &op->v))
RUN(get_or_set_tagged,
    rcache_get_or_set_tagged(c, op->key, op->y, TAGS(op), load_tagged, op, &op->v))
RUN(invalidate_tag, rcache_invalidate_tag(c, op->key))
RUN(clear, rcache_clear(c))
RUN(set_json_tagged, rcache_set_json_tagged(c, op->key, op->jin, op->y, TAGS(op)))
RUN(get_json_tagged, rcache_get_json_tagged(c, op->key, TAGS(op), &op->j))
RUN(get_or_set_json_tagged,
    rcache_get_or_set_json_tagged(c, op->key, op->y, TAGS(op), load_json, op, &op->j))
#undef TAGS
RUN(set_obj, rcache_set_obj(c, op->key, &op->codec, NULL, op->y))
RUN(get_obj, rcache_get_obj(c, op->key, &op->codec, op->obj))
RUN(get_or_set_obj, rcache_get_or_set_obj(c, op->key, op->y, &op->codec, load_obj, op, op->obj))
RUN(delete_prefix, rcache_delete_prefix_progress(c, op->key, batch_done, op, &op->u))
RUN(delete_pattern, rcache_delete_pattern_progress(c, op->key, batch_done, op, &op->u))
RUN(health_check, rcache_health_check(c, op->h))
#undef RUN

/* name, how its result reaches the callback, its loader, whether its deadline is per batch */
#define KIND(name, sh, ld, per_batch)                                                              \
  static const kind K_##name = {.run = run_##name, .shape = sh, .load = ld, .batches = per_batch};
/* one the loop drives (see "the loop's own I/O") */
#define KIND_W(name, sh)                                                                           \
  static const kind K_##name = {.run = run_##name, .shape = sh, .wire = &W_##name};
KIND_W(get, S_VALUE)
KIND_W(set, S_STATUS)
KIND_W(delete, S_STATUS)
KIND(get_or_set, S_VALUE, L_VALUE, false)
KIND_W(incr, S_INT)
KIND_W(decr, S_INT)
KIND(incr_expire, S_INT, L_NONE, false)
KIND(rate_limit, S_RATE, L_NONE, false)
KIND(exists, S_BOOL, L_NONE, false)
KIND(ttl, S_INT, L_NONE, false)
KIND(get_many, S_MANY, L_NONE, false)
KIND(set_many, S_STATUS, L_NONE, false)
KIND(get_str, S_STR, L_NONE, false)
KIND(get_i64, S_INT, L_NONE, false)
KIND(set_i64, S_STATUS, L_NONE, false)
KIND(get_double, S_DOUBLE, L_NONE, false)
KIND(set_double, S_STATUS, L_NONE, false)
KIND(get_json, S_JSON, L_NONE, false)
KIND(set_json, S_STATUS, L_NONE, false)
KIND(get_or_set_json, S_JSON, L_VALUE, false)
KIND(set_tagged, S_STATUS, L_NONE, false)
KIND(get_tagged, S_VALUE, L_NONE, false)
KIND(get_or_set_tagged, S_VALUE, L_TAGGED, false)
KIND(invalidate_tag, S_STATUS, L_NONE, false)
KIND(clear, S_STATUS, L_NONE, false)
KIND(set_json_tagged, S_STATUS, L_NONE, false)
KIND(get_json_tagged, S_JSON, L_NONE, false)
KIND(get_or_set_json_tagged, S_JSON, L_VALUE, false)
KIND(set_obj, S_STATUS, L_NONE, false)
KIND(get_obj, S_STATUS, L_NONE, false)
KIND(get_or_set_obj, S_STATUS, L_OBJ, false)
KIND(delete_prefix, S_COUNT, L_NONE, true)
KIND(delete_pattern, S_COUNT, L_NONE, true)
KIND(health_check, S_HEALTH, L_NONE, false)
#undef KIND
#undef KIND_W

/* ---- the starting calls ------------------------------------------------------------------- */

/* Opens a starting call: checks c and key, makes op (named `op`) or returns the immediate
 * status. */
#define START(c, k, key, cb, ud)                                                                   \
  rcache__err_clear();                                                                             \
  if (!(c)) return rcache__einval(NULL, "handle is NULL");                                         \
  if (!(key)) return rcache__einval((c), "key is NULL");                                           \
  rcache__enter(c);                                                                                \
  aop *op = op_new((c), (k), (key), (void (*)(void))(cb), (ud));                                   \
  if (!op) return rcache__done((c), RCACHE_ENOMEM)

/* A starting call that needs nothing but the key and up to two integers. */
/* The loop's own I/O for op when its kind has it and the connection takes it, else a worker. */
static rcache_status start_op(rcache *c, aop *op) {
  rcache__async *a = op->k->wire ? get_async(c) : NULL;
  if (a && loop_start(c, a, op)) return RCACHE_OK;
  return submit(c, op);
}

static rcache_status simple(rcache *c, const kind *k, const char *key, void (*cb)(void), void *ud,
                            int64_t x, int64_t y) {
  START(c, k, key, cb, ud);
  op->x = x;
  op->y = y;
  return start_op(c, op);
}
#define CB(f) ((void (*)(void))(f))

rcache_status rcache_get_async(rcache *c, const char *key, rcache_async_value_fn cb, void *ud) {
  START(c, &K_get, key, cb, ud);
  return start_op(c, op);
}

rcache_status rcache_delete_async(rcache *c, const char *key, rcache_async_fn cb, void *ud) {
  return simple(c, &K_delete, key, CB(cb), ud, 0, 0);
}

rcache_status rcache_incr_async(rcache *c, const char *key, int64_t by, rcache_async_int_fn cb,
                                void *ud) {
  return simple(c, &K_incr, key, CB(cb), ud, by, 0);
}

rcache_status rcache_decr_async(rcache *c, const char *key, int64_t by, rcache_async_int_fn cb,
                                void *ud) {
  return simple(c, &K_decr, key, CB(cb), ud, by, 0);
}

rcache_status rcache_incr_expire_async(rcache *c, const char *key, int64_t by, int64_t ttl_s,
                                       rcache_async_int_fn cb, void *ud) {
  return simple(c, &K_incr_expire, key, CB(cb), ud, by, ttl_s);
}

rcache_status rcache_rate_limit_async(rcache *c, const char *key, int64_t limit, int64_t window_s,
                                      rcache_async_rate_fn cb, void *ud) {
  return simple(c, &K_rate_limit, key, CB(cb), ud, limit, window_s);
}

rcache_status rcache_exists_async(rcache *c, const char *key, rcache_async_bool_fn cb, void *ud) {
  return simple(c, &K_exists, key, CB(cb), ud, 0, 0);
}

rcache_status rcache_ttl_async(rcache *c, const char *key, rcache_async_int_fn cb, void *ud) {
  return simple(c, &K_ttl, key, CB(cb), ud, 0, 0);
}

rcache_status rcache_get_str_async(rcache *c, const char *key, rcache_async_str_fn cb, void *ud) {
  return simple(c, &K_get_str, key, CB(cb), ud, 0, 0);
}

rcache_status rcache_get_i64_async(rcache *c, const char *key, rcache_async_int_fn cb, void *ud) {
  return simple(c, &K_get_i64, key, CB(cb), ud, 0, 0);
}

rcache_status rcache_set_i64_async(rcache *c, const char *key, int64_t v, int64_t ttl_s,
                                   rcache_async_fn cb, void *ud) {
  return simple(c, &K_set_i64, key, CB(cb), ud, v, ttl_s);
}

rcache_status rcache_get_double_async(rcache *c, const char *key, rcache_async_double_fn cb,
                                      void *ud) {
  return simple(c, &K_get_double, key, CB(cb), ud, 0, 0);
}

rcache_status rcache_get_json_async(rcache *c, const char *key, rcache_async_json_fn cb, void *ud) {
  return simple(c, &K_get_json, key, CB(cb), ud, 0, 0);
}

rcache_status rcache_set_double_async(rcache *c, const char *key, double v, int64_t ttl_s,
                                      rcache_async_fn cb, void *ud) {
  START(c, &K_set_double, key, cb, ud);
  op->dx = v;
  op->y = ttl_s;
  return submit(c, op);
}

/* A copy of len bytes (NUL-terminated, as values are); data may be NULL when len is 0. */
static bool copy_bytes(rcache_value *dst, const void *data, size_t len) {
  if (!data) return true; /* the blocking call judges a NULL with len > 0 */
  dst->data = rcache__malloc(len + 1);
  if (!dst->data) return false;
  memcpy(dst->data, data, len);
  dst->data[len] = '\0';
  dst->len = len;
  return true;
}

/* op's value: copy_bytes, in op itself when it is short. */
static bool copy_in(aop *op, const void *data, size_t len) {
  if (len >= sizeof op->vbuf) return copy_bytes(&op->in, data, len);
  op->in.data = memcpy(op->vbuf, data, len);
  op->vbuf[len] = '\0';
  op->in.len = len;
  return true;
}

/* op's value: a copy of data (RCACHE_OK), or op is freed and the immediate status returned. */
static rcache_status take_data(rcache *c, aop *op, const void *data, size_t len) {
  if (!data && len > 0) {
    free_op(op);
    return rcache__einval(c, "data is NULL");
  }
  if (!copy_in(op, data ? data : "", len)) {
    free_op(op);
    return rcache__done(c, RCACHE_ENOMEM);
  }
  return RCACHE_OK;
}

rcache_status rcache_set_async(rcache *c, const char *key, const void *data, size_t len,
                               int64_t ttl_s, rcache_async_fn cb, void *ud) {
  START(c, &K_set, key, cb, ud);
  op->y = ttl_s;
  rcache_status s = take_data(c, op, data, len);
  return s != RCACHE_OK ? s : start_op(c, op);
}

rcache_status rcache_set_str_async(rcache *c, const char *key, const char *s, int64_t ttl_s,
                                   rcache_async_fn cb, void *ud) {
  if (!s) return rcache__einval(c, "s is NULL");
  return rcache_set_async(c, key, s, strlen(s), ttl_s, cb, ud);
}

/* Copies n strings (NULL when the copy fails); n may be 0. */
static char **copy_strs(const char *const *s, size_t n) {
  char **out = rcache__calloc(n ? n : 1, sizeof *out);
  for (size_t i = 0; out && i < n; i++)
    if (!(out[i] = rcache__strdup(s[i]))) {
      while (i > 0)
        rcache__free(out[--i]);
      rcache__free(out);
      return NULL;
    }
  return out;
}

/* Copies the tags (the blocking call judges them, but NULLs cannot be copied) and submits op;
 * on failure op is freed and the immediate status returned. */
static rcache_status submit_tagged(rcache *c, aop *op, const char *const *tags, size_t ntags) {
  const char *bad = ntags && !tags ? "tags is NULL" : NULL;
  for (size_t i = 0; !bad && i < ntags; i++)
    if (!tags[i]) bad = "a tag is NULL";
  if (bad) {
    free_op(op);
    return rcache__einval(c, bad);
  }
  if (!(op->tags = copy_strs(tags, ntags))) {
    free_op(op);
    return rcache__done(c, RCACHE_ENOMEM);
  }
  op->ntags = ntags;
  return submit(c, op);
}

/* get_or_set and its forms: the loader (of the kind's type) runs on the loop (load_wait). */
#define START_LOAD(c, k, key, ttl_s, load, load_ud, cb, ud)                                        \
  if (!(load)) return rcache__einval((c), "load is NULL");                                         \
  START(c, k, key, cb, ud);                                                                        \
  op->y = (ttl_s);                                                                                 \
  op->loader = CB(load);                                                                           \
  op->lud = (load_ud)

rcache_status rcache_get_or_set_async(rcache *c, const char *key, int64_t ttl_s,
                                      rcache_async_loader_fn load, void *lud,
                                      rcache_async_value_fn cb, void *ud) {
  START_LOAD(c, &K_get_or_set, key, ttl_s, load, lud, cb, ud);
  return submit(c, op);
}

rcache_status rcache_get_or_set_json_async(rcache *c, const char *key, int64_t ttl_s,
                                           rcache_async_loader_fn load, void *lud,
                                           rcache_async_json_fn cb, void *ud) {
  START_LOAD(c, &K_get_or_set_json, key, ttl_s, load, lud, cb, ud);
  return submit(c, op);
}

/* op's JSON value: a copy of our own (the caller may change or free v, and jansson's counts are
 * not ours), or op is freed and the immediate status returned. */
static rcache_status take_json(rcache *c, aop *op, const json_t *v) {
  if (!(op->jin = json_deep_copy(v))) {
    free_op(op);
    return rcache__done(c, RCACHE_ENOMEM);
  }
  return RCACHE_OK;
}

rcache_status rcache_set_json_async(rcache *c, const char *key, const json_t *v, int64_t ttl_s,
                                    rcache_async_fn cb, void *ud) {
  if (!v) return rcache__einval(c, "v is NULL");
  START(c, &K_set_json, key, cb, ud);
  op->y = ttl_s;
  rcache_status s = take_json(c, op, v);
  return s != RCACHE_OK ? s : submit(c, op);
}

/* ---- tags ---- */

rcache_status rcache_set_tagged_async(rcache *c, const char *key, const void *data, size_t len,
                                      int64_t ttl_s, const char *const *tags, size_t ntags,
                                      rcache_async_fn cb, void *ud) {
  START(c, &K_set_tagged, key, cb, ud);
  op->y = ttl_s;
  rcache_status s = take_data(c, op, data, len);
  return s != RCACHE_OK ? s : submit_tagged(c, op, tags, ntags);
}

rcache_status rcache_get_tagged_async(rcache *c, const char *key, const char *const *tags,
                                      size_t ntags, rcache_async_value_fn cb, void *ud) {
  START(c, &K_get_tagged, key, cb, ud);
  return submit_tagged(c, op, tags, ntags);
}

rcache_status rcache_get_or_set_tagged_async(rcache *c, const char *key, int64_t ttl_s,
                                             const char *const *tags, size_t ntags,
                                             rcache_async_tagged_loader_fn load, void *lud,
                                             rcache_async_value_fn cb, void *ud) {
  START_LOAD(c, &K_get_or_set_tagged, key, ttl_s, load, lud, cb, ud);
  return submit_tagged(c, op, tags, ntags);
}

rcache_status rcache_invalidate_tag_async(rcache *c, const char *tag, rcache_async_fn cb,
                                          void *ud) {
  return simple(c, &K_invalidate_tag, tag, CB(cb), ud, 0, 0);
}

rcache_status rcache_clear_async(rcache *c, rcache_async_fn cb, void *ud) {
  return simple(c, &K_clear, "", CB(cb), ud, 0, 0);
}

rcache_status rcache_set_json_tagged_async(rcache *c, const char *key, const json_t *v,
                                           int64_t ttl_s, const char *const *tags, size_t ntags,
                                           rcache_async_fn cb, void *ud) {
  if (!v) return rcache__einval(c, "v is NULL");
  START(c, &K_set_json_tagged, key, cb, ud);
  op->y = ttl_s;
  rcache_status s = take_json(c, op, v);
  return s != RCACHE_OK ? s : submit_tagged(c, op, tags, ntags);
}

rcache_status rcache_get_json_tagged_async(rcache *c, const char *key, const char *const *tags,
                                           size_t ntags, rcache_async_json_fn cb, void *ud) {
  START(c, &K_get_json_tagged, key, cb, ud);
  return submit_tagged(c, op, tags, ntags);
}

rcache_status rcache_get_or_set_json_tagged_async(rcache *c, const char *key, int64_t ttl_s,
                                                  const char *const *tags, size_t ntags,
                                                  rcache_async_loader_fn load, void *lud,
                                                  rcache_async_json_fn cb, void *ud) {
  START_LOAD(c, &K_get_or_set_json_tagged, key, ttl_s, load, lud, cb, ud);
  return submit_tagged(c, op, tags, ntags);
}

/* ---- codecs: the codec is copied, obj is the caller's ---- */

static bool codec_ok(const rcache_codec *codec) {
  return codec && codec->encode && codec->decode;
}

/* get_obj and get_or_set_obj: op keeps the codec and obj, which its worker fills. */
static rcache_status submit_obj(rcache *c, aop *op, const rcache_codec *codec, void *obj) {
  if (!codec_ok(codec)) {
    free_op(op);
    return rcache__einval(c, "codec is NULL or incomplete");
  }
  op->ucodec = *codec;
  op->codec = (rcache_codec){.encode = guarded_encode, .decode = guarded_decode, .ud = op};
  op->obj = obj;
  return submit(c, op);
}

rcache_status rcache_set_obj_async(rcache *c, const char *key, const rcache_codec *codec,
                                   const void *obj, int64_t ttl_s, rcache_async_fn cb, void *ud) {
  START(c, &K_set_obj, key, cb, ud);
  if (!codec_ok(codec)) {
    free_op(op);
    return rcache__einval(c, "codec is NULL or incomplete");
  }
  op->y = ttl_s;
  op->pre = codec->encode(obj, &op->in, codec->ud); /* here: obj may go when we return */
  op->codec = (rcache_codec){.encode = replay_encode, .decode = never_decode, .ud = op};
  return submit(c, op);
}

rcache_status rcache_get_obj_async(rcache *c, const char *key, const rcache_codec *codec, void *obj,
                                   rcache_async_fn cb, void *ud) {
  START(c, &K_get_obj, key, cb, ud);
  return submit_obj(c, op, codec, obj);
}

rcache_status rcache_get_or_set_obj_async(rcache *c, const char *key, int64_t ttl_s,
                                          const rcache_codec *codec,
                                          rcache_async_obj_loader_fn load, void *lud, void *obj,
                                          rcache_async_fn cb, void *ud) {
  START_LOAD(c, &K_get_or_set_obj, key, ttl_s, load, lud, cb, ud);
  return submit_obj(c, op, codec, obj);
}

/* ---- deletions by prefix or pattern, health ---- */

rcache_status rcache_delete_prefix_async(rcache *c, const char *prefix, rcache_async_count_fn cb,
                                         void *ud) {
  return simple(c, &K_delete_prefix, prefix, CB(cb), ud, 0, 0);
}

rcache_status rcache_delete_pattern_async(rcache *c, const char *glob, rcache_async_count_fn cb,
                                          void *ud) {
  return simple(c, &K_delete_pattern, glob, CB(cb), ud, 0, 0);
}

rcache_status rcache_health_check_async(rcache *c, rcache_async_health_fn cb, void *ud) {
  START(c, &K_health_check, "", cb, ud);
  if (!(op->h = rcache__calloc(1, sizeof *op->h))) {
    free_op(op);
    return rcache__done(c, RCACHE_ENOMEM);
  }
  return submit(c, op);
}

/* The batches: keys (and values) copied, result arrays allocated here. */
static bool copy_keys(aop *op, const char *const *keys, size_t n) {
  op->n = n;
  return (op->keys = copy_strs(keys, n)) != NULL;
}

/* What a batch's arrays must hold to be copied: NULL only when empty. */
static const char *bad_batch(const char *const *keys, const rcache_value *vals, bool with_vals,
                             size_t n) {
  if (n && (!keys || (with_vals && !vals))) return "keys or vals is NULL";
  for (size_t i = 0; i < n; i++) {
    if (!keys[i]) return "a key is NULL";
    if (with_vals && !vals[i].data && vals[i].len) return "a value's data is NULL";
  }
  return NULL;
}

rcache_status rcache_get_many_async(rcache *c, const char *const *keys, size_t n,
                                    rcache_async_many_fn cb, void *ud) {
  const char *bad = bad_batch(keys, NULL, false, n);
  if (bad) return rcache__einval(c, bad);
  START(c, &K_get_many, "", cb, ud);
  if (!copy_keys(op, keys, n) || !(op->vals = rcache__calloc(n ? n : 1, sizeof *op->vals)) ||
      !(op->sts = rcache__calloc(n ? n : 1, sizeof *op->sts))) {
    free_op(op);
    return rcache__done(c, RCACHE_ENOMEM);
  }
  return submit(c, op);
}

rcache_status rcache_set_many_async(rcache *c, const char *const *keys, const rcache_value *vals,
                                    size_t n, int64_t ttl_s, rcache_async_fn cb, void *ud) {
  const char *bad = bad_batch(keys, vals, true, n);
  if (bad) return rcache__einval(c, bad);
  START(c, &K_set_many, "", cb, ud);
  op->y = ttl_s;
  bool ok = copy_keys(op, keys, n) && (op->invals = rcache__calloc(n ? n : 1, sizeof *vals));
  for (size_t i = 0; ok && i < n; i++)
    ok = copy_bytes(&op->invals[i], vals[i].data, vals[i].len);
  if (!ok) {
    free_op(op);
    return rcache__done(c, RCACHE_ENOMEM);
  }
  return submit(c, op);
}
