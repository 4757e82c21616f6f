/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Which readings of the clear key's version a handle takes for what it writes next
 * (tags.c, rcache__tags_clear_seen). Readings arrive out of order: a GET sent before this
 * handle's rcache_clear may be read after it with the version from before, and taking it would
 * stamp the next write with that version (read as a miss: a lost write). The rule: a higher
 * version is always taken (the key only grows); a lower one only from a request that went out
 * after the last change was noted (a deletion of the key, FLUSHDB), never from an older one.
 * No server: the rule on a memory:// handle's fields.
 */
#include <stdatomic.h>

#include "handle.h"
#include "rcache/rcache.h"
#include "tags.h"
#include "test.h"

static int64_t noted(rcache *c) {
  return atomic_load(&c->clear_ver);
}

int main(void) {
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, "memory://", NULL), RCACHE_OK);
  if (!c) return test_report("unit_test_clear_seen");
  CHECK_EQ(noted(c), 0); /* never read: the namespace never cleared */

  uint64_t before_clear = rcache__clear_asked(c); /* a GET goes out... */
  uint64_t clear_asked = rcache__clear_asked(c);  /* ...then this handle's clear */
  rcache__tags_clear_seen(c, 7000, clear_asked);  /* the clear's INCRBY answers */
  CHECK_EQ(noted(c), 7000);
  rcache__tags_clear_seen(c, 0, before_clear); /* the GET's reply, read after it */
  CHECK_EQ(noted(c), 7000);                    /* older news: left out */

  /* the same version again, from any request: nothing changes */
  rcache__tags_clear_seen(c, 7000, before_clear);
  CHECK_EQ(noted(c), 7000);

  /* a higher version is taken whenever its request went out (the key only grows) */
  rcache__tags_clear_seen(c, 9000, before_clear);
  CHECK_EQ(noted(c), 9000);

  /* a lower version from a request sent after the last change: the key was deleted */
  uint64_t after = rcache__clear_asked(c);
  rcache__tags_clear_seen(c, 0, after);
  CHECK_EQ(noted(c), 0);

  /* a late reading from before that deletion, with the version before it: higher, so taken
   * (its writes read as misses until the next reading, which puts it right) */
  rcache__tags_clear_seen(c, 9000, before_clear);
  CHECK_EQ(noted(c), 9000);
  rcache__tags_clear_seen(c, 0, rcache__clear_asked(c));
  CHECK_EQ(noted(c), 0);

  rcache_close(c);
  return test_report("unit_test_clear_seen");
}
