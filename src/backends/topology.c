/* SPDX-License-Identifier: BSD-3-Clause */
/* Picks the Redis topology for a URL (topology.h). */
#include "backends/topology.h"

rcache_status rcache__topology_open(rcache__ctx *ctx, rcache__backend **out) {
  const rcache__url *u = &ctx->url;
  if (u->scheme == RCACHE__SCHEME_SENTINEL) return rcache__sentinel_open(ctx, out);
  if ((u->scheme == RCACHE__SCHEME_REDIS || u->scheme == RCACHE__SCHEME_REDISS) && u->nhosts > 1)
    return rcache__cluster_open(ctx, out, true);
  return rcache__standalone_open(ctx, out);
}
