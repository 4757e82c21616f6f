/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzzes the cluster backend with a hostile cluster: arbitrary bytes as the slot map
 * (CLUSTER SHARDS / CLUSTER SLOTS), as MOVED / ASK / TRYAGAIN / CLUSTERDOWN redirections and
 * as every node's replies to every operation, with fake_server.h's checks: valid statuses,
 * zeroed outputs, no crash, leak, undefined behaviour, hang or unbounded allocation.
 *
 * The fake server listens on 127.0.0.1 (TCP: a unix:// URL never becomes a cluster). The
 * first two commands of a run get canned answers — +PONG to the PING of rcache_open's first
 * connection, and "cluster_enabled:1" to its INFO cluster — so that every run opens the
 * cluster backend; everything after is the input's chunks ("\n--\n" separated). Nothing
 * leaves the fake server whatever hosts a fuzzed slot map names (FZ_CAPTURE_TCP).
 *
 * Byte 0 chooses options (key prefix, max_redirects 0..7, the near cache, max_value_bytes).
 */
#define FZ_CAPTURE_TCP
#include "fake_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 256 * 1024) return 0;
  if (S.lfd < 0) { /* rcache_open's PING, then its INFO cluster */
    static const char *const prelude[] = {"+PONG\r\n", "$17\r\ncluster_enabled:1\r\n"};
    fz_server_start("fuzz_cluster", true, prelude, 2);
  }
  uint8_t opt = data[0];
  fz_server_load(data + 1, size - 1);

  rcache_options o;
  fz_options(&o);
  o.max_value_bytes = (size_t)4096 << (opt & 3);
  if (opt & 0x04) o.key_prefix = "app:";
  o.max_redirects = (opt >> 3) & 7;
  if (opt & 0x40) o.near_cache_bytes = 1 << 20;
  if (opt & 0x80) o.stale_window_s = 30;

  char url[160];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", S.port);
  fz_run(&o, url);
  return 0;
}
