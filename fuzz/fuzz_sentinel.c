/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzzes the Sentinel backend with hostile sentinels and masters: arbitrary bytes as the
 * answers to SENTINEL get-master-addr-by-name, ROLE, the +switch-master subscription and
 * every operation, with fake_server.h's checks: valid statuses, zeroed outputs, no crash,
 * leak, undefined behaviour, hang or unbounded allocation.
 *
 * The fake server on 127.0.0.1 plays every sentinel and every master; the first command of
 * a run (the first sentinel query) is answered with a master address, the rest with the
 * input's chunks ("\n--\n" separated). Whatever address a fuzzed sentinel names, nothing
 * leaves the fake server (FZ_CAPTURE_TCP).
 *
 * Byte 0 chooses options (max_value_bytes, key prefix, credentials in the URL, stale
 * window, lease, rate_limit_fail_closed, the near cache).
 */
#define FZ_CAPTURE_TCP
#include "fake_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 256 * 1024) return 0;
  if (S.lfd < 0) { /* the master's address, to the first sentinel query */
    static const char *const prelude[] = {"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n"};
    fz_server_start("fuzz_sentinel", true, prelude, 1);
  }
  uint8_t opt = data[0];
  fz_server_load(data + 1, size - 1);

  rcache_options o;
  fz_options(&o);
  o.max_value_bytes = (size_t)4096 << (opt & 3);
  if (opt & 0x04) o.key_prefix = "app:";
  if (opt & 0x10) o.stale_window_s = 30;
  if (opt & 0x20) {
    o.lease = true;
    o.lease_ms = 20;
  }
  if (opt & 0x40) o.rate_limit_fail_closed = true;
  if (opt & 0x80) o.near_cache_bytes = 1 << 20;

  char url[160];
  snprintf(url, sizeof url, "redis+sentinel://%s127.0.0.1:%d,localhost:%d/mymaster",
           opt & 0x08 ? "app:pw@" : "", S.port, S.port);
  fz_run(&o, url);
  return 0;
}
