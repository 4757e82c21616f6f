/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Sentinel, master never found (every sentinel stalls: TCP accepted by
 * the kernel, nothing ever answered). The first contact fails and opens the breaker; from
 * then on every call must answer at once (breaker open: "one atomic load") and in any case
 * within connect_timeout_ms + command_timeout_ms (docs/semantics.md, rcache.h "Deadlines").
 * Before the fix each call made its own sentinel look-up (find_master -> lookup) with a
 * deadline of 2 x connect_timeout_ms, regardless of the open breaker.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rcache/rcache.h"
#include "test.h"

/* A listening socket nobody accepts from: connects complete (the kernel's backlog), every
 * request stays unanswered. */
static int silent_listener(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 128) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
    return -1;
  *port = ntohs(sa.sin_port);
  return fd;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  int p1, p2;
  int f1 = silent_listener(&p1), f2 = silent_listener(&p2);
  CHECK(f1 >= 0 && f2 >= 0);
  char url[256];
  snprintf(url, sizeof url, "redis+sentinel://:secret-pw@127.0.0.1:%d,127.0.0.1:%d/mymaster", p1,
           p2);
  rcache_options o;
  rcache_options_init(&o);
  o.connect_timeout_ms = 500;
  o.command_timeout_ms = 100;
  o.log_level = RCACHE_LOG_ERROR;
  rcache *c = NULL;
  CHECK(rcache_open(&c, url, &o) == RCACHE_OK);
  if (!c) return test_report("integration_test_sentinel_stall");
  rcache_health h;
  double t0 = now_ms();
  rcache_status hs = rcache_health_check(c, &h); /* waits for the first contact */
  printf("health: %s after %.0f ms\n", rcache_strerror(hs), now_ms() - t0);
  CHECK(hs != RCACHE_OK);
  double bound = o.connect_timeout_ms + o.command_timeout_ms + 100; /* + slack */
  double worst = 0;
  for (int i = 0; i < 4; i++) {
    rcache_value v;
    t0 = now_ms();
    rcache_status s = rcache_get(c, "k", &v);
    double took = now_ms() - t0;
    if (took > worst) worst = took;
    printf("get %d: %s in %.0f ms (%s)\n", i, rcache_strerror(s), took, rcache_errmsg(c));
    CHECK(s == RCACHE_EUNAVAILABLE);
  }
  CHECK_MSG(worst <= bound, "a call took %.0f ms, over connect + command timeout (%.0f ms)", worst,
            bound);
  rcache_close(c);
  close(f1);
  close(f2);
  return test_report("integration_test_sentinel_stall");
}
