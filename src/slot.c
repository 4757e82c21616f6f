/* SPDX-License-Identifier: BSD-3-Clause */
/* Redis Cluster key slots (see slot.h), as in the cluster specification's keyHashSlot(). */
#include "slot.h"

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

unsigned rcache__slot(const char *key, size_t len) {
  size_t s, e;
  for (s = 0; s < len; s++)
    if (key[s] == '{') break;
  if (s < len) { /* a '{': look for the first '}' after it */
    for (e = s + 1; e < len; e++)
      if (key[e] == '}') break;
    if (e < len && e != s + 1) return rcache__crc16(key + s + 1, e - s - 1) & (RCACHE__SLOTS - 1);
  }
  return rcache__crc16(key, len) & (RCACHE__SLOTS - 1);
}
