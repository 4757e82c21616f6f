/* SPDX-License-Identifier: BSD-3-Clause */
/* rcache CLI: a password from somewhere other than the URL, which `ps` and shell history
 * show. Sources, first match wins: --askpass (asked on the terminal, echo off),
 * --password-file PATH (its first line), $RCACHE_PASSWORD. Giving two of the options, or one
 * with a URL that holds a password, is a usage error; the environment variable is used only
 * when the URL has no password, and is ignored by memory:// and none://.
 *
 * rcache_options has no password field, so the password goes into the URL given to
 * rcache_open() (percent-encoded, after the URL's user name if any). The copies are read
 * with read(2) (no stdio buffer keeps one) and wiped once rcache_open() has taken its own. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

#define PW_MAX 4096 /* longer than any password a server is configured with */

void cli_wipe(void *p, size_t n) {
  volatile unsigned char *v = p;
  while (n--)
    *v++ = 0;
}

void cli_url_free(char *url) {
  if (url) cli_wipe(url, strlen(url));
  free(url);
}

/* ---- the URL (pure) -------------------------------------------------------------------------- */

static bool unreserved(unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         strchr("-._~", ch) != NULL;
}

/* url[0, at) + ":" + encoded pw + ("@" when add_at) + url[from, end); *out malloc'd. */
static int splice(const char *url, size_t at, size_t from, const char *pw, size_t pwlen,
                  bool add_at, char **out) {
  size_t tail = strlen(url + from), n = at + 1 + 3 * pwlen + 1 + tail + 1;
  char *s = malloc(n), *o = s;
  if (!s) return -1;
  memcpy(o, url, at);
  o += at;
  *o++ = ':';
  for (size_t i = 0; i < pwlen; i++) {
    unsigned char ch = (unsigned char)pw[i];
    if (unreserved(ch)) {
      *o++ = (char)ch;
    } else {
      *o++ = '%';
      *o++ = "0123456789ABCDEF"[ch >> 4];
      *o++ = "0123456789ABCDEF"[ch & 15];
    }
  }
  if (add_at) *o++ = '@';
  memcpy(o, url + from, tail + 1);
  *out = s;
  return 0;
}

/* Where the user info ends, by the library's rules (src/url.c): the first "@/" for unix://,
 * else the last '@' before the query. Returns the '@' or NULL. */
static const char *userinfo_end(const char *auth, size_t authlen, bool unix_scheme) {
  if (unix_scheme) {
    if (auth[0] == '/') return NULL;
    const char *at = strstr(auth, "@/");
    return at && (size_t)(at - auth) < authlen ? at : NULL;
  }
  const char *at = NULL;
  for (size_t i = 0; i < authlen; i++)
    if (auth[i] == '@') at = auth + i;
  return at;
}

int cli_inject_password(const char *url, const char *pw, size_t pwlen, char **out) {
  static const char *const servers[] = {"redis",      "rediss",         "unix",
                                        "redis+unix", "redis+sentinel", "rediss+sentinel"};
  *out = NULL;
  const char *sep = strstr(url, "://");
  if (!sep) return 3;
  size_t sl = (size_t)(sep - url), k = 0, ns = sizeof servers / sizeof servers[0];
  while (k < ns && !(strlen(servers[k]) == sl && strncasecmp(servers[k], url, sl) == 0))
    k++;
  if (k == ns)
    return sl == 6 && strncasecmp(url, "memory", 6) == 0 ? 2
           : sl == 4 && strncasecmp(url, "none", 4) == 0 ? 2
                                                         : 3;
  const char *auth = sep + 3;
  size_t authlen = strcspn(auth, "?");
  bool unix_scheme = k == 2 || k == 3;
  if (unix_scheme && auth[0] != '/' && !userinfo_end(auth, authlen, true)) return 3;
  const char *at = userinfo_end(auth, authlen, unix_scheme);
  size_t a = (size_t)(auth - url);
  if (!at) return splice(url, a, a, pw, pwlen, true, out); /* "scheme://" ":pw@" rest */
  const char *colon = memchr(auth, ':', (size_t)(at - auth));
  if (colon && colon + 1 < at) return 1;               /* "user:pw@" */
  size_t u_end = (size_t)((colon ? colon : at) - url); /* "user@" or "user:@" */
  return splice(url, u_end, (size_t)(at - url), pw, pwlen, false, out);
}

/* ---- the sources ----------------------------------------------------------------------------- */

/* Reads fd up to the first newline (dropped, with a '\r' before it) or EOF into buf[PW_MAX].
 * Returns the length, or -1 on a read error or a line longer than PW_MAX. */
static long read_line(int fd, char *buf) {
  size_t n = 0;
  for (;;) {
    char ch;
    ssize_t r = read(fd, &ch, 1); /* byte by byte: nothing after the line is consumed */
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0 || ch == '\n') break;
    if (n == PW_MAX) return -1;
    buf[n++] = ch;
  }
  if (n && buf[n - 1] == '\r') n--;
  return (long)n;
}

static long from_file(cli *g, const char *path, char *buf) {
  char shown[CLI_SHOWN_MAX];
  cli_shown(path, shown, sizeof shown);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return cli_usage_error(g, "--password-file '%s': %s", shown, strerror(errno)), -1;
  long n = read_line(fd, buf);
  close(fd);
  if (n < 0)
    cli_usage_error(g, "--password-file '%s': unreadable, or longer than %d bytes", shown, PW_MAX);
  return n;
}

/* The terminal's settings while echo is off, restored by a signal (Ctrl-C at the prompt). */
static int tty_fd = -1;
static struct termios tty_saved;

static void tty_restore_and_die(int sig) {
  tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
  signal(sig, SIG_DFL);
  raise(sig);
}

/* Asks on the controlling terminal (not stdin, which may carry a value for `set`). */
static long from_tty(cli *g, char *buf) {
  int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
  struct termios quiet;
  if (fd < 0 || tcgetattr(fd, &tty_saved) != 0) {
    if (fd >= 0) close(fd);
    return cli_usage_error(g, "--askpass: no terminal to ask on"), -1;
  }
  quiet = tty_saved;
  quiet.c_lflag &= ~(tcflag_t)ECHO;
  quiet.c_lflag |= ECHONL | ICANON;
  struct sigaction sa = {.sa_handler = tty_restore_and_die}, old[3];
  const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
  tty_fd = fd;
  for (int i = 0; i < 3; i++)
    sigaction(sigs[i], &sa, &old[i]);
  tcsetattr(fd, TCSAFLUSH, &quiet); /* before the prompt: what is typed after it is kept */
  dprintf(fd, "Password for %s: ", g->url_shown);
  long n = read_line(fd, buf);
  tcsetattr(fd, TCSAFLUSH, &tty_saved);
  for (int i = 0; i < 3; i++)
    sigaction(sigs[i], &old[i], NULL);
  close(fd);
  if (n < 0)
    cli_usage_error(g, "--askpass: cannot read the password, or longer than %d bytes", PW_MAX);
  return n;
}

/* The password into buf: its length, 0 when no source gives one, -1 after a usage error.
 * *explicit tells whether an option (not the environment) gave it. */
static long password(cli *g, char *buf, bool *explicit) {
  *explicit = g->askpass || g->password_file;
  if (g->askpass && g->password_file)
    return cli_usage_error(g, "--askpass and --password-file exclude each other"), -1;
  long n = g->askpass         ? from_tty(g, buf)
           : g->password_file ? from_file(g, g->password_file, buf)
                              : 0;
  if (!*explicit) {
    const char *env = getenv("RCACHE_PASSWORD");
    n = env ? (long)strlen(env) : 0;
    if (n > PW_MAX)
      return cli_usage_error(g, "$RCACHE_PASSWORD is longer than %d bytes", PW_MAX), -1;
    if (n) memcpy(buf, env, (size_t)n);
  } else if (n == 0) {
    return cli_usage_error(g, "the password is empty"), -1;
  }
  return n;
}

int cli_url_with_password(cli *g, char **url_out) {
  char buf[PW_MAX];
  bool explicit;
  *url_out = NULL;
  long n = password(g, buf, &explicit);
  int r = n > 0 ? cli_inject_password(g->url, buf, (size_t)n, url_out) : 0;
  cli_wipe(buf, sizeof buf);
  if (n <= 0) return n < 0 ? CLI_USAGE : CLI_OK;
  if (r == 0 || r == 3 || (!explicit && r != -1)) return CLI_OK; /* 3: the library says why */
  if (r == 1) return cli_usage_error(g, "the URL has a password already (%s)", g->url_shown);
  if (r == 2) return cli_usage_error(g, "%s takes no password", g->url_shown);
  fprintf(stderr, "rcache %s: out of memory\n", g->cmd);
  return CLI_ERROR;
}
