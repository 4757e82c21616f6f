/* SPDX-License-Identifier: BSD-3-Clause */
/* memory:// internals that tests may inspect. Internal. */
#ifndef RCACHE_MEMORY_H
#define RCACHE_MEMORY_H

#include "internal.h"

/* Bytes an entry is charged against max_bytes: its key, its value, its NUL and the
 * entry header (hash links, LRU links, expiry, lengths). */
size_t rcache__memory_charge(size_t klen, size_t vlen);

/* A snapshot of a memory:// backend: live-or-not-yet-swept keys, charged bytes, and keys
 * evicted by the max_bytes bound since open. Any argument may be NULL. */
void rcache__memory_usage(rcache__backend *b, uint64_t *keys, uint64_t *bytes, uint64_t *evictions);

#endif
