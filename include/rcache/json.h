/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rcache JSON helpers, through jansson. This header includes <jansson.h>, so jansson is part
 * of rcache's interface: `pkg-config --cflags --libs rcache` and CMake's rcache::rcache bring
 * it along (json_decref() is inline and calls libjansson's json_delete()).
 *
 * Values are stored as compact JSON text (json_dumps with JSON_COMPACT | JSON_ENCODE_ANY):
 * {"id":1,"name":"x"} — no envelope, so a Node, Python or Go service reading the same key
 * gets plain JSON, and JSON they (or redis-cli) write is read here. Any JSON value may be
 * stored at the top level (object, array, string, number, true, false, null).
 *
 * Reading uses json_loadb with JSON_DECODE_ANY | JSON_ALLOW_NUL: the whole value must be
 * one JSON text (no trailing garbage). Numbers are read as JSON.parse reads them, so every
 * number JSON.stringify writes is readable:
 *  - an integer literal within int64 is an exact json_integer (ids above 2^53 keep every
 *    digit);
 *  - an integer literal outside int64 is a json_real, the nearest double. JSON.stringify
 *    writes numbers below 1e21 in integer form ("100000000000000000000" for 1e20,
 *    "18446744073709552000" for 2^64), and 64-bit unsigned ids are written that way too.
 *    jansson 2.14 refuses such integers ("too big integer"), and its JSON_DECODE_INT_AS_REAL
 *    would turn every integer of the document into a double; so when, and only when, a parse
 *    fails on an integer overflow, rcache parses again with ".0" after each out-of-range
 *    integer literal (outside strings), leaving every other integer exact;
 *  - fractions and exponents (5e-324, 1.7976931348623157e+308, 1.5e-7) are reals; "-0" is
 *    the integer 0 (JSON.stringify writes -0 as "0"). A number beyond the double range
 *    (1e400, which JSON.stringify never writes) is RCACHE_EDECODE.
 * Strings: UTF-8, "\u0000" kept (use json_string_length()); a lone surrogate escape
 * ("\ud800", which JSON.stringify writes for a broken JS string) has no UTF-8 form and is
 * RCACHE_EDECODE. Nesting deeper than 2048 is RCACHE_EDECODE. Object key order is kept.
 *
 * Writing: what rcache stores is strict JSON (RFC 8259) that JSON.parse and python's json
 * module read back with the same content: jansson never encodes NaN or infinities (json_real
 * refuses them), non-ASCII is written as UTF-8, reals with 17 significant digits (0.1 is
 * "0.10000000000000001": the same double), -0.0 as "-0.0". JSON.parse reads integers
 * beyond 2^53 as the nearest double, as it does for any writer.
 *
 * Ownership follows jansson's naming: the json_t you pass is only read (borrowed); a json_t
 * returned through `json_t **out` is a new reference the caller releases with
 * json_decref(). jansson objects are not thread-safe to modify while shared; rcache never
 * keeps a reference to what it returns. Everything else is as the byte API in
 * <rcache/rcache.h>: same keys, prefix, TTLs, fallback rules and statuses.
 */
#ifndef RCACHE_JSON_H
#define RCACHE_JSON_H

#include <jansson.h>

#include "rcache/rcache.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Stores v (borrowed) as compact JSON text. Statuses as rcache_set(): RCACHE_OK,
 * RCACHE_EINVAL (NULL v, or jansson cannot encode it, e.g. a reference cycle), RCACHE_ETOOBIG,
 * RCACHE_EUNAVAILABLE (write dropped), RCACHE_ESERVER, RCACHE_ENOMEM.
 */
RCACHE_API rcache_status rcache_set_json(rcache *c, const char *key, const json_t *v,
                                         int64_t ttl_s);

/*
 * Reads key as JSON. RCACHE_OK: *out is a new reference (json_decref it). RCACHE_MISS,
 * RCACHE_EUNAVAILABLE, RCACHE_ETYPE (not a string key) as rcache_get(). RCACHE_EDECODE: the
 * value is not valid JSON; rcache_errmsg() gives jansson's reason with line and column.
 * *out is NULL on any status but RCACHE_OK.
 */
RCACHE_API rcache_status rcache_get_json(rcache *c, const char *key, json_t **out);

/* Returns a new reference to the loaded value (rcache stores it and hands it to the caller),
 * or NULL when loading failed. May be called concurrently for different keys. */
typedef json_t *(*rcache_json_loader_fn)(void *ud);

/*
 * Cache-aside for JSON: returns the cached value, or calls load(ud) (once per key at a time in
 * the process, as rcache_get_or_set()), stores its compact text with ttl_s and returns it. A
 * cached value that is not valid JSON is reloaded and overwritten, never returned; a cached
 * JSON null is a value (returned without calling the loader; return NULL from the loader to
 * cache nothing).
 * RCACHE_OK: *out is a new reference (json_decref it) — also while the cache is unavailable
 * (the loader ran). RCACHE_ELOADER: the loader returned NULL or its value could not be
 * encoded; nothing was cached. RCACHE_EINVAL, RCACHE_ENOMEM. *out is NULL unless RCACHE_OK.
 */
RCACHE_API rcache_status rcache_get_or_set_json(rcache *c, const char *key, int64_t ttl_s,
                                                rcache_json_loader_fn load, void *ud, json_t **out);

/* ---- tagged JSON values (docs/semantics.md, "Tags") ---------------------------------------- */

/* rcache_set_json() stored tagged with tags[0..ntags), as rcache_set_tagged() stores bytes.
 * Statuses as rcache_set_json(), plus those of rcache_set_tagged() for the tags. */
RCACHE_API rcache_status rcache_set_json_tagged(rcache *c, const char *key, const json_t *v,
                                                int64_t ttl_s, const char *const *tags,
                                                size_t ntags);

/* rcache_get_json() read through rcache_get_tagged(): tags[0..ntags) are said to be the
 * value's tags and their versions are read in the same round trip. The answer is
 * rcache_get_json()'s whatever the tags. Statuses as rcache_get_json(), plus RCACHE_EINVAL and
 * RCACHE_ETOOBIG for the tags. */
RCACHE_API rcache_status rcache_get_json_tagged(rcache *c, const char *key, const char *const *tags,
                                                size_t ntags, json_t **out);

/*
 * rcache_get_or_set_json() whose loaded value is stored tagged with tags[0..ntags), as
 * rcache_get_or_set_tagged() stores it (the versions are read before the loader runs, and
 * with the cached value). A cached value that is not JSON is reloaded and overwritten, tagged.
 * The caller that loaded gets a value parsed from the stored text (equal to the loader's,
 * not the same object). Statuses as rcache_get_or_set_json(), plus RCACHE_EINVAL and
 * RCACHE_ETOOBIG for the tags.
 */
RCACHE_API rcache_status rcache_get_or_set_json_tagged(rcache *c, const char *key, int64_t ttl_s,
                                                       const char *const *tags, size_t ntags,
                                                       rcache_json_loader_fn load, void *ud,
                                                       json_t **out);

/* ---- non-blocking JSON (docs/async.md; the rules of the non-blocking API in rcache.h) ------- */

/* Gets what rcache_get_json() returns: v is the callback's reference (json_decref it). */
typedef void (*rcache_async_json_fn)(void *ud, rcache_status s, json_t *v);

/* rcache_get_json(), rcache_set_json() (v is copied: the caller keeps it) and
 * rcache_get_or_set_json() without blocking. The loader of rcache_get_or_set_json_async is an
 * rcache_async_loader_fn that finishes with rcache_load_done_json(). */
RCACHE_API rcache_status rcache_get_json_async(rcache *c, const char *key, rcache_async_json_fn cb,
                                               void *ud);
RCACHE_API rcache_status rcache_set_json_async(rcache *c, const char *key, const json_t *v,
                                               int64_t ttl_s, rcache_async_fn cb, void *ud);
RCACHE_API rcache_status rcache_get_or_set_json_async(rcache *c, const char *key, int64_t ttl_s,
                                                      rcache_async_loader_fn load, void *lud,
                                                      rcache_async_json_fn cb, void *ud);
/* The tagged JSON calls without blocking: results as rcache_set_json_tagged() (v is copied),
 * rcache_get_json_tagged() and rcache_get_or_set_json_tagged() (its loader finishes with
 * rcache_load_done_json()); tags are copied, as rcache_set_tagged_async() copies them. */
RCACHE_API rcache_status rcache_set_json_tagged_async(rcache *c, const char *key, const json_t *v,
                                                      int64_t ttl_s, const char *const *tags,
                                                      size_t ntags, rcache_async_fn cb, void *ud);
RCACHE_API rcache_status rcache_get_json_tagged_async(rcache *c, const char *key,
                                                      const char *const *tags, size_t ntags,
                                                      rcache_async_json_fn cb, void *ud);
RCACHE_API rcache_status rcache_get_or_set_json_tagged_async(rcache *c, const char *key,
                                                             int64_t ttl_s, const char *const *tags,
                                                             size_t ntags,
                                                             rcache_async_loader_fn load, void *lud,
                                                             rcache_async_json_fn cb, void *ud);
/* Finishes a load of rcache_get_or_set_json_async or rcache_get_or_set_json_tagged_async: v (a
 * reference rcache takes over) is the loaded value, or NULL when loading failed (the operation
 * completes with RCACHE_ELOADER). Called exactly once per loader call, from any thread, even after
 * rcache_close(); ld must not be used after this call. */
RCACHE_API void rcache_load_done_json(rcache_load *ld, json_t *v);

#ifdef __cplusplus
}
#endif
#endif /* RCACHE_JSON_H */
