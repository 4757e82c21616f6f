/* SPDX-License-Identifier: BSD-3-Clause */
/* rcache__glob_match against Redis 7.0's stringmatchlen rules, and rcache__glob_escape.
 * Every row of the table was checked against a real redis-server 7.0 with KEYS (a key per
 * string, the pattern as given); this test itself needs no server. */
#include <stdint.h>

#include "internal.h"
#include "test.h"

typedef struct {
  const char *pat, *str;
  bool match;
} glob_case;

static const glob_case glob_cases[] = {
    /* literals and ? */
    {"abc", "abc", true},
    {"abc", "abd", false},
    {"abc", "ab", false},
    {"abc", "abcd", false},
    {"", "", true},
    {"", "a", false},
    {"a", "", false},
    {"?", "a", true},
    {"?", "", false},
    {"?", "ab", false},
    {"a?c", "abc", true},
    {"a?c", "ac", false},
    {"ABC", "abc", false}, /* case-sensitive */
    /* * */
    {"*", "anything", true},
    {"*", "", false}, /* stringmatchlen never matches an empty string with "*" */
    {"**", "", false},
    {"a*", "a", true},
    {"a*", "abc", true},
    {"a**", "a", true},
    {"*a", "a", true},
    {"*a", "ba", true},
    {"*a", "ab", false},
    {"a*c", "ac", true},
    {"a*c", "abbbc", true},
    {"a*c", "abbbd", false},
    {"*?", "a", true},
    {"?*", "a", true},
    {"*?*", "", false},
    {"a*?", "a", false},
    {"a*?", "ab", true},
    {"*b*", "abc", true},
    {"*b*", "acd", false},
    {"user:1*", "user:12", true},
    {"user:1:*", "user:12:x", false},
    {"*:*:*", "a:b:c", true},
    {"*:*:*", "a:b", false},
    {"a*b*c", "aXbYc", true},
    {"a*b*c", "aXcYb", false},
    {"*abc", "ababc", true},
    {"*aab", "aaab", true},
    /* sets */
    {"[abc]", "b", true},
    {"[abc]", "d", false},
    {"[abc]", "", false},
    {"x[abc]y", "xby", true},
    {"[a-c]", "b", true},
    {"[a-c]", "d", false},
    {"[c-a]", "b", true}, /* backwards range */
    {"[z-a]", "m", true},
    {"[a-cx-z]", "y", true},
    {"[a-cx-z]", "m", false},
    {"[^abc]", "d", true},
    {"[^abc]", "a", false},
    {"[^a-c]", "b", false},
    {"[!abc]", "d", false}, /* '!' does not negate */
    {"[!abc]", "!", true},
    {"[!abc]", "a", true},
    {"[]", "]", false}, /* ']' first closes an empty set */
    {"[]]", "]", false},
    {"[]a]", "a", false},
    {"[]a]", "]a]", false},
    {"[a-]", "-", false}, /* "a-]" is the range ']'..'a' */
    {"[a-]", "_", true},
    {"[a-]", "]", true},
    {"[a-]", "b", false},
    {"[-a]", "-", true},
    {"[\\]]", "]", true},
    {"[\\^a]", "^", true},
    {"[\\-]", "-", true},
    {"[\\a-c]", "-", true}, /* "\a" is 'a', then "-c" are plain members */
    {"[\\a-c]", "b", false},
    {"[a\\-z]", "-", true},
    {"[a\\-z]", "m", false},
    {"[*]", "*", true},
    {"[*]", "a", false},
    {"[?]", "?", true},
    {"[?]", "a", false},
    {"[[]", "[", true},
    {"[ab", "a", true}, /* unterminated: the rest is the set */
    {"[ab", "c", false},
    {"[ab", "ab", false},
    {"[", "[", false},
    {"[", "a", false},
    {"[^", "a", true}, /* unterminated negated empty set: any one byte */
    {"[^", "ab", false},
    {"x[", "x[", false},
    {"[a-", "-", true}, /* unterminated: 'a' and '-' */
    {"[a-", "b", false},
    {"[a-c", "b", true},
    {"[\\", "\\", true},
    {"[^]", "a", true},
    {"[^]", "]", true},
    {"[^]a", "xa", true},
    /* backslash */
    {"\\*", "*", true},
    {"\\*", "a", false},
    {"\\?", "?", true},
    {"\\?", "a", false},
    {"\\[a]", "[a]", true},
    {"\\\\", "\\", true},
    {"\\a", "a", true},
    {"a\\", "a\\", true}, /* trailing backslash is literal */
    {"a\\", "a", false},
    {"\\", "\\", true},
    {"*\\*", "ab*", true},
    {"*\\*", "ab", false},
    {"a\\*b", "a*b", true},
    {"a\\*b", "aXb", false},
    /* bytes >= 0x80 compare as signed chars in ranges */
    {"\xc3\xa9", "\xc3\xa9", true},
    {"?", "\xff", true},
    {"[a-\xff]", "\xff", true},
    {"[a-\xff]", "b", false},
    {"[a-\xff]", "Z", true},
    {"[\x80-\xff]", "\xc3", true},
    {"[\x80-\xff]", "a", false},
    {"[^\x80-\xff]", "a", true},
};

/* A deliberately naive recursive reading of the same rules, for small random inputs:
 * "does pat[pi..] match s[si..]" with every element but '*' taking one byte. */
static size_t ref_elem_end(const char *p, size_t pl, size_t i) {
  if (p[i] == '\\') return i + 1 < pl ? i + 2 : i + 1;
  if (p[i] != '[') return i + 1;
  size_t j = i + 1 + (i + 1 < pl && p[i + 1] == '^');
  while (j < pl && p[j] != ']') {
    if (p[j] == '\\' && j + 1 < pl)
      j += 2;
    else if (j + 2 < pl && p[j + 1] == '-')
      j += 3;
    else
      j++;
  }
  return j < pl ? j + 1 : pl;
}

static bool ref_one(const char *p, size_t i, size_t end, char c) {
  if (p[i] == '?') return true;
  if (p[i] == '\\') return p[end - 1] == c;
  if (p[i] != '[') return p[i] == c;
  size_t j = i + 1;
  bool neg = j < end && p[j] == '^', hit = false;
  j += neg;
  while (j < end && p[j] != ']') {
    if (p[j] == '\\' && j + 1 < end) {
      hit = hit || p[j + 1] == c;
      j += 2;
    } else if (j + 2 < end && p[j + 1] == '-') {
      signed char a = (signed char)p[j], b = (signed char)p[j + 2], x = (signed char)c;
      hit = hit || (a <= b ? (x >= a && x <= b) : (x >= b && x <= a));
      j += 3;
    } else {
      hit = hit || p[j] == c;
      j++;
    }
  }
  return neg != hit;
}

static bool ref_rest(const char *p, size_t pl, size_t pi, const char *s, size_t sl, size_t si) {
  if (pi == pl) return si == sl;
  if (p[pi] == '*') {
    for (size_t k = si; k <= sl; k++) {
      if (ref_rest(p, pl, pi + 1, s, sl, k)) return true;
    }
    return false;
  }
  if (si == sl) return false;
  size_t e = ref_elem_end(p, pl, pi);
  return ref_one(p, pi, e, s[si]) && ref_rest(p, pl, e, s, sl, si + 1);
}

static bool ref_match(const char *p, size_t pl, const char *s, size_t sl) {
  return sl == 0 ? pl == 0 : ref_rest(p, pl, 0, s, sl, 0);
}

static uint32_t rng = 12345;
static uint32_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}

static void test_table(void) {
  for (size_t i = 0; i < sizeof glob_cases / sizeof glob_cases[0]; i++) {
    const glob_case *g = &glob_cases[i];
    bool got = rcache__glob_match(g->pat, strlen(g->pat), g->str, strlen(g->str));
    CHECK_MSG(got == g->match, "pattern \"%s\" vs \"%s\": got %d, Redis says %d", g->pat, g->str,
              got, g->match);
  }
  /* lengths, not NULs, delimit: an embedded NUL is an ordinary byte */
  CHECK(rcache__glob_match("a\0*", 3, "a\0bc", 4));
  CHECK(!rcache__glob_match("a\0*", 3, "a", 1));
  CHECK(rcache__glob_match("a*", 1, "a", 1)); /* plen 1: the '*' is not part of it */
  CHECK(!rcache__glob_match("a*", 1, "ab", 2));
}

static void test_against_reference(void) {
  static const char alpha[] = "ab*?[]^-\\!";
  int mismatches = 0;
  for (int t = 0; t < 200000; t++) {
    char p[10], s[8];
    size_t pl = next_rand() % 9, sl = next_rand() % 8;
    for (size_t i = 0; i < pl; i++)
      p[i] = alpha[next_rand() % (sizeof alpha - 1)];
    for (size_t i = 0; i < sl; i++)
      s[i] = alpha[next_rand() % (sizeof alpha - 1)];
    if (rcache__glob_match(p, pl, s, sl) != ref_match(p, pl, s, sl) && mismatches++ < 5)
      fprintf(stderr, "reference disagrees: pattern \"%.*s\" string \"%.*s\"\n", (int)pl, p,
              (int)sl, s);
  }
  CHECK_EQ(mismatches, 0);
}

static void test_nesting_limit(void) {
  /* Redis answers "no match" once a pattern needs more than 1000 nested star groups */
  enum { KEY = 3000 };
  static char key[KEY], pat[4 * 1002];
  memset(key, 'x', sizeof key);
  for (int groups = 999; groups <= 1002; groups++) {
    size_t pl = 0;
    for (int i = 0; i < groups; i++) {
      pat[pl++] = '*';
      pat[pl++] = '?';
    }
    CHECK_EQ(rcache__glob_match(pat, pl, key, KEY), groups <= 1000);
    pat[pl++] = '*'; /* a trailing star adds no nesting */
    CHECK_EQ(rcache__glob_match(pat, pl, key, KEY), groups <= 1000);
  }
}

static void test_pathological(void) {
  /* Exponential under naive backtracking: with 8 stars and a 20000-byte subject, 2^n-ish
   * retries would never finish. Here each call is O(pattern x string). */
  enum { N = 20000 };
  static char s[N + 1];
  memset(s, 'a', N);
  const char *pat = "*a*a*a*a*a*a*a*a*b";
  int matched = 0;
  for (int i = 0; i < 50; i++)
    matched += rcache__glob_match(pat, strlen(pat), s, N);
  CHECK_EQ(matched, 0);
  s[N - 1] = 'b';
  CHECK(rcache__glob_match(pat, strlen(pat), s, N));
  const char *pat2 = "a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*c";
  s[N - 1] = 'a';
  CHECK(!rcache__glob_match(pat2, strlen(pat2), s, N));
  const char *pat3 = "*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?[^a]";
  CHECK(!rcache__glob_match(pat3, strlen(pat3), s, N));
}

/* The escaped form of lit matches lit and nothing else. */
static void check_escape(const char *lit, size_t len) {
  char out[256];
  size_t n = rcache__glob_escape(lit, len, out, sizeof out);
  CHECK(n != (size_t)-1);
  if (n == (size_t)-1) return;
  CHECK_EQ(out[n], '\0');
  CHECK_MSG(rcache__glob_match(out, n, lit, len), "escaped \"%.*s\" does not match itself",
            (int)len, lit);
  /* nor any one-byte change, nor the literal cut short or extended */
  char other[128];
  memcpy(other, lit, len);
  for (size_t i = 0; i < len; i++) {
    const char subs[] = {'a', '*', '?', '[', ']', '\\', 'x'};
    for (size_t k = 0; k < sizeof subs; k++) {
      if (subs[k] == lit[i]) continue;
      other[i] = subs[k];
      CHECK_MSG(!rcache__glob_match(out, n, other, len), "escaped \"%.*s\" matches \"%.*s\"",
                (int)len, lit, (int)len, other);
    }
    other[i] = lit[i];
  }
  if (len > 0) CHECK(!rcache__glob_match(out, n, lit, len - 1));
  other[len] = 'z';
  CHECK(!rcache__glob_match(out, n, other, len + 1));
}

static void test_escape(void) {
  const char *lits[] = {"plain",        "a*b",      "*",   "?",     "[",   "]",    "\\",
                        "[a-z]",        "[^x]",     "\\*", "***",   "???", "[[]]", "\\\\\\",
                        "*?[]\\*?[]\\", "user:12*", "a\\", "x]y[z", "^-!"};
  for (size_t i = 0; i < sizeof lits / sizeof lits[0]; i++)
    check_escape(lits[i], strlen(lits[i]));
  check_escape("a\0*", 3);
  /* random strings made only of metacharacters */
  static const char meta[] = "*?[]\\^-!";
  for (int t = 0; t < 2000; t++) {
    char lit[40];
    size_t len = 1 + next_rand() % 39;
    for (size_t i = 0; i < len; i++)
      lit[i] = meta[next_rand() % (sizeof meta - 1)];
    check_escape(lit, len);
  }

  char out[16];
  CHECK_EQ(rcache__glob_escape("a*b", 3, out, sizeof out), 4);
  CHECK_STR(out, "a\\*b");
  CHECK_EQ(rcache__glob_escape("*?[]\\", 5, out, sizeof out), 10); /* each of * ? [ ] \ */
  CHECK_STR(out, "\\*\\?\\[\\]\\\\");
  CHECK_EQ(rcache__glob_escape("^-!", 3, out, sizeof out), 3); /* not special outside a set */
  CHECK_STR(out, "^-!");
  CHECK_EQ(rcache__glob_escape("", 0, out, sizeof out), 0);
  CHECK_STR(out, "");
  /* too small: room for every escaped byte and the NUL is needed */
  CHECK_EQ(rcache__glob_escape("a*b", 3, out, 4), (size_t)-1);
  CHECK_EQ(rcache__glob_escape("a*b", 3, out, 5), 4);
  CHECK_EQ(rcache__glob_escape("abc", 3, out, 3), (size_t)-1);
  CHECK_EQ(rcache__glob_escape("", 0, out, 0), (size_t)-1);
  CHECK_EQ(rcache__glob_escape("**", 2, out, 5), 4);
}

int main(void) {
  test_table();
  test_against_reference();
  test_nesting_limit();
  test_pathological();
  test_escape();
  return test_report("test_glob");
}
