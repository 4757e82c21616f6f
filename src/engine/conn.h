/* SPDX-License-Identifier: BSD-3-Clause */
/* One Redis connection: our socket (transport.c) plus hiredis' reply parser. Commands
 * are formatted by hiredis (redisFormatCommandArgv) into a batch that goes out in one
 * write; replies are read by one deadline. Internal; not thread-safe (a connection
 * belongs to one caller at a time, see pool.c). */
#ifndef RCACHE_CONN_H
#define RCACHE_CONN_H

#include <hiredis/hiredis.h>

#include "engine/transport.h"

struct rcache__call;

typedef struct rcache__conn {
  rcache__sock sock;
  redisReader *rd;
  struct rcache__conn *next; /* the pool's idle list, or its list of connections in use */
  uint64_t epoch;            /* the pool's epoch when it was made */
  bool broken;               /* a failed or half-read exchange: never reuse */
  bool reused;               /* has served a call before (may be stale after a restart) */
  long long client_id;       /* CLIENT ID, when asked for (near cache) */
  size_t budget;             /* heap bytes the reply being read may still allocate (conn.c) */
  size_t bytes_left;         /* ...of which string bytes */
  bool over;                 /* it asked for more: the reply is too big */
  bool in_reply;             /* a reply has begun (its budget is running) */
  /* Its pipeline while shared (rcache__pool_submit, pool.c), under the pool's lock:
   * calls waiting to be written, calls written and waiting for replies (in order). */
  struct rcache__call *queue, **queue_tail, *flight, **flight_tail;
  int calls;          /* queued + in flight */
  size_t bytes;       /* their request bytes */
  bool shared;        /* in the pipeline's use (not held by one caller) */
  bool poisoned;      /* a caller left without a tombstone: its leader must fail it */
  _Atomic bool heavy; /* a large reply is streaming in: joining it would wait behind it */
  char *wbuf;         /* one write of several callers' batches */
  size_t wcap;
} rcache__conn;

/* The reply types a command may get, as a mask (an error reply is always accepted). */
#define RCACHE__R(type) (1u << (type))
#define RCACHE__R_STR RCACHE__R(REDIS_REPLY_STRING)
#define RCACHE__R_ARR RCACHE__R(REDIS_REPLY_ARRAY)
#define RCACHE__R_INT RCACHE__R(REDIS_REPLY_INTEGER)
#define RCACHE__R_NIL RCACHE__R(REDIS_REPLY_NIL)
#define RCACHE__R_OK RCACHE__R(REDIS_REPLY_STATUS)
#define RCACHE__EXPECT_EACH 8 /* commands with a mask of their own; the rest share one */

/* A batch of formatted commands (pipelined in one write). */
typedef struct rcache__cmds {
  char *buf;
  size_t len, cap;
  int n;
  char *one; /* a batch of one keeps hiredis' buffer as it is (no copy) */
  size_t one_len;
  size_t values; /* a reply may hold this many values (MGET of n keys); 0 = 1 */
  bool secret;   /* holds a password (AUTH): every copy is wiped when freed or moved */
  /* what each reply may be (0: anything): a reply of another type means the connection is
   * out of step with its requests (a reply nobody asked for came first), see conn_exec */
  unsigned char expect[RCACHE__EXPECT_EACH];
  unsigned expect_rest; /* the union of the masks of commands past RCACHE__EXPECT_EACH */
} rcache__cmds;

/* Appends one command. RCACHE_OK or RCACHE_ENOMEM. */
rcache_status rcache__cmds_add(rcache__cmds *b, int argc, const char **argv, const size_t *lens);
/* Declares the reply types (RCACHE__R_* mask) the last command added may get. */
void rcache__cmds_expect(rcache__cmds *b, unsigned mask);
/* False when reply i of b is of a type its command cannot get (error replies always fit). */
bool rcache__cmds_fits(const rcache__cmds *b, int i, const redisReply *r);
/* printf-free convenience for commands of short string arguments (NULL-terminated). */
rcache_status rcache__cmds_addv(rcache__cmds *b, const char *arg0, ...);
void rcache__cmds_free(rcache__cmds *b);
/* out = the commands i of b with pick[i] (every one when pick is NULL), in b's order, each
 * after the one-word command `word` (whose reply is of type `expect`) when word is not NULL
 * (Cluster's ASKING, whose flag lasts one command). RCACHE_ENOMEM, RCACHE_EPROTO when b is
 * not well formed, RCACHE_EINVAL for a word over 40 bytes or nothing picked. */
rcache_status rcache__cmds_pick(const rcache__cmds *b, const bool *pick, const char *word,
                                unsigned expect, rcache__cmds *out);

/* What a new connection does first, in one round trip: AUTH (user + password, or the
 * password alone), SELECT db when db != 0, CLIENT SETNAME, and any extra commands the
 * caller adds (e.g. CLIENT TRACKING). */
typedef struct rcache__conn_setup {
  const rcache__ctx *ctx;
  rcache__tls_ctx *tls;
  const char *user, *password; /* NULL when absent */
  int db;
  bool want_id; /* ask CLIENT ID */
  /* near cache (tracking.c): when non-NULL and holding an id >= 0, the set-up adds
   * CLIENT TRACKING on REDIRECT <id>; -1 means the listener is down (no tracking). An
   * error reply to it leaves the connection usable: the near cache's protocol never
   * fills from a connection opened before the listener it redirects to was announced. */
  _Atomic long long *tracking_redirect;
  /* set when the server refused that CLIENT TRACKING (an ACL without +client|tracking, a
   * redirect id it does not know): the connection's reads are not tracked, and the listener
   * (tracking.c) must stop the near cache from serving what it reads */
  _Atomic bool *tracking_refused;
} rcache__conn_setup;

/* Connects by deadline_us and runs the set-up. RCACHE_OK, RCACHE_EUNAVAILABLE,
 * RCACHE_ETIMEOUT, RCACHE_EAUTH, RCACHE_ETLS, RCACHE_ESERVER (e.g. SELECT refused),
 * RCACHE_ENOMEM. */
rcache_status rcache__conn_open(const rcache__conn_setup *cs, const rcache__addr *a,
                                int64_t deadline_us, rcache__conn **out);
void rcache__conn_close(rcache__conn *c);

/* Sends the batch and reads b->n replies into replies[] (each freed by the caller with
 * freeReplyObject), by deadline_us. Any failure marks the connection broken and frees
 * what was read. A reply whose heap cost (or unread part) exceeds max_reply bytes is
 * refused with RCACHE_ETOOBIG; b->values > 1 (MGET of n keys) multiplies max_reply. Transport
 * statuses: RCACHE_ETIMEOUT, RCACHE_EIO, RCACHE_EPROTO.
 * Desynchronised (RCACHE_EPROTO, broken, so never pooled again): a reply of a type its
 * command cannot get (rcache__cmds_expect), or bytes left after the last reply; and
 * (RCACHE_EIO, as a connection found dead) a reply the kernel had received before the
 * request was written, on a socket with receive timestamps (transport.h). */
rcache_status rcache__conn_exec(rcache__conn *c, const rcache__cmds *b, redisReply **replies,
                                int64_t deadline_us, size_t max_reply);

/* The pipelined exchange's halves (pool.c). rcache__conn_send writes len bytes by
 * deadline_us; any failure marks the connection broken. rcache__conn_next reads the next
 * reply by deadline_us, charged to a budget of max_reply: RCACHE_ETIMEOUT leaves the
 * connection usable (a part of the reply stays in the parser, with its budget), any other
 * failure marks it broken; deadline_us 0 reads nothing: a reply already buffered whole, or
 * RCACHE_ETIMEOUT. The caller checks each reply with rcache__conn_check. */
rcache_status rcache__conn_send(rcache__conn *c, const char *buf, size_t len, int64_t deadline_us);
rcache_status rcache__conn_next(rcache__conn *c, redisReply **reply, int64_t deadline_us,
                                size_t max_reply);

/* rcache__conn_next without waiting, for an event loop: a reply already buffered, or one
 * complete in what one read finds on the socket now; RCACHE_ETIMEOUT when there is none yet
 * (the connection stays usable), RCACHE_EIO when the server closed it. */
rcache_status rcache__conn_next_now(rcache__conn *c, redisReply **reply, size_t max_reply);
/* For a subscription's reader: waits up to ms for bytes of c to parse (already buffered
 * by hiredis or OpenSSL, or readable on the socket), or for a byte on wake_fd (drained;
 * -1: none). c may be NULL (just waits). True when c has bytes. */
bool rcache__conn_wait(rcache__conn *c, int wake_fd, int ms);

/* Reads one reply that was not asked for (pub/sub push), by deadline_us. */
rcache_status rcache__conn_read(rcache__conn *c, redisReply **reply, int64_t deadline_us,
                                size_t max_reply);

/* The same for a listener that polls: RCACHE_ETIMEOUT leaves the connection usable (a part
 * of a message stays in the parser, and keeps the budget it has used); every message has
 * its own budget of max_reply. */
rcache_status rcache__conn_listen(rcache__conn *c, redisReply **reply, int64_t deadline_us,
                                  size_t max_reply);

/* The budget of one reply on the data path: max_value_bytes plus 4 KiB for its string
 * bytes; its whole heap cost (redisReply objects, element tables, string bytes) may be
 * 1 MiB more. One that does not fit is RCACHE_ETOOBIG. */
size_t rcache__reply_max(const rcache_options *o);

/* For callers that read a batch's replies one by one (pool.c): reply i of b checked as
 * rcache__conn_exec checks it; `last` (nothing else asked is unanswered) also checks that
 * nothing follows it. On a mismatch the connection is marked broken, *r freed and
 * RCACHE_EPROTO (RCACHE_EIO for a reply received before it was asked) returned. The writer
 * of a request calls rcache__sock_ask(&c->sock) first. */
rcache_status rcache__conn_check(rcache__conn *c, const rcache__cmds *b, int i, redisReply **r,
                                 bool last);

/* Maps an error reply to a status, recording the server's text with rcache__errf:
 * WRONGTYPE / "not an integer" → RCACHE_ETYPE, "overflow" → RCACHE_ERANGE, NOAUTH /
 * WRONGPASS / NOPERM → RCACHE_EAUTH, LOADING / BUSY / MASTERDOWN → RCACHE_EUNAVAILABLE
 * (the server cannot serve now), anything else (OOM, READONLY, NOSCRIPT...) →
 * RCACHE_ESERVER. Non-error replies → RCACHE_OK. */
rcache_status rcache__reply_status(const redisReply *r);

/* An error reply meaning "the server cannot serve now" (LOADING, BUSY, MASTERDOWN). */
bool rcache__reply_busy(const redisReply *r);

/* Frees replies[0..n) and sets them to NULL (NULL entries are skipped). */
void rcache__replies_free(redisReply **replies, int n);

/* A reply of a type the command cannot answer: records it, returns RCACHE_EPROTO. The
 * reply types are checked before the connection goes back to its pool (conn_exec), so
 * this is left for shapes within a right type (an array of the wrong length). */
rcache_status rcache__reply_unexpected(const redisReply *r);

/* True for statuses that say the server could not be used (counted by the breaker). */
bool rcache__transport_failure(rcache_status s);

#endif
