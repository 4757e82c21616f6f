/* SPDX-License-Identifier: BSD-3-Clause */
/* Health, statistics and their exports, error details. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"

static bool known_mode(const char *m) {
  return strcmp(m, "memory") == 0 || strcmp(m, "standalone") == 0 || strcmp(m, "cluster") == 0 ||
         strcmp(m, "sentinel") == 0;
}

CONTRACT_TEST(health_check) {
  rcache_health h;
  memset(&h, 0x5a, sizeof h); /* every field must be written */
  CHECK_EQ(rcache_health_check(e->c, &h), RCACHE_OK);
  CHECK(h.healthy);
  CHECK_STR(h.error, "");
  CHECK(h.latency_ms >= 0 && h.latency_ms < 60000);
  CHECK(memchr(h.server_version, '\0', sizeof h.server_version) != NULL);
  CHECK(memchr(h.mode, '\0', sizeof h.mode) != NULL);
  CHECK_STR(h.mode, rcache_mode(e->c));
  CHECK_MSG(known_mode(h.mode), "mode \"%s\"", h.mode);
  if (strcmp(h.mode, "memory") != 0) /* a server reports its version, e.g. 7.0.15 */
    CHECK_MSG(h.server_version[0] >= '1' && h.server_version[0] <= '9', "version \"%s\"",
              h.server_version);
  CHECK_EQ(rcache_health_check(e->c, NULL), RCACHE_EINVAL);
}

CONTRACT_ANY_TEST(version_and_strerror) {
  const char *v = rcache_version();
  CHECK(v && v[0] >= '0' && v[0] <= '9' && strchr(v, '.'));
  CHECK_STR(rcache_strerror(RCACHE_OK), "ok");
  for (int s = -15; s <= 1; s++) {
    const char *m = rcache_strerror((rcache_status)s);
    CHECK_MSG(m && m[0], "strerror(%d)", s);
  }
  CHECK(rcache_strerror((rcache_status)-999) != NULL);
  CHECK(strcmp(rcache_strerror(RCACHE_EINVAL), rcache_strerror(RCACHE_EUNAVAILABLE)) != 0);
}

CONTRACT_TEST(stats_counters_move) {
  rcache_stats a, b;
  rcache_get_stats(e->c, &a);
  CHECK(a.available);
  CHECK_EQ(a.breaker_state, RCACHE_BREAKER_CLOSED);
  rcache_value v;
  CHECK_EQ(rcache_set(e->c, "s1", "x", 1, 0), RCACHE_OK);
  CHECK_EQ(rcache_set(e->c, "s2", "y", 1, 0), RCACHE_OK);
  CHECK_EQ(rcache_get(e->c, "s1", &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(rcache_get(e->c, "s1", &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(rcache_get(e->c, "nope", &v), RCACHE_MISS);
  CHECK_EQ(rcache_delete(e->c, "s2"), RCACHE_OK);
  CHECK_EQ(rcache_incr(e->c, "s1", 1, NULL), RCACHE_ETYPE); /* an error */
  rcache_get_stats(e->c, &b);
  CHECK_EQ((b.hits + b.near_hits) - (a.hits + a.near_hits), 2); /* either tier */
  CHECK_EQ(b.misses - a.misses, 1);
  CHECK_EQ(b.sets - a.sets, 2);
  CHECK_EQ(b.deletes - a.deletes, 1);
  CHECK(b.errors - a.errors >= 1);
  CHECK_EQ(b.fallbacks, a.fallbacks); /* nothing was answered without the cache */
  CHECK(b.available);
  CHECK(b.latency_max_ms >= b.latency_p99_ms && b.latency_p99_ms >= b.latency_p50_ms);
  CHECK(b.latency_p50_ms >= 0);
}

/* Finds "needle" followed by a number in text; that number, or -1. */
static long long number_after(const char *text, const char *needle) {
  const char *p = strstr(text, needle);
  if (!p) return -1;
  return strtoll(p + strlen(needle), NULL, 10);
}

CONTRACT_TEST(stats_exports) {
  rcache_value v;
  for (int i = 0; i < 3; i++)
    CHECK_EQ(rcache_get(e->c, "missing", &v), RCACHE_MISS);
  CHECK_EQ(rcache_set(e->c, "k", "v", 1, 0), RCACHE_OK);
  rcache_stats s;
  rcache_get_stats(e->c, &s);
  char buf[8192];
  size_t need = rcache_stats_json(&s, NULL, 0);
  CHECK(need > 20 && need < sizeof buf);
  size_t n = rcache_stats_json(&s, buf, sizeof buf);
  CHECK_EQ(n, need);
  CHECK_EQ(strlen(buf), n);
  CHECK(buf[0] == '{' && buf[n - 1] == '}');
  CHECK_EQ(number_after(buf, "\"misses\":"), (long long)s.misses);
  CHECK_EQ(number_after(buf, "\"sets\":"), (long long)s.sets);
  CHECK(strstr(buf, "\"available\":true") != NULL);
  CHECK(strchr(buf, '\n') == NULL); /* compact */
  /* braces and quotes balance: a cheap well-formedness check */
  int depth = 0, quotes = 0;
  for (size_t i = 0; i < n; i++) {
    depth += buf[i] == '{' ? 1 : buf[i] == '}' ? -1 : 0;
    quotes += buf[i] == '"';
  }
  CHECK_EQ(depth, 0);
  CHECK_EQ(quotes % 2, 0);
  /* truncation: snprintf semantics */
  char small[16];
  CHECK_EQ(rcache_stats_json(&s, small, sizeof small), need);
  CHECK_EQ(strlen(small), sizeof small - 1);
  CHECK(strncmp(small, buf, sizeof small - 1) == 0);

  need = rcache_stats_prometheus(&s, NULL, 0);
  CHECK(need > 100 && need < sizeof buf);
  n = rcache_stats_prometheus(&s, buf, sizeof buf);
  CHECK_EQ(n, need);
  CHECK_EQ(strlen(buf), n);
  CHECK_EQ(number_after(buf, "\nrcache_misses_total "), (long long)s.misses);
  CHECK_EQ(number_after(buf, "\nrcache_sets_total "), (long long)s.sets);
  CHECK_EQ(number_after(buf, "\nrcache_available "), 1);
  CHECK(strstr(buf, "# TYPE rcache_hits_total counter") != NULL);
  CHECK(buf[n - 1] == '\n');
  /* every non-comment line is "name[{labels}] value" */
  int bad = 0, samples = 0;
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    if (line[0] == '#') continue;
    samples++;
    char *sp = strrchr(line, ' ');
    bad += !sp || strncmp(line, "rcache_", 7) != 0 || sp[1] == '\0';
  }
  CHECK(samples >= 15);
  CHECK_EQ(bad, 0);
  CHECK_EQ(rcache_stats_json(NULL, buf, sizeof buf), 0);
  CHECK_STR(buf, "");
}

CONTRACT_ANY_TEST(errmsg_after_failures) {
  CHECK_EQ(rcache_get(e->c, "", NULL), RCACHE_EINVAL);
  const char *m = rcache_errmsg(e->c);
  CHECK_MSG(m[0] != '\0', "errmsg empty after EINVAL");
  CHECK(rcache_errmsg(NULL) != NULL);
  /* a failed open leaves its reason for rcache_errmsg(NULL), naming the option */
  rcache_options o;
  rcache_options_init(&o);
  o.pool_size = 0;
  rcache *c = (rcache *)1;
  CHECK_EQ(rcache_open(&c, e->url, &o), RCACHE_EINVAL);
  CHECK(c == NULL);
  CHECK_MSG(strstr(rcache_errmsg(NULL), "pool_size") != NULL, "\"%s\"", rcache_errmsg(NULL));
  /* a handle's message belongs to that handle: another handle has none of it */
  rcache *other = ct_open(e, NULL);
  if (other) CHECK_STR(rcache_errmsg(other), "");
  CHECK_STR(rcache_mode(NULL), "");
}
