/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Sockets with deadlines. Plain sockets are blocking with SO_RCVTIMEO / SO_SNDTIMEO set
 * to the command timeout, so the hot path (one write, one read) costs exactly the two
 * syscalls raw hiredis makes; when less time is left than that timeout, poll() waits for
 * the rest. Connects and TLS sockets are non-blocking and driven by poll().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "transport.h"

/* ---- deadlines ------------------------------------------------------------------------------- */

/* Milliseconds left until deadline_us, rounded up; 0 when past. */
static int ms_left(int64_t deadline_us) {
  int64_t left = deadline_us - rcache__now_us();
  if (left <= 0) return 0;
  int64_t ms = (left + 999) / 1000;
  return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

/* Waits for `events` on fd. RCACHE_OK when ready, RCACHE_ETIMEOUT, RCACHE_EIO. */
static rcache_status wait_fd(int fd, short events, int64_t deadline_us) {
  for (;;) {
    int ms = ms_left(deadline_us);
    if (ms == 0) return RCACHE_ETIMEOUT;
    struct pollfd p = {fd, events, 0};
    int r = poll(&p, 1, ms);
    if (r > 0) return RCACHE_OK; /* errors and hang-ups surface in the next read/write */
    if (r == 0) return RCACHE_ETIMEOUT;
    if (errno != EINTR) return RCACHE_EIO;
  }
}

static void set_timeouts(int fd, int ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static void set_blocking(int fd, bool on) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, on ? fl & ~O_NONBLOCK : fl | O_NONBLOCK);
}

void rcache__addr_str(const rcache__addr *a, char *buf, size_t size) {
  if (a->path[0])
    snprintf(buf, size, "%s", a->path);
  else if (!a->host[0] && a->port <= 0)
    snprintf(buf, size, "(not known yet)");
  else if (strchr(a->host, ':'))
    snprintf(buf, size, "[%s]:%d", a->host, a->port);
  else
    snprintf(buf, size, "%s:%d", a->host, a->port);
}

/* ---- TLS context ----------------------------------------------------------------------------- */

static void tls_err(const char *what) {
  unsigned long e = ERR_get_error();
  char buf[256] = "";
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  rcache__errf("TLS: %s%s%s", what, buf[0] ? ": " : "", buf);
}

/* The protocol and cipher policy (docs/operations.md, "Security"): TLS 1.2 or later; in
 * TLS 1.2 only suites with forward secrecy (ECDHE or DHE key exchange) and an AEAD cipher
 * (AES-GCM, ChaCha20-Poly1305), never RSA key exchange, CBC, SHA-1 MACs or anonymous
 * suites; TLS 1.3's suites all qualify (OpenSSL's defaults). Both lists can be replaced. */
#define RCACHE_TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL"

static rcache_status tls_policy(SSL_CTX *t, const rcache_options *o) {
  if (SSL_CTX_set_min_proto_version(t, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(t, o->tls_ciphers ? o->tls_ciphers : RCACHE_TLS12_CIPHERS) != 1) {
    tls_err("tls_ciphers selects no usable cipher");
    return RCACHE_ETLS;
  }
  if (o->tls_ciphersuites && SSL_CTX_set_ciphersuites(t, o->tls_ciphersuites) != 1) {
    tls_err("tls_ciphersuites selects no usable suite");
    return RCACHE_ETLS;
  }
  return RCACHE_OK;
}

/* Called by OpenSSL when the server asks for a client certificate and none is configured
 * (the server may only offer it: tls-auth-clients optional). Noted, so that a connection
 * the server then drops is reported as what it likely is (tls_io_error). */
static int no_client_cert(SSL *ssl, X509 **x509, EVP_PKEY **pkey) {
  (void)x509;
  (void)pkey;
  rcache__sock *s = SSL_get_app_data(ssl);
  if (s) s->cert_asked = true;
  return 0; /* go on without one */
}

rcache_status rcache__tls_ctx_new(const rcache__ctx *ctx, rcache__tls_ctx **out) {
  const rcache_options *o = &ctx->opt;
  SSL_CTX *t = SSL_CTX_new(TLS_client_method());
  if (!t) return RCACHE_ENOMEM;
  if (tls_policy(t, o) != RCACHE_OK) {
    SSL_CTX_free(t);
    return RCACHE_ETLS;
  }
  SSL_CTX_set_mode(t, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
  int ok = o->tls_ca_file ? SSL_CTX_load_verify_locations(t, o->tls_ca_file, NULL)
                          : SSL_CTX_set_default_verify_paths(t);
  if (ok != 1) {
    tls_err(o->tls_ca_file ? "cannot load the CA file" : "cannot load the system CA store");
    SSL_CTX_free(t);
    return RCACHE_ETLS;
  }
  if ((o->tls_cert_file != NULL) != (o->tls_key_file != NULL)) {
    rcache__errf("TLS: tls_cert and tls_key must be given together");
    SSL_CTX_free(t);
    return RCACHE_ETLS;
  }
  if (o->tls_cert_file && (SSL_CTX_use_certificate_chain_file(t, o->tls_cert_file) != 1 ||
                           SSL_CTX_use_PrivateKey_file(t, o->tls_key_file, SSL_FILETYPE_PEM) != 1 ||
                           SSL_CTX_check_private_key(t) != 1)) {
    tls_err("cannot load the client certificate or key"); /* never the key's contents */
    SSL_CTX_free(t);
    return RCACHE_ETLS;
  }
  SSL_CTX_set_verify(t, o->tls_insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
  SSL_CTX_set_client_cert_cb(t, no_client_cert);
  *out = t;
  return RCACHE_OK;
}

void rcache__tls_ctx_free(rcache__tls_ctx *t) {
  SSL_CTX_free(t);
}

/* ---- connect --------------------------------------------------------------------------------- */

static rcache_status finish_connect(int fd, int64_t deadline_us, char *why, size_t whylen) {
  rcache_status s = wait_fd(fd, POLLOUT, deadline_us);
  if (s != RCACHE_OK) {
    snprintf(why, whylen, "%s", s == RCACHE_ETIMEOUT ? "connect timed out" : strerror(errno));
    return s;
  }
  int err = 0;
  socklen_t el = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
  if (err) {
    snprintf(why, whylen, "%s", strerror(err));
    return RCACHE_EUNAVAILABLE;
  }
  return RCACHE_OK;
}

static rcache_status connect_fd(int fd, const struct sockaddr *sa, socklen_t len,
                                int64_t deadline_us, char *why, size_t whylen) {
  if (connect(fd, sa, len) == 0) return RCACHE_OK;
  if (errno == EINPROGRESS || errno == EAGAIN || errno == EINTR)
    return finish_connect(fd, deadline_us, why, whylen);
  snprintf(why, whylen, "%s", strerror(errno));
  return RCACHE_EUNAVAILABLE;
}

static int new_socket(int family) {
  return socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

static rcache_status connect_unix(rcache__sock *s, const rcache__addr *a, int64_t deadline_us,
                                  char *why, size_t whylen) {
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  if (strlen(a->path) >= sizeof sun.sun_path) {
    snprintf(why, whylen, "socket path too long");
    return RCACHE_EUNAVAILABLE;
  }
  memcpy(sun.sun_path, a->path, strlen(a->path) + 1);
  if ((s->fd = new_socket(AF_UNIX)) < 0) return RCACHE_EIO;
  return connect_fd(s->fd, (struct sockaddr *)&sun, sizeof sun, deadline_us, why, whylen);
}

static rcache_status connect_tcp(rcache__sock *s, const rcache__addr *a, int64_t deadline_us,
                                 char *why, size_t whylen) {
  char port[16];
  snprintf(port, sizeof port, "%d", a->port);
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  int gai = getaddrinfo(a->host, port, &hints, &res);
  if (gai == EAI_NONAME) { /* a name, not an address: resolve it (may block: see docs) */
    hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    gai = getaddrinfo(a->host, port, &hints, &res);
  }
  if (gai != 0) {
    snprintf(why, whylen, "cannot resolve %.100s: %s", a->host, gai_strerror(gai));
    return RCACHE_EUNAVAILABLE;
  }
  rcache_status st = RCACHE_EUNAVAILABLE;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    if ((s->fd = new_socket(ai->ai_family)) < 0) continue;
    st = connect_fd(s->fd, ai->ai_addr, ai->ai_addrlen, deadline_us, why, whylen);
    if (st == RCACHE_OK || st == RCACHE_ETIMEOUT) break;
    close(s->fd);
    s->fd = -1;
  }
  freeaddrinfo(res);
  if (st != RCACHE_OK) return st;
  int one = 1, idle = 30, intvl = 10, cnt = 3;
  setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(s->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  setsockopt(s->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(s->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  setsockopt(s->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  return RCACHE_OK;
}

/* ---- SIGPIPE around TLS ---------------------------------------------------------------------- */

/* OpenSSL writes to its socket with write(), which raises SIGPIPE when the server has gone,
 * and SIGPIPE's default action ends the whole program (a 20 MB set over TLS to a server that
 * had just dropped the connection killed the process with signal 13). Plain sockets use
 * send(MSG_NOSIGNAL). Around each TLS call, SIGPIPE is blocked in the calling thread only,
 * and one raised meanwhile is consumed (as libpq does): the program's own SIGPIPE handling
 * and other threads are untouched. */
typedef struct sigpipe_guard {
  sigset_t old;
  bool was_pending;
} sigpipe_guard;

static void sigpipe_block(sigpipe_guard *g) {
  sigset_t set, pend;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, &g->old);
  sigemptyset(&pend);
  g->was_pending = sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE);
}

static void sigpipe_unblock(const sigpipe_guard *g) {
  int saved = errno; /* SSL_get_error() may look at it */
  if (!g->was_pending) {
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pend);
    if (sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE)) {
      const struct timespec zero = {0, 0};
      while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {
      }
    }
  }
  pthread_sigmask(SIG_SETMASK, &g->old, NULL);
  errno = saved;
}

static bool is_ip(const char *host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static rcache_status tls_handshake(rcache__sock *s, const rcache__ctx *ctx, rcache__tls_ctx *t,
                                   const rcache__addr *a, int64_t deadline_us) {
  SSL *ssl = SSL_new(t);
  if (!ssl) return RCACHE_ENOMEM;
  s->ssl = ssl;
  SSL_set_app_data(ssl, s);
  s->cert_asked = s->cert_guess = false;
  s->fresh = true;
  SSL_set_fd(ssl, s->fd);
  const char *name = ctx->opt.tls_server_name ? ctx->opt.tls_server_name : a->host;
  if (!is_ip(name)) SSL_set_tlsext_host_name(ssl, name);
  if (!ctx->opt.tls_insecure) {
    /* the name must be in the certificate's subjectAltName: no fallback to its subject's
     * CN (deprecated since RFC 6125, and a CN is not constrained by name constraints) */
    SSL_set_hostflags(ssl,
                      X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = is_ip(name) ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name)
                         : SSL_set1_host(ssl, name);
    if (ok != 1) {
      rcache__errf("TLS: cannot set the name to verify (%s)", name);
      return RCACHE_ETLS;
    }
  }
  for (;;) {
    ERR_clear_error();
    sigpipe_guard g;
    sigpipe_block(&g);
    int r = SSL_connect(ssl);
    sigpipe_unblock(&g);
    if (r == 1) return RCACHE_OK;
    int e = SSL_get_error(ssl, r);
    short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (ev) {
      rcache_status ws = wait_fd(s->fd, ev, deadline_us);
      if (ws != RCACHE_OK) {
        rcache__errf("TLS handshake with %s: %s", name,
                     ws == RCACHE_ETIMEOUT ? "timed out" : "I/O error");
        return ws;
      }
      continue;
    }
    long vr = SSL_get_verify_result(ssl);
    if (vr != X509_V_OK) {
      rcache__errf("TLS: certificate of %s not accepted: %s", name,
                   X509_verify_cert_error_string(vr));
      return RCACHE_ETLS;
    }
    /* The connection dropped mid-handshake: an outage like any other, not a TLS
     * configuration problem. Alerts and protocol mismatches stay RCACHE_ETLS. */
    unsigned long ee = ERR_peek_error();
    if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN ||
        (ERR_GET_LIB(ee) == ERR_LIB_SSL &&
         ERR_GET_REASON(ee) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
      ERR_clear_error();
      rcache__errf("TLS handshake with %s: connection closed by the server", name);
      return RCACHE_EIO;
    }
    tls_err("handshake failed");
    return RCACHE_ETLS;
  }
}

rcache_status rcache__sock_connect(rcache__sock *s, const rcache__ctx *ctx, rcache__tls_ctx *tls,
                                   const rcache__addr *a, int64_t deadline_us) {
  s->fd = -1;
  s->ssl = NULL;
  s->io_timeout_ms = 0;
  char why[192] = "", where[300];
  rcache__addr_str(a, where, sizeof where);
  rcache_status st = a->path[0] ? connect_unix(s, a, deadline_us, why, sizeof why)
                                : connect_tcp(s, a, deadline_us, why, sizeof why);
  if (st != RCACHE_OK) {
    rcache__errf("cannot connect to %s: %s", where, why[0] ? why : rcache_strerror(st));
    rcache__sock_close(s);
    return st;
  }
  if (tls) {
    st = tls_handshake(s, ctx, tls, a, deadline_us);
    if (st != RCACHE_OK) rcache__sock_close(s);
    return st;
  }
  /* Half the command timeout: a call that starts with at least that much time left can
   * block in the kernel without overshooting its deadline. */
  s->io_timeout_ms = ctx->opt.command_timeout_ms / 2 > 0 ? ctx->opt.command_timeout_ms / 2 : 1;
  set_blocking(s->fd, true);
  set_timeouts(s->fd, s->io_timeout_ms);
  return RCACHE_OK;
}

void rcache__sock_close(rcache__sock *s) {
  if (s->ssl) {
    SSL_free(s->ssl); /* no close_notify: it could block, and Redis does not need it */
    s->ssl = NULL;
  }
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
}

/* ---- I/O ------------------------------------------------------------------------------------- */

/* A TLS error after the handshake. With TLS 1.3 the server checks the client's certificate
 * after the client considers the handshake done: its refusal (an alert such as "certificate
 * required") arrives with the first read -- or is lost, when our next write meets the
 * closed connection first. Either is a TLS configuration problem, not a broken
 * connection. */
static rcache_status tls_io_error(rcache__sock *s, int e) {
  if (e == SSL_ERROR_SSL && ERR_peek_error() != 0) {
    tls_err("the server ended the session");
    return RCACHE_ETLS;
  }
  ERR_clear_error();
  if (s->fresh && s->cert_asked) {
    s->cert_guess = true; /* a guess: a server killing the connection looks the same */
    rcache__errf("TLS: the server asked for a client certificate, none is configured "
                 "(tls_cert, tls_key), and it closed the connection");
    return RCACHE_ETLS;
  }
  rcache__errf("TLS: connection %s",
               e == SSL_ERROR_ZERO_RETURN ? "closed by the server" : "broken");
  return RCACHE_EIO;
}

static rcache_status tls_io(rcache__sock *s, char *buf, size_t len, size_t *n, bool rd,
                            int64_t deadline_us) {
  for (;;) {
    ERR_clear_error();
    sigpipe_guard g;
    sigpipe_block(&g);
    int r = rd ? SSL_read(s->ssl, buf, (int)(len > 0x7fffffff ? 0x7fffffff : len))
               : SSL_write(s->ssl, buf, (int)(len > 0x7fffffff ? 0x7fffffff : len));
    sigpipe_unblock(&g);
    if (r > 0) {
      if (rd) s->fresh = false;
      *n = (size_t)r;
      return RCACHE_OK;
    }
    int e = SSL_get_error(s->ssl, r);
    short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (!ev) return tls_io_error(s, e);
    rcache_status ws = wait_fd(s->fd, ev, deadline_us);
    if (ws != RCACHE_OK) return ws;
  }
}

/* Plain sockets: a blocking call when the socket's own timeout fits in the time left,
 * otherwise poll for the rest first. */
static rcache_status plain_io(rcache__sock *s, char *buf, size_t len, size_t *n, bool rd,
                              int64_t deadline_us) {
  for (;;) {
    int left = ms_left(deadline_us);
    if (left == 0) {
      /* what has arrived by the deadline is still read (a batch's replies from several
       * servers are read one server after the other) */
      ssize_t r = rd ? recv(s->fd, buf, len, MSG_DONTWAIT) : -1;
      if (r <= 0) return RCACHE_ETIMEOUT;
      *n = (size_t)r;
      return RCACHE_OK;
    }
    if (left < s->io_timeout_ms) {
      rcache_status ws = wait_fd(s->fd, rd ? POLLIN : POLLOUT, deadline_us);
      if (ws != RCACHE_OK) return ws;
    }
    ssize_t r = rd ? recv(s->fd, buf, len, 0) : send(s->fd, buf, len, MSG_NOSIGNAL);
    if (r > 0) {
      *n = (size_t)r;
      return RCACHE_OK;
    }
    if (r == 0) {
      rcache__errf("connection closed by the server");
      return RCACHE_EIO;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (ms_left(deadline_us) == 0) return RCACHE_ETIMEOUT;
      continue;
    }
    rcache__errf("connection broken: %s", strerror(errno));
    return RCACHE_EIO;
  }
}

rcache_status rcache__sock_write(rcache__sock *s, const char *buf, size_t len,
                                 int64_t deadline_us) {
  while (len > 0) {
    size_t n = 0;
    rcache_status st = s->ssl ? tls_io(s, (char *)buf, len, &n, false, deadline_us)
                              : plain_io(s, (char *)buf, len, &n, false, deadline_us);
    if (st != RCACHE_OK) return st;
    buf += n;
    len -= n;
  }
  return RCACHE_OK;
}

rcache_status rcache__sock_read(rcache__sock *s, char *buf, size_t cap, size_t *n,
                                int64_t deadline_us) {
  if (s->ssl) return tls_io(s, buf, cap, n, true, deadline_us);
  return plain_io(s, buf, cap, n, true, deadline_us);
}

bool rcache__sock_pending(rcache__sock *s) {
  return s->ssl && SSL_pending(s->ssl) > 0;
}

bool rcache__sock_stale(rcache__sock *s) {
  if (s->fd < 0) return true;
  if (s->ssl && SSL_pending(s->ssl) > 0) return true;
  struct pollfd p = {s->fd, POLLIN, 0};
  return poll(&p, 1, 0) != 0; /* readable with nothing asked = EOF or junk */
}
