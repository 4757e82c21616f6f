/* SPDX-License-Identifier: BSD-3-Clause */
/* Single-flight: 64 threads on one cold key call the loader exactly once and all get its
 * value; a slow leader lets followers time out and load themselves. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "flight.h"
#include "test.h"

static rcache__flights *fs;
static atomic_int loads, got_value;
static pthread_barrier_t all_joined;

static void *worker(void *arg) {
  (void)arg;
  bool leader;
  rcache__flight *f = rcache__flight_join(fs, "hot", 3, 0, &leader);
  /* every thread has joined before the leader may finish: exactly one flight */
  pthread_barrier_wait(&all_joined);
  if (!f) return NULL;
  rcache_value v = {NULL, 0};
  if (leader) {
    atomic_fetch_add(&loads, 1);
    usleep(50 * 1000); /* a 50 ms loader */
    rcache_value mine = {"value", 5};
    rcache__flight_finish(fs, f, RCACHE_OK, &mine);
    atomic_fetch_add(&got_value, 1);
  } else if (rcache__flight_wait(fs, f, rcache__now_us() + 5 * 1000000, &v) == RCACHE_OK &&
             v.len == 5 && memcmp(v.data, "value", 5) == 0) {
    atomic_fetch_add(&got_value, 1);
  }
  rcache_value_free(&v);
  rcache__flight_leave(fs, f);
  return NULL;
}

int main(void) {
  fs = rcache__flights_new();
  CHECK(fs != NULL);
  pthread_barrier_init(&all_joined, NULL, 64);
  pthread_t t[64];
  for (int i = 0; i < 64; i++)
    pthread_create(&t[i], NULL, worker, NULL);
  for (int i = 0; i < 64; i++)
    pthread_join(t[i], NULL);
  CHECK_EQ(atomic_load(&loads), 1);
  pthread_barrier_destroy(&all_joined);
  CHECK_EQ(atomic_load(&got_value), 64);

  /* a failed leader hands its status to the followers */
  bool l1, l2;
  rcache__flight *a = rcache__flight_join(fs, "k", 1, 0, &l1);
  rcache__flight *b = rcache__flight_join(fs, "k", 1, 0, &l2);
  CHECK(l1 && !l2 && a == b);
  rcache__flight_finish(fs, a, RCACHE_ELOADER, NULL);
  rcache_value v = {NULL, 0};
  CHECK_EQ(rcache__flight_wait(fs, b, rcache__now_us() + 1000000, &v), RCACHE_ELOADER);
  rcache__flight_leave(fs, b);
  rcache__flight_leave(fs, a);

  /* a follower's wait is bounded by its deadline */
  a = rcache__flight_join(fs, "slow", 4, 0, &l1);
  b = rcache__flight_join(fs, "slow", 4, 0, &l2);
  int64_t t0 = rcache__now_us();
  CHECK_EQ(rcache__flight_wait(fs, b, t0 + 20000, &v), RCACHE_ETIMEOUT);
  CHECK(rcache__now_us() - t0 >= 20000);
  /* after finish, the key has no flight: the next caller leads */
  rcache__flight_finish(fs, a, RCACHE_OK, &(rcache_value){"x", 1});
  bool l3;
  rcache__flight *c = rcache__flight_join(fs, "slow", 4, 0, &l3);
  CHECK(l3 && c != a);
  rcache__flight_finish(fs, c, RCACHE_OK, &(rcache_value){"y", 1});
  rcache__flight_leave(fs, c);
  rcache__flight_leave(fs, b);
  rcache__flight_leave(fs, a);
  rcache__flights_free(fs);
  {
    /* a finished flight is remembered: a caller that missed before it ended is late */
    rcache__flights *fs2 = rcache__flights_new();
    int64_t before = rcache__now_us();
    CHECK(!rcache__flight_done_since(fs2, "late", 4, before, 0));
    bool lead;
    rcache__flight *f2 = rcache__flight_join(fs2, "late", 4, 0, &lead);
    CHECK(lead);
    rcache_value v2 = {(char *)"x", 1};
    rcache__flight_finish(fs2, f2, RCACHE_OK, &v2);
    rcache__flight_leave(fs2, f2);
    CHECK(rcache__flight_done_since(fs2, "late", 4, before, 0));
    CHECK(!rcache__flight_done_since(fs2, "late", 4, rcache__now_us() + 1000000, 0));
    CHECK(!rcache__flight_done_since(fs2, "other", 5, before, 0));
    /* a failed flight is not remembered: nothing was stored */
    f2 = rcache__flight_join(fs2, "bad", 3, 0, &lead);
    rcache__flight_finish(fs2, f2, RCACHE_ELOADER, NULL);
    rcache__flight_leave(fs2, f2);
    CHECK(!rcache__flight_done_since(fs2, "bad", 3, before, 0));
    /* nor, for a caller that read a later invalidation epoch, one that began before it */
    CHECK(!rcache__flight_done_since(fs2, "late", 4, before, 1));
    rcache__flights_free(fs2);
  }
  {
    /* a flight older than the caller's epoch is not joined: the caller leads a new one, which
     * replaces it in the table; the old one still lands for those that joined it */
    rcache__flights *fs3 = rcache__flights_new();
    bool la, lb, lc, ld;
    rcache__flight *fa = rcache__flight_join(fs3, "e", 1, 5, &la);
    rcache__flight *fb = rcache__flight_join(fs3, "e", 1, 5, &lb); /* same epoch: joins */
    rcache__flight *fc = rcache__flight_join(fs3, "e", 1, 6, &lc); /* newer: leads anew */
    rcache__flight *fd = rcache__flight_join(fs3, "e", 1, 6, &ld); /* joins the new one */
    CHECK(la && !lb && fa == fb);
    CHECK(lc && fc != fa && !ld && fd == fc);
    bool le;
    rcache__flight *fe = rcache__flight_join(fs3, "e", 1, 4, &le); /* older: the newest will do */
    CHECK(!le && fe == fc);
    rcache__flight_finish(fs3, fa, RCACHE_OK, &(rcache_value){"old", 3});
    rcache_value w = {NULL, 0};
    CHECK_EQ(rcache__flight_wait(fs3, fb, rcache__now_us() + 1000000, &w), RCACHE_OK);
    CHECK(w.len == 3 && memcmp(w.data, "old", 3) == 0);
    rcache_value_free(&w);
    rcache__flight_finish(fs3, fc, RCACHE_OK, &(rcache_value){"new", 3});
    CHECK_EQ(rcache__flight_wait(fs3, fd, rcache__now_us() + 1000000, &w), RCACHE_OK);
    CHECK(w.len == 3 && memcmp(w.data, "new", 3) == 0);
    rcache_value_free(&w);
    rcache__flight_leave(fs3, fe);
    rcache__flight_leave(fs3, fd);
    rcache__flight_leave(fs3, fc);
    rcache__flight_leave(fs3, fb);
    rcache__flight_leave(fs3, fa);
    rcache__flights_free(fs3);
  }
  return test_report("test_flight");
}
