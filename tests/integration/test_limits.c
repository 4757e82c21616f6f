/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Limits (issue 11, item 5): a key longer than max_key_bytes, a value larger than
 * max_value_bytes, a reply larger than the maximum, and a hostile server's reply asking for a
 * huge array or bulk string: each gives RCACHE_ETOOBIG (a clear status, with a message),
 * sends or stores nothing it should not, allocates nothing unbounded, and a connection that
 * saw a too-big reply is never reused.
 *
 * Keys and values run on memory:// and on a real redis-server ($RCACHE_TEST_URL_TCP);
 * replies on the real server; hostile replies need a server that lies, so a small fake one
 * answers on a Unix socket here (real Redis never sends them).
 * Cluster limits (max_redirects, a hostile slot map) are tested with the cluster backend.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "rcache/json.h"
#include "rcache/keys.h"
#include "rcache/rcache.h"
#include "test.h"

static int port;

static redisContext *raw(void) {
  redisContext *r = redisConnect("127.0.0.1", port);
  if (!r || r->err) {
    fprintf(stderr, "raw connect to 127.0.0.1:%d failed\n", port);
    exit(1);
  }
  return r;
}

static long long raw_int(redisContext *r, const char *cmd, const char *arg) {
  redisReply *rep = redisCommand(r, "%s %s", cmd, arg);
  long long n = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -100;
  freeReplyObject(rep);
  return n;
}

static rcache *open_url(const char *url, rcache_options *o) {
  rcache *c = NULL;
  rcache_status s = rcache_open(&c, url, o);
  CHECK_MSG(s == RCACHE_OK, "open %s: %s %s", url, rcache_strerror(s), rcache_errmsg(NULL));
  if (!c) exit(1);
  return c;
}

static atomic_int loads;
static rcache_status load_small(void *ud, rcache_value *out) {
  atomic_fetch_add(&loads, 1);
  out->data = strdup("loaded");
  out->len = 6;
  return RCACHE_OK;
}

static size_t big_len = 2000;
static rcache_status load_big(void *ud, rcache_value *out) {
  atomic_fetch_add(&loads, 1);
  out->data = malloc(big_len);
  if (!out->data) return RCACHE_ENOMEM;
  memset(out->data, 'b', big_len);
  out->len = big_len;
  return RCACHE_OK;
}

static json_t *load_json(void *ud) {
  atomic_fetch_add(&loads, 1);
  return json_integer(1);
}

/* ---- keys ------------------------------------------------------------------------------------ */

/* With key_prefix "lim:" (4 bytes) and max_key_bytes 64: a 60-byte key fits, 61 does not. */
static void test_key_limit(const char *url, redisContext *r) {
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = "lim:";
  o.max_key_bytes = 64;
  rcache *c = open_url(url, &o);
  char fits[61], over[62], stored[80];
  memset(fits, 'f', 60);
  fits[60] = '\0';
  memset(over, 'o', 61);
  over[61] = '\0';

  CHECK_EQ(rcache_set(c, fits, "v", 1, 60), RCACHE_OK);
  CHECK_EQ(rcache_set(c, over, "v", 1, 60), RCACHE_ETOOBIG);
  CHECK_MSG(strstr(rcache_errmsg(c), "max_key_bytes") != NULL, "%s", rcache_errmsg(c));
  rcache_value v = {(char *)1, 1};
  CHECK_EQ(rcache_get(c, over, &v), RCACHE_ETOOBIG);
  CHECK(v.data == NULL && v.len == 0);
  CHECK_EQ(rcache_delete(c, over), RCACHE_ETOOBIG);
  int64_t n = 5;
  CHECK_EQ(rcache_incr(c, over, 1, &n), RCACHE_ETOOBIG);
  CHECK_EQ(n, 0);
  CHECK_EQ(rcache_incr_expire(c, over, 1, 10, &n), RCACHE_ETOOBIG);
  bool allowed = true;
  CHECK_EQ(rcache_rate_limit(c, over, 10, 10, &allowed, &n), RCACHE_ETOOBIG);
  bool e = true;
  CHECK_EQ(rcache_exists(c, over, &e), RCACHE_ETOOBIG);
  CHECK(!e);
  CHECK_EQ(rcache_ttl(c, over, &n), RCACHE_ETOOBIG);
  atomic_store(&loads, 0);
  CHECK_EQ(rcache_get_or_set(c, over, 60, load_small, NULL, &v), RCACHE_ETOOBIG);
  CHECK_EQ(atomic_load(&loads), 0); /* refused before anything ran */
  CHECK_EQ(rcache_set_str(c, over, "s", 60), RCACHE_ETOOBIG);
  json_t *j = NULL;
  CHECK_EQ(rcache_get_or_set_json(c, over, 60, load_json, NULL, &j), RCACHE_ETOOBIG);
  CHECK(j == NULL);

  /* a batch with one key too long: the whole batch is refused, nothing is written */
  const char *keys[2] = {"batch-ok", over};
  rcache_value vals[2] = {{"a", 1}, {"b", 1}};
  CHECK_EQ(rcache_set_many(c, keys, vals, 2, 60), RCACHE_ETOOBIG);
  rcache_value got[2];
  rcache_status st[2];
  CHECK_EQ(rcache_get_many(c, keys, 2, got, st), RCACHE_ETOOBIG);
  CHECK(got[0].data == NULL && got[1].data == NULL);
  CHECK_EQ(rcache_exists(c, "batch-ok", &e), RCACHE_OK);
  CHECK(!e);

  /* rcache_invalidate_user: an id that makes the key too long */
  char id[80];
  memset(id, '1', 70);
  id[70] = '\0';
  uint64_t deleted = 7;
  CHECK_EQ(rcache_invalidate_user(c, id, &deleted), RCACHE_ETOOBIG);
  CHECK_EQ(deleted, 0);

  if (r) { /* nothing under the long name reached the server */
    snprintf(stored, sizeof stored, "lim:%s", over);
    CHECK_EQ(raw_int(r, "EXISTS", stored), 0);
    snprintf(stored, sizeof stored, "lim:%s", fits);
    CHECK_EQ(raw_int(r, "EXISTS", stored), 1);
    raw_int(r, "DEL", stored);
  }
  rcache_stats s;
  rcache_get_stats(c, &s);
  CHECK(s.errors >= 10);
  CHECK_EQ(s.fallbacks, 0); /* a refused argument is not an outage */
  rcache_close(c);

  /* a prefix that leaves no room for any key is refused at open */
  o.key_prefix = "a-very-long-prefix:";
  o.max_key_bytes = 10;
  rcache *bad = NULL;
  CHECK_EQ(rcache_open(&bad, url, &o), RCACHE_EINVAL);
  CHECK(bad == NULL);
  /* nor any room for the namespace's own keys (<prefix>__rc:clear, 10 bytes more): every
   * read would fail, so open says so (19-byte prefix) */
  o.max_key_bytes = 19 + 9;
  CHECK_EQ(rcache_open(&bad, url, &o), RCACHE_EINVAL);
  CHECK_MSG(strstr(rcache_errmsg(NULL), "__rc:clear") != NULL, "%s", rcache_errmsg(NULL));
  o.max_key_bytes = 19 + 10; /* keys of up to 10 bytes: they and the clear key fit */
  CHECK_EQ(rcache_open(&bad, url, &o), RCACHE_OK);
  CHECK_EQ(rcache_set(bad, "0123456789", "v", 1, 60), RCACHE_OK);
  rcache_value small;
  CHECK_EQ(rcache_get(bad, "0123456789", &small), RCACHE_OK);
  rcache_value_free(&small);
  CHECK_EQ(rcache_clear(bad), RCACHE_OK);
  CHECK_EQ(rcache_get(bad, "0123456789", &small), RCACHE_MISS);
  rcache_close(bad);
}

/* ---- values ---------------------------------------------------------------------------------- */

static void test_value_limit(const char *url, redisContext *r) {
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = "limv:";
  o.max_value_bytes = 1000;
  rcache *c = open_url(url, &o);
  char *buf = malloc(1001);
  memset(buf, 'x', 1001);

  CHECK_EQ(rcache_set(c, "exact", buf, 1000, 60), RCACHE_OK);
  CHECK_EQ(rcache_set(c, "over", buf, 1001, 60), RCACHE_ETOOBIG);
  CHECK_MSG(strstr(rcache_errmsg(c), "max_value_bytes") != NULL, "%s", rcache_errmsg(c));
  bool e = true;
  CHECK_EQ(rcache_exists(c, "over", &e), RCACHE_OK);
  CHECK(!e);
  rcache_value v;
  CHECK_EQ(rcache_get(c, "exact", &v), RCACHE_OK); /* exactly the maximum reads back */
  CHECK_EQ(v.len, 1000);
  rcache_value_free(&v);

  /* set_many: one value over the limit refuses the whole batch */
  const char *keys[2] = {"m1", "m2"};
  rcache_value vals[2] = {{"small", 5}, {buf, 1001}};
  CHECK_EQ(rcache_set_many(c, keys, vals, 2, 60), RCACHE_ETOOBIG);
  CHECK_EQ(rcache_exists(c, "m1", &e), RCACHE_OK);
  CHECK(!e);

  /* get_or_set: a loaded value too big to cache is still returned, and not stored */
  atomic_store(&loads, 0);
  big_len = 2000;
  CHECK_EQ(rcache_get_or_set(c, "gos-big", 60, load_big, NULL, &v), RCACHE_OK);
  CHECK_EQ(v.len, 2000);
  rcache_value_free(&v);
  CHECK_EQ(rcache_exists(c, "gos-big", &e), RCACHE_OK);
  CHECK(!e);
  CHECK_EQ(atomic_load(&loads), 1);

  /* a JSON text over the limit */
  json_t *arr = json_array();
  for (int i = 0; i < 300; i++)
    json_array_append_new(arr, json_string("xxxx"));
  CHECK_EQ(rcache_set_json(c, "json", arr, 60), RCACHE_ETOOBIG);
  json_decref(arr);

  if (r) {
    CHECK_EQ(raw_int(r, "EXISTS", "limv:over"), 0);
    CHECK_EQ(raw_int(r, "STRLEN", "limv:exact"), 1000);
  }
  rcache_flush(c);
  free(buf);
  rcache_close(c);
}

/* ---- replies (real server) ------------------------------------------------------------------- */

/* The ids of the server's connections named `name`, as "id,id,". */
static void client_ids(redisContext *r, const char *name, char *out, size_t n) {
  out[0] = '\0';
  redisReply *rep = redisCommand(r, "CLIENT LIST");
  if (!rep || rep->type != REDIS_REPLY_STRING) {
    freeReplyObject(rep);
    return;
  }
  char want[80];
  snprintf(want, sizeof want, " name=%s ", name);
  for (char *line = strtok(rep->str, "\n"); line; line = strtok(NULL, "\n")) {
    if (!strstr(line, want)) continue;
    long long id = -1;
    sscanf(line, "id=%lld", &id);
    size_t l = strlen(out);
    snprintf(out + l, n - l, "%lld,", id);
  }
  freeReplyObject(rep);
}

/* Waits (bounded) until the server has seen the close of every connection but `keep`. */
static void wait_ids(redisContext *r, const char *name, const char *want, char *got, size_t n) {
  for (int i = 0; i < 200; i++) {
    client_ids(r, name, got, n);
    if (strcmp(got, want) == 0) return;
    usleep(10000);
  }
}

static void test_reply_limit(const char *url, redisContext *r) {
  /* a writer with the default limits stores 64 KiB */
  rcache *w = open_url(url, NULL);
  size_t big = 64 * 1024;
  char *buf = malloc(big);
  memset(buf, 'B', big);
  CHECK_EQ(rcache_set(w, "limr:big", buf, big, 60), RCACHE_OK);
  CHECK_EQ(rcache_set(w, "limr:small", "s", 1, 60), RCACHE_OK);
  free(buf);

  /* a reader allowing 1000-byte values: the 64 KiB reply is refused */
  rcache_options o;
  rcache_options_init(&o);
  o.max_value_bytes = 1000;
  o.pool_size = 1;
  o.client_name = "rcache-limits-reader";
  rcache *c = open_url(url, &o);
  char before[256], after[256];
  rcache_value v;
  CHECK_EQ(rcache_get(c, "limr:small", &v), RCACHE_OK);
  rcache_value_free(&v);
  client_ids(r, o.client_name, before, sizeof before);
  CHECK_MSG(strlen(before) > 0, "no connection named %s", o.client_name);

  v = (rcache_value){(char *)1, 1};
  CHECK_EQ(rcache_get(c, "limr:big", &v), RCACHE_ETOOBIG);
  CHECK(v.data == NULL && v.len == 0);
  CHECK_MSG(strstr(rcache_errmsg(c), "larger than the maximum") != NULL, "%s", rcache_errmsg(c));
  /* the connection that saw it (with the rest of the reply unread) was closed... */
  wait_ids(r, o.client_name, "", after, sizeof after);
  CHECK_MSG(after[0] == '\0', "still connected: %s (before: %s)", after, before);
  /* ...and the next call works on a new one */
  CHECK_EQ(rcache_get(c, "limr:small", &v), RCACHE_OK);
  CHECK_STR(v.data, "s");
  rcache_value_free(&v);
  client_ids(r, o.client_name, after, sizeof after);
  CHECK_MSG(after[0] && strcmp(after, before) != 0, "before %s after %s", before, after);

  /* a batch holding it; get_or_set on it (the loader is not called: the value exists) */
  const char *keys[2] = {"limr:small", "limr:big"};
  rcache_value got[2];
  rcache_status st[2];
  CHECK_EQ(rcache_get_many(c, keys, 2, got, st), RCACHE_ETOOBIG);
  CHECK(got[0].data == NULL && got[1].data == NULL);
  CHECK_EQ(st[0], RCACHE_ETOOBIG);
  atomic_store(&loads, 0);
  CHECK_EQ(rcache_get_or_set(c, "limr:big", 60, load_small, NULL, &v), RCACHE_ETOOBIG);
  CHECK_EQ(atomic_load(&loads), 0);
  CHECK(v.data == NULL);

  /* too-big replies are the data's fault, not the server's: the breaker stays closed */
  for (int i = 0; i < 5; i++)
    CHECK_EQ(rcache_get(c, "limr:big", &v), RCACHE_ETOOBIG);
  rcache_stats s;
  rcache_get_stats(c, &s);
  CHECK(s.available);
  CHECK_EQ(s.breaker_opens, 0);
  CHECK_EQ(s.fallbacks, 0);
  CHECK_EQ(rcache_get(c, "limr:small", &v), RCACHE_OK);
  rcache_value_free(&v);

  rcache_delete(w, "limr:big");
  rcache_delete(w, "limr:small");
  rcache_close(c);
  rcache_close(w);
}

/* ---- a hostile server ------------------------------------------------------------------------ */

/* Answers the first command (rcache_open's PING) with +PONG and every later one with
 * `evil`, then keeps the connection open without a word. */
typedef struct fake {
  char path[108];
  int lfd;
  const char *evil;
  size_t evil_len;
  size_t pad; /* this many 'x' bytes after evil (a bulk string's body) */
  atomic_bool stop;
  pthread_t t;
} fake;

static void send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

static void *fake_main(void *arg) {
  fake *f = arg;
  int conns[8], nc = 0, answered = 0;
  while (!atomic_load(&f->stop)) {
    struct pollfd pf[9];
    int n = 0;
    for (int i = 0; i < nc; i++)
      pf[n++] = (struct pollfd){conns[i], POLLIN, 0};
    pf[n++] = (struct pollfd){f->lfd, POLLIN, 0};
    if (poll(pf, (nfds_t)n, 20) <= 0) continue;
    if (pf[n - 1].revents && nc < 8) {
      int fd = accept(f->lfd, NULL, NULL);
      if (fd >= 0) conns[nc++] = fd;
    }
    for (int i = 0; i < n - 1; i++) {
      if (!pf[i].revents) continue;
      char buf[4096];
      ssize_t got = recv(conns[i], buf, sizeof buf, MSG_DONTWAIT);
      if (got <= 0) continue; /* closed by the client: leave it, closed at the end */
      if (answered++ == 0) {
        send_all(conns[i], "+PONG\r\n", 7);
        continue;
      }
      send_all(conns[i], f->evil, f->evil_len);
      char pad[4096];
      memset(pad, 'x', sizeof pad);
      for (size_t left = f->pad; left > 0;) {
        size_t k = left < sizeof pad ? left : sizeof pad;
        send_all(conns[i], pad, k);
        left -= k;
      }
    }
  }
  for (int i = 0; i < nc; i++)
    close(conns[i]);
  return NULL;
}

static void fake_start(fake *f, const char *evil, size_t pad) {
  snprintf(f->path, sizeof f->path, "/tmp/rcache-limits-%d.sock", (int)getpid());
  unlink(f->path);
  f->evil = evil;
  f->evil_len = strlen(evil);
  f->pad = pad;
  atomic_store(&f->stop, false);
  f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->path);
  if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(f->lfd, 8) != 0) {
    perror("fake server");
    exit(1);
  }
  pthread_create(&f->t, NULL, fake_main, f);
}

static void fake_stop(fake *f) {
  atomic_store(&f->stop, true);
  pthread_join(f->t, NULL);
  close(f->lfd);
  unlink(f->path);
}

/* Opens a handle on the fake server, reads one key and returns the status. */
static rcache_status hostile_get(const char *evil, size_t pad, size_t max_value, char *msg,
                                 size_t msglen) {
  fake f;
  fake_start(&f, evil, pad);
  char url[160];
  snprintf(url, sizeof url, "unix://%s", f.path);
  rcache_options o;
  rcache_options_init(&o);
  o.client_name = ""; /* no CLIENT SETNAME: the first command is the PING */
  o.max_value_bytes = max_value;
  o.command_timeout_ms = 2000;
  rcache *c = open_url(url, &o);
  rcache_value v = {(char *)1, 1};
  rcache_status s = rcache_get(c, "k", &v);
  snprintf(msg, msglen, "%s", rcache_errmsg(c));
  CHECK(v.data == NULL && v.len == 0);
  rcache_close(c);
  fake_stop(&f);
  return s;
}

static void test_hostile_replies(void) {
  char msg[512];
  /* "*300000000": hiredis would allocate the 2.4 GB element table before any element */
  CHECK_EQ(hostile_get("*300000000\r\n", 0, 512u << 20, msg, sizeof msg), RCACHE_ETOOBIG);
  CHECK_MSG(strstr(msg, "too many elements") != NULL, "%s", msg);
  /* nested: each array within the budget, their sum not (elements cost ~72 bytes of heap
   * each: two arrays of 10,000 are more than max_value_bytes + 4 KiB + 1 MiB) */
  static char nested[100000];
  size_t n = (size_t)snprintf(nested, sizeof nested, "*3\r\n");
  for (int a = 0; a < 2; a++) {
    n += (size_t)snprintf(nested + n, sizeof nested - n, "*10000\r\n");
    for (int i = 0; i < 10000; i++)
      n += (size_t)snprintf(nested + n, sizeof nested - n, ":1\r\n");
  }
  CHECK_EQ(hostile_get(nested, 0, 1000, msg, sizeof msg), RCACHE_ETOOBIG);
  CHECK_MSG(strstr(msg, "too many elements") != NULL, "%s", msg);
  /* a bulk string announced and sent larger than the maximum: refused before it is all in */
  CHECK_EQ(hostile_get("$100000000\r\n", 200000, 1000, msg, sizeof msg), RCACHE_ETOOBIG);
  CHECK_MSG(strstr(msg, "larger than the maximum") != NULL, "%s", msg);
  /* announced but never sent: the deadline ends it (the cache counts as unavailable) */
  CHECK_EQ(hostile_get("$100000000\r\n", 10, 1000, msg, sizeof msg), RCACHE_EUNAVAILABLE);
  /* not RESP at all */
  CHECK_EQ(hostile_get("HTTP/1.1 400 Bad Request\r\n\r\n", 0, 1000, msg, sizeof msg),
           RCACHE_EUNAVAILABLE);
  CHECK_MSG(strstr(msg, "protocol error") != NULL, "%s", msg);
}

int main(void) {
  const char *url = test_env_url("RCACHE_TEST_URL_TCP");
  const char *p = getenv("RCACHE_TEST_PORT");
  port = p ? atoi(p) : 0;
  CHECK(port > 0);
  redisContext *r = raw();

  test_key_limit("memory://", NULL);
  test_key_limit(url, r);
  test_value_limit("memory://", NULL);
  test_value_limit(url, r);
  test_reply_limit(url, r);
  test_hostile_replies();

  redisFree(r);
  return test_report("test_limits");
}
