/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fault scenario: the non-blocking API (issue 17, docs/async.md) with one loop thread keeping
 * 1,000 operations in flight (get / set / get_or_set with an asynchronous loader / incr) while
 * the server, behind a proxy, is killed and restarted, SIGSTOPped and resumed, and stalled by
 * the proxy (black hole). For every operation:
 *  - its callback runs exactly once, on the loop's thread, never before its start returned;
 *  - by its deadline (connect + 2 x command timeout; get_or_set: its longer budget plus the round
 *    trip after its load) plus ASYNC_SLACK_MS, a generous bound for sanitizer builds on a shared
 *    machine: the lateness measured is printed, the bound only catches a lost deadline;
 *  - with a documented status (get OK / MISS / EUNAVAILABLE, set OK / EUNAVAILABLE, get_or_set
 *    OK / EUNAVAILABLE, incr OK / EUNAVAILABLE) and a right value: each key's value is known.
 * Each fault must make reads fall back, and the cache must be used again after it ends. Prints
 * the longest rcache_async_process() call and the largest lateness of each phase, and at the end
 * the longest call in the loop thread's CPU time too (on a busy machine the wall clock also
 * counts the waits for a core, and for a lock a preempted worker holds), and rcache's own part
 * of the loop's time: rcache_async_process without the test's callbacks, each starting call;
 * and how long the loop thread slept inside rcache (await_slept_since_us: it gave up its core
 * of its own accord, on a lock, a poll): the loop blocked, which the issue bounds to 1 ms.
 */
#include <pthread.h>

#include "await.h"
#include "scenario.h"

#define SLOTS 1000          /* operations in flight */
#define KEYS 100            /* keys "k:<i>", whose value is always "val:k:<i>" */
#define ASYNC_SLACK_MS 5000 /* past its deadline, a callback is lost, not late */
#define RECOVER_MS 10000    /* the cache in use again after a fault ends, at the latest */
#define CPU_BUCKET_US 50
#define CPU_BUCKETS 200 /* the last one: 10 ms and more */

enum { A_GET, A_SET, A_GOS, A_INCR, A_N };
static const char *const op_names[A_N] = {"get", "set", "get_or_set", "incr"};

typedef struct slot {
  int op, key;
  int64_t start_us, deadline_us; /* deadline: what the library promises (see budget) */
  bool returned;                 /* the starting call has returned */
  int calls;
  bool done; /* the callback ran: the slot starts a new operation */
} slot;

typedef struct run {
  rcache *c;
  pthread_t loop;
  slot s[SLOTS];
  bool stopping; /* no new operations */
  int in_flight;
  int64_t budget_us, gos_budget_us;
  /* verdicts */
  uint64_t started, completed, by_status[A_N][LOAD_STATUS_SLOTS];
  uint64_t twice, early, foreign, bad_status, bad_value, loader_calls;
  int64_t late_max_us, late_phase_us, process_max_us;
  int64_t process_cpu_max_us; /* the longest in CPU time of the loop's thread: rcache's work,
                               * without the waits for a core (2 cores, a server, workers) */
  int64_t turn_cpu_max_us;    /* the same for a whole turn but its wait: process, then the
                               * operations started in the slots that completed */
  /* rcache's own part: the CPU time the test's callbacks and loader take (app_cpu_us, their
   * calls into rcache left out) is not rcache blocking the loop; rcache_async_process without
   * it, and each starting call (rcache_get_async, ...) alone */
  int64_t app_cpu_us, own_cpu_max_us, start_cpu_max_us;
  /* The loop blocked: how long rcache_async_process, and a turn's starting calls together,
   * slept (gave up the core of its own accord, and for how long it neither ran nor waited
   * for one: await_slept_since_us; a lock, a poll), the longest of each, the turns where
   * either slept 1 ms or more, and the number of sleeps. */
  await_turn_times m; /* (its sched_fd: the loop thread's schedstat) */
  int64_t slept_process_max_us, slept_start_max_us;
  uint64_t slept_turns;
  long sleeps; /* how many times it slept inside rcache in all */
  /* the test's own part of those sleeps (app_enter / app_leave: its callbacks and loader, their
   * calls into rcache left out), left out of rcache's as its CPU time is: its loader's malloc
   * and its callbacks' free wait for the allocator's lock as any application's do */
  int64_t app_slept_us;
  long app_sleeps, app_sleeps_all;
  uint64_t own_hist[CPU_BUCKETS];
  int64_t own_cpu_us;
  /* How long a turn takes in the loop thread's CPU time, in CPU_BUCKET_US buckets; and, as a
   * yardstick measured the same way after every 2nd turn, a fixed arithmetic of about 65 us: a
   * thread's CPU time also counts kernel work done while it runs (without IRQ time accounting,
   * the network softirqs of every socket on the machine; a virtual core's wake-ups), so a long
   * turn says something about rcache only where the yardstick does not show the same
   * (docs/async.md). */
  uint64_t turn_hist[CPU_BUCKETS], yard_hist[CPU_BUCKETS], turns;
  int64_t turn_cpu_us, yard_cpu_us; /* in all */
  int64_t last_set_ok_us;           /* the start of the latest set that the cache took */
  char phase[48];
} run;

static run R;

static const char *key_of(int k, char *buf, size_t size) {
  snprintf(buf, size, "k:%d", k);
  return buf;
}

/* ---- the callbacks ------------------------------------------------------------------------- */

static int64_t cpu_now_us(void);

static bool allowed(int op, rcache_status s) {
  switch (op) {
  case A_GET:
    return s == RCACHE_OK || s == RCACHE_MISS || s == RCACHE_EUNAVAILABLE;
  default:
    return s == RCACHE_OK || s == RCACHE_EUNAVAILABLE;
  }
}

/* Records a callback of slot x with status s. */
static void completed(slot *x, rcache_status s) {
  int64_t now = load_now_us();
  if (x->calls++ > 0) {
    R.twice++;
    return;
  }
  if (!x->returned) R.early++;
  if (!pthread_equal(pthread_self(), R.loop)) R.foreign++;
  int64_t late = now - x->deadline_us;
  if (late > R.late_max_us) R.late_max_us = late;
  if (late > R.late_phase_us) R.late_phase_us = late;
  if (s + LOAD_STATUS_BIAS >= 0 && s + LOAD_STATUS_BIAS < LOAD_STATUS_SLOTS)
    R.by_status[x->op][s + LOAD_STATUS_BIAS]++;
  if (!allowed(x->op, s)) {
    if (R.bad_status++ < 5)
      fprintf(stderr, "  %s: %s returned %s\n", R.phase, op_names[x->op], rcache_strerror(s));
  }
  if (x->op == A_SET && s == RCACHE_OK && x->start_us > R.last_set_ok_us)
    R.last_set_ok_us = x->start_us;
  R.completed++;
  R.in_flight--;
  x->done = true;
}

/* The test's own part of the loop thread's time, around its callbacks and loader: its CPU
 * time, and its sleeps (count and time, await_slept_since_us), so that neither is counted as
 * rcache's. */
static await_mark app_enter(void) {
  return await_mark_now(&R.m.sched_fd);
}

static void app_leave(const await_mark *at) {
  R.app_cpu_us += (await_clock_ns(CLOCK_THREAD_CPUTIME_ID) - at->cpu_ns) / 1000;
  long sleeps = await_sleeps() - at->slept_count;
  if (sleeps > 0) {
    R.app_slept_us += await_slept_since_us(at, &R.m.sched_fd);
    R.app_sleeps += sleeps;
  }
}

static void on_status(void *ud, rcache_status s) {
  await_mark at = app_enter();
  completed(ud, s);
  app_leave(&at);
}

static void on_value(void *ud, rcache_status s, rcache_value v) {
  await_mark at = app_enter();
  slot *x = ud;
  char want[32];
  snprintf(want, sizeof want, "val:k:%d", x->key);
  if (s == RCACHE_OK && (v.len != strlen(want) || memcmp(v.data, want, v.len) != 0)) {
    if (R.bad_value++ < 5)
      fprintf(stderr, "  %s: %s of k:%d gave \"%.*s\"\n", R.phase, op_names[x->op], x->key,
              (int)(v.len < 40 ? v.len : 40), v.data ? v.data : "");
  }
  if (s != RCACHE_OK && v.data) R.bad_value++; /* a value with an error status */
  rcache_value_free(&v);
  completed(x, s);
  app_leave(&at);
}

static void on_int(void *ud, rcache_status s, int64_t n) {
  await_mark at = app_enter();
  if ((s == RCACHE_OK && n < 1) || (s != RCACHE_OK && n != 0)) R.bad_value++;
  completed(ud, s);
  app_leave(&at);
}

/* get_or_set's loader, on the loop: the key's known value, at once. */
static void loader(void *ud, const char *key, rcache_load *ld) {
  await_mark at = app_enter();
  slot *x = ud;
  R.loader_calls++;
  if (!pthread_equal(pthread_self(), R.loop)) R.foreign++;
  rcache_value v = {malloc(32), 0};
  if (v.data) v.len = (size_t)snprintf(v.data, 32, "val:%s", key);
  app_leave(&at); /* rcache_load_done is rcache's work */
  rcache_load_done(ld, v.data ? RCACHE_OK : RCACHE_ENOMEM, &v);
  (void)x;
}

/* ---- the loop ------------------------------------------------------------------------------ */

static int64_t cpu_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int bucket(int64_t us) {
  int64_t b = us / CPU_BUCKET_US;
  return b >= CPU_BUCKETS ? CPU_BUCKETS - 1 : (int)b;
}

static volatile uint64_t yard_sink;

static void yardstick(void) {
  for (uint64_t i = 0; i < 150000; i++)
    yard_sink += i * i;
}

/* "p99 < 0.10 ms, p99.9 < 0.35 ms, 3 of 1 ms or more (0.4 per CPU second), longest < 1.05
 * ms" of a histogram whose entries took cpu_us in all. */
static void hist_print(const char *name, const uint64_t *h, int64_t cpu_us) {
  uint64_t n = 0, over = 0;
  int last = 0;
  for (int i = 0; i < CPU_BUCKETS; i++) {
    n += h[i];
    if (i * CPU_BUCKET_US >= 1000) over += h[i];
    if (h[i]) last = i;
  }
  double q[2] = {0.99, 0.999};
  int at[2] = {0, 0};
  for (int k = 0; k < 2; k++) {
    uint64_t sum = 0;
    for (int i = 0; i < CPU_BUCKETS; i++) {
      sum += h[i];
      if ((double)sum >= q[k] * (double)n) {
        at[k] = i;
        break;
      }
    }
  }
  printf("  %-10s %llu in %.2f s: p99 < %.2f ms, p99.9 < %.2f ms, %llu of 1 ms or more (%.2f per "
         "CPU second), longest < %.2f ms\n",
         name, (unsigned long long)n, (double)cpu_us / 1e6, (at[0] + 1) * CPU_BUCKET_US / 1000.0,
         (at[1] + 1) * CPU_BUCKET_US / 1000.0, (unsigned long long)over,
         cpu_us > 0 ? (double)over * 1e6 / (double)cpu_us : 0.0,
         (last + 1) * CPU_BUCKET_US / 1000.0);
}

/* Starts slot i's next operation (op by turn, key by slot). */
static void start(int i, uint64_t n) {
  slot *x = &R.s[i];
  *x = (slot){.op = (int)((n + (uint64_t)i) % A_N), .key = i % KEYS};
  char key[32], val[48];
  key_of(x->key, key, sizeof key);
  snprintf(val, sizeof val, "val:%s", key);
  x->start_us = load_now_us();
  x->deadline_us = x->start_us + (x->op == A_GOS ? R.gos_budget_us : R.budget_us);
  rcache_status s = RCACHE_EINVAL;
  int64_t c0 = cpu_now_us(), a0 = R.app_cpu_us; /* a callback may run before it returns */
  int64_t w0 = load_now_us();
  switch (x->op) {
  case A_GET:
    s = rcache_get_async(R.c, key, on_value, x);
    break;
  case A_SET:
    s = rcache_set_async(R.c, key, val, strlen(val), 60, on_status, x);
    break;
  case A_GOS:
    s = rcache_get_or_set_async(R.c, key, 60, loader, x, on_value, x);
    break;
  default:
    snprintf(key, sizeof key, "n:%d", x->key % 10);
    s = rcache_incr_async(R.c, key, 1, on_int, x);
    break;
  }
  int64_t own = cpu_now_us() - c0, wall = load_now_us() - w0;
  /* a thread's CPU clock now and then jumps by a millisecond in a few us of wall time (a
   * virtual machine's accounting): a call ran at most as long as it took */
  own = (own < wall ? own : wall) - (R.app_cpu_us - a0);
  if (own > R.start_cpu_max_us) R.start_cpu_max_us = own;
  x->returned = true;
  CHECK_MSG(s == RCACHE_OK, "%s: starting %s: %s", R.phase, op_names[x->op], rcache_strerror(s));
  if (s != RCACHE_OK) {
    x->done = true; /* no callback will come */
    return;
  }
  R.started++;
  R.in_flight++;
}

static void app_sleeps_reset(void) {
  R.app_sleeps_all += R.app_sleeps;
  R.app_sleeps = 0;
  R.app_slept_us = 0;
}

/* rcache's part of a stretch of the loop (rcache_async_process, or a turn's starting calls,
 * since app_sleeps_reset) that slept slept_us in sleeps times: the test's part left out.
 * Counts its sleeps and its longest, and returns its time. */
static int64_t rcache_slept(int64_t slept_us, long sleeps) {
  sleeps -= R.app_sleeps;
  slept_us = sleeps > 0 ? slept_us - R.app_slept_us : 0;
  if (slept_us < 0) slept_us = 0;
  R.sleeps += sleeps;
  return slept_us;
}

/* One turn of the loop: wait for the descriptor or the timer, process, start new operations in
 * the slots that completed. */
static void turn(void) {
  int64_t a0 = R.app_cpu_us;
  app_sleeps_reset();
  await_async_turn(R.c, 50, &R.m);
  const await_turn_times m = R.m;
  int64_t slept_process = rcache_slept(m.slept_us, m.sleeps);
  if (slept_process > R.slept_process_max_us) R.slept_process_max_us = slept_process;
  int64_t took = m.took_ns / 1000, cpu = m.cpu_took_ns / 1000;
  if (took > R.process_max_us) R.process_max_us = took;
  if (cpu > R.process_cpu_max_us) R.process_cpu_max_us = cpu;
  int64_t own = cpu - (R.app_cpu_us - a0);
  if (own > R.own_cpu_max_us) R.own_cpu_max_us = own;
  R.own_hist[bucket(own)]++;
  R.own_cpu_us += own;
  app_sleeps_reset();
  await_mark at = await_mark_now(&R.m.sched_fd);
  for (int i = 0; i < SLOTS && !R.stopping; i++)
    if (R.s[i].done) start(i, R.started);
  int64_t slept = await_slept_since_us(&at, &R.m.sched_fd);
  slept = rcache_slept(slept, await_sleeps() - at.slept_count);
  if (slept > R.slept_start_max_us) R.slept_start_max_us = slept;
  if (slept >= 1000 || slept_process >= 1000) R.slept_turns++;
  cpu = cpu_now_us() - m.cpu_start_ns / 1000; /* with the operations started again */
  if (cpu > R.turn_cpu_max_us) R.turn_cpu_max_us = cpu;
  R.turn_hist[bucket(cpu)]++;
  R.turn_cpu_us += cpu;
  if (R.turns++ % 2 == 0) {
    int64_t c0 = cpu_now_us();
    yardstick();
    cpu = cpu_now_us() - c0;
    R.yard_hist[bucket(cpu)]++;
    R.yard_cpu_us += cpu;
  }
}

static void run_ms(int ms) {
  int64_t end = load_now_us() + (int64_t)ms * 1000;
  while (load_now_us() < end)
    turn();
}

static void phase(const char *name) {
  snprintf(R.phase, sizeof R.phase, "%s", name);
  R.late_phase_us = INT64_MIN;
}

static void end_phase(uint64_t before[A_N][LOAD_STATUS_SLOTS]) {
  uint64_t unav = R.by_status[A_GET][RCACHE_EUNAVAILABLE + LOAD_STATUS_BIAS] -
                  before[A_GET][RCACHE_EUNAVAILABLE + LOAD_STATUS_BIAS];
  uint64_t ok = 0;
  for (int op = 0; op < A_N; op++)
    ok += R.by_status[op][RCACHE_OK + LOAD_STATUS_BIAS] - before[op][RCACHE_OK + LOAD_STATUS_BIAS];
  printf("%-22s completed %llu so far, in this phase %llu OK, %llu gets unavailable; latest "
         "callback %+.1f ms from its deadline; longest rcache_async_process %.2f ms\n",
         R.phase, (unsigned long long)R.completed, (unsigned long long)ok, (unsigned long long)unav,
         (double)R.late_phase_us / 1000.0, (double)R.process_max_us / 1000.0);
  fflush(stdout);
}

/* A fault from `down` to `up` (each called once), lasting down_ms under the load: reads fall
 * back during it, the cache is used again (a set started after it ended is taken) within
 * RECOVER_MS. */
static void fault(const char *name, void (*down)(scen *), void (*up)(scen *), scen *x,
                  int down_ms) {
  uint64_t before[A_N][LOAD_STATUS_SLOTS];
  memcpy(before, R.by_status, sizeof before);
  char what[64];
  snprintf(what, sizeof what, "%s", name);
  phase(what);
  down(x);
  run_ms(down_ms);
  end_phase(before);
  CHECK_MSG(R.by_status[A_GET][RCACHE_EUNAVAILABLE + LOAD_STATUS_BIAS] >
                before[A_GET][RCACHE_EUNAVAILABLE + LOAD_STATUS_BIAS],
            "%s: no get fell back", name);
  memcpy(before, R.by_status, sizeof before);
  snprintf(what, sizeof what, "%s: after", name);
  phase(what);
  up(x);
  int64_t end_us = load_now_us(), until = end_us + (int64_t)RECOVER_MS * 1000;
  while (R.last_set_ok_us <= end_us && load_now_us() < until)
    turn();
  CHECK_MSG(R.last_set_ok_us > end_us, "%s: the cache was not used again within %d ms", name,
            RECOVER_MS);
  printf("%-22s cache used again %.0f ms after the fault ended\n", R.phase,
         (double)(load_now_us() - end_us) / 1000.0);
  run_ms(500);
  end_phase(before);
}

static proxy *px;

static void kill_server(scen *x) {
  rp_kill(&x->s);
}
static void restart_server(scen *x) {
  CHECK(rp_restart(&x->s, false) == 0);
}
static void pause_server(scen *x) {
  rp_pause(&x->s);
}
static void resume_server(scen *x) {
  rp_resume(&x->s);
}
static void blackhole(scen *x) {
  (void)x;
  proxy_set_mode(px, PROXY_BLACKHOLE, 0);
}
static void pass(scen *x) {
  (void)x;
  proxy_set_mode(px, PROXY_PASS, 0);
}

/* Stops starting operations and runs the loop until every one in flight has completed, with a
 * bound far past every deadline. */
static void drain(void) {
  R.stopping = true;
  phase("drain");
  int64_t until = load_now_us() + (R.gos_budget_us + ASYNC_SLACK_MS * 1000LL);
  while (R.in_flight > 0 && load_now_us() < until)
    turn();
  CHECK_MSG(R.in_flight == 0, "%d operations never completed", R.in_flight);
}

static void verdicts(void) {
  printf("total: %llu operations started, %llu completed, loader ran %llu times; latest callback "
         "%+.1f ms from its deadline; longest rcache_async_process %.2f ms (wall clock), %.2f ms "
         "(the loop thread's CPU time); longest turn with its new operations %.2f ms (CPU)\n",
         (unsigned long long)R.started, (unsigned long long)R.completed,
         (unsigned long long)R.loader_calls, (double)R.late_max_us / 1000.0,
         (double)R.process_max_us / 1000.0, (double)R.process_cpu_max_us / 1000.0,
         (double)R.turn_cpu_max_us / 1000.0);
  printf("the loop thread's CPU time per turn (process, then the operations started again), and "
         "the same for a fixed ~65 us arithmetic after every 2nd turn:\n");
  hist_print("turns", R.turn_hist, R.turn_cpu_us);
  hist_print("yardstick", R.yard_hist, R.yard_cpu_us);
  printf("rcache's own part (CPU, the test's callbacks and loader left out): longest "
         "rcache_async_process %.2f ms, longest starting call %.2f ms\n",
         (double)R.own_cpu_max_us / 1000.0, (double)R.start_cpu_max_us / 1000.0);
  hist_print("process", R.own_hist, R.own_cpu_us);
  app_sleeps_reset();
  printf("the loop blocked (slept inside rcache, the test's callbacks and loader left out): "
         "longest in rcache_async_process %.2f ms, in a turn's starting calls %.2f ms; turns "
         "with 1 ms or more: %llu of %llu; slept %ld times in all (the test's own code: %ld)\n",
         (double)R.slept_process_max_us / 1000.0, (double)R.slept_start_max_us / 1000.0,
         (unsigned long long)R.slept_turns, (unsigned long long)R.turns, R.sleeps,
         R.app_sleeps_all);
  for (int op = 0; op < A_N; op++)
    printf("  %-10s OK %llu, MISS %llu, EUNAVAILABLE %llu\n", op_names[op],
           (unsigned long long)R.by_status[op][RCACHE_OK + LOAD_STATUS_BIAS],
           (unsigned long long)R.by_status[op][RCACHE_MISS + LOAD_STATUS_BIAS],
           (unsigned long long)R.by_status[op][RCACHE_EUNAVAILABLE + LOAD_STATUS_BIAS]);
  CHECK_EQ(R.completed, R.started);
  CHECK_EQ(R.twice, 0);
  CHECK_EQ(R.early, 0);
  CHECK_EQ(R.foreign, 0);
  CHECK_EQ(R.bad_status, 0);
  CHECK_EQ(R.bad_value, 0);
  CHECK_MSG(R.late_max_us <= ASYNC_SLACK_MS * 1000LL,
            "a callback came %.1f ms after its deadline (bound %d ms)",
            (double)R.late_max_us / 1000.0, ASYNC_SLACK_MS);
  for (int op = 0; op < A_N; op++)
    CHECK_MSG(R.by_status[op][RCACHE_OK + LOAD_STATUS_BIAS] > 0, "no %s answered OK", op_names[op]);
  for (int i = 0; i < SLOTS; i++)
    CHECK_MSG(R.s[i].calls <= 1, "slot %d: %d callbacks", i, R.s[i].calls);
}

int main(void) {
  scen x;
  sc_begin(&x, "faults_test_async");
  if (rp_start(&x.s, NULL) != 0 || !(px = proxy_start(x.s.port))) {
    CHECK(!"server and proxy start");
    return test_report(x.name);
  }
  snprintf(x.url, sizeof x.url, "redis://127.0.0.1:%d?pool=8", proxy_port(px));
  if (!sc_open(&x, NULL)) {
    sc_end(&x);
    return test_report(x.name);
  }
  R.c = x.c;
  R.loop = pthread_self();
  R.m.sched_fd = -1;
  R.budget_us = (LOAD_CONNECT_TIMEOUT_MS + 2 * LOAD_COMMAND_TIMEOUT_MS) * 1000LL;
  /* get_or_set: two deadlines and the flight wait (by default twice the command timeout), then,
   * its load done (the loader's time is not rcache's), one more round trip */
  R.gos_budget_us = 3 * R.budget_us + 2 * LOAD_COMMAND_TIMEOUT_MS * 1000LL;
  phase("healthy");
  uint64_t before[A_N][LOAD_STATUS_SLOTS];
  memcpy(before, R.by_status, sizeof before);
  for (int i = 0; i < SLOTS; i++)
    start(i, 0);
  run_ms(1500);
  end_phase(before);

  fault("killed", kill_server, restart_server, &x, 2000);
  fault("SIGSTOP", pause_server, resume_server, &x, 2000);
  fault("proxy black hole", blackhole, pass, &x, 2000);
  drain();
  verdicts();
  if (R.m.sched_fd >= 0) close(R.m.sched_fd);
  sc_end(&x);
  proxy_stop(px);
  return test_report(x.name);
}
