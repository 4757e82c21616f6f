/* SPDX-License-Identifier: BSD-3-Clause */
/* rcache CLI: what may reach a terminal. Pure functions, no I/O but the FILE they are given.
 *
 * Two rules, applied to every text the tool did not write itself:
 * - Redaction (cli_redact): anything that looks like it holds credentials - a ':' followed,
 *   somewhere later, by an '@' - has everything from the first ':' (after "scheme://" when
 *   there is one) to the LAST '@' replaced by "***". It is the rule the library applies to a
 *   URL it cannot parse, so that the tool's copy of a URL and the library's agree; on a
 *   well-formed URL it hides exactly the password (or more, never less).
 * - Escaping (cli_escape_unit): bytes that a terminal would act upon or that would make one
 *   item read as two are written as escapes: \\ \n \r \t, \xNN for other control bytes
 *   and bytes that are not UTF-8, \uNNNN for C1 controls (U+0080-U+009F) and the
 *   bidirectional overrides (U+202A-U+202E, U+2066-U+2069). Valid UTF-8 text passes. */
#include <string.h>

#include "cli.h"

void cli_redact(const char *s, char *out, size_t outlen) {
  const char *p = strstr(s, "://");
  const char *start = p ? p + 3 : s;
  const char *at = strrchr(start, '@');
  const char *colon = at ? memchr(start, ':', (size_t)(at - start)) : NULL;
  if (!colon) {
    snprintf(out, outlen, "%s", s);
    return;
  }
  snprintf(out, outlen, "%.*s***%s", (int)(colon + 1 - s), s, at);
}

/* Length of the valid, shortest-form UTF-8 sequence at s (0 when there is none); *cp gets
 * its code point. */
static size_t utf8_seq(const unsigned char *s, size_t len, uint32_t *cp) {
  static const struct {
    unsigned char lo, hi, lo2, hi2; /* lead byte range, second byte range */
    size_t n;
  } forms[] = {{0xc2, 0xdf, 0x80, 0xbf, 2}, {0xe0, 0xe0, 0xa0, 0xbf, 3},
               {0xe1, 0xec, 0x80, 0xbf, 3}, {0xed, 0xed, 0x80, 0x9f, 3},
               {0xee, 0xef, 0x80, 0xbf, 3}, {0xf0, 0xf0, 0x90, 0xbf, 4},
               {0xf1, 0xf3, 0x80, 0xbf, 4}, {0xf4, 0xf4, 0x80, 0x8f, 4}};
  for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
    if (s[0] < forms[f].lo || s[0] > forms[f].hi) continue;
    size_t n = forms[f].n;
    if (len < n || s[1] < forms[f].lo2 || s[1] > forms[f].hi2) return 0;
    *cp = s[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
      if ((s[i] & 0xc0) != 0x80) return 0;
      *cp = (*cp << 6) | (s[i] & 0x3f);
    }
    return n;
  }
  return 0;
}

size_t cli_escape_unit(const char *str, size_t len, char esc[CLI_ESC_MAX]) {
  const unsigned char *s = (const unsigned char *)str;
  static const char named[] = {'\\', '\\', '\n', 'n', '\r', 'r', '\t', 't'};
  esc[0] = '\0';
  for (size_t i = 0; i < sizeof named; i += 2)
    if (s[0] == (unsigned char)named[i]) {
      snprintf(esc, CLI_ESC_MAX, "\\%c", named[i + 1]);
      return 1;
    }
  if (s[0] < 0x20 || s[0] == 0x7f) {
    snprintf(esc, CLI_ESC_MAX, "\\x%02x", s[0]);
    return 1;
  }
  if (s[0] < 0x80) return 1;
  uint32_t cp = 0;
  size_t n = utf8_seq(s, len, &cp);
  if (n == 0) {
    snprintf(esc, CLI_ESC_MAX, "\\x%02x", s[0]);
    return 1;
  }
  if (cp <= 0x9f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
    snprintf(esc, CLI_ESC_MAX, "\\u%04x", (unsigned)cp);
  return n;
}

bool cli_write_text(FILE *f, const char *s, size_t len, bool raw) {
  if (raw) return fwrite(s, 1, len, f) == len;
  char esc[CLI_ESC_MAX];
  for (size_t i = 0; i < len;) {
    size_t n = cli_escape_unit(s + i, len - i, esc);
    if (esc[0] ? fputs(esc, f) == EOF : fwrite(s + i, 1, n, f) != n) return false;
    i += n;
  }
  return true;
}

void cli_escape(const char *s, char *out, size_t outlen) {
  size_t o = 0, len = strlen(s);
  char esc[CLI_ESC_MAX];
  for (size_t i = 0; i < len;) {
    size_t n = cli_escape_unit(s + i, len - i, esc);
    const char *piece = esc[0] ? esc : s + i;
    size_t pl = esc[0] ? strlen(esc) : n;
    if (o + pl + 4 > outlen) {
      snprintf(out + o, outlen - o, "...");
      return;
    }
    memcpy(out + o, piece, pl);
    o += pl;
    i += n;
  }
  out[o] = '\0';
}

void cli_shown(const char *s, char *out, size_t outlen) {
  char red[CLI_SHOWN_MAX];
  cli_redact(s, red, sizeof red);
  cli_escape(red, out, outlen);
}
