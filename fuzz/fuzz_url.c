/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzzes the URL parser (rcache__url_parse) and the log-line redactor (rcache__redact) with
 * arbitrary bytes. Beyond "no crash, no leak, no UB" it checks the promises that matter:
 *  - a parsed URL has sane fields (hosts within the cap, ports 1..65535, db >= 0, redacted
 *    form present);
 *  - the password never reaches a message. The oracle is positional: the parser itself says
 *    where the secret is (rcache__url_parse_secret: the span [b, e) of the input), and:
 *    - parsed: u.redacted starts with s[0, b) "***", and neither it nor rcache__redact(s)
 *      holds the secret S = s[b, e) more often than the input without it
 *      (s[0, b) "***" s[e, len)) does: masking only removes text, so a surplus occurrence
 *      is the password shown. Exact for any length, no '*' in S (the mask could form it);
 *    - not parsed: the message is exactly "URL: " X " in " M, where M is the input with
 *      [b, e) replaced by "***" and control bytes by '?' (compared byte for byte), and the
 *      parser's own text X holds S no more often than the input outside the span does
 *      (a quoted host may show the same bytes). X is English made of letters, digits and
 *      the punctuation below, so this last check is made only for a secret of at least 4
 *      bytes holding some other byte (non-ASCII, '!', '#', '$', '"', '<', '\\', ...):
 *      anything else could match the message's own words by chance ("port", " in ").
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Occurrences of needle[0, nl) in hay[0, hl), overlapping ones included. */
static size_t count(const char *hay, size_t hl, const char *needle, size_t nl) {
  size_t n = 0;
  for (size_t i = 0; nl > 0 && i + nl <= hl; i++)
    n += memcmp(hay + i, needle, nl) == 0;
  return n;
}

static size_t count0(const char *hay, const char *needle, size_t nl) {
  return count(hay, strlen(hay), needle, nl);
}

_Noreturn static void leak(const char *what, const char *text, const char *secret, size_t nl) {
  fprintf(stderr, "fuzz_url: password \"%.*s\" leaked into %s: \"%s\"\n", (int)nl, secret, what,
          text);
  abort();
}

/* s with [b, e) replaced by "***" (when not empty); control bytes as '?' when `shown`, as
 * the parser's messages write them. Malloc'd (rcache__malloc), NULL when out of memory. */
static char *masked(const char *s, rcache__span sp, bool shown) {
  size_t len = strlen(s), n = 0;
  char *m = rcache__malloc(len + 4);
  if (!m) return NULL;
  for (size_t i = 0; i < len; i++) {
    if (i == sp.b && sp.b < sp.e) {
      memcpy(m + n, "***", 3);
      n += 3;
      i = sp.e - 1;
      continue;
    }
    unsigned char c = (unsigned char)s[i];
    m[n++] = shown && (c < ' ' || c == 0x7f) ? '?' : (char)c;
  }
  m[n] = '\0';
  return m;
}

/* Free text cannot tell "redis://u:pw@h1,redis://..." (a list of URLs) from one URL whose
 * password is "pw@h1,redis://...": the redactor documents that such a password is partly
 * shown, so rcache__redact() is not held to the span there. */
static bool list_like(const char *s) {
  return count0(s, "://", 3) > 1 && strchr(s, ',') && strchr(s, '@');
}

static void check_parsed(const char *s, const rcache__url *u, rcache__span sp) {
  const char *sec = s + sp.b;
  size_t nl = sp.e - sp.b;
  if (sp.e < sp.b || sp.e > strlen(s)) abort();
  if (nl > 0 && (!u->password || s[sp.b - 1] != ':' || s[sp.e] != '@')) abort();
  if (nl == 0 || memchr(sec, '*', nl)) return;
  if (strncmp(u->redacted, s, sp.b) != 0 || strncmp(u->redacted + sp.b, "***", 3) != 0)
    leak("the redacted URL (not masked at the span)", u->redacted, sec, nl);
  char *without = masked(s, sp, false);
  if (!without) return;
  size_t allowed = count0(without, sec, nl);
  if (count0(u->redacted, sec, nl) > allowed) leak("the redacted URL", u->redacted, sec, nl);
  if (!list_like(s)) {
    char red[8192];
    rcache__redact(s, red, sizeof red);
    if (count0(red, sec, nl) > allowed) leak("rcache__redact()", red, sec, nl);
  }
  rcache__free(without);
}

/* Not a byte of the parser's own message text (url.c's formats and the names they quote). */
static bool distinctive(const char *sec, size_t nl) {
  for (size_t i = 0; i < nl; i++) {
    unsigned char c = (unsigned char)sec[i];
    if (c >= 0x80 || (c > ' ' && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                   (c >= '0' && c <= '9') || strchr("%&'()*+,-./:;=?@[]_", c))))
      return true;
  }
  return false;
}

static void check_failed(const char *s, const char *err, rcache__span sp) {
  if (sp.e < sp.b || sp.e > strlen(s)) abort();
  char *m = masked(s, sp, true);
  if (!m) return;
  size_t el = strlen(err), ml = strlen(m);
  /* "URL: " X " in " M, compared byte for byte (err is large enough not to truncate) */
  if (strncmp(err, "URL: ", 5) != 0 || el < 5 + 4 + ml || memcmp(err + el - ml, m, ml) != 0 ||
      memcmp(err + el - ml - 4, " in ", 4) != 0)
    leak("the error message (not \"URL: ... in <URL masked at the span>\")", err, s + sp.b,
         sp.e - sp.b);
  const char *sec = s + sp.b;
  size_t nl = sp.e - sp.b, xl = el - ml - 4 - 5;
  if (nl >= 4 && distinctive(sec, nl) &&
      count(err + 5, xl, sec, nl) > count(s, sp.b, sec, nl) + count0(s + sp.e, sec, nl))
    leak("the error message's text", err, sec, nl);
  rcache__free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  char *s = rcache__memdup0(data, size);
  if (!s) return 0;
  if (strlen(s) != size) { /* the API takes C strings: an embedded NUL ends it */
    free(s);
    return 0;
  }

  rcache__url u;
  static char err[16384]; /* never truncates a message for a 4 KiB input */
  err[0] = '\0';
  rcache__span sp;
  rcache_status st = rcache__url_parse_secret(s, &u, err, sizeof err, &sp);
  if (st == RCACHE_OK) {
    if (u.nhosts > RCACHE__URL_MAX_HOSTS || u.db < 0 || !u.redacted) abort();
    for (size_t i = 0; i < u.nhosts; i++)
      if (!u.hosts[i].host || u.hosts[i].port < 1 || u.hosts[i].port > 65535) abort();
    if (u.scheme == RCACHE__SCHEME_UNIX && !u.path) abort();
    if (u.scheme == RCACHE__SCHEME_SENTINEL && !u.master) abort();
    check_parsed(s, &u, sp);
  } else {
    if (st != RCACHE_EURL && st != RCACHE_ENOMEM) abort();
    if (!memchr(err, '\0', sizeof err)) abort();
    if (st == RCACHE_EURL) check_failed(s, err, sp);
  }
  rcache__url_free(&u);
  rcache__url_free(&u); /* it zeroes *u: a second free must be harmless */

  /* The redactor on arbitrary text, into buffers of every small size. */
  char out[64];
  for (size_t n = 0; n <= sizeof out; n += 7) {
    memset(out, 'X', sizeof out);
    rcache__redact(s, out, n);
    if (n > 0 && !memchr(out, '\0', n)) abort();
  }
  free(s);
  return 0;
}
