/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Sockets with deadlines. Plain sockets are blocking with SO_RCVTIMEO set to half the
 * command timeout, and written with MSG_DONTWAIT, so the hot path (one write, one read)
 * costs exactly the two syscalls raw hiredis makes; a write without room, or a read when
 * less time is left than that timeout, waits in poll() by the deadline. Connects and TLS
 * sockets are non-blocking and driven by poll().
 */
#include <ares.h>
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

#include "engine/transport.h"

/* ---- deadlines ------------------------------------------------------------------------------- */

/* The calling thread's stop flag (rcache__io_abort_on): NULL in a program's threads. */
static _Thread_local const _Atomic bool *tl_stop;

#define ABORT_SLICE_MS 10 /* how soon a background thread's wait sees its stop flag */

const _Atomic bool *rcache__io_abort_on(const _Atomic bool *stop) {
  const _Atomic bool *prev = tl_stop;
  tl_stop = stop;
  return prev;
}

bool rcache__io_aborted(void) {
  return tl_stop && atomic_load_explicit(tl_stop, memory_order_relaxed);
}

/* Milliseconds left until deadline_us, rounded up; 0 when past. */
static int ms_left(int64_t deadline_us) {
  int64_t left = deadline_us - rcache__now_us();
  if (left <= 0) return 0;
  int64_t ms = (left + 999) / 1000;
  return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

/* Waits for `events` on fd. RCACHE_OK when ready, RCACHE_ETIMEOUT, RCACHE_EIO, or
 * RCACHE_EUNAVAILABLE when the thread's stop flag was raised (then rcache__io_aborted()). A
 * thread with a stop flag waits in slices of ABORT_SLICE_MS, looking at it in between. */
static rcache_status wait_fd(int fd, short events, int64_t deadline_us) {
  for (;;) {
    if (rcache__io_aborted()) return RCACHE_EUNAVAILABLE;
    int ms = ms_left(deadline_us);
    if (ms == 0) return RCACHE_ETIMEOUT;
    bool sliced = tl_stop && ms > ABORT_SLICE_MS;
    struct pollfd p = {fd, events, 0};
    int r = rcache__poll(&p, 1, sliced ? ABORT_SLICE_MS : ms);
    if (r > 0) return RCACHE_OK; /* errors and hang-ups surface in the next read/write */
    if (r == 0 && !sliced) return RCACHE_ETIMEOUT;
    if (r < 0 && errno != EINTR) return RCACHE_EIO;
  }
}

/* Why a wait_fd failed, for messages. */
static const char *wait_error(rcache_status s) {
  if (s == RCACHE_ETIMEOUT) return "timed out";
  if (rcache__io_aborted()) return "abandoned: the handle is closing";
  return strerror(errno);
}

static void set_read_timeout(int fd, int ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
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
    snprintf(why, whylen, "connect %s", wait_error(s));
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

/* ---- name look-ups ----------------------------------------------------------------------------
 *
 * Host names are resolved with c-ares, by the connect's deadline: getaddrinfo() has none
 * (a resolver that does not answer held the caller for resolv.conf's timeout x attempts,
 * 10 s by default) and cannot be abandoned. A channel per look-up reads the system's
 * configuration (resolv.conf: nameservers, search, ndots, timeout; /etc/hosts) each time,
 * as glibc does when it changes, and nothing is cached: every connect asks, as before.
 * Addresses (IPv4, IPv6) and Unix sockets never reach the resolver. NSS sources other
 * than files and DNS (mDNS, LDAP, systemd's nss-resolve) are not consulted. */

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_ready = ARES_ENOTINITIALIZED;

static void ares_setup(void) {
  ares_ready = ares_library_init(ARES_LIB_INIT_ALL);
}

/* c-ares' sockets must not leak into programs started with exec. */
static int ares_cloexec(ares_socket_t fd, int type, void *ud) {
  (void)type;
  (void)ud;
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  return 0;
}

typedef struct lookup {
  bool done;
  int status;
  struct ares_addrinfo *res;
} lookup;

static void lookup_done(void *arg, int status, int timeouts, struct ares_addrinfo *res) {
  (void)timeouts;
  lookup *l = arg;
  if (l->done) { /* cannot happen: one answer per query */
    ares_freeaddrinfo(res);
    return;
  }
  l->done = true;
  l->status = status;
  l->res = res;
}

/* A channel with the system's configuration, or `servers` ("host[:port],..."), whose
 * tries fit in the time left: each try waits a quarter of it (c-ares doubles the wait
 * when it starts over on the first server), so one lost datagram is asked again. */
static int dns_channel(ares_channel *ch, const char *servers, int left_ms) {
  pthread_once(&ares_once, ares_setup);
  if (ares_ready != ARES_SUCCESS) return ares_ready;
  struct ares_options o;
  memset(&o, 0, sizeof o);
  o.timeout = left_ms / 4 > 0 ? left_ms / 4 : 1;
  o.tries = 3;
  int rc = ares_init_options(ch, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
  if (rc != ARES_SUCCESS) return rc;
  ares_set_socket_configure_callback(*ch, ares_cloexec, NULL);
  if (servers && (rc = ares_set_servers_ports_csv(*ch, servers)) != ARES_SUCCESS) ares_destroy(*ch);
  return rc;
}

rcache_status rcache__dns_servers_check(const char *servers) {
  ares_channel ch;
  int rc = dns_channel(&ch, servers, 1000);
  if (rc == ARES_SUCCESS) {
    ares_destroy(ch);
    return RCACHE_OK;
  }
  if (rc == ARES_ENOMEM) return RCACHE_ENOMEM;
  rcache__errf("invalid option: dns_servers '%.200s' is not a list of host[:port] "
               "addresses (%s)",
               servers, ares_strerror(rc));
  return RCACHE_EINVAL;
}

/* Drives the channel until the look-up is answered, deadline_us passes or the thread's
 * stop flag is raised. */
static void dns_wait(ares_channel ch, const lookup *l, int64_t deadline_us) {
  while (!l->done && !rcache__io_aborted()) {
    int ms = ms_left(deadline_us);
    if (ms == 0) return;
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    /* c-ares' ARES_GETSOCK_WRITABLE shifts a signed 1 into the sign bit: unsigned here */
    unsigned bits = (unsigned)ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
    struct pollfd p[ARES_GETSOCK_MAXNUM];
    nfds_t n = 0;
    for (unsigned i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
      short ev = (short)((bits & (1u << i) ? POLLIN : 0) |
                         (bits & (1u << (i + ARES_GETSOCK_MAXNUM)) ? POLLOUT : 0));
      if (ev) p[n++] = (struct pollfd){socks[i], ev, 0};
    }
    struct timeval most = {ms / 1000, (ms % 1000) * 1000}, tv;
    const struct timeval *t = ares_timeout(ch, &most, &tv);
    int wait = (int)(t->tv_sec * 1000 + (t->tv_usec + 999) / 1000);
    if (tl_stop && wait > ABORT_SLICE_MS) wait = ABORT_SLICE_MS;
    int r = rcache__poll(p, (unsigned long)n, wait);
    if (r < 0 && errno != EINTR) return;
    if (r <= 0) { /* retransmissions and c-ares' own timeouts */
      ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      continue;
    }
    for (nfds_t i = 0; i < n && !l->done; i++) {
      if (!p[i].revents) continue;
      bool rd = p[i].revents & (POLLIN | POLLERR | POLLHUP);
      ares_process_fd(ch, rd ? p[i].fd : ARES_SOCKET_BAD,
                      p[i].revents & POLLOUT ? p[i].fd : ARES_SOCKET_BAD);
    }
  }
}

/* Resolves host:port by deadline_us. RCACHE_OK with *out (ares_freeaddrinfo), or
 * RCACHE_ETIMEOUT (no answer in time), RCACHE_EUNAVAILABLE (no such name, no servers,
 * refused, abandoned) or RCACHE_ENOMEM, with the reason in why. */
static rcache_status resolve(const char *host, const char *port, const char *servers,
                             int64_t deadline_us, struct ares_addrinfo **out, char *why,
                             size_t whylen) {
  *out = NULL;
  int left = ms_left(deadline_us);
  ares_channel ch;
  int rc = left > 0 ? dns_channel(&ch, servers, left) : ARES_ETIMEOUT;
  if (rc != ARES_SUCCESS) {
    snprintf(why, whylen, "DNS look-up of %.100s not started: %s", host, ares_strerror(rc));
    return rc == ARES_ENOMEM     ? RCACHE_ENOMEM
           : rc == ARES_ETIMEOUT ? RCACHE_ETIMEOUT
                                 : RCACHE_EUNAVAILABLE;
  }
  struct ares_addrinfo_hints hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = ARES_AI_NUMERICSERV | ARES_AI_ADDRCONFIG;
  lookup l = {false, ARES_SUCCESS, NULL};
  ares_getaddrinfo(ch, host, port, &hints, lookup_done, &l);
  dns_wait(ch, &l, deadline_us);
  bool answered = l.done, aborted = rcache__io_aborted();
  ares_destroy(ch); /* an unanswered look-up is called back with ARES_EDESTRUCTION */
  if (answered && l.status == ARES_SUCCESS && l.res && l.res->nodes) {
    *out = l.res;
    return RCACHE_OK;
  }
  ares_freeaddrinfo(l.res);
  if (!answered || l.status == ARES_ETIMEOUT) {
    snprintf(why, whylen, "DNS look-up of %.100s %s", host,
             aborted ? "abandoned: the handle is closing"
                     : "timed out (no answer from the name servers within connect_timeout_ms)");
    return aborted ? RCACHE_EUNAVAILABLE : RCACHE_ETIMEOUT;
  }
  snprintf(why, whylen, "DNS look-up of %.100s failed: %s", host,
           l.status == ARES_SUCCESS ? "no address" : ares_strerror(l.status));
  return l.status == ARES_ENOMEM ? RCACHE_ENOMEM : RCACHE_EUNAVAILABLE;
}

/* Tries each address in turn by one deadline (RFC 6724 order, as getaddrinfo sorts). */
static rcache_status connect_any(rcache__sock *s, const struct sockaddr *const *addrs,
                                 const socklen_t *lens, size_t n, int64_t deadline_us, char *why,
                                 size_t whylen) {
  rcache_status st = RCACHE_EUNAVAILABLE;
  for (size_t i = 0; i < n; i++) {
    if ((s->fd = new_socket(addrs[i]->sa_family)) < 0) continue;
    st = connect_fd(s->fd, addrs[i], lens[i], deadline_us, why, whylen);
    if (st == RCACHE_OK || st == RCACHE_ETIMEOUT || rcache__io_aborted()) break;
    close(s->fd);
    s->fd = -1;
  }
  return st;
}

#define MAX_ADDRS 16

static rcache_status connect_tcp(rcache__sock *s, const rcache__sock_opts *o, const rcache__addr *a,
                                 int64_t deadline_us, char *why, size_t whylen) {
  char port[16];
  snprintf(port, sizeof port, "%d", a->port);
  const struct sockaddr *addrs[MAX_ADDRS];
  socklen_t lens[MAX_ADDRS];
  size_t n = 0;
  struct addrinfo hints, *num = NULL;
  struct ares_addrinfo *named = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV; /* parses; never asks a resolver */
  int gai = getaddrinfo(a->host, port, &hints, &num);
  if (gai == 0) {
    for (struct addrinfo *ai = num; ai && n < MAX_ADDRS; ai = ai->ai_next, n++) {
      addrs[n] = ai->ai_addr;
      lens[n] = ai->ai_addrlen;
    }
  } else if (gai == EAI_NONAME) { /* a name, not an address */
    rcache_status rs = resolve(a->host, port, o->dns_servers, deadline_us, &named, why, whylen);
    if (rs != RCACHE_OK) return rs;
    for (struct ares_addrinfo_node *ai = named->nodes; ai && n < MAX_ADDRS; ai = ai->ai_next, n++) {
      addrs[n] = ai->ai_addr;
      lens[n] = ai->ai_addrlen;
    }
  } else {
    snprintf(why, whylen, "bad address %.100s: %s", a->host, gai_strerror(gai));
    return RCACHE_EUNAVAILABLE;
  }
  rcache_status st = connect_any(s, addrs, lens, n, deadline_us, why, whylen);
  if (num) freeaddrinfo(num);
  if (named) ares_freeaddrinfo(named);
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

/* The peer went away (closed, reset, or ended the TCP stream without TLS's close_notify):
 * an outage like any other, never a TLS configuration problem. Reads the queued error. */
static bool tls_dropped(int e) {
  unsigned long ee = ERR_peek_error();
  return e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN ||
         (ERR_GET_LIB(ee) == ERR_LIB_SSL &&
          ERR_GET_REASON(ee) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
}

static bool is_ip(const char *host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static rcache_status tls_handshake(rcache__sock *s, const rcache__sock_opts *o, rcache__tls_ctx *t,
                                   const rcache__addr *a, int64_t deadline_us) {
  SSL *ssl = SSL_new(t);
  if (!ssl) return RCACHE_ENOMEM;
  s->ssl = ssl;
  SSL_set_app_data(ssl, s);
  s->cert_asked = s->cert_guess = false;
  s->fresh = true;
  SSL_set_fd(ssl, s->fd);
  const char *name = o->tls_server_name ? o->tls_server_name : a->host;
  if (!is_ip(name)) SSL_set_tlsext_host_name(ssl, name);
  if (!o->tls_insecure) {
    /* SSL_set1_host(ssl, "") clears the names to verify and succeeds: no name check at all */
    if (!*name) {
      rcache__errf("TLS: no host name to verify");
      return RCACHE_ETLS;
    }
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
      /* a deadline that passes here comes before any verdict on the certificate: OpenSSL
       * checks the chain inside SSL_connect as it arrives (SSL_VERIFY_PEER, no callback) and
       * fails the handshake at once (below), so a timeout is a slow server, never a refusal
       * unseen (strict_config's verdict needs a connect_timeout_ms the server can meet) */
      rcache_status ws = wait_fd(s->fd, ev, deadline_us);
      if (ws != RCACHE_OK) {
        rcache__errf("TLS handshake with %s: %s", name, wait_error(ws));
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
    if (tls_dropped(e)) {
      ERR_clear_error();
      rcache__errf("TLS handshake with %s: connection closed by the server", name);
      return RCACHE_EIO;
    }
    tls_err("handshake failed");
    return RCACHE_ETLS;
  }
}

rcache__sock_opts rcache__sock_opts_of(const rcache_options *opt) {
  return (rcache__sock_opts){.dns_servers = opt->dns_servers,
                             .tls_server_name = opt->tls_server_name,
                             .tls_insecure = opt->tls_insecure,
                             .command_timeout_ms = opt->command_timeout_ms};
}

rcache_status rcache__sock_connect(rcache__sock *s, const rcache__sock_opts *o,
                                   rcache__tls_ctx *tls, const rcache__addr *a,
                                   int64_t deadline_us) {
  *s = (rcache__sock){.fd = -1};
  char why[192] = "", where[300];
  rcache__addr_str(a, where, sizeof where);
  rcache_status st = a->path[0] ? connect_unix(s, a, deadline_us, why, sizeof why)
                                : connect_tcp(s, o, a, deadline_us, why, sizeof why);
  if (st != RCACHE_OK) {
    rcache__errf("cannot connect to %s: %s", where, why[0] ? why : rcache_strerror(st));
    rcache__sock_close(s);
    return st;
  }
  if (tls) {
    st = tls_handshake(s, o, tls, a, deadline_us);
    if (st != RCACHE_OK) rcache__sock_close(s);
    return st;
  }
  /* Half the command timeout: a call that starts with at least that much time left can
   * block in the kernel without overshooting its deadline. */
  s->io_timeout_ms = o->command_timeout_ms / 2 > 0 ? o->command_timeout_ms / 2 : 1;
  set_blocking(s->fd, true);
  set_read_timeout(s->fd, s->io_timeout_ms);
#ifdef SCM_TIMESTAMPNS
  if (!a->path[0]) { /* (a Unix socket's stream carries no receive timestamps) */
    int one = 1;
    s->stamps_on = setsockopt(s->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) == 0;
  }
#endif
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

/* A read or write its thread's stop flag ended: an I/O failure for the connection. */
static rcache_status aborted_io(void) {
  rcache__errf("I/O abandoned: the handle is closing");
  return RCACHE_EIO;
}

/* A TLS error after the handshake: a broken connection (RCACHE_EIO, retried and told to the
 * breaker like any other), whatever OpenSSL calls it -- a peer gone without close_notify
 * ("unexpected eof while reading"), a corrupt record -- except a refusal. With TLS 1.3 the
 * server checks the client's certificate after the client considers the handshake done: its
 * refusal (an alert such as "certificate required") arrives with the session's first read --
 * or is lost, when our next write meets the closed connection first (the guess below). Either
 * is a TLS configuration problem (RCACHE_ETLS). */
static rcache_status tls_io_error(rcache__sock *s, int e) {
  bool dropped = tls_dropped(e);
  if (!dropped && s->fresh && e == SSL_ERROR_SSL && ERR_peek_error() != 0) {
    tls_err("the server ended the session");
    return RCACHE_ETLS;
  }
  if (s->fresh && s->cert_asked) {
    ERR_clear_error();
    s->cert_guess = true; /* a guess: a server killing the connection looks the same */
    rcache__errf("TLS: the server asked for a client certificate, none is configured "
                 "(tls_cert, tls_key), and it closed the connection");
    return RCACHE_ETLS;
  }
  if (!dropped && e == SSL_ERROR_SSL) {
    tls_err("connection broken");
    return RCACHE_EIO;
  }
  ERR_clear_error();
  rcache__errf("TLS: connection %s",
               dropped && e != SSL_ERROR_SYSCALL ? "closed by the server" : "broken");
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
    if (ws == RCACHE_EUNAVAILABLE) return aborted_io();
    if (ws != RCACHE_OK) return ws;
  }
}

void rcache__sock_ask(rcache__sock *s) {
  if (s->stamps_on && !s->asked_ns) s->asked_ns = rcache__wall_ns();
}

void rcache__sock_answered(rcache__sock *s) {
  s->asked_ns = 0;
}

#ifdef SCM_TIMESTAMPNS
/* A read's receive timestamp (0: none came) against the moment the oldest unanswered request
 * was written. A timestamp at or after it vouches for the socket's clock (one on another clock,
 * such as a sender's monotonic departure time passed on through loopback, would be far before
 * it, and the socket would stay unchecked, polled before each write): reads are checked from
 * then on, and one before it means the bytes were waiting when the request went
 * out, so they are not its reply. A read that carries no timestamp cannot be checked: the
 * socket is polled before its next writes until a read vouches for it again. (Taking that
 * read as out of step instead failed sound exchanges: Linux now and then delivers a reply
 * without its timestamp.) */
static void check_stamp(rcache__sock *s, int64_t at) {
  if (!at) { /* (seen now and then on a vouched socket, a few times in a test's thousands) */
    s->stamped = false;
    return;
  }
  if (!s->asked_ns) return;
  if (at >= s->asked_ns)
    s->stamped = true;
  else if (s->stamped)
    s->early = true;
}
#endif

/* recv() that, on a socket with receive timestamps, reads the kernel's timestamp of the bytes
 * returned (of their last segment: bytes waiting before a request was written and read alone
 * carry their own; read with its reply, they are bytes after a reply, conn.c) and checks it. */
static ssize_t recv_checked(rcache__sock *s, char *buf, size_t len, int flags) {
#ifndef SCM_TIMESTAMPNS
  return recv(s->fd, buf, len, flags);
#else
  if (!s->stamps_on) return recv(s->fd, buf, len, flags);
  union {
    char b[CMSG_SPACE(sizeof(struct timespec)) + 64];
    struct cmsghdr align;
  } ctl;
  struct iovec iov = {buf, len};
  struct msghdr m = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b};
  ssize_t r = recvmsg(s->fd, &m, flags);
  if (r <= 0) return r;
  int64_t at = 0;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_TIMESTAMPNS) continue;
    struct timespec ts;
    memcpy(&ts, CMSG_DATA(cm), sizeof ts);
    at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  }
  check_stamp(s, at);
  return r;
#endif
}

/* Plain writes never block in the kernel: send() with MSG_DONTWAIT writes what fits now (the
 * hot path: one syscall, as a blocking send of a small request), and poll() waits by the
 * deadline for room for the rest. A blocking send() is not bounded by SO_SNDTIMEO: on a Unix
 * socket every buffer it allocates waits up to the whole timeout again, so a peer that
 * drains a little now and then held a large SET for seconds. */
static rcache_status plain_write(rcache__sock *s, const char *buf, size_t len, size_t *n,
                                 int64_t deadline_us) {
  for (;;) {
    if (rcache__io_aborted()) return aborted_io();
    ssize_t r = send(s->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r > 0) {
      *n = (size_t)r;
      return RCACHE_OK;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      rcache_status ws = wait_fd(s->fd, POLLOUT, deadline_us);
      if (ws == RCACHE_EUNAVAILABLE) return aborted_io();
      if (ws != RCACHE_OK) return ws;
      continue;
    }
    rcache__errf("connection broken: %s", r == 0 ? "nothing written" : strerror(errno));
    return RCACHE_EIO;
  }
}

/* Plain reads: a blocking recv() when the socket's own timeout fits in the time left
 * (a read returns with what has arrived), otherwise poll for the rest first. */
static rcache_status plain_read(rcache__sock *s, char *buf, size_t len, size_t *n,
                                int64_t deadline_us) {
  for (;;) {
    int left = ms_left(deadline_us);
    if (left == 0) {
      /* what has arrived by the deadline is still read (a batch's replies from several
       * servers are read one server after the other) */
      ssize_t r = recv_checked(s, buf, len, MSG_DONTWAIT);
      if (r == 0) {
        rcache__errf("connection closed by the server");
        return RCACHE_EIO;
      }
      if (r < 0) return RCACHE_ETIMEOUT;
      *n = (size_t)r;
      return RCACHE_OK;
    }
    if (left < s->io_timeout_ms || tl_stop) { /* a background thread never blocks unseen */
      rcache_status ws = wait_fd(s->fd, POLLIN, deadline_us);
      if (ws == RCACHE_EUNAVAILABLE) return aborted_io();
      if (ws != RCACHE_OK) return ws;
    }
    ssize_t r = recv_checked(s, buf, len, 0);
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

static rcache_status plain_io(rcache__sock *s, char *buf, size_t len, size_t *n, bool rd,
                              int64_t deadline_us) {
  return rd ? plain_read(s, buf, len, n, deadline_us) : plain_write(s, buf, len, n, deadline_us);
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
