/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The fault suite's load: LOAD_THREADS threads doing get / set / get_or_set / incr on a
 * small set of keys in a loop, through the public API only, for as long as a scenario
 * runs. Every call is timed and checked:
 *  - its duration against the op's deadline (connect_timeout_ms + command_timeout_ms +
 *    LOAD_SLACK_MS; get_or_set, which reads and then writes, gets twice the budget);
 *  - its status against the set the scenario allows for that op (load_allow());
 *  - the value it returned: values carry their key and length, so a reply that belongs
 *    to another command (a connection reused after a timeout) is caught.
 * It also keeps the time of the last call that really used the cache, per-100 ms
 * histories of cache successes and fallbacks, and a log capture for the log callback.
 */
#ifndef RCACHE_FAULTS_HELPER_LOAD_H
#define RCACHE_FAULTS_HELPER_LOAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "rcache/rcache.h"

/* Slack on top of each deadline. Generous on purpose: sanitizer builds are several times
 * slower, and 64 busy threads share 2 cores with the servers, so a thread can wait its turn
 * for tens of milliseconds. A call that is late by more than this is a real overrun. */
#define LOAD_SLACK_MS 250

/* As many callers as the pipelined pool is sized for (issue 16: "the fault suite with 64
 * threads of load"): with pool_size 4 and pipeline_depth 64 they queue on shared
 * connections, so every fault also hits calls written behind other callers' requests. */
#define LOAD_THREADS 64

/* The machine is shared (2 cores, other builds): a process can be descheduled for longer
 * than the slack. A canary thread sleeping 2 ms at a time records every stretch of more
 * than LOAD_STALL_MS during which it could not run; each call also reads how long its own
 * thread waited for a CPU while runnable (schedstat). At load_stop(), a call over its
 * deadline is excused only when, without the larger of the two, it was within the
 * deadline; excused overruns are printed, never hidden. */
#define LOAD_STALL_MS 20

/* A call still running after this long is a hang (deadlock, a wait without a deadline):
 * the load prints which call and aborts the test, instead of CTest waiting for minutes. */
#define LOAD_HANG_MS 10000

/* The options every fault scenario uses (short deadlines, fast reconnect). */
#define LOAD_CONNECT_TIMEOUT_MS 200
#define LOAD_COMMAND_TIMEOUT_MS 200
#define LOAD_RECONNECT_MAX_MS 500

enum { OP_GET = 0, OP_SET, OP_GOS, OP_INCR, OP_N };

/* statuses are -15..1: index = status + LOAD_STATUS_BIAS */
#define LOAD_STATUS_BIAS 16
#define LOAD_STATUS_SLOTS 18

int64_t load_now_us(void);
const char *load_op_name(int op);

/* rcache_options_init() plus the suite's deadlines, reconnect_max_ms and log capture. */
typedef struct logcap logcap;
void load_options(rcache_options *o, logcap *log);

typedef struct load_counts {
  uint64_t calls[OP_N];
  uint64_t by_status[OP_N][LOAD_STATUS_SLOTS];
  uint64_t over_deadline;   /* calls longer than their deadline (final count: see below) */
  uint64_t overrun_excused; /* of which the process or the calling thread was not running
                               long enough to explain the overrun (load_stop only; see
                               LOAD_STALL_MS) */
  uint64_t bad_status;      /* statuses outside the allowed set */
  uint64_t bad_value;       /* values that do not belong to their key */
  uint64_t remote_ok;       /* calls that used the cache: get OK/MISS, set OK, incr OK */
  uint64_t shared;          /* 10 ms samples (rcache_get_server_stats) that found calls of
                               several callers on one connection: pipelined */
  uint64_t loader_calls;
  double max_ms[OP_N];
} load_counts;

typedef struct load load;

/* Arms a watchdog for the whole test: after `seconds` the process prints `name` and
 * aborts (servers are killed by redis_proc.c's handlers). */
void load_watchdog(const char *name, unsigned seconds);

/* Starts LOAD_THREADS threads on c, keys "<tag>:k:<i>" and "<tag>:n:<i>". The allowed
 * statuses start as the documented fallback set: get OK/MISS/EUNAVAILABLE, set
 * OK/EUNAVAILABLE, get_or_set OK, incr OK/EUNAVAILABLE. NULL on failure. */
load *load_start(rcache *c, const char *tag);
/* Allows (on) or forbids status s for op from now on. A call is judged against the union
 * of the sets in force when it started and when it ended. */
void load_allow(load *l, int op, rcache_status s, bool on);
/* Overrides an op's deadline (ms, slack included). */
void load_set_deadline(load *l, int op, int ms);
int load_deadline(const load *l, int op);
/* Counters so far (consistent enough: read one by one). */
void load_snapshot(load *l, load_counts *out);
/* out = b - a */
void load_diff(const load_counts *a, const load_counts *b, load_counts *out);
/* Monotonic time (load_now_us) of the last call that used the cache; 0 = none yet. */
int64_t load_last_remote_ok_us(load *l);
/* Calls that used the cache / fell back in [from_us, to_us). */
uint64_t load_remote_ok_between(load *l, int64_t from_us, int64_t to_us);
uint64_t load_fallbacks_between(load *l, int64_t from_us, int64_t to_us);
/* Stops and joins the threads; *total (may be NULL) gets the final counters; prints a
 * summary and the first violations under `title`. Frees l. */
void load_stop(load *l, load_counts *total, const char *title);
void load_print(const char *title, const load_counts *c);
/* How long within [from_us, to_us] the machine stalled the whole process (its canary thread
 * could not run); 0 when l is NULL. */
int64_t load_stalled_us(load *l, int64_t from_us, int64_t to_us);

/* After a fault ends (at from_us): polls every 10 ms until the stats say available and a
 * real set + get round trip on a probe key succeeds. Returns the ms it took from from_us,
 * or -1 when that did not happen within budget_ms. */
int64_t load_wait_used_again(rcache *c, int64_t from_us, int budget_ms);

/* Polls rcache_get_stats() until its `available` equals want. Same return convention. */
int64_t load_wait_available(rcache *c, bool want, int64_t from_us, int budget_ms);

/* ---- log capture ----------------------------------------------------------------------------- */

#define LOGCAP_LINES 512
struct logcap {
  pthread_mutex_t mu;
  int n, dropped;
  char line[LOGCAP_LINES][512];
  int64_t at_us[LOGCAP_LINES];
};

void logcap_init(logcap *l);
void logcap_destroy(logcap *l);
/* The log callback: rcache_options.log_fn = logcap_fn, log_ud = the logcap. */
void logcap_fn(int level, const char *msg, void *ud);
/* Lines containing `needle` (case-sensitive), optionally only those at or after since_us. */
int logcap_count(logcap *l, const char *needle, int64_t since_us);
int logcap_total(logcap *l);
/* Copies the first line containing needle at or after since_us into buf; false if none. */
bool logcap_find(logcap *l, const char *needle, int64_t since_us, char *buf, size_t size);
void logcap_print(logcap *l, const char *title);

/* The library's wording for its two state-change lines (docs: one line per change). The
 * "unavailable" needle must not match the "available again" line and vice versa. */
#define LOG_DOWN "unavailable"
#define LOG_UP "available again"

#endif
