/* SPDX-License-Identifier: BSD-3-Clause */
/* Tags (tags.c): the facade's hooks for reading tagged values, and what plain values are
 * stored as (escaped when they look like a frame; framed after the namespace's first clear).
 * Internal. */
#ifndef RCACHE_TAGS_H
#define RCACHE_TAGS_H

#include "handle.h"

/* The clear key's name under the key_prefix: its version says whether and when the
 * namespace was last cleared (rcache_clear). */
#define RCACHE__CLEAR_KEY "__rc:clear"

/* true when len bytes at d are a tagged value's frame (they start with its magic) */
bool rcache__tags_framed(const char *d, size_t len);
/* What rcache stores for a plain value (len bytes at d) written through c: a decimal
 * integer (as INCR parses it) as it is — a counter, or one to be, which rcache_clear does not
 * cover; any other value framed without tags, stamped with the clear key's version, when the
 * namespace has been cleared (as far as c knows: a version read within the last second, or
 * with a near cache its tracked copy, else read now; clear, when not NULL, is that version as
 * rcache__tags_clear_now gave it earlier), so that the next rcache_clear covers it; else
 * escaped when it looks like a frame; else as it is. *out is {d, len} (not to be freed:
 * out->data == d) or a malloc'd copy. RCACHE_OK, RCACHE_ENOMEM, or the failure to read the
 * clear key's version. */
rcache_status rcache__tags_plain(rcache *c, const void *d, size_t len, const int64_t *clear,
                                 rcache_value *out);
/* The clear key's version (0: absent) as rcache__tags_plain would stamp a value with now. A
 * value loaded after this is stamped with it, so that a clear while it loads leaves it stale
 * (get_or_set). RCACHE_OK, or the failure to read it. */
rcache_status rcache__tags_clear_now(rcache *c, int64_t *v);
/* true when k is read by a plain GET: its handle's ACL user may not read the clear key (it
 * reads the namespace as never cleared), and k has no tags to check, declared or hinted */
bool rcache__tags_plain_read(rcache *c, const rcache__key *k, const rcache__tagdecl *decl);
/* For a reader that has value d (len bytes, not NULL) and the clear key's version clear (0:
 * absent) from one reply and reads nothing more (the async loop): true when they settle the
 * value as valid — a plain value while the namespace was never cleared, a counter, a frame
 * without tags stamped with clear — with *head the bytes before what the caller gets (a
 * frame's header, an escape byte). False: rcache__tags_unwrap must judge it (tags to check,
 * a stale value to unlink). */
bool rcache__tags_settled(const char *d, size_t len, int64_t clear, size_t *head);
/* The clear key's version v (0: absent) was read by a request that went out after
 * rcache__clear_asked returned `asked`: what this handle writes from now on is stamped with
 * it, unless it may be older than the version noted (see tags.c). */
void rcache__tags_clear_seen(rcache *c, int64_t v, uint64_t asked);
/* true when rcache__tags_plain would store the value as it is without reading anything (the
 * async loop writes only those itself) */
bool rcache__tags_plain_as_is(rcache *c, const void *d, size_t len);
/* A value v just read for the stored key (klen bytes): a plain value becomes what was written
 * (an escaped one loses its escape byte) while the namespace was never cleared, or when it
 * is a counter (a decimal integer), else it is a miss (freed, unlinked); a tagged one whose
 * versions are all current becomes its payload (RCACHE_OK); a stale one is freed, unlinked and
 * answered RCACHE_MISS; RCACHE_EUNAVAILABLE/ETIMEOUT when the versions could not be read (v freed:
 * an unverified value is never served). got (may be NULL): the versions a backend's get_tagged read
 * with the value (by position, or with decl by declared tag), used when they cover the frame's.
 * Notes in the hint whether v was tagged. */
rcache_status rcache__tags_unwrap(rcache *c, const char *key, size_t klen, rcache_value *v,
                                  const rcache__versions *got, const rcache__tagdecl *decl);
/* rcache__tags_unwrap of every value of a batch whose status is RCACHE_OK (stored keys ks,
 * ls): the version keys of all its tagged values in one MGET rather than one each. got (may
 * be NULL): the clear key's version (n = 1), read with the values. */
void rcache__tags_unwrap_many(rcache *c, char *const *ks, const size_t *ls, rcache_value *vals,
                              rcache_status *st, size_t n, const rcache__versions *got);
/* Reads k through be's get_tagged (the facade checked it has one): with decl's tags, the
 * value and their version keys in one round trip; without, the same with the tags k's last
 * frame had when this handle remembers them (vers then in the frame's order), else the
 * script's reading of the version keys the value's header names. Then
 * rcache__tags_unwrap(…, vers, decl). */
rcache_status rcache__tags_read(rcache *c, rcache__backend *be, const rcache__key *k,
                                rcache_value *out, int64_t *pttl_ms, const rcache__tagdecl *decl,
                                rcache__versions *vers);
/* With a near cache, at open: its table watches the version keys (near.h, "Seals"), so that
 * a tagged value checked once is served without its versions until one of them changes.
 * RCACHE_OK or RCACHE_ENOMEM. */
rcache_status rcache__tags_watch(rcache *c);
/* Removes a frame's header from a value just loaded (no version check). */
void rcache__tags_strip(rcache_value *v);

/* The hint: whether the last value read or written at the stored key (klen bytes) through
 * this handle was tagged (by key hash: collisions only cost a script instead of a GET, or a
 * second round trip). */
bool rcache__tags_hinted(rcache *c, const char *key, size_t klen);
void rcache__tags_note(rcache *c, const char *key, size_t klen, bool tagged);

/* The tags of an asynchronous tagged loader (async.c): they outlive the blocking loader's call
 * (the loader may add them after rcache_close), so the load owns a set of its own, moved into
 * the blocking loader's when the load is done (src emptied; more than RCACHE_TAGS_MAX in all,
 * or src's first failure, is dst's failure). */
rcache_tags *rcache__tags_new(void);
void rcache__tags_move(rcache_tags *dst, rcache_tags *src);
void rcache__tags_del(rcache_tags *t);

/* Frees the hint and the remembered tags (rcache_close). */
void rcache__tags_free(rcache *c);

/* The Lua text of the tagged-read script and its SHA1 in hex ("" if it could not be
 * computed), for a Redis backend's get_tagged. Static strings. */
void rcache__tags_script(const char **text, const char **sha);

#endif
