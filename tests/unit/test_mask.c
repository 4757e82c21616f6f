/* SPDX-License-Identifier: BSD-3-Clause */
/* rcache__mask, the one masking rule for text shown to users (log.c, issue 21): every run of
 * 4 or more characters that occurs in the password is masked, so a truncated or partial
 * echo shows nothing usable; a password shorter than 4 is masked where it occurs whole. */
#include "internal.h"
#include "test.h"

static void check(const char *text, const char *secret, const char *want) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", text);
  rcache__mask(buf, secret);
  CHECK_MSG(strcmp(buf, want) == 0, "mask(\"%s\", \"%s\") = \"%s\", want \"%s\"", text,
            secret ? secret : "(null)", buf, want);
}

int main(void) {
  check("no secret here", NULL, "no secret here");
  check("no secret here", "", "no secret here");
  check("pw is pw", "pw", "** is **"); /* shorter than the run: whole occurrences */
  check("abc abcd", "abcd", "abc ****");
  /* a prefix, a middle part and a suffix of a long password, as truncated echoes show them */
  check("'app' 'Zq81Lm", "Zq81Lm-77pqR-0xv", "'app' '******");
  check("x 1Lm-77p y", "Zq81Lm-77pqR-0xv", "x ******* y");
  check("...R-0xv'", "Zq81Lm-77pqR-0xv", "...*****'");
  /* three characters in a row of the password are not enough: few false positives */
  check("Zq8 and 0xv", "Zq81Lm-77pqR-0xv", "Zq8 and 0xv");
  /* the whole text within the password (a password longer than every buffer) */
  char big[4096];
  for (size_t i = 0; i < sizeof big - 1; i++)
    big[i] = (char)('a' + (i * 7 + i / 26) % 26);
  big[sizeof big - 1] = '\0';
  char text[300], want[300];
  snprintf(text, sizeof text, "ERR echo '%.200s", big + 1000);
  snprintf(want, sizeof want, "ERR echo '%.200s", "");
  memset(want + strlen(want), '*', 200);
  want[10 + 200] = '\0';
  check(text, big, want);
  /* masking twice changes nothing more, and a password holding '*' still works */
  check("a****b", "****", "a****b");
  return test_report("test_mask");
}
