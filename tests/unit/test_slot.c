/* SPDX-License-Identifier: BSD-3-Clause */
/* Cluster key slots: CRC16 (XMODEM) and hash tags, against the specification's known
 * values and values read from a real node with CLUSTER KEYSLOT (Redis 7.0). */
#include <string.h>

#include "backends/slot.h"
#include "test.h"

static unsigned slot_of(const char *k) {
  return rcache__slot(k, strlen(k));
}

int main(void) {
  /* The CRC itself: the XMODEM check value from the cluster specification. */
  CHECK_EQ(rcache__crc16("123456789", 9), 0x31C3);
  CHECK_EQ(rcache__crc16("", 0), 0);

  /* Plain keys (CLUSTER KEYSLOT). */
  CHECK_EQ(slot_of("foo"), 12182);
  CHECK_EQ(slot_of("bar"), 5061);
  CHECK_EQ(slot_of("hello"), 866);
  CHECK_EQ(slot_of("123456789"), 12739); /* 0x31C3 mod 16384 */
  CHECK_EQ(slot_of(""), 0);

  /* Hash tags: only what is between the first '{' and the next '}' is hashed. */
  CHECK_EQ(slot_of("{user1000}.following"), 3443);
  CHECK_EQ(slot_of("{user1000}.followers"), 3443);
  CHECK_EQ(slot_of("user1000"), 3443);
  CHECK_EQ(slot_of("foo{bar}{zap}"), 5061); /* the first tag: "bar" */
  CHECK_EQ(slot_of("a{b}"), 3300);
  CHECK_EQ(slot_of("foo{{bar}}zap"), 4015); /* the tag is "{bar" */
  CHECK_EQ(slot_of("{bar"), 4015);

  /* An empty tag, or a '{' without a '}' after it: the whole key is hashed. */
  CHECK_EQ(slot_of("foo{}{bar}"), 8363);
  CHECK_EQ(slot_of("{}"), 15257);
  CHECK_EQ(slot_of("x{}"), 2608);
  CHECK_EQ(slot_of("{"), 4092);
  CHECK_EQ(slot_of("abc{"), 3048);
  CHECK_EQ(slot_of("}{a}"), 15495); /* a '}' before the '{' does not close anything */
  CHECK(slot_of("foo{}{bar}") != slot_of("bar"));

  /* Binary keys: a NUL is a byte like any other. */
  CHECK_EQ(rcache__slot("a\0b", 3), 8383);
  CHECK(rcache__slot("a\0b", 3) != rcache__slot("a", 1));
  CHECK_EQ(rcache__slot("x{a\0b}y", 7), 8383);

  /* Every slot is in range, and slots spread over the whole space. */
  char k[32];
  int seen_low = 0, seen_high = 0, in_range = 1;
  for (int i = 0; i < 10000; i++) {
    snprintf(k, sizeof k, "key:%d", i);
    unsigned s = slot_of(k);
    if (s >= RCACHE__SLOTS) in_range = 0;
    if (s < 8192)
      seen_low++;
    else
      seen_high++;
  }
  CHECK(in_range);
  CHECK(seen_low > 4000 && seen_high > 4000);

  /* A prefix fixes the slot of every key under it only with a whole, non-empty tag. */
  static const struct {
    const char *prefix;
    bool fixed;
  } pf[] = {{"{app}:", true}, {"x{a}", true},   {"a:{b}:{c}", true}, {"{}{app}:", false},
            {"{app", false},  {"app}:", false}, {"app:", false},     {"", false},
            {"}{a}", true},   {"{{a}", true},   {"{}", false}};
  for (size_t i = 0; i < sizeof pf / sizeof *pf; i++) {
    const char *p = pf[i].prefix;
    CHECK_MSG(rcache__slot_fixed(p, strlen(p)) == pf[i].fixed, "prefix %s", p);
    if (!pf[i].fixed) continue;
    bool same = true; /* the claim itself: keys under it, with braces of their own too */
    const char *tails[] = {"k", "user:12", "{other}", "}x{y}", ""};
    char a[64], b[64];
    for (size_t t = 1; t < sizeof tails / sizeof *tails; t++) {
      snprintf(a, sizeof a, "%s%s", p, tails[0]);
      snprintf(b, sizeof b, "%s%s", p, tails[t]);
      same &= slot_of(a) == slot_of(b);
    }
    CHECK_MSG(same, "prefix %s", p);
  }
  /* and without one, keys under the prefix do land apart */
  CHECK(slot_of("{app:k") != slot_of("{app:}x") || slot_of("{app:k") != slot_of("{app:q"));
  return test_report("test_slot");
}
