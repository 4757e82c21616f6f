/* SPDX-License-Identifier: BSD-3-Clause */
/* Reads, writes, deletes, exists: byte-exact values of every size. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"

CONTRACT_TEST(set_get_roundtrip) {
  rcache_value v = {(char *)"junk", 4};
  CHECK_EQ(rcache_get(e->c, "greeting", &v), RCACHE_MISS);
  CHECK(v.data == NULL && v.len == 0); /* zeroed on a miss */
  CHECK_EQ(rcache_set(e->c, "greeting", "hello", 5, 0), RCACHE_OK);
  CHECK_EQ(rcache_get(e->c, "greeting", &v), RCACHE_OK);
  CHECK_EQ(v.len, 5);
  CHECK(v.data && memcmp(v.data, "hello", 5) == 0 && v.data[5] == '\0');
  rcache_value_free(&v);
  CHECK(v.data == NULL && v.len == 0);
  /* overwrite with a longer, then a shorter value */
  CHECK_EQ(rcache_set(e->c, "greeting", "hello, world", 12, 0), RCACHE_OK);
  CHECK(ct_value_is(e->c, "greeting", "hello, world", 12));
  CHECK_EQ(rcache_set(e->c, "greeting", "yo", 2, 0), RCACHE_OK);
  CHECK(ct_value_is(e->c, "greeting", "yo", 2));
}

CONTRACT_TEST(empty_value) {
  CHECK_EQ(rcache_set(e->c, "empty", "", 0, 0), RCACHE_OK);
  rcache_value v;
  CHECK_EQ(rcache_get(e->c, "empty", &v), RCACHE_OK); /* a hit, not a miss */
  CHECK_EQ(v.len, 0);
  CHECK(v.data == NULL || v.data[0] == '\0');
  rcache_value_free(&v);
  CHECK(ct_exists(e->c, "empty"));
  /* NULL data with length 0 is an empty value too */
  CHECK_EQ(rcache_set(e->c, "empty2", NULL, 0, 0), RCACHE_OK);
  CHECK(ct_value_is(e->c, "empty2", "", 0));
}

CONTRACT_TEST(binary_values) {
  static const char nul[] = {'a', '\0', 'b', '\0', '\0', 'c'};
  CHECK_EQ(rcache_set(e->c, "nul", nul, sizeof nul, 0), RCACHE_OK);
  CHECK(ct_value_is(e->c, "nul", nul, sizeof nul));
  unsigned char all[256];
  for (int i = 0; i < 256; i++)
    all[i] = (unsigned char)(255 - i);
  CHECK_EQ(rcache_set(e->c, "bytes", all, sizeof all, 0), RCACHE_OK);
  CHECK(ct_value_is(e->c, "bytes", all, sizeof all));
  /* a value that looks like protocol text must come back as it went in */
  const char *resp = "*2\r\n$3\r\nSET\r\n-ERR nope\r\n:1\r\n";
  CHECK_EQ(rcache_set(e->c, "resp", resp, strlen(resp), 0), RCACHE_OK);
  CHECK(ct_value_is(e->c, "resp", resp, strlen(resp)));
}

CONTRACT_TEST(one_mib_value) {
  size_t n = 1024 * 1024;
  char *big = malloc(n);
  CHECK(big != NULL);
  if (!big) return;
  uint32_t x = 2463534242u;
  for (size_t i = 0; i < n; i++) { /* xorshift: no repeating pattern to hide a shift */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    big[i] = (char)x;
  }
  CHECK_EQ(rcache_set(e->c, "big", big, n, 0), RCACHE_OK);
  CHECK(ct_value_is(e->c, "big", big, n));
  big[n / 2] ^= 1; /* and a different one of the same size replaces it */
  CHECK_EQ(rcache_set(e->c, "big", big, n, 0), RCACHE_OK);
  CHECK(ct_value_is(e->c, "big", big, n));
  free(big);
}

CONTRACT_TEST(key_characters) {
  /* keys are byte strings: spaces, UTF-8, glob and protocol characters are all plain */
  const char *keys[] = {"with space", "ключ:значение", "tab\tand\nnewline",
                        "*",          "a?[b]\\c",      "{hash}tag",
                        "-dash",      "colon:"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    CHECK_EQ(rcache_set(e->c, keys[i], keys[i], strlen(keys[i]), 0), RCACHE_OK);
  }
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    CHECK_MSG(ct_value_is(e->c, keys[i], keys[i], strlen(keys[i])), "key %zu", i);
  }
  CHECK_EQ(rcache_delete(e->c, "*"), RCACHE_OK); /* deletes the key named "*", only it */
  CHECK(!ct_exists(e->c, "*"));
  CHECK(ct_exists(e->c, "with space"));
}

CONTRACT_TEST(delete_and_exists) {
  bool x = true;
  CHECK_EQ(rcache_exists(e->c, "k", &x), RCACHE_OK);
  CHECK(!x);
  CHECK_EQ(rcache_delete(e->c, "k"), RCACHE_MISS);
  CHECK_EQ(rcache_set(e->c, "k", "v", 1, 0), RCACHE_OK);
  CHECK_EQ(rcache_exists(e->c, "k", &x), RCACHE_OK);
  CHECK(x);
  CHECK_EQ(rcache_delete(e->c, "k"), RCACHE_OK);
  CHECK_EQ(rcache_delete(e->c, "k"), RCACHE_MISS);
  CHECK_EQ(rcache_exists(e->c, "k", &x), RCACHE_OK);
  CHECK(!x);
  rcache_value v;
  CHECK_EQ(rcache_get(e->c, "k", &v), RCACHE_MISS);
}

CONTRACT_TEST(key_and_value_limits) {
  /* max_key_bytes (default 1024) counts the prefix: a 1025-byte key never fits */
  char key[1100];
  memset(key, 'k', sizeof key);
  key[1025] = '\0';
  rcache_value v;
  bool x;
  int64_t n;
  CHECK_EQ(rcache_set(e->c, key, "v", 1, 0), RCACHE_ETOOBIG);
  CHECK_EQ(rcache_get(e->c, key, &v), RCACHE_ETOOBIG);
  CHECK_EQ(rcache_delete(e->c, key), RCACHE_ETOOBIG);
  CHECK_EQ(rcache_exists(e->c, key, &x), RCACHE_ETOOBIG);
  CHECK_EQ(rcache_ttl(e->c, key, &n), RCACHE_ETOOBIG);
  CHECK_EQ(rcache_incr(e->c, key, 1, &n), RCACHE_ETOOBIG);
  CHECK(ct_errmsg_set(e->c));
  key[900] = '\0'; /* fits with any sane prefix */
  CHECK_EQ(rcache_set(e->c, key, "v", 1, 0), RCACHE_OK);
  CHECK(ct_value_is(e->c, key, "v", 1));

  rcache_options o;
  rcache_options_init(&o);
  o.max_value_bytes = 16;
  rcache *small = ct_open(e, &o);
  if (!small) return;
  CHECK_EQ(rcache_set(small, "v16", "0123456789abcdef", 16, 0), RCACHE_OK);
  CHECK_EQ(rcache_set(small, "v17", "0123456789abcdefg", 17, 0), RCACHE_ETOOBIG);
  CHECK(!ct_exists(small, "v17"));
  CHECK(ct_value_is(small, "v16", "0123456789abcdef", 16));
}

/* Readers racing writers on one key see whole values only: one of those written. */
#define TORN_SIZE 20000
#define TORN_WRITERS 2
#define TORN_READERS 2
#define TORN_ROUNDS 300

typedef struct {
  rcache *c;
  int id;
  int bad;
} torn_arg;

static void torn_fill(char *buf, int id) {
  for (int i = 0; i < TORN_SIZE; i++)
    buf[i] = (char)('a' + (id + i / 1000) % 26);
}

static void *torn_writer(void *p) {
  torn_arg *a = p;
  static _Thread_local char buf[TORN_SIZE];
  torn_fill(buf, a->id);
  for (int i = 0; i < TORN_ROUNDS; i++)
    a->bad += rcache_set(a->c, "race", buf, TORN_SIZE, 0) != RCACHE_OK;
  return NULL;
}

static void *torn_reader(void *p) {
  torn_arg *a = p;
  static _Thread_local char want[TORN_SIZE];
  for (int i = 0; i < TORN_ROUNDS; i++) {
    rcache_value v;
    rcache_status s = rcache_get(a->c, "race", &v);
    if (s == RCACHE_OK) {
      int id = v.len == TORN_SIZE ? (v.data[0] - 'a') : -1;
      if (id >= 0 && id < TORN_WRITERS) torn_fill(want, id);
      a->bad += id < 0 || id >= TORN_WRITERS || memcmp(v.data, want, TORN_SIZE) != 0;
    } else {
      a->bad += s != RCACHE_MISS;
    }
    rcache_value_free(&v);
  }
  return NULL;
}

CONTRACT_TEST(no_torn_values_under_concurrency) {
  pthread_t th[TORN_WRITERS + TORN_READERS];
  torn_arg args[TORN_WRITERS + TORN_READERS];
  int started = 0;
  for (int i = 0; i < TORN_WRITERS + TORN_READERS; i++) {
    args[i] = (torn_arg){e->c, i, 0};
    if (pthread_create(&th[i], NULL, i < TORN_WRITERS ? torn_writer : torn_reader, &args[i]) != 0)
      break;
    started++;
  }
  CHECK_EQ(started, TORN_WRITERS + TORN_READERS);
  int bad = 0;
  for (int i = 0; i < started; i++) {
    pthread_join(th[i], NULL);
    bad += args[i].bad;
  }
  CHECK_EQ(bad, 0);
}
