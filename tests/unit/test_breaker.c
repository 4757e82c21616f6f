/* SPDX-License-Identifier: BSD-3-Clause */
/* The breaker's state machine and its backoff schedule. */
#include "engine/breaker.h"
#include "test.h"

int main(void) {
  rcache_options o;
  rcache_options_init(&o);
  o.breaker_failures = 3;
  rcache__breaker b;
  rcache__breaker_init(&b, &o);
  CHECK(rcache__breaker_allow(&b));
  CHECK(!rcache__breaker_failure(&b));
  CHECK(!rcache__breaker_failure(&b));
  rcache__breaker_success(&b); /* a success resets the consecutive count */
  CHECK(!rcache__breaker_failure(&b));
  CHECK(!rcache__breaker_failure(&b));
  CHECK(rcache__breaker_allow(&b));
  CHECK(rcache__breaker_failure(&b)); /* third in a row opens it, reported once */
  CHECK(!rcache__breaker_allow(&b));
  CHECK(!rcache__breaker_failure(&b)); /* already open: no second "opened" */
  CHECK_EQ(atomic_load(&b.state), RCACHE_BREAKER_OPEN);
  rcache__breaker_half_open(&b);
  CHECK(!rcache__breaker_allow(&b));
  rcache__breaker_reopen(&b);
  CHECK_EQ(atomic_load(&b.state), RCACHE_BREAKER_OPEN);
  rcache__breaker_half_open(&b);
  CHECK(rcache__breaker_close(&b));
  CHECK(rcache__breaker_allow(&b));
  CHECK(!rcache__breaker_close(&b)); /* closing a closed breaker is no state change */
  CHECK(rcache__breaker_trip(&b));
  CHECK(!rcache__breaker_trip(&b));

  /* backoff: defaults 50 ms … 2 s with full jitter stay within [1, cap], grow, and vary */
  int64_t lo = INT64_MAX, hi = 0;
  for (int i = 0; i < 1000; i++) {
    int64_t d = rcache__breaker_backoff_ms(&b, 20);
    lo = d < lo ? d : lo;
    hi = d > hi ? d : hi;
  }
  CHECK(lo >= 1 && hi <= 2000);
  CHECK(hi - lo > 1000); /* full jitter spreads over the whole range */
  o.reconnect_jitter = 0;
  rcache__breaker_init(&b, &o);
  CHECK_EQ(rcache__breaker_backoff_ms(&b, 0), 50);
  CHECK_EQ(rcache__breaker_backoff_ms(&b, 1), 100);
  CHECK_EQ(rcache__breaker_backoff_ms(&b, 3), 400);
  CHECK_EQ(rcache__breaker_backoff_ms(&b, 10), 2000);
  CHECK_EQ(rcache__breaker_backoff_ms(&b, 1000), 2000);

  /* failure rate: alternating failures never make 3 in a row, but half of a window of
   * 20 calls failing opens the breaker; a window starts at a failure, so with a success
   * first it spans calls 2..21 and the success completing it opens the breaker */
  rcache_options_init(&o);
  rcache__breaker_init(&b, &o);
  bool opened = false;
  int calls = 0;
  for (; calls < 100 && !opened; calls++) {
    if (calls % 2)
      opened = rcache__breaker_failure(&b);
    else
      opened = rcache__breaker_success(&b);
  }
  CHECK(opened);
  CHECK_EQ(calls, 21);
  /* successes alone never start a window */
  rcache__breaker_init(&b, &o);
  bool any = false;
  for (int i = 0; i < 1000; i++)
    any |= rcache__breaker_success(&b);
  CHECK(!any);
  CHECK_EQ(atomic_load(&b.win), 0);
  /* the same starting with a failure: the window is completed by a success, which opens it */
  rcache__breaker_init(&b, &o);
  opened = false;
  for (calls = 0; calls < 100 && !opened; calls++) {
    if (calls % 2 == 0)
      opened = rcache__breaker_failure(&b);
    else
      opened = rcache__breaker_success(&b);
  }
  CHECK(opened);
  CHECK_EQ(calls, 20);
  CHECK(!rcache__breaker_allow(&b));
  /* 1 failure in 4 stays closed over many windows */
  rcache__breaker_init(&b, &o);
  opened = false;
  for (int i = 0; i < 1000 && !opened; i++) {
    if (i % 4 == 3)
      opened = rcache__breaker_failure(&b);
    else
      opened = rcache__breaker_success(&b);
  }
  CHECK(!opened);
  CHECK(rcache__breaker_allow(&b));
  /* rate 0 turns the window off */
  o.breaker_failure_rate = 0;
  rcache__breaker_init(&b, &o);
  opened = false;
  for (int i = 0; i < 1000 && !opened; i++) {
    if (i % 2)
      opened = rcache__breaker_failure(&b);
    else
      rcache__breaker_success(&b);
  }
  CHECK(!opened);
  return test_report("test_breaker");
}
