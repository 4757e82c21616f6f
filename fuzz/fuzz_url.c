/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzzes the URL parser (rcache__url_parse) and the log-line redactor (rcache__redact) with
 * arbitrary bytes. Beyond "no crash, no leak, no UB" it checks the promises that matter:
 *  - a parsed URL has sane fields (hosts within the cap, ports 1..65535, db >= 0, redacted
 *    form present);
 *  - the password never reaches a message: not in u.redacted, not in rcache__redact()'s
 *    output, and, when parsing fails, not in the error message (checked when the secret is
 *    unambiguous: it appears once in the input, at least 3 bytes, no '*').
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static size_t count(const char *hay, const char *needle) {
  size_t n = 0, nl = strlen(needle);
  if (nl == 0) return 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
    n++;
  return n;
}

/* A secret we can look for: at least 3 bytes, no '*' (the mask), once in the input, and
 * not in what free text cannot tell from a list of URLs ("redis://u:pw@h1,redis://..."
 * could be one URL whose password is "pw@h1,redis://...": the redactor documents that
 * such a password is partly shown). */
static bool checkable(const char *in, const char *secret) {
  if (count(in, "://") > 1 && strchr(in, ',') && strchr(in, '@')) return false;
  return secret && strlen(secret) >= 3 && !strchr(secret, '*') && count(in, secret) == 1;
}

static void must_not_contain(const char *what, const char *text, const char *secret) {
  if (strstr(text, secret)) {
    fprintf(stderr, "fuzz_url: password \"%s\" leaked into %s: \"%s\"\n", secret, what, text);
    abort();
  }
}

/* Not something the parser's English messages could contain by chance. */
static bool distinctive(const char *secret) {
  if (strlen(secret) < 8) return false;
  for (const char *q = secret; *q; q++)
    if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || strchr(" :/'()._=-,", *q)))
      return true;
  return false;
}

/* The generous secret span the parser masks for a URL that does not parse: from the first
 * ':' after "://" to the last '@'. NULL when there is none. */
static char *generous_span(const char *s) {
  const char *sep = strstr(s, "://");
  const char *start = sep ? sep + 3 : s;
  const char *at = strrchr(start, '@');
  if (!at) return NULL;
  const char *colon = memchr(start, ':', (size_t)(at - start));
  if (!colon || at - colon - 1 <= 0) return NULL;
  return rcache__memdup0(colon + 1, (size_t)(at - colon - 1));
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
  char err[512];
  err[0] = '\0';
  rcache_status st = rcache__url_parse(s, &u, err, sizeof err);
  if (st == RCACHE_OK) {
    if (u.nhosts > RCACHE__URL_MAX_HOSTS || u.db < 0 || !u.redacted) abort();
    for (size_t i = 0; i < u.nhosts; i++)
      if (!u.hosts[i].host || u.hosts[i].port < 1 || u.hosts[i].port > 65535) abort();
    if (u.scheme == RCACHE__SCHEME_UNIX && !u.path) abort();
    if (u.scheme == RCACHE__SCHEME_SENTINEL && !u.master) abort();
    /* the raw password is in the input when it needed no percent-decoding */
    if (checkable(s, u.password)) must_not_contain("the redacted URL", u.redacted, u.password);
    if (checkable(s, u.password)) {
      char red[8192];
      rcache__redact(s, red, sizeof red);
      must_not_contain("rcache__redact()", red, u.password);
    }
  } else {
    if (st != RCACHE_EURL && st != RCACHE_ENOMEM) abort();
    if (!memchr(err, '\0', sizeof err)) abort();
    /* "URL: <what is wrong> in <the URL, masked>": the URL part must not show the secret;
     * the first part is English text plus masked quotes, which a short or plain secret may
     * match by chance ("s:/" is in "redis://"), so it is checked for distinctive ones. */
    char *sec = generous_span(s);
    char *shown = rcache__strdup(s); /* messages show control bytes as '?' */
    for (char *q = shown; q && *q; q++)
      if ((unsigned char)*q < ' ' || *q == 0x7f) *q = '?';
    if (shown && checkable(shown, sec)) {
      const char *in = NULL;
      for (const char *q = err; (q = strstr(q, " in ")) != NULL; q++)
        in = q;
      /* after the " in " itself: a secret " in " is no leak of the template's word */
      must_not_contain("the URL in the error message", in ? in + 4 : err, sec);
      if (distinctive(sec)) must_not_contain("the error message", err, sec);
    }
    free(shown);
    free(sec);
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
