/* SPDX-License-Identifier: BSD-3-Clause */
/* Writes made by another client of the same store are seen — promptly, and for good —
 * also by a handle that has read (and may have cached, with --near) the old value. Only
 * where two handles share a store (Redis); memory:// handles are separate stores. */
#include <stdio.h>
#include <string.h>

#include "contract.h"

#define SEEN_WITHIN_MS 5000

/* Polls c until key holds (data, len), or is absent when data is NULL. */
static bool becomes(rcache *c, const char *key, const char *data) {
  int64_t until = ct_now_ms() + SEEN_WITHIN_MS;
  for (;;) {
    rcache_value v;
    rcache_status s = rcache_get(c, key, &v);
    bool ok = data ? s == RCACHE_OK && v.len == strlen(data) && memcmp(v.data, data, v.len) == 0
                   : s == RCACHE_MISS;
    rcache_value_free(&v);
    if (ok) return true;
    if (ct_now_ms() > until) return false;
    ct_sleep_ms(5);
  }
}

CONTRACT_TEST(other_clients_writes_are_seen) {
  rcache *out = ct_open_outer(e);
  if (!out) return;
  char key[160];
  snprintf(key, sizeof key, "%sshared", e->ns); /* the same stored key as e->c's "shared" */
  CHECK_EQ(rcache_set(e->c, "shared", "v1", 2, 0), RCACHE_OK);
  for (int i = 0; i < 3; i++)
    CHECK(ct_value_is(e->c, "shared", "v1", 2)); /* now cached */
  rcache_value v;
  if (rcache_get(out, key, &v) != RCACHE_OK) return; /* separate stores: nothing to share */
  CHECK(v.len == 2 && memcmp(v.data, "v1", 2) == 0);
  rcache_value_free(&v);
  CHECK_EQ(rcache_set(out, key, "v2", 2, 0), RCACHE_OK);
  CHECK_MSG(becomes(e->c, "shared", "v2"), "overwrite by another client not seen");
  CHECK_EQ(rcache_incr(e->c, "n", 1, NULL), RCACHE_OK);
  CHECK(ct_value_is(e->c, "n", "1", 1));
  char nkey[160];
  snprintf(nkey, sizeof nkey, "%sn", e->ns);
  CHECK_EQ(rcache_incr(out, nkey, 5, NULL), RCACHE_OK);
  CHECK_MSG(becomes(e->c, "n", "6"), "increment by another client not seen");
  CHECK_EQ(rcache_delete(out, key), RCACHE_OK);
  CHECK_MSG(becomes(e->c, "shared", NULL), "delete by another client not seen");
  /* and once seen, it stays seen (no old value coming back) */
  for (int i = 0; i < 20; i++) {
    CHECK_EQ(rcache_get(e->c, "shared", &v), RCACHE_MISS);
    rcache_value_free(&v);
  }
  CHECK_EQ(rcache_set(out, key, "v3", 2, 0), RCACHE_OK);
  CHECK(becomes(e->c, "shared", "v3"));
  uint64_t n = 0; /* a prefix delete by another client */
  char pfx[160];
  snprintf(pfx, sizeof pfx, "%ssha", e->ns);
  CHECK_EQ(rcache_delete_prefix(out, pfx, &n), RCACHE_OK);
  CHECK_EQ(n, 1);
  CHECK_MSG(becomes(e->c, "shared", NULL), "prefix delete by another client not seen");
}
