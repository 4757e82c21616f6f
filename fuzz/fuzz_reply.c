/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzzes the reply path: arbitrary bytes as a Redis server's replies to every operation.
 *
 * The fake server of fake_server.h listens on a Unix socket in /tmp; the first command of
 * each run (the PING of rcache_open's first connection) is answered "+PONG" so that the
 * handle starts connected, everything after is the input's chunks ("\n--\n" separated).
 * The target opens rcache on unix:///tmp/rcache-fuzz-<pid>.sock and runs every operation
 * (fake_server.h's run_ops, with its checks).
 *
 * Byte 0 of the input chooses options (key prefix, stale window, lease, early refresh,
 * long-key digest, the near cache with its invalidation listener, max_value_bytes from 1 KiB
 * to 128 KiB so that "reply too large" is reached); the rest is the chunks.
 */
#include "fake_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 256 * 1024) return 0;
  if (S.lfd < 0) {
    static const char *const prelude[] = {"+PONG\r\n"}; /* rcache_open's PING */
    fz_server_start("fuzz_reply", false, prelude, 1);
  }
  uint8_t opt = data[0];
  fz_server_load(data + 1, size - 1);

  rcache_options o;
  fz_options(&o);
  o.max_value_bytes = (size_t)1024 << (opt & 7);
  if (opt & 0x08) o.key_prefix = "app:";
  if (opt & 0x10) o.stale_window_s = 30;
  if (opt & 0x20) {
    o.lease = true;
    o.lease_ms = 20;
  }
  if (opt & 0x40) o.early_refresh_beta = 1.0;
  if (opt & 0x80) {
    o.long_key_digest = true;
    o.max_key_bytes = 100;
  }
  if ((opt & 0x48) == 0x48) o.near_cache_bytes = 1 << 20; /* the invalidation listener too */

  char url[160];
  snprintf(url, sizeof url, "unix://%s", S.path);
  fz_run(&o, url);
  return 0;
}
