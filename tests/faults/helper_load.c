/* SPDX-License-Identifier: BSD-3-Clause */
/* The fault suite's load generator and log capture: see helper_load.h. */
#include "helper_load.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpu_wait.h"
#include "sanitizers.h"

#define LOAD_KEYS 64
#define LOAD_COUNTERS 8
#define LOAD_THINK_US                                                                              \
  300                          /* pause between calls: fallbacks are instant, threads must         \
                                  not starve the servers and the prober of the 2 cores */
#define LOAD_SLOT_US 100000    /* history resolution */
#define LOAD_SLOTS 1200        /* 120 s of history */
#define LOAD_MAX_VIOLATIONS 24 /* printed in detail */
#define LOAD_MAX_OVERRUNS 4096 /* remembered for the stall verdict */
#define LOAD_MAX_STALLS 4096

/* Under AddressSanitizer, a quarantine of 16 MiB instead of 256 (ASAN_OPTIONS may still
 * say otherwise). ASan keeps freed blocks in a quarantine, and the thread whose free()
 * makes it overflow releases a tenth of it there and then: with 256 MiB, ~25 MiB of small
 * blocks, which took that one thread 0.7-1.1 s on the 2-core machine under load. Traced
 * (2026-12-06): a refused rcache_set spent 1,090 ms between the end of its exchange and the
 * free() of its command buffer, an overrun of the library's deadline that was the
 * sanitizer's, invisible to the canary (the process was not stalled, one thread was).
 * faults_test_errors at load 8-10: 3 and 4 of 6 runs overran with the default, 0 of 6 with
 * 16 MiB and 0 of 6 without a quarantine; a freed block still waits for 16 MiB of other
 * frees before it is reused, so use-after-free is still caught. */
#ifdef TEST_ASAN
__attribute__((visibility("default"))) const char *__asan_default_options(void);
const char *__asan_default_options(void) {
  return "quarantine_size_mb=16";
}
#endif

int64_t load_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *load_op_name(int op) {
  static const char *names[] = {"get", "set", "get_or_set", "incr"};
  return op >= 0 && op < OP_N ? names[op] : "?";
}

static int status_slot(rcache_status s) {
  int i = (int)s + LOAD_STATUS_BIAS;
  return i < 0 ? 0 : i >= LOAD_STATUS_SLOTS ? LOAD_STATUS_SLOTS - 1 : i;
}

static uint32_t status_bit(rcache_status s) {
  return 1u << status_slot(s);
}

void load_options(rcache_options *o, logcap *log) {
  rcache_options_init(o);
  o->connect_timeout_ms = LOAD_CONNECT_TIMEOUT_MS;
  o->command_timeout_ms = LOAD_COMMAND_TIMEOUT_MS;
  o->reconnect_max_ms = LOAD_RECONNECT_MAX_MS;
  if (log) {
    o->log_fn = logcap_fn;
    o->log_ud = log;
    o->log_level = RCACHE_LOG_INFO; /* "available again" may be logged at info */
  }
}

/* ---- the load -------------------------------------------------------------------------------- */

typedef struct violation {
  int op;
  rcache_status status;
  double ms;
  double at_s; /* since the load started */
  char what[96];
} violation;

typedef struct worker {
  load *l;
  int id;
  pthread_t th;
  int sched_fd;                  /* its schedstat (cpu_wait.h), or -1 */
  _Atomic int64_t in_call_since; /* 0 when between calls */
  _Atomic int op;
} worker;

struct load {
  rcache *c;
  char tag[64];
  int64_t t0;
  _Atomic int stop;
  _Atomic uint32_t allowed[OP_N];
  _Atomic int deadline_ms[OP_N];
  _Atomic uint64_t by_status[OP_N][LOAD_STATUS_SLOTS];
  _Atomic uint64_t over_deadline, bad_status, bad_value, remote_ok, loader_calls;
  _Atomic uint64_t shared; /* monitor samples that saw calls sharing a connection */
  _Atomic uint64_t max_us[OP_N];
  _Atomic int64_t last_remote_ok;
  _Atomic uint32_t ok_hist[LOAD_SLOTS], fb_hist[LOAD_SLOTS];
  pthread_mutex_t vmu;
  violation v[LOAD_MAX_VIOLATIONS];
  int nv;
  worker w[LOAD_THREADS];
  pthread_t monitor, canary;
  /* over-deadline calls and canary stalls, under vmu */
  struct {
    int64_t start, end, deadline_us;
    int64_t runnable_us; /* of it, the calling thread waited for a CPU */
  } overrun[LOAD_MAX_OVERRUNS];
  int noverrun;
  struct {
    int64_t from, to;
  } stall[LOAD_MAX_STALLS];
  int nstall;
};

static void record_violation(load *l, int op, rcache_status s, int64_t us, int64_t start,
                             const char *what) {
  pthread_mutex_lock(&l->vmu);
  if (l->nv < LOAD_MAX_VIOLATIONS) {
    violation *v = &l->v[l->nv++];
    v->op = op;
    v->status = s;
    v->ms = (double)us / 1000.0;
    v->at_s = (double)(start - l->t0) / 1e6;
    snprintf(v->what, sizeof v->what, "%s", what);
  }
  pthread_mutex_unlock(&l->vmu);
}

/* A value for key: "v|<key>|<total length>|" then filler up to that length. */
static char *make_value(const char *key, size_t len, size_t *out_len) {
  char head[160];
  int h = snprintf(head, sizeof head, "v|%s|%06zu|", key, len);
  if (h < 0 || (size_t)h > len) len = (size_t)h;
  /* re-render with the final length (same width) */
  h = snprintf(head, sizeof head, "v|%s|%06zu|", key, len);
  char *v = malloc(len + 1);
  if (!v) abort();
  memcpy(v, head, (size_t)h);
  for (size_t i = (size_t)h; i < len; i++)
    v[i] = (char)('a' + i % 26);
  v[len] = '\0';
  *out_len = len;
  return v;
}

static bool value_ok(const char *key, const rcache_value *v) {
  if (!v->data || v->data[v->len] != '\0') return false;
  char head[160];
  int h = snprintf(head, sizeof head, "v|%s|%06zu|", key, v->len);
  if (h < 0 || v->len < (size_t)h || memcmp(v->data, head, (size_t)h) != 0) return false;
  for (size_t i = (size_t)h; i < v->len; i++) {
    if (v->data[i] != (char)('a' + i % 26)) return false;
  }
  return true;
}

typedef struct load_ud {
  load *l;
  const char *key;
  size_t len;
} load_ud;

static rcache_status loader(void *ud, rcache_value *out) {
  load_ud *u = ud;
  atomic_fetch_add_explicit(&u->l->loader_calls, 1, memory_order_relaxed);
  out->data = make_value(u->key, u->len, &out->len);
  return RCACHE_OK;
}

static size_t pick_len(unsigned *seed) {
  static const size_t lens[] = {40, 200, 1500, 9000};
  return lens[rand_r(seed) % 4];
}

static bool used_cache(int op, rcache_status s) {
  if (op == OP_GET) return s == RCACHE_OK || s == RCACHE_MISS;
  if (op == OP_GOS) return false; /* OK whether or not the cache answered */
  return s == RCACHE_OK;
}

static void hist_add(_Atomic uint32_t *h, int64_t t0, int64_t at) {
  int64_t i = (at - t0) / LOAD_SLOT_US;
  if (i >= 0 && i < LOAD_SLOTS) atomic_fetch_add_explicit(&h[i], 1, memory_order_relaxed);
}

static void one_call(load *l, worker *w, unsigned *seed) {
  char key[128];
  int r = rand_r(seed) % 100;
  int op = r < 40 ? OP_GET : r < 65 ? OP_SET : r < 85 ? OP_GOS : OP_INCR;
  if (op == OP_INCR) {
    snprintf(key, sizeof key, "%s:n:%d", l->tag, rand_r(seed) % LOAD_COUNTERS);
  } else {
    snprintf(key, sizeof key, "%s:k:%d", l->tag, rand_r(seed) % LOAD_KEYS);
  }
  size_t len = pick_len(seed), vlen = 0;
  char *val = op == OP_SET ? make_value(key, len, &vlen) : NULL;
  rcache_value v = {NULL, 0};
  int64_t n = -1;
  load_ud ud = {l, key, len};
  uint32_t allowed = atomic_load(&l->allowed[op]);
  int64_t runnable = cpu_wait_us(&w->sched_fd);
  int64_t start = load_now_us();
  atomic_store(&w->op, op);
  atomic_store(&w->in_call_since, start);
  rcache_status s = RCACHE_EINVAL;
  switch (op) {
  case OP_GET:
    s = rcache_get(l->c, key, &v);
    break;
  case OP_SET:
    s = rcache_set(l->c, key, val, vlen, 60);
    break;
  case OP_GOS:
    s = rcache_get_or_set(l->c, key, 60, loader, &ud, &v);
    break;
  case OP_INCR:
    s = rcache_incr(l->c, key, 1, &n);
    break;
  }
  int64_t end = load_now_us(), us = end - start;
  atomic_store(&w->in_call_since, 0);
  runnable = cpu_wait_us(&w->sched_fd) - runnable;
  allowed |= atomic_load(&l->allowed[op]);

  atomic_fetch_add_explicit(&l->by_status[op][status_slot(s)], 1, memory_order_relaxed);
  uint64_t prev = atomic_load_explicit(&l->max_us[op], memory_order_relaxed);
  while ((uint64_t)us > prev &&
         !atomic_compare_exchange_weak(&l->max_us[op], &prev, (uint64_t)us)) {
  }
  int64_t deadline_us = (int64_t)atomic_load(&l->deadline_ms[op]) * 1000;
  if (us > deadline_us) {
    atomic_fetch_add(&l->over_deadline, 1);
    pthread_mutex_lock(&l->vmu);
    if (l->noverrun < LOAD_MAX_OVERRUNS) {
      l->overrun[l->noverrun].start = start;
      l->overrun[l->noverrun].end = end;
      l->overrun[l->noverrun].deadline_us = deadline_us;
      l->overrun[l->noverrun].runnable_us = runnable;
      l->noverrun++;
    }
    pthread_mutex_unlock(&l->vmu);
    record_violation(l, op, s, us, start, "over deadline");
  }
  if (!(allowed & status_bit(s))) {
    atomic_fetch_add(&l->bad_status, 1);
    record_violation(l, op, s, us, start, rcache_errmsg(l->c));
  }
  bool bad = false;
  if ((op == OP_GET || op == OP_GOS) && s == RCACHE_OK && !value_ok(key, &v)) bad = true;
  if ((op == OP_GET || op == OP_GOS) && s != RCACHE_OK && (v.data || v.len)) bad = true;
  if (op == OP_INCR && s == RCACHE_OK && n < 1) bad = true;
  if (op == OP_INCR && s != RCACHE_OK && n != 0) bad = true;
  if (bad) {
    char what[96];
    snprintf(what, sizeof what, "wrong value (len %zu, n %lld): %.40s", v.len, (long long)n,
             v.data ? v.data : "(null)");
    atomic_fetch_add(&l->bad_value, 1);
    record_violation(l, op, s, us, start, what);
  }
  if (used_cache(op, s)) {
    atomic_fetch_add_explicit(&l->remote_ok, 1, memory_order_relaxed);
    int64_t last = atomic_load(&l->last_remote_ok);
    while (end > last && !atomic_compare_exchange_weak(&l->last_remote_ok, &last, end)) {
    }
    hist_add(l->ok_hist, l->t0, end);
  } else if (s == RCACHE_EUNAVAILABLE || op == OP_GOS) {
    if (s == RCACHE_EUNAVAILABLE) hist_add(l->fb_hist, l->t0, end);
  }
  rcache_value_free(&v);
  free(val);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  unsigned seed = (unsigned)w->id * 7919u + (unsigned)load_now_us();
  w->sched_fd = -1; /* opened by this thread: it names this thread */
  while (!atomic_load_explicit(&w->l->stop, memory_order_relaxed)) {
    one_call(w->l, w, &seed);
    usleep(LOAD_THINK_US);
  }
  if (w->sched_fd >= 0) close(w->sched_fd);
  return NULL;
}

/* Watches for calls that never return (every 100 ms), and counts how often calls share a
 * connection (every 10 ms). */
static void *monitor_main(void *arg) {
  load *l = arg;
  for (unsigned tick = 0; !atomic_load(&l->stop); tick++) {
    usleep(10000);
    /* every 10 ms: are calls of several callers on one connection (pipelined)? */
    rcache_server_stats ss;
    for (size_t i = 0; rcache_get_server_stats(l->c, i, &ss) == RCACHE_OK; i++) {
      if (ss.calls > ss.busy) {
        atomic_fetch_add_explicit(&l->shared, 1, memory_order_relaxed);
        break;
      }
    }
    if (tick % 10) continue;
    int64_t now = load_now_us();
    for (int i = 0; i < LOAD_THREADS; i++) {
      int64_t since = atomic_load(&l->w[i].in_call_since);
      if (since && now - since > (int64_t)LOAD_HANG_MS * 1000) {
        fprintf(stderr, "HUNG: load thread %d has been in %s for %lld ms: aborting\n", i,
                load_op_name(atomic_load(&l->w[i].op)), (long long)((now - since) / 1000));
        fflush(stderr);
        abort();
      }
    }
  }
  return NULL;
}

/* Records the stretches during which a thread of this process could not run. */
static void *canary_main(void *arg) {
  load *l = arg;
  while (!atomic_load(&l->stop)) {
    int64_t t = load_now_us();
    usleep(2000);
    int64_t now = load_now_us(), late = now - t - 2000;
    if (late > (int64_t)LOAD_STALL_MS * 1000) {
      pthread_mutex_lock(&l->vmu);
      if (l->nstall < LOAD_MAX_STALLS) {
        l->stall[l->nstall].from = t + 2000;
        l->stall[l->nstall].to = now;
        l->nstall++;
      }
      pthread_mutex_unlock(&l->vmu);
    }
  }
  return NULL;
}

/* Stalled time within [a, b]. */
static int64_t stalled_within(const load *l, int64_t a, int64_t b) {
  int64_t sum = 0;
  for (int i = 0; i < l->nstall; i++) {
    int64_t f = l->stall[i].from > a ? l->stall[i].from : a;
    int64_t t = l->stall[i].to < b ? l->stall[i].to : b;
    if (t > f) sum += t - f;
  }
  return sum;
}

int64_t load_stalled_us(load *l, int64_t from_us, int64_t to_us) {
  if (!l) return 0;
  pthread_mutex_lock(&l->vmu);
  int64_t s = stalled_within(l, from_us, to_us);
  pthread_mutex_unlock(&l->vmu);
  return s;
}

static const char *watchdog_name = "test";

static void watchdog_fire(int sig) {
  (void)sig;
  static const char msg[] = "WATCHDOG: the test ran too long (deadlock?): aborting ";
  ssize_t w = write(2, msg, sizeof msg - 1);
  w += write(2, watchdog_name, strlen(watchdog_name));
  w += write(2, "\n", 1);
  (void)w;
  abort();
}

void load_watchdog(const char *name, unsigned seconds) {
  watchdog_name = name;
  signal(SIGALRM, watchdog_fire);
  alarm(seconds);
}

load *load_start(rcache *c, const char *tag) {
  load *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->c = c;
  snprintf(l->tag, sizeof l->tag, "%s", tag);
  l->t0 = load_now_us();
  pthread_mutex_init(&l->vmu, NULL);
  uint32_t unavail = status_bit(RCACHE_EUNAVAILABLE), ok = status_bit(RCACHE_OK);
  atomic_store(&l->allowed[OP_GET], ok | status_bit(RCACHE_MISS) | unavail);
  atomic_store(&l->allowed[OP_SET], ok | unavail);
  atomic_store(&l->allowed[OP_GOS], ok);
  atomic_store(&l->allowed[OP_INCR], ok | unavail);
  int one = LOAD_CONNECT_TIMEOUT_MS + LOAD_COMMAND_TIMEOUT_MS;
  for (int op = 0; op < OP_N; op++)
    atomic_store(&l->deadline_ms[op], one + LOAD_SLACK_MS);
  /* get_or_set reads, runs the loader, then writes: two bounded remote calls */
  atomic_store(&l->deadline_ms[OP_GOS], 2 * one + LOAD_SLACK_MS);
  for (int i = 0; i < LOAD_THREADS; i++) {
    l->w[i].l = l;
    l->w[i].id = i;
    if (pthread_create(&l->w[i].th, NULL, worker_main, &l->w[i]) != 0) {
      atomic_store(&l->stop, 1);
      for (int j = 0; j < i; j++)
        pthread_join(l->w[j].th, NULL);
      free(l);
      return NULL;
    }
  }
  if (pthread_create(&l->monitor, NULL, monitor_main, l) != 0) {
    atomic_store(&l->stop, 1);
    for (int j = 0; j < LOAD_THREADS; j++)
      pthread_join(l->w[j].th, NULL);
    free(l);
    return NULL;
  }
  if (pthread_create(&l->canary, NULL, canary_main, l) != 0) {
    atomic_store(&l->stop, 1);
    for (int j = 0; j < LOAD_THREADS; j++)
      pthread_join(l->w[j].th, NULL);
    pthread_join(l->monitor, NULL);
    free(l);
    return NULL;
  }
  return l;
}

void load_allow(load *l, int op, rcache_status s, bool on) {
  if (on) {
    atomic_fetch_or(&l->allowed[op], status_bit(s));
  } else {
    atomic_fetch_and(&l->allowed[op], ~status_bit(s));
  }
}

void load_set_deadline(load *l, int op, int ms) {
  atomic_store(&l->deadline_ms[op], ms);
}

int load_deadline(const load *l, int op) {
  return atomic_load(&((load *)l)->deadline_ms[op]);
}

void load_snapshot(load *l, load_counts *out) {
  memset(out, 0, sizeof *out);
  for (int op = 0; op < OP_N; op++) {
    /* the calls are the statuses' sum: a separate counter, read at another moment, could
     * disagree with them by the calls that completed in between (it did: 4,143 calls, 4,144
     * of them OK) */
    for (int i = 0; i < LOAD_STATUS_SLOTS; i++) {
      out->by_status[op][i] = atomic_load(&l->by_status[op][i]);
      out->calls[op] += out->by_status[op][i];
    }
    out->max_ms[op] = (double)atomic_load(&l->max_us[op]) / 1000.0;
  }
  out->over_deadline = atomic_load(&l->over_deadline);
  out->bad_status = atomic_load(&l->bad_status);
  out->bad_value = atomic_load(&l->bad_value);
  out->remote_ok = atomic_load(&l->remote_ok);
  out->shared = atomic_load(&l->shared);
  out->loader_calls = atomic_load(&l->loader_calls);
}

void load_diff(const load_counts *a, const load_counts *b, load_counts *out) {
  memset(out, 0, sizeof *out);
  for (int op = 0; op < OP_N; op++) {
    out->calls[op] = b->calls[op] - a->calls[op];
    for (int i = 0; i < LOAD_STATUS_SLOTS; i++)
      out->by_status[op][i] = b->by_status[op][i] - a->by_status[op][i];
    out->max_ms[op] = b->max_ms[op]; /* a running maximum cannot be differenced */
  }
  out->over_deadline = b->over_deadline - a->over_deadline;
  out->bad_status = b->bad_status - a->bad_status;
  out->bad_value = b->bad_value - a->bad_value;
  out->remote_ok = b->remote_ok - a->remote_ok;
  out->shared = b->shared - a->shared;
  out->loader_calls = b->loader_calls - a->loader_calls;
}

int64_t load_last_remote_ok_us(load *l) {
  return atomic_load(&l->last_remote_ok);
}

static uint64_t hist_sum(load *l, _Atomic uint32_t *h, int64_t from_us, int64_t to_us) {
  int64_t a = (from_us - l->t0) / LOAD_SLOT_US,
          b = (to_us - l->t0 + LOAD_SLOT_US - 1) / LOAD_SLOT_US;
  uint64_t n = 0;
  for (int64_t i = a < 0 ? 0 : a; i < b && i < LOAD_SLOTS; i++)
    n += atomic_load(&h[i]);
  return n;
}

uint64_t load_remote_ok_between(load *l, int64_t from_us, int64_t to_us) {
  return hist_sum(l, l->ok_hist, from_us, to_us);
}

uint64_t load_fallbacks_between(load *l, int64_t from_us, int64_t to_us) {
  return hist_sum(l, l->fb_hist, from_us, to_us);
}

void load_print(const char *title, const load_counts *c) {
  printf("  %s:\n", title);
  for (int op = 0; op < OP_N; op++) {
    printf("    %-10s calls %-8llu max %7.1f ms  statuses:", load_op_name(op),
           (unsigned long long)c->calls[op], c->max_ms[op]);
    for (int i = 0; i < LOAD_STATUS_SLOTS; i++) {
      if (c->by_status[op][i])
        printf(" %d=%llu", i - LOAD_STATUS_BIAS, (unsigned long long)c->by_status[op][i]);
    }
    printf("\n");
  }
  printf("    used the cache %llu, loader calls %llu, over deadline %llu (+%llu excused), "
         "bad status %llu, bad value %llu\n",
         (unsigned long long)c->remote_ok, (unsigned long long)c->loader_calls,
         (unsigned long long)c->over_deadline, (unsigned long long)c->overrun_excused,
         (unsigned long long)c->bad_status, (unsigned long long)c->bad_value);
  printf("    10 ms samples with calls sharing a connection (pipelined): %llu\n",
         (unsigned long long)c->shared);
}

void load_stop(load *l, load_counts *total, const char *title) {
  atomic_store(&l->stop, 1);
  for (int i = 0; i < LOAD_THREADS; i++)
    pthread_join(l->w[i].th, NULL);
  pthread_join(l->monitor, NULL);
  pthread_join(l->canary, NULL);
  load_counts c;
  load_snapshot(l, &c);
  /* the stall verdict: overruns beyond what was remembered are never excused */
  int64_t max_stall = 0;
  for (int i = 0; i < l->nstall; i++) {
    if (l->stall[i].to - l->stall[i].from > max_stall)
      max_stall = l->stall[i].to - l->stall[i].from;
  }
  for (int i = 0; i < l->noverrun; i++) {
    int64_t took = l->overrun[i].end - l->overrun[i].start;
    int64_t stalled = stalled_within(l, l->overrun[i].start, l->overrun[i].end);
    int64_t runnable = l->overrun[i].runnable_us;
    /* the two overlap (a thread ready to run in a stalled process waits for a CPU): the
     * larger is the machine's share */
    bool excused = took - (stalled > runnable ? stalled : runnable) <= l->overrun[i].deadline_us;
    fprintf(stderr,
            "    overrun at %.3f s: %.1f ms (deadline %.0f ms), the process was stalled "
            "%.1f ms of it, the thread waited %.1f ms for a CPU: %s\n",
            (double)(l->overrun[i].start - l->t0) / 1e6, (double)took / 1000.0,
            (double)l->overrun[i].deadline_us / 1000.0, (double)stalled / 1000.0,
            (double)runnable / 1000.0, excused ? "excused (the machine)" : "the library's");
    if (excused) c.overrun_excused++;
  }
  c.over_deadline -= c.overrun_excused;
  if (l->nstall)
    printf("    the machine stalled the process %d times (longest %.1f ms)\n", l->nstall,
           (double)max_stall / 1000.0);
  load_print(title, &c);
  for (int i = 0; i < l->nv; i++) {
    const violation *v = &l->v[i];
    fprintf(stderr, "    VIOLATION at %.3f s: %s -> %d (%s) in %.1f ms (deadline %d ms): %s\n",
            v->at_s, load_op_name(v->op), (int)v->status, rcache_strerror(v->status), v->ms,
            load_deadline(l, v->op), v->what);
  }
  if (total) *total = c;
  pthread_mutex_destroy(&l->vmu);
  free(l);
}

/* ---- recovery -------------------------------------------------------------------------------- */

int64_t load_wait_used_again(rcache *c, int64_t from_us, int budget_ms) {
  int64_t until = from_us + (int64_t)budget_ms * 1000;
  const char *probe = "faults:probe:roundtrip";
  for (unsigned i = 0;; i++) {
    int64_t now = load_now_us();
    rcache_stats st;
    rcache_get_stats(c, &st);
    if (st.available) {
      char want[32];
      int n = snprintf(want, sizeof want, "probe-%u", i);
      rcache_value v = {NULL, 0};
      if (rcache_set(c, probe, want, (size_t)n, 30) == RCACHE_OK &&
          rcache_get(c, probe, &v) == RCACHE_OK && v.len == (size_t)n &&
          memcmp(v.data, want, (size_t)n) == 0) {
        rcache_value_free(&v);
        return (load_now_us() - from_us) / 1000;
      }
      rcache_value_free(&v);
    }
    if (now > until) return -1;
    usleep(10000);
  }
}

int64_t load_wait_available(rcache *c, bool want, int64_t from_us, int budget_ms) {
  int64_t until = from_us + (int64_t)budget_ms * 1000;
  for (;;) {
    int64_t now = load_now_us();
    rcache_stats st;
    rcache_get_stats(c, &st);
    if (st.available == want) return (now - from_us) / 1000;
    if (now > until) return -1;
    usleep(5000);
  }
}

/* ---- log capture ----------------------------------------------------------------------------- */

void logcap_init(logcap *l) {
  memset(l, 0, sizeof *l);
  pthread_mutex_init(&l->mu, NULL);
}

void logcap_destroy(logcap *l) {
  pthread_mutex_destroy(&l->mu);
}

void logcap_fn(int level, const char *msg, void *ud) {
  logcap *l = ud;
  pthread_mutex_lock(&l->mu);
  if (l->n < LOGCAP_LINES) {
    snprintf(l->line[l->n], sizeof l->line[l->n], "[%d] %s", level, msg ? msg : "(null)");
    l->at_us[l->n] = load_now_us();
    l->n++;
  } else {
    l->dropped++;
  }
  pthread_mutex_unlock(&l->mu);
}

int logcap_count(logcap *l, const char *needle, int64_t since_us) {
  int n = 0;
  pthread_mutex_lock(&l->mu);
  for (int i = 0; i < l->n; i++) {
    if (l->at_us[i] >= since_us && strstr(l->line[i], needle)) n++;
  }
  pthread_mutex_unlock(&l->mu);
  return n;
}

int logcap_total(logcap *l) {
  pthread_mutex_lock(&l->mu);
  int n = l->n + l->dropped;
  pthread_mutex_unlock(&l->mu);
  return n;
}

bool logcap_find(logcap *l, const char *needle, int64_t since_us, char *buf, size_t size) {
  bool found = false;
  pthread_mutex_lock(&l->mu);
  for (int i = 0; i < l->n && !found; i++) {
    if (l->at_us[i] >= since_us && strstr(l->line[i], needle)) {
      snprintf(buf, size, "%s", l->line[i]);
      found = true;
    }
  }
  pthread_mutex_unlock(&l->mu);
  return found;
}

void logcap_print(logcap *l, const char *title) {
  pthread_mutex_lock(&l->mu);
  printf("  log lines (%s): %d%s\n", title, l->n, l->dropped ? " (some dropped)" : "");
  for (int i = 0; i < l->n; i++)
    printf("    %s\n", l->line[i]);
  pthread_mutex_unlock(&l->mu);
}
