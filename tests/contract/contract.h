/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The contract suite: one set of tests, written against the public API only, run against
 * every backend (memory://, none://, and each Redis flavour). See main.c for the runner.
 *
 * Where a test goes: a behaviour of the public API that every backend must share goes here,
 * in the file of its topic (typed.c: strings, numbers, user codecs; json.c: JSON; keys.c:
 * key helpers and key_prefix namespaces; ...). tests/unit/ is for internals and pure code,
 * tests/integration/ for what needs a particular server set-up or another client
 * (redis-cli, a server that is down, a private server), tests/faults/ for faults under load.
 *
 * Adding tests: create tests/contract/<topic>.c, include "contract.h" and write
 *
 *   CONTRACT_TEST(my_test) {          // runs against caching backends (memory, Redis)
 *     CHECK_EQ(rcache_set(e->c, "k", "v", 1, 0), RCACHE_OK);
 *   }
 *   CONTRACT_NONE_TEST(my_none_test)  // runs only with --none (none://)
 *   CONTRACT_ANY_TEST(my_any_test)    // runs in both modes (argument checks, ...)
 *
 * The CHECK macros of tests/test.h work as usual (failures in any file are counted).
 *
 * Rules that keep the suite valid against real, shared servers:
 *  - Each test gets a fresh handle e->c whose key space is a namespace private to this
 *    run and this test (a key_prefix on top of any key_prefix of the URL). Use plain key
 *    names with it; the namespace is flushed when the test ends.
 *  - Never rely on one backend's behaviour: only on what include/rcache/rcache.h promises.
 *  - Never sleep for an exact time: poll with a generous bound (ct_wait_gone).
 *  - Check rcache_errmsg() with ct_errmsg_has() / ct_errmsg_set(): in an --async run the
 *    message of a call that completed through its callback is not there (docs/async.md).
 *
 * The async run (--async): every call below that has a non-blocking form goes through it, on
 * the thread that runs the test (async_shim.c): the _async call is started and the loop
 * (poll() on rcache_async_fd, rcache_async_process) runs until its callback has run, which must
 * happen exactly once, on this thread, after the starting call returned; its results are the
 * blocking call's outputs, its loaders the test's loaders run from the loop. The same bodies
 * then check the same promises. Calls from other threads of a test, and calls with an argument
 * the non-blocking form has no place for (a NULL out-pointer, a NULL loader), stay blocking.
 */
#ifndef RCACHE_CONTRACT_H
#define RCACHE_CONTRACT_H

#include <stdbool.h>
#include <stdint.h>

#include "rcache/json.h"
#include "rcache/rcache.h"
#include "test.h"

typedef struct ct_env {
  rcache *c;       /* this test's handle, default options, private namespace */
  bool none;       /* running with --none */
  const char *url; /* the URL under test (may carry a password: never print it) */
  const char *ns;  /* this test's namespace as added by the harness, e.g. "ct123x9f:7:" */
} ct_env;

enum { CT_CACHE = 1, CT_NONE = 2, CT_ANY = 3 };

void ct_register(const char *name, void (*fn)(ct_env *), int modes);

/* Every file's CHECK counters (static in test.h) are registered with the runner. */
void ct_counters(int *passed, int *failed);
__attribute__((constructor)) static void ct__register_counters(void) {
  ct_counters(&t_passed, &t_failed);
}

#define CT__DEFINE(name, modes)                                                                    \
  static void ct_test_##name(ct_env *e);                                                           \
  __attribute__((constructor)) static void ct_reg_##name(void) {                                   \
    ct_register(#name, ct_test_##name, modes);                                                     \
  }                                                                                                \
  static void ct_test_##name(ct_env *e)

#define CONTRACT_TEST(name) CT__DEFINE(name, CT_CACHE)
#define CONTRACT_NONE_TEST(name) CT__DEFINE(name, CT_NONE)
#define CONTRACT_ANY_TEST(name) CT__DEFINE(name, CT_ANY)

/* Another handle on the same URL and namespace as e->c, opened with *o (its key_prefix is
 * replaced by the namespace; o may be NULL). Closed by the harness when the test ends.
 * Waits until the cache answers. NULL (and a recorded failure) when it cannot open. */
rcache *ct_open(ct_env *e, const rcache_options *o);

/* The same in a namespace nested in the test's: key_prefix "<namespace><sub>" (sub like
 * "a:"), so the test's handle e->c sees its keys as "<sub><key>". Closed by the harness. */
rcache *ct_open_sub(ct_env *e, const char *sub, const rcache_options *o);
/* Two handles on the URL see the same data (a server; not memory://, whose every handle is
 * its own store, nor none://). */
bool ct_shared(const ct_env *e);
/* Every handle of this run has the near cache on (--near). */
bool ct_near(void);
/* The length of the whole key_prefix of a ct_open_sub(e, sub, ...) handle: the URL's own
 * key_prefix, the test's namespace and sub (for checks of stored key lengths). */
size_t ct_prefix_len(const char *sub);

/* A handle on the URL *outside* the test's namespace (only the URL's own key_prefix
 * applies). Use ct_outer_key() for its key names; such keys are deleted at the end of the
 * run. Closed by the harness. */
rcache *ct_open_outer(ct_env *e);
/* "<run id>_out:<name>": a key name unique to this run, outside every test namespace.
 * Points into a small ring of static buffers (valid for the next 15 calls). */
const char *ct_outer_key(const char *name);

/* Small helpers: each returns what the cache says, counting nothing. */
bool ct_value_is(rcache *c, const char *key, const void *data, size_t len);
/* CHECKs that the stored bytes at key are the string literal lit (as another client reads). */
#define CT_VALUE_IS(c, key, lit) CHECK(ct_value_is((c), (key), (lit), sizeof(lit) - 1))
bool ct_exists(rcache *c, const char *key);
bool ct_absent(rcache *c, const char *key); /* the call succeeded and said "no" */
/* rcache_errmsg(c) contains what (printed when it does not). */
bool ct_errmsg_has(rcache *c, const char *what);
int64_t ct_ttl(rcache *c, const char *key); /* -3 when the call failed */
/* Polls until key is gone (true) or timeout_ms has passed (false). */
bool ct_wait_gone(rcache *c, const char *key, int timeout_ms);
/* The stale window (s) every handle of this run has (--stale), 0 without: get_or_set
 * values are stored that much longer than their TTL, and plain reads see it. */
int64_t ct_stale_s(void);
void ct_sleep_ms(int ms);
int64_t ct_now_ms(void);
/* rcache_errmsg(c) is non-empty, or c's last call completed through a callback (--async). */
bool ct_errmsg_set(rcache *c);

/* ---- the async run (async_shim.c) ----------------------------------------------------------- */

/* Turns the async run on (from main, whose thread then is the loop's). */
void ct_async_on(void);
bool ct_async(void);
/* false when c's last call on this thread completed through a callback: its message is not
 * rcache_errmsg's to give. */
bool ct_errmsg_known(rcache *c);
/* Checks that no callback of the calls so far ran twice, or after a refused start. */
void ct_async_check(void);

rcache_status cts_get(rcache *c, const char *key, rcache_value *out);
rcache_status cts_set(rcache *c, const char *key, const void *data, size_t len, int64_t ttl_s);
rcache_status cts_delete(rcache *c, const char *key);
rcache_status cts_delete_prefix(rcache *c, const char *prefix, uint64_t *deleted);
rcache_status cts_delete_pattern(rcache *c, const char *glob, uint64_t *deleted);
rcache_status cts_get_or_set(rcache *c, const char *key, int64_t ttl_s, rcache_loader_fn load,
                             void *ud, rcache_value *out);
rcache_status cts_incr(rcache *c, const char *key, int64_t by, int64_t *out);
rcache_status cts_decr(rcache *c, const char *key, int64_t by, int64_t *out);
rcache_status cts_incr_expire(rcache *c, const char *key, int64_t by, int64_t ttl_s, int64_t *out);
rcache_status cts_rate_limit(rcache *c, const char *key, int64_t limit, int64_t window_s,
                             bool *allowed, int64_t *count);
rcache_status cts_exists(rcache *c, const char *key, bool *exists);
rcache_status cts_ttl(rcache *c, const char *key, int64_t *ttl_s);
rcache_status cts_get_many(rcache *c, const char *const *keys, size_t n, rcache_value *vals,
                           rcache_status *statuses);
rcache_status cts_set_many(rcache *c, const char *const *keys, const rcache_value *vals, size_t n,
                           int64_t ttl_s);
rcache_status cts_health_check(rcache *c, rcache_health *h);
rcache_status cts_set_tagged(rcache *c, const char *key, const void *data, size_t len,
                             int64_t ttl_s, const char *const *tags, size_t ntags);
rcache_status cts_get_tagged(rcache *c, const char *key, const char *const *tags, size_t ntags,
                             rcache_value *out);
rcache_status cts_invalidate_tag(rcache *c, const char *tag);
rcache_status cts_clear(rcache *c);
rcache_status cts_get_or_set_tagged(rcache *c, const char *key, int64_t ttl_s,
                                    const char *const *tags, size_t ntags,
                                    rcache_tagged_loader_fn load, void *ud, rcache_value *out);
rcache_status cts_set_str(rcache *c, const char *key, const char *s, int64_t ttl_s);
rcache_status cts_get_str(rcache *c, const char *key, char **out);
rcache_status cts_set_i64(rcache *c, const char *key, int64_t v, int64_t ttl_s);
rcache_status cts_get_i64(rcache *c, const char *key, int64_t *out);
rcache_status cts_set_double(rcache *c, const char *key, double v, int64_t ttl_s);
rcache_status cts_get_double(rcache *c, const char *key, double *out);
rcache_status cts_set_obj(rcache *c, const char *key, const rcache_codec *codec, const void *obj,
                          int64_t ttl_s);
rcache_status cts_get_obj(rcache *c, const char *key, const rcache_codec *codec, void *obj);
rcache_status cts_get_or_set_obj(rcache *c, const char *key, int64_t ttl_s,
                                 const rcache_codec *codec, rcache_obj_loader_fn load, void *ud,
                                 void *obj);
rcache_status cts_set_json(rcache *c, const char *key, const json_t *v, int64_t ttl_s);
rcache_status cts_get_json(rcache *c, const char *key, json_t **out);
rcache_status cts_get_or_set_json(rcache *c, const char *key, int64_t ttl_s,
                                  rcache_json_loader_fn load, void *ud, json_t **out);
rcache_status cts_set_json_tagged(rcache *c, const char *key, const json_t *v, int64_t ttl_s,
                                  const char *const *tags, size_t ntags);
rcache_status cts_get_json_tagged(rcache *c, const char *key, const char *const *tags, size_t ntags,
                                  json_t **out);
rcache_status cts_get_or_set_json_tagged(rcache *c, const char *key, int64_t ttl_s,
                                         const char *const *tags, size_t ntags,
                                         rcache_json_loader_fn load, void *ud, json_t **out);

/* The test bodies (and main.c's helpers) call the library through the shim; async_shim.c,
 * which implements it, defines CT_NO_SHIM. */
#ifndef CT_NO_SHIM
#define rcache_get(...) cts_get(__VA_ARGS__)
#define rcache_set(...) cts_set(__VA_ARGS__)
#define rcache_delete(...) cts_delete(__VA_ARGS__)
#define rcache_delete_prefix(...) cts_delete_prefix(__VA_ARGS__)
#define rcache_delete_pattern(...) cts_delete_pattern(__VA_ARGS__)
#define rcache_get_or_set(...) cts_get_or_set(__VA_ARGS__)
#define rcache_incr(...) cts_incr(__VA_ARGS__)
#define rcache_decr(...) cts_decr(__VA_ARGS__)
#define rcache_incr_expire(...) cts_incr_expire(__VA_ARGS__)
#define rcache_rate_limit(...) cts_rate_limit(__VA_ARGS__)
#define rcache_exists(...) cts_exists(__VA_ARGS__)
#define rcache_ttl(...) cts_ttl(__VA_ARGS__)
#define rcache_get_many(...) cts_get_many(__VA_ARGS__)
#define rcache_set_many(...) cts_set_many(__VA_ARGS__)
#define rcache_health_check(...) cts_health_check(__VA_ARGS__)
#define rcache_set_tagged(...) cts_set_tagged(__VA_ARGS__)
#define rcache_get_tagged(...) cts_get_tagged(__VA_ARGS__)
#define rcache_invalidate_tag(...) cts_invalidate_tag(__VA_ARGS__)
#define rcache_clear(...) cts_clear(__VA_ARGS__)
#define rcache_get_or_set_tagged(...) cts_get_or_set_tagged(__VA_ARGS__)
#define rcache_set_str(...) cts_set_str(__VA_ARGS__)
#define rcache_get_str(...) cts_get_str(__VA_ARGS__)
#define rcache_set_i64(...) cts_set_i64(__VA_ARGS__)
#define rcache_get_i64(...) cts_get_i64(__VA_ARGS__)
#define rcache_set_double(...) cts_set_double(__VA_ARGS__)
#define rcache_get_double(...) cts_get_double(__VA_ARGS__)
#define rcache_set_obj(...) cts_set_obj(__VA_ARGS__)
#define rcache_get_obj(...) cts_get_obj(__VA_ARGS__)
#define rcache_get_or_set_obj(...) cts_get_or_set_obj(__VA_ARGS__)
#define rcache_set_json(...) cts_set_json(__VA_ARGS__)
#define rcache_get_json(...) cts_get_json(__VA_ARGS__)
#define rcache_get_or_set_json(...) cts_get_or_set_json(__VA_ARGS__)
#define rcache_set_json_tagged(...) cts_set_json_tagged(__VA_ARGS__)
#define rcache_get_json_tagged(...) cts_get_json_tagged(__VA_ARGS__)
#define rcache_get_or_set_json_tagged(...) cts_get_or_set_json_tagged(__VA_ARGS__)
#endif

#endif
