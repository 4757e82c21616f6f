/* SPDX-License-Identifier: BSD-3-Clause */
/* Redis Cluster key slots: CRC16 (XMODEM) of the key, or of its hash tag, mod 16384.
 * Pure functions, no I/O. Internal. */
#ifndef RCACHE_SLOT_H
#define RCACHE_SLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RCACHE__SLOTS 16384

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection, no final
 * XOR — the one the Redis Cluster specification uses ("123456789" gives 0x31C3). */
uint16_t rcache__crc16(const char *buf, size_t len);

/* The hash slot of a key (binary-safe): when the key holds a '{' followed later by a '}'
 * with at least one byte between them, only the bytes between the first '{' and the first
 * '}' after it are hashed; otherwise (no tag, or an empty "{}") the whole key is. */
unsigned rcache__slot(const char *key, size_t len);

/* True when every key that starts with prefix (len bytes) hashes to the same slot: the
 * prefix holds a whole, non-empty hash tag ("{app}:"), which then is every such key's. */
bool rcache__slot_fixed(const char *prefix, size_t len);

/* The cluster's reply parsers (cluster.c), exposed for unit tests and fuzzing. */

#include "rcache/rcache.h"

typedef void (*rcache__range_fn)(void *ud, unsigned lo, unsigned hi, const char *host, int port);

/* Parses one RESP reply to CLUSTER SHARDS (shards true) or CLUSTER SLOTS and calls fn for
 * each slot range with its master's address (the TLS port when tls; asked_host when the
 * reply leaves the host empty). RCACHE_OK, RCACHE_EPROTO (not a well-formed map, or not
 * one complete reply), RCACHE_ENOMEM. */
rcache_status rcache__cluster_parse_map(const char *resp, size_t len, bool shards, bool tls,
                                        const char *asked_host, rcache__range_fn fn, void *ud);

/* Classifies an error reply's text: 1 MOVED, 2 ASK (then *slot, host and *port are set;
 * host "" means the node that answered), 3 TRYAGAIN, 4 CLUSTERDOWN, 0 anything else. */
int rcache__cluster_parse_redirect(const char *err, unsigned *slot, char *host, size_t hsize,
                                   int *port);

#endif
