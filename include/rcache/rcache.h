/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rcache — a Redis-backed application cache for C that never takes the application down.
 *
 * Everything core lives in this header. JSON helpers are in <rcache/json.h>, key helpers
 * in <rcache/keys.h>.
 *
 * Conventions used by every function below:
 *  - Thread safety: an `rcache *` handle is safe to share between any number of threads.
 *    An `rcache_value` / `rcache_options` / `rcache_stats` belongs to the caller.
 *  - Ownership: values returned through `rcache_value *out` are malloc'd by rcache and
 *    owned by the caller, who frees them with rcache_value_free(). On any status other
 *    than RCACHE_OK, `*out` is left zeroed ({NULL, 0}) so freeing it is always safe.
 *  - Keys are NUL-terminated, non-empty strings (the handle's key_prefix is prepended).
 *    Values are bytes and may contain NUL.
 *  - Statuses: RCACHE_OK (0) success, RCACHE_MISS (1) not an error, negative = error.
 *    Every call can return RCACHE_EINVAL for NULL/empty arguments and, on a Redis
 *    backend, RCACHE_EUNAVAILABLE when the cache cannot be reached within the deadline.
 *    rcache_errmsg() gives details of the calling thread's last failure. Any call that
 *    allocates can return RCACHE_ENOMEM (never disguised as a miss or an outage); nothing
 *    leaks and the handle stays usable (docs/errors.md, "Out of memory", call by call).
 *  - Deadlines: no round trip blocks longer than connect_timeout_ms + command_timeout_ms;
 *    most calls make one (docs/semantics.md lists the exceptions: get_or_set, scans).
 */
#ifndef RCACHE_RCACHE_H
#define RCACHE_RCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rcache/version.h"

#if defined(_WIN32)
#define RCACHE_API __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define RCACHE_API __attribute__((visibility("default")))
#else
#define RCACHE_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- statuses -------------------------------------------------------------------------------- */

/* Numbers never change; a retired code keeps its number as RCACHE_..._OBSOLETE. */
typedef enum rcache_status {
  RCACHE_OK = 0,            /* success / hit */
  RCACHE_MISS = 1,          /* key absent (not an error) */
  RCACHE_EINVAL = -1,       /* bad argument: NULL pointer, empty key, negative TTL, NaN... */
  RCACHE_ENOMEM = -2,       /* out of memory */
  RCACHE_EURL = -3,         /* malformed URL or unknown URL option */
  RCACHE_EUNAVAILABLE = -4, /* cache unreachable: the call was answered without it */
  RCACHE_ETIMEOUT = -5,     /* the server did not answer within the deadline */
  RCACHE_EAUTH = -6,        /* authentication refused (wrong password, ACL denies) */
  RCACHE_ETLS = -7,         /* TLS handshake or certificate verification failed */
  RCACHE_ETYPE = -8,        /* value is of the wrong type (not an integer, WRONGTYPE) */
  RCACHE_ERANGE = -9,       /* numeric overflow */
  RCACHE_ELOADER = -10,     /* the get_or_set loader failed; nothing was cached */
  RCACHE_EDECODE = -11,     /* a stored value could not be decoded (JSON, codec) */
  RCACHE_ESERVER = -12,     /* the server answered an error (OOM, READONLY, NOSCRIPT...) */
  RCACHE_ETOOBIG = -13,     /* key, value or reply larger than the configured maximum */
  RCACHE_EPROTO = -14,      /* protocol error: an unexpected reply */
  RCACHE_EIO = -15          /* socket or file I/O error */
} rcache_status;

/* A static, never-NULL English description of `s`, e.g. "cache unavailable". */
RCACHE_API const char *rcache_strerror(rcache_status s);

/* The library version, e.g. "0.1.0" (static string). */
RCACHE_API const char *rcache_version(void);

/* ---- values ---------------------------------------------------------------------------------- */

typedef struct rcache_value {
  char *data; /* malloc'd; data[len] == '\0' for convenience; NULL when empty/absent */
  size_t len;
} rcache_value;

/* Frees v->data and zeroes *v. NULL-safe and safe on a zeroed value. */
RCACHE_API void rcache_value_free(rcache_value *v);

/* Conventional TTLs in seconds. */
#define RCACHE_TTL_SHORT 60
#define RCACHE_TTL_MEDIUM 300
#define RCACHE_TTL_LONG 3600
#define RCACHE_TTL_DAY 86400

/* ---- options --------------------------------------------------------------------------------- */

/* Log levels for rcache_options.log_level and the log callback. */
enum { RCACHE_LOG_ERROR = 0, RCACHE_LOG_WARN = 1, RCACHE_LOG_INFO = 2, RCACHE_LOG_DEBUG = 3 };

/* Messages never contain a password: URLs in them have it replaced by "***". */
typedef void (*rcache_log_fn)(int level, const char *msg, void *ud);

/*
 * Options for rcache_open(). Always start from rcache_options_init(), then change what you
 * need. Strings are copied by rcache_open(); the caller keeps them. URL query parameters
 * (?connect_timeout_ms=...) override the fields below.
 * ABI (docs/abi.md): `size` records sizeof(rcache_options) as the program was compiled;
 * the library reads only that many bytes and gives later fields their defaults, so a
 * program built against an older header keeps working with a newer library.
 */
struct rcache_event; /* the event sink's argument, below */
typedef struct rcache_options {
  size_t size;            /* set by rcache_options_init(); do not change */
  const char *key_prefix; /* prepended to every key, pattern and flush; NULL = none */
  int connect_timeout_ms; /* default 1000 */
  int command_timeout_ms; /* default 500 */
  int pool_size;          /* connections per server, default 4 */
  int64_t default_ttl_s;  /* used when a call passes ttl 0; default 0 = no expiry */
  double ttl_jitter;      /* 0..1: each TTL is spread by ±jitter×TTL; default 0 */

  /* circuit breaker and reconnect */
  int breaker_failures;        /* consecutive failures that open the breaker, default 3 */
  double breaker_failure_rate; /* ...or this share of failed calls (0..1, 0 = off) */
  int breaker_window;          /* over each window of this many calls; defaults 0.5, 20 */
  int reconnect_min_ms;        /* first probe delay, default 50 */
  int reconnect_max_ms;        /* probe delay cap, default 2000 */
  double reconnect_jitter;     /* 0..1, share of the delay randomised, default 1 (full) */
  bool rate_limit_fail_closed; /* rate_limit while unavailable: false (default) = allow */

  /* near cache (L1) */
  size_t near_cache_bytes;       /* 0 = off (default); see docs/near-cache.md (standalone
                                    and Cluster; ignored by memory:// and none://) */
  int64_t near_cache_max_ttl_ms; /* default 60000; 0 = no cap beyond the key's own TTL */

  /* get_or_set */
  int flight_wait_ms;        /* how long a coalesced caller waits, default 2×command */
  bool lease;                /* cross-process lease (SET <prefix>__rc:lease:<key> NX PX), off */
  int lease_ms;              /* lease lifetime, default 5000 */
  double early_refresh_beta; /* XFetch β; 0 = off (default), 1 = the paper's value */
  int64_t stale_window_s;    /* stale-if-error window; 0 = off (default) */

  /* TLS (also settable in the URL: tls_ca=, tls_cert=, tls_key=, tls_insecure=1). Any of
   * them (and tls_ciphers, tls_ciphersuites) with a URL that is not TLS (redis://, unix://,
   * redis+sentinel://) fails rcache_open with RCACHE_EINVAL: never a silent plaintext. */
  const char *tls_ca_file;     /* NULL = the system store */
  const char *tls_cert_file;   /* client certificate (PEM) */
  const char *tls_key_file;    /* client key (PEM) */
  const char *tls_server_name; /* SNI / verified host name; NULL = the URL's host ("" is
                                  refused: it would verify no name) */
  bool tls_insecure;           /* skip verification (logged as a warning) */

  /* limits */
  size_t max_key_bytes;   /* default 1024 (including the prefix) */
  size_t max_value_bytes; /* default 4 MiB; bounds every reply too (docs/operations.md) */
  int max_redirects;      /* cluster MOVED/ASK cap, default 5 */
  /* SCAN … COUNT for delete_prefix / delete_pattern / flush / scan, default 1000. Each SCAN
   * holds the server for about 1 µs per key it visits: a smaller count (e.g. 20) keeps
   * other clients' latency flat during a big invalidation, at the cost of more round trips. */
  int scan_count;

  const char *client_name; /* CLIENT SETNAME, default "rcache" */

  rcache_log_fn log_fn; /* NULL = warnings and errors to stderr */
  void *log_ud;
  int log_level; /* highest level passed to log_fn, default RCACHE_LOG_WARN */

  /* A key longer than max_key_bytes (with the prefix) is stored under a shortened name
   * instead of failing with RCACHE_ETOOBIG: its head plus ":sha256:<hex of the whole key>",
   * exactly max_key_bytes long (see rcache_key_digest() in <rcache/keys.h>). Needs
   * max_key_bytes >= strlen(key_prefix) + 72. Default false. */
  bool long_key_digest;

  /* New fields go here, at the end only, and their default is all-zero bytes (0, NULL,
   * false; 0 may mean "the default" when that is another value): an older program's
   * struct ends earlier, and its trailing padding, which may hold the start of a new
   * field, was zeroed by rcache_options_init(). tests/unit/test_abi.c checks it. */

  /* Configuration errors are not outages. When true, rcache_open() makes the first
   * connection itself and waits for it (bounded by connect_timeout_ms; without this option
   * it is made in the background) and fails with RCACHE_EAUTH (wrong password,
   * unknown ACL user) or RCACHE_ETLS (certificate refused) when the server refused it for
   * that reason; and a call answered without the cache because of such a refusal returns
   * RCACHE_EAUTH / RCACHE_ETLS instead of RCACHE_EUNAVAILABLE (get_or_set still runs the
   * loader and returns RCACHE_OK; rate_limit applies rate_limit_fail_closed). A server that
   * is down or slow is still no error for rcache_open(). Default false. */
  bool strict_config;

  /* TLS policy (also in the URL: tls_ciphers=, tls_ciphersuites=; only with rediss://).
   * NULL = rcache's: TLS 1.2 with forward-secret AEAD suites only
   * ("ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL"), TLS 1.3 with OpenSSL's
   * defaults. OpenSSL's syntax: tls_ciphers for TLS 1.2 (SSL_CTX_set_cipher_list),
   * tls_ciphersuites for TLS 1.3 (SSL_CTX_set_ciphersuites). See docs/operations.md. */
  const char *tls_ciphers;
  const char *tls_ciphersuites;

  /* Implicit pipelining (docs/operations.md, "Sizing the pool"). Calls on one handle to one
   * server share its pool_size connections: a call takes an idle connection (or opens one)
   * while fewer than pool_size are in use; past that it joins the least loaded connection,
   * and the calls that queue on a connection while it is busy go out together in one write,
   * their replies handed back in order. pipeline_depth: calls queued or in flight on one
   * connection at most (0 = the default, 64; 1: no pipelining, a call waits for a free
   * connection, as in rcache 0.1; docs/operations.md, "Sizing the pool"). pipeline_max_bytes:
   * a connection carrying this many request bytes (queued or in flight) takes no further
   * call (0 = the default, 256 KiB). No call joins a connection while a reply of more than
   * 64 KiB streams in on it. */
  int pipeline_depth;
  size_t pipeline_max_bytes;

  /* Hits and misses per key family (docs/operations.md, "Monitoring"): a key's family is
   * its first key_family_segments ':'-separated segments (without key_prefix), e.g. 1 makes
   * "user:42" count under "user". At most RCACHE_MAX_FAMILIES families are kept, the rest
   * count under "other". 0 (default) = off. */
  unsigned key_family_segments;
  /* Called once at the end of every timed call (see rcache_op; near-cache hits included,
   * with a duration_us of 0: they take well under a microsecond and are not timed one by
   * one), on the calling thread: the way to plug in OpenTelemetry or any
   * tracer. Must be fast and must not call back into this handle. NULL (default) = off,
   * which costs one predictable branch. */
  struct rcache_event_sink {
    void (*on_event)(const struct rcache_event *ev, void *ud);
    void *ud;
  } event_sink;
  /* Figures from outside the process (docs/operations.md, "Figures from outside"): every
   * publish_stats_s seconds a background thread of the handle writes its
   * rcache_metrics_json(), with the host name and pid, to the key
   * "<key_prefix>__rc:stats:<client_name>:<host>:<pid>" with a TTL of three intervals, for
   * `rcache stats --clients` and `rcache watch`; once more at rcache_close(), marked closed.
   * No password and no key is published (family names are, when key_family_segments is
   * set). A failed write is logged (info) and never affects calls; rcache_open() fails with
   * RCACHE_ENOMEM when the publisher cannot start (memory, a thread). Redis servers only
   * (not memory:// or none://). URL: publish_stats_s=N. 0 (default) = off, at most 86400. */
  unsigned publish_stats_s;

  /* The non-blocking API (docs/async.md): at most this many internal threads run the
   * handle's _async operations, started as operations need them. 0 (default) = 16. */
  int async_threads;

  /* The DNS servers that resolve host names (also in the URL: dns=), as
   * "host[:port],host[:port]..." (IPv6 in brackets: "[::1]:53"); NULL (default) = the
   * system's (/etc/resolv.conf). Names are always resolved within the connect's deadline
   * (connect_timeout_ms) by c-ares, with /etc/hosts read first; addresses and Unix sockets
   * never reach a resolver. Nothing is cached: each new connection asks again. See
   * docs/operations.md, "Name resolution". */
  const char *dns_servers;
} rcache_options;

/* Fills the first `size` bytes of *o with the documented defaults (zeroing them, padding
 * included) and sets o->size = size. Call it through rcache_options_init(o), which passes
 * sizeof(rcache_options) as the program's compiler sees it. NULL-safe. */
RCACHE_API void rcache_options_init_sized(rcache_options *o, size_t size);
#define rcache_options_init(o) rcache_options_init_sized((o), sizeof(rcache_options))

/* ---- the handle ------------------------------------------------------------------------------ */

typedef struct rcache rcache; /* opaque, thread-safe */

/*
 * Opens a cache on `url` (NULL = $REDIS_URL, or redis://localhost:6379 when it is unset or
 * empty; an empty REDIS_URL, an unfilled template, also logs one RCACHE_LOG_WARN line).
 * See README for URL forms: redis://, rediss://, unix://, redis+sentinel://, memory://,
 * none:// (a `url` of "" is none://; an empty REDIS_URL never is). `o` may be NULL for the
 * defaults.
 * Never fails because Redis is down, and waits for no server: the first connection is made
 * in a background thread (a call made meanwhile waits for it, at most connect_timeout_ms,
 * and answers RCACHE_EUNAVAILABLE if it is still under way then;
 * when it fails the handle is in fallback mode; rcache_health_check() waits for it). With
 * o->strict_config, open makes that connection itself (at most connect_timeout_ms) and
 * fails with RCACHE_EAUTH / RCACHE_ETLS when the server refuses the credentials or the
 * certificate. On success *out is a handle the caller closes with rcache_close().
 * Returns RCACHE_OK, RCACHE_EINVAL (out NULL, bad option, tls_* options with a URL that is
 * not TLS, dns_servers not a list of addresses, o->size not set by rcache_options_init() or
 * from a newer header than the library's), RCACHE_EURL (bad URL; the
 * message from rcache_errmsg(NULL) names the bad part, password redacted), RCACHE_ENOMEM,
 * RCACHE_ETLS (unreadable certificate/key/CA file), and with strict_config RCACHE_EAUTH,
 * RCACHE_ETLS. On failure *out is NULL.
 */
RCACHE_API rcache_status rcache_open(rcache **out, const char *url, const rcache_options *o);

/* Stops background threads, closes connections and frees everything. NULL-safe. Waits for
 * no server: the connects, DNS look-ups and exchanges the background threads have under
 * way are abandoned within ~10 ms. No call on `c` may be in progress or follow. */
RCACHE_API void rcache_close(rcache *c);

/*
 * Details of the last failed call made *by the calling thread* on handle `c` (or of the
 * last failed rcache_open() when `c` is NULL): a message like "URL: port 70000 out of range"
 * or the server's error text. Returns "" when there is none. The string is owned by rcache
 * and valid until the thread's next call. Never contains a password.
 */
RCACHE_API const char *rcache_errmsg(const rcache *c);

/* The backend in use: "memory", "none", "standalone", "cluster" or "sentinel". Static. */
RCACHE_API const char *rcache_mode(const rcache *c);

/* ---- operations ------------------------------------------------------------------------------ */

/* Reads key. RCACHE_OK: *out holds the value. RCACHE_MISS: absent.
 * RCACHE_EUNAVAILABLE/ETIMEOUT: the cache could not answer (treat as a miss).
 * RCACHE_ETYPE: the key holds a non-string type. RCACHE_ETOOBIG: the key is longer than
 * max_key_bytes, or the value larger than max_value_bytes (the connection is dropped). */
RCACHE_API rcache_status rcache_get(rcache *c, const char *key, rcache_value *out);

/* Stores len bytes at key with ttl_s seconds to live (0 = default_ttl_s, or none).
 * RCACHE_OK, RCACHE_EINVAL (ttl < 0, data NULL with len > 0), RCACHE_ETOOBIG,
 * RCACHE_EUNAVAILABLE (write dropped), RCACHE_ESERVER (e.g. OOM). */
RCACHE_API rcache_status rcache_set(rcache *c, const char *key, const void *data, size_t len,
                                    int64_t ttl_s);

/* Deletes key. RCACHE_OK (deleted), RCACHE_MISS (was absent), RCACHE_EUNAVAILABLE. */
RCACHE_API rcache_status rcache_delete(rcache *c, const char *key);

/*
 * Deletes every key starting with `prefix` (taken literally: glob characters in it are
 * escaped). *deleted (may be NULL) receives the count. Note: "user:12" also matches
 * "user:123"; pass "user:12:" to mean user 12's keys only. Scans with SCAN, never KEYS.
 * RCACHE_OK, RCACHE_EINVAL (empty prefix), RCACHE_EUNAVAILABLE.
 */
RCACHE_API rcache_status rcache_delete_prefix(rcache *c, const char *prefix, uint64_t *deleted);

/* Deletes every key matching the Redis glob `glob` (*, ?, [a-z], [^x], \ escapes),
 * within key_prefix. Same statuses as rcache_delete_prefix(). */
RCACHE_API rcache_status rcache_delete_pattern(rcache *c, const char *glob, uint64_t *deleted);

/* Told the running count of deleted keys after each batch (one SCAN + UNLINK round trip
 * per server; one shard of memory://); counts never decrease. Returns false to stop.
 * Called in the caller's thread; must not call back into the same delete. */
typedef bool (*rcache_progress_fn)(uint64_t deleted, void *ud);

/*
 * rcache_delete_prefix() / rcache_delete_pattern() that call fn(count, ud) after each
 * batch (fn may be NULL), for tools that show progress or let a user stop. Same keys, same
 * round trips as without fn. When fn returns false the deletion stops after that batch:
 * RCACHE_OK, and *deleted holds the keys deleted so far (the rest are left in place).
 * Same statuses as rcache_delete_prefix(); on an error *deleted still holds the count.
 */
RCACHE_API rcache_status rcache_delete_prefix_progress(rcache *c, const char *prefix,
                                                       rcache_progress_fn fn, void *ud,
                                                       uint64_t *deleted);
RCACHE_API rcache_status rcache_delete_pattern_progress(rcache *c, const char *glob,
                                                        rcache_progress_fn fn, void *ud,
                                                        uint64_t *deleted);

/* Fills *out with malloc'd bytes that rcache takes over; returns RCACHE_OK or an error.
 * May be called concurrently for different keys; for one key once at a time, except that a
 * call starting after an invalidation or write of the key through the same handle loads
 * anew while an older load may still run (docs/semantics.md, "Races with loads"). */
typedef rcache_status (*rcache_loader_fn)(void *ud, rcache_value *out);

/*
 * Cache-aside read: returns the cached value, or calls load(ud, &v) once (one loader per
 * key at a time in this process; others wait for its result, unless the load began before an
 * invalidation or write of the key that returned before they started: they load anew), stores
 * v with ttl_s (not when such an invalidation or write came while it loaded) and returns it.
 * RCACHE_OK: *out holds the value (also when the cache is unavailable and the loader ran).
 * RCACHE_ELOADER: the loader failed, nothing was cached (unless a stale value within stale_window_s
 * was served: then RCACHE_OK). RCACHE_EINVAL. RCACHE_ENOMEM: also when the loader returned it, or
 * its value could not be cached for lack of memory (the value is then freed, not returned).
 * RCACHE_ETOOBIG: the key is too long, or the cached value is larger than max_value_bytes
 * (the loader is not called).
 */
RCACHE_API rcache_status rcache_get_or_set(rcache *c, const char *key, int64_t ttl_s,
                                           rcache_loader_fn load, void *ud, rcache_value *out);

/* Atomically adds `by` to the integer at key (a missing key counts as 0) and stores the
 * result in *out (may be NULL). RCACHE_OK, RCACHE_ETYPE (not an integer), RCACHE_ERANGE
 * (overflow), RCACHE_EUNAVAILABLE (no made-up count is returned). The key keeps its TTL. */
RCACHE_API rcache_status rcache_incr(rcache *c, const char *key, int64_t by, int64_t *out);
/* rcache_incr(c, key, -by, out); RCACHE_ERANGE when by == INT64_MIN. */
RCACHE_API rcache_status rcache_decr(rcache *c, const char *key, int64_t by, int64_t *out);

/* Like rcache_incr(), and when this call creates the counter it gets ttl_s (> 0) seconds
 * to live, atomically (a fixed window). Existing TTLs are left alone. */
RCACHE_API rcache_status rcache_incr_expire(rcache *c, const char *key, int64_t by, int64_t ttl_s,
                                            int64_t *out);

/*
 * Fixed-window rate limit: counts this call in a window of window_s seconds and sets
 * *allowed = count <= limit. *count (may be NULL) receives the count. While the cache is
 * unavailable it returns RCACHE_EUNAVAILABLE with *allowed = true (fail open) or false
 * when rate_limit_fail_closed is set, and *count = 0.
 */
RCACHE_API rcache_status rcache_rate_limit(rcache *c, const char *key, int64_t limit,
                                           int64_t window_s, bool *allowed, int64_t *count);

/* *exists = whether key holds a value rcache_get() would return: a tagged value invalidated
 * by rcache_invalidate_tag() or rcache_clear() is absent (and unlinked). Reads the value
 * (GET and PTTL in one round trip, a tagged value's versions as rcache_get() reads them; a
 * key that is no string, or too big to read, is asked with PTTL). RCACHE_OK or an error
 * (then *exists = false). */
RCACHE_API rcache_status rcache_exists(rcache *c, const char *key, bool *exists);

/* *ttl_s = remaining seconds (rounded up), -1 no expiry, -2 absent; absent as
 * rcache_exists() says (an invalidated tagged value is absent). RCACHE_OK or error. */
RCACHE_API rcache_status rcache_ttl(rcache *c, const char *key, int64_t *ttl_s);

/* Deletes the namespace's keys (every key with key_prefix), or the whole logical db
 * (FLUSHDB ASYNC) when there is no key_prefix. RCACHE_OK or an error. */
RCACHE_API rcache_status rcache_flush(rcache *c);

/* Reads n keys in one round trip per server. vals[i] and statuses[i] receive each key's
 * value and status (RCACHE_OK / RCACHE_MISS / error); the caller frees each vals[i].
 * Returns RCACHE_OK when the batch ran (see statuses), or the error that stopped it. */
RCACHE_API rcache_status rcache_get_many(rcache *c, const char *const *keys, size_t n,
                                         rcache_value *vals, rcache_status *statuses);

/* Stores n values (vals[i].data, vals[i].len) in one round trip per server. */
RCACHE_API rcache_status rcache_set_many(rcache *c, const char *const *keys,
                                         const rcache_value *vals, size_t n, int64_t ttl_s);

/* ---- health and statistics ------------------------------------------------------------------- */

typedef struct rcache_health {
  bool healthy;
  double latency_ms;       /* PING round trip (fractional ms); 0 on memory://, none:// */
  char error[256];         /* why not healthy ("" when healthy) */
  char server_version[32]; /* e.g. "7.0.15", "" when not reachable */
  char mode[16];           /* as rcache_mode() */
} rcache_health;

/* Pings the cache now (bounded by the deadlines) and fills *h. Right after rcache_open it
 * first waits for the handle's first contact with the server, made in the background
 * (bounded by that contact's own connect and command deadlines), so its answer covers it:
 * once it returns, the first connection has been made or has failed, a one-host redis://
 * URL's server has been asked whether it is a Cluster node (and the handle switched to
 * cluster mode if so), and the near cache's listeners have made their first attempt. A
 * program that must not go on before that (or a test) calls it once; one that needs the
 * cache calls it until it returns RCACHE_OK, within a bound of its own.
 * Returns RCACHE_OK when healthy, otherwise the reason (RCACHE_EUNAVAILABLE, also when the
 * ping timed out; RCACHE_EAUTH, RCACHE_ETLS, ...); RCACHE_EINVAL when c or h is NULL. */
RCACHE_API rcache_status rcache_health_check(rcache *c, rcache_health *h);

enum { RCACHE_BREAKER_CLOSED = 0, RCACHE_BREAKER_OPEN = 1, RCACHE_BREAKER_HALF_OPEN = 2 };

/* A snapshot of counters since rcache_open(). Plain data owned by the caller.
 * ABI (docs/abi.md): `size` is sizeof(rcache_stats) as the program was compiled, set by
 * rcache_get_stats(); the library writes and reads only that many bytes. New fields go at
 * the end only. */
typedef struct rcache_stats {
  size_t size;       /* set by rcache_get_stats() */
  bool available;    /* the cache is in use now (breaker not open) */
  int breaker_state; /* RCACHE_BREAKER_* (the worst over all nodes) */
  uint64_t breaker_opens;
  uint64_t reconnect_attempts;
  uint64_t hits, misses; /* remote tier (Redis or memory store) */
  uint64_t near_hits, near_misses;
  uint64_t sets, deletes;
  uint64_t errors; /* calls that failed with an error, including timeouts */
  uint64_t timeouts;
  uint64_t fallbacks; /* calls answered without the cache */
  uint64_t loads;     /* get_or_set loader calls */
  uint64_t load_errors;
  uint64_t coalesced; /* get_or_set callers that waited for another's load */
  uint64_t early_refreshes;
  uint64_t stale_served;
  uint64_t near_entries, near_bytes, near_invalidations, near_flushes;
  double latency_p50_ms, latency_p99_ms, latency_max_ms; /* remote calls */
  /* Gauges, now. calls_in_flight: public calls inside the handle, from the point they can
   * wait (a read: past the near cache, which answers without waiting) until they return,
   * loaders and waits for another caller's load included. calls_queued: calls waiting for
   * room on a connection (the sum of rcache_server_stats.waiting). loads_in_progress:
   * get_or_set loaders running. */
  uint64_t calls_in_flight, calls_queued, loads_in_progress;
} rcache_stats;

/* Fills the first `size` bytes of *s with a consistent-enough snapshot (counters are read
 * one by one; all zero when c is NULL) and sets s->size. Call it through
 * rcache_get_stats(c, s), which passes sizeof(rcache_stats) as compiled. Does nothing when s is
 * NULL. */
RCACHE_API void rcache_get_stats_sized(rcache *c, rcache_stats *s, size_t size);
#define rcache_get_stats(c, s) rcache_get_stats_sized((c), (s), sizeof(rcache_stats))

/* Writes the stats as Prometheus text (metric names rcache_*) or compact JSON into buf
 * (snprintf semantics: returns the length needed, excluding the NUL). They read only the
 * fields within s->size (a snapshot from an older program lacks the newer metrics, which
 * are then left out), so pass a struct rcache_get_stats() filled. */
RCACHE_API size_t rcache_stats_prometheus(const rcache_stats *s, char *buf, size_t size);
RCACHE_API size_t rcache_stats_json(const rcache_stats *s, char *buf, size_t size);

/* ---- observability (docs/operations.md, "Monitoring") --------------------------------------- */

/* The timed operations: each public call below is timed once, from entry to return
 * (rcache_exists, rcache_ttl, rcache_flush and rcache_scan are not). A read the near cache
 * answers is timed one in 64 (per shard of the near table), that one counting for 64,
 * unless an event sink is set (docs/operations.md, "Monitoring"). */
typedef enum rcache_op {
  RCACHE_OP_GET,             /* rcache_get (and the typed getters) */
  RCACHE_OP_SET,             /* rcache_set, rcache_set_tagged (and the typed setters) */
  RCACHE_OP_DELETE,          /* rcache_delete */
  RCACHE_OP_GET_OR_SET_HIT,  /* rcache_get_or_set answered from the cache */
  RCACHE_OP_GET_OR_SET_LOAD, /* rcache_get_or_set that loaded (or waited for a load) */
  RCACHE_OP_INCR,            /* rcache_incr / decr / incr_expire / rate_limit */
  RCACHE_OP_DELETE_MATCH,    /* rcache_delete_prefix / rcache_delete_pattern */
  RCACHE_OP_GET_MANY,        /* rcache_get_many */
  RCACHE_OP_SET_MANY,        /* rcache_set_many */
  RCACHE_OP_HEALTH,          /* rcache_health_check */
  RCACHE_OP_LOADER,          /* one get_or_set loader run (inside a GET_OR_SET_LOAD) */
  RCACHE_OP_INVALIDATE_TAG,  /* rcache_invalidate_tag, rcache_clear */
  RCACHE_OP_GET_TAGGED,      /* rcache_get_tagged (and the typed tagged getters) */
  RCACHE_OP_COUNT
} rcache_op;

/* "get", "set", "delete", "get_or_set_hit", "get_or_set_load", "incr", "delete_match",
 * "get_many", "set_many", "health", "loader", "invalidate_tag", "get_tagged"; NULL when out
 * of range. */
RCACHE_API const char *rcache_op_name(rcache_op op);

/* Fixed log-scale buckets: bucket i holds durations <= 2^i µs (1 µs .. 2^22 µs ≈ 4.2 s);
 * the last one (RCACHE_OP_BUCKETS - 1) holds everything longer (+Inf). */
#define RCACHE_OP_BUCKETS 24
/* The upper bound of bucket i in µs; UINT64_MAX for the last one and beyond. */
RCACHE_API uint64_t rcache_op_bucket_le_us(int i);

/* One operation's latency histogram since rcache_open(). ABI as rcache_stats: `size` is
 * set by rcache_get_op_stats(); new fields go at the end only. Buckets are not cumulative;
 * count is their sum. */
typedef struct rcache_op_stats {
  size_t size;
  uint64_t count;
  uint64_t sum_us;
  uint64_t bucket[RCACHE_OP_BUCKETS];
} rcache_op_stats;

/* Fills *s (its first `size` bytes) with op's histogram. RCACHE_EINVAL when c or s is
 * NULL or op is out of range (then *s is zeroed). Use rcache_get_op_stats(c, op, s). */
RCACHE_API rcache_status rcache_get_op_stats_sized(rcache *c, rcache_op op, rcache_op_stats *s,
                                                   size_t size);
#define rcache_get_op_stats(c, op, s)                                                              \
  rcache_get_op_stats_sized((c), (op), (s), sizeof(rcache_op_stats))

#define RCACHE_MAX_FAMILIES 32
/* Family i (0, 1, ... in order of first use) with key_family_segments set: its name into
 * name (NUL-terminated, truncated to namelen) and its get / get_or_set hits (near-cache hits
 * included) and misses. After the last family, one more index reports "other"; past it,
 * RCACHE_MISS; RCACHE_EINVAL when c is NULL. name, hits and misses may be NULL. */
RCACHE_API rcache_status rcache_get_family_stats(rcache *c, size_t i, char *name, size_t namelen,
                                                 uint64_t *hits, uint64_t *misses);

/* One server's connection pool (for a cluster: one node's), a snapshot of gauges. ABI as
 * rcache_stats: `size` is set by rcache_get_server_stats(); new fields go at the end only. */
typedef struct rcache_server_stats {
  size_t size;
  char server[300];     /* host:port, [v6]:port or Unix socket path; never a password */
  int breaker_state;    /* RCACHE_BREAKER_* of this server */
  unsigned connections; /* connections open (or being opened) */
  unsigned busy;        /* of which in use now */
  unsigned calls;       /* calls on them: sent and unanswered, or queued to be sent
                           (pipelining: several per connection) */
  unsigned waiting;     /* calls waiting for room on a connection (every connection in use
                           and full: pool_size, pipeline_depth, pipeline_max_bytes) */
} rcache_server_stats;

/* Fills *s (its first `size` bytes) with server i's gauges: i = 0 for a standalone or
 * Sentinel-managed server, one index per node (masters and replicas, in the order they
 * became known) for a cluster. RCACHE_OK; RCACHE_MISS past the last server (memory:// and
 * none:// have none; *s is zeroed); RCACHE_EINVAL when c or s is NULL or size is too small
 * to hold s->size. Use rcache_get_server_stats(c, i, s). Thread-safe; takes each pool's lock
 * briefly. */
RCACHE_API rcache_status rcache_get_server_stats_sized(rcache *c, size_t i, rcache_server_stats *s,
                                                       size_t size);
#define rcache_get_server_stats(c, i, s)                                                           \
  rcache_get_server_stats_sized((c), (i), (s), sizeof(rcache_server_stats))

/* What the event sink receives (options.event_sink). Pointers are valid during the call
 * only. Never holds a key or a password. */
typedef struct rcache_event {
  rcache_op op;
  rcache_status status; /* what the call returned */
  const char *family;   /* the key's family ("" when off or not keyed) */
  uint64_t duration_us; /* 0 for a near-cache hit (not timed: well under a microsecond) */
  const char *server;   /* host:port or socket path of the configured server, or the mode */
  size_t bytes;         /* value bytes read or written (0 when none) */
} rcache_event;

/* Everything above plus rcache_get_stats()'s figures and gauges as Prometheus text
 * (histograms rcache_op_duration_seconds{op,client,server} with _bucket/_sum/_count) or
 * JSON, into buf with snprintf semantics (returns the length needed, without the NUL). */
RCACHE_API size_t rcache_metrics_prometheus(rcache *c, char *buf, size_t size);
RCACHE_API size_t rcache_metrics_json(rcache *c, char *buf, size_t size);

/* Visits up to `limit` (0 = all) keys matching glob within key_prefix, without it in the
 * names passed to fn. fn returns false to stop. For tools (the CLI's `scan`): SCAN-based. */
typedef bool (*rcache_scan_fn)(const char *key, size_t len, void *ud);
/* Returns RCACHE_OK (also when fn stopped the scan), RCACHE_EINVAL (NULL handle, NULL or
 * empty glob, NULL fn), RCACHE_ENOMEM, RCACHE_EUNAVAILABLE. fn runs in the calling thread;
 * the key it gets is valid only during the call. */
RCACHE_API rcache_status rcache_scan(rcache *c, const char *glob, uint64_t limit, rcache_scan_fn fn,
                                     void *ud);

/* ==== tags ============================================================================
 * Invalidating related entries in O(1) (docs/semantics.md, "Tags"). A value written with
 * tags is stored with the versions its tags had; rcache_invalidate_tag() bumps one version
 * key, and every read (rcache_get, get_many, get_or_set, typed and JSON gets, near cache
 * included) then treats that value as a miss. Tags are NUL-terminated strings of any other
 * bytes (glob characters, colons, spaces). Keys starting with "__rc:" under the handle's
 * key_prefix are reserved for tag state. Tagged values are stored framed (a binary header,
 * then the data): other clients reading them see the header (docs/migrating.md).
 */

#define RCACHE_TAGS_MAX 32 /* tags per entry; more is RCACHE_ETOOBIG */

/* Stores data as rcache_set() does, tagged with tags[0..ntags) (the caller keeps ownership;
 * ntags may be 0: the value is then only subject to rcache_clear). Costs one round trip more
 * than rcache_set (the tags' versions). RCACHE_OK, RCACHE_EINVAL (tags NULL with ntags > 0, a
 * NULL or empty tag, ttl_s < 0), RCACHE_ETOOBIG (more than RCACHE_TAGS_MAX tags, key or
 * framed value too long), RCACHE_EUNAVAILABLE, RCACHE_ENOMEM. */
RCACHE_API rcache_status rcache_set_tagged(rcache *c, const char *key, const void *data, size_t len,
                                           int64_t ttl_s, const char *const *tags, size_t ntags);

/* rcache_get() of a value written with tags: the same result, with tags[0..ntags) (the
 * caller keeps ownership) said to be the tags the value was written with. Their version keys
 * are read in the same round trip as the value (standalone, Sentinel, and a cluster whose
 * key_prefix holds a hash tag, docs/semantics.md "Tags"): a tagged read then costs one round
 * trip without Lua. A tag of the value that was not declared costs one more round trip, and a
 * declared tag the value does not have only a wasted key in the read: wrong tags never change
 * the answer. rcache_get() reads tagged values in one round trip too: the same way when the
 * handle remembers the value's tags (it wrote or read the value), else through a Lua script
 * the server must allow (+evalsha +eval), two round trips without. Statuses as rcache_get(), plus
 * RCACHE_EINVAL and RCACHE_ETOOBIG for tags as rcache_set_tagged(). */
RCACHE_API rcache_status rcache_get_tagged(rcache *c, const char *key, const char *const *tags,
                                           size_t ntags, rcache_value *out);

/* Once it returns RCACHE_OK, no read through any handle on this key_prefix returns a value
 * written with tag before the call. One INCR, whatever the number of tagged entries.
 * RCACHE_OK (also on none://), RCACHE_EINVAL (NULL or empty tag), RCACHE_EUNAVAILABLE (Redis
 * unreachable: nothing was invalidated, never a silent success). */
RCACHE_API rcache_status rcache_invalidate_tag(rcache *c, const char *tag);

/* Once it returns RCACHE_OK, no read through any handle on this key_prefix returns a value
 * written under it before the call, tagged or not, by any call but the counters': a value
 * that is a decimal integer (rcache_incr(), rcache_set_i64(), rcache_set() of such text)
 * stays, so that INCR goes on taking it. One INCRBY of the prefix's clear key, whatever the
 * number of keys: every read gets the clear key's version with the value (in the same round
 * trip), and after the first clear rcache stores values with a small header that holds it
 * (docs/semantics.md "What rcache_clear covers": what other clients then see, eviction).
 * Statuses as rcache_invalidate_tag(). */
RCACHE_API rcache_status rcache_clear(rcache *c);

/* The tags a tagged loader adds once it has the data (owned by rcache, valid during the
 * loader's call only). */
typedef struct rcache_tags rcache_tags;
/* Adds a tag (copied). RCACHE_OK, RCACHE_EINVAL (NULL or empty), RCACHE_ETOOBIG (with the
 * up-front tags, more than RCACHE_TAGS_MAX in all: the get_or_set then fails), RCACHE_ENOMEM. */
RCACHE_API rcache_status rcache_tags_add(rcache_tags *t, const char *tag);
/* As rcache_loader_fn; tags may be passed to rcache_tags_add() during the call. */
typedef rcache_status (*rcache_tagged_loader_fn)(void *ud, rcache_value *out, rcache_tags *tags);

/*
 * rcache_get_or_set() whose loaded value is stored tagged with tags[0..ntags) plus those the
 * loader adds. The versions of the up-front tags are read before the loader runs, so an
 * invalidation during the load leaves the stored value already stale. Tags the loader adds
 * are stamped after it returns: an invalidation of those racing the load is not caught.
 * A failure to stamp the tags still returns the loaded value. Statuses as rcache_get_or_set()
 * plus those of rcache_set_tagged() for the tags.
 */
RCACHE_API rcache_status rcache_get_or_set_tagged(rcache *c, const char *key, int64_t ttl_s,
                                                  const char *const *tags, size_t ntags,
                                                  rcache_tagged_loader_fn load, void *ud,
                                                  rcache_value *out);
/* ==== end of tags ===================================================================== */

/* ==== typed helpers ====================================================================
 * Strings, integers, doubles and user codecs on top of rcache_get / rcache_set /
 * rcache_get_or_set, so every backend, key_prefix, TTL and fallback rule applies exactly as
 * for the byte API (a typed get answers RCACHE_EUNAVAILABLE when rcache_get would, a typed
 * get_or_set runs its loader when the cache is down). Values are stored as the plain text
 * other clients write and read (redis-cli, Node, Python, Go): no envelope, no type tag.
 * JSON is in <rcache/json.h>. On any status but RCACHE_OK, outputs are zeroed/NULL (a
 * codec's obj excepted: see rcache_get_obj).
 * Every call can also return RCACHE_EINVAL (NULL handle/key/out, empty key, ttl_s < 0),
 * RCACHE_ETOOBIG (key), RCACHE_ENOMEM and RCACHE_EUNAVAILABLE; rcache_errmsg() has details.
 */

/* Stores the NUL-terminated string s (without its NUL). Statuses as rcache_set();
 * RCACHE_EINVAL when s is NULL. */
RCACHE_API rcache_status rcache_set_str(rcache *c, const char *key, const char *s, int64_t ttl_s);

/* Reads a string. RCACHE_OK: *out is a malloc'd NUL-terminated copy the caller frees with
 * free(). RCACHE_MISS, RCACHE_ETYPE (not a string key) as rcache_get(); RCACHE_EDECODE when
 * the stored value contains a NUL byte (it would read cut short: use rcache_get()). */
RCACHE_API rcache_status rcache_get_str(rcache *c, const char *key, char **out);

/* Stores v as decimal text ("-42"): rcache_incr()/INCR work on it, redis-cli shows 42. */
RCACHE_API rcache_status rcache_set_i64(rcache *c, const char *key, int64_t v, int64_t ttl_s);

/* Reads an integer stored as decimal text (by rcache_set_i64, rcache_incr, or another client).
 * The text must be what Redis' INCR accepts — optional '-', digits, no leading zeros, no
 * spaces, no '+', within int64 — so rcache_get_i64 succeeds exactly when INCR would; else
 * RCACHE_ETYPE ("4.5", "abc", " 1", "012", "9223372036854775808"), as rcache_incr() does. */
RCACHE_API rcache_status rcache_get_i64(rcache *c, const char *key, int64_t *out);

/* Stores v as decimal text that reads back as exactly v, bit for bit: the first of 15, 16
 * or 17 significant digits that does ("0.1", "-0", "42", "1e+300", "0.30000000000000004",
 * "4.94065645841247e-324"), whatever the process's locale; infinities as "inf" / "-inf".
 * RCACHE_EINVAL for NaN (it has no portable text form). */
RCACHE_API rcache_status rcache_set_double(rcache *c, const char *key, double v, int64_t ttl_s);

/* Reads a double from decimal text as strtod() parses it in the "C" locale ("0.1", "42",
 * "1e3", "-0", "inf", "-Infinity"): the whole value, no surrounding spaces. RCACHE_ETYPE
 * when it is not a number (or is "nan"), RCACHE_ERANGE when it overflows a double ("1e999");
 * denormals are returned as they are. */
RCACHE_API rcache_status rcache_get_double(rcache *c, const char *key, double *out);

/* A user codec for structs: how an object becomes bytes and back. */
typedef struct rcache_codec {
  /* Encodes obj into out->data (malloc'd, then owned and freed by rcache) and out->len.
   * Returns RCACHE_OK or an error status. */
  rcache_status (*encode)(const void *obj, rcache_value *out, void *ud);
  /* Decodes len bytes (data[len] == '\0') into obj. Returns RCACHE_OK, or any error when
   * the bytes are not a valid encoding; it must leave obj in a state the caller can free. */
  rcache_status (*decode)(const char *data, size_t len, void *obj, void *ud);
  void *ud; /* passed to both */
} rcache_codec;

/* Fills the caller's object obj for rcache_get_or_set_obj(). RCACHE_OK or an error. */
typedef rcache_status (*rcache_obj_loader_fn)(void *ud, void *obj);

/* Encodes obj with codec->encode and stores the bytes. Statuses as rcache_set(); an encoder
 * error is returned as it is (a non-negative status other than RCACHE_OK as RCACHE_EINVAL). */
RCACHE_API rcache_status rcache_set_obj(rcache *c, const char *key, const rcache_codec *codec,
                                        const void *obj, int64_t ttl_s);

/* Reads key and decodes it into obj (the caller's object, which the caller initialises
 * before and frees after, whatever the status). RCACHE_OK, RCACHE_MISS, RCACHE_EDECODE (the
 * decoder failed; RCACHE_ENOMEM from it passes through), and rcache_get()'s statuses. */
RCACHE_API rcache_status rcache_get_obj(rcache *c, const char *key, const rcache_codec *codec,
                                        void *obj);

/*
 * Cache-aside for objects: decodes the cached value into obj, or on a miss calls
 * load(ud, obj) (single-flight, as rcache_get_or_set()), encodes obj and caches it; obj is
 * then the loader's object (not decoded again). A cached value the decoder refuses is
 * reloaded and overwritten, never returned. RCACHE_OK: obj is filled (also while the cache
 * is unavailable). RCACHE_ELOADER: the loader or the encoder failed and nothing was cached.
 * RCACHE_EINVAL, RCACHE_ENOMEM. Initialise obj before and free it after, whatever the status.
 */
RCACHE_API rcache_status rcache_get_or_set_obj(rcache *c, const char *key, int64_t ttl_s,
                                               const rcache_codec *codec, rcache_obj_loader_fn load,
                                               void *ud, void *obj);
/* ==== end of typed helpers ============================================================ */

/* ==== non-blocking API (docs/async.md) =================================================
 * For event-loop servers (libuv, libevent, epoll): every call below starts an operation and
 * returns at once; its result reaches a callback later, on the thread that calls
 * rcache_async_process() (the loop's thread). The callback receives what the blocking call of
 * the same name returns, with the same ownership, exactly once.
 *
 * The rules, for every rcache_..._async() call:
 *  - It returns RCACHE_OK, and then its callback runs exactly once, later; or RCACHE_EINVAL
 *    (c NULL, a NULL argument the call needs, the handle being closed) or RCACHE_ENOMEM, and
 *    then no callback ever runs for it. Every other outcome (a bad key, a miss, an outage)
 *    comes through the callback, with the blocking call's status.
 *  - A callback never runs before the starting call has returned, not even for a near-cache
 *    hit or a breaker's fast fail: it runs in a later rcache_async_process(). A callback may
 *    start new operations.
 *  - Deadline: a callback runs by start + connect_timeout_ms + 2 x command_timeout_ms (one
 *    command timeout more than the blocking call: the wait for a worker; get_or_set: twice
 *    that + flight_wait_ms + another round trip; the time the loader of rcache_get_or_set_async
 *    takes does not count), plus the time until the loop next calls rcache_async_process().
 *    An operation that has not finished by then completes with the status the blocking call
 *    gives for an unreachable cache (RCACHE_EUNAVAILABLE; rate_limit with *allowed as
 *    rate_limit_fail_closed says); a write may still be applied afterwards.
 *  - Inputs (keys, values, tags, codecs, JSON) are copied: the caller may free them when the
 *    call returns. The one exception: the object rcache_get_obj_async() and
 *    rcache_get_or_set_obj_async() fill, which must stay valid until their callback.
 *  - A NULL callback is allowed: the result is dropped (values freed).
 *  - rcache_errmsg() says nothing about asynchronous failures.
 *  - One loop thread per handle: rcache_async_process() must not run in two threads at once.
 *    The starting calls are thread-safe. A server with a loop per core opens a handle per loop.
 *  - rcache_close(c) with operations in flight must be called on the loop's thread: before it
 *    returns it runs every pending callback, those already finished with their result, the
 *    others with RCACHE_EUNAVAILABLE; none runs after it returns. A callback run by
 *    rcache_close must not start operations on c (they fail with RCACHE_EINVAL). Never call
 *    rcache_close(c) from one of c's callbacks or loaders.
 *  - fork(): a child's async machinery is its own (a new descriptor, new threads, from its
 *    first async call); operations the parent had in flight never complete in the child.
 */

/* The callbacks, by what the blocking call returns. `ud` is the user data of the starting call.
 * A value, string, JSON or batch given to a callback is the callback's to free (as the blocking
 * call's caller frees it: rcache_value_free, free, json_decref); `vals` and `statuses` arrays
 * are rcache's, valid during the call only (the values in vals are the callback's). */
typedef void (*rcache_async_fn)(void *ud, rcache_status s);
typedef void (*rcache_async_value_fn)(void *ud, rcache_status s, rcache_value v);
typedef void (*rcache_async_int_fn)(void *ud, rcache_status s, int64_t v);
typedef void (*rcache_async_bool_fn)(void *ud, rcache_status s, bool v);
typedef void (*rcache_async_rate_fn)(void *ud, rcache_status s, bool allowed, int64_t count);
typedef void (*rcache_async_many_fn)(void *ud, rcache_status s, rcache_value *vals,
                                     const rcache_status *statuses, size_t n);
typedef void (*rcache_async_str_fn)(void *ud, rcache_status s, char *str);
typedef void (*rcache_async_double_fn)(void *ud, rcache_status s, double v);

/* A descriptor that becomes readable when callbacks are ready to run, or when an operation
 * started needs an earlier timer than rcache_async_timeout_ms() last said: watch it for
 * reading in your loop, call rcache_async_process() when it is, then re-arm your timer (on Linux
 * it is an epoll descriptor: it also watches the connection the loop drives GETs on). Creates the
 * handle's async machinery on first use (as does the first _async call). The same descriptor for
 * the handle's life (in a forked child: the child's own); owned by rcache, never close it. -1 when
 * c is NULL or the machinery cannot be created (no memory, no descriptor left). */
RCACHE_API int rcache_async_fd(rcache *c);

/* Runs, on the calling thread, the callbacks that are ready (and the loaders of
 * rcache_get_or_set_async that are due), after completing the operations whose deadline has
 * passed: 128 completions at most per call, and none started after the call has run for
 * about 0.25 ms, so that a call stays short when many complete together (the rest are the
 * next call's: the descriptor stays readable). Returns how many
 * callbacks and loaders ran (0 when none, or c is NULL). Never blocks: call it when the
 * descriptor is readable and when rcache_async_timeout_ms() expires. */
RCACHE_API int rcache_async_process(rcache *c);

/* Milliseconds until rcache_async_process() must be called at the latest (0: now, callbacks
 * are ready), or -1 when no timer is needed (nothing in flight has a deadline). For your
 * loop's poll/epoll_wait timeout; call it again after each process. -1 when c is NULL. */
RCACHE_API int64_t rcache_async_timeout_ms(rcache *c);

/* rcache_get(), rcache_set(), rcache_delete() without blocking: results as theirs. */
RCACHE_API rcache_status rcache_get_async(rcache *c, const char *key, rcache_async_value_fn cb,
                                          void *ud);
RCACHE_API rcache_status rcache_set_async(rcache *c, const char *key, const void *data, size_t len,
                                          int64_t ttl_s, rcache_async_fn cb, void *ud);
RCACHE_API rcache_status rcache_delete_async(rcache *c, const char *key, rcache_async_fn cb,
                                             void *ud);

/* An asynchronous loader's job: finished by rcache_load_done() (from any thread). */
typedef struct rcache_load rcache_load;
/* Called on the loop's thread (in rcache_async_process) when the value of key must be loaded;
 * key is valid during the call only. It may start I/O and return: the load is finished later
 * by rcache_load_done(ld, ...), which must be called exactly once for every loader call, even
 * after rcache_close() (it then only frees ld). */
typedef void (*rcache_async_loader_fn)(void *ud, const char *key, rcache_load *ld);

/* Finishes a load: s = RCACHE_OK with the value in *v, which rcache takes over (v->data
 * malloc'd; *v is zeroed), or an error status (then *v, which may be NULL, is freed and
 * zeroed): the get_or_set then completes with RCACHE_ELOADER, as a failing rcache_loader_fn.
 * The load of rcache_get_or_set_obj_async is finished with v NULL: s alone says whether the
 * loader filled its object. May be called from inside the loader or later, from any thread.
 * ld must not be used after this call. */
RCACHE_API void rcache_load_done(rcache_load *ld, rcache_status s, rcache_value *v);

/*
 * rcache_get_or_set() without blocking, with an asynchronous loader. The same semantics:
 * single-flight with every caller of key in the process, blocking or not (one loader runs;
 * the others wait for its result), lease, early refresh, stale-if-error, the loader run
 * while the cache is unavailable. load(ud, key, ld) runs on the loop's thread; cb gets the
 * value (RCACHE_OK) or rcache_get_or_set()'s error status. The deadline (see above) is
 * suspended while the loader runs: the operation completes after rcache_load_done().
 */
RCACHE_API rcache_status rcache_get_or_set_async(rcache *c, const char *key, int64_t ttl_s,
                                                 rcache_async_loader_fn load, void *lud,
                                                 rcache_async_value_fn cb, void *ud);

/* rcache_incr(), rcache_decr(), rcache_incr_expire(), rcache_rate_limit(), rcache_exists(),
 * rcache_ttl() without blocking: cb gets what they store in *out (0 / false on an error). */
RCACHE_API rcache_status rcache_incr_async(rcache *c, const char *key, int64_t by,
                                           rcache_async_int_fn cb, void *ud);
RCACHE_API rcache_status rcache_decr_async(rcache *c, const char *key, int64_t by,
                                           rcache_async_int_fn cb, void *ud);
RCACHE_API rcache_status rcache_incr_expire_async(rcache *c, const char *key, int64_t by,
                                                  int64_t ttl_s, rcache_async_int_fn cb, void *ud);
RCACHE_API rcache_status rcache_rate_limit_async(rcache *c, const char *key, int64_t limit,
                                                 int64_t window_s, rcache_async_rate_fn cb,
                                                 void *ud);
RCACHE_API rcache_status rcache_exists_async(rcache *c, const char *key, rcache_async_bool_fn cb,
                                             void *ud);
RCACHE_API rcache_status rcache_ttl_async(rcache *c, const char *key, rcache_async_int_fn cb,
                                          void *ud);

/* rcache_get_many() and rcache_set_many() without blocking (keys and values are copied). cb of
 * get_many gets n values and statuses (vals[i] is the callback's to free). */
RCACHE_API rcache_status rcache_get_many_async(rcache *c, const char *const *keys, size_t n,
                                               rcache_async_many_fn cb, void *ud);
RCACHE_API rcache_status rcache_set_many_async(rcache *c, const char *const *keys,
                                               const rcache_value *vals, size_t n, int64_t ttl_s,
                                               rcache_async_fn cb, void *ud);

/* The typed helpers without blocking: results as rcache_get_str() (str is the callback's to
 * free()), rcache_get_i64(), rcache_get_double() and their setters. */
RCACHE_API rcache_status rcache_get_str_async(rcache *c, const char *key, rcache_async_str_fn cb,
                                              void *ud);
RCACHE_API rcache_status rcache_set_str_async(rcache *c, const char *key, const char *s,
                                              int64_t ttl_s, rcache_async_fn cb, void *ud);
RCACHE_API rcache_status rcache_get_i64_async(rcache *c, const char *key, rcache_async_int_fn cb,
                                              void *ud);
RCACHE_API rcache_status rcache_set_i64_async(rcache *c, const char *key, int64_t v, int64_t ttl_s,
                                              rcache_async_fn cb, void *ud);
RCACHE_API rcache_status rcache_get_double_async(rcache *c, const char *key,
                                                 rcache_async_double_fn cb, void *ud);
RCACHE_API rcache_status rcache_set_double_async(rcache *c, const char *key, double v,
                                                 int64_t ttl_s, rcache_async_fn cb, void *ud);

/* The tagged calls without blocking (docs/semantics.md "Tags"): results as rcache_set_tagged(),
 * rcache_get_tagged(), rcache_invalidate_tag() and rcache_clear() (tags are copied; RCACHE_EINVAL
 * at once when tags is NULL with ntags > 0 or a tag is NULL). A write or an invalidation
 * completed by its deadline with RCACHE_EUNAVAILABLE may still be applied afterwards. */
RCACHE_API rcache_status rcache_set_tagged_async(rcache *c, const char *key, const void *data,
                                                 size_t len, int64_t ttl_s, const char *const *tags,
                                                 size_t ntags, rcache_async_fn cb, void *ud);
RCACHE_API rcache_status rcache_get_tagged_async(rcache *c, const char *key,
                                                 const char *const *tags, size_t ntags,
                                                 rcache_async_value_fn cb, void *ud);
RCACHE_API rcache_status rcache_invalidate_tag_async(rcache *c, const char *tag, rcache_async_fn cb,
                                                     void *ud);
RCACHE_API rcache_status rcache_clear_async(rcache *c, rcache_async_fn cb, void *ud);

/* The loader of rcache_get_or_set_tagged_async, on the loop's thread: as rcache_async_loader_fn,
 * and it may add tags with rcache_tags_add(tags, ...) until it calls rcache_load_done(ld, ...)
 * (tags belongs to ld: valid until then, even after rcache_close). */
typedef void (*rcache_async_tagged_loader_fn)(void *ud, const char *key, rcache_tags *tags,
                                              rcache_load *ld);

/* rcache_get_or_set_tagged() without blocking, with an asynchronous loader (see
 * rcache_get_or_set_async): the value it loads is stored tagged with tags[0..ntags) (copied)
 * plus those it adds. cb gets what rcache_get_or_set_tagged() returns. */
RCACHE_API rcache_status rcache_get_or_set_tagged_async(rcache *c, const char *key, int64_t ttl_s,
                                                        const char *const *tags, size_t ntags,
                                                        rcache_async_tagged_loader_fn load,
                                                        void *lud, rcache_async_value_fn cb,
                                                        void *ud);

/* rcache_set_obj() without blocking: codec->encode runs in this call, on the calling thread (obj
 * may be freed when it returns; an encoder's error comes through cb, as rcache_set_obj() returns
 * it); the codec is copied. RCACHE_EINVAL at once when codec or its functions are NULL. */
RCACHE_API rcache_status rcache_set_obj_async(rcache *c, const char *key, const rcache_codec *codec,
                                              const void *obj, int64_t ttl_s, rcache_async_fn cb,
                                              void *ud);

/* rcache_get_obj() without blocking: cb gets its status once obj is filled. obj is decoded on an
 * internal thread, so it must stay valid and untouched by the caller until cb runs (and the
 * codec's functions must be thread-safe); the codec itself is copied. rcache never uses obj
 * after cb: a decode under way at the deadline (or rcache_close) delays cb until it returns. */
RCACHE_API rcache_status rcache_get_obj_async(rcache *c, const char *key, const rcache_codec *codec,
                                              void *obj, rcache_async_fn cb, void *ud);

/* The loader of rcache_get_or_set_obj_async, on the loop's thread: fills obj (the caller's, as
 * given to the starting call) and then calls rcache_load_done(ld, status, NULL) exactly once. */
typedef void (*rcache_async_obj_loader_fn)(void *ud, const char *key, void *obj, rcache_load *ld);

/* rcache_get_or_set_obj() without blocking, with an asynchronous loader: obj is decoded from the
 * cache or filled by load and then encoded, on an internal thread for the codec (as
 * rcache_get_obj_async: obj stays valid and untouched until cb). cb gets rcache_get_or_set_obj()'s
 * status. */
RCACHE_API rcache_status rcache_get_or_set_obj_async(rcache *c, const char *key, int64_t ttl_s,
                                                     const rcache_codec *codec,
                                                     rcache_async_obj_loader_fn load, void *lud,
                                                     void *obj, rcache_async_fn cb, void *ud);

/* Gets what rcache_delete_prefix() and rcache_delete_pattern() store in *deleted. */
typedef void (*rcache_async_count_fn)(void *ud, rcache_status s, uint64_t deleted);

/* rcache_delete_prefix() and rcache_delete_pattern() without blocking: cb gets their status and
 * the number of keys deleted. The deadline is per batch (one SCAN and one UNLINK per server):
 * each batch moves it on by two operation deadlines (see above), so a long deletion
 * runs to its end while one that stalls completes with RCACHE_EUNAVAILABLE and the keys deleted
 * by then; it then stops after the batch under way. */
RCACHE_API rcache_status rcache_delete_prefix_async(rcache *c, const char *prefix,
                                                    rcache_async_count_fn cb, void *ud);
RCACHE_API rcache_status rcache_delete_pattern_async(rcache *c, const char *glob,
                                                     rcache_async_count_fn cb, void *ud);

/* Gets what rcache_health_check() fills in: h is rcache's, valid during the call only. */
typedef void (*rcache_async_health_fn)(void *ud, rcache_status s, const rcache_health *h);

/* rcache_health_check() without blocking. Completed by its deadline, h says unhealthy with an
 * error "no answer by the deadline ...", and s is RCACHE_EUNAVAILABLE. */
RCACHE_API rcache_status rcache_health_check_async(rcache *c, rcache_async_health_fn cb, void *ud);
/* ==== end of non-blocking API ========================================================= */

#ifdef __cplusplus
}
#endif
#endif /* RCACHE_RCACHE_H */
