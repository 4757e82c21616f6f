/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rcache internals shared by the facade and the backends. Nothing here is public:
 * everything is static or carries the rcache__ prefix, and is hidden from the ABI.
 */
#ifndef RCACHE_INTERNAL_H
#define RCACHE_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rcache/rcache.h"

#if defined(__GNUC__)
#define RCACHE__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RCACHE__PRINTF(a, b)
#endif

/* ---- time (time.c) --------------------------------------------------------------------------- */

int64_t rcache__now_us(void);  /* CLOCK_MONOTONIC in microseconds */
int64_t rcache__wall_ms(void); /* CLOCK_REALTIME in milliseconds */
int64_t rcache__wall_ns(void); /* ...in nanoseconds (the kernel's receive timestamps') */
void rcache__sleep_us(int64_t us);
/* A condition variable timed on CLOCK_MONOTONIC (immune to wall-clock jumps), and the
 * absolute time for rcache__cond_timedwait() on it at deadline_us (monotonic µs). */
struct timespec;
void rcache__cond_init_mono(pthread_cond_t *c);
void rcache__deadline_ts(struct timespec *ts, int64_t deadline_us);
/* A thread-safe random in [0, 1), reseeded in a forked child (children's jitters differ). */
double rcache__rand01(void);

/* ---- fork (fork.c) ----------------------------------------------------------------------------
 */

/* Bumped in the child of every fork() once rcache__fork_watch() has run (rcache_open calls
 * it). A handle whose generation differs was inherited: it must not use its connections. */
extern _Atomic uint64_t rcache__fork_generation;
void rcache__fork_watch(void);
static inline uint64_t rcache__fork_gen(void) {
  return atomic_load_explicit(&rcache__fork_generation, memory_order_relaxed);
}

/* The fork gate (see fork.c): fork() waits, up to a second, until none of the library's
 * background threads is outside a wait, so that a child never inherits a lock one of them
 * held (the allocator's, OpenSSL's, c-ares'). Every background thread is started by
 * rcache__bg_spawn (a pthread_create that counts it busy from before it runs), and every
 * wait of one is wrapped in park / unpark: rcache__cond_wait, rcache__cond_timedwait,
 * rcache__sleep_us and rcache__poll do it. In other threads they cost a
 * thread-local load. */
int rcache__bg_spawn(pthread_t *t, void *(*fn)(void *), void *arg);
/* Joins a thread of rcache__bg_spawn (pthread_join, and it no longer counts). */
void rcache__bg_join(pthread_t t);
/* fn(arg) on a thread its owner does not join: *running is 1 until the library has joined
 * it (at the next fork, spawn or rcache__bg_wait). rcache__bg_wait(running), once the job
 * is known to be over, returns when that thread is gone. */
int rcache__bg_run(void *(*fn)(void *), void *arg, _Atomic int *running);
void rcache__bg_wait(_Atomic int *running);
void rcache__bg_park(void);
void rcache__bg_unpark(void);
void rcache__cond_wait(pthread_cond_t *c, pthread_mutex_t *m);
int rcache__cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *ts);
struct pollfd;
int rcache__poll(struct pollfd *fds, unsigned long n, int ms); /* poll(), parked */

/* ---- errors (log.c) -------------------------------------------------------------------------- */

/* Sets the calling thread's detail message for its current call (printf-style). The
 * facade ties it to the handle when the call fails. Passwords must not be passed in. */
void rcache__errf(const char *fmt, ...) RCACHE__PRINTF(1, 2);
/* Called by the facade once a call has failed with `s`: ties the thread's message to `c`
 * (filling in rcache_strerror(s) when the backend gave no detail). */
void rcache__err_commit(const rcache *c, rcache_status s);
/* Forget any detail the thread recorded (the facade calls it when a call starts). */
void rcache__err_clear(void);
/* The detail recorded during the current call ("" when none); for log lines. */
const char *rcache__err_peek(void);
/* Records a detail that fn(ud, buf, size) writes only if someone asks for it (a failing
 * fast path stays cheap). fn and ud must stay valid while the handle is open. */
typedef void (*rcache__err_fn)(void *ud, char *buf, size_t size);
void rcache__err_lazy(rcache__err_fn fn, void *ud);
/* Why the cache is unavailable to the current call: RCACHE_EAUTH or RCACHE_ETLS when the
 * server refused the credentials or the certificate (other values are ignored). Read by the
 * facade with strict_config; cleared by rcache__err_clear(). */
void rcache__err_cause(rcache_status s);
rcache_status rcache__err_cause_get(void);

/* ---- URL (url.c): pure parsing, no I/O ------------------------------------------------------- */

typedef enum rcache__scheme {
  RCACHE__SCHEME_REDIS = 0, /* redis://      (standalone, or cluster when detected) */
  RCACHE__SCHEME_REDISS,    /* rediss://     (TLS)                                 */
  RCACHE__SCHEME_UNIX,      /* unix://, redis+unix://                              */
  RCACHE__SCHEME_SENTINEL,  /* redis+sentinel://, rediss+sentinel://               */
  RCACHE__SCHEME_MEMORY,    /* memory://                                           */
  RCACHE__SCHEME_NONE       /* none://, ""                                         */
} rcache__scheme;

typedef struct rcache__hostport {
  char *host; /* without IPv6 brackets */
  int port;
} rcache__hostport;

#define RCACHE__URL_MAX_HOSTS 64

typedef struct rcache__url {
  rcache__scheme scheme;
  bool tls;       /* rediss:// or rediss+sentinel:// */
  char *user;     /* NULL when absent (percent-decoded) */
  char *password; /* NULL when absent (percent-decoded) */
  rcache__hostport *hosts;
  size_t nhosts;
  char *path;   /* unix socket path */
  char *master; /* sentinel master name */
  int db;       /* 0 when absent */
  /* query options: -1 (or NULL) when absent */
  int connect_timeout_ms;
  int command_timeout_ms;
  int pool_size;
  int publish_stats_s;
  int64_t max_bytes; /* memory:// bound */
  char *tls_ca, *tls_cert, *tls_key, *tls_server_name, *tls_ciphers, *tls_ciphersuites;
  int tls_insecure;
  char *dns; /* DNS servers (dns=) */
  char *client_name;
  char *key_prefix;
  char *redacted; /* the whole URL with any password replaced by *** */
} rcache__url;

/* Parses `s` into *u (zeroed first). On failure returns RCACHE_EURL (or RCACHE_ENOMEM)
 * and writes a message naming the bad part into err (password redacted). */
rcache_status rcache__url_parse(const char *s, rcache__url *u, char *err, size_t errlen);
/* Bytes [b, e) of a string; empty when b == e. */
typedef struct rcache__span {
  size_t b, e;
} rcache__span;
/* rcache__url_parse() that also says where the secret is in s, for tests and fuzzing to
 * check redaction by position rather than by guessing. *secret (may be NULL) gets:
 *  - RCACHE_OK: the password as written (still percent-encoded, between the ':' after the
 *    user and the '@'); u->redacted shows s[0, b) "***" s[e, len) (then through
 *    rcache__redact()). Empty when the URL has no password ("redis://u:@h" has an empty one).
 *  - RCACHE_EURL: the span the message masks with "***", which holds the password wherever
 *    it could be: from the first ':' after "://" to the last '@'; the message ends with
 *    " in " and the URL with that span masked (control bytes shown as '?'), and quotes no
 *    fragment that overlaps it. Empty when the URL has no such span.
 *  - otherwise: empty. */
rcache_status rcache__url_parse_secret(const char *s, rcache__url *u, char *err, size_t errlen,
                                       rcache__span *secret);
void rcache__url_free(rcache__url *u);
/* Copies `in` to out replacing the password of every scheme://user:pass@ with ***. */
void rcache__redact(const char *in, char *out, size_t outlen);
/* The one masking rule for text shown to users (log.c; docs/operations.md "Security"):
 * every run of 4 or more consecutive characters of text that occurs in secret (the whole
 * secret when shorter) is overwritten with '*'. NULL or "" secret: no change. */
void rcache__mask(char *text, const char *secret);

/* ---- glob (glob.c): Redis' stringmatchlen rules ---------------------------------------------- */

bool rcache__glob_match(const char *pat, size_t plen, const char *s, size_t slen);
/* Writes `lit` with every glob metacharacter (* ? [ ] \) backslash-escaped into out.
 * Returns the length written, or (size_t)-1 when out is too small. */
size_t rcache__glob_escape(const char *lit, size_t len, char *out, size_t outlen);

/* ---- configuration shared by the handle and its backend -------------------------------------- */

typedef struct rcache__counters {
  _Atomic uint64_t hits, misses, near_hits, near_misses, sets, deletes, errors, timeouts, fallbacks,
      loads, load_errors, coalesced, early_refreshes, stale_served, breaker_opens,
      reconnect_attempts, near_invalidations, near_flushes;
} rcache__counters;

/* Remote-call latency histogram: log-linear buckets, lock-free. */
#define RCACHE__LAT_BUCKETS 256
typedef struct rcache__latency {
  _Atomic uint64_t bucket[RCACHE__LAT_BUCKETS];
  _Atomic uint64_t max_us;
} rcache__latency;
void rcache__latency_add(rcache__latency *l, int64_t us);
/* q in (0, 1]: returns the upper bound of the bucket holding that quantile, in ms. */
double rcache__latency_quantile(const rcache__latency *l, double q);

/* Text into a caller's buffer with snprintf's contract over many writes (stats.c): len counts
 * every byte the whole text needs, buf gets what fits; rcache__sink_end NUL-terminates a
 * truncated text and returns len. A sink of size 0 only counts. */
typedef struct rcache__sink {
  char *buf;
  size_t size, len;
} rcache__sink;
void rcache__put(rcache__sink *s, const char *fmt, ...) RCACHE__PRINTF(2, 3);
/* A label or JSON string value: the caller's text (client names, socket paths), with quotes,
 * backslashes and newlines escaped (Prometheus and JSON agree on \" \\ and \n), other
 * control characters dropped, and each byte that is not part of valid UTF-8 (a binary key's
 * family) written as U+FFFD: both formats must be UTF-8. */
void rcache__put_escaped(rcache__sink *s, const char *v);
size_t rcache__sink_end(rcache__sink *s);

typedef struct rcache__ctx {
  rcache_options opt; /* resolved: options overridden by URL query; strings owned */
  rcache__url url;    /* parsed URL */
  char *prefix;       /* key_prefix ("" when none) */
  size_t prefix_len;
  rcache__counters n;
  rcache__latency lat;
  struct rcache__near *near; /* near cache table (near.h), NULL when off; owned by the handle */
  /* A standalone backend that found out after open that its server is a cluster node
   * publishes the cluster backend replacing it here (redis.c); the facade calls it from
   * then on, and both live until rcache_close (calls in flight may still be in the old). */
  _Atomic(struct rcache__backend *) successor;
  /* Raised first thing by rcache_close: the background threads' connects and exchanges
   * give up at once (rcache__io_abort_on), so close joins them without waiting; what they
   * abandon is not logged as an outage (rcache__log drops RCACHE_LOG_WARN lines then). */
  _Atomic bool closing;
  /* The backend's first contact with its server (redis.c) is under way: calls wait for it
   * (rcache__be, the backend's await op). */
  _Atomic bool first_going;
} rcache__ctx;

/* Logs through opt.log_fn when level <= opt.log_level; the message is passed through
 * rcache__redact() and never includes the URL's password. */
void rcache__log(const rcache__ctx *ctx, int level, const char *fmt, ...) RCACHE__PRINTF(3, 4);

/* ---- the backend interface ------------------------------------------------------------------- */

/*
 * A backend stores already-prefixed keys (binary-safe, key/klen). All functions are
 * thread-safe. TTLs are in milliseconds; ttl_ms == 0 means no expiry. Statuses follow
 * the public contract; a backend never blocks past ctx->opt's deadlines. A backend that
 * cannot reach its server returns RCACHE_EUNAVAILABLE (fast, when its breaker is open) or
 * RCACHE_ETIMEOUT, and the facade applies the fallback rules.
 */
typedef struct rcache__backend rcache__backend;

enum { RCACHE__SET_NX = 1 }; /* set only if absent: RCACHE_MISS when it existed */

/* A deletion's running count and the caller's progress callback (fn may be NULL). */
typedef struct rcache__progress {
  rcache_progress_fn fn;
  void *ud;
  uint64_t done;
  bool stopped; /* fn returned false: the backend stops after this batch */
  /* a key the deletion leaves (keep_len bytes; NULL: none): the namespace's clear key, whose
   * removal in the middle of a scan would let the values it covers read as valid */
  const char *keep;
  size_t keep_len;
} rcache__progress;

/* true when p's deletion must leave key (len bytes) */
static inline bool rcache__progress_keeps(const rcache__progress *p, const char *key, size_t len) {
  return p && p->keep && len == p->keep_len && memcmp(key, p->keep, len) == 0;
}

/* Adds a batch's n deleted keys to p->done and tells fn. Returns false when fn asks to stop
 * (then p->stopped stays true). */
bool rcache__progress_add(rcache__progress *p, uint64_t n);

/* The current values of a tagged value's version keys (tags.c), read in the same round trip
 * as the value by a backend's get_tagged. */
#define RCACHE__VERSIONS_MAX (RCACHE_TAGS_MAX + 1)
/* What a near-cache hit read (near/near.h, "Seals"). */
typedef struct rcache__near_mark {
  uint64_t ticket; /* which entry (for rcache__near_seal); 0: not a near hit */
  uint64_t seal;   /* 0: none */
  uint32_t aux;    /* kept with the seal (tags.c: the frame's header length) */
} rcache__near_mark;

typedef struct rcache__versions {
  size_t n;                        /* keys read; 0: none (not a tagged value, or not possible) */
  int64_t v[RCACHE__VERSIONS_MAX]; /* [0] the clear key's, then each tag's; 0 when absent */
  uint64_t bad;                    /* bit i: key i held something that is not a version */
  rcache__near_mark near;          /* a near hit's entry and seal (ticket 0: not a near hit) */
  uint64_t asked; /* rcache__clear_asked before the request that read them went out */
} rcache__versions;

/* One server's connection pool as a backend reports it (rcache_get_server_stats). */
typedef struct rcache__server_gauges {
  char server[300]; /* host:port, [v6]:port or socket path */
  int breaker_state;
  int connections; /* open, or being opened */
  int busy;        /* of which in use (carrying calls, or being opened) */
  int calls;       /* calls on them: in flight or queued behind others (pipelined) */
  int waiting;     /* callers waiting for room on a connection */
} rcache__server_gauges;

typedef struct rcache__backend_ops {
  const char *mode; /* "memory", "none", "standalone", "cluster", "sentinel" */
  void (*destroy)(rcache__backend *b);
  /* pttl_ms may be NULL; else receives the key's remaining ms (-1 = none) read in the
   * same round trip as the value. */
  rcache_status (*get)(rcache__backend *b, const char *key, size_t klen, rcache_value *out,
                       int64_t *pttl_ms);
  /* optional (may be NULL): get, and in the same round trip the values of version keys
   * (tags.c): with nv > 0, of the nv keys vkeys (in that order); with nv == 0, when the value
   * is a tagged frame, of the version keys its header names, as the handle names them when
   * they are not digested (key_prefix + "__rc:clear", then key_prefix + "__rc:tag:" + tag),
   * in the frame's order. vers->n stays 0 when they were not read. */
  rcache_status (*get_tagged)(rcache__backend *b, const char *key, size_t klen, rcache_value *out,
                              int64_t *pttl_ms, const char *const *vkeys, const size_t *vlens,
                              size_t nv, rcache__versions *vers);
  rcache_status (*set)(rcache__backend *b, const char *key, size_t klen, const void *data,
                       size_t len, int64_t ttl_ms, int flags);
  /* RCACHE_OK when deleted, RCACHE_MISS when absent */
  rcache_status (*del)(rcache__backend *b, const char *key, size_t klen);
  /* deletes keys matching a full glob (prefix already applied and escaped), reporting
   * each batch to p (rcache__progress_add); the count is p->done */
  rcache_status (*del_match)(rcache__backend *b, const char *glob, size_t glen,
                             rcache__progress *p);
  /* visits up to limit (0 = all) keys matching glob; fn gets the full stored key */
  rcache_status (*scan)(rcache__backend *b, const char *glob, size_t glen, uint64_t limit,
                        rcache_scan_fn fn, void *ud);
  /* adds `by`; when the key is created by this call and ttl_ms > 0, sets that TTL */
  rcache_status (*incr)(rcache__backend *b, const char *key, size_t klen, int64_t by,
                        int64_t ttl_ms, int64_t *out);
  /* remaining ms, -1 = no expiry, -2 = absent */
  rcache_status (*pttl)(rcache__backend *b, const char *key, size_t klen, int64_t *ms);
  /* deletes everything in the logical database */
  rcache_status (*flushdb)(rcache__backend *b);
  rcache_status (*get_many)(rcache__backend *b, const char *const *keys, const size_t *klens,
                            size_t n, rcache_value *vals, rcache_status *statuses);
  /* ttl_ms[i] per key (0 = none) */
  rcache_status (*set_many)(rcache__backend *b, const char *const *keys, const size_t *klens,
                            const rcache_value *vals, size_t n, const int64_t *ttl_ms);
  /* fills latency, version, error; the facade fills mode and healthy */
  rcache_status (*health)(rcache__backend *b, rcache_health *h);
  /* true when the backend believes calls would reach its store now (breaker closed) */
  bool (*available)(rcache__backend *b);
  /* optional (may be NULL): adds backend figures (breaker state) to *s */
  void (*stats)(rcache__backend *b, rcache_stats *s);
  /* optional (may be NULL: no servers): server i's pool (cluster: node i, in the order they
   * became known); false past the last one */
  bool (*server)(rcache__backend *b, size_t i, rcache__server_gauges *g);
  /* optional (may be NULL): called in a forked child, before any other use and with no
   * other thread in the backend: drops the parent's connections without writing to them,
   * reinitialises locks a vanished thread may have held, restarts background threads. */
  void (*after_fork)(rcache__backend *b);
  /* optional: waits until ctx->first_going is false, or deadline_us (monotonic µs) */
  void (*await_first)(rcache__backend *b, int64_t deadline_us);
} rcache__backend_ops;

struct rcache__backend {
  const rcache__backend_ops *ops;
  rcache__ctx *ctx; /* owned by the handle, outlives the backend */
};

rcache_status rcache__none_open(rcache__ctx *ctx, rcache__backend **out);
rcache_status rcache__memory_open(rcache__ctx *ctx, rcache__backend **out);
/* fork.c's handlers (memory.c, "fork"): hold takes every shard lock of every memory:// store
 * of the process (after the gate: background threads idle); release, in the parent and in
 * the child, lets them go. */
void rcache__memory_fork_hold(void);
void rcache__memory_fork_release(void);

/* ---- allocation (util.c) ------------------------------------------------------------------ */

/* Every allocation of the library goes through these (free() of what they return is
 * rcache__free), so a test can make the Nth one fail. rcache__calloc checks n * size for
 * overflow as calloc does. */
void *rcache__malloc(size_t n);
void *rcache__calloc(size_t n, size_t size);
void *rcache__realloc(void *p, size_t n);
/* aligned_alloc's rules: n a multiple of align, a power of two */
void *rcache__aligned_alloc(size_t align, size_t n);
void rcache__free(void *p);
/*
 * For tests (tests/unit/test_alloc_fail.c walks every allocation of a flow with them).
 * rcache__alloc_fail_after: the calling thread's allocation after its next n fails (n = 0:
 * the very next one), and with once = false every one of that thread after it too, until
 * called again (n < 0: never fail). Only the calling thread counts, so the Nth allocation
 * of a flow is the same one on every run, whatever background threads allocate.
 * rcache__alloc_fail_hit: whether that armed failure has happened since it was armed.
 * rcache__alloc_fail_all: while on, every allocation of every thread fails (background
 * threads included).
 * rcache__alloc_calls: allocations the calling thread has attempted.
 * rcache__alloc_route_deps: makes jansson (and hiredis >= 1.0, which has a hook) allocate
 * through the indirection too. Tests only: the library itself never changes these
 * process-wide allocators, which belong to the application (it may use jansson and
 * hiredis itself, with allocators of its own).
 */
void rcache__alloc_fail_after(int64_t n, bool once);
bool rcache__alloc_fail_hit(void);
void rcache__alloc_fail_all(bool on);
uint64_t rcache__alloc_calls(void);
void rcache__alloc_route_deps(void);

/* ---- small helpers (util.c) ------------------------------------------------------------------ */

/* malloc'd copy of len bytes plus a NUL; NULL on ENOMEM. */
char *rcache__memdup0(const void *p, size_t len);
char *rcache__strdup(const char *s); /* NULL-safe */
/* Secrets (passwords, the AUTH command) are overwritten before their memory is given back,
 * so that no copy outlives its use in freed heap (OPENSSL_cleanse: not optimised away). */
void rcache__wipe(void *p, size_t n);
void rcache__free_secret(char *s); /* wipes strlen(s) bytes, then rcache__free; NULL-safe */
/* Overwrites the 64 KiB of stack below the caller's frame: a background thread that connected
 * (AUTH) calls it before it ends or goes back to waiting, since its stack outlives it (glibc
 * keeps the stacks of ended threads for new ones) and a copy of the AUTH command was found
 * there after rcache_close (tests/integration/test_wipe.c). */
void rcache__wipe_stack(void);
/* Parses a decimal int64 exactly as Redis' string2ll (no spaces, no "+", no leading
 * zeros, fits int64). */
bool rcache__parse_i64(const char *s, size_t len, int64_t *out);
/* The version a version key's value holds (tags.c): s NULL (the key is absent) reads as 0,
 * else s must be a decimal int64 other than 0. False, with *ver 0, when it is not a version. */
bool rcache__version_of(const char *s, size_t len, int64_t *ver);

#endif /* RCACHE_INTERNAL_H */
