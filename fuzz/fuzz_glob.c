/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzzes the glob matcher against Redis itself: rcache__glob_match() must answer exactly as
 * Redis 7.0's stringmatchlen() (copied below, case-sensitive path only, as the oracle),
 * because memory:// and delete_prefix must select the keys a Redis server would.
 * Also checks rcache__glob_escape(): an escaped literal matches itself, and
 * escape(prefix) + "*" matches exactly the strings that start with prefix.
 *
 * Input: 2 bytes (little-endian) giving the pattern length, then the pattern, then the
 * string. Both may hold any byte, NUL included (keys and patterns are binary-safe).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Redis 7.0 src/util.c stringmatchlen_impl(), nocase = 0 (BSD-3-Clause, Salvatore
 * Sanfilippo and Redis Ltd.). Needs NUL-terminated inputs: it peeks one byte past the end. */
static int redis_match(const char *pattern, int patternLen, const char *string, int stringLen,
                       int *skipLongerMatches, int nesting) {
  if (nesting > 1000) return 0;
  while (patternLen && stringLen) {
    switch (pattern[0]) {
    case '*':
      while (patternLen && pattern[1] == '*') {
        pattern++;
        patternLen--;
      }
      if (patternLen == 1) return 1;
      while (stringLen) {
        if (redis_match(pattern + 1, patternLen - 1, string, stringLen, skipLongerMatches,
                        nesting + 1))
          return 1;
        if (*skipLongerMatches) return 0;
        string++;
        stringLen--;
      }
      *skipLongerMatches = 1;
      return 0;
    case '?':
      string++;
      stringLen--;
      break;
    case '[': {
      int not_, match;
      pattern++;
      patternLen--;
      not_ = pattern[0] == '^';
      if (not_) {
        pattern++;
        patternLen--;
      }
      match = 0;
      while (1) {
        if (pattern[0] == '\\' && patternLen >= 2) {
          pattern++;
          patternLen--;
          if (pattern[0] == string[0]) match = 1;
        } else if (pattern[0] == ']') {
          break;
        } else if (patternLen == 0) {
          pattern--;
          patternLen++;
          break;
        } else if (patternLen >= 3 && pattern[1] == '-') {
          int start = (signed char)pattern[0];
          int end = (signed char)pattern[2];
          int c = (signed char)string[0];
          if (start > end) {
            int t = start;
            start = end;
            end = t;
          }
          pattern += 2;
          patternLen -= 2;
          if (c >= start && c <= end) match = 1;
        } else {
          if (pattern[0] == string[0]) match = 1;
        }
        pattern++;
        patternLen--;
      }
      if (not_) match = !match;
      if (!match) return 0;
      string++;
      stringLen--;
      break;
    }
    case '\\':
      if (patternLen >= 2) {
        pattern++;
        patternLen--;
      }
      /* fall through */
    default:
      if (pattern[0] != string[0]) return 0;
      string++;
      stringLen--;
      break;
    }
    pattern++;
    patternLen--;
    if (stringLen == 0) {
      while (*pattern == '*') {
        pattern++;
        patternLen--;
      }
      break;
    }
  }
  return patternLen == 0 && stringLen == 0;
}

static bool oracle(const char *p, size_t pl, const char *s, size_t sl) {
  int skip = 0;
  return redis_match(p, (int)pl, s, (int)sl, &skip, 0) != 0;
}

static void fail(const char *what, const char *p, size_t pl, const char *s, size_t sl) {
  fprintf(stderr, "fuzz_glob: %s: pattern (%zu bytes) \"%.*s\" string (%zu bytes) \"%.*s\"\n", what,
          pl, (int)pl, p, sl, (int)sl, s);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2 || size > 6000) return 0;
  size_t pl = ((size_t)data[0] | (size_t)data[1] << 8) % (size - 1);
  size_t sl = size - 2 - pl;
  /* NUL-terminated copies: the oracle reads one byte past the end */
  char *p = rcache__memdup0(data + 2, pl);
  char *s = rcache__memdup0(data + 2 + pl, sl);
  if (!p || !s) goto out;

  bool got = rcache__glob_match(p, pl, s, sl);
  if (got != oracle(p, pl, s, sl))
    fail(got ? "matches, Redis does not" : "Redis matches, we do not", p, pl, s, sl);

  /* escaping: room for every byte escaped, plus '*' and the NUL */
  size_t cap = 2 * (pl > sl ? pl : sl) + 2;
  char *e = malloc(cap);
  if (!e) goto out;
  size_t el = rcache__glob_escape(s, sl, e, cap);
  if (el == (size_t)-1 || el >= cap || e[el] != '\0') fail("escape failed", s, sl, s, sl);
  if (sl > 0 && !rcache__glob_match(e, el, s, sl))
    fail("escaped literal does not match itself", e, el, s, sl);
  if (el > 0 && rcache__glob_escape(s, sl, e, el) != (size_t)-1)
    fail("escape into a short buffer", e, el, s, sl);

  /* escape(p) + "*" is "starts with p" */
  el = rcache__glob_escape(p, pl, e, cap);
  if (el == (size_t)-1) fail("escape failed", p, pl, p, pl);
  e[el++] = '*';
  bool starts = sl >= pl && memcmp(s, p, pl) == 0 && sl > 0;
  if (rcache__glob_match(e, el, s, sl) != starts)
    fail("escaped prefix + '*' disagrees with memcmp", e, el, s, sl);
  free(e);
out:
  free(p);
  free(s);
  return 0;
}
