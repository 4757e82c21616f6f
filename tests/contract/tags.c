/* SPDX-License-Identifier: BSD-3-Clause */
/* Tags: rcache_set_tagged, rcache_invalidate_tag, rcache_clear, rcache_get_or_set_tagged. */
#include <stdio.h>
#include <stdlib.h>
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

/* Polls rcache_get (near cache included, unlike exists) until key is a miss, for at most
 * timeout_ms: another handle's near cache learns of an invalidation by tracking. */
static bool wait_gone(rcache *c, const char *key, int timeout_ms) {
  for (int64_t until = ct_now_ms() + timeout_ms;; ct_sleep_ms(20)) {
    rcache_value v;
    rcache_status s = rcache_get(c, key, &v);
    rcache_value_free(&v);
    if (s == RCACHE_MISS) return true;
    if (ct_now_ms() > until) return false;
  }
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
}

/* Plain values that look like tagged ones (the frame's magic \xffRC\x01, escaped ones with
 * more \xff in front, a whole well-formed frame) are stored escaped and read back as written,
 * through every plain write and read. */
static const struct {
  const char *d;
  size_t len;
} lookalike[] = {
    {"\xffRC\x01", 4},
    {"\xffRC\x01zzzz", 8},
    {"\xff\xffRC\x01", 5},
    {"\xff\xff\xffRC\x01x", 7},
    {"\xffRC", 3},
    {"\xff", 1},
    {"\xff\xff", 2},
    {"\xffRC\x02", 4},
    /* a frame of one tag "t" at version 1, clear version 1, payload "p" */
    {"\xffRC\x01\x01\0\0\0\0\0\0\0\x01\0\x01t\0\0\0\0\0\0\0\x01p", 25},
};
#define NLOOK (sizeof lookalike / sizeof *lookalike)

static rcache_status load_lookalike(void *ud, rcache_value *out) {
  size_t i = *(size_t *)ud;
  out->data = malloc(lookalike[i].len + 1);
  if (!out->data) return RCACHE_ENOMEM;
  memcpy(out->data, lookalike[i].d, lookalike[i].len);
  out->data[lookalike[i].len] = '\0';
  out->len = lookalike[i].len;
  return RCACHE_OK;
}

/* A batch mixing tagged values (several tag sets), plain ones and absent keys: each answers
 * what rcache_get answers, before and after an invalidation. */
CONTRACT_TEST(tags_get_many_mixed) {
  const char *keys[8] = {"t1", "t2", "t3", "p1", "absent", "t4", "p2", "t5"};
  CHECK(tagged(e->c, "t1", "v1", "a", NULL));
  CHECK(tagged(e->c, "t2", "v2", "a", "b"));
  CHECK(tagged(e->c, "t3", "v3", "b", NULL));
  CHECK_EQ(rcache_set(e->c, "p1", "plain", 5, 0), RCACHE_OK);
  CHECK(tagged(e->c, "t4", "v4", NULL, NULL));
  CHECK_EQ(rcache_set(e->c, "p2", "\xffRC\x01", 4, 0), RCACHE_OK);
  CHECK(tagged(e->c, "t5", "v5", "c", "a"));
  for (int round = 0; round < 3; round++) {
    /* round 1: after invalidating b; round 2: after rcache_clear */
    rcache_value v[8];
    rcache_status st[8];
    CHECK_EQ(rcache_get_many(e->c, keys, 8, v, st), RCACHE_OK);
    for (int i = 0; i < 8; i++) {
      rcache_value one;
      rcache_status s1 = rcache_get(e->c, keys[i], &one);
      CHECK_MSG(st[i] == s1 && v[i].len == one.len &&
                    (v[i].len == 0 || memcmp(v[i].data, one.data, one.len) == 0),
                "round %d key %s: get_many %d, get %d", round, keys[i], (int)st[i], (int)s1);
      rcache_value_free(&one);
      rcache_value_free(&v[i]);
    }
    CHECK_EQ(st[0], round == 2 ? RCACHE_MISS : RCACHE_OK);
    CHECK_EQ(st[1], round >= 1 ? RCACHE_MISS : RCACHE_OK);
    CHECK_EQ(st[3], round == 2 ? RCACHE_MISS : RCACHE_OK); /* plain: rcache_clear covers it */
    CHECK_EQ(st[4], RCACHE_MISS);
    CHECK_EQ(st[6], round == 2 ? RCACHE_MISS : RCACHE_OK);
    if (round == 0) CHECK_EQ(rcache_invalidate_tag(e->c, "b"), RCACHE_OK);
    if (round == 1) CHECK_EQ(rcache_clear(e->c), RCACHE_OK);
  }
  /* a version key that holds something else fails only the values tagged with it */
  CHECK(tagged(e->c, "x1", "1", "bad", NULL));
  CHECK(tagged(e->c, "x2", "2", "fine", NULL));
  CHECK(tagged(e->c, "x3", "3", "fine", "bad"));
  CHECK_EQ(rcache_set(e->c, "__rc:tag:bad", "zz", 2, 0), RCACHE_OK);
  const char *xk[3] = {"x1", "x2", "x3"};
  rcache_value xv[3];
  rcache_status xs[3];
  CHECK_EQ(rcache_get_many(e->c, xk, 3, xv, xs), RCACHE_OK);
  CHECK_EQ(xs[0], RCACHE_ETYPE);
  CHECK(xs[1] == RCACHE_OK && xv[1].len == 1 && xv[1].data[0] == '2');
  CHECK_EQ(xs[2], RCACHE_ETYPE);
  for (int i = 0; i < 3; i++)
    rcache_value_free(&xv[i]);
}

CONTRACT_TEST(tags_plain_values_like_frames) {
  const char *keys[NLOOK];
  char names[NLOOK][16];
  rcache_value vals[NLOOK];
  for (size_t i = 0; i < NLOOK; i++) {
    snprintf(names[i], sizeof names[i], "m%zu", i);
    keys[i] = names[i];
    vals[i] = (rcache_value){(char *)lookalike[i].d, lookalike[i].len};
    CHECK_EQ(rcache_set(e->c, keys[i], lookalike[i].d, lookalike[i].len, 0), RCACHE_OK);
    CHECK_MSG(ct_value_is(e->c, keys[i], lookalike[i].d, lookalike[i].len), "value %zu", i);
  }
  CHECK_EQ(rcache_invalidate_tag(e->c, "t"), RCACHE_OK); /* plain values have no tags */
  CHECK_EQ(rcache_clear(e->c), RCACHE_OK);
  CHECK_EQ(rcache_set_many(e->c, keys, vals, NLOOK, 0), RCACHE_OK);
  rcache_value got[NLOOK];
  rcache_status st[NLOOK];
  CHECK_EQ(rcache_get_many(e->c, keys, NLOOK, got, st), RCACHE_OK);
  for (size_t i = 0; i < NLOOK; i++) {
    CHECK_MSG(st[i] == RCACHE_OK && got[i].len == lookalike[i].len &&
                  memcmp(got[i].data, lookalike[i].d, got[i].len) == 0 &&
                  got[i].data[got[i].len] == '\0',
              "get_many %zu: status %d", i, (int)st[i]);
    rcache_value_free(&got[i]);
    CHECK_MSG(ct_value_is(e->c, keys[i], lookalike[i].d, lookalike[i].len), "value %zu", i);
  }
  /* get_or_set: the loader's bytes, as they are, to the caller that loaded and from the cache */
  for (size_t i = 0; i < NLOOK; i++) {
    char key[16];
    snprintf(key, sizeof key, "g%zu", i);
    for (int round = 0; round < 2; round++) {
      rcache_value v;
      CHECK_EQ(rcache_get_or_set(e->c, key, 0, load_lookalike, &i, &v), RCACHE_OK);
      CHECK_MSG(v.len == lookalike[i].len && memcmp(v.data, lookalike[i].d, v.len) == 0,
                "get_or_set %zu round %d", i, round);
      rcache_value_free(&v);
    }
  }
  /* a tagged value whose payload looks like a frame */
  const char *t[] = {"t"};
  const size_t f = NLOOK - 1;
  CHECK_EQ(rcache_set_tagged(e->c, "tf", lookalike[f].d, lookalike[f].len, 0, t, 1), RCACHE_OK);
  CHECK(ct_value_is(e->c, "tf", lookalike[f].d, lookalike[f].len));
  char *str = NULL;
  CHECK_EQ(rcache_set_str(e->c, "s", "\xffRC\x01", 0), RCACHE_OK);
  CHECK_EQ(rcache_get_str(e->c, "s", &str), RCACHE_OK);
  CHECK(str && strcmp(str, "\xffRC\x01") == 0);
  free(str);
}

/* rcache_get_tagged answers as rcache_get whatever tags are declared (right, too few, too
 * many, others): they only decide what is read with the value. */
static bool get_tagged_is(rcache *c, const char *key, const char *t1, const char *t2,
                          const char *want) {
  const char *tags[] = {t1, t2};
  rcache_value v;
  rcache_status s = rcache_get_tagged(c, key, tags, t2 ? 2 : 1, &v);
  bool ok = want ? s == RCACHE_OK && v.len == strlen(want) && memcmp(v.data, want, v.len) == 0
                 : s == RCACHE_MISS && v.data == NULL;
  if (!ok) fprintf(stderr, "  get_tagged %s: status %d\n", key, (int)s);
  rcache_value_free(&v);
  return ok;
}

CONTRACT_TEST(tags_get_tagged) {
  CHECK(tagged(e->c, "k", "v1", "a", "b"));
  CHECK(get_tagged_is(e->c, "k", "a", "b", "v1"));
  CHECK(get_tagged_is(e->c, "k", "b", "a", "v1"));  /* any order */
  CHECK(get_tagged_is(e->c, "k", "a", NULL, "v1")); /* b not declared */
  CHECK(get_tagged_is(e->c, "k", "a", "zz", "v1")); /* zz: not the value's */
  CHECK(get_tagged_is(e->c, "k", "zz", NULL, "v1"));
  CHECK(get_tagged_is(e->c, "absent", "a", NULL, NULL));
  CHECK_EQ(rcache_set(e->c, "plain", "p", 1, 0), RCACHE_OK);
  CHECK(get_tagged_is(e->c, "plain", "a", NULL, "p"));
  CHECK_EQ(rcache_set(e->c, "look", "\xffRC\x01", 4, 0), RCACHE_OK);
  CHECK(get_tagged_is(e->c, "look", "a", NULL, "\xffRC\x01"));
  CHECK_EQ(rcache_invalidate_tag(e->c, "b"), RCACHE_OK);
  CHECK(get_tagged_is(e->c, "k", "a", "b", NULL));
  CHECK(tagged(e->c, "k", "v2", "a", "b"));
  CHECK_EQ(rcache_invalidate_tag(e->c, "b"), RCACHE_OK);
  CHECK(get_tagged_is(e->c, "k", "a", NULL, NULL)); /* the undeclared tag is checked too */
  CHECK(tagged(e->c, "k", "v3", "a", "b"));
  CHECK_EQ(rcache_clear(e->c), RCACHE_OK);
  CHECK(get_tagged_is(e->c, "k", "a", "b", NULL));
  CHECK(get_tagged_is(e->c, "plain", "a", NULL, NULL)); /* plain values too */
  /* a version key that holds something else: an error, never a value, on every path */
  CHECK(tagged(e->c, "g", "v", "g", NULL));
  CHECK_EQ(rcache_set(e->c, "__rc:tag:g", "zz", 2, 0), RCACHE_OK);
  rcache_value v;
  const char *g[] = {"g"};
  CHECK_EQ(rcache_get_tagged(e->c, "g", g, 1, &v), RCACHE_ETYPE);
  CHECK(v.data == NULL);
  CHECK_EQ(rcache_get(e->c, "g", &v), RCACHE_ETYPE);
  CHECK(v.data == NULL);
}

CONTRACT_ANY_TEST(tags_get_tagged_bad_arguments) {
  const char *empty[] = {""}, *null[] = {NULL}, *one[] = {"t"};
  rcache_value v = {(char *)"x", 1};
  CHECK_EQ(rcache_get_tagged(e->c, "k", empty, 1, &v), RCACHE_EINVAL);
  CHECK(v.data == NULL);
  CHECK_EQ(rcache_get_tagged(e->c, "k", null, 1, &v), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_tagged(e->c, "k", NULL, 1, &v), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_tagged(e->c, "k", one, 1, NULL), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_tagged(e->c, "", one, 1, &v), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_tagged(NULL, "k", one, 1, &v), RCACHE_EINVAL);
  const char *many[RCACHE_TAGS_MAX + 1];
  for (int i = 0; i <= RCACHE_TAGS_MAX; i++)
    many[i] = "t";
  CHECK_EQ(rcache_get_tagged(e->c, "k", many, RCACHE_TAGS_MAX + 1, &v), RCACHE_ETOOBIG);
  CHECK_EQ(rcache_get_tagged(e->c, "k", NULL, 0, &v), RCACHE_MISS); /* no tags: rcache_get */
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
  /* an invalidated entry is absent for exists and ttl too, before any read of it */
  CHECK_EQ(rcache_set_tagged(e->c, "a:3", "v", 1, 100, t, 1), RCACHE_OK);
  CHECK_EQ(rcache_invalidate_tag(e->c, "t"), RCACHE_OK);
  CHECK(ct_absent(e->c, "a:3"));
  CHECK_EQ(ct_ttl(e->c, "a:3"), -2);
  CHECK(gone(e->c, "a:3"));
  CHECK(!ct_exists(e->c, "a:3"));
  /* plain values and plain keys of other types keep their answers */
  CHECK_EQ(rcache_set(e->c, "a:p", "\xffRC\x01", 4, 100), RCACHE_OK); /* stored escaped */
  CHECK(ct_exists(e->c, "a:p"));
  ttl = ct_ttl(e->c, "a:p");
  CHECK_MSG(ttl > 0 && ttl <= 100, "ttl %lld", (long long)ttl);
  CHECK_EQ(ct_ttl(e->c, "a:none"), -2);
  /* flush removes tag state too; later tagged writes and invalidations still work */
  CHECK(tagged(e->c, "a:4", "v", "t", NULL));
  CHECK_EQ(rcache_flush(e->c), RCACHE_OK);
  CHECK(gone(e->c, "a:4"));
  CHECK(tagged(e->c, "a:4", "v", "t", NULL));
  CHECK(ct_value_is(e->c, "a:4", "v", 1));
  CHECK_EQ(rcache_invalidate_tag(e->c, "t"), RCACHE_OK);
  CHECK(gone(e->c, "a:4"));
}

static rcache_status load_q(void *ud, rcache_value *out) {
  (void)ud;
  out->data = strdup("q");
  out->len = 1;
  return out->data ? RCACHE_OK : RCACHE_ENOMEM;
}

/* The values rcache_clear must remove, written by every kind of write. */
static bool write_all(rcache *c, const char *tag_value) {
  const char *t[] = {"t"};
  const char *mk[] = {"m1", "m2"};
  rcache_value mv[] = {{(char *)"m", 1}, {(char *)"\xffRC\x01", 4}};
  rcache_value q;
  bool ok = rcache_set_tagged(c, "x", tag_value, strlen(tag_value), 100, t, 1) == RCACHE_OK &&
            tagged(c, "y", "2", NULL, NULL) && rcache_set(c, "plain", "p", 1, 0) == RCACHE_OK &&
            rcache_set_many(c, mk, mv, 2, 0) == RCACHE_OK &&
            rcache_set_str(c, "str", "s", 0) == RCACHE_OK &&
            rcache_set_double(c, "f", 2.5, 0) == RCACHE_OK &&
            rcache_get_or_set(c, "loaded", 0, load_q, NULL, &q) == RCACHE_OK;
  rcache_value_free(&q);
  return ok;
}

static const char *const ALL[] = {"x", "y", "plain", "m1", "m2", "str", "f", "loaded"};
#define NALL (sizeof ALL / sizeof *ALL)

/* Every key of ALL is a miss for c (waiting up to timeout_ms for a near cache's tracking),
 * and get_many agrees. */
static bool all_gone(rcache *c, int timeout_ms) {
  for (size_t i = 0; i < NALL; i++)
    if (!wait_gone(c, ALL[i], timeout_ms)) return false;
  rcache_value v[NALL];
  rcache_status st[NALL];
  if (rcache_get_many(c, (const char **)ALL, NALL, v, st) != RCACHE_OK) return false;
  bool ok = true;
  for (size_t i = 0; i < NALL; i++) {
    ok &= st[i] == RCACHE_MISS;
    rcache_value_free(&v[i]);
  }
  return ok;
}

/* Every key of ALL holds what write_all wrote, for c. */
static bool all_there(rcache *c, const char *tag_value) {
  const char *want[] = {tag_value, "2", "p", "m", "\xffRC\x01", "s", "2.5", "q"};
  for (size_t i = 0; i < NALL; i++)
    if (!ct_value_is(c, ALL[i], want[i], strlen(want[i]))) return false;
  rcache_value v[NALL];
  rcache_status st[NALL];
  if (rcache_get_many(c, (const char **)ALL, NALL, v, st) != RCACHE_OK) return false;
  bool ok = true;
  for (size_t i = 0; i < NALL; i++) {
    ok &= st[i] == RCACHE_OK && v[i].len == strlen(want[i]) &&
          memcmp(v[i].data, want[i], v[i].len) == 0;
    rcache_value_free(&v[i]);
  }
  return ok;
}

/* rcache_clear covers everything written through the namespace, by every kind of write, for
 * every reader: this handle, another handle (its near cache once tracking tells it), get_many,
 * exists and ttl. Counters (decimal integers, which INCR must take) are not covered. */
CONTRACT_TEST(tags_clear) {
  rcache *other = ct_shared(e) ? ct_open(e, NULL) : NULL;
  rcache *rd[] = {e->c, other};
  size_t nrd = other ? 2 : 1;
  int64_t n;
  CHECK(write_all(e->c, "1"));
  CHECK_EQ(rcache_incr(e->c, "hits", 5, &n), RCACHE_OK);
  CHECK_EQ(rcache_set_i64(e->c, "i64", 42, 0), RCACHE_OK);
  for (size_t i = 0; i < nrd; i++) /* read first: near caches hold them */
    CHECK_MSG(all_there(rd[i], "1"), "handle %zu", i);
  CHECK_EQ(rcache_clear(e->c), RCACHE_OK);
  for (size_t i = 0; i < nrd; i++) {
    if (i == 0 || !ct_near()) { /* another near cache: once the tracking message is in */
      CHECK_MSG(ct_absent(rd[i], "x") && ct_ttl(rd[i], "x") == -2, "handle %zu", i);
      CHECK_MSG(ct_absent(rd[i], "plain") && ct_ttl(rd[i], "plain") == -2, "handle %zu", i);
      CHECK_MSG(gone(rd[i], "x") && gone(rd[i], "plain") && gone(rd[i], "loaded"), "handle %zu", i);
    }
    CHECK_MSG(all_gone(rd[i], 5000), "handle %zu", i);
    CHECK_MSG(ct_value_is(rd[i], "hits", "5", 1), "handle %zu", i); /* counters stay */
    CHECK_MSG(ct_value_is(rd[i], "i64", "42", 2), "handle %zu", i);
  }
  CHECK_EQ(rcache_incr(e->c, "hits", 1, &n), RCACHE_OK);
  CHECK_EQ(n, 6);
  /* written after the clear, by either handle: visible to every reader */
  CHECK(write_all(e->c, "3"));
  for (size_t i = 0; i < nrd; i++)
    CHECK_MSG(all_there(rd[i], "3"), "handle %zu", i);
  if (other) {
    CHECK(tagged(other, "z", "4", NULL, NULL));
    CHECK_EQ(rcache_set(other, "w", "5", 1, 0), RCACHE_OK);
    CHECK_EQ(rcache_set(other, "w2", "five", 4, 0), RCACHE_OK);
    for (size_t i = 0; i < nrd; i++) {
      CHECK_MSG(ct_value_is(rd[i], "z", "4", 1), "handle %zu", i);
      CHECK_MSG(ct_value_is(rd[i], "w2", "five", 4), "handle %zu", i);
    }
  }
  /* cleared twice, by either handle: what was written between is gone, after is visible */
  CHECK_EQ(rcache_clear(other ? other : e->c), RCACHE_OK);
  CHECK_EQ(rcache_clear(e->c), RCACHE_OK);
  CHECK(ct_absent(e->c, "x"));
  CHECK(gone(e->c, "plain"));
  CHECK(other == NULL || (gone(e->c, "z") && gone(e->c, "w2")));
  for (size_t i = 0; i < nrd; i++)
    CHECK_MSG(all_gone(rd[i], 5000), "handle %zu", i);
  CHECK(write_all(other ? other : e->c, "5"));
  for (size_t i = 0; i < nrd; i++)
    CHECK_MSG(all_there(rd[i], "5"), "handle %zu", i);
  CHECK(ct_value_is(e->c, "hits", "6", 1));
  /* a deletion by pattern or prefix leaves the clear key: what it covers stays covered. In a
   * namespace never cleared, "old" is stored plain; had a scan removed the clear key after
   * the clear, "old" (not read since) would read as valid again */
  rcache *f = ct_open_sub(e, "fresh:", NULL);
  if (f) {
    CHECK_EQ(rcache_set(f, "old", "o", 1, 0), RCACHE_OK);
    CHECK_EQ(rcache_clear(f), RCACHE_OK);
    uint64_t deleted = 0;
    CHECK_EQ(rcache_delete_pattern(f, "__rc:*", &deleted), RCACHE_OK);
    CHECK_EQ(rcache_delete_prefix(f, "__rc:cl", &deleted), RCACHE_OK);
    CHECK(gone(f, "old"));
  }
  /* so does rcache_flush (everything else goes): the namespace stays consistent */
  CHECK_EQ(rcache_flush(e->c), RCACHE_OK);
  bool there = false;
  CHECK_EQ(rcache_exists(e->c, "__rc:clear", &there), RCACHE_OK);
  CHECK(there);
  for (size_t i = 0; i < nrd; i++)
    CHECK_MSG(all_gone(rd[i], 5000), "handle %zu", i);
  CHECK(write_all(e->c, "6"));
  for (size_t i = 0; i < nrd; i++)
    CHECK_MSG(all_there(rd[i], "6"), "handle %zu", i);
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

static int doc_loads;
static json_t *load_doc(void *ud) {
  doc_loads++;
  return json_pack("{s:s}", "v", (const char *)ud);
}

/* the JSON document at key is {"v": want} (want NULL: a miss), read both ways */
static bool json_is(rcache *c, const char *key, const char *tag, const char *want) {
  const char *tags[] = {tag};
  bool ok = true;
  for (int way = 0; way < 2; way++) {
    json_t *j = NULL;
    rcache_status s =
        way ? rcache_get_json_tagged(c, key, tags, 1, &j) : rcache_get_json(c, key, &j);
    const char *v = json_string_value(json_object_get(j, "v"));
    ok &= want ? s == RCACHE_OK && v && strcmp(v, want) == 0 : s == RCACHE_MISS && !j;
    json_decref(j);
  }
  return ok;
}

CONTRACT_TEST(tags_json) {
  const char *t[] = {"doc"};
  json_t *d = json_pack("{s:s}", "v", "one");
  CHECK_EQ(rcache_set_json_tagged(e->c, "j", d, 0, t, 1), RCACHE_OK);
  json_decref(d);
  CHECK(json_is(e->c, "j", "doc", "one"));
  CHECK(json_is(e->c, "j", "other", "one")); /* declared tags never change the answer */
  CHECK_EQ(rcache_invalidate_tag(e->c, "doc"), RCACHE_OK);
  CHECK(json_is(e->c, "j", "doc", NULL));
  /* get_or_set: one load, stored tagged, loaded again after an invalidation */
  doc_loads = 0;
  for (int i = 0; i < 3; i++) {
    json_t *j = NULL;
    CHECK_EQ(rcache_get_or_set_json_tagged(e->c, "g", 0, t, 1, load_doc, "two", &j), RCACHE_OK);
    CHECK(j && strcmp(json_string_value(json_object_get(j, "v")), "two") == 0);
    json_decref(j);
  }
  CHECK_EQ(doc_loads, 1);
  CHECK(json_is(e->c, "g", "doc", "two"));
  CHECK_EQ(rcache_invalidate_tag(e->c, "doc"), RCACHE_OK);
  CHECK(json_is(e->c, "g", "doc", NULL));
  json_t *j = NULL;
  CHECK_EQ(rcache_get_or_set_json_tagged(e->c, "g", 0, t, 1, load_doc, "three", &j), RCACHE_OK);
  json_decref(j);
  CHECK_EQ(doc_loads, 2);
  /* a tagged value that is not JSON: reloaded, and stored tagged again */
  CHECK_EQ(rcache_set_tagged(e->c, "bad", "{oops", 5, 0, t, 1), RCACHE_OK);
  j = NULL;
  CHECK_EQ(rcache_get_or_set_json_tagged(e->c, "bad", 0, t, 1, load_doc, "four", &j), RCACHE_OK);
  json_decref(j);
  CHECK_EQ(doc_loads, 3);
  CHECK(json_is(e->c, "bad", "doc", "four"));
  CHECK_EQ(rcache_invalidate_tag(e->c, "doc"), RCACHE_OK);
  CHECK(json_is(e->c, "bad", "doc", NULL));
}

CONTRACT_ANY_TEST(tags_json_bad_arguments) {
  const char *empty[] = {""}, *t[] = {"t"};
  json_t *d = json_pack("{s:s}", "v", "x"), *j = NULL;
  CHECK_EQ(rcache_set_json_tagged(e->c, "k", d, 0, empty, 1), RCACHE_EINVAL);
  CHECK_EQ(rcache_set_json_tagged(e->c, "k", NULL, 0, t, 1), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_json_tagged(e->c, "k", empty, 1, &j), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_json_tagged(e->c, "k", t, 1, NULL), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_or_set_json_tagged(e->c, "k", 0, empty, 1, load_doc, "x", &j), RCACHE_EINVAL);
  CHECK(j == NULL);
  CHECK_EQ(rcache_get_or_set_json_tagged(e->c, "k", 0, t, 1, NULL, NULL, &j), RCACHE_EINVAL);
  json_decref(d);
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
