/*
 * Fuzzes the Redis Cluster reply parsers (cluster.c): a slot map as a server could send it,
 * and the text of a redirection error.
 *
 * Byte 0 chooses: bits 0-1 = 0 CLUSTER SHARDS, 1 CLUSTER SLOTS, 2 CLUSTER SHARDS read for a
 * TLS connection, 3 an error text (MOVED / ASK / TRYAGAIN / CLUSTERDOWN). The rest is the
 * RESP reply, or the text. Checks: every range reported is within 0..16383 and ordered, its
 * port within 1..65535 and its host non-empty; a redirection's slot and port are in range;
 * nothing crashes, leaks or trips a sanitizer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slot.h"

static void check_range(void *ud, unsigned lo, unsigned hi, const char *host, int port) {
  (void)ud;
  if (lo > hi || hi >= RCACHE__SLOTS || port <= 0 || port > 65535 || !host || !*host) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int mode = data[0] & 3;
  const char *body = (const char *)data + 1;
  size_t len = size - 1;
  if (mode < 3) {
    rcache_status s = rcache__cluster_parse_map(body, len, mode != 1, mode == 2, "asked.host",
                                                check_range, NULL);
    if (s != RCACHE_OK && s != RCACHE_EPROTO && s != RCACHE_ENOMEM) abort();
    return 0;
  }
  char *text = malloc(len + 1);
  if (!text) return 0;
  memcpy(text, body, len);
  text[len] = '\0';
  unsigned slot = 0;
  char host[256];
  int port = 0;
  int k = rcache__cluster_parse_redirect(text, &slot, host, sizeof host, &port);
  if (k < 0 || k > 4) abort();
  if ((k == 1 || k == 2) && (slot >= RCACHE__SLOTS || port <= 0 || port > 65535)) abort();
  free(text);
  return 0;
}
