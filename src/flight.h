/* SPDX-License-Identifier: BSD-3-Clause */
/* Single-flight: at most one loader per key at a time in a process; other callers for
 * the same key wait for its result instead of calling the loader too. */
#ifndef RCACHE_FLIGHT_H
#define RCACHE_FLIGHT_H

#include "internal.h"

typedef struct rcache__flights rcache__flights;
typedef struct rcache__flight rcache__flight;

rcache__flights *rcache__flights_new(void);
void rcache__flights_free(rcache__flights *fs); /* no flight may be in progress */
/* In a forked child, before any other use: the flights in progress at fork time belong to
 * parent threads that do not exist here (nobody would ever land them), so the table
 * forgets them (they are left allocated: their condition variables cannot be destroyed
 * safely) and its lock is reinitialised. */
void rcache__flights_after_fork(rcache__flights *fs);

/* Joins the flight for key (creating it). *leader is true for the caller that must load
 * and then call rcache__flight_finish(); everyone calls rcache__flight_leave() at the end.
 * NULL on ENOMEM.
 * epoch: the key's invalidation epoch (handle.h) as the caller read it after its call
 * started. A flight keeps its creator's: one whose epoch is older than the caller's began
 * before an invalidation the caller must see, so its value is not the caller's answer. The
 * caller then leads a new flight for the key, which takes the old one's place in the table
 * (the old one still lands for its leader and the waiters that joined it). */
rcache__flight *rcache__flight_join(rcache__flights *fs, const char *key, size_t klen,
                                    uint64_t epoch, bool *leader);

/* Leader: publishes the result (v copied; may be NULL when st != RCACHE_OK) and wakes the
 * waiters. The flight leaves the table, so the next caller for the key starts afresh. */
void rcache__flight_finish(rcache__flights *fs, rcache__flight *f, rcache_status st,
                           const rcache_value *v);

/* Follower: waits until deadline_us (monotonic µs) for the leader. RCACHE_OK with a copy
 * in *out (caller frees), the leader's error status, RCACHE_ETIMEOUT, or RCACHE_ENOMEM. */
rcache_status rcache__flight_wait(rcache__flights *fs, rcache__flight *f, int64_t deadline_us,
                                  rcache_value *out);

void rcache__flight_leave(rcache__flights *fs, rcache__flight *f);

/* True when a flight for key finished successfully at or after since_us (monotonic µs),
 * and began at an epoch no older than the caller's (a flight overtaken by an invalidation
 * did not store its value): a caller whose miss was read before that is late, and should
 * read the cache again instead of loading a second time. Remembers the last flight per
 * bucket (a collision only costs that extra read). */
bool rcache__flight_done_since(rcache__flights *fs, const char *key, size_t klen, int64_t since_us,
                               uint64_t epoch);

#endif
