/* SPDX-License-Identifier: BSD-3-Clause */
/* Tags: rcache_set_tagged, rcache_invalidate_tag, rcache_clear, rcache_get_or_set_tagged. */
#include <stdio.h>
#include <string.h>

#include "contract.h"
#include "rcache/json.h"

static bool tagged(rcache *c, const char *key, const char *v, const char *t1, const char *t2) {
  const char *tags[] = {t1, t2};
  size_t n = t2 ? 2 : (t1 ? 1 : 0);
  return rcache_set_tagged(c, key, v, strlen(v), 0, tags, n) == RCACHE_OK;
}

static bool gone(rcache *c, const char *key) {
  rcache_value v;
  return rcache_get(c, key, &v) == RCACHE_MISS && v.data == NULL;
}

CONTRACT_TEST(tags_invalidate_only_what_was_tagged) {
  CHECK(tagged(e->c, "user:1:profile", "p1", "user:1", NULL));
  CHECK(tagged(e->c, "user:1:credits", "c1", "user:1", "billing"));
  CHECK(tagged(e->c, "user:2:profile", "p2", "user:2", NULL));
  CHECK_EQ(rcache_set(e->c, "plain", "x", 1, 0), RCACHE_OK);
  CHECK(ct_value_is(e->c, "user:1:profile", "p1", 2)); /* the header is never seen */
  CHECK_EQ(rcache_invalidate_tag(e->c, "user:1"), RCACHE_OK);
  CHECK(gone(e->c, "user:1:profile"));
  CHECK(gone(e->c, "user:1:credits"));
  CHECK(ct_value_is(e->c, "user:2:profile", "p2", 2));
  CHECK(ct_value_is(e->c, "plain", "x", 1));
  /* invalidated twice: still fine, and a value written after the first stays until the second */
  CHECK(tagged(e->c, "user:1:profile", "p1b", "user:1", NULL));
  CHECK(ct_value_is(e->c, "user:1:profile", "p1b", 3));
  CHECK_EQ(rcache_invalidate_tag(e->c, "user:1"), RCACHE_OK);
  CHECK_EQ(rcache_invalidate_tag(e->c, "user:1"), RCACHE_OK);
  CHECK(gone(e->c, "user:1:profile"));
  /* an untouched tag of a multi-tag key also invalidates it */
  CHECK(tagged(e->c, "user:1:credits", "c2", "user:1", "billing"));
  CHECK_EQ(rcache_invalidate_tag(e->c, "billing"), RCACHE_OK);
  CHECK(gone(e->c, "user:1:credits"));
}

CONTRACT_TEST(tags_reset_without_or_with_other_tags) {
  CHECK(tagged(e->c, "k", "v1", "a", NULL));
  CHECK_EQ(rcache_set(e->c, "k", "plain", 5, 0), RCACHE_OK); /* re-set untagged */
  CHECK_EQ(rcache_invalidate_tag(e->c, "a"), RCACHE_OK);
  CHECK(ct_value_is(e->c, "k", "plain", 5));
  CHECK(tagged(e->c, "k", "v2", "b", NULL)); /* re-set with another tag */
  CHECK_EQ(rcache_invalidate_tag(e->c, "a"), RCACHE_OK);
  CHECK(ct_value_is(e->c, "k", "v2", 2));
  CHECK_EQ(rcache_invalidate_tag(e->c, "b"), RCACHE_OK);
  CHECK(gone(e->c, "k"));
}

CONTRACT_TEST(tags_any_bytes) {
  const char *odd[] = {"*", "user:*", "a b", "[x]?", "\\", "{slot}", "\xc3\xa9t\xc3\xa9"};
  for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%zu", i);
    CHECK(tagged(e->c, key, "v", odd[i], NULL));
  }
  CHECK_EQ(rcache_invalidate_tag(e->c, "user:*"), RCACHE_OK); /* literal, not a glob */
  for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%zu", i);
    CHECK_MSG(i == 1 ? gone(e->c, key) : ct_value_is(e->c, key, "v", 1), "tag %zu", i);
  }
  CHECK_EQ(rcache_invalidate_tag(e->c, "*"), RCACHE_OK);
  CHECK(gone(e->c, "k0"));
  CHECK(ct_value_is(e->c, "k2", "v", 1));
}

CONTRACT_ANY_TEST(tags_bad_arguments) {
  const char *empty[] = {""}, *null[] = {NULL};
  CHECK_EQ(rcache_set_tagged(e->c, "k", "v", 1, 0, empty, 1), RCACHE_EINVAL);
  CHECK_EQ(rcache_set_tagged(e->c, "k", "v", 1, 0, null, 1), RCACHE_EINVAL);
  CHECK_EQ(rcache_set_tagged(e->c, "k", "v", 1, 0, NULL, 1), RCACHE_EINVAL);
  CHECK_EQ(rcache_set_tagged(e->c, "k", "v", 1, -1, NULL, 0), RCACHE_EINVAL);
  CHECK_EQ(rcache_set_tagged(e->c, "", "v", 1, 0, NULL, 0), RCACHE_EINVAL);
  CHECK_EQ(rcache_set_tagged(NULL, "k", "v", 1, 0, NULL, 0), RCACHE_EINVAL);
  CHECK_EQ(rcache_invalidate_tag(e->c, ""), RCACHE_EINVAL);
  CHECK_EQ(rcache_invalidate_tag(e->c, NULL), RCACHE_EINVAL);
  CHECK_EQ(rcache_invalidate_tag(NULL, "t"), RCACHE_EINVAL);
  CHECK_EQ(rcache_clear(NULL), RCACHE_EINVAL);
  const char *many[RCACHE_TAGS_MAX + 1];
  char names[RCACHE_TAGS_MAX + 1][8];
  for (int i = 0; i <= RCACHE_TAGS_MAX; i++) {
    snprintf(names[i], sizeof names[i], "t%d", i);
    many[i] = names[i];
  }
  CHECK_EQ(rcache_set_tagged(e->c, "k", "v", 1, 0, many, RCACHE_TAGS_MAX + 1), RCACHE_ETOOBIG);
  /* a plain value that would read as a tagged one is refused */
  CHECK_EQ(rcache_set(e->c, "k", "\xffRC\x01zzzz", 8, 0), RCACHE_EINVAL);
}

CONTRACT_TEST(tags_many_per_key) {
  const char *many[RCACHE_TAGS_MAX];
  char names[RCACHE_TAGS_MAX][8];
  for (int i = 0; i < RCACHE_TAGS_MAX; i++) {
    snprintf(names[i], sizeof names[i], "t%d", i);
    many[i] = names[i];
  }
  CHECK_EQ(rcache_set_tagged(e->c, "k", "v", 1, 0, many, RCACHE_TAGS_MAX), RCACHE_OK);
  CHECK(ct_value_is(e->c, "k", "v", 1));
  CHECK_EQ(rcache_invalidate_tag(e->c, "t31"), RCACHE_OK);
  CHECK(gone(e->c, "k"));
}

CONTRACT_TEST(tags_with_key_operations) {
  const char *t[] = {"t"};
  CHECK_EQ(rcache_set_tagged(e->c, "a:1", "v", 1, 100, t, 1), RCACHE_OK);
  CHECK(ct_exists(e->c, "a:1"));
  int64_t ttl = ct_ttl(e->c, "a:1");
  CHECK_MSG(ttl > 0 && ttl <= 100 + ct_stale_s(), "ttl %lld", (long long)ttl);
  CHECK_EQ(rcache_delete(e->c, "a:1"), RCACHE_OK);
  CHECK(gone(e->c, "a:1"));
  CHECK(tagged(e->c, "a:2", "v", "t", NULL));
  uint64_t n = 0;
  CHECK_EQ(rcache_delete_prefix(e->c, "a:", &n), RCACHE_OK);
  CHECK_EQ(n, 1);
  CHECK(gone(e->c, "a:2"));
  /* a read of an invalidated entry unlinks it: exists turns false */
  CHECK(tagged(e->c, "a:3", "v", "t", NULL));
  CHECK_EQ(rcache_invalidate_tag(e->c, "t"), RCACHE_OK);
  CHECK(gone(e->c, "a:3"));
  CHECK(!ct_exists(e->c, "a:3"));
  /* flush removes tag state too; later tagged writes and invalidations still work */
  CHECK(tagged(e->c, "a:4", "v", "t", NULL));
  CHECK_EQ(rcache_flush(e->c), RCACHE_OK);
  CHECK(gone(e->c, "a:4"));
  CHECK(tagged(e->c, "a:4", "v", "t", NULL));
  CHECK(ct_value_is(e->c, "a:4", "v", 1));
  CHECK_EQ(rcache_invalidate_tag(e->c, "t"), RCACHE_OK);
  CHECK(gone(e->c, "a:4"));
}

CONTRACT_TEST(tags_clear) {
  CHECK(tagged(e->c, "x", "1", "t", NULL));
  CHECK(tagged(e->c, "y", "2", NULL, NULL));
  CHECK_EQ(rcache_set(e->c, "plain", "p", 1, 0), RCACHE_OK);
  CHECK_EQ(rcache_clear(e->c), RCACHE_OK);
  CHECK(gone(e->c, "x"));
  CHECK(gone(e->c, "y"));
  CHECK(ct_value_is(e->c, "plain", "p", 1)); /* untagged values: rcache_flush */
  CHECK(tagged(e->c, "x", "3", "t", NULL));
  CHECK(ct_value_is(e->c, "x", "3", 1));
}

CONTRACT_TEST(tags_get_many_and_typed) {
  CHECK(tagged(e->c, "a", "1", "t", NULL));
  CHECK(tagged(e->c, "b", "2", "u", NULL));
  const char *keys[] = {"a", "b"};
  rcache_value v[2];
  rcache_status st[2];
  CHECK_EQ(rcache_get_many(e->c, keys, 2, v, st), RCACHE_OK);
  CHECK(st[0] == RCACHE_OK && v[0].len == 1 && v[0].data[0] == '1');
  CHECK(st[1] == RCACHE_OK && v[1].len == 1 && v[1].data[0] == '2');
  rcache_value_free(&v[0]);
  rcache_value_free(&v[1]);
  int64_t i = 0;
  CHECK_EQ(rcache_get_i64(e->c, "a", &i), RCACHE_OK);
  CHECK_EQ(i, 1);
  CHECK_EQ(rcache_invalidate_tag(e->c, "t"), RCACHE_OK);
  CHECK_EQ(rcache_get_many(e->c, keys, 2, v, st), RCACHE_OK);
  CHECK(st[0] == RCACHE_MISS && v[0].data == NULL);
  CHECK(st[1] == RCACHE_OK);
  rcache_value_free(&v[1]);
  CHECK_EQ(rcache_get_i64(e->c, "a", &i), RCACHE_MISS);
}

typedef struct ld {
  int calls;
  const char *value;
  const char *add; /* a tag the loader adds, or NULL */
} ld;

static rcache_status load_tagged(void *ud, rcache_value *out, rcache_tags *tags) {
  ld *l = ud;
  l->calls++;
  if (l->add && rcache_tags_add(tags, l->add) != RCACHE_OK) return RCACHE_ENOMEM;
  out->len = strlen(l->value);
  out->data = malloc(out->len + 1);
  if (!out->data) return RCACHE_ENOMEM;
  memcpy(out->data, l->value, out->len + 1);
  return RCACHE_OK;
}

static bool gos(rcache *c, const char *key, const char *tag, ld *l, const char *want) {
  const char *tags[] = {tag};
  rcache_value v;
  rcache_status s = rcache_get_or_set_tagged(c, key, 0, tags, tag ? 1 : 0, load_tagged, l, &v);
  bool ok = s == RCACHE_OK && v.len == strlen(want) && memcmp(v.data, want, v.len) == 0;
  rcache_value_free(&v);
  return ok;
}

CONTRACT_TEST(tags_get_or_set) {
  ld l = {0, "v1", NULL};
  CHECK(gos(e->c, "k", "t", &l, "v1"));
  CHECK(gos(e->c, "k", "t", &l, "v1"));
  CHECK_EQ(l.calls, 1);
  CHECK(ct_value_is(e->c, "k", "v1", 2));
  CHECK_EQ(rcache_invalidate_tag(e->c, "t"), RCACHE_OK);
  l.value = "v2";
  CHECK(gos(e->c, "k", "t", &l, "v2"));
  CHECK_EQ(l.calls, 2);
  /* tags the loader decides */
  ld a = {0, "w", "owner:7"};
  CHECK(gos(e->c, "j", NULL, &a, "w"));
  CHECK(ct_value_is(e->c, "j", "w", 1));
  CHECK_EQ(rcache_invalidate_tag(e->c, "owner:7"), RCACHE_OK);
  CHECK(gone(e->c, "j"));
  /* the plain get_or_set reads a tagged value's payload */
  CHECK(gos(e->c, "j", NULL, &a, "w"));
  CHECK_EQ(a.calls, 2);
}

CONTRACT_ANY_TEST(tags_get_or_set_bad_tags) {
  ld l = {0, "v", NULL};
  const char *empty[] = {""};
  rcache_value v;
  CHECK_EQ(rcache_get_or_set_tagged(e->c, "k", 0, empty, 1, load_tagged, &l, &v), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_or_set_tagged(e->c, "k", 0, NULL, 0, NULL, &l, &v), RCACHE_EINVAL);
  CHECK_EQ(l.calls, 0);
  l.add = "";
  CHECK(rcache_get_or_set_tagged(e->c, "k2", 0, NULL, 0, load_tagged, &l, &v) != RCACHE_OK);
}

CONTRACT_NONE_TEST(tags_none) {
  const char *t[] = {"t"};
  CHECK_EQ(rcache_set_tagged(e->c, "k", "v", 1, 0, t, 1), RCACHE_OK);
  CHECK(gone(e->c, "k"));
  CHECK_EQ(rcache_invalidate_tag(e->c, "t"), RCACHE_OK);
  CHECK_EQ(rcache_clear(e->c), RCACHE_OK);
  ld l = {0, "v", NULL};
  CHECK(gos(e->c, "k", "t", &l, "v"));
  CHECK(gos(e->c, "k", "t", &l, "v"));
  CHECK_EQ(l.calls, 2);
}
