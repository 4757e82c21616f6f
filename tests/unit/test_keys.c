/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Key helpers (<rcache/keys.h>): the seed's key table, snprintf semantics (measure,
 * truncate), invalid input, the user-12-is-not-user-123 property and rcache_key_digest().
 * Pure functions: no backend needed.
 */
#include <limits.h>

#include "rcache/keys.h"
#include "test.h"

/* Checks one builder call: its return value and the string it wrote into a roomy buffer. */
#define KEY_IS(call_with_buf, expect)                                                              \
  do {                                                                                             \
    char buf[256];                                                                                 \
    memset(buf, 'Z', sizeof buf);                                                                  \
    int n_ = (call_with_buf);                                                                      \
    CHECK_EQ(n_, (int)strlen(expect));                                                             \
    CHECK_STR(buf, expect);                                                                        \
  } while (0)

static void table(void) {
  KEY_IS(rcache_key_user(buf, sizeof buf, "12"), "user:12");
  KEY_IS(rcache_key_user_credits(buf, sizeof buf, "12"), "user:12:credits");
  KEY_IS(rcache_key_workflow(buf, sizeof buf, "wf-9"), "workflow:wf-9");
  KEY_IS(rcache_key_workflow_definition(buf, sizeof buf, "7"), "workflow:7:definition");
  KEY_IS(rcache_key_session(buf, sizeof buf, "3f2a-77"), "session:3f2a-77");
  KEY_IS(rcache_key_rate_limit(buf, sizeof buf, "12", "/api/search"), "rate:12:/api/search");
  KEY_IS(rcache_key_feature_flag(buf, sizeof buf, "new-ui"), "feature:new-ui");
  KEY_IS(rcache_key_user_all(buf, sizeof buf, "12"), "user:12:");
  KEY_IS(rcache_key_rate_limit_all(buf, sizeof buf, "12"), "rate:12:");
  KEY_IS(rcache_key_all_workflows(buf, sizeof buf), "workflow:");
  const char *three[] = {"tenant", "acme", "report"};
  KEY_IS(rcache_key_build(buf, sizeof buf, 3, three), "tenant:acme:report");
  KEY_IS(rcache_key_build(buf, sizeof buf, 1, three), "tenant");
  /* any byte but ':' is fine in a part: spaces, globs, UTF-8 */
  KEY_IS(rcache_key_user(buf, sizeof buf, "a b*?[x]"), "user:a b*?[x]");
  KEY_IS(rcache_key_session(buf, sizeof buf, "\xc3\xa9t\xc3\xa9"), "session:\xc3\xa9t\xc3\xa9");
}

static void snprintf_semantics(void) {
  /* measure */
  CHECK_EQ(rcache_key_user_credits(NULL, 0, "12"), 15);
  CHECK_EQ(rcache_key_all_workflows(NULL, 0), 9);
  /* truncation keeps a NUL-terminated head and still reports the full length */
  char small[8];
  memset(small, 'Z', sizeof small);
  CHECK_EQ(rcache_key_user_credits(small, sizeof small, "12"), 15);
  CHECK_STR(small, "user:12");
  char one[1] = {'Z'};
  CHECK_EQ(rcache_key_user(one, 1, "12"), 7);
  CHECK_EQ(one[0], '\0');
  char exact[7]; /* one byte short of "user:12" + NUL */
  CHECK_EQ(rcache_key_user(exact, sizeof exact, "12"), 7);
  CHECK_STR(exact, "user:1");
  char fits[8];
  CHECK_EQ(rcache_key_user(fits, sizeof fits, "12"), 7);
  CHECK_STR(fits, "user:12");
  /* size 0 never writes, even with a buffer */
  char untouched[4] = "abc";
  CHECK_EQ(rcache_key_user(untouched, 0, "12"), 7);
  CHECK_STR(untouched, "abc");
  /* the trailing ':' of a prefix is measured too */
  char pre[8];
  CHECK_EQ(rcache_key_user_all(pre, sizeof pre, "12"), 8);
  CHECK_STR(pre, "user:12");
}

static void invalid_input(void) {
  char buf[32];
  const char *with_null[] = {"a", NULL, "c"};
  const char *with_empty[] = {"a", "", "c"};
  const char *with_colon[] = {"a", "b:c"};
  struct {
    int got;
    const char *what;
  } cases[] = {
      {rcache_key_user(buf, sizeof buf, NULL), "NULL id"},
      {rcache_key_user(buf, sizeof buf, ""), "empty id"},
      {rcache_key_user(buf, sizeof buf, "12:credits"), "id with ':'"},
      {rcache_key_user(buf, sizeof buf, ":"), "id ':'"},
      {rcache_key_user_credits(buf, sizeof buf, "1:2"), "credits id with ':'"},
      {rcache_key_user_all(buf, sizeof buf, "12:"), "user_all id with ':'"},
      {rcache_key_user_all(buf, sizeof buf, ""), "user_all empty id"},
      {rcache_key_workflow(buf, sizeof buf, NULL), "workflow NULL"},
      {rcache_key_workflow_definition(buf, sizeof buf, ""), "definition empty"},
      {rcache_key_session(buf, sizeof buf, "a:b"), "session with ':'"},
      {rcache_key_rate_limit(buf, sizeof buf, "12", NULL), "rate_limit NULL endpoint"},
      {rcache_key_rate_limit(buf, sizeof buf, NULL, "/x"), "rate_limit NULL user"},
      {rcache_key_rate_limit(buf, sizeof buf, "12", "GET:/x"), "endpoint with ':'"},
      {rcache_key_rate_limit_all(buf, sizeof buf, NULL), "rate_limit_all NULL user"},
      {rcache_key_rate_limit_all(buf, sizeof buf, "1:2"), "rate_limit_all user with ':'"},
      {rcache_key_feature_flag(buf, sizeof buf, ""), "empty flag"},
      {rcache_key_user(NULL, 5, "12"), "NULL buf with size > 0"},
      {rcache_key_all_workflows(NULL, 1), "NULL buf with size 1"},
      {rcache_key_build(buf, sizeof buf, 0, with_null), "no parts"},
      {rcache_key_build(buf, sizeof buf, 2, NULL), "parts NULL"},
      {rcache_key_build(buf, sizeof buf, 3, with_null), "NULL part"},
      {rcache_key_build(buf, sizeof buf, 3, with_empty), "empty part"},
      {rcache_key_build(buf, sizeof buf, 2, with_colon), "part with ':'"},
      {rcache_key_digest(buf, sizeof buf, NULL, 100), "digest NULL key"},
      {rcache_key_digest(buf, sizeof buf, "", 100), "digest empty key"},
      {rcache_key_digest(NULL, 3, "k", 100), "digest NULL buf"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CHECK_MSG(cases[i].got == -1, "%s: got %d", cases[i].what, cases[i].got);
  }
  /* on -1 the buffer holds "" */
  memcpy(buf, "stale", 6);
  CHECK_EQ(rcache_key_user(buf, sizeof buf, "a:b"), -1);
  CHECK_STR(buf, "");
  memcpy(buf, "stale", 6);
  CHECK_EQ(rcache_key_build(buf, sizeof buf, 3, with_null), -1);
  CHECK_STR(buf, "");
  /* measuring an invalid key is invalid too */
  CHECK_EQ(rcache_key_user(NULL, 0, "1:2"), -1);
}

/* The seed's bug: "user:12*" matched user 123. user_all(12) must be a prefix of user 12's
 * sub-keys only. */
static bool starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void no_user_overlap(void) {
  char all12[32], k[64];
  rcache_key_user_all(all12, sizeof all12, "12");
  rcache_key_user_credits(k, sizeof k, "12");
  CHECK(starts_with(k, all12));
  rcache_key_user(k, sizeof k, "12");
  CHECK(!starts_with(k, all12)); /* "user:12" itself: rcache_invalidate_user deletes it apart */
  const char *others[] = {"123", "1", "120", "12x", "012"};
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
    rcache_key_user(k, sizeof k, others[i]);
    CHECK_MSG(!starts_with(k, all12), "user %s", others[i]);
    rcache_key_user_credits(k, sizeof k, others[i]);
    CHECK_MSG(!starts_with(k, all12), "user %s credits", others[i]);
  }
  /* and the workflow prefix covers workflows only */
  char wf[16];
  rcache_key_all_workflows(wf, sizeof wf);
  rcache_key_workflow_definition(k, sizeof k, "7");
  CHECK(starts_with(k, wf));
  rcache_key_user(k, sizeof k, "workflow");
  CHECK(!starts_with(k, wf));
}

static void digest(void) {
  char buf[2048];
  /* short keys are copied unchanged, whatever max_len */
  CHECK_EQ(rcache_key_digest(buf, sizeof buf, "user:12", 1024), 7);
  CHECK_STR(buf, "user:12");
  CHECK_EQ(rcache_key_digest(buf, sizeof buf, "user:12", 7), 7);
  CHECK_EQ(rcache_key_digest(buf, sizeof buf, "user:12", 3),
           -1); /* too long, no room for a digest */
  /* a 200-byte key, max 100: 28 bytes of head + ":sha256:" + sha256 of the whole key
   * (expected value from Python's hashlib.sha256(b"x" * 200)) */
  char key[201];
  memset(key, 'x', 200);
  key[200] = '\0';
  CHECK_EQ(rcache_key_digest(buf, sizeof buf, key, 100), 100);
  CHECK_EQ(strlen(buf), 100);
  CHECK_STR(buf, "xxxxxxxxxxxxxxxxxxxxxxxxxxxx:sha256:"
                 "aa20c23e3201834050679e1d88941b9a6fed0557c9a705cb2c315e2e63fd486d");
  /* exactly the suffix: no head left */
  CHECK_EQ(rcache_key_digest(buf, sizeof buf, key, 72), 72);
  CHECK_STR(buf, ":sha256:aa20c23e3201834050679e1d88941b9a6fed0557c9a705cb2c315e2e63fd486d");
  CHECK_EQ(rcache_key_digest(buf, sizeof buf, key, 71), -1);
  /* the head is kept, so a user prefix still matches: hashlib.sha256(b"user:12:" + b"y"*300) */
  char ukey[309];
  memcpy(ukey, "user:12:", 8);
  memset(ukey + 8, 'y', 300);
  ukey[308] = '\0';
  CHECK_EQ(rcache_key_digest(buf, sizeof buf, ukey, 90), 90);
  CHECK_STR(buf, "user:12:yyyyyyyyyy:sha256:"
                 "fa939e2e8121f2ffe4c158d0f750a387d2e2aa81945b9122bbb7494b4f68588d");
  /* one byte different anywhere: another name */
  char other[2048];
  ukey[300] = 'z';
  CHECK_EQ(rcache_key_digest(other, sizeof other, ukey, 90), 90);
  CHECK(strcmp(buf, other) != 0);
  CHECK(strncmp(buf, other, 18) == 0);
  /* snprintf semantics here too */
  char small[10];
  CHECK_EQ(rcache_key_digest(small, sizeof small, key, 100), 100);
  CHECK_STR(small, "xxxxxxxxx");
  CHECK_EQ(rcache_key_digest(NULL, 0, key, 100), 100);
  CHECK_EQ(rcache_key_digest(NULL, 0, key, 500), 200);
}

int main(void) {
  table();
  snprintf_semantics();
  invalid_input();
  no_user_overlap();
  digest();
  return test_report("test_keys");
}
