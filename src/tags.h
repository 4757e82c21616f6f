/* SPDX-License-Identifier: BSD-3-Clause */
/* Tags (tags.c): the facade's hooks for reading tagged values. Internal. */
#ifndef RCACHE_TAGS_H
#define RCACHE_TAGS_H

#include "internal.h"

/* true when len bytes at d start with the tagged-value frame's magic */
bool rcache__tags_framed(const char *d, size_t len);
/* A value v just read for the stored key (klen bytes): untagged values pass unchanged; a
 * tagged one whose versions are all current becomes its payload (RCACHE_OK); a stale one is
 * freed, unlinked and answered RCACHE_MISS; RCACHE_EUNAVAILABLE/ETIMEOUT when the versions
 * could not be read (v freed: an unverified value is never served). */
rcache_status rcache__tags_unwrap(rcache *c, const char *key, size_t klen, rcache_value *v);
/* Removes a frame's header from a value just loaded (no version check). */
void rcache__tags_strip(rcache_value *v);

#endif
