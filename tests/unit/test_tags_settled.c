/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a reply of a value and the namespace's clear version settles alone (tags.c,
 * rcache__tags_settled: the async loop serves those without the blocking path). Pure: no
 * server. A value is settled as valid only when the clear version proves it:
 *  - a plain value while the clear key is absent (0), an escaped one minus its escape byte;
 *  - a counter (a decimal integer as INCR parses it) whatever the clear version;
 *  - a frame without tags stamped with exactly the current clear version (its header cut).
 * Everything else goes to the blocking path: a plain value after a clear (stale, to unlink),
 * a frame stamped with another version, a frame with tags, a malformed frame.
 */
#include <string.h>

#include "tags.h"
#include "test.h"

/* A frame without tags stamped with clear version v, then payload p. */
static size_t frame0(char *out, uint64_t v, const char *p) {
  memcpy(out, "\xffRC\x01", 4);
  out[4] = 0;
  for (int i = 0; i < 8; i++)
    out[5 + i] = (char)((v >> (56 - 8 * i)) & 0xff);
  size_t pl = strlen(p);
  memcpy(out + 13, p, pl);
  return 13 + pl;
}

static bool settled(const char *d, size_t len, int64_t clear, size_t *head) {
  *head = 99;
  return rcache__tags_settled(d, len, clear, head);
}

int main(void) {
  size_t head;
  /* plain values */
  CHECK(settled("abc", 3, 0, &head) && head == 0);
  CHECK(!settled("abc", 3, 7, &head)); /* written before a clear */
  CHECK(settled("", 0, 0, &head) && head == 0);
  CHECK(!settled("", 0, 7, &head));
  /* counters stay whatever the clear version */
  CHECK(settled("42", 2, 7, &head) && head == 0);
  CHECK(settled("-9223372036854775808", 20, 7, &head) && head == 0);
  CHECK(!settled("042", 3, 7, &head)); /* not an integer INCR takes: not a counter */
  CHECK(!settled("4.5", 3, 7, &head));
  /* an escaped plain value: its escape byte goes, while never cleared */
  CHECK(settled("\xff\xffRC\x01x", 6, 0, &head) && head == 1);
  CHECK(!settled("\xff\xffRC\x01x", 6, 7, &head));
  /* frames without tags: valid for their own clear version only */
  char f[64];
  size_t fl = frame0(f, 7, "payload");
  CHECK(settled(f, fl, 7, &head) && head == 13);
  CHECK(!settled(f, fl, 8, &head));
  CHECK(!settled(f, fl, 0, &head)); /* the clear key is gone: never valid again */
  fl = frame0(f, 0, "p");           /* written before any clear (an integer-free value, ntags 0) */
  CHECK(settled(f, fl, 0, &head) && head == 13);
  CHECK(!settled(f, fl, 5, &head));
  /* a frame with a tag, or a malformed one: for the blocking path */
  char t[64];
  memcpy(t, "\xffRC\x01\x01", 5);
  memset(t + 5, 0, 8);
  memcpy(t + 13, "\x00\x01g", 3);
  memset(t + 16, 0, 8);
  CHECK(!settled(t, 24, 0, &head));
  CHECK(!settled("\xffRC\x01", 4, 0, &head));
  return test_report("test_tags_settled");
}
