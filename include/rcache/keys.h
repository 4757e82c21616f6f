/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rcache key helpers: build the keys the seed service used ("user:42", "user:42:credits",
 * "workflow:7:definition", ...) into a caller's buffer, and invalidate one user's keys.
 *
 * Conventions:
 *  - Every builder has snprintf semantics: it returns the length the whole key needs (not
 *    counting the NUL) and, when size > 0, writes a NUL-terminated key into buf, truncated
 *    to size - 1 bytes when it does not fit. So `rcache_key_user(NULL, 0, id)` measures,
 *    and `n >= (int)size` means truncation. Pure functions: no I/O, thread-safe, no
 *    allocation.
 *  - Invalid input returns -1 (and leaves "" in buf when size > 0): a NULL or empty part,
 *    a part containing ':', NULL buf with size > 0, no parts, or a key longer than INT_MAX.
 *  - Parts are joined with ':'. A part may NOT contain ':' — each part is exactly one
 *    segment. This is what makes invalidation safe: with ':' allowed, user "12:x" would
 *    own the key "user:12:x", which is also one of user 12's keys, and invalidating user
 *    12 would delete it. Any other byte (spaces, '*', '?', '[', non-ASCII) is allowed:
 *    keys are binary-safe and prefixes passed to rcache_delete_prefix() are taken
 *    literally (glob characters are escaped there).
 *  - The handle's key_prefix is NOT part of these strings: rcache adds it to every key,
 *    prefix and pattern, so the same names work under any namespace.
 *
 * The seed's patterns ("user:${id}*") had a bug this API does not have: "user:12*" also
 * matches "user:123" and "user:123:credits", so invalidating user 12 deleted user 123's
 * keys. rcache_key_user_all() returns the prefix "user:12:" (with the trailing ':'), which
 * only matches user 12's sub-keys, and rcache_invalidate_user() deletes exactly "user:12"
 * plus "user:12:*" — never "user:123…".
 *
 * Key length: a key plus the handle's key_prefix may be at most rcache_options.max_key_bytes
 * (default 1024) bytes, else RCACHE_ETOOBIG. For longer natural keys either set
 * rcache_options.long_key_digest (rcache then stores them under rcache_key_digest()'s
 * name) or call rcache_key_digest() yourself.
 */
#ifndef RCACHE_KEYS_H
#define RCACHE_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "rcache/rcache.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Joins parts[0..nparts) with ':' into buf ("a", "b", "c" -> "a:b:c"). See above. */
RCACHE_API int rcache_key_build(char *buf, size_t size, size_t nparts, const char *const *parts);

/* The seed's keys. Each returns as rcache_key_build(); -1 on invalid input. */
RCACHE_API int rcache_key_user(char *buf, size_t size, const char *user_id); /* "user:<id>" */
RCACHE_API int rcache_key_user_credits(char *buf, size_t size,
                                       const char *user_id); /* "user:<id>:credits" */
RCACHE_API int rcache_key_workflow(char *buf, size_t size,
                                   const char *workflow_id); /* "workflow:<id>" */
/* "workflow:<id>:definition" */
RCACHE_API int rcache_key_workflow_definition(char *buf, size_t size, const char *workflow_id);
RCACHE_API int rcache_key_session(char *buf, size_t size,
                                  const char *session_id); /* "session:<id>" */
/* "rate:<user>:<endpoint>" (the endpoint, e.g. "/api/search", may not contain ':'): the
 * seed's cacheKeys.rateLimit, so a C and a Node service limiting one user count in one key.
 * rcache 0.1.0 built "rate_limit:<user>:<endpoint>" (CHANGELOG.md says how to migrate). */
RCACHE_API int rcache_key_rate_limit(char *buf, size_t size, const char *user_id,
                                     const char *endpoint);
RCACHE_API int rcache_key_feature_flag(char *buf, size_t size,
                                       const char *flag); /* "feature:<flag>" */

/*
 * Prefixes for rcache_delete_prefix() (literal prefixes, not globs):
 *  - rcache_key_user_all: "user:<id>:" — every sub-key of user <id> ("user:<id>:credits"...).
 *    It does not match "user:<id>" itself (use rcache_invalidate_user() for both) and never
 *    matches another user: "user:12:" is not a prefix of "user:123:credits".
 *  - rcache_key_rate_limit_all: "rate:<id>:" — every rate-limit counter of user <id>
 *    (rcache_key_rate_limit(<id>, any endpoint)), never another user's ("rate:12:" is not a
 *    prefix of "rate:123:/api"). The seed deleted them with the glob "rate:<id>*".
 *  - rcache_key_all_workflows: "workflow:" — every workflow key and sub-key.
 */
RCACHE_API int rcache_key_user_all(char *buf, size_t size, const char *user_id);
RCACHE_API int rcache_key_rate_limit_all(char *buf, size_t size, const char *user_id);
RCACHE_API int rcache_key_all_workflows(char *buf, size_t size);

/* Length of the digest suffix ":sha256:" + 64 hex digits. */
#define RCACHE_KEY_DIGEST_SUFFIX_LEN 72

/*
 * Shortens a long key: when strlen(key) <= max_len the key is copied unchanged; otherwise
 * the result is the first max_len - 72 bytes of key followed by ":sha256:" and the
 * lower-case hex SHA-256 of the WHOLE key, exactly max_len bytes long. Keeping the head
 * means rcache_delete_prefix() with a prefix shorter than the kept head still finds the
 * shortened key. Two keys share a name only if they share the head and the SHA-256.
 * Returns as rcache_key_build(); -1 when key or buf (with size > 0) is NULL, key is empty,
 * or max_len < RCACHE_KEY_DIGEST_SUFFIX_LEN with a key longer than max_len.
 * With rcache_options.long_key_digest, a key K longer than max_key_bytes - strlen(key_prefix)
 * is stored as key_prefix + rcache_key_digest(K, max_key_bytes - strlen(key_prefix)).
 */
RCACHE_API int rcache_key_digest(char *buf, size_t size, const char *key, size_t max_len);

/*
 * Deletes user <user_id>'s keys: "user:<id>" and every key starting with "user:<id>:"
 * (within the handle's key_prefix), never "user:<id>3" or "user:<id>3:...".
 * *deleted (may be NULL) receives the number of keys deleted.
 * Returns RCACHE_OK (also when there was nothing to delete), RCACHE_EINVAL (NULL handle,
 * NULL/empty user_id or one containing ':'), RCACHE_ENOMEM, RCACHE_ETOOBIG (id longer than
 * max_key_bytes allows), RCACHE_EUNAVAILABLE (nothing or only part was deleted; *deleted
 * counts what was). Thread-safe like every call on a handle.
 */
RCACHE_API rcache_status rcache_invalidate_user(rcache *c, const char *user_id, uint64_t *deleted);

#ifdef __cplusplus
}
#endif
#endif /* RCACHE_KEYS_H */
