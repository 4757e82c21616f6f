/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The near cache's table (L1): a bounded in-process map from stored key to value, split
 * into shards that each have their own lock and their own least-recently-used list, bounded
 * by bytes (keys + values + per-entry overhead + the bucket arrays, as malloc charges them).
 *
 * Pure: no I/O, no threads of its own, no clock (callers pass the time in). Coherence is
 * the caller's business (tracking.c feeds it invalidations and flushes); what the table
 * guarantees is the fetch protocol that makes an invalidation win over a reply it raced:
 *
 *   t = rcache__near_begin(n, key)       before the GET is sent: marks the key "being
 *                                        fetched" (a placeholder holding ticket t);
 *   rcache__near_fill(n, t, key, value)  after the reply: installs the value only while
 *                                        that placeholder is still there with ticket t.
 *
 * An invalidation, a flush or a local write removes the placeholder, so a reply that was
 * overtaken is dropped. A reply that finds a newer fetch's placeholder or entry removes it
 * instead (it cannot know which of the two replies is newer, so neither is kept): a thread
 * that has seen a newer value remotely never finds an older one here afterwards.
 *
 * Thread-safe. Internal.
 */
#ifndef RCACHE_NEAR_H
#define RCACHE_NEAR_H

#include "internal.h"

typedef struct rcache__near rcache__near;

/* A table of at most max_bytes (> 0). Entries live at most max_ttl_ms (0 = no cap beyond
 * the key's own TTL). NULL on ENOMEM. Starts "not serving" (see rcache__near_block). */
rcache__near *rcache__near_new(size_t max_bytes, int64_t max_ttl_ms);
void rcache__near_free(rcache__near *n);

/* Hit groups: a value may be filed under a group (0 .. RCACHE__NEAR_GROUPS - 1) when it is
 * installed, and the table counts the hits of each group, under the shard lock it takes
 * anyway (the facade's key families: a per-family count costs no atomic add). */
#define RCACHE__NEAR_GROUPS (RCACHE_MAX_FAMILIES + 1)
#define RCACHE__NEAR_NOGROUP 0xff /* not counted */

/* What a counted hit tells its caller: the value's group, and how many counted hits its
 * shard has served (this one included), for sampling one hit in N. */
typedef struct rcache__near_hit {
  uint8_t group;
  uint32_t seq;
} rcache__near_hit;

/* Seals. A value whose validity depends on other keys of the table (a tagged value on its
 * tags' version keys, tags.c) may be sealed once checked: sealed with the generation the
 * table had before the check read those keys. The generation advances on every removal of a
 * watched key other than an eviction or an expiry (an invalidation, found or not; a reply
 * that disagreed with it), and on every flush. A seal equal to the current generation thus
 * says that nothing the check read has changed since, as far as the table was told; a hit
 * with such a seal needs no check. Removal first, then the advance: a check that read a key
 * before its removal holds an older generation. (rcache__near_mark, in internal.h: which
 * entry a hit read, and its seal.) */

/* Keys that start with prefix (len bytes, copied) are watched. Once, before the table is
 * shared between threads. RCACHE_OK or RCACHE_ENOMEM. */
rcache_status rcache__near_watch(rcache__near *n, const char *prefix, size_t len);

/* True when key is watched. */
bool rcache__near_watched(const rcache__near *n, const char *key, size_t klen);

/* The current generation (never 0). */
uint64_t rcache__near_gen(rcache__near *n);

/* Seals key's entry with gen, if it is still the entry of the hit that gave ticket; aux is
 * kept with the seal and comes back with it in the mark (the sealer's own use). */
void rcache__near_seal(rcache__near *n, const char *key, size_t klen, uint64_t ticket, uint64_t gen,
                       uint32_t aux);

/* Looks key up at time now_us. RCACHE_OK with a malloc'd, NUL-terminated copy in *out
 * (the caller frees it) and the key's remaining TTL in *key_ttl_ms (may be NULL; -1 = no
 * expiry); RCACHE_MISS when absent, being fetched, expired or while not serving;
 * RCACHE_ENOMEM. A hit with hit != NULL is counted (in its group and its shard's sequence)
 * and described in *hit; with hit NULL it is not counted. A hit fills *mark (may be NULL). */
rcache_status rcache__near_get(rcache__near *n, const char *key, size_t klen, int64_t now_us,
                               rcache_value *out, int64_t *key_ttl_ms, rcache__near_hit *hit,
                               rcache__near_mark *mark);

/* Marks key as being fetched; returns the ticket for rcache__near_fill / _end (never 0).
 * While not serving (or without memory) the ticket only witnesses: its reply installs
 * nothing but still removes what disagrees with it. */
uint64_t rcache__near_begin(rcache__near *n, const char *key, size_t klen);

/* The reply for ticket t arrived: value data/len, the key's remaining TTL key_ttl_ms
 * (-1 = none) as read in the same round trip. Installs it with a lifetime of
 * min(key_ttl_ms, max_ttl_ms) from now_us, filed under group (or RCACHE__NEAR_NOGROUP),
 * when the placeholder of t is still there; true when installed. Values too large for the
 * table are not kept. */
bool rcache__near_fill(rcache__near *n, uint64_t t, const char *key, size_t klen, const void *data,
                       size_t len, int64_t now_us, int64_t key_ttl_ms, uint8_t group);

/* The fetch of ticket t ended without a value to install. observed: the reply said
 * something about the key (absent, or logically expired), which may be newer than what a
 * concurrent fetch would install, so a newer fetch's placeholder or entry is removed too. */
void rcache__near_end(rcache__near *n, uint64_t t, const char *key, size_t klen, bool observed);

/* A read that did not go through begin (a batch) saw data/len (data NULL: absent):
 * whatever the table holds for key that disagrees goes. */
void rcache__near_saw(rcache__near *n, const char *key, size_t klen, const void *data, size_t len);

/* Forgets key (placeholder or entry). True when something was there. */
bool rcache__near_invalidate(rcache__near *n, const char *key, size_t klen);

/* Forgets everything, placeholders included. */
void rcache__near_flush(rcache__near *n);

/* Serving gate. Each source of coherence (a listener per server) registers with
 * add_source, which counts as blocked until it calls unblock; block/unblock must be
 * balanced by the source. The table serves (and fills) only with ≥ 1 source and none
 * blocked. */
void rcache__near_add_source(rcache__near *n);
void rcache__near_remove_source(rcache__near *n, bool blocked);
void rcache__near_block(rcache__near *n);
void rcache__near_unblock(rcache__near *n);
bool rcache__near_serving(const rcache__near *n);
int rcache__near_sources(rcache__near *n);

/* In a forked child, before any other use: reinitialises the locks (a parent thread may
 * have held one at fork time) and forgets everything. */
void rcache__near_after_fork(rcache__near *n);

/* Current figures: entries (values, not placeholders) and accounted bytes. */
void rcache__near_usage(rcache__near *n, uint64_t *entries, uint64_t *bytes);

/* The counted hits of each group since the table was made: hits[RCACHE__NEAR_GROUPS]. */
void rcache__near_group_hits(rcache__near *n, uint64_t *hits);

/* The largest value (plus key) the table keeps. */
size_t rcache__near_max_entry(const rcache__near *n);

#endif
