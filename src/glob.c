/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Glob matching with the exact rules of Redis 7.0's stringmatchlen() (KEYS, SCAN MATCH,
 * PSUBSCRIBE), so that memory:// selects the same keys a Redis server would. Pure: no I/O.
 *
 * The rules, including the corner cases people rarely think about:
 *   *        any run of bytes; adjacent stars are one star.
 *   ?        exactly one byte.
 *   \c       the byte c literally; a backslash that ends the pattern is a literal '\'.
 *   [set]    one byte from the set. Inside it: "\c" is c literally, "a-z" is a range, a range
 *            given backwards ("[z-a]") is the same range, and the bounds compare as *signed*
 *            chars (Redis reads them through plain char on x86-64/gcc, where bytes >= 0x80 are
 *            negative; we fix that choice so the result does not depend on the platform).
 *            "[^set]" negates; "[!set]" does NOT: '!' is an ordinary member.
 *            "[]" matches nothing (the ']' closes the empty set at once), and "[a-]" is the
 *            range 'a'..']' when ']' is the third character of a would-be range.
 *            An unterminated '[' takes the rest of the pattern as the set: "[ab" matches 'a'
 *            or 'b', "[" matches nothing and "[^" matches any single byte.
 *   any other byte matches itself (case-sensitive).
 *   The empty string is matched only by the empty pattern: Redis' loop never starts when the
 *   string is empty, so stringmatchlen("*", "") is false. (KEYS and SCAN special-case the
 *   exact pattern "*" before calling it; rcache keys are never empty, so this never shows.)
 *
 * Redis recurses once per star and guards against hostile patterns with a skip flag and a
 * nesting limit of 1000, beyond which it answers "no match". Here the algorithm is the
 * iterative one with a single backtrack point (the last star seen): every other element
 * consumes exactly one byte, so when the rest of the pattern fails after the last star,
 * earlier stars cannot help. That is O(pattern x string) at worst, never exponential, and
 * uses no stack. To stay identical to Redis we still apply its nesting limit as a count:
 * a pattern whose stars form more than 1000 groups followed by something can never match
 * in Redis (the 1001st recursion returns 0 before looking), so it never matches here.
 */
#include <string.h>

#include "internal.h"

#define REDIS_MAX_STAR_NESTING 1000

/* Where the pattern element starting at p[i] ends (p[i] is not '*'). */
static size_t elem_end(const char *p, size_t plen, size_t i) {
  if (p[i] == '\\') return i + 2 <= plen ? i + 2 : i + 1;
  if (p[i] != '[') return i + 1;
  size_t j = i + 1;
  if (j < plen && p[j] == '^') j++;
  for (;;) {
    if (j >= plen) return plen; /* unterminated: the set runs to the end */
    if (p[j] == '\\' && j + 1 < plen) {
      j += 2;
    } else if (p[j] == ']') {
      return j + 1;
    } else if (j + 2 < plen && p[j + 1] == '-') {
      j += 3;
    } else {
      j++;
    }
  }
}

/* Does the set p[i..end) (p[i] == '[') accept byte c? Mirrors elem_end's walk. */
static bool set_matches(const char *p, size_t i, size_t end, char c) {
  size_t j = i + 1;
  bool neg = j < end && p[j] == '^', match = false;
  if (neg) j++;
  while (j < end && p[j] != ']') {
    if (p[j] == '\\' && j + 1 < end) {
      match |= p[j + 1] == c;
      j += 2;
    } else if (j + 2 < end && p[j + 1] == '-') {
      int lo = (signed char)p[j], hi = (signed char)p[j + 2], x = (signed char)c;
      if (lo > hi) {
        int t = lo;
        lo = hi;
        hi = t;
      }
      match |= x >= lo && x <= hi;
      j += 3;
    } else {
      match |= p[j] == c;
      j++;
    }
  }
  return neg ? !match : match;
}

/* Does the one-byte element p[i..end) accept byte c? */
static bool elem_matches(const char *p, size_t i, size_t end, char c) {
  switch (p[i]) {
  case '?':
    return true;
  case '[':
    return set_matches(p, i, end, c);
  case '\\':
    return p[end - 1] == c; /* "\c" → c, a lone trailing '\' → '\' */
  default:
    return p[i] == c;
  }
}

/* Star groups followed by at least one more element: Redis recurses once for each. */
static size_t inner_star_groups(const char *p, size_t plen) {
  size_t n = 0, i = 0;
  while (i < plen) {
    if (p[i] != '*') {
      i = elem_end(p, plen, i);
      continue;
    }
    while (i < plen && p[i] == '*')
      i++;
    if (i < plen) n++;
  }
  return n;
}

bool rcache__glob_match(const char *pat, size_t plen, const char *s, size_t slen) {
  if (slen == 0) return plen == 0;
  if (inner_star_groups(pat, plen) > REDIS_MAX_STAR_NESTING) return false;
  size_t p = 0, i = 0;
  size_t star_p = 0, star_i = 0; /* pattern after the last star, and where it was tried */
  bool have_star = false;
  while (i < slen) {
    if (p < plen && pat[p] == '*') {
      while (p < plen && pat[p] == '*')
        p++;
      if (p == plen) return true;
      have_star = true;
      star_p = p;
      star_i = i;
      continue;
    }
    if (p < plen) {
      size_t e = elem_end(pat, plen, p);
      if (elem_matches(pat, p, e, s[i])) {
        p = e;
        i++;
        continue;
      }
    }
    if (!have_star) return false;
    /* let the last star swallow one more byte and retry the rest after it */
    p = star_p;
    i = ++star_i;
  }
  while (p < plen && pat[p] == '*')
    p++;
  return p == plen;
}

size_t rcache__glob_escape(const char *lit, size_t len, char *out, size_t outlen) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    char c = lit[i];
    bool meta = c == '*' || c == '?' || c == '[' || c == ']' || c == '\\';
    if (n + (size_t)meta + 1 >= outlen) return (size_t)-1; /* keep room for the NUL */
    if (meta) out[n++] = '\\';
    out[n++] = c;
  }
  if (n >= outlen) return (size_t)-1;
  out[n] = '\0';
  return n;
}
