/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The near cache when a data connection's CLIENT TRACKING ... REDIRECT <id> is refused (here:
 * the ACL user loses +client|tracking after the listener was set up, and the data connections
 * are replaced): Redis sends no invalidation for what those connections read, so the near
 * cache must not serve it. Before the fix the refusal was not checked, the listener (alive,
 * announced) let the near cache fill from them, and another client's write was not seen for
 * up to near_cache_max_ttl_ms (60 s by default). Now the listener hears of the refusal,
 * flushes the near cache and reconnects, where its own CLIENT TRACKING is refused: the near
 * cache is off (docs/near-cache.md). On a redis-server of this test's own (it changes ACLs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rcache/rcache.h"
#include "support/redis_proc.h"
#include "test.h"

static rp_server srv;

/* a command to the server (its words split at spaces, as hiredis formats) */
#define cmd(c) CHECK_MSG(rp_do(&srv, c), "%s", c)

static int get_is(rcache *c, const char *key, const char *want) {
  rcache_value v = {0};
  rcache_status s = rcache_get(c, key, &v);
  int ok = s == RCACHE_OK && v.len == strlen(want) && memcmp(v.data, want, v.len) == 0;
  if (!ok)
    printf("get %s: %s, \"%.*s\" (want \"%s\")\n", key, rcache_strerror(s), (int)v.len,
           v.data ? v.data : "", want);
  rcache_value_free(&v);
  return ok;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (rp_start(&srv, &(rp_opts){.tag = "tracking-refused"}) != 0) {
    CHECK(!"server start");
    return test_report("integration_test_near_tracking_refused");
  }
  cmd("ACL SETUSER app reset on >apppw ~* &* +@all");
  cmd("SET rv:k v1");
  char url[128];
  snprintf(url, sizeof url, "redis://app:apppw@127.0.0.1:%d", srv.port);
  rcache_options o;
  rcache_options_init(&o);
  o.near_cache_bytes = 1 << 20;
  o.log_level = RCACHE_LOG_ERROR;
  rcache *c = NULL;
  CHECK(rcache_open(&c, url, &o) == RCACHE_OK);
  if (!c) return test_report("integration_test_near_tracking_refused");
  rcache_health h;
  CHECK(rcache_health_check(c, &h) == RCACHE_OK);
  /* sanity: tracked as it should be while the ACL allows it */
  rcache_stats st0 = {0}, st1 = {0};
  for (int i = 0; i < 50; i++) { /* until the near cache serves */
    CHECK(get_is(c, "rv:k", "v1"));
    rcache_get_stats(c, &st0);
    if (st0.near_hits > 0) break;
    usleep(20000);
  }
  CHECK(st0.near_hits > 0);
  cmd("SET rv:k v2");
  usleep(200000);
  CHECK(get_is(c, "rv:k", "v2")); /* invalidated */

  /* the user loses CLIENT TRACKING (its listener stays subscribed and answers PING), and
   * the data connections go: the new ones are opened with a refused CLIENT TRACKING */
  cmd("ACL SETUSER app -client|tracking");
  cmd("CLIENT KILL TYPE normal USER app");
  usleep(200000);
  for (int i = 0; i < 50; i++) {
    CHECK(get_is(c, "rv:k", "v2"));
    rcache_get_stats(c, &st1);
    if (st1.near_hits > st0.near_hits + 1) break;
    usleep(20000);
  }
  printf("near hits %llu before the refusal, %llu after\n", (unsigned long long)st0.near_hits,
         (unsigned long long)st1.near_hits);
  cmd("SET rv:k v3"); /* another client's write */
  usleep(300000);     /* far more than an invalidation takes */
  int fresh = get_is(c, "rv:k", "v3");
  CHECK_MSG(fresh, "the near cache served a value overwritten 300 ms earlier");
  rcache_close(c);
  rp_stop(&srv);
  return test_report("integration_test_near_tracking_refused");
}
