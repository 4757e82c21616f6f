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

#endif
