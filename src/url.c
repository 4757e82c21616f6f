/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * URL parsing: pure, no I/O. Turns the URL a program was given into an rcache__url, or
 * into RCACHE_EURL with a message naming the wrong part and never showing the password.
 *
 * Accepted forms (scheme names are case-insensitive):
 *   ""  and  none://                                  caching off; nothing may follow
 *   memory://[?max_bytes=N&key_prefix=P]              embedded store; no user, host or path
 *   redis://[user[:password]@]host[:port][/[db]][?options]
 *   rediss://...                                      the same over TLS (tls = true)
 *   redis://h1:p1,h2:p2,...[?options]                 several hosts: cluster seeds (db must be 0)
 *   unix://[user[:password]@]/path[?db=N&options]     also redis+unix://
 *   redis+sentinel://[user[:password]@]h1[:p1],h2[:p2]/master[/db][?options]
 *   rediss+sentinel://...                             the same over TLS
 * Hosts are names ([A-Za-z0-9._-]), IPv4 addresses or bracketed IPv6 ("[::1]:6379", stored
 * without brackets). The port defaults to 6379, or 26379 for sentinel hosts. At most
 * RCACHE__URL_MAX_HOSTS hosts.
 *
 * Choices, so that nobody has to guess:
 * - The query starts at the first '?'. The user info ends at the last '@' before it (for
 *   unix://, at the first "@/"), so a password may hold ':', '/' or '@' as they are, but a
 *   '?' (and a '%', space or control character) must be percent-encoded.
 * - user, password, unix path, master name and option values are percent-decoded; "%00",
 *   a bad escape ("%zz") or a truncated one ("%4") is an error. Empty user or password
 *   ("redis://:pw@h", "redis://u:@h") means absent (NULL). Spaces and control characters
 *   are rejected anywhere in the URL (write them as %20 and so on).
 * - db is a non-negative integer below INT_MAX (Redis' "databases" setting can be that
 *   large; the server refuses indexes beyond its own setting at SELECT). It goes in the
 *   path for redis:// and sentinel URLs, and may also be given as ?db=N for any server
 *   scheme (unix:// has no other place), but not both ways at once. With several hosts
 *   (a cluster) only db 0 exists.
 * - Options: connect_timeout_ms, command_timeout_ms (1..INT_MAX), pool (1..1024, gives
 *   pool_size), key_prefix, client_name (printable, no spaces: Redis' CLIENT SETNAME rule),
 *   db, publish_stats_s (0..86400), dns (DNS servers, "host[:port],...", checked at open;
 *   not on unix://), and on TLS schemes only tls_ca, tls_cert, tls_key, tls_server_name,
 *   tls_ciphers, tls_ciphersuites and tls_insecure (0 or 1). All tls_* options - tls_insecure
 *   too - are rejected on a scheme without TLS, because silently ignoring them would make a
 *   plaintext connection look protected; tls_cert and tls_key come together. memory:// takes
 *   only max_bytes (1..INT64_MAX) and key_prefix; none:// takes nothing. Unknown,
 *   repeated, valueless ("pool", "pool=") options and stray '&' are errors.
 * - A path after the db ("redis://h/3/x") is an error; "redis://h/" is db 0.
 * Absent options are -1 (NULL for strings) in the result; db is 0 when absent.
 *
 * Passwords in messages: every message ends with the URL, its password replaced by ***.
 * u->redacted is the URL with its password replaced, passed through rcache__redact() too.
 * For a URL that does not parse, where the password is cannot be known for sure, so the
 * message masks generously: from the first ':' after "://" to the last '@' of the URL, and
 * any quoted fragment that overlaps that span is shown as *** too.
 */
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "internal.h"

/* the longest socket path a sockaddr_un holds, with its NUL */
#define UNIX_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

typedef struct parser {
  const char *s; /* the whole URL */
  size_t len;
  rcache__url *u;
  char *err;
  size_t errlen;
  size_t sec_b, sec_e; /* generous password span for messages (empty when sec_b == sec_e) */
  size_t pw_b, pw_e;   /* exact password span once parsed, for u->redacted */
  bool has_pw;
  bool db_set; /* db came from the path or the query */
} parser;

/* ---- messages -------------------------------------------------------------------------------- */

/* The URL with [sec_b, sec_e) shown as *** and control bytes as '?', appended to out. */
static void append_masked(const parser *p, char *out, size_t outlen) {
  size_t n = strlen(out);
  for (size_t i = 0; i < p->len && n + 1 < outlen; i++) {
    if (i == p->sec_b && p->sec_b < p->sec_e) {
      for (const char *m = "***"; *m && n + 1 < outlen; m++)
        out[n++] = *m;
      i = p->sec_e - 1;
      continue;
    }
    unsigned char c = (unsigned char)p->s[i];
    out[n++] = c < ' ' || c == 0x7f ? '?' : (char)c;
  }
  out[n] = '\0';
}

/* Writes "URL: <message> in <masked URL>" and returns RCACHE_EURL. */
static rcache_status fail(parser *p, const char *fmt, ...) RCACHE__PRINTF(2, 3);
static rcache_status fail(parser *p, const char *fmt, ...) {
  if (!p->err || p->errlen == 0) return RCACHE_EURL;
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* a part of the URL quoted in msg may hold the password's text too (an option named with
   * it, quoted twice): masked as log lines are, by runs (rcache__mask) */
  if (p->sec_b < p->sec_e) {
    char sec[256];
    size_t n = p->sec_e - p->sec_b < sizeof sec ? p->sec_e - p->sec_b : sizeof sec - 1;
    memcpy(sec, p->s + p->sec_b, n);
    sec[n] = '\0';
    rcache__mask(msg, sec);
    rcache__wipe(sec, sizeof sec);
  }
  snprintf(p->err, p->errlen, "URL: %s in ", msg);
  append_masked(p, p->err, p->errlen);
  return RCACHE_EURL;
}

/* s[b, e) for a message: "***" when it overlaps the password span, shortened when long. */
static const char *part(const parser *p, size_t b, size_t e, char *buf, size_t n) {
  if (p->sec_b < p->sec_e && b < p->sec_e && e > p->sec_b) return "***";
  size_t l = e - b;
  if (l + 1 > n) {
    snprintf(buf, n, "%.*s...", (int)(n - 4), p->s + b);
  } else {
    memcpy(buf, p->s + b, l);
    buf[l] = '\0';
  }
  return buf;
}

/* The generous span: first ':' after "://" (or from the start when there is none) up to
 * the last '@' of the whole URL. */
static void find_secret_span(parser *p) {
  const char *sep = strstr(p->s, "://");
  size_t start = sep ? (size_t)(sep - p->s) + 3 : 0;
  const char *at = strrchr(p->s + start, '@');
  if (!at) return;
  const char *colon = memchr(p->s + start, ':', (size_t)(at - (p->s + start)));
  if (!colon) return;
  p->sec_b = (size_t)(colon - p->s) + 1;
  p->sec_e = (size_t)(at - p->s);
}

/* ---- small parsers --------------------------------------------------------------------------- */

static const char *find(const parser *p, size_t b, size_t e, char c) {
  return b < e ? memchr(p->s + b, c, e - b) : NULL;
}

static size_t off(const parser *p, const char *q) {
  return (size_t)(q - p->s);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes s[b, e) into a malloc'd string (*out); `what` names it in messages. */
static rcache_status decode(parser *p, size_t b, size_t e, const char *what, char **out) {
  char *d = rcache__malloc(e - b + 1), q[16];
  if (!d) return RCACHE_ENOMEM;
  size_t n = 0;
  for (size_t i = b; i < e; i++) {
    if (p->s[i] != '%') {
      d[n++] = p->s[i];
      continue;
    }
    int hi = i + 2 < e ? hexval(p->s[i + 1]) : -1, lo = i + 2 < e ? hexval(p->s[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      rcache__wipe(d, n); /* a part of a password, maybe */
      rcache__free(d);
      return fail(p, "bad percent-escape '%s' in %s",
                  part(p, i, e < i + 3 ? e : i + 3, q, sizeof q), what);
    }
    if (hi == 0 && lo == 0) {
      rcache__wipe(d, n);
      rcache__free(d);
      return fail(p, "percent-escape %%00 (NUL) in %s", what);
    }
    d[n++] = (char)(hi * 16 + lo);
    i += 2;
  }
  d[n] = '\0';
  *out = d;
  return RCACHE_OK;
}

/* Decimal with an optional '-': 0 ok, -1 not a number, 1 does not fit in int64. */
static int parse_num(const char *v, int64_t *out) {
  bool neg = *v == '-';
  const char *d = v + neg;
  if (!*d) return -1;
  uint64_t x = 0;
  bool big = false;
  for (; *d; d++) {
    if (*d < '0' || *d > '9') return -1;
    if (x > ((uint64_t)INT64_MAX - (uint64_t)(*d - '0')) / 10) big = true;
    if (!big) x = x * 10 + (uint64_t)(*d - '0');
  }
  if (big) return 1;
  *out = neg ? -(int64_t)x : (int64_t)x;
  return 0;
}

/* A number for `name` in [lo, hi]; `shown` is how the value is quoted in messages. */
static rcache_status num_in(parser *p, const char *name, const char *v, const char *shown,
                            int64_t lo, int64_t hi, int64_t *out) {
  int r = parse_num(v, out);
  if (r < 0) return fail(p, "%s '%s' is not a number", name, shown);
  if (r > 0 || *out < lo || *out > hi)
    return fail(p, "%s %s out of range (%lld-%lld)", name, shown, (long long)lo, (long long)hi);
  return RCACHE_OK;
}

static rcache_status set_db(parser *p, size_t b, size_t e) {
  char q[40], *v;
  const char *shown = part(p, b, e, q, sizeof q);
  if (p->db_set) return fail(p, "db given twice (path and ?db=)");
  rcache_status st = decode(p, b, e, "db", &v);
  if (st != RCACHE_OK) return st;
  int64_t db = 0;
  st = num_in(p, "db", v, shown, 0, INT_MAX - 1, &db);
  rcache__free(v);
  p->u->db = (int)db;
  p->db_set = true;
  return st;
}

/* ---- hosts ----------------------------------------------------------------------------------- */

static rcache_status parse_port(parser *p, size_t b, size_t e, int *port) {
  char q[40];
  if (b == e) return fail(p, "empty port after ':'");
  int64_t v = 0;
  for (size_t i = b; i < e; i++) {
    char c = p->s[i];
    if (c < '0' || c > '9') return fail(p, "port '%s' is not a number", part(p, b, e, q, sizeof q));
    if (v <= 65535) v = v * 10 + (c - '0');
  }
  if (v < 1 || v > 65535)
    return fail(p, "port %s out of range (1-65535)", part(p, b, e, q, sizeof q));
  *port = (int)v;
  return RCACHE_OK;
}

static bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

/* "[v6]" or "[v6]:port": the address goes to [*hb, *he), the port text after the : to *pb. */
static rcache_status split_v6(parser *p, size_t b, size_t e, size_t *hb, size_t *he, size_t *pb) {
  char q[40];
  const char *rb = find(p, b, e, ']');
  if (!rb) return fail(p, "unterminated '[' in host '%s'", part(p, b, e, q, sizeof q));
  *hb = b + 1;
  *he = off(p, rb);
  if (*hb == *he) return fail(p, "empty IPv6 address '[]'");
  if (*he - *hb > 255) return fail(p, "IPv6 address longer than 255 bytes");
  bool colon = false;
  for (size_t i = *hb; i < *he; i++) {
    char c = p->s[i];
    colon |= c == ':';
    if (!(hexval(c) >= 0 || c == ':' || c == '.'))
      return fail(p, "bad IPv6 address '%s'", part(p, *hb, *he, q, sizeof q));
  }
  if (!colon) return fail(p, "bad IPv6 address '%s'", part(p, *hb, *he, q, sizeof q));
  *pb = *he + 1;
  if (*pb < e && p->s[*pb] != ':')
    return fail(p, "unexpected '%s' after ']' (expected ':port')", part(p, *pb, e, q, sizeof q));
  if (*pb < e)
    (*pb)++;
  else
    *pb = SIZE_MAX; /* no port */
  return RCACHE_OK;
}

/* One "host[:port]" in s[b, e). */
static rcache_status parse_host(parser *p, size_t b, size_t e, int defport, rcache__hostport *h) {
  char q[80];
  size_t hb = b, he = b, pb = SIZE_MAX;
  rcache_status st;
  if (b == e) return fail(p, "empty host");
  if (p->s[b] == '[') {
    if ((st = split_v6(p, b, e, &hb, &he, &pb)) != RCACHE_OK) return st;
  } else {
    const char *colon = find(p, b, e, ':');
    he = colon ? off(p, colon) : e;
    if (colon && find(p, he + 1, e, ':'))
      return fail(p, "host '%s' has more than one ':' (IPv6 addresses go in brackets: [::1]:6379)",
                  part(p, b, e, q, sizeof q));
    if (colon) pb = he + 1;
    if (hb == he) return fail(p, "empty host before ':'");
    if (he - hb > 255) return fail(p, "host name longer than 255 bytes");
    for (size_t i = hb; i < he; i++) {
      if (name_char(p->s[i])) continue;
      const char *shown = part(p, hb, he, q, sizeof q);
      if (strcmp(shown, "***") == 0) return fail(p, "bad character in host ***");
      return fail(p, "bad character '%c' in host '%s'", p->s[i], shown);
    }
  }
  h->port = defport;
  if (pb != SIZE_MAX && (st = parse_port(p, pb, e, &h->port)) != RCACHE_OK) return st;
  h->host = rcache__memdup0(p->s + hb, he - hb);
  return h->host ? RCACHE_OK : RCACHE_ENOMEM;
}

/* Comma-separated hosts in s[b, e). */
static rcache_status parse_hosts(parser *p, size_t b, size_t e, int defport) {
  rcache__url *u = p->u;
  if (b == e) return fail(p, "no host (expected e.g. redis://host:6379)");
  if (p->s[e - 1] == ',') return fail(p, "trailing ',' in the host list");
  size_t n = 1;
  for (size_t i = b; i < e; i++)
    n += p->s[i] == ',';
  if (n > RCACHE__URL_MAX_HOSTS)
    return fail(p, "%zu hosts, more than the %d allowed", n, RCACHE__URL_MAX_HOSTS);
  if (!(u->hosts = rcache__calloc(n, sizeof *u->hosts))) return RCACHE_ENOMEM;
  for (size_t i = b; i <= e; i++) {
    const char *comma = find(p, i, e, ',');
    size_t he = comma ? off(p, comma) : e;
    rcache_status st = parse_host(p, i, he, defport, &u->hosts[u->nhosts]);
    if (st != RCACHE_OK) return st;
    u->nhosts++;
    i = he;
  }
  return RCACHE_OK;
}

/* ---- user info ------------------------------------------------------------------------------- */

static rcache_status parse_userinfo(parser *p, size_t b, size_t e) {
  rcache__url *u = p->u;
  const char *colon = find(p, b, e, ':');
  size_t ue = colon ? off(p, colon) : e;
  rcache_status st;
  if (ue > b && (st = decode(p, b, ue, "user name", &u->user)) != RCACHE_OK) return st;
  if (!colon) return RCACHE_OK;
  p->has_pw = true;
  p->pw_b = ue + 1;
  p->pw_e = e; /* always inside the generous span, which messages keep masking */
  if (p->pw_b < e && (st = decode(p, p->pw_b, e, "password", &u->password)) != RCACHE_OK) return st;
  return RCACHE_OK;
}

/* ---- query ----------------------------------------------------------------------------------- */

enum {
  O_CONNECT,
  O_COMMAND,
  O_POOL,
  O_MAXBYTES,
  O_PREFIX,
  O_CLIENT,
  O_DB,
  O_PUBLISH,
  O_DNS,
  O_TLS_CA,
  O_TLS_CERT,
  O_TLS_KEY,
  O_TLS_SNI,
  O_TLS_INSECURE,
  O_TLS_CIPHERS,
  O_TLS_SUITES,
  O_COUNT
};
static const char *const opt_names[O_COUNT] = {"connect_timeout_ms",
                                               "command_timeout_ms",
                                               "pool",
                                               "max_bytes",
                                               "key_prefix",
                                               "client_name",
                                               "db",
                                               "publish_stats_s",
                                               "dns",
                                               "tls_ca",
                                               "tls_cert",
                                               "tls_key",
                                               "tls_server_name",
                                               "tls_insecure",
                                               "tls_ciphers",
                                               "tls_ciphersuites"};

/* NULL when option o may be used with this URL, else why not. */
static const char *not_applicable(const rcache__url *u, int o) {
  if (u->scheme == RCACHE__SCHEME_MEMORY)
    return o == O_MAXBYTES || o == O_PREFIX ? NULL : "does not apply to memory://";
  if (o == O_MAXBYTES) return "applies only to memory://";
  if (o == O_DNS && u->scheme == RCACHE__SCHEME_UNIX) return "does not apply to unix://";
  if (o >= O_TLS_CA && !u->tls) return "needs a TLS scheme (rediss:// or rediss+sentinel://)";
  return NULL;
}

static rcache_status take_string(char **dst, char *v) {
  *dst = v;
  return RCACHE_OK;
}

/* Applies option o with decoded value v (taken over); shown quotes the raw value. */
static rcache_status apply_option(parser *p, int o, char *v, const char *shown) {
  rcache__url *u = p->u;
  int64_t x = 0;
  rcache_status st = RCACHE_OK;
  switch (o) {
  case O_PREFIX:
    return take_string(&u->key_prefix, v);
  case O_DNS:
    return take_string(&u->dns, v);
  case O_TLS_CA:
    return take_string(&u->tls_ca, v);
  case O_TLS_CERT:
    return take_string(&u->tls_cert, v);
  case O_TLS_KEY:
    return take_string(&u->tls_key, v);
  case O_TLS_SNI:
    return take_string(&u->tls_server_name, v);
  case O_TLS_CIPHERS:
    return take_string(&u->tls_ciphers, v);
  case O_TLS_SUITES:
    return take_string(&u->tls_ciphersuites, v);
  case O_CLIENT:
    for (const char *c = v; *c; c++) {
      if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f) {
        rcache__free(v);
        return fail(p, "client_name '%s' may hold only printable characters without spaces", shown);
      }
    }
    return take_string(&u->client_name, v);
  case O_CONNECT:
  case O_COMMAND:
    st = num_in(p, opt_names[o], v, shown, 1, INT_MAX, &x);
    if (st == RCACHE_OK)
      *(o == O_CONNECT ? &u->connect_timeout_ms : &u->command_timeout_ms) = (int)x;
    break;
  case O_POOL:
    st = num_in(p, "pool", v, shown, 1, 1024, &x);
    if (st == RCACHE_OK) u->pool_size = (int)x;
    break;
  case O_PUBLISH:
    st = num_in(p, "publish_stats_s", v, shown, 0, 86400, &x);
    if (st == RCACHE_OK) u->publish_stats_s = (int)x;
    break;
  case O_MAXBYTES:
    st = num_in(p, "max_bytes", v, shown, 1, INT64_MAX, &x);
    if (st == RCACHE_OK) u->max_bytes = x;
    break;
  case O_TLS_INSECURE:
    if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
      st = fail(p, "tls_insecure must be 0 or 1, not '%s'", shown);
    else
      u->tls_insecure = v[0] - '0';
    break;
  default:
    break;
  }
  rcache__free(v);
  return st;
}

/* One "name=value" in s[b, e). seen[] catches repeats. */
static rcache_status parse_option(parser *p, size_t b, size_t e, bool *seen) {
  char qn[40], qv[80];
  if (b == e) return fail(p, "empty option in the query (stray '&')");
  const char *eq = find(p, b, e, '=');
  size_t ne = eq ? off(p, eq) : e;
  const char *name = part(p, b, ne, qn, sizeof qn);
  if (!eq) return fail(p, "option '%s' has no value (expected %s=value)", name, name);
  if (ne + 1 == e) return fail(p, "option '%s' has an empty value", name);
  int o = 0;
  while (o < O_COUNT && (strlen(opt_names[o]) != ne - b || memcmp(opt_names[o], p->s + b, ne - b)))
    o++;
  if (o == O_COUNT) return fail(p, "unknown option '%s'", name);
  if (seen[o]) return fail(p, "option '%s' given twice", name);
  seen[o] = true;
  const char *why = not_applicable(p->u, o);
  if (why) return fail(p, "option '%s' %s", name, why);
  if (o == O_DB) return set_db(p, ne + 1, e);
  char *v;
  rcache_status st = decode(p, ne + 1, e, opt_names[o], &v);
  if (st != RCACHE_OK) return st;
  return apply_option(p, o, v, part(p, ne + 1, e, qv, sizeof qv));
}

static rcache_status parse_query(parser *p, size_t b, size_t e) {
  bool seen[O_COUNT] = {false};
  if (b == e) return RCACHE_OK; /* "redis://h?" */
  for (size_t i = b; i <= e; i++) {
    const char *amp = find(p, i, e, '&');
    size_t oe = amp ? off(p, amp) : e;
    rcache_status st = parse_option(p, i, oe, seen);
    if (st != RCACHE_OK) return st;
    i = oe;
  }
  if (seen[O_TLS_CERT] != seen[O_TLS_KEY]) return fail(p, "tls_cert and tls_key go together");
  return RCACHE_OK;
}

/* ---- per scheme ------------------------------------------------------------------------------ */

static const struct {
  const char *name;
  rcache__scheme scheme;
  bool tls;
} schemes[] = {
    {"redis", RCACHE__SCHEME_REDIS, false},
    {"rediss", RCACHE__SCHEME_REDISS, true},
    {"unix", RCACHE__SCHEME_UNIX, false},
    {"redis+unix", RCACHE__SCHEME_UNIX, false},
    {"redis+sentinel", RCACHE__SCHEME_SENTINEL, false},
    {"rediss+sentinel", RCACHE__SCHEME_SENTINEL, true},
    {"memory", RCACHE__SCHEME_MEMORY, false},
    {"none", RCACHE__SCHEME_NONE, false},
};

/* memory:// and none://: nothing between "://" and the query. */
static rcache_status parse_local(parser *p, size_t b, size_t e, bool has_query) {
  const char *name = p->u->scheme == RCACHE__SCHEME_NONE ? "none://" : "memory://";
  char q[80];
  if (find(p, b, e, '@')) return fail(p, "%s takes no user or password", name);
  if (b < e)
    return fail(p, "%s takes no host or path, found '%s'", name, part(p, b, e, q, sizeof q));
  if (p->u->scheme == RCACHE__SCHEME_NONE && has_query) return fail(p, "none:// takes no options");
  return RCACHE_OK;
}

static rcache_status parse_unix(parser *p, size_t b, size_t e) {
  size_t pb = b;
  rcache_status st;
  if (b < e && p->s[b] != '/') {
    const char *at = strstr(p->s + b, "@/");
    if (!at || off(p, at) >= e)
      return fail(p, "unix:// needs an absolute socket path, e.g. unix:///run/redis.sock");
    if ((st = parse_userinfo(p, b, off(p, at))) != RCACHE_OK) return st;
    pb = off(p, at) + 1;
  }
  if (e - pb <= 1) return fail(p, "unix:// needs a socket path, e.g. unix:///run/redis.sock");
  st = decode(p, pb, e, "socket path", &p->u->path);
  /* a sockaddr_un holds 107 bytes and a NUL: a longer path cut short names another socket */
  if (st == RCACHE_OK && strlen(p->u->path) > UNIX_PATH_MAX)
    return fail(p, "socket path of %zu bytes, longer than the %zu a Unix socket address holds",
                strlen(p->u->path), UNIX_PATH_MAX);
  return st;
}

/* The path after the host list: "" | "/" | "/db" (redis) or "/master[/[db]]" (sentinel). */
static rcache_status parse_path(parser *p, size_t b, size_t e) {
  char q[80];
  bool sentinel = p->u->scheme == RCACHE__SCHEME_SENTINEL;
  if (b < e) b++; /* the '/' */
  if (sentinel) {
    const char *sl = find(p, b, e, '/');
    size_t me = sl ? off(p, sl) : e;
    if (me == b)
      return fail(p, "sentinel URL needs a master name, e.g. redis+sentinel://h:26379/mymaster");
    rcache_status st = decode(p, b, me, "master name", &p->u->master);
    if (st != RCACHE_OK) return st;
    b = sl ? me + 1 : e;
  }
  if (b == e) return RCACHE_OK;
  const char *sl = find(p, b, e, '/');
  if (sl) return fail(p, "unexpected path '%s' after the db", part(p, off(p, sl), e, q, sizeof q));
  return set_db(p, b, e);
}

static rcache_status parse_server(parser *p, size_t b, size_t e) {
  rcache_status st;
  const char *at = NULL;
  for (size_t i = b; i < e; i++) {
    if (p->s[i] == '@') at = p->s + i;
  }
  if (at) {
    if ((st = parse_userinfo(p, b, off(p, at))) != RCACHE_OK) return st;
    b = off(p, at) + 1;
  }
  const char *sl = find(p, b, e, '/');
  size_t hl_e = sl ? off(p, sl) : e;
  bool sentinel = p->u->scheme == RCACHE__SCHEME_SENTINEL;
  if (sentinel && b == hl_e) return fail(p, "sentinel URL has no sentinel hosts");
  if ((st = parse_hosts(p, b, hl_e, sentinel ? 26379 : 6379)) != RCACHE_OK) return st;
  return parse_path(p, hl_e, e);
}

static rcache_status parse_all(parser *p) {
  rcache__url *u = p->u;
  char q[40];
  for (size_t i = 0; i < p->len; i++) {
    unsigned char c = (unsigned char)p->s[i];
    if (c == ' ') return fail(p, "space at offset %zu (write it as %%20)", i);
    if (c < ' ' || c == 0x7f) return fail(p, "control character at offset %zu", i);
  }
  const char *sep = strstr(p->s, "://");
  size_t sl = sep ? off(p, sep) : 0;
  bool ok_chars = sl > 0;
  for (size_t i = 0; i < sl; i++)
    ok_chars &= name_char(p->s[i]) || p->s[i] == '+';
  if (!ok_chars) return fail(p, "missing scheme and '://' (expected e.g. redis://host:6379)");
  size_t k = 0, ns = sizeof schemes / sizeof schemes[0];
  while (k < ns && !(strlen(schemes[k].name) == sl && strncasecmp(schemes[k].name, p->s, sl) == 0))
    k++;
  if (k == ns) return fail(p, "unknown scheme '%s'", part(p, 0, sl, q, sizeof q));
  u->scheme = schemes[k].scheme;
  u->tls = schemes[k].tls;

  size_t b = sl + 3, e = p->len;
  const char *qm = find(p, b, e, '?');
  size_t be = qm ? off(p, qm) : e;
  rcache_status st;
  switch (u->scheme) {
  case RCACHE__SCHEME_NONE:
  case RCACHE__SCHEME_MEMORY:
    st = parse_local(p, b, be, qm != NULL);
    break;
  case RCACHE__SCHEME_UNIX:
    st = parse_unix(p, b, be);
    break;
  default:
    st = parse_server(p, b, be);
    break;
  }
  if (st == RCACHE_OK && qm) st = parse_query(p, be + 1, e);
  if (st == RCACHE_OK && u->nhosts > 1 && u->db != 0 && u->scheme != RCACHE__SCHEME_SENTINEL)
    st = fail(p, "db %d with several hosts: a Redis Cluster has only db 0", u->db);
  return st;
}

/* u->redacted: the URL with the password span replaced, then through rcache__redact() as
 * every log line is, so that something shaped like credentials inside a unix:// path
 * ("unix:///u:pw@/x") is masked as well. */
static rcache_status make_redacted(parser *p) {
  size_t n = p->len + 4;
  char *r = rcache__malloc(n), *t = rcache__malloc(n);
  if (!r || !t) {
    rcache__free(r);
    rcache__free(t);
    return RCACHE_ENOMEM;
  }
  if (p->has_pw) {
    snprintf(t, n, "%.*s***%s", (int)p->pw_b, p->s, p->s + p->pw_e);
  } else {
    memcpy(t, p->s, p->len + 1);
  }
  rcache__redact(t, r, n);
  rcache__free(t);
  p->u->redacted = r;
  return RCACHE_OK;
}

static void url_defaults(rcache__url *u) {
  memset(u, 0, sizeof *u);
  u->connect_timeout_ms = u->command_timeout_ms = u->pool_size = u->tls_insecure = -1;
  u->publish_stats_s = -1;
  u->max_bytes = -1;
}

rcache_status rcache__url_parse_secret(const char *s, rcache__url *u, char *err, size_t errlen,
                                       rcache__span *secret) {
  url_defaults(u);
  if (err && errlen) err[0] = '\0';
  if (secret) *secret = (rcache__span){0, 0};
  if (!s) {
    if (err && errlen) snprintf(err, errlen, "URL: NULL");
    return RCACHE_EURL;
  }
  parser p = {.s = s, .len = strlen(s), .u = u, .err = err, .errlen = errlen};
  find_secret_span(&p);
  rcache_status st = RCACHE_OK;
  if (p.len == 0) {
    u->scheme = RCACHE__SCHEME_NONE;
  } else {
    st = parse_all(&p);
  }
  if (st == RCACHE_OK) st = make_redacted(&p);
  if (st == RCACHE_ENOMEM && err && errlen) snprintf(err, errlen, "URL: out of memory");
  if (st != RCACHE_OK) {
    rcache__url_free(u);
    url_defaults(u);
  }
  if (secret && st == RCACHE_OK && p.has_pw) *secret = (rcache__span){p.pw_b, p.pw_e};
  if (secret && st == RCACHE_EURL) *secret = (rcache__span){p.sec_b, p.sec_e};
  return st;
}

rcache_status rcache__url_parse(const char *s, rcache__url *u, char *err, size_t errlen) {
  return rcache__url_parse_secret(s, u, err, errlen, NULL);
}

void rcache__url_free(rcache__url *u) {
  if (!u) return;
  rcache__free(u->user);
  rcache__free_secret(u->password);
  for (size_t i = 0; i < u->nhosts; i++)
    rcache__free(u->hosts[i].host);
  rcache__free(u->hosts);
  rcache__free(u->path);
  rcache__free(u->master);
  rcache__free(u->tls_ca);
  rcache__free(u->tls_cert);
  rcache__free(u->tls_key);
  rcache__free(u->tls_server_name);
  rcache__free(u->tls_ciphers);
  rcache__free(u->tls_ciphersuites);
  rcache__free(u->dns);
  rcache__free(u->client_name);
  rcache__free(u->key_prefix);
  rcache__free(u->redacted);
  memset(u, 0, sizeof *u);
}

/* ---- redaction of free text ------------------------------------------------------------------ */

/* A URL in free text ends at a space or control byte, or at a quote that no '@' follows
 * before the next space (a password may hold quotes: "redis://a:b:c'@d@e", fuzz_url). */
static bool url_end(const char *q) {
  if ((unsigned char)*q <= ' ') return true;
  if (*q != '"' && *q != '\'' && *q != '<' && *q != '>' && *q != '`') return false;
  for (q++; (unsigned char)*q > ' '; q++)
    if (*q == '@') return false;
  return true;
}

/* Does a new URL of a comma-separated list start at q: "://" after "@host[:port],scheme"
 * (the user info of the current URL, ending at `at`, complete)? Free text cannot tell this
 * from a password holding "@h1,redis://"; such a password is partly shown. */
static bool next_in_list(const char *start, const char *at, const char *q) {
  if (!at || strncmp(q, "://", 3) != 0) return false;
  const char *b = q;
  while (b > at + 1 && b > start &&
         (isalnum((unsigned char)b[-1]) || b[-1] == '+' || b[-1] == '.' || b[-1] == '-'))
    b--;
  if (b == q || b <= at + 1 || b[-1] != ',') return false;
  const char *h = at + 1, *comma = b - 1; /* host[:port] between '@' and ',' */
  while (h < comma && (isalnum((unsigned char)*h) || *h == '.' || *h == '-'))
    h++;
  if (h == at + 1) return false;
  if (h < comma && *h == ':') {
    const char *d = ++h;
    while (h < comma && isdigit((unsigned char)*h))
      h++;
    if (h == d) return false;
  }
  return h == comma;
}

void rcache__redact(const char *in, char *out, size_t outlen) {
  if (!out || outlen == 0) return;
  size_t n = 0;
  const char *p = in ? in : "";
  while (*p && n + 1 < outlen) {
    const char *sep = strstr(p, "://");
    if (!sep)
      sep = p + strlen(p);
    else
      sep += 3;
    /* copy up to and including "://" */
    while (p < sep && n + 1 < outlen)
      out[n++] = *p++;
    if (!*p || n + 1 >= outlen) break;
    /* the URL runs to a space or quote, or to the next URL of a list ("@h1,redis://");
     * its user info to the last '@'. Any other "://" may be inside a password (found by
     * fuzz/fuzz_url.c: "redis://u:p://x@h", "redis://u/@8p://x@h"). */
    const char *end = p, *at = NULL, *colon = NULL;
    while (*end && !url_end(end) && !next_in_list(p, at, end)) {
      if (*end == '@') at = end;
      end++;
    }
    if (at) colon = memchr(p, ':', (size_t)(at - p));
    if (!colon) continue;
    while (p <= colon && n + 1 < outlen)
      out[n++] = *p++;
    for (const char *m = "***"; *m && n + 1 < outlen; m++)
      out[n++] = *m;
    p = at;
  }
  out[n] = '\0';
}
