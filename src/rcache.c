/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The facade: argument checks, key namespacing, TTL policy, fallback rules, statistics
 * and get_or_set. Backends (memory, none, redis) only store prefixed keys.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/topology.h"
#include "engine/transport.h"
#include "handle.h"
#include "near/near.h"
#include "tags.h"

/* ---- small things ---------------------------------------------------------------------------- */

const char *rcache_version(void) {
  return RCACHE_VERSION_STRING;
}

const char *rcache_strerror(rcache_status s) {
  switch (s) {
  case RCACHE_OK:
    return "ok";
  case RCACHE_MISS:
    return "key not found";
  case RCACHE_EINVAL:
    return "invalid argument";
  case RCACHE_ENOMEM:
    return "out of memory";
  case RCACHE_EURL:
    return "malformed URL";
  case RCACHE_EUNAVAILABLE:
    return "cache unavailable";
  case RCACHE_ETIMEOUT:
    return "timed out";
  case RCACHE_EAUTH:
    return "authentication failed";
  case RCACHE_ETLS:
    return "TLS error";
  case RCACHE_ETYPE:
    return "wrong type";
  case RCACHE_ERANGE:
    return "numeric overflow";
  case RCACHE_ELOADER:
    return "loader failed";
  case RCACHE_EDECODE:
    return "value could not be decoded";
  case RCACHE_ESERVER:
    return "server error";
  case RCACHE_ETOOBIG:
    return "too big";
  case RCACHE_EPROTO:
    return "protocol error";
  case RCACHE_EIO:
    return "I/O error";
  }
  return "unknown status";
}

void rcache_value_free(rcache_value *v) {
  if (!v) return;
  rcache__free(v->data);
  v->data = NULL;
  v->len = 0;
}

static void default_options(rcache_options *o) {
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->connect_timeout_ms = 1000;
  o->command_timeout_ms = 500;
  o->pool_size = 4;
  o->breaker_failures = 3;
  o->breaker_failure_rate = 0.5;
  o->breaker_window = 20;
  o->reconnect_min_ms = 50;
  o->reconnect_max_ms = 2000;
  o->reconnect_jitter = 1.0;
  o->near_cache_max_ttl_ms = 60000;
  o->lease_ms = 5000;
  o->max_key_bytes = 1024;
  o->max_value_bytes = (size_t)4 << 20; /* one hostile reply stays a few MiB */
  o->max_redirects = 5;
  o->scan_count = 1000;
  o->log_level = RCACHE_LOG_WARN;
}

/* The program's struct is `size` bytes (docs/abi.md): fill those, however many we know. */
void rcache_options_init_sized(rcache_options *o, size_t size) {
  if (!o || size < sizeof o->size) return;
  rcache_options d;
  default_options(&d);
  memset(o, 0, size);
  memcpy(o, &d, size < sizeof d ? size : sizeof d);
  o->size = size;
}

const char *rcache_mode(const rcache *c) {
  return c ? rcache__be_now((rcache *)c)->ops->mode : "";
}

/* Every public call ends through here: failed calls leave their detail for
 * rcache_errmsg() and are counted. */
rcache_status rcache__done(rcache *c, rcache_status s) {
  if (s < 0) {
    if (c) atomic_fetch_add_explicit(&c->ctx.n.errors, 1, memory_order_relaxed);
    rcache__err_commit(c, s);
  }
  return s;
}

rcache_status rcache__einval(rcache *c, const char *what) {
  rcache__errf("invalid argument: %s", what);
  return rcache__done(c, RCACHE_EINVAL);
}

/* A backend that could not reach its store: the call is answered without the cache. */
bool rcache__unreachable(rcache_status s) {
  return s == RCACHE_EUNAVAILABLE || s == RCACHE_ETIMEOUT;
}

/* Maps a backend status to the public one: timeouts and unavailability both become
 * RCACHE_EUNAVAILABLE (the caller's remedy is the same), counted as fallbacks. With
 * strict_config, a cache unavailable because the server refused the credentials or the
 * certificate says so (RCACHE_EAUTH / RCACHE_ETLS): not an outage to wait out. */
static rcache_status unavailable(const rcache *c) {
  rcache_status cause = rcache__err_cause_get();
  return c->ctx.opt.strict_config && cause != RCACHE_OK ? cause : RCACHE_EUNAVAILABLE;
}

rcache_status rcache__remote(rcache *c, rcache_status s) {
  if (s == RCACHE_ETIMEOUT) atomic_fetch_add_explicit(&c->ctx.n.timeouts, 1, memory_order_relaxed);
  if (rcache__unreachable(s)) {
    atomic_fetch_add_explicit(&c->ctx.n.fallbacks, 1, memory_order_relaxed);
    s = unavailable(c);
  }
  return s;
}

bool rcache__without_cache(const rcache *c, rcache_status s) {
  return s == RCACHE_EUNAVAILABLE || (c && s != RCACHE_OK && s == unavailable(c));
}

/* ---- keys ------------------------------------------------------------------------------------ */

rcache_status rcache__key_make(rcache *c, const char *key, rcache__key *k) {
  k->p = k->stack;
  if (!key) {
    rcache__errf("invalid argument: key is NULL");
    return RCACHE_EINVAL;
  }
  size_t kl = strlen(key);
  if (kl == 0) {
    rcache__errf("invalid argument: key is empty");
    return RCACHE_EINVAL;
  }
  /* too long: RCACHE_ETOOBIG, or its digest form with long_key_digest (keys.c) */
  rcache_status s = rcache__key_stored_len(&c->ctx, kl, &k->len);
  if (s != RCACHE_OK) return s;
  if (k->len >= sizeof k->stack && !(k->p = rcache__malloc(k->len + 1))) return RCACHE_ENOMEM;
  s = rcache__key_write(&c->ctx, key, kl, k->p, k->len);
  if (s != RCACHE_OK) rcache__key_free(k);
  return s;
}

void rcache__key_free(rcache__key *k) {
  if (k->p != k->stack) rcache__free(k->p);
}

/* escape(key_prefix) + escape(literal) + "*" or escape(key_prefix) + glob: a glob that can
 * only match inside the namespace. malloc'd; NULL on ENOMEM. */
static char *ns_glob(rcache *c, const char *lit, const char *glob, size_t *len) {
  size_t ll = lit ? strlen(lit) : 0, gl = glob ? strlen(glob) : 0;
  size_t cap = 2 * (c->ctx.prefix_len + ll) + gl + 2;
  char *g = rcache__malloc(cap);
  if (!g) return NULL;
  size_t n = rcache__glob_escape(c->ctx.prefix, c->ctx.prefix_len, g, cap);
  if (lit) {
    n += rcache__glob_escape(lit, ll, g + n, cap - n);
    g[n++] = '*';
  } else {
    memcpy(g + n, glob, gl);
    n += gl;
  }
  g[n] = '\0';
  *len = n;
  return g;
}

/* ---- TTL policy ------------------------------------------------------------------------------ */

#define MAX_TTL_S ((int64_t)100 * 365 * 86400) /* a century; beyond that is a bug */

/* ttl_s (0 = default or none) → milliseconds with jitter; -1 when invalid. */
int64_t rcache__ttl_ms(rcache *c, int64_t ttl_s) {
  if (ttl_s < 0 || ttl_s > MAX_TTL_S) return -1;
  if (ttl_s == 0) ttl_s = c->ctx.opt.default_ttl_s;
  if (ttl_s == 0) return 0;
  int64_t ms = ttl_s * 1000;
  double j = c->ctx.opt.ttl_jitter;
  if (j > 0) {
    ms += (int64_t)((double)ms * j * (2 * rcache__rand01() - 1));
    if (ms < 1) ms = 1;
  }
  return ms;
}

/* ---- open / close ---------------------------------------------------------------------------- */

static rcache_status check_options(const rcache_options *o) {
  const char *bad = NULL;
  if (o->connect_timeout_ms <= 0)
    bad = "connect_timeout_ms must be > 0";
  else if (o->command_timeout_ms <= 0)
    bad = "command_timeout_ms must be > 0";
  else if (o->pool_size < 1 || o->pool_size > 1024)
    bad = "pool_size must be 1..1024";
  else if (o->publish_stats_s > 86400)
    bad = "publish_stats_s must be 0..86400";
  else if (o->pipeline_depth < 0 || o->pipeline_depth > 1024)
    bad = "pipeline_depth must be 0..1024";
  else if (o->default_ttl_s < 0 || o->default_ttl_s > MAX_TTL_S)
    bad = "default_ttl_s out of range";
  else if (!(o->ttl_jitter >= 0 && o->ttl_jitter <= 1))
    bad = "ttl_jitter must be 0..1";
  else if (o->breaker_failures < 1)
    bad = "breaker_failures must be >= 1";
  else if (!(o->breaker_failure_rate >= 0 && o->breaker_failure_rate <= 1))
    bad = "breaker_failure_rate must be 0..1";
  else if (o->breaker_window < 1 || o->breaker_window > 1000000)
    bad = "breaker_window must be 1..1000000";
  else if (o->reconnect_min_ms < 1 || o->reconnect_max_ms < o->reconnect_min_ms)
    bad = "reconnect_min_ms must be >= 1 and <= reconnect_max_ms";
  else if (!(o->reconnect_jitter >= 0 && o->reconnect_jitter <= 1))
    bad = "reconnect_jitter must be 0..1";
  else if (o->near_cache_max_ttl_ms < 0)
    bad = "near_cache_max_ttl_ms must be >= 0";
  else if (o->flight_wait_ms < 0)
    bad = "flight_wait_ms must be >= 0";
  else if (o->lease && o->lease_ms <= 0)
    bad = "lease_ms must be > 0";
  else if (!(o->early_refresh_beta >= 0 && o->early_refresh_beta <= 100))
    bad = "early_refresh_beta must be 0..100";
  else if (o->stale_window_s < 0 || o->stale_window_s > MAX_TTL_S)
    bad = "stale_window_s out of range";
  else if (o->max_key_bytes < 1)
    bad = "max_key_bytes must be >= 1";
  else if (o->max_value_bytes < 1)
    bad = "max_value_bytes must be >= 1";
  else if (o->max_redirects < 0)
    bad = "max_redirects must be >= 0";
  else if (o->scan_count < 1 || o->scan_count > 1000000)
    bad = "scan_count must be 1..1000000";
  else if (o->log_level < RCACHE_LOG_ERROR || o->log_level > RCACHE_LOG_DEBUG)
    bad = "log_level out of range";
  else if (o->async_threads < 0 || o->async_threads > 1024)
    bad = "async_threads must be 0..1024";
  else if (o->tls_server_name && !*o->tls_server_name)
    bad = "tls_server_name is empty (NULL means the URL's host; \"\" would verify no name)";
  if (!bad) return RCACHE_OK;
  rcache__errf("invalid option: %s", bad);
  return RCACHE_EINVAL;
}

/* TLS settings for a server reached without TLS would be silently ignored: a plaintext
 * connection the application believes protected. memory:// and none:// reach no server. */
static rcache_status check_tls_scheme(const rcache_options *o, const rcache__url *u) {
  bool any = o->tls_ca_file || o->tls_cert_file || o->tls_key_file || o->tls_server_name ||
             o->tls_insecure || o->tls_ciphers || o->tls_ciphersuites;
  bool server = u->scheme != RCACHE__SCHEME_MEMORY && u->scheme != RCACHE__SCHEME_NONE;
  if (!any || !server || u->tls) return RCACHE_OK;
  rcache__errf("invalid option: TLS settings (tls_*) given for a URL without TLS; use "
               "rediss:// or rediss+sentinel://, or remove them");
  return RCACHE_EINVAL;
}

/* URL query parameters override the options; strings end up owned by the context. */
static rcache_status resolve_options(rcache__ctx *ctx) {
  rcache__url *u = &ctx->url;
  rcache_options *o = &ctx->opt;
  if (u->connect_timeout_ms > 0) o->connect_timeout_ms = u->connect_timeout_ms;
  if (u->command_timeout_ms > 0) o->command_timeout_ms = u->command_timeout_ms;
  if (u->pool_size > 0) o->pool_size = u->pool_size;
  if (u->publish_stats_s >= 0) o->publish_stats_s = (unsigned)u->publish_stats_s;
  if (u->tls_insecure >= 0) o->tls_insecure = u->tls_insecure != 0;
  /* every field lets go of the caller's string before any copy can fail: free_ctx() then
   * frees only copies */
  const rcache_options in = *o;
  o->key_prefix = o->tls_ca_file = o->tls_cert_file = o->tls_key_file = NULL;
  o->tls_server_name = o->client_name = o->dns_servers = NULL;
#define TAKE(field, urlfield)                                                                      \
  do {                                                                                             \
    const char *src = u->urlfield ? u->urlfield : in.field;                                        \
    if (src && !(o->field = rcache__strdup(src))) return RCACHE_ENOMEM;                            \
  } while (0)
  TAKE(key_prefix, key_prefix);
  TAKE(tls_ca_file, tls_ca);
  TAKE(tls_cert_file, tls_cert);
  TAKE(tls_key_file, tls_key);
  TAKE(tls_server_name, tls_server_name);
  TAKE(tls_ciphers, tls_ciphers);
  TAKE(tls_ciphersuites, tls_ciphersuites);
  TAKE(client_name, client_name);
  TAKE(dns_servers, dns);
#undef TAKE
  if (!o->client_name && !(o->client_name = rcache__strdup("rcache"))) return RCACHE_ENOMEM;
  if (o->flight_wait_ms == 0) o->flight_wait_ms = 2 * o->command_timeout_ms;
  if (o->pipeline_depth == 0) o->pipeline_depth = 64; /* see rcache.h */
  if (o->pipeline_max_bytes == 0) o->pipeline_max_bytes = (size_t)256 << 10;
  /* with a lease, the leader may wait for another process's load: followers must too */
  if (o->lease && o->flight_wait_ms < 2 * o->lease_ms + o->command_timeout_ms)
    o->flight_wait_ms = 2 * o->lease_ms + o->command_timeout_ms;
  ctx->prefix = (char *)(o->key_prefix ? o->key_prefix : "");
  ctx->prefix_len = strlen(ctx->prefix);
  return RCACHE_OK;
}

static void free_ctx(rcache__ctx *ctx) {
  rcache__free((char *)ctx->opt.key_prefix);
  rcache__free((char *)ctx->opt.tls_ca_file);
  rcache__free((char *)ctx->opt.tls_cert_file);
  rcache__free((char *)ctx->opt.tls_key_file);
  rcache__free((char *)ctx->opt.tls_server_name);
  rcache__free((char *)ctx->opt.tls_ciphers);
  rcache__free((char *)ctx->opt.tls_ciphersuites);
  rcache__free((char *)ctx->opt.client_name);
  rcache__free((char *)ctx->opt.dns_servers);
  rcache__url_free(&ctx->url);
}

static rcache_status open_backend(rcache *c) {
  switch (c->ctx.url.scheme) {
  case RCACHE__SCHEME_NONE:
    return rcache__none_open(&c->ctx, &c->b);
  case RCACHE__SCHEME_MEMORY:
    return rcache__memory_open(&c->ctx, &c->b);
  default:
    break;
  }
  /* Redis: the near cache's table first, so the backend can attach its listener(s) */
  const rcache_options *o = &c->ctx.opt;
  if (o->near_cache_bytes > 0 &&
      (!(c->ctx.near = rcache__near_new(o->near_cache_bytes, o->near_cache_max_ttl_ms)) ||
       rcache__tags_watch(c) != RCACHE_OK)) {
    rcache__near_free(c->ctx.near);
    c->ctx.near = NULL;
    return RCACHE_ENOMEM;
  }
  rcache_status s = rcache__topology_open(&c->ctx, &c->b);
  if (s != RCACHE_OK || (c->ctx.near && rcache__near_sources(c->ctx.near) == 0)) {
    if (s == RCACHE_OK)
      rcache__log(&c->ctx, RCACHE_LOG_WARN, "near cache not supported in %s mode yet: off",
                  c->b->ops->mode);
    rcache__near_free(c->ctx.near); /* no listener keeps it coherent: never use it */
    c->ctx.near = NULL;
  }
  return s;
}

/* strict_config: whether the server refused the credentials or the certificate. The health
 * call connects when no connection was tried yet (bounded by connect_timeout_ms), or reads
 * why the first one failed. A server that is down or slow is no configuration error; memory
 * that ran out on the way (say, in a one-host URL's cluster detection) fails the open, as
 * any allocation of open does. */
static rcache_status check_config(rcache *c, char *why, size_t size) {
  rcache_health h;
  memset(&h, 0, sizeof h);
  rcache__backend *be = rcache__be(c);
  rcache_status s = be->ops->health(be, &h);
  rcache__err_clear();
  if (s != RCACHE_EAUTH && s != RCACHE_ETLS && s != RCACHE_ENOMEM) return RCACHE_OK;
  snprintf(why, size, "%s", h.error[0] ? h.error : rcache_strerror(s));
  return s;
}

#define DEFAULT_URL "redis://localhost:6379"

/* The URL for rcache_open(NULL): $REDIS_URL, else the default. An empty REDIS_URL is an
 * unfilled deployment template, not a request to turn caching off: it counts as unset
 * (*empty_env says so, for a warning). Only the program can pass "" (none://). */
static const char *url_from_env(bool *empty_env) {
  const char *env = getenv("REDIS_URL");
  *empty_env = env && !*env;
  return env && *env ? env : DEFAULT_URL;
}

/* Reads only the o->size bytes the program has (docs/abi.md); later fields keep their
 * defaults. A larger size comes from a newer header whose fields we cannot honour. */
static rcache_status import_options(rcache_options *dst, const rcache_options *o) {
  default_options(dst);
  if (o->size < sizeof o->size || o->size > sizeof *dst) {
    rcache__errf("invalid option: size %zu is not 1..%zu (%s)", o->size, sizeof *dst,
                 o->size ? "options from a newer rcache header: link the newer library"
                         : "set it up with rcache_options_init()");
    return RCACHE_EINVAL;
  }
  memcpy(dst, o, o->size);
  dst->size = sizeof *dst;
  return RCACHE_OK;
}

rcache_status rcache_open(rcache **out, const char *url, const rcache_options *given) {
  rcache__err_clear();
  if (!out) return rcache__einval(NULL, "out is NULL");
  *out = NULL;
  rcache_options opt; /* from here on `o` is a whole struct of this library's size */
  const rcache_options *o = NULL;
  if (given) {
    if (import_options(&opt, given) != RCACHE_OK) return rcache__done(NULL, RCACHE_EINVAL);
    o = &opt;
  }
  bool empty_env = false;
  if (!url) url = url_from_env(&empty_env);
  rcache__fork_watch();
  rcache *c = rcache__calloc(1, sizeof *c);
  if (!c) return rcache__done(NULL, RCACHE_ENOMEM);
  atomic_init(&c->gen, rcache__fork_gen());
  atomic_init(&c->fork_claim, rcache__fork_gen());
  if (o) {
    c->ctx.opt = *o;
  } else {
    rcache_options_init(&c->ctx.opt);
  }
  /* key_prefix etc. still point at the caller's strings until resolve_options copies them */
  c->ctx.opt.key_prefix = c->ctx.opt.tls_ca_file = c->ctx.opt.tls_cert_file = NULL;
  c->ctx.opt.tls_key_file = c->ctx.opt.tls_server_name = c->ctx.opt.client_name = NULL;
  c->ctx.opt.tls_ciphers = c->ctx.opt.tls_ciphersuites = c->ctx.opt.dns_servers = NULL;
  rcache_status s = check_options(o ? o : &c->ctx.opt);
  if (s == RCACHE_OK && empty_env)
    rcache__log(&c->ctx, RCACHE_LOG_WARN,
                "REDIS_URL is set but empty: using " DEFAULT_URL " (none:// turns caching off)");
  char err[512];
  if (s == RCACHE_OK) {
    s = rcache__url_parse(url, &c->ctx.url, err, sizeof err);
    if (s != RCACHE_OK) rcache__errf("%s", err);
  }
  if (s == RCACHE_OK && o) s = check_tls_scheme(o, &c->ctx.url);
  if (s == RCACHE_OK) {
    if (o) { /* now take the caller's strings (URL values win) */
      c->ctx.opt.key_prefix = o->key_prefix;
      c->ctx.opt.tls_ca_file = o->tls_ca_file;
      c->ctx.opt.tls_cert_file = o->tls_cert_file;
      c->ctx.opt.tls_key_file = o->tls_key_file;
      c->ctx.opt.tls_server_name = o->tls_server_name;
      c->ctx.opt.client_name = o->client_name;
      c->ctx.opt.tls_ciphers = o->tls_ciphers;
      c->ctx.opt.tls_ciphersuites = o->tls_ciphersuites;
      c->ctx.opt.dns_servers = o->dns_servers;
    }
    s = resolve_options(&c->ctx);
  }
  if (s == RCACHE_OK) s = check_options(&c->ctx.opt);
  size_t own_len; /* the namespace's own keys (<key_prefix>__rc:clear) must fit too */
  if (s == RCACHE_OK &&
      (c->ctx.prefix_len >= c->ctx.opt.max_key_bytes ||
       rcache__key_stored_len(&c->ctx, sizeof RCACHE__CLEAR_KEY - 1, &own_len) != RCACHE_OK)) {
    rcache__errf("invalid option: key_prefix (%zu bytes) leaves no room under max_key_bytes "
                 "(%zu) for the namespace's own keys (key_prefix + \"%s\")",
                 c->ctx.prefix_len, c->ctx.opt.max_key_bytes, RCACHE__CLEAR_KEY);
    s = RCACHE_EINVAL;
  }
  if (s == RCACHE_OK && c->ctx.opt.dns_servers)
    s = rcache__dns_servers_check(c->ctx.opt.dns_servers);
  if (s == RCACHE_OK && !(c->flights = rcache__flights_new())) s = RCACHE_ENOMEM;
  c->stale_ms = c->ctx.opt.stale_window_s * 1000;
  if (s == RCACHE_OK) s = open_backend(c);
  if (s != RCACHE_OK) {
    rcache__flights_free(c->flights);
    free_ctx(&c->ctx);
    rcache__free(c);
    return rcache__done(NULL, s);
  }
  rcache__obs_init(c);
  if (c->ctx.opt.strict_config) {
    char why[sizeof((rcache_health *)0)->error];
    s = check_config(c, why, sizeof why);
    if (s != RCACHE_OK) {
      rcache_close(c);
      rcache__errf("%s", why);
      return rcache__done(NULL, s);
    }
  }
  s = rcache__publish_start(c); /* a handle that failed to open publishes nothing */
  if (s != RCACHE_OK) {
    rcache_close(c);
    rcache__errf("publish_stats_s: cannot start the publisher (out of memory or threads)");
    return rcache__done(NULL, s);
  }
  *out = c;
  return RCACHE_OK;
}

void rcache__first_await(rcache *c) {
  if (c->b->ops->await_first)
    c->b->ops->await_first(c->b, rcache__now_us() + (int64_t)c->ctx.opt.connect_timeout_ms * 1000);
}

void rcache_close(rcache *c) {
  if (!c) return;
  rcache__enter(c);        /* in a child: the parent's threads are not there to be joined */
  rcache__async_close(c);  /* its workers call into c: first */
  rcache__publish_stop(c); /* its last figures, while the backend is still there */
  atomic_store(&c->ctx.closing, true); /* background connects in progress give up */
  rcache__backend *succ = atomic_load(&c->ctx.successor);
  if (succ) succ->ops->destroy(succ);
  c->b->ops->destroy(c->b);
  rcache__near_free(c->ctx.near); /* after the backend: its listener feeds the table */
  rcache__flights_free(c->flights);
  rcache__tags_free(c);
  free_ctx(&c->ctx);
  rcache__free(c);
}

/* ---- fork ---------------------------------------------------------------------------------- */

/* Makes an inherited handle this process's own: nothing the parent had in flight (a
 * connection's half-read reply, a single-flight load, a lock held by one of its threads)
 * exists here, and the parent's sockets must never carry a byte from this process. */
static void after_fork(rcache *c) {
  rcache__async_after_fork(c);
  if (c->ctx.near) rcache__near_after_fork(c->ctx.near);
  rcache__flights_after_fork(c->flights);
  if (c->b->ops->after_fork) c->b->ops->after_fork(c->b);
  rcache__backend *succ = atomic_load(&c->ctx.successor);
  if (succ && succ->ops->after_fork) succ->ops->after_fork(succ);
  rcache__obs_after_fork(c);
  rcache__publish_after_fork(c);
  rcache__log(&c->ctx, RCACHE_LOG_INFO,
              "fork: process %ld inherited the handle; the parent's connections were dropped "
              "unused and new ones open as needed",
              (long)getpid());
}

void rcache__forked(rcache *c) {
  uint64_t g = rcache__fork_gen();
  uint64_t claim = atomic_load(&c->fork_claim);
  if (claim != g && atomic_compare_exchange_strong(&c->fork_claim, &claim, g)) {
    after_fork(c);
    atomic_store_explicit(&c->gen, g, memory_order_release);
    return;
  }
  /* Another thread of this process is at it. It does no network I/O (closes descriptors,
   * reinitialises locks, starts threads), so the wait is short; the loop ends when it is
   * done, or when this process forks again (then that generation is ours to recover). */
  while (atomic_load_explicit(&c->gen, memory_order_acquire) != g && rcache__fork_gen() == g)
    rcache__sleep_us(100);
  if (rcache__fork_gen() != g) rcache__forked(c);
}

/* ---- reads and writes ------------------------------------------------------------------------ */

/* With a stale window, values written by get_or_set live stale_ms longer in the store than
 * their logical TTL; to get_or_set, the last stale_ms of a value's life are its stale tail,
 * served only when a loader fails. Plain reads (get, exists, ttl) see the stored lifetime:
 * counters and rcache_set values are never extended, so they are never misread. */
bool rcache__in_stale_tail(const rcache *c, int64_t pttl) {
  return c->stale_ms > 0 && pttl >= 0 && pttl <= c->stale_ms;
}

/* The near cache's part of a read: a hit answers it (true); otherwise *ticket is the fetch
 * to complete with near_done() (0 when there is no near cache). Only a public read's (rd)
 * hits and misses are counted: its hit in its family's group too, and told whether it is one
 * to time (observe.c). */
static bool near_lookup(rcache *c, const rcache__key *k, rcache_value *out, int64_t *pttl,
                        int64_t now_us, rcache__read *rd, uint64_t *ticket,
                        rcache__near_mark *mark) {
  rcache__near *n = c->ctx.near;
  *ticket = 0;
  if (!n) return false;
  rcache__near_hit hit;
  if (rcache__near_get(n, k->p, k->len, now_us, out, pttl, rd && rd->count ? &hit : NULL, mark) ==
      RCACHE_OK) {
    if (rd) COUNT(c, near_hits); /* a public read's: not tags.c's reads of version keys */
    if (rd && rd->count) {
      rd->group = hit.group;
      rd->sample = hit.seq % RCACHE__NEAR_SAMPLE == 0;
    }
    return true;
  }
  if (rd) COUNT(c, near_misses);
  *ticket = rcache__near_begin(n, k->p, k->len); /* before the GET is sent */
  return false;
}

/* The remote reply for a near fetch: s and the logical remaining ms (-1 none). The value is
 * filed under the family of the public read that fetched it, if any. */
static void near_done(rcache *c, const rcache__key *k, const rcache__read *rd, uint64_t ticket,
                      rcache_status s, const rcache_value *v, int64_t ms, bool version) {
  if (!ticket) return;
  if (s == RCACHE_OK)
    rcache__near_fill(c->ctx.near, ticket, k->p, k->len, v->data, v->len, rcache__now_us(), ms,
                      rcache__obs_group(c, rd ? rd->key : NULL));
  else if (s == RCACHE_MISS && version)
    /* an absent version key is kept as "" (tags.c reads it as 0): Redis tracks a key read
     * while absent, so its creation invalidates the entry as any change does. Only for
     * tags.c's reads of version keys: any other key absent is a miss, not "" (the watched
     * prefix may be shorter than the version keys' mark, and __rc:stats: keys share it) */
    rcache__near_fill(c->ctx.near, ticket, k->p, k->len, "", 0, rcache__now_us(), -1,
                      RCACHE__NEAR_NOGROUP);
  else
    rcache__near_end(c->ctx.near, ticket, k->p, k->len, s == RCACHE_MISS);
}

/* This process wrote key k (or tried to): its near entry goes at once. Not updated in
 * place: Redis tracks keys that were read, so a value we wrote but did not read would not
 * be invalidated by someone else's later write. */
static void near_drop(rcache *c, const char *key, size_t klen) {
  if (c->ctx.near) rcache__near_invalidate(c->ctx.near, key, klen);
}

static void near_flush(rcache *c) {
  if (!c->ctx.near) return;
  COUNT(c, near_flushes); /* before the flush, as in tracking.c: never behind what a reader saw */
  rcache__near_flush(c->ctx.near);
}

rcache_status rcache__get_stored(rcache *c, const rcache__key *k, rcache_value *out, int64_t *pttl,
                                 rcache_value *stale, rcache__read *rd, bool *near_hit,
                                 rcache__versions *vers, const rcache__tagdecl *decl) {
  int64_t ms = -2;
  uint64_t ticket;
  /* a public read's start, and the near cache's "now": one clock read for a near hit */
  int64_t now_us = rd || c->ctx.near ? rcache__now_us() : 0;
  if (rd) rd->now_us = now_us;
  if ((*near_hit = near_lookup(c, k, out, pttl, now_us, rd, &ticket, vers ? &vers->near : NULL)))
    return RCACHE_OK;
  if (rd && !rd->in_flight) { /* a public read that may wait from here on */
    rcache__in_flight(c, 1);
    rd->in_flight = true;
  }
  bool want = pttl || c->stale_ms > 0 || ticket;
  rcache__backend *be = rcache__be(c);
  rcache_status s;
  /* the value with the versions it needs (the clear key's, and its tags'), in one round trip
   * (with a near cache the versions come from it, tracked) */
  if (vers && !ticket && be->ops->get_tagged && !rcache__tags_plain_read(c, k, decl))
    s = rcache__tags_read(c, be, k, out, want ? &ms : NULL, decl, vers);
  else
    s = be->ops->get(be, k->p, k->len, out, want ? &ms : NULL);
  /* the near cache keeps values no longer than their logical TTL (never their stale tail);
   * one in its stale tail is not kept, but its bytes still count against older fetches */
  int64_t logical = ms >= 0 && c->stale_ms > 0 ? (ms > c->stale_ms ? ms - c->stale_ms : 0) : ms;
  near_done(c, k, rd, ticket, s, out, logical, !vers);
  if (s == RCACHE_OK && stale && rcache__in_stale_tail(c, ms)) { /* get_or_set's view only */
    *stale = *out;
    *out = (rcache_value){NULL, 0};
    s = RCACHE_MISS;
  }
  if (pttl) *pttl = ms >= 0 && c->stale_ms > 0 ? ms - c->stale_ms : ms;
  return s;
}

/* A stored value, a tagged one only while its tags' versions are current (tags.c). */
rcache_status rcache__get_full(rcache *c, const rcache__key *k, rcache_value *out, int64_t *pttl,
                               rcache_value *stale, const rcache__tagdecl *decl, rcache__read *rd) {
  bool near_hit;
  rcache__versions vers = {.asked = rcache__clear_asked(c)};
  rcache_status s = rcache__get_stored(c, k, out, pttl, stale, rd, &near_hit, &vers, decl);
  if (s == RCACHE_OK) s = rcache__tags_unwrap(c, k->p, k->len, out, &vers, decl);
  if (rd) rd->near_hit = near_hit && s == RCACHE_OK;
  if (stale && stale->data && rcache__tags_unwrap(c, k->p, k->len, stale, &vers, decl) != RCACHE_OK)
    *stale = (rcache_value){NULL, 0};
  if (near_hit && s == RCACHE_OK) return s; /* counted as a near hit */
  if (s == RCACHE_OK)
    COUNT(c, hits);
  else if (s == RCACHE_MISS)
    COUNT(c, misses);
  return rcache__remote(c, s);
}

rcache_status rcache_get(rcache *c, const char *key, rcache_value *out) {
  if (out) *out = (rcache_value){NULL, 0};
  rcache__read rd = RCACHE__READ(key);
  BEGIN_KEYED(c, key, k);
  if (!out) {
    rcache__key_free(&k);
    return rcache__einval(c, "out is NULL");
  }
  rcache_status s = rcache__get_full(c, &k, out, NULL, NULL, NULL, &rd);
  rcache__key_free(&k);
  rcache__observe_read(c, RCACHE_OP_GET, &rd, s, out->len);
  return rcache__done(c, s);
}

rcache_status rcache__set_full(rcache *c, const rcache__key *k, const void *data, size_t len,
                               int64_t ttl_ms, int flags, const int64_t *clear) {
  if (len > c->ctx.opt.max_value_bytes) {
    rcache__errf("value of %zu bytes exceeds max_value_bytes %zu", len, c->ctx.opt.max_value_bytes);
    return RCACHE_ETOOBIG;
  }
  if (ttl_ms > 0 && (flags & RCACHE__SET_STALE)) ttl_ms += c->stale_ms;
  bool frame = flags & RCACHE__SET_FRAME;
  rcache_value st = {(char *)data, len}; /* what is stored: escaped or framed (tags.h) */
  if (!frame) {
    rcache_status s = rcache__tags_plain(c, data, len, clear, &st);
    if (s != RCACHE_OK) return rcache__remote(c, s);
  }
  rcache__tags_note(c, k->p, k->len, frame);
  rcache__backend *be = rcache__be(c);
  rcache_status s = be->ops->set(be, k->p, k->len, st.data ? st.data : "", st.len, ttl_ms,
                                 flags & RCACHE__SET_NX);
  if (st.data != data) rcache__free(st.data);
  near_drop(c, k->p, k->len);
  if (s == RCACHE_OK) COUNT(c, sets);
  return rcache__remote(c, s);
}

rcache_status rcache_set(rcache *c, const char *key, const void *data, size_t len, int64_t ttl_s) {
  int64_t t0 = rcache__now_us();
  BEGIN_KEYED(c, key, k);
  rcache__in_flight(c, 1);
  rcache_status s;
  int64_t ttl_ms = rcache__ttl_ms(c, ttl_s);
  if (!data && len > 0) {
    rcache__errf("invalid argument: data is NULL with len %zu", len);
    s = RCACHE_EINVAL;
  } else if (ttl_ms < 0) {
    rcache__errf("invalid argument: ttl_s %lld out of range", (long long)ttl_s);
    s = RCACHE_EINVAL;
  } else {
    rcache__inval_key(c, k.p, k.len); /* a load in progress must not store over it (handle.h) */
    s = rcache__set_full(c, &k, data, len, ttl_ms, 0, NULL);
  }
  rcache__key_free(&k);
  rcache__observe(c, RCACHE_OP_SET, key, s, t0, len);
  return rcache__done(c, s);
}

rcache_status rcache_delete(rcache *c, const char *key) {
  int64_t t0 = rcache__now_us();
  BEGIN_KEYED(c, key, k);
  rcache__in_flight(c, 1);
  /* The key's epoch moves before the DEL is sent, never after: a get_or_set load that starts
   * after this call returns then reads the new epoch (and loads after the change the caller
   * made before deleting), while one that started before either sees the bump when it ends
   * and does not store, or stored first and checks again after its SET (load_and_store). A
   * bump after the DEL would leave a window where a load begun before the change finds the
   * epoch unchanged and stores its old value after the DEL. */
  rcache__inval_key(c, k.p, k.len);
  rcache__backend *be = rcache__be(c);
  rcache_status s = be->ops->del(be, k.p, k.len);
  near_drop(c, k.p, k.len);
  if (s == RCACHE_OK) COUNT(c, deletes);
  rcache__key_free(&k);
  s = rcache__remote(c, s);
  rcache__observe(c, RCACHE_OP_DELETE, key, s, t0, 0);
  return rcache__done(c, s);
}

bool rcache__progress_add(rcache__progress *p, uint64_t n) {
  p->done += n;
  if (p->fn && !p->stopped && !p->fn(p->done, p->ud)) p->stopped = true;
  return !p->stopped;
}

/* The backend's deletion of the keys matching glob g (gl bytes), leaving the clear key
 * (tags.h): a scan that removed it before the values it covers would let them read as valid
 * while it goes on. */
static rcache_status del_match(rcache *c, const char *g, size_t gl, rcache__progress *p) {
  rcache__key ck;
  rcache_status s = rcache__key_make(c, RCACHE__CLEAR_KEY, &ck);
  if (s != RCACHE_OK) return s;
  p->keep = ck.p;
  p->keep_len = ck.len;
  rcache__backend *be = rcache__be(c);
  s = be->ops->del_match(be, g, gl, p);
  p->keep = NULL;
  rcache__key_free(&ck);
  return s;
}

static rcache_status delete_glob(rcache *c, const char *lit, const char *glob, rcache__progress *p,
                                 uint64_t *deleted) {
  int64_t t0 = rcache__now_us();
  size_t gl;
  char *g = ns_glob(c, lit, glob, &gl);
  if (!g) return rcache__done(c, RCACHE_ENOMEM);
  rcache__in_flight(c, 1);
  rcache__inval_everything(c); /* before the scan starts, as rcache_delete's bump */
  rcache_status s = del_match(c, g, gl, p);
  rcache__free(g);
  near_flush(c);
  atomic_fetch_add_explicit(&c->ctx.n.deletes, p->done, memory_order_relaxed);
  if (deleted) *deleted = p->done;
  s = rcache__remote(c, s);
  rcache__observe(c, RCACHE_OP_DELETE_MATCH, NULL, s, t0, 0);
  return rcache__done(c, s);
}

rcache_status rcache_delete_prefix_progress(rcache *c, const char *prefix, rcache_progress_fn fn,
                                            void *ud, uint64_t *deleted) {
  rcache__err_clear();
  if (deleted) *deleted = 0;
  if (!c) return rcache__einval(NULL, "handle is NULL");
  rcache__enter(c);
  if (!prefix || !*prefix) return rcache__einval(c, "prefix is NULL or empty (use rcache_flush)");
  rcache__progress p = {.fn = fn, .ud = ud};
  return delete_glob(c, prefix, NULL, &p, deleted);
}

rcache_status rcache_delete_pattern_progress(rcache *c, const char *glob, rcache_progress_fn fn,
                                             void *ud, uint64_t *deleted) {
  rcache__err_clear();
  if (deleted) *deleted = 0;
  if (!c) return rcache__einval(NULL, "handle is NULL");
  rcache__enter(c);
  if (!glob || !*glob) return rcache__einval(c, "pattern is NULL or empty");
  rcache__progress p = {.fn = fn, .ud = ud};
  return delete_glob(c, NULL, glob, &p, deleted);
}

rcache_status rcache_delete_prefix(rcache *c, const char *prefix, uint64_t *deleted) {
  return rcache_delete_prefix_progress(c, prefix, NULL, NULL, deleted);
}

rcache_status rcache_delete_pattern(rcache *c, const char *glob, uint64_t *deleted) {
  return rcache_delete_pattern_progress(c, glob, NULL, NULL, deleted);
}

rcache_status rcache_flush(rcache *c) {
  rcache__err_clear();
  if (!c) return rcache__einval(NULL, "handle is NULL");
  rcache__enter(c);
  rcache__inval_everything(c); /* before the command goes out, as rcache_delete's bump */
  if (c->ctx.prefix_len == 0) {
    rcache__backend *be = rcache__be(c);
    rcache_status s = be->ops->flushdb(be);
    near_flush(c);
    return rcache__done(c, rcache__remote(c, s));
  }
  rcache__progress p = {0};
  size_t gl;
  char *g = ns_glob(c, "", NULL, &gl);
  if (!g) return rcache__done(c, RCACHE_ENOMEM);
  rcache_status s = del_match(c, g, gl, &p);
  rcache__free(g);
  near_flush(c);
  return rcache__done(c, rcache__remote(c, s));
}

/* ---- counters -------------------------------------------------------------------------------- */

static rcache_status incr_full(rcache *c, const char *key, int64_t by, int64_t ttl_ms,
                               int64_t *out) {
  int64_t v = 0, t0 = rcache__now_us();
  if (out) *out = 0;
  BEGIN_KEYED(c, key, k);
  rcache__in_flight(c, 1);
  rcache__backend *be = rcache__be(c);
  rcache_status s = be->ops->incr(be, k.p, k.len, by, ttl_ms, &v);
  near_drop(c, k.p, k.len);
  rcache__key_free(&k);
  if (s == RCACHE_OK && out) *out = v;
  s = rcache__remote(c, s);
  rcache__observe(c, RCACHE_OP_INCR, key, s, t0, 0);
  return rcache__done(c, s);
}

rcache_status rcache_incr(rcache *c, const char *key, int64_t by, int64_t *out) {
  return incr_full(c, key, by, 0, out);
}

rcache_status rcache_decr(rcache *c, const char *key, int64_t by, int64_t *out) {
  if (by == INT64_MIN) {
    rcache__err_clear();
    if (out) *out = 0;
    rcache__errf("decrement by INT64_MIN would overflow");
    return rcache__done(c, c ? RCACHE_ERANGE : RCACHE_EINVAL);
  }
  return incr_full(c, key, -by, 0, out);
}

rcache_status rcache_incr_expire(rcache *c, const char *key, int64_t by, int64_t ttl_s,
                                 int64_t *out) {
  if (ttl_s <= 0 || ttl_s > MAX_TTL_S) {
    rcache__err_clear();
    if (out) *out = 0;
    return rcache__einval(c, "ttl_s must be > 0");
  }
  return incr_full(c, key, by, ttl_s * 1000, out);
}

rcache_status rcache_rate_limit(rcache *c, const char *key, int64_t limit, int64_t window_s,
                                bool *allowed, int64_t *count) {
  if (count) *count = 0;
  if (!allowed) {
    rcache__err_clear();
    return rcache__einval(c, "allowed is NULL");
  }
  *allowed = false;
  if (limit < 0 || window_s <= 0) {
    rcache__err_clear();
    return rcache__einval(c, "limit must be >= 0 and window_s > 0");
  }
  int64_t n = 0;
  rcache_status s = rcache_incr_expire(c, key, 1, window_s, &n);
  if (s == RCACHE_OK) {
    *allowed = n <= limit;
    if (count) *count = n;
  } else if (rcache__without_cache(c, s)) {
    *allowed = !c->ctx.opt.rate_limit_fail_closed;
  }
  return s;
}

/* The remaining ms of k as a read sees it (-2 absent, -1 no expiry): a tagged value whose
 * versions are no longer current is absent (and unlinked, as a read does), so exists and ttl
 * agree with get. The value is read (GET and PTTL in one round trip; a tagged one's versions
 * as rcache_get reads them), not the near cache. A key that is no string, or too big to
 * read, is answered by PTTL alone. */
static rcache_status live_pttl(rcache *c, const rcache__key *k, int64_t *ms) {
  rcache__backend *be = rcache__be(c);
  rcache_value v = {NULL, 0};
  rcache__versions vers = {.asked = rcache__clear_asked(c)};
  rcache_status s;
  if (be->ops->get_tagged && !rcache__tags_plain_read(c, k, NULL))
    s = rcache__tags_read(c, be, k, &v, ms, NULL, &vers);
  else
    s = be->ops->get(be, k->p, k->len, &v, ms);
  if (s == RCACHE_ETYPE || s == RCACHE_ETOOBIG) {
    rcache_value_free(&v);
    return be->ops->pttl(be, k->p, k->len, ms);
  }
  if (s == RCACHE_OK) s = rcache__tags_unwrap(c, k->p, k->len, &v, &vers, NULL);
  rcache_value_free(&v);
  if (s == RCACHE_MISS) {
    *ms = -2;
    return RCACHE_OK;
  }
  if (s != RCACHE_OK) *ms = -2;
  return s;
}

rcache_status rcache_exists(rcache *c, const char *key, bool *exists) {
  if (exists) *exists = false;
  BEGIN_KEYED(c, key, k);
  int64_t ms = -2;
  rcache_status s = exists ? live_pttl(c, &k, &ms) : RCACHE_EINVAL;
  rcache__key_free(&k);
  if (!exists) return rcache__einval(c, "exists is NULL");
  *exists = s == RCACHE_OK && ms != -2;
  return rcache__done(c, rcache__remote(c, s));
}

rcache_status rcache_ttl(rcache *c, const char *key, int64_t *ttl_s) {
  if (ttl_s) *ttl_s = -2;
  BEGIN_KEYED(c, key, k);
  int64_t ms = -2;
  rcache_status s = ttl_s ? live_pttl(c, &k, &ms) : RCACHE_EINVAL;
  rcache__key_free(&k);
  if (!ttl_s) return rcache__einval(c, "ttl_s is NULL");
  if (s == RCACHE_OK) *ttl_s = ms < 0 ? ms : (ms + 999) / 1000;
  return rcache__done(c, rcache__remote(c, s));
}

/* ---- batches --------------------------------------------------------------------------------- */

/* Prefixed copies of n keys (one allocation), and with extra the clear key's stored name
 * after them (tags.c's version of the namespace, read with a batch's values). */
static rcache_status keys_make(rcache *c, const char *const *keys, size_t n, bool extra,
                               char ***out, size_t **lens) {
  size_t total = 0, m = n + extra;
  for (size_t i = 0; i < n; i++) {
    if (!keys[i] || !*keys[i]) {
      rcache__errf("invalid argument: key %zu is NULL or empty", i);
      return RCACHE_EINVAL;
    }
  }
  for (size_t i = 0; i < m; i++) {
    size_t l;
    rcache_status s =
        rcache__key_stored_len(&c->ctx, i < n ? strlen(keys[i]) : strlen(RCACHE__CLEAR_KEY), &l);
    if (s != RCACHE_OK) return s;
    total += l + 1;
  }
  char **ks = rcache__malloc(m * (sizeof *ks + sizeof **lens) + total + 1);
  if (!ks) return RCACHE_ENOMEM;
  size_t *ls = (size_t *)(ks + m);
  char *p = (char *)(ls + m);
  for (size_t i = 0; i < m; i++) {
    const char *key = i < n ? keys[i] : RCACHE__CLEAR_KEY;
    size_t kl = strlen(key);
    ks[i] = p;
    (void)rcache__key_stored_len(&c->ctx, kl, &ls[i]);
    if (rcache__key_write(&c->ctx, key, kl, p, ls[i]) != RCACHE_OK) {
      rcache__free(ks);
      return RCACHE_ENOMEM;
    }
    p += ls[i] + 1;
  }
  *out = ks;
  *lens = ls;
  return RCACHE_OK;
}

rcache_status rcache_get_many(rcache *c, const char *const *keys, size_t n, rcache_value *vals,
                              rcache_status *statuses) {
  rcache__err_clear();
  int64_t t0 = rcache__now_us();
  if (!c) return rcache__einval(NULL, "handle is NULL");
  rcache__enter(c);
  if (n == 0) return RCACHE_OK;
  if (!keys || !vals || !statuses) return rcache__einval(c, "keys, vals or statuses is NULL");
  for (size_t i = 0; i < n; i++) {
    vals[i] = (rcache_value){NULL, 0};
    statuses[i] = RCACHE_EINVAL;
  }
  char **ks;
  size_t *ls;
  /* the clear key is read with the values: one more key in the MGET (in vals and statuses'
   * room when they have it: copies of n + 1) */
  rcache_value *vs = rcache__calloc(n + 1, sizeof *vs + sizeof(rcache_status));
  rcache_status s = vs ? keys_make(c, keys, n, true, &ks, &ls) : RCACHE_ENOMEM;
  if (s != RCACHE_OK) {
    rcache__free(vs);
    return rcache__done(c, s);
  }
  rcache_status *sts = (rcache_status *)(vs + n + 1);
  rcache__in_flight(c, 1);
  rcache__backend *be = rcache__be(c);
  rcache__versions clear = {.asked = rcache__clear_asked(c)};
  s = be->ops->get_many(be, (const char *const *)ks, ls, n + 1, vs, sts);
  if (s == RCACHE_OK) {
    memcpy(vals, vs, n * sizeof *vals);
    memcpy(statuses, sts, n * sizeof *statuses);
    if (sts[n] == RCACHE_OK || sts[n] == RCACHE_MISS) {
      clear.n = 1;
      clear.bad =
          !rcache__version_of(sts[n] == RCACHE_OK ? vs[n].data : NULL, vs[n].len, &clear.v[0]);
    }
    rcache_value_free(&vs[n]);
  }
  for (size_t i = 0; s != RCACHE_OK && i <= n; i++)
    rcache_value_free(&vs[i]);
  rcache__free(vs);
  for (size_t i = 0; c->ctx.near && s == RCACHE_OK && i < n; i++) /* see near_saw */
    if (statuses[i] == RCACHE_OK || statuses[i] == RCACHE_MISS)
      rcache__near_saw(c->ctx.near, ks[i], ls[i], statuses[i] == RCACHE_OK ? vals[i].data : NULL,
                       vals[i].len);
  if (s == RCACHE_OK) /* plain values: the clear key's version; tagged ones: one MGET for all */
    rcache__tags_unwrap_many(c, ks, ls, vals, statuses, n, &clear);
  rcache__free(ks);
  bool enomem = false;
  for (size_t i = 0; i < n; i++) {
    if (s != RCACHE_OK) statuses[i] = s;
    enomem |= statuses[i] == RCACHE_ENOMEM;
    if (statuses[i] == RCACHE_OK)
      COUNT(c, hits);
    else if (statuses[i] == RCACHE_MISS)
      COUNT(c, misses);
    statuses[i] = rcache__unreachable(statuses[i]) ? unavailable(c) : statuses[i];
    if (statuses[i] != RCACHE_OK) rcache_value_free(&vals[i]);
  }
  /* a key whose value could not be copied: the call still answers the others, and
   * rcache_errmsg says "out of memory" (docs/errors.md) */
  if (s == RCACHE_OK && enomem) {
    rcache__err_clear();
    (void)rcache__done(c, RCACHE_ENOMEM);
  }
  s = rcache__remote(c, s);
  rcache__observe(c, RCACHE_OP_GET_MANY, NULL, s, t0, 0);
  return rcache__done(c, s);
}

static void stored_many_free(const rcache_value *vals, size_t n, rcache_value *st) {
  for (size_t i = 0; st && i < n; i++)
    if (st[i].data != vals[i].data) rcache__free(st[i].data);
  rcache__free(st);
}

/* *st = what is stored for each of vals (rcache__tags_plain: escaped, framed or as it is;
 * free with stored_many_free). */
static rcache_status stored_many(rcache *c, const rcache_value *vals, size_t n, rcache_value **st) {
  if (!(*st = rcache__malloc(n * sizeof **st))) return RCACHE_ENOMEM;
  memcpy(*st, vals, n * sizeof **st);
  for (size_t i = 0; i < n; i++) {
    rcache_status s = rcache__tags_plain(c, vals[i].data, vals[i].len, NULL, &(*st)[i]);
    if (s != RCACHE_OK) {
      (*st)[i] = vals[i];
      stored_many_free(vals, n, *st);
      *st = NULL;
      return s;
    }
  }
  return RCACHE_OK;
}

rcache_status rcache_set_many(rcache *c, const char *const *keys, const rcache_value *vals,
                              size_t n, int64_t ttl_s) {
  rcache__err_clear();
  int64_t t0 = rcache__now_us();
  if (!c) return rcache__einval(NULL, "handle is NULL");
  rcache__enter(c);
  if (n == 0) return RCACHE_OK;
  if (!keys || !vals) return rcache__einval(c, "keys or vals is NULL");
  if (rcache__ttl_ms(c, ttl_s) < 0) return rcache__einval(c, "ttl_s out of range");
  for (size_t i = 0; i < n; i++) {
    if (!vals[i].data && vals[i].len)
      return rcache__einval(c, "a value has NULL data with len > 0");
    if (vals[i].len > c->ctx.opt.max_value_bytes) {
      rcache__errf("value %zu exceeds max_value_bytes", i);
      return rcache__done(c, RCACHE_ETOOBIG);
    }
  }
  int64_t *ttls = rcache__malloc(n * sizeof *ttls);
  if (!ttls) return rcache__done(c, RCACHE_ENOMEM);
  rcache__in_flight(c, 1);
  for (size_t i = 0; i < n; i++) { /* jitter per key */
    ttls[i] = rcache__ttl_ms(c, ttl_s);
  }
  char **ks;
  size_t *ls;
  rcache_value *st = NULL; /* what is stored for each (tags.h) */
  rcache_status s = keys_make(c, keys, n, false, &ks, &ls);
  if (s == RCACHE_OK && (s = stored_many(c, vals, n, &st)) != RCACHE_OK) {
    rcache__free(ks);
    s = rcache__remote(c, s); /* the clear key could not be read */
  }
  if (s == RCACHE_OK) {
    rcache__backend *be = rcache__be(c);
    for (size_t i = 0; i < n; i++) /* loads in progress must not store over them (handle.h) */
      rcache__inval_key(c, ks[i], ls[i]);
    s = be->ops->set_many(be, (const char *const *)ks, ls, st, n, ttls);
    for (size_t i = 0; i < n; i++) {
      rcache__tags_note(c, ks[i], ls[i], false);
      near_drop(c, ks[i], ls[i]);
    }
    rcache__free(ks);
    if (s == RCACHE_OK) atomic_fetch_add_explicit(&c->ctx.n.sets, n, memory_order_relaxed);
    s = rcache__remote(c, s);
  }
  stored_many_free(vals, n, st);
  rcache__free(ttls);
  rcache__observe(c, RCACHE_OP_SET_MANY, NULL, s, t0, 0);
  return rcache__done(c, s);
}

/* ---- tools ----------------------------------------------------------------------------------- */

typedef struct {
  size_t skip;
  rcache_scan_fn fn;
  void *ud;
} scan_strip;

static bool strip_prefix(const char *key, size_t len, void *ud) {
  scan_strip *ss = ud;
  if (len < ss->skip) return true;
  return ss->fn(key + ss->skip, len - ss->skip, ss->ud);
}

rcache_status rcache_scan(rcache *c, const char *glob, uint64_t limit, rcache_scan_fn fn,
                          void *ud) {
  rcache__err_clear();
  if (!c) return rcache__einval(NULL, "handle is NULL");
  rcache__enter(c);
  if (!glob || !*glob || !fn) return rcache__einval(c, "glob is NULL or empty, or fn is NULL");
  size_t gl;
  char *g = ns_glob(c, NULL, glob, &gl);
  if (!g) return rcache__done(c, RCACHE_ENOMEM);
  scan_strip ss = {c->ctx.prefix_len, fn, ud};
  rcache__backend *be = rcache__be(c);
  rcache_status s = be->ops->scan(be, g, gl, limit, strip_prefix, &ss);
  rcache__free(g);
  return rcache__done(c, rcache__remote(c, s));
}

rcache_status rcache_health_check(rcache *c, rcache_health *h) {
  rcache__err_clear();
  if (!c || !h) return rcache__einval(c, "handle or h is NULL");
  int64_t t0 = rcache__now_us();
  rcache__enter(c);
  rcache__in_flight(c, 1);
  memset(h, 0, sizeof *h);
  rcache__backend *be = rcache__be(c);
  rcache_status s = be->ops->health(be, h);
  if (s == RCACHE_ETIMEOUT) { /* a stalled server is an unavailable one */
    atomic_fetch_add_explicit(&c->ctx.n.timeouts, 1, memory_order_relaxed);
    s = RCACHE_EUNAVAILABLE;
  }
  snprintf(h->mode, sizeof h->mode, "%s", rcache__be(c)->ops->mode); /* it may have changed */
  h->healthy = s == RCACHE_OK;
  if (!h->healthy && !h->error[0]) snprintf(h->error, sizeof h->error, "%s", rcache_strerror(s));
  rcache__mask(h->error, c->ctx.url.password); /* whatever path the text took (log.c) */
  rcache__observe(c, RCACHE_OP_HEALTH, NULL, s, t0, 0);
  return rcache__done(c, s);
}

static void snapshot(rcache *c, rcache_stats *s) {
  rcache__enter(c);
  rcache__counters *n = &c->ctx.n;
#define LOAD(f) s->f = atomic_load_explicit(&n->f, memory_order_relaxed)
  LOAD(hits);
  LOAD(misses);
  LOAD(near_hits);
  LOAD(near_misses);
  LOAD(sets);
  LOAD(deletes);
  LOAD(errors);
  LOAD(timeouts);
  LOAD(fallbacks);
  LOAD(loads);
  LOAD(load_errors);
  LOAD(coalesced);
  LOAD(early_refreshes);
  LOAD(stale_served);
  LOAD(breaker_opens);
  LOAD(reconnect_attempts);
  LOAD(near_invalidations);
  LOAD(near_flushes);
#undef LOAD
  if (c->ctx.near) rcache__near_usage(c->ctx.near, &s->near_entries, &s->near_bytes);
  s->latency_p50_ms = rcache__latency_quantile(&c->ctx.lat, 0.50);
  s->latency_p99_ms = rcache__latency_quantile(&c->ctx.lat, 0.99);
  s->latency_max_ms =
      (double)atomic_load_explicit(&c->ctx.lat.max_us, memory_order_relaxed) / 1000.0;
  rcache__backend *be = rcache__be_now(c);
  s->available = be->ops->available(be);
  s->breaker_state = s->available ? RCACHE_BREAKER_CLOSED : RCACHE_BREAKER_OPEN;
  if (be->ops->stats) be->ops->stats(be, s);
  s->calls_in_flight = rcache__in_flight_now(c);
  int64_t loads = atomic_load_explicit(&c->obs.loads_in_progress, memory_order_relaxed);
  s->loads_in_progress = loads > 0 ? (uint64_t)loads : 0;
  rcache__server_gauges g;
  for (size_t i = 0; be->ops->server && be->ops->server(be, i, &g); i++)
    s->calls_queued += g.waiting;
}

/* The program's struct is `size` bytes (docs/abi.md): a full snapshot, then its share. */
void rcache_get_stats_sized(rcache *c, rcache_stats *out, size_t size) {
  if (!out || size < sizeof out->size) return;
  rcache_stats s;
  memset(&s, 0, sizeof s);
  if (c) snapshot(c, &s);
  memset(out, 0, size);
  memcpy(out, &s, size < sizeof s ? size : sizeof s);
  out->size = size < sizeof s ? size : sizeof s;
}
