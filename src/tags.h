/* SPDX-License-Identifier: BSD-3-Clause */
/* Tags (tags.c): the facade's hooks for reading tagged values, and the escaping of plain
 * values that look like one. Internal. */
#ifndef RCACHE_TAGS_H
#define RCACHE_TAGS_H

#include "handle.h"

/* true when len bytes at d are a tagged value's frame (they start with its magic) */
bool rcache__tags_framed(const char *d, size_t len);
/* true when a plain value (len bytes at d) must be stored escaped: it starts with one or
 * more \xff then "RC\x01", as a frame or an escaped value does */
bool rcache__tags_needs_escape(const void *d, size_t len);
/* *out = \xff + the len bytes at d (malloc'd, NUL-terminated): what is stored for it */
rcache_status rcache__tags_escape(const void *d, size_t len, rcache_value *out);
/* A value v just read for the stored key (klen bytes): a plain value becomes what was written
 * (an escaped one loses its escape byte); a tagged one whose versions are all current becomes
 * its payload (RCACHE_OK); a stale one is freed, unlinked and answered RCACHE_MISS;
 * RCACHE_EUNAVAILABLE/ETIMEOUT when the versions could not be read (v freed: an unverified
 * value is never served). got (may be NULL): the versions a backend's get_tagged read with
 * the value (by position, or with decl by declared tag), used when they cover the frame's.
 * Notes in the hint whether v was tagged. */
rcache_status rcache__tags_unwrap(rcache *c, const char *key, size_t klen, rcache_value *v,
                                  const rcache__versions *got, const rcache__tagdecl *decl);
/* rcache__tags_unwrap of every value of a batch whose status is RCACHE_OK (stored keys ks,
 * ls): the version keys of all its tagged values in one MGET rather than one each. */
void rcache__tags_unwrap_many(rcache *c, char *const *ks, const size_t *ls, rcache_value *vals,
                              rcache_status *st, size_t n);
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
