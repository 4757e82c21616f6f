/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Edges of the non-blocking API (docs/async.md) on a real redis-server (RCACHE_TEST_URL_TCP),
 * each of which failed before it was fixed:
 *  1. a GET the loop drives with a NULL callback: its value is dropped and freed (it leaked);
 *  2. rcache_close while a worker decodes for rcache_get_obj_async: the callback runs after
 *     the decoder has returned, never before (the worker went on writing into the caller's
 *     object after its callback, a use after free when the callback frees it);
 *  3. the same when the operation's deadline passes while its worker decodes;
 *  4. rcache_clear, then rcache_set_async, then a read: the value set after the clear reads
 *     back although a loop GET sent before the clear was read after it (its version from
 *     before the clear made the handle stamp the next write with it: read as a miss);
 *  5. error replies to the loop's own GET, SET, UNLINK and INCRBY (WRONGTYPE, "not an integer",
 *     NOPERM, OOM, READONLY) answer as the blocking calls do: READONLY from a Sentinel
 *     handle's demoted master is RCACHE_EUNAVAILABLE (the blocking call looks the master up
 *     again; the loop said RCACHE_ESERVER).
 */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "await.h"
#include "rcache/rcache.h"
#include "support/redis_proc.h"
#include "test.h"

static char ns[64];

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static rcache *open_url(const char *url, int threads, int cto, int mto) {
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = ns;
  if (threads) o.async_threads = threads;
  if (cto) o.connect_timeout_ms = cto;
  if (mto) o.command_timeout_ms = mto;
  rcache *c = NULL;
  rcache_status s = rcache_open(&c, url, &o);
  CHECK_MSG(s == RCACHE_OK, "open %s: %s %s", url, rcache_strerror(s), rcache_errmsg(NULL));
  return c;
}

static bool pump(rcache *c, const atomic_int *done, int want, int limit_ms) {
  int64_t end = now_us() + (int64_t)limit_ms * 1000;
  while (atomic_load(done) < want && now_us() < end)
    await_async_turn(c, 50, NULL);
  return atomic_load(done) >= want;
}

static atomic_int n_done;
static void on_get_free(void *ud, rcache_status s, rcache_value v) {
  (void)ud, (void)s;
  rcache_value_free(&v);
  atomic_fetch_add(&n_done, 1);
}

/* glibc's heap in use (under ASan or TSan their allocator's blocks do not show here: the
 * check below then cannot fail, and LeakSanitizer reports the leak instead) */
static size_t heap_used(void) {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

/* 1. NULL callback on the loop's own GET: the value must be "dropped and freed" */
static void test_null_cb_leak(const char *url) {
  rcache *c = open_url(url, 0, 0, 0);
  if (!c) return;
  size_t vlen = 32 << 10;
  char *val = malloc(vlen);
  memset(val, 'v', vlen);
  CHECK(rcache_set(c, "big", val, vlen, 60) == RCACHE_OK);
  free(val);
  /* warm up: the first GETs go to workers and open the loop connection */
  for (int round = 0; round < 5; round++) {
    atomic_store(&n_done, 0);
    for (int i = 0; i < 10; i++)
      CHECK(rcache_get_async(c, "big", on_get_free, NULL) == RCACHE_OK);
    CHECK(pump(c, &n_done, 10, 5000));
    usleep(20000);
  }
  /* control: with a callback that frees */
  size_t before = heap_used();
  atomic_store(&n_done, 0);
  for (int i = 0; i < 200; i++)
    CHECK(rcache_get_async(c, "big", on_get_free, NULL) == RCACHE_OK);
  CHECK(pump(c, &n_done, 200, 10000));
  size_t mid = heap_used();
  /* NULL callbacks, then one with a callback behind them (replies come in order) */
  for (int i = 0; i < 200; i++)
    CHECK(rcache_get_async(c, "big", NULL, NULL) == RCACHE_OK);
  atomic_store(&n_done, 0);
  CHECK(rcache_get_async(c, "big", on_get_free, NULL) == RCACHE_OK);
  CHECK(pump(c, &n_done, 1, 10000));
  usleep(50000);
  for (int i = 0; i < 5; i++) {
    usleep(10000);
    rcache_async_process(c);
  }
  size_t after = heap_used();
  long long ctl = (long long)mid - (long long)before, nul = (long long)after - (long long)mid;
  fprintf(stderr, "heap growth: 200 GETs with a callback %lld B, 200 with NULL %lld B\n", ctl, nul);
  CHECK_MSG(nul < (long long)(50 * vlen), "200 NULL-callback GETs of %zu B leaked %lld B", vlen,
            nul);
  rcache_delete(c, "big");
  rcache_close(c);
}

/* 2, 3. an object a worker decodes into after its callback ran */
typedef struct obj {
  atomic_bool cb_ran;  /* the callback has run: the caller owns (may free) obj again */
  atomic_bool written; /* decode wrote into obj */
  atomic_bool late;    /* ...after the callback had run */
  atomic_bool decoding;
  char data[64];
} obj;

static rcache_status enc(const void *o, rcache_value *out, void *ud) {
  (void)o, (void)ud;
  out->data = strdup("payload");
  out->len = 7;
  return RCACHE_OK;
}

static rcache_status slow_dec(const char *data, size_t len, void *o, void *ud) {
  obj *ob = o;
  int ms = *(int *)ud;
  atomic_store(&ob->decoding, true);
  usleep((useconds_t)ms * 1000);
  if (atomic_load(&ob->cb_ran)) atomic_store(&ob->late, true);
  memcpy(ob->data, data, len < sizeof ob->data ? len : sizeof ob->data - 1);
  atomic_store(&ob->written, true);
  return RCACHE_OK;
}

static rcache_status cb_status;
static void on_obj(void *ud, rcache_status s) {
  obj *ob = ud;
  cb_status = s;
  atomic_store(&ob->cb_ran, true); /* a real caller would free ob here */
  atomic_fetch_add(&n_done, 1);
}

static void test_obj_close(const char *url) {
  rcache *c = open_url(url, 0, 0, 0);
  if (!c) return;
  static int ms = 300;
  rcache_codec codec = {enc, slow_dec, &ms};
  obj o0 = {0};
  CHECK(rcache_set_obj(c, "o", &codec, &o0, 60) == RCACHE_OK);
  obj *ob = calloc(1, sizeof *ob);
  atomic_store(&n_done, 0);
  CHECK(rcache_get_obj_async(c, "o", &codec, ob, on_obj, ob) == RCACHE_OK);
  int64_t end = now_us() + 3000000;
  while (!atomic_load(&ob->decoding) && now_us() < end)
    usleep(1000);
  CHECK(atomic_load(&ob->decoding));
  rcache_close(c); /* runs on_obj (EUNAVAILABLE), then joins the worker */
  CHECK(atomic_load(&n_done) == 1);
  fprintf(stderr, "close: callback %s, decode wrote after the callback: %s\n",
          rcache_strerror(cb_status), atomic_load(&ob->late) ? "YES" : "no");
  CHECK_MSG(!atomic_load(&ob->late),
            "the worker decoded into obj after its callback ran (a use after free when the "
            "callback frees it)");
  free(ob);
}

static void test_obj_deadline(const char *url) {
  /* deadline: connect 200 + 2 x command 200 = 600 ms; the decode takes 900 ms */
  rcache *c = open_url(url, 0, 200, 200);
  if (!c) return;
  static int ms = 900;
  rcache_codec codec = {enc, slow_dec, &ms};
  obj o0 = {0};
  CHECK(rcache_set_obj(c, "o2", &codec, &o0, 60) == RCACHE_OK);
  obj *ob = calloc(1, sizeof *ob);
  atomic_store(&n_done, 0);
  CHECK(rcache_get_obj_async(c, "o2", &codec, ob, on_obj, ob) == RCACHE_OK);
  CHECK(pump(c, &n_done, 1, 5000));
  int64_t end = now_us() + 3000000;
  while (!atomic_load(&ob->written) && now_us() < end)
    usleep(1000);
  fprintf(stderr, "deadline: callback %s, decode wrote after the callback: %s\n",
          rcache_strerror(cb_status), atomic_load(&ob->late) ? "YES" : "no");
  CHECK_MSG(!atomic_load(&ob->late),
            "the worker decoded into obj after its callback ran (a use after free when the "
            "callback frees it)");
  rcache_close(c);
  free(ob);
}

/* 4. rcache_clear, then (its return seen) a set, then (its callback seen) a get: the value set
 * after the clear must read back, as with the blocking calls. The loop's GET, whose reply
 * (read after the clear) carries the clear key's version from before it, must not make the
 * handle forget the clear and write the next value plain (read as a miss, and unlinked). */
static rcache_status set_st;
static void on_set(void *ud, rcache_status s) {
  (void)ud;
  set_st = s;
  atomic_fetch_add(&n_done, 1);
}

static void test_clear_then_set(const char *url) {
  rcache *c = open_url(url, 0, 0, 0);
  if (!c) return;
  /* warm up the loop connection */
  for (int round = 0; round < 5; round++) {
    atomic_store(&n_done, 0);
    for (int i = 0; i < 4; i++)
      CHECK(rcache_get_async(c, "k0", on_get_free, NULL) == RCACHE_OK);
    CHECK(pump(c, &n_done, 4, 5000));
    usleep(20000);
  }
  /* a GET on the loop connection: written (with the clear key's GET) by one process call, its
   * reply not read yet */
  atomic_store(&n_done, 0);
  CHECK(rcache_get_async(c, "k0", on_get_free, NULL) == RCACHE_OK);
  rcache_async_process(c);
  usleep(100000); /* the server has answered (if it has not, the check below cannot fail) */
  CHECK(rcache_clear(c) == RCACHE_OK); /* after that GET, on the server */
  CHECK(pump(c, &n_done, 1, 5000));    /* the GET's reply: the version before the clear */
  /* after the clear: a set, then a get */
  atomic_store(&n_done, 0);
  CHECK(rcache_set_async(c, "k1", "hello", 5, 60, on_set, NULL) == RCACHE_OK);
  CHECK(pump(c, &n_done, 1, 5000));
  CHECK(set_st == RCACHE_OK);
  rcache_value v = {0};
  rcache_status s = rcache_get(c, "k1", &v);
  fprintf(stderr, "clear, set_async OK, then get: %s\n", rcache_strerror(s));
  CHECK_MSG(s == RCACHE_OK && v.len == 5, "a value set after rcache_clear reads as %s",
            rcache_strerror(s));
  rcache_value_free(&v);
  rcache_close(c);
}

/* 5. error replies on the loop connection */
static atomic_int n_err;
static void on_err_status(void *ud, rcache_status s) {
  *(rcache_status *)ud = s;
  atomic_fetch_add(&n_err, 1);
}
static void on_err_value(void *ud, rcache_status s, rcache_value v) {
  rcache_value_free(&v);
  on_err_status(ud, s);
}
static void on_err_int(void *ud, rcache_status s, int64_t v) {
  (void)v;
  on_err_status(ud, s);
}

#define ANY ((rcache_status)100) /* any status, as long as both paths give the same */

/* A handle on url whose loop connection is up: GETs until the loop drives them (the first
 * ones go to workers, one of which opens it). No breaker: every call goes to the server. */
static rcache *open_warm(const char *url) {
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = ns;
  o.breaker_failures = 1000000;
  o.breaker_failure_rate = 0;
  rcache *c = NULL;
  rcache_status s = rcache_open(&c, url, &o);
  CHECK_MSG(s == RCACHE_OK, "open %s: %s %s", url, rcache_strerror(s), rcache_errmsg(NULL));
  CHECK(!c || await_async_warm(c, "e:warm", 10000));
  return c;
}

/* A get, set, delete and incr of keys[0..3], started together (the loop pipelines them on its
 * connection), then the same four blocking calls: each answer through the loop is the blocking
 * call's, and want's (ANY: whatever the blocking call says). */
static void same_as_blocking(rcache *c, const char *what, const char *const keys[4],
                             const rcache_status want[4]) {
  static const char *const ops[4] = {"get", "set", "delete", "incr"};
  rcache_status as[4] = {RCACHE_OK, RCACHE_OK, RCACHE_OK, RCACHE_OK}, bs[4];
  atomic_store(&n_err, 0);
  CHECK(rcache_get_async(c, keys[0], on_err_value, &as[0]) == RCACHE_OK);
  CHECK(rcache_set_async(c, keys[1], "v", 1, 60, on_err_status, &as[1]) == RCACHE_OK);
  CHECK(rcache_delete_async(c, keys[2], on_err_status, &as[2]) == RCACHE_OK);
  CHECK(rcache_incr_async(c, keys[3], 1, on_err_int, &as[3]) == RCACHE_OK);
  CHECK_MSG(pump(c, &n_err, 4, 10000), "%s: %d callbacks of 4", what, atomic_load(&n_err));
  rcache_value v = {0};
  int64_t n = 0;
  bs[0] = rcache_get(c, keys[0], &v);
  rcache_value_free(&v);
  bs[1] = rcache_set(c, keys[1], "v", 1, 60);
  bs[2] = rcache_delete(c, keys[2]);
  bs[3] = rcache_incr(c, keys[3], 1, &n);
  for (int i = 0; i < 4; i++)
    CHECK_MSG(as[i] == bs[i] && (want[i] == ANY || as[i] == want[i]),
              "%s: %s through the loop %s, blocking %s, want %s", what, ops[i],
              rcache_strerror(as[i]), rcache_strerror(bs[i]),
              want[i] == ANY ? "the same" : rcache_strerror(want[i]));
}

/* The replies on a private server m (the key names are under ns): WRONGTYPE and "not an
 * integer", NOPERM (an ACL user without the four commands), OOM (maxmemory 1 B). */
static void errors_standalone(rp_server *m) {
  char url[128], k[2][96];
  rp_url(m, url, sizeof url, NULL);
  rcache *c = open_warm(url);
  if (!c) return;
  snprintf(k[0], sizeof k[0], "%se:list", ns);
  snprintf(k[1], sizeof k[1], "%se:text", ns);
  CHECK(rp_do(m, "RPUSH %s x", k[0]));
  CHECK(rp_do(m, "SET %s abc", k[1]));
  same_as_blocking(c, "WRONGTYPE / not an integer",
                   (const char *const[4]){"e:list", "e:s", "e:absent", "e:text"},
                   (const rcache_status[4]){RCACHE_ETYPE, RCACHE_OK, RCACHE_MISS, RCACHE_ETYPE});
  CHECK(rp_do(m, "CONFIG SET maxmemory 1"));
  same_as_blocking(
      c, "OOM", (const char *const[4]){"e:absent", "e:s", "e:absent", "e:n"},
      (const rcache_status[4]){RCACHE_MISS, RCACHE_ESERVER, RCACHE_MISS, RCACHE_ESERVER});
  CHECK(rp_do(m, "CONFIG SET maxmemory 0"));
  rcache_close(c);
  CHECK(rp_do(m, "ACL SETUSER edge on >edge-pw ~* &* +@all -get -set -unlink -incrby"));
  snprintf(url, sizeof url, "redis://edge:edge-pw@127.0.0.1:%d", m->port);
  c = open_warm(url);
  if (!c) return;
  same_as_blocking(
      c, "NOPERM", (const char *const[4]){"e:s", "e:s", "e:s", "e:n"},
      (const rcache_status[4]){RCACHE_EAUTH, RCACHE_EAUTH, RCACHE_EAUTH, RCACHE_EAUTH});
  rcache_close(c);
}

/* READONLY: m made a replica (of a port nobody listens on) under a Sentinel handle and a
 * one-server handle, before the sentinel has seen it. The Sentinel handle's blocking calls look
 * the master up again and say unavailable; the one-server handle's say ESERVER. */
static void errors_readonly(rp_server *m, rp_server *sen) {
  char url[128];
  snprintf(url, sizeof url, "redis+sentinel://127.0.0.1:%d/edge", sen->port);
  rcache *cs = open_warm(url);
  rp_url(m, url, sizeof url, NULL);
  rcache *c1 = open_warm(url);
  CHECK(rp_do(m, "REPLICAOF 127.0.0.1 %d", rp_free_port()));
  if (cs)
    same_as_blocking(cs, "READONLY (Sentinel)",
                     (const char *const[4]){"e:absent", "e:s", "e:s", "e:n"},
                     (const rcache_status[4]){ANY, RCACHE_EUNAVAILABLE, RCACHE_EUNAVAILABLE,
                                              RCACHE_EUNAVAILABLE});
  if (c1)
    same_as_blocking(
        c1, "READONLY (one server)", (const char *const[4]){"e:absent", "e:s", "e:s", "e:n"},
        (const rcache_status[4]){RCACHE_MISS, RCACHE_ESERVER, RCACHE_ESERVER, RCACHE_ESERVER});
  CHECK(rp_do(m, "REPLICAOF NO ONE"));
  if (cs) rcache_close(cs);
  if (c1) rcache_close(c1);
}

static void test_error_replies(void) {
  rp_server m, sen;
  if (rp_start(&m, &(rp_opts){.tag = "edge-master"}) != 0) {
    CHECK_MSG(0, "could not start a redis-server");
    return;
  }
  char conf[128];
  snprintf(conf, sizeof conf, "sentinel monitor edge 127.0.0.1 %d 1\n", m.port);
  if (rp_start(&sen, &(rp_opts){.tag = "edge-sentinel", .sentinel = true, .conf = conf}) != 0) {
    CHECK_MSG(0, "could not start a sentinel");
    rp_destroy(&m);
    return;
  }
  errors_standalone(&m);
  errors_readonly(&m, &sen);
  rp_destroy(&sen);
  rp_destroy(&m);
}

int main(void) {
  snprintf(ns, sizeof ns, "asyncedge:%d:", (int)getpid());
  const char *url = test_env_url("RCACHE_TEST_URL_TCP");
  if (!url) return test_report("integration_test_async_edges");
  test_null_cb_leak(url);
  test_obj_close(url);
  test_obj_deadline(url);
  test_clear_then_set(url);
  test_error_replies();
  return test_report("integration_test_async_edges");
}
