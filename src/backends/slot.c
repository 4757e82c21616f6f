/* SPDX-License-Identifier: BSD-3-Clause */
/* Redis Cluster key slots (see slot.h), as in the cluster specification's keyHashSlot(). */
#include "backends/slot.h"

/* Bitwise, no table: keys are short, and nothing shared is initialised at run time. */
uint16_t rcache__crc16(const char *buf, size_t len) {
  uint16_t crc = 0;
  for (size_t i = 0; i < len; i++) {
    crc ^= (uint16_t)((unsigned char)buf[i] << 8);
    for (int b = 0; b < 8; b++)
      crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
  }
  return crc;
}

/* The hash tag of key: true with [*b, *e) when it has one. */
static bool hash_tag(const char *key, size_t len, size_t *b, size_t *e) {
  size_t s, t;
  for (s = 0; s < len; s++)
    if (key[s] == '{') break;
  if (s == len) return false;
  for (t = s + 1; t < len; t++) /* the first '}' after it */
    if (key[t] == '}') break;
  if (t == len || t == s + 1) return false;
  *b = s + 1;
  *e = t;
  return true;
}

unsigned rcache__slot(const char *key, size_t len) {
  size_t b, e;
  if (hash_tag(key, len, &b, &e)) return rcache__crc16(key + b, e - b) & (RCACHE__SLOTS - 1);
  return rcache__crc16(key, len) & (RCACHE__SLOTS - 1);
}

bool rcache__slot_fixed(const char *prefix, size_t len) {
  size_t b, e;
  /* a tag closed within the prefix is the first '{' ... '}' of any longer key too; an
   * unclosed '{' or an empty "{}" leaves the slot to the rest of the key */
  return hash_tag(prefix, len, &b, &e);
}
