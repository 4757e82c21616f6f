/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integers beyond int64 in stored JSON (src/json.c's second parse) over memory://: the lexer
 * leaves strings, exponents and leading zeros alone, and every allocation failure on the way
 * is RCACHE_ENOMEM — never EDECODE, never a reload that overwrites the stored value.
 * tests/contract/json.c checks the same documents on every backend.
 */
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "rcache/json.h"
#include "test.h"

static rcache *open_memory(void) {
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, "memory://", NULL), RCACHE_OK);
  return c;
}

/* Stores text raw and checks that rcache_get_json reads it as `want` (NULL: EDECODE). */
static void reads_as(rcache *c, const char *text, json_t *want) {
  json_t *got = NULL;
  CHECK_EQ(rcache_set(c, "k", text, strlen(text), 0), RCACHE_OK);
  rcache_status s = rcache_get_json(c, "k", &got);
  CHECK_MSG(want ? s == RCACHE_OK && got && json_equal(got, want) : s == RCACHE_EDECODE, "%s: %s",
            text, rcache_strerror(s));
  json_decref(got);
  json_decref(want);
}

static void lexer_cases(rcache *c) {
  reads_as(c, "-100000000000000000000", json_real(-1e20));
  reads_as(c, "[9223372036854775807,9223372036854775808]",
           json_pack("[I,f]", (json_int_t)INT64_MAX, 9223372036854775808.0));
  /* a digit run inside a string, after an escaped quote, or as a key is not a number */
  reads_as(c, "[\"a\\\"100000000000000000000\",100000000000000000000]",
           json_pack("[s,f]", "a\"100000000000000000000", 1e20));
  reads_as(c, "{\"100000000000000000000\":100000000000000000000,\"n\":-0}",
           json_pack("{s:f,s:i}", "100000000000000000000", 1e20, "n", 0));
  reads_as(c, "[\"\\\\\",100000000000000000000]", json_pack("[s,f]", "\\", 1e20));
  /* exponents and fractions are reals already; their digits are never widened */
  reads_as(c, "[1e100,100000000000000000000.5,1.5e-300,100000000000000000000]",
           json_pack("[f,f,f,f]", 1e100, 100000000000000000000.5, 1.5e-300, 1e20));
  /* still invalid after the second parse: leading zeros, a stray comma, an open string */
  reads_as(c, "[0100000000000000000000]", NULL);
  reads_as(c, "[100000000000000000000,]", NULL);
  reads_as(c, "[100000000000000000000,\"abc", NULL);
  reads_as(c, "[100000000000000000000,\"abc\\", NULL);
}

static int loads;

/* Allocations rcache makes to read key's JSON. */
static uint64_t allocs_to_read(rcache *c, const char *key) {
  json_t *got = NULL;
  uint64_t before = rcache__alloc_calls();
  CHECK_EQ(rcache_get_json(c, key, &got), RCACHE_OK);
  json_decref(got);
  return rcache__alloc_calls() - before;
}

/* Only a document with an integer beyond int64 takes the second parse: one allocation more. */
static void second_parse_only_when_needed(rcache *c) {
  static const char big[] = "{\"id\":10000000000000000000,\"n\":7}";
  static const char int64[] = "{\"id\":1000000000000000000,\"n\":7}";
  CHECK_EQ(rcache_set(c, "big", big, sizeof big - 1, 0), RCACHE_OK);
  CHECK_EQ(rcache_set(c, "int64", int64, sizeof int64 - 1, 0), RCACHE_OK);
  CHECK_EQ(allocs_to_read(c, "big"), allocs_to_read(c, "int64") + 1);
}

static json_t *load(void *ud) {
  (void)ud;
  loads++;
  return json_pack("{s:s}", "from", "loader");
}

/* Fails the Nth allocation of a read, for every N until the read needs no more: each call
 * answers OK with the content, or ENOMEM; the stored value is never replaced. */
static void alloc_failures(rcache *c) {
  static const char doc[] = "{\"id\":100000000000000000000,\"n\":7}";
  CHECK_EQ(rcache_set(c, "big", doc, strlen(doc), 0), RCACHE_OK);
  json_t *want = json_pack("{s:f,s:i}", "id", 1e20, "n", 7);
  int enomem = 0, ok_at = -1;
  for (int n = 0; n < 100 && ok_at < 0; n++) {
    json_t *got = NULL, *got2 = NULL;
    uint64_t before = rcache__alloc_calls();
    rcache__alloc_fail_after(n, true);
    rcache_status s = rcache_get_json(c, "big", &got);
    rcache__alloc_fail_after(n, true);
    rcache_status s2 = rcache_get_or_set_json(c, "big", 60, load, NULL, &got2);
    rcache__alloc_fail_after(-1, true);
    CHECK_MSG(s == RCACHE_ENOMEM || (s == RCACHE_OK && json_equal(got, want)), "n=%d: %d", n, s);
    CHECK_MSG(s2 == RCACHE_ENOMEM || (s2 == RCACHE_OK && json_equal(got2, want)), "n=%d", n);
    enomem += (s == RCACHE_ENOMEM) + (s2 == RCACHE_ENOMEM);
    if (s == RCACHE_OK && s2 == RCACHE_OK && rcache__alloc_calls() - before <= (uint64_t)n)
      ok_at = n; /* the armed failure was never reached: every earlier N was tried */
    json_decref(got);
    json_decref(got2);
  }
  CHECK(ok_at > 0 && enomem >= 2); /* both calls met a failure */
  CHECK_EQ(loads, 0);
  json_t *still = NULL;
  CHECK_EQ(rcache_get_json(c, "big", &still), RCACHE_OK);
  CHECK(still && json_equal(still, want));
  json_decref(still);
  json_decref(want);
}

int main(void) {
  rcache *c = open_memory();
  if (c) {
    lexer_cases(c);
    second_parse_only_when_needed(c);
    alloc_failures(c);
  }
  rcache_close(c);
  return test_report("test_json_numbers");
}
