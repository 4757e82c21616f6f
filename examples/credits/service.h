/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The credits service: a small piece of an application (users with credits, sessions,
 * feature flags) keeping its truth in SQLite and using rcache the way the usage guide
 * says: cache-aside reads with rcache_get_or_set(), invalidation after writes, atomic
 * rate limits, and the key helpers of <rcache/keys.h>.
 *
 * A user's own data (balance, profile) is cached tagged "user:<id>": a credit update
 * invalidates all of it with one rcache_invalidate_tag(), whatever the number of keys, no
 * scan. Every read works without the cache: when rcache is unavailable the loaders run and
 * the answer comes from SQLite. Invalidations that could not reach the cache are remembered
 * and replayed by credits_replay_invalidations() once it is back.
 *
 * Not thread-safe (one SQLite connection, no locking): the demo is single-threaded.
 */
#ifndef CREDITS_SERVICE_H
#define CREDITS_SERVICE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "rcache/keys.h"
#include "rcache/rcache.h"

#define CREDITS_MAX_PENDING 1024

typedef struct credits_svc {
  sqlite3 *db;
  rcache *cache; /* the cache in use (not owned: the caller may swap it) */
  sqlite3_stmt *q_credits, *q_session, *q_flag, *q_user, *i_ledger;
  /* figures for the report */
  uint64_t selects; /* SELECT statements SQLite ran (counted by a SQLite trace hook) */
  uint64_t loads;   /* loader calls (each runs one SELECT) */
  int64_t db_ns;    /* time spent in the loaders, i.e. in SQLite */
  uint64_t writes;  /* credit updates */
  uint64_t dropped; /* invalidations the cache did not take */
  bool counting;    /* false while the demo's own checks query SQLite */
  /* users whose invalidation was dropped, replayed when the cache is back */
  char pending[CREDITS_MAX_PENDING][24];
  size_t npending;
} credits_svc;

typedef struct credits_session {
  int64_t user_id;
  int64_t expires_at; /* unix seconds */
} credits_session;

/* Opens (creating and seeding on first use) the database at path. *created tells which. */
int credits_open(credits_svc *s, const char *path, rcache *cache, bool *created);
void credits_close(credits_svc *s);

/* The tag of a user's cached data, "user:<id>" (snprintf semantics). */
int credits_user_tag(char *buf, size_t size, const char *user_id);

/* A user's balance: the sum of their ledger, cached for RCACHE_TTL_SHORT, tagged with the
 * user's tag (read it with rcache_get_tagged() and that tag).
 * 0 on success, -1 when the user has no ledger or SQLite failed. */
int credits_get_user_credits(credits_svc *s, const char *user_id, int64_t *credits);

/* Adds delta (negative: spend) to the ledger, then invalidates the user's cached data
 * (rcache_invalidate_tag of the user's tag; queued for replay when the cache is down). */
int credits_update_user_credits(credits_svc *s, const char *user_id, int64_t delta,
                                const char *reason);

/* Fixed-window rate limit per user and endpoint: *allowed says whether to serve.
 * While the cache is unavailable it fails open (allowed) — rcache's default. */
int credits_check_rate_limit(credits_svc *s, const char *user_id, const char *endpoint,
                             int64_t limit, int64_t window_s, bool *allowed, int64_t *count);

/* A live session, cached for RCACHE_TTL_MEDIUM. -1 when absent or expired. */
int credits_get_session(credits_svc *s, const char *session_id, credits_session *out);

/* A feature flag, cached for RCACHE_TTL_LONG. -1 when the flag does not exist. */
int credits_is_feature_enabled(credits_svc *s, const char *flag, bool *enabled);

/* The user's name and plan ("ada|pro"), cached for RCACHE_TTL_LONG, tagged as the balance. */
int credits_get_user(credits_svc *s, const char *user_id, char *buf, size_t size);

/* Replays the invalidations dropped while the cache was unavailable (rcache_invalidate_tag
 * of each user's tag: one INCR per user). Returns how many users were replayed, or -1 when
 * the cache is still unavailable (the rest stay queued). */
int credits_replay_invalidations(credits_svc *s);

/* The balance straight from SQLite (not counted in the figures): for consistency checks. */
int credits_db_balance(credits_svc *s, const char *user_id, int64_t *credits);

/* Number of users in the database. */
int64_t credits_user_count(credits_svc *s);

#endif
