/* SPDX-License-Identifier: BSD-3-Clause */
/* The credits service: SQLite is the truth, rcache is in front of it (see service.h). */
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEED_USERS 100
#define SEED_LEDGER_PER_USER 1500 /* a balance is an aggregate the database works for */
#define SEED_SESSIONS 100

static const char *const seed_flags[][2] = {
    {"new_dashboard", "1"}, {"dark_mode", "1"}, {"beta_export", "0"},  {"ai_summaries", "1"},
    {"bulk_invoices", "0"}, {"sso_login", "1"}, {"usage_alerts", "1"}, {"legacy_api", "0"},
};
#define NFLAGS (sizeof seed_flags / sizeof seed_flags[0])

static const char schema[] =
    "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, plan TEXT NOT NULL);"
    "CREATE TABLE credit_ledger(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL"
    "  REFERENCES users(id), amount INTEGER NOT NULL, reason TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX credit_ledger_user ON credit_ledger(user_id);"
    "CREATE TABLE sessions(id TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),"
    "  expires_at INTEGER NOT NULL);"
    "CREATE TABLE feature_flags(name TEXT PRIMARY KEY, enabled INTEGER NOT NULL);";

/* Counts the SELECTs SQLite actually runs: an account of database work that does not
 * depend on the service's own bookkeeping. */
static int on_trace(unsigned type, void *ud, void *p, void *x) {
  credits_svc *s = ud;
  const char *sql = sqlite3_sql((sqlite3_stmt *)p);
  if (type == SQLITE_TRACE_STMT && sql && strncmp(sql, "SELECT", 6) == 0 && s->counting)
    s->selects++;
  return 0;
}

static int exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK) return 0;
  fprintf(stderr, "credits: SQLite: %s\n", err ? err : sqlite3_errmsg(db));
  sqlite3_free(err);
  return -1;
}

static int seed(sqlite3 *db) {
  static const char *const names[] = {"ada",    "grace", "alan",   "edsger",   "barbara",
                                      "donald", "ken",   "dennis", "margaret", "linus"};
  static const char *const plans[] = {"free", "pro", "team"};
  sqlite3_stmt *u = NULL, *l = NULL, *se = NULL, *f = NULL;
  int rc = exec(db, "BEGIN") || exec(db, schema);
  rc = rc || sqlite3_prepare_v2(db, "INSERT INTO users VALUES(?,?,?)", -1, &u, NULL) ||
       sqlite3_prepare_v2(db,
                          "INSERT INTO credit_ledger(user_id,amount,reason,created_at) "
                          "VALUES(?,?,?,?)",
                          -1, &l, NULL) ||
       sqlite3_prepare_v2(db, "INSERT INTO sessions VALUES(?,?,?)", -1, &se, NULL) ||
       sqlite3_prepare_v2(db, "INSERT INTO feature_flags VALUES(?,?)", -1, &f, NULL);
  uint32_t r = 12345;
  int64_t now = (int64_t)time(NULL);
  for (int i = 1; !rc && i <= SEED_USERS; i++) {
    char name[32];
    snprintf(name, sizeof name, "%s%d", names[i % 10], i);
    sqlite3_bind_int(u, 1, i);
    sqlite3_bind_text(u, 2, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(u, 3, plans[i % 3], -1, SQLITE_STATIC);
    rc = sqlite3_step(u) != SQLITE_DONE || sqlite3_reset(u);
    for (int k = 0; !rc && k < SEED_LEDGER_PER_USER; k++) {
      r = r * 1103515245u + 12345u;
      int amount = k == 0 ? 1000 : (int)((r >> 16) % 21) - 10; /* a grant, then small moves */
      sqlite3_bind_int(l, 1, i);
      sqlite3_bind_int(l, 2, amount);
      sqlite3_bind_text(l, 3,
                        k == 0       ? "signup grant"
                        : amount < 0 ? "usage"
                                     : "top-up",
                        -1, SQLITE_STATIC);
      sqlite3_bind_int64(l, 4, now - (SEED_LEDGER_PER_USER - k) * 60);
      rc = sqlite3_step(l) != SQLITE_DONE || sqlite3_reset(l);
    }
  }
  for (int i = 1; !rc && i <= SEED_SESSIONS; i++) {
    char id[32];
    snprintf(id, sizeof id, "sess-%04d", i);
    sqlite3_bind_text(se, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(se, 2, (i - 1) % SEED_USERS + 1);
    sqlite3_bind_int64(se, 3, now + 365 * 86400); /* the demo's sessions outlive many runs */
    rc = sqlite3_step(se) != SQLITE_DONE || sqlite3_reset(se);
  }
  for (size_t i = 0; !rc && i < NFLAGS; i++) {
    sqlite3_bind_text(f, 1, seed_flags[i][0], -1, SQLITE_STATIC);
    sqlite3_bind_int(f, 2, atoi(seed_flags[i][1]));
    rc = sqlite3_step(f) != SQLITE_DONE || sqlite3_reset(f);
  }
  sqlite3_finalize(u);
  sqlite3_finalize(l);
  sqlite3_finalize(se);
  sqlite3_finalize(f);
  if (rc) {
    fprintf(stderr, "credits: seeding failed: %s\n", sqlite3_errmsg(db));
    exec(db, "ROLLBACK");
    return -1;
  }
  return exec(db, "COMMIT");
}

int credits_open(credits_svc *s, const char *path, rcache *cache, bool *created) {
  memset(s, 0, sizeof *s);
  s->cache = cache;
  if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
      SQLITE_OK) {
    fprintf(stderr, "credits: cannot open %s: %s\n", path, sqlite3_errmsg(s->db));
    sqlite3_close(s->db);
    s->db = NULL;
    return -1;
  }
  sqlite3_busy_timeout(s->db, 2000);
  /* A service's usual settings: WAL, and no fsync per transaction (still crash-safe). */
  exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  sqlite3_stmt *q;
  int have = 0;
  if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM sqlite_master WHERE name='users'", -1, &q,
                         NULL) == SQLITE_OK &&
      sqlite3_step(q) == SQLITE_ROW)
    have = sqlite3_column_int(q, 0);
  sqlite3_finalize(q);
  *created = !have;
  if (!have && seed(s->db) != 0) goto fail;
  if (sqlite3_prepare_v2(s->db,
                         "SELECT count(*), COALESCE(SUM(amount),0) FROM credit_ledger "
                         "WHERE user_id=?",
                         -1, &s->q_credits, NULL) ||
      sqlite3_prepare_v2(s->db,
                         "SELECT user_id, expires_at FROM sessions WHERE id=? AND "
                         "expires_at > ?",
                         -1, &s->q_session, NULL) ||
      sqlite3_prepare_v2(s->db, "SELECT enabled FROM feature_flags WHERE name=?", -1, &s->q_flag,
                         NULL) ||
      sqlite3_prepare_v2(s->db, "SELECT name, plan FROM users WHERE id=?", -1, &s->q_user, NULL) ||
      sqlite3_prepare_v2(s->db,
                         "INSERT INTO credit_ledger(user_id,amount,reason,created_at) "
                         "VALUES(?,?,?,?)",
                         -1, &s->i_ledger, NULL)) {
    fprintf(stderr, "credits: %s: %s (delete it to start over)\n", path, sqlite3_errmsg(s->db));
    goto fail;
  }
  sqlite3_trace_v2(s->db, SQLITE_TRACE_STMT, on_trace, s);
  s->counting = true;
  return 0;
fail:
  credits_close(s);
  return -1;
}

void credits_close(credits_svc *s) {
  sqlite3_finalize(s->q_credits);
  sqlite3_finalize(s->q_session);
  sqlite3_finalize(s->q_flag);
  sqlite3_finalize(s->q_user);
  sqlite3_finalize(s->i_ledger);
  sqlite3_close(s->db);
  memset(s, 0, sizeof *s);
}

/* ---- loaders: one SELECT each, run by rcache_get_or_set() on a miss -------------------------- */

typedef struct load_ctx {
  credits_svc *s;
  const char *id;
} load_ctx;

static rcache_status give(rcache_value *out, const char *text) {
  out->len = strlen(text);
  out->data = malloc(out->len + 1);
  if (!out->data) return RCACHE_ENOMEM;
  memcpy(out->data, text, out->len + 1);
  return RCACHE_OK;
}

static rcache_status load_credits(void *ud, rcache_value *out) {
  load_ctx *l = ud;
  sqlite3_stmt *q = l->s->q_credits;
  char buf[32];
  l->s->loads++;
  sqlite3_bind_int64(q, 1, strtoll(l->id, NULL, 10));
  bool found = sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int64(q, 0) > 0;
  if (found) snprintf(buf, sizeof buf, "%lld", (long long)sqlite3_column_int64(q, 1));
  sqlite3_reset(q);
  return found ? give(out, buf) : RCACHE_MISS; /* any non-OK status: nothing is cached */
}

static rcache_status load_session(void *ud, rcache_value *out) {
  load_ctx *l = ud;
  sqlite3_stmt *q = l->s->q_session;
  char buf[48];
  l->s->loads++;
  sqlite3_bind_text(q, 1, l->id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 2, (int64_t)time(NULL));
  bool found = sqlite3_step(q) == SQLITE_ROW;
  if (found)
    snprintf(buf, sizeof buf, "%lld %lld", (long long)sqlite3_column_int64(q, 0),
             (long long)sqlite3_column_int64(q, 1));
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  return found ? give(out, buf) : RCACHE_MISS;
}

static rcache_status load_flag(void *ud, rcache_value *out) {
  load_ctx *l = ud;
  sqlite3_stmt *q = l->s->q_flag;
  l->s->loads++;
  sqlite3_bind_text(q, 1, l->id, -1, SQLITE_STATIC);
  int on = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int(q, 0) != 0 : -1;
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  return on < 0 ? RCACHE_MISS : give(out, on ? "1" : "0");
}

static rcache_status load_user(void *ud, rcache_value *out) {
  load_ctx *l = ud;
  sqlite3_stmt *q = l->s->q_user;
  char buf[96];
  l->s->loads++;
  sqlite3_bind_int64(q, 1, strtoll(l->id, NULL, 10));
  bool found = sqlite3_step(q) == SQLITE_ROW;
  if (found)
    snprintf(buf, sizeof buf, "%s|%s", (const char *)sqlite3_column_text(q, 0),
             (const char *)sqlite3_column_text(q, 1));
  sqlite3_reset(q);
  return found ? give(out, buf) : RCACHE_MISS;
}

/* Cache-aside read of key through loader. Sessions and flags stay plain text in the cache,
 * so any other client reading the same Redis sees "1234", not an envelope; a user's own data
 * is tagged (cached_user), and rcache strips the tag header when it reads it. */
typedef struct timed_ctx {
  load_ctx l;
  rcache_loader_fn loader;
} timed_ctx;

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Runs a loader and adds its time to the service's "time in SQLite". */
static rcache_status timed_load(void *ud, rcache_value *out) {
  timed_ctx *t = ud;
  int64_t t0 = mono_ns();
  rcache_status st = t->loader(&t->l, out);
  t->l.s->db_ns += mono_ns() - t0;
  return st;
}

static int cached(credits_svc *s, const char *key, int64_t ttl_s, rcache_loader_fn loader,
                  const char *id, rcache_value *v) {
  timed_ctx t = {{s, id}, loader};
  rcache_status st = rcache_get_or_set(s->cache, key, ttl_s, timed_load, &t, v);
  return st == RCACHE_OK ? 0 : -1; /* RCACHE_ELOADER: not in the database */
}

static rcache_status timed_load_tagged(void *ud, rcache_value *out, rcache_tags *tags) {
  (void)tags; /* the user's tag is known up front */
  return timed_load(ud, out);
}

/* cached() for a user's own data: stored tagged "user:<id>", so that one
 * rcache_invalidate_tag() makes all of it a miss, without a scan (docs/semantics.md, Tags). */
static int cached_user(credits_svc *s, const char *key, int64_t ttl_s, rcache_loader_fn loader,
                       const char *id, rcache_value *v) {
  char tag[64];
  int n = credits_user_tag(tag, sizeof tag, id);
  if (n < 0 || n >= (int)sizeof tag) return -1;
  const char *tags[] = {tag};
  timed_ctx t = {{s, id}, loader};
  rcache_status st =
      rcache_get_or_set_tagged(s->cache, key, ttl_s, tags, 1, timed_load_tagged, &t, v);
  return st == RCACHE_OK ? 0 : -1;
}

/* ---- the usage guide's functions ------------------------------------------------------------- */

int credits_get_user_credits(credits_svc *s, const char *user_id, int64_t *credits) {
  char key[128];
  rcache_value v;
  int n = rcache_key_user_credits(key, sizeof key, user_id);
  if (n < 0 || n >= (int)sizeof key) return -1;
  if (cached_user(s, key, RCACHE_TTL_SHORT, load_credits, user_id, &v) != 0) return -1;
  char *end;
  *credits = strtoll(v.data, &end, 10);
  int rc = *end == '\0' && v.len ? 0 : -1;
  rcache_value_free(&v);
  return rc;
}

int credits_user_tag(char *buf, size_t size, const char *user_id) {
  return rcache_key_user(buf, size, user_id); /* "user:<id>": a tag, not a key */
}

static rcache_status invalidate_user(credits_svc *s, const char *user_id) {
  char tag[64];
  int n = credits_user_tag(tag, sizeof tag, user_id);
  if (n < 0 || n >= (int)sizeof tag) return RCACHE_EINVAL;
  return rcache_invalidate_tag(s->cache, tag);
}

int credits_update_user_credits(credits_svc *s, const char *user_id, int64_t delta,
                                const char *reason) {
  sqlite3_stmt *q = s->i_ledger;
  sqlite3_bind_int64(q, 1, strtoll(user_id, NULL, 10));
  sqlite3_bind_int64(q, 2, delta);
  sqlite3_bind_text(q, 3, reason, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 4, (int64_t)time(NULL));
  int rc = sqlite3_step(q) == SQLITE_DONE ? 0 : -1;
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  if (rc) return -1;
  s->writes++;
  /* The database changed: the user's cached data must go (one INCR of the user's tag,
   * whatever the number of keys). If the cache cannot take it now, remember it; a stale
   * balance must not outlive the outage. */
  if (invalidate_user(s, user_id) != RCACHE_OK) {
    s->dropped++;
    bool queued = false;
    for (size_t i = 0; i < s->npending && !queued; i++)
      queued = strcmp(s->pending[i], user_id) == 0;
    if (!queued && s->npending < CREDITS_MAX_PENDING)
      snprintf(s->pending[s->npending++], sizeof s->pending[0], "%s", user_id);
  }
  return 0;
}

int credits_check_rate_limit(credits_svc *s, const char *user_id, const char *endpoint,
                             int64_t limit, int64_t window_s, bool *allowed, int64_t *count) {
  char key[160];
  int n = rcache_key_rate_limit(key, sizeof key, user_id, endpoint);
  if (n < 0 || n >= (int)sizeof key) return -1;
  rcache_status st = rcache_rate_limit(s->cache, key, limit, window_s, allowed, count);
  /* unavailable: rcache already chose (fail open by default) */
  return st == RCACHE_OK || st == RCACHE_EUNAVAILABLE ? 0 : -1;
}

int credits_get_session(credits_svc *s, const char *session_id, credits_session *out) {
  char key[128];
  rcache_value v;
  int n = rcache_key_session(key, sizeof key, session_id);
  if (n < 0 || n >= (int)sizeof key) return -1;
  if (cached(s, key, RCACHE_TTL_MEDIUM, load_session, session_id, &v) != 0) return -1;
  long long uid = 0, exp = 0;
  int ok = sscanf(v.data, "%lld %lld", &uid, &exp) == 2;
  rcache_value_free(&v);
  if (!ok || exp <= (long long)time(NULL)) { /* expired while cached: gone */
    rcache_delete(s->cache, key);
    return -1;
  }
  out->user_id = uid;
  out->expires_at = exp;
  return 0;
}

int credits_is_feature_enabled(credits_svc *s, const char *flag, bool *enabled) {
  char key[128];
  rcache_value v;
  int n = rcache_key_feature_flag(key, sizeof key, flag);
  if (n < 0 || n >= (int)sizeof key) return -1;
  if (cached(s, key, RCACHE_TTL_LONG, load_flag, flag, &v) != 0) return -1;
  *enabled = v.len == 1 && v.data[0] == '1';
  rcache_value_free(&v);
  return 0;
}

int credits_get_user(credits_svc *s, const char *user_id, char *buf, size_t size) {
  char key[128];
  rcache_value v;
  int n = rcache_key_user(key, sizeof key, user_id);
  if (n < 0 || n >= (int)sizeof key) return -1;
  if (cached_user(s, key, RCACHE_TTL_LONG, load_user, user_id, &v) != 0) return -1;
  snprintf(buf, size, "%s", v.data);
  rcache_value_free(&v);
  return 0;
}

int credits_replay_invalidations(credits_svc *s) {
  size_t done = 0;
  for (; done < s->npending; done++) {
    if (invalidate_user(s, s->pending[done]) != RCACHE_OK) break;
  }
  memmove(s->pending, s->pending + done, (s->npending - done) * sizeof s->pending[0]);
  s->npending -= done;
  return s->npending ? -1 : (int)done;
}

int credits_db_balance(credits_svc *s, const char *user_id, int64_t *credits) {
  sqlite3_stmt *q = s->q_credits;
  s->counting = false;
  sqlite3_bind_int64(q, 1, strtoll(user_id, NULL, 10));
  int rc = sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int64(q, 0) > 0 ? 0 : -1;
  if (!rc) *credits = sqlite3_column_int64(q, 1);
  sqlite3_reset(q);
  s->counting = true;
  return rc;
}

int64_t credits_user_count(credits_svc *s) {
  sqlite3_stmt *q;
  int64_t n = -1;
  s->counting = false;
  if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM users", -1, &q, NULL) == SQLITE_OK &&
      sqlite3_step(q) == SQLITE_ROW)
    n = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  s->counting = true;
  return n;
}
