/* SPDX-License-Identifier: BSD-3-Clause */
/* Every public function given a NULL handle or NULL arguments returns a clear status (or
 * does nothing, for the void ones) and never crashes; invalid options fail rcache_open()
 * with RCACHE_EINVAL and a message naming the option. Arguments on a live handle are in
 * the contract suite (tests/contract/badinput.c), which runs on every backend. */
#include <math.h>
#include <stdbool.h>

#include "rcache/json.h"
#include "rcache/keys.h"
#include "rcache/rcache.h"
#include "test.h"

static rcache_status loader(void *ud, rcache_value *out) {
  return RCACHE_OK;
}

static bool visit(const char *k, size_t l, void *ud) {
  return true;
}

static void null_handle(void) {
  rcache_value v = {(char *)"junk", 4};
  bool b = true;
  int64_t n = 9;
  uint64_t d = 9;
  CHECK_EQ(rcache_get(NULL, "k", &v), RCACHE_EINVAL);
  CHECK(v.data == NULL && v.len == 0);
  CHECK_EQ(rcache_set(NULL, "k", "v", 1, 0), RCACHE_EINVAL);
  CHECK_EQ(rcache_delete(NULL, "k"), RCACHE_EINVAL);
  CHECK_EQ(rcache_delete_prefix(NULL, "k", &d), RCACHE_EINVAL);
  CHECK_EQ(d, 0);
  d = 9;
  CHECK_EQ(rcache_delete_pattern(NULL, "k*", &d), RCACHE_EINVAL);
  CHECK_EQ(d, 0);
  CHECK_EQ(rcache_get_or_set(NULL, "k", 1, loader, NULL, &v), RCACHE_EINVAL);
  CHECK_EQ(rcache_incr(NULL, "k", 1, &n), RCACHE_EINVAL);
  CHECK_EQ(n, 0);
  n = 9;
  CHECK_EQ(rcache_decr(NULL, "k", 1, &n), RCACHE_EINVAL);
  CHECK_EQ(n, 0);
  CHECK_EQ(rcache_decr(NULL, "k", INT64_MIN, &n), RCACHE_EINVAL);
  CHECK_EQ(rcache_incr_expire(NULL, "k", 1, 10, &n), RCACHE_EINVAL);
  CHECK_EQ(rcache_incr_expire(NULL, "k", 1, 0, &n), RCACHE_EINVAL);
  CHECK_EQ(rcache_rate_limit(NULL, "k", 1, 10, &b, &n), RCACHE_EINVAL);
  CHECK(!b);
  CHECK_EQ(rcache_rate_limit(NULL, "k", -1, 10, &b, &n), RCACHE_EINVAL);
  CHECK_EQ(rcache_rate_limit(NULL, "k", 1, 10, NULL, NULL), RCACHE_EINVAL);
  b = true;
  CHECK_EQ(rcache_exists(NULL, "k", &b), RCACHE_EINVAL);
  CHECK(!b);
  CHECK_EQ(rcache_ttl(NULL, "k", &n), RCACHE_EINVAL);
  CHECK_EQ(n, -2);
  CHECK_EQ(rcache_flush(NULL), RCACHE_EINVAL);
  const char *keys[] = {"a"};
  rcache_value vals[1] = {{(char *)"1", 1}};
  rcache_status st[1];
  CHECK_EQ(rcache_get_many(NULL, keys, 1, vals, st), RCACHE_EINVAL);
  CHECK_EQ(rcache_set_many(NULL, keys, vals, 1, 0), RCACHE_EINVAL);
  CHECK_EQ(rcache_scan(NULL, "*", 0, visit, NULL), RCACHE_EINVAL);
  rcache_health h;
  CHECK_EQ(rcache_health_check(NULL, &h), RCACHE_EINVAL);
  CHECK_EQ(rcache_health_check(NULL, NULL), RCACHE_EINVAL);
  rcache_stats s;
  s.hits = 77;
  rcache_get_stats(NULL, &s); /* zeroed */
  CHECK_EQ(s.hits, 0);
  CHECK(!s.available);
  rcache_get_stats(NULL, NULL);
  CHECK_STR(rcache_mode(NULL), "");
  CHECK(rcache_errmsg(NULL) != NULL);
  rcache_close(NULL);
  rcache_value_free(NULL);
  rcache_options_init(NULL);
  char buf[16] = "x";
  CHECK_EQ(rcache_stats_json(NULL, buf, sizeof buf), 0);
  CHECK_STR(buf, "");
  CHECK_EQ(rcache_stats_prometheus(NULL, NULL, 0), 0);
  CHECK(rcache_strerror((rcache_status)12345) != NULL);
}

static rcache_status enc(const void *obj, rcache_value *out, void *ud) {
  return RCACHE_OK;
}

static rcache_status dec(const char *d, size_t l, void *obj, void *ud) {
  return RCACHE_OK;
}

static rcache_status obj_loader(void *ud, void *obj) {
  return RCACHE_OK;
}

static json_t *json_loader(void *ud) {
  return json_true();
}

/* The typed, JSON and key helpers: NULL anything gives EINVAL (or -1), never a crash. */
static void null_helpers(rcache *live) {
  rcache *hs[] = {NULL, live};
  const rcache_codec codec = {enc, dec, NULL}, half = {enc, NULL, NULL};
  int obj = 0;
  for (int i = 0; i < 2; i++) {
    rcache *c = hs[i];
    char *str = (char *)"junk";
    int64_t n = 3;
    double d = 3;
    json_t *j = json_true();
    CHECK_EQ(rcache_set_str(c, i ? NULL : "k", "v", 0), RCACHE_EINVAL);
    CHECK_EQ(rcache_set_str(c, "k", NULL, 0), RCACHE_EINVAL);
    CHECK_EQ(rcache_get_str(c, "k", i ? NULL : &str), RCACHE_EINVAL);
    CHECK_EQ(rcache_get_str(c, i ? "" : "k", &str), RCACHE_EINVAL);
    CHECK(str == NULL || !i);
    CHECK_EQ(rcache_set_i64(c, i ? "" : "k", 1, 0), RCACHE_EINVAL);
    CHECK_EQ(rcache_get_i64(c, "k", i ? NULL : &n), RCACHE_EINVAL);
    CHECK_EQ(rcache_set_double(c, i ? NULL : "k", 1.0, 0), RCACHE_EINVAL);
    CHECK_EQ(rcache_set_double(c, "k", 1.0, -1), RCACHE_EINVAL);
    CHECK_EQ(rcache_get_double(c, "k", i ? NULL : &d), RCACHE_EINVAL);
    CHECK_EQ(rcache_set_obj(c, "k", i ? NULL : &codec, &obj, 0), RCACHE_EINVAL);
    CHECK_EQ(rcache_get_obj(c, "k", i ? &half : &codec, &obj), RCACHE_EINVAL);
    CHECK_EQ(rcache_get_or_set_obj(c, "k", 0, &codec, i ? NULL : obj_loader, NULL, &obj),
             RCACHE_EINVAL);
    CHECK_EQ(rcache_get_or_set_obj(c, "k", 0, i ? NULL : &codec, obj_loader, NULL, &obj),
             RCACHE_EINVAL);
    CHECK_EQ(rcache_set_json(c, i ? NULL : "k", j, 0), RCACHE_EINVAL);
    CHECK_EQ(rcache_set_json(c, "k", i ? NULL : j, 0), RCACHE_EINVAL);
    CHECK_EQ(rcache_get_json(c, "k", i ? NULL : &j), RCACHE_EINVAL);
    CHECK_EQ(rcache_get_or_set_json(c, "k", 0, i ? NULL : json_loader, NULL, &j), RCACHE_EINVAL);
    CHECK_EQ(rcache_get_or_set_json(c, "k", 0, json_loader, NULL, i ? NULL : &j), RCACHE_EINVAL);
    json_decref(j);
    uint64_t del = 9;
    CHECK_EQ(rcache_invalidate_user(c, i ? NULL : "12", &del), RCACHE_EINVAL);
  }
  char buf[64];
  const char *parts[] = {"a", NULL};
  CHECK_EQ(rcache_key_build(NULL, 10, 1, parts), -1);
  CHECK_EQ(rcache_key_build(buf, sizeof buf, 2, parts), -1);
  CHECK_EQ(rcache_key_build(buf, sizeof buf, 1, NULL), -1);
  CHECK_EQ(rcache_key_user(buf, sizeof buf, NULL), -1);
  CHECK_EQ(rcache_key_user(buf, sizeof buf, ""), -1);
  CHECK_EQ(rcache_key_user_credits(buf, sizeof buf, NULL), -1);
  CHECK_EQ(rcache_key_workflow(buf, sizeof buf, NULL), -1);
  CHECK_EQ(rcache_key_workflow_definition(buf, sizeof buf, NULL), -1);
  CHECK_EQ(rcache_key_session(buf, sizeof buf, NULL), -1);
  CHECK_EQ(rcache_key_rate_limit(buf, sizeof buf, "u", NULL), -1);
  CHECK_EQ(rcache_key_rate_limit(buf, sizeof buf, NULL, "/e"), -1);
  CHECK_EQ(rcache_key_feature_flag(buf, sizeof buf, NULL), -1);
  CHECK_EQ(rcache_key_user_all(buf, sizeof buf, NULL), -1);
  CHECK_EQ(rcache_key_all_workflows(NULL, 10), -1);
  CHECK_EQ(rcache_key_digest(buf, sizeof buf, NULL, 80), -1);
  CHECK_EQ(rcache_key_digest(NULL, 10, "k", 80), -1);
  CHECK(rcache_key_all_workflows(NULL, 0) > 0); /* snprintf semantics: a length query */
}

/* One bad option: rcache_open fails with EINVAL, *out NULL, message naming `name`. */
static void bad_option(const char *url, const rcache_options *o, const char *name) {
  rcache *c = (rcache *)&c; /* not NULL: rcache_open must clear it */
  rcache_status s = rcache_open(&c, url, o);
  CHECK_MSG(s == RCACHE_EINVAL, "%s on %s: status %d", name, url, (int)s);
  CHECK(c == NULL);
  CHECK_MSG(strstr(rcache_errmsg(NULL), name) != NULL, "%s: message \"%s\"", name,
            rcache_errmsg(NULL));
  if (s == RCACHE_OK) rcache_close(c);
}

static void options(const char *url) {
  rcache_options o;
#define BAD(field, value)                                                                          \
  do {                                                                                             \
    rcache_options_init(&o);                                                                       \
    o.field = value;                                                                               \
    bad_option(url, &o, #field);                                                                   \
  } while (0)
  BAD(connect_timeout_ms, 0);
  BAD(connect_timeout_ms, -5);
  BAD(command_timeout_ms, 0);
  BAD(pool_size, 0);
  BAD(pool_size, 100000);
  BAD(default_ttl_s, -1);
  BAD(default_ttl_s, INT64_MAX);
  BAD(ttl_jitter, NAN);
  BAD(ttl_jitter, -0.1);
  BAD(ttl_jitter, 1.5);
  BAD(ttl_jitter, INFINITY);
  BAD(breaker_failures, 0);
  BAD(reconnect_min_ms, 0);
  BAD(reconnect_jitter, NAN);
  BAD(reconnect_jitter, 2);
  BAD(near_cache_max_ttl_ms, -1);
  BAD(flight_wait_ms, -1);
  BAD(early_refresh_beta, NAN);
  BAD(early_refresh_beta, -1);
  BAD(stale_window_s, -1);
  BAD(max_key_bytes, 0);
  BAD(max_value_bytes, 0);
  BAD(max_redirects, -1);
  BAD(scan_count, 0);
  BAD(breaker_failure_rate, NAN);
  BAD(breaker_failure_rate, 1.5);
  BAD(breaker_window, 0);
  BAD(log_level, 99);
  BAD(log_level, -1);
#undef BAD
  rcache_options_init(&o);
  o.reconnect_min_ms = 500;
  o.reconnect_max_ms = 100; /* max below min */
  bad_option(url, &o, "reconnect_m");
  rcache_options_init(&o);
  o.lease = true;
  o.lease_ms = 0;
  bad_option(url, &o, "lease_ms");
  rcache_options_init(&o);
  o.key_prefix = "a-long-prefix:";
  o.max_key_bytes = 8; /* the prefix alone does not fit */
  bad_option(url, &o, "key_prefix");
  /* out NULL */
  CHECK_EQ(rcache_open(NULL, url, NULL), RCACHE_EINVAL);
  CHECK(rcache_errmsg(NULL)[0] != '\0');
  /* the defaults open */
  rcache *c = NULL;
  rcache_options_init(&o);
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  rcache_close(c);
  CHECK_EQ(rcache_open(&c, url, NULL), RCACHE_OK);
  rcache_close(c);
}

int main(void) {
  null_handle();
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, "memory://", NULL), RCACHE_OK);
  null_helpers(c);
  rcache_close(c);
  options("memory://");
  options("none://");
  return test_report("test_badinput");
}
