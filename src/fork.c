/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fork() and the library.
 *
 * Noticing it: a pthread_atfork child handler bumps a process-wide generation, and every
 * call compares it with its handle's (one relaxed atomic load). Chosen over caching
 * getpid(): glibc no longer caches the PID, so getpid() is a system call on every check,
 * and a PID can repeat in a grandchild once its grandparent has exited. The child's real
 * work happens on its first call (rcache.c), not in the handler, so a fork followed by exec
 * costs nothing.
 *
 * The gate: a child gets a copy of every lock as it was at the fork, and only the forking
 * thread. A background thread of ours (a prober, a listener, a worker...) caught inside the
 * allocator, OpenSSL or c-ares would leave one of their locks held for ever in the child,
 * which then hangs on its first allocation or handshake. So each background thread counts
 * as busy except while it waits (a poll(), a sleep, a condition variable: it holds nobody's
 * lock then), and the prepare handler waits, up to GATE_MAX_US, until none is busy; until
 * the fork is over, a waiting thread that wakes up waits for it to end. Busy stretches are
 * short (the I/O waits are not part of them), so a fork waits microseconds.
 *
 * memory:// stores: their data is the process's own memory, so a child gets a copy of every
 * shard as it was at the fork; one another thread (the application's, as often as not) was
 * in the middle of updating would be corrupt in the child. So, once the gate has let the
 * background threads go idle, the prepare handler also takes every shard lock of every store
 * (memory.c says why that cannot deadlock), which waits for the operations in progress
 * (microseconds: no I/O, no wait inside); the parent and child handlers release them. A
 * process without memory:// stores pays one uncontended mutex.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>

#include "internal.h"

_Atomic uint64_t rcache__fork_generation;

#define GATE_MAX_US 1000000 /* then fork anyway: never hang the application's fork() */

static _Atomic int busy;         /* background threads outside a wait */
static _Atomic bool forking;     /* between the prepare handler and the parent / child one */
static _Thread_local int bg;     /* 1 in a background thread of ours */
static _Thread_local int parked; /* nested waits of this thread */

static void pause_20us(void) { /* not rcache__sleep_us: that one parks */
  struct timespec ts = {0, 20000};
  nanosleep(&ts, NULL);
}

/* One more busy thread, once no fork is under way. */
static void enter_busy(void) {
  for (;;) {
    atomic_fetch_add(&busy, 1);
    if (!atomic_load(&forking)) return;
    atomic_fetch_sub(&busy, 1); /* a fork is under way: not now */
    while (atomic_load(&forking))
      pause_20us();
  }
}

/* A background thread counts busy from before it exists until it has been joined, so that
 * its start-up and its teardown (the C library's, a sanitizer's: they allocate) are never
 * cut by a fork. Most are joined by their owner (rcache__bg_join). One that runs a single
 * job (rcache__bg_run) queues itself when it ends and the next fork, spawn or
 * rcache__bg_wait joins it: its owner waits for the job, not the thread. */
typedef struct spawned {
  void *(*fn)(void *);
  void *arg;
  pthread_t self;
  _Atomic int *running; /* rcache__bg_run's: cleared once joined */
  struct spawned *next;
} spawned;

static pthread_mutex_t ended_mu = PTHREAD_MUTEX_INITIALIZER;
static spawned *ended; /* rcache__bg_run's threads that returned, not joined yet */

static void reap(void) {
  pthread_mutex_lock(&ended_mu);
  spawned *s = ended;
  ended = NULL;
  pthread_mutex_unlock(&ended_mu);
  while (s) {
    spawned *next = s->next;
    _Atomic int *running = s->running;
    pthread_join(s->self, NULL);
    rcache__free(s);
    atomic_fetch_sub(&busy, 1);
    atomic_store(running, 0); /* the last touch: its owner may free it now */
    s = next;
  }
}

static void *trampoline(void *arg) {
  spawned *s = arg;
  bg = 1; /* counted busy by its creator, from before it existed */
  void *r = s->fn(s->arg);
  bg = 0;
  if (!s->running) {
    rcache__free(s);
    return r; /* busy until rcache__bg_join */
  }
  pthread_mutex_lock(&ended_mu);
  s->next = ended;
  ended = s;
  pthread_mutex_unlock(&ended_mu);
  return r;
}

static int spawn(pthread_t *t, void *(*fn)(void *), void *arg, _Atomic int *running) {
  reap();
  spawned *s = rcache__calloc(1, sizeof *s); /* the thread (or reap) frees it */
  if (!s) return ENOMEM;
  s->fn = fn;
  s->arg = arg;
  s->running = running;
  if (running) atomic_store(running, 1);
  enter_busy(); /* not while a fork is under way: the new thread's start-up would be cut */
  /* s is the thread's from here on: one not run by rcache__bg_run may be over and s freed
   * before pthread_create returns; one that is cannot queue itself (ended_mu) before s->self
   * is written */
  pthread_t self;
  pthread_mutex_lock(&ended_mu);
  int rc = pthread_create(&self, NULL, trampoline, s);
  if (rc == 0 && running) s->self = self;
  pthread_mutex_unlock(&ended_mu);
  if (rc != 0) {
    atomic_fetch_sub(&busy, 1);
    if (running) atomic_store(running, 0);
    rcache__free(s);
    return rc;
  }
  if (t) *t = self;
  return 0;
}

int rcache__bg_spawn(pthread_t *t, void *(*fn)(void *), void *arg) {
  return spawn(t, fn, arg, NULL);
}

void rcache__bg_join(pthread_t t) {
  pthread_join(t, NULL);
  atomic_fetch_sub(&busy, 1);
}

int rcache__bg_run(void *(*fn)(void *), void *arg, _Atomic int *running) {
  return spawn(NULL, fn, arg, running);
}

void rcache__bg_wait(_Atomic int *running) {
  while (atomic_load(running)) { /* its job is over: it is queued or about to be */
    reap();
    if (atomic_load(running)) pause_20us();
  }
}

static void prepare(void) {
  atomic_store(&forking, true); /* seq_cst, against rcache__bg_unpark's check */
  int self = bg && !parked;     /* a callback of ours that forks (a log function) */
  for (int64_t until = rcache__now_us() + GATE_MAX_US; rcache__now_us() < until; pause_20us()) {
    reap();
    if (atomic_load(&busy) <= self) break;
  }
  rcache__memory_fork_hold(); /* after the gate: the sweeper holds no shard lock while parked */
}

static void parent(void) {
  rcache__memory_fork_release();
  atomic_store(&forking, false);
}

static void child(void) {
  rcache__memory_fork_release();
  atomic_fetch_add_explicit(&rcache__fork_generation, 1, memory_order_relaxed);
  atomic_store(&busy, 0); /* the child has no background thread: the forking one is ours
                             only inside a wait (parked), if at all */
  ended_mu = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER; /* plain stores, as the rest */
  ended = NULL; /* threads of the parent's (the bound ran out): not joinable here */
  atomic_store(&forking, false);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void install(void) {
  (void)pthread_atfork(prepare, parent, child); /* fails only without memory: unwatched */
}

void rcache__fork_watch(void) {
  pthread_once(&once, install);
}

void rcache__bg_park(void) {
  if (bg && parked++ == 0) atomic_fetch_sub(&busy, 1);
}

void rcache__bg_unpark(void) {
  if (bg && --parked == 0) enter_busy();
}

void rcache__cond_wait(pthread_cond_t *c, pthread_mutex_t *m) {
  rcache__bg_park();
  pthread_cond_wait(c, m);
  rcache__bg_unpark();
}

int rcache__cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *ts) {
  rcache__bg_park();
  int rc = pthread_cond_timedwait(c, m, ts);
  rcache__bg_unpark();
  return rc;
}

int rcache__poll(struct pollfd *fds, unsigned long n, int ms) {
  rcache__bg_park();
  int r = poll(fds, (nfds_t)n, ms);
  rcache__bg_unpark();
  return r;
}
