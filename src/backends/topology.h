/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The Redis topologies' openers, and the one place that picks a topology for a URL:
 * Sentinel for sentinel:// (sentinel.c), Cluster for a seed list (cluster.c), else one
 * server (standalone.c), which becomes a Cluster when its server turns out to be a cluster
 * node. Each topology is an rcache__redis (redis.h) whose exchanges go through the engine
 * (exchange.h). Internal.
 */
#ifndef RCACHE_TOPOLOGY_H
#define RCACHE_TOPOLOGY_H

#include "internal.h"

/* redis://, rediss://, unix://, sentinel://: the topology the URL names. Never fails because
 * the server is down. */
rcache_status rcache__topology_open(rcache__ctx *ctx, rcache__backend **out);

/* One server (standalone.c): cluster detection by its first contact, or by the first
 * exchange that succeeds or meets a MOVED/ASK (then ctx->successor is a cluster backend). */
rcache_status rcache__standalone_open(rcache__ctx *ctx, rcache__backend **out);

/* Cluster (cluster.c). A cluster opened for a seed list (`seeds`)
 * reads its first map in its first contact (rcache__redis_first_contact); one opened for a
 * one-host URL's detection, already in a first contact or a call, reads it before it
 * returns (RCACHE_ENOMEM when memory ran out there). */
rcache_status rcache__cluster_open(rcache__ctx *ctx, rcache__backend **out, bool seeds);
/* Waits, until deadline_us at most, for the first attempt of every near-cache listener the
 * cluster backend be has started (the first contact's part of a cluster found by it). */
void rcache__cluster_wait_listeners(rcache__backend *be, int64_t deadline_us);
/* Sentinel (sentinel.c): the master a set of sentinels names, followed on failover. */
rcache_status rcache__sentinel_open(rcache__ctx *ctx, rcache__backend **out);

#endif
