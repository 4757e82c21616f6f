/* SPDX-License-Identifier: BSD-3-Clause */
/* A Redis connection: hiredis formats and parses, transport.c moves the bytes. */
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/conn.h"

/* ---- command batches ------------------------------------------------------------------------- */

/* Grows b's buffer; a secret batch never leaves a copy behind in what realloc frees. */
static rcache_status cmds_grow(rcache__cmds *b, size_t cap) {
  if (!b->secret) {
    char *nb = rcache__realloc(b->buf, cap);
    if (!nb) return RCACHE_ENOMEM;
    b->buf = nb;
  } else {
    char *nb = rcache__malloc(cap);
    if (!nb) return RCACHE_ENOMEM;
    if (b->len) memcpy(nb, b->buf, b->len);
    rcache__wipe(b->buf, b->cap);
    rcache__free(b->buf);
    b->buf = nb;
  }
  b->cap = cap;
  return RCACHE_OK;
}

static void free_command(const rcache__cmds *b, char *cmd, size_t len) {
  if (b->secret) rcache__wipe(cmd, len);
  redisFreeCommand(cmd);
}

static rcache_status cmds_append(rcache__cmds *b, const char *p, size_t len) {
  if (b->len + len > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + len)
      cap *= 2;
    rcache_status s = cmds_grow(b, cap);
    if (s != RCACHE_OK) return s;
  }
  memcpy(b->buf + b->len, p, len);
  b->len += len;
  return RCACHE_OK;
}

rcache_status rcache__cmds_add(rcache__cmds *b, int argc, const char **argv, const size_t *lens) {
  char *cmd = NULL;
  int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
  if (len < 0 || !cmd) return RCACHE_ENOMEM;
  rcache_status s = RCACHE_OK;
  if (b->n == 0) { /* keep it as is: most batches are one command */
    b->one = cmd;
    b->one_len = (size_t)len;
    b->n = 1;
    return RCACHE_OK;
  }
  if (b->one) { /* a second command: move the first into the buffer */
    s = cmds_append(b, b->one, b->one_len);
    if (s == RCACHE_OK) {
      free_command(b, b->one, b->one_len);
      b->one = NULL;
    }
  }
  if (s == RCACHE_OK) s = cmds_append(b, cmd, (size_t)len);
  free_command(b, cmd, (size_t)len);
  if (s == RCACHE_OK) b->n++;
  return s;
}

void rcache__cmds_expect(rcache__cmds *b, unsigned mask) {
  if (b->n <= 0) return;
  if (b->n <= RCACHE__EXPECT_EACH)
    b->expect[b->n - 1] = (unsigned char)mask;
  else
    b->expect_rest |= mask ? mask : 0xffu; /* one command of any type: then all may be */
}

bool rcache__cmds_fits(const rcache__cmds *b, int i, const redisReply *r) {
  unsigned mask = i < RCACHE__EXPECT_EACH ? b->expect[i] : b->expect_rest;
  if (!mask || r->type == REDIS_REPLY_ERROR) return true;
  return r->type < 8 && (mask & RCACHE__R(r->type));
}

rcache_status rcache__cmds_addv(rcache__cmds *b, const char *arg0, ...) {
  const char *argv[16];
  size_t lens[16];
  int argc = 0;
  va_list ap;
  va_start(ap, arg0);
  for (const char *a = arg0; a && argc < 16; a = va_arg(ap, const char *)) {
    argv[argc] = a;
    lens[argc++] = strlen(a);
  }
  va_end(ap);
  return rcache__cmds_add(b, argc, argv, lens);
}

/* Length of the formatted command at p (hiredis' "*N\r\n$L\r\n...\r\n"), 0 if malformed. */
static size_t cmd_len(const char *p, size_t avail) {
  size_t i = 0;
  if (avail < 4 || p[0] != '*') return 0;
  long argc = strtol(p + 1, NULL, 10);
  const char *nl = memchr(p, '\n', avail);
  if (!nl) return 0;
  i = (size_t)(nl - p) + 1;
  for (long a = 0; a < argc; a++) {
    if (i >= avail || p[i] != '$') return 0;
    long len = strtol(p + i + 1, NULL, 10);
    nl = memchr(p + i, '\n', avail - i);
    if (!nl || len < 0) return 0;
    i = (size_t)(nl - p) + 1 + (size_t)len + 2;
    if (i > avail) return 0;
  }
  return i;
}

rcache_status rcache__cmds_pick(const rcache__cmds *b, const bool *pick, const char *word,
                                unsigned expect, rcache__cmds *out) {
  char pre[64];
  int al = word ? snprintf(pre, sizeof pre, "*1\r\n$%zu\r\n%s\r\n", strlen(word), word) : 0;
  if (al < 0 || (size_t)al >= sizeof pre) return RCACHE_EINVAL;
  const char *src = b->one ? b->one : b->buf;
  size_t len = b->one ? b->one_len : b->len;
  memset(out, 0, sizeof *out);
  out->cap = len + (size_t)b->n * (size_t)al;
  out->buf = rcache__malloc(out->cap ? out->cap : 1);
  if (!out->buf) return RCACHE_ENOMEM;
  out->values = b->values;
  out->secret = b->secret; /* (wiped when freed, as b is) */
  int i = 0;
  for (size_t at = 0; at < len; i++) {
    size_t l = cmd_len(src + at, len - at);
    if (l == 0 || i >= b->n) {
      rcache__cmds_free(out);
      return RCACHE_EPROTO;
    }
    if (!pick || pick[i]) {
      memcpy(out->buf + out->len, pre, (size_t)al);
      memcpy(out->buf + out->len + (size_t)al, src + at, l);
      out->len += (size_t)al + l;
      if (word) {
        out->n++;
        rcache__cmds_expect(out, expect); /* word */
      }
      out->n++;
      rcache__cmds_expect(out, i < RCACHE__EXPECT_EACH ? b->expect[i] : b->expect_rest);
    }
    at += l;
  }
  if (i != b->n) {
    rcache__cmds_free(out);
    return RCACHE_EPROTO;
  }
  if (!out->n) {
    rcache__cmds_free(out);
    return RCACHE_EINVAL;
  }
  return RCACHE_OK;
}

void rcache__cmds_free(rcache__cmds *b) {
  if (b->one) free_command(b, b->one, b->one_len);
  if (b->secret) rcache__wipe(b->buf, b->cap);
  rcache__free(b->buf);
  memset(b, 0, sizeof *b);
}

/* ---- statuses -------------------------------------------------------------------------------- */

bool rcache__transport_failure(rcache_status s) {
  return s == RCACHE_EUNAVAILABLE || s == RCACHE_ETIMEOUT || s == RCACHE_EIO || s == RCACHE_EPROTO;
}

static bool starts(const char *s, const char *p) {
  return strncmp(s, p, strlen(p)) == 0;
}

rcache_status rcache__reply_status(const redisReply *r) {
  if (!r) return RCACHE_EPROTO;
  if (r->type != REDIS_REPLY_ERROR) return RCACHE_OK;
  const char *e = r->str ? r->str : "";
  rcache_status s = RCACHE_ESERVER;
  if (starts(e, "WRONGTYPE"))
    s = RCACHE_ETYPE;
  else if (strstr(e, "not an integer") || strstr(e, "not a valid float"))
    s = RCACHE_ETYPE;
  else if (strstr(e, "overflow"))
    s = RCACHE_ERANGE;
  else if (starts(e, "NOAUTH") || starts(e, "WRONGPASS") || starts(e, "NOPERM") ||
           strstr(e, "invalid password") || strstr(e, "invalid username-password"))
    s = RCACHE_EAUTH;
  else if (rcache__reply_busy(r))
    s = RCACHE_EUNAVAILABLE;
  rcache__errf("server: %.400s", e);
  return s;
}

bool rcache__reply_busy(const redisReply *r) {
  if (!r || r->type != REDIS_REPLY_ERROR || !r->str) return false;
  return starts(r->str, "LOADING") || starts(r->str, "BUSY") || starts(r->str, "MASTERDOWN");
}

void rcache__replies_free(redisReply **replies, int n) {
  for (int i = 0; i < n; i++) {
    if (replies[i]) freeReplyObject(replies[i]);
    replies[i] = NULL;
  }
}

rcache_status rcache__reply_unexpected(const redisReply *r) {
  rcache__errf("unexpected reply type %d from the server", r ? r->type : -1);
  return RCACHE_EPROTO;
}

/* ---- exchange -------------------------------------------------------------------------------- */

static rcache_status fail(rcache__conn *c, rcache_status s) {
  c->broken = true;
  return s;
}

/* Every reply is bounded by its real heap cost, not its size on the wire: 4 bytes of
 * ":1\r\n" make a redisReply of ~70 bytes, and "*<n>\r\n" allocates n pointers before
 * any element arrives (found by fuzz/fuzz_reply.c; an endless array cost ~1 GiB). So each
 * object the parser makes is charged what it costs -- the redisReply and its malloc header,
 * an array's element table, a string's bytes -- against the reply's budget: max_reply for
 * its string bytes (the values), and max_reply + OBJ_ALLOWANCE for everything (so that a
 * small max_value_bytes still lets a slot map or a SCAN page of many short strings through).
 * One that does not fit fails the reply as too big. Bytes buffered but not yet parsed are
 * bounded by read_reply. hiredis' own constructors do the rest. */
#define MALLOC_OVERHEAD 16 /* glibc's chunk header, rounded */
#define OBJ_COST (sizeof(redisReply) + MALLOC_OVERHEAD)
#define OBJ_ALLOWANCE ((size_t)1 << 20)

static redisReplyObjectFunctions capped_fns;
static redisReplyObjectFunctions default_fns;

static bool charge(const redisReadTask *t, size_t cost, size_t bytes) {
  rcache__conn *c = t->privdata;
  if (cost > c->budget || bytes > c->bytes_left) {
    c->over = true;
    return false; /* hiredis reports it as an error */
  }
  c->budget -= cost;
  c->bytes_left -= bytes;
  return true;
}

static void *capped_string(const redisReadTask *t, char *str, size_t len) {
  if (!charge(t, OBJ_COST + len + 1 + MALLOC_OVERHEAD, len)) return NULL;
  return default_fns.createString(t, str, len);
}

static void *capped_array(const redisReadTask *t, int n) {
  size_t slots = n > 0 ? (size_t)n * sizeof(redisReply *) + MALLOC_OVERHEAD : 0;
  if (!charge(t, OBJ_COST + slots, 0)) return NULL;
  return default_fns.createArray(t, n);
}

static void *capped_integer(const redisReadTask *t, long long v) {
  if (!charge(t, OBJ_COST, 0)) return NULL;
  return default_fns.createInteger(t, v);
}

static void *capped_nil(const redisReadTask *t) {
  if (!charge(t, OBJ_COST, 0)) return NULL;
  return default_fns.createNil(t);
}

/* The capped functions, made once from hiredis' own (the first reader's fn): capped_ok says
 * they are made. A reader is never used without them, and an allocation failure before the
 * first reader cannot leave later ones uncapped (a once-only set-up that made a reader of its
 * own could). */
static _Atomic bool capped_ok;
static pthread_mutex_t capped_mu = PTHREAD_MUTEX_INITIALIZER;

static void capped_from(const redisReader *rd) {
  if (atomic_load_explicit(&capped_ok, memory_order_acquire)) return;
  pthread_mutex_lock(&capped_mu);
  if (!atomic_load_explicit(&capped_ok, memory_order_relaxed)) {
    default_fns = *rd->fn;
    capped_fns = default_fns;
    capped_fns.createString = capped_string;
    capped_fns.createArray = capped_array;
    capped_fns.createInteger = capped_integer;
    capped_fns.createNil = capped_nil;
    atomic_store_explicit(&capped_ok, true, memory_order_release);
  }
  pthread_mutex_unlock(&capped_mu);
}

size_t rcache__reply_max(const rcache_options *o) {
  size_t slack = 4096; /* the reply's own objects and framing around one value */
  return o->max_value_bytes > SIZE_MAX / 2 - slack ? SIZE_MAX / 2 : o->max_value_bytes + slack;
}

/* A reply of which this much is buffered and not yet parsed is a large one: the pipeline
 * (pool.c) adds no call behind it while it streams in. */
#define HEAVY_BYTES ((size_t)64 << 10)

/* Pulls one reply out of the parser, reading more bytes as needed. A reply's budget starts
 * with its first byte: a push message read in several calls (keep_partial) keeps it. With
 * keep_partial, running out of time leaves the connection usable. */
static rcache_status read_reply(rcache__conn *c, redisReply **out, int64_t deadline_us,
                                size_t max_reply, bool keep_partial) {
  char buf[16384];
  if (!c->in_reply) {
    c->budget = max_reply > SIZE_MAX - OBJ_ALLOWANCE ? SIZE_MAX : max_reply + OBJ_ALLOWANCE;
    c->bytes_left = max_reply;
    c->over = false;
    c->in_reply = true;
  }
  for (;;) {
    void *r = NULL;
    if (redisReaderGetReply(c->rd, &r) != REDIS_OK) {
      if (c->over) {
        rcache__errf("reply larger than the maximum of %zu bytes (counted as memory: too many "
                     "elements or bytes)",
                     max_reply);
        return fail(c, RCACHE_ETOOBIG);
      }
      if (c->rd->err == REDIS_ERR_OOM) return fail(c, RCACHE_ENOMEM);
      rcache__errf("protocol error: %s", c->rd->errstr);
      return fail(c, RCACHE_EPROTO);
    }
    if (r) {
      c->in_reply = false;
      if (atomic_load_explicit(&c->heavy, memory_order_relaxed))
        atomic_store_explicit(&c->heavy, false, memory_order_relaxed);
      *out = r;
      return RCACHE_OK;
    }
    /* what is buffered and not yet parsed belongs to the reply being read */
    size_t buffered = c->rd->len - c->rd->pos;
    if (buffered > HEAVY_BYTES && !atomic_load_explicit(&c->heavy, memory_order_relaxed))
      atomic_store_explicit(&c->heavy, true, memory_order_relaxed);
    if (buffered > max_reply) {
      rcache__errf("reply larger than the maximum of %zu bytes", max_reply);
      return fail(c, RCACHE_ETOOBIG);
    }
    if (deadline_us == 0 && keep_partial) return RCACHE_ETIMEOUT; /* buffered replies only */
    size_t n = 0;
    rcache_status s = rcache__sock_read(&c->sock, buf, sizeof buf, &n, deadline_us);
    if (s == RCACHE_ETIMEOUT && keep_partial) return s;
    if (s != RCACHE_OK) {
      if (s == RCACHE_ETIMEOUT) rcache__errf("no reply within the command timeout");
      return fail(c, s);
    }
    if (redisReaderFeed(c->rd, buf, n) != REDIS_OK) return fail(c, RCACHE_ENOMEM);
  }
}

rcache_status rcache__conn_check(rcache__conn *c, const rcache__cmds *b, int i, redisReply **r,
                                 bool last) {
  if (c->sock.early) { /* (read: transport.c, check_stamp) */
    rcache__errf("a reply the server had sent before it was asked (bytes nobody asked for: the "
                 "connection is out of step: closed)");
    freeReplyObject(*r);
    *r = NULL;
    return fail(c, RCACHE_EIO); /* as a connection found dead: an idempotent call runs again */
  }
  bool fits = rcache__cmds_fits(b, i, *r);
  /* bytes after the last reply were not asked for: what came before them may not be ours */
  if (fits && !(last && c->rd->len > c->rd->pos)) {
    if (last) rcache__sock_answered(&c->sock);
    return RCACHE_OK;
  }
  if (fits)
    rcache__errf("the server sent bytes nobody asked for (the connection is out of step: "
                 "closed)");
  else
    rcache__errf("unexpected reply type %d to command %d of %d (the connection is out of "
                 "step: closed)",
                 (*r)->type, i + 1, b->n);
  freeReplyObject(*r);
  *r = NULL;
  return fail(c, RCACHE_EPROTO);
}

rcache_status rcache__conn_exec(rcache__conn *c, const rcache__cmds *b, redisReply **replies,
                                int64_t deadline_us, size_t max_reply) {
  if (c->broken) return RCACHE_EIO;
  rcache__sock_ask(&c->sock);
  rcache_status s = b->one ? rcache__sock_write(&c->sock, b->one, b->one_len, deadline_us)
                           : rcache__sock_write(&c->sock, b->buf, b->len, deadline_us);
  if (s != RCACHE_OK) {
    if (s == RCACHE_ETIMEOUT) rcache__errf("could not send within the command timeout");
    return fail(c, s);
  }
  if (b->values > 1) /* an MGET's reply holds up to that many values */
    max_reply = max_reply > SIZE_MAX / b->values ? SIZE_MAX : max_reply * b->values;
  for (int i = 0; i < b->n; i++) {
    s = read_reply(c, &replies[i], deadline_us, max_reply, false);
    if (s == RCACHE_OK) s = rcache__conn_check(c, b, i, &replies[i], i == b->n - 1);
    if (s != RCACHE_OK) {
      for (int j = 0; j < i; j++) {
        freeReplyObject(replies[j]);
        replies[j] = NULL;
      }
      return s;
    }
  }
  c->reused = true;
  return RCACHE_OK;
}

rcache_status rcache__conn_send(rcache__conn *c, const char *buf, size_t len, int64_t deadline_us) {
  if (c->broken) return RCACHE_EIO;
  rcache_status s = rcache__sock_write(&c->sock, buf, len, deadline_us);
  if (s == RCACHE_ETIMEOUT) rcache__errf("could not send within the command timeout");
  return s == RCACHE_OK ? s : fail(c, s);
}

rcache_status rcache__conn_next(rcache__conn *c, redisReply **reply, int64_t deadline_us,
                                size_t max_reply) {
  if (c->broken) return RCACHE_EIO;
  rcache_status s = read_reply(c, reply, deadline_us, max_reply, true);
  if (s == RCACHE_ETIMEOUT && deadline_us) rcache__errf("no reply within the command timeout");
  return s;
}

rcache_status rcache__conn_next_now(rcache__conn *c, redisReply **reply, size_t max_reply) {
  if (c->broken) return RCACHE_EIO;
  return read_reply(c, reply, 1, max_reply, true); /* a deadline long past: no wait */
}

bool rcache__conn_wait(rcache__conn *c, int wake_fd, int ms) {
  if (c && c->rd->len > c->rd->pos) return true;
  if (c && rcache__sock_pending(&c->sock)) return true;
  struct pollfd pfd[2] = {{wake_fd, POLLIN, 0}, {c ? c->sock.fd : -1, POLLIN, 0}};
  int r = rcache__poll(pfd, 2, ms);
  if (r <= 0) return false;
  if (pfd[0].revents) {
    char buf[64];
    while (read(wake_fd, buf, sizeof buf) > 0) {
    }
  }
  return pfd[1].revents != 0;
}

rcache_status rcache__conn_read(rcache__conn *c, redisReply **reply, int64_t deadline_us,
                                size_t max_reply) {
  if (c->broken) return RCACHE_EIO;
  return read_reply(c, reply, deadline_us, max_reply, false);
}

rcache_status rcache__conn_listen(rcache__conn *c, redisReply **reply, int64_t deadline_us,
                                  size_t max_reply) {
  if (c->broken) return RCACHE_EIO;
  return read_reply(c, reply, deadline_us, max_reply, true);
}

/* ---- open / close ---------------------------------------------------------------------------- */

void rcache__conn_close(rcache__conn *c) {
  if (!c) return;
  rcache__sock_close(&c->sock);
  rcache__free(c->wbuf);
  if (c->rd) redisReaderFree(c->rd);
  rcache__free(c);
}

/* The server's answer to AUTH is never passed on: it may quote the password ("ERR unknown
 * command 'AUTH', with args beginning with: 'app' '<password>'" where AUTH is renamed away,
 * cut at 128 characters). A fixed message keeps only the error code word and, from a fixed
 * list, what the text says (sentinel.c tells "no password is set" apart). */
static void auth_refused(const char *e) {
  size_t code = strspn(e, "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
  const char *hint = strstr(e, "without any password") || strstr(e, "no password is set")
                         ? ": no password is set"
                     : strstr(e, "unknown command")  ? ": unknown command"
                     : strstr(e, "invalid username") ? ": invalid username-password pair"
                     : strstr(e, "invalid password") ? ": invalid password"
                                                     : "";
  rcache__errf("AUTH refused by the server (%.*s%s)", code > 0 && code <= 16 ? (int)code : 5,
               code > 0 && code <= 16 ? e : "ERROR", hint);
}

static rcache_status setup(rcache__conn *c, const rcache__conn_setup *cs, int64_t deadline_us) {
  rcache__cmds b = {.secret = cs->password != NULL}; /* wiped when freed */
  rcache_status s = RCACHE_OK;
  int auth = -1, sel = -1, name = -1, id = -1, trk = -1;
  char dbs[16], rid[24];
  if (cs->password) {
    auth = b.n;
    s = cs->user ? rcache__cmds_addv(&b, "AUTH", cs->user, cs->password, NULL)
                 : rcache__cmds_addv(&b, "AUTH", cs->password, NULL);
  }
  if (s == RCACHE_OK && cs->db != 0) {
    snprintf(dbs, sizeof dbs, "%d", cs->db);
    sel = b.n;
    s = rcache__cmds_addv(&b, "SELECT", dbs, NULL);
  }
  if (s == RCACHE_OK && cs->ctx->opt.client_name && *cs->ctx->opt.client_name) {
    name = b.n;
    s = rcache__cmds_addv(&b, "CLIENT", "SETNAME", cs->ctx->opt.client_name, NULL);
  }
  if (s == RCACHE_OK && cs->want_id) {
    id = b.n;
    s = rcache__cmds_addv(&b, "CLIENT", "ID", NULL);
  }
  long long redirect = cs->tracking_redirect ? atomic_load(cs->tracking_redirect) : -1;
  if (s == RCACHE_OK && redirect >= 0) { /* a refusal is told to the listener: see conn.h */
    snprintf(rid, sizeof rid, "%lld", redirect);
    trk = b.n;
    s = rcache__cmds_addv(&b, "CLIENT", "TRACKING", "on", "REDIRECT", rid, NULL);
  }
  if (s != RCACHE_OK || b.n == 0) {
    rcache__cmds_free(&b);
    return s;
  }
  redisReply *r[5] = {0};
  s = rcache__conn_exec(c, &b, r, deadline_us, 1 << 20);
  int n = b.n;
  rcache__cmds_free(&b);
  if (s != RCACHE_OK) return s;
  if (auth >= 0 && r[auth]->type == REDIS_REPLY_ERROR) {
    auth_refused(r[auth]->str ? r[auth]->str : "");
    rcache__wipe(r[auth]->str, r[auth]->len); /* it may quote the password */
    s = RCACHE_EAUTH;
  } else if (sel >= 0 && r[sel]->type == REDIS_REPLY_ERROR) {
    s = rcache__reply_status(r[sel]);
    if (s == RCACHE_ESERVER) rcache__errf("SELECT %d refused: %.200s", cs->db, r[sel]->str);
  } else if (name >= 0 && r[name]->type == REDIS_REPLY_ERROR) {
    /* an ACL user may not be allowed CLIENT SETNAME: the connection is still good */
  }
  if (trk >= 0 && r[trk]->type == REDIS_REPLY_ERROR && cs->tracking_refused)
    atomic_store(cs->tracking_refused, true);
  if (s == RCACHE_OK && id >= 0) {
    if (r[id]->type == REDIS_REPLY_INTEGER)
      c->client_id = r[id]->integer;
    else
      s = rcache__reply_status(r[id]) == RCACHE_OK ? RCACHE_EPROTO : RCACHE_ESERVER;
  }
  for (int i = 0; i < n; i++)
    freeReplyObject(r[i]);
  return s;
}

/* One connect and setup of c, with a reader of its own. */
static rcache_status open_once(rcache__conn *c, const rcache__conn_setup *cs, const rcache__addr *a,
                               int64_t deadline_us) {
  c->client_id = -1;
  c->sock.fd = -1;
  c->broken = false;
  if (!(c->rd = redisReaderCreate())) return RCACHE_ENOMEM;
  capped_from(c->rd);
  c->rd->fn = &capped_fns;
  c->rd->privdata = c;
  rcache__sock_opts so = rcache__sock_opts_of(&cs->ctx->opt);
  rcache_status s = rcache__sock_connect(&c->sock, &so, cs->tls, a, deadline_us);
  return s == RCACHE_OK ? setup(c, cs, deadline_us) : s;
}

rcache_status rcache__conn_open(const rcache__conn_setup *cs, const rcache__addr *a,
                                int64_t deadline_us, rcache__conn **out) {
  *out = NULL;
  rcache__conn *c = rcache__calloc(1, sizeof *c);
  if (!c) return RCACHE_ENOMEM;
  rcache_status s = open_once(c, cs, a, deadline_us);
  if (s == RCACHE_ETLS && c->sock.cert_guess) {
    /* "asked for a client certificate, then closed" is also what a connection killed right
     * after its handshake looks like (CLIENT KILL, a restart, with tls-auth-clients
     * optional): only twice in a row is it taken for a refusal */
    rcache__sock_close(&c->sock);
    redisReaderFree(c->rd);
    c->rd = NULL;
    s = open_once(c, cs, a, deadline_us);
  }
  if (s != RCACHE_OK) {
    rcache__conn_close(c);
    return s;
  }
  c->broken = false;
  c->reused = false;
  *out = c;
  return RCACHE_OK;
}
