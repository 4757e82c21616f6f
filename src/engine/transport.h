/* SPDX-License-Identifier: BSD-3-Clause */
/* Sockets, ours: TCP (IPv4, IPv6, host names), Unix sockets and TLS (OpenSSL), all
 * non-blocking with a poll deadline on every connect, read and write. hiredis does the
 * protocol (conn.c); nothing here knows about Redis. Internal. */
#ifndef RCACHE_TRANSPORT_H
#define RCACHE_TRANSPORT_H

#include <sys/types.h>

#include "internal.h"

typedef struct ssl_ctx_st rcache__tls_ctx; /* OpenSSL's SSL_CTX */

typedef struct rcache__sock {
  int fd;            /* -1 when closed */
  void *ssl;         /* SSL * when TLS */
  int io_timeout_ms; /* SO_RCVTIMEO of a plain socket (writes never block) */
  bool cert_asked;   /* TLS: the server asked for a client certificate we do not have */
  bool fresh;        /* TLS: nothing read since the handshake */
  bool cert_guess;   /* TLS: a close after that ask was reported as a refusal */
  /* Receive timestamps (plain TCP): each read learns when the kernel received its bytes, so
   * that bytes already waiting when a request was written are known as not its reply,
   * without a poll() before every write (rcache__sock_stale; pool.c). */
  bool stamps_on;   /* SO_TIMESTAMPNS asked for */
  bool stamped;     /* ...and a read has carried a sane timestamp: reads are checked */
  bool early;       /* a read returned bytes received before asked_ns: out of step */
  int64_t asked_ns; /* CLOCK_REALTIME just before the oldest unanswered request was
                     * written (rcache__sock_ask); 0: nothing asked, reads not checked */
} rcache__sock;

/* Where a connection goes: a TCP host and port, or a Unix socket path. */
typedef struct rcache__addr {
  char host[256]; /* "" for Unix sockets; IPv6 without brackets */
  int port;
  char path[108]; /* Unix socket path, "" for TCP */
} rcache__addr;

/* Builds the TLS context for the handle from ctx->opt's tls_* settings (CA file or the
 * system store, client certificate and key). RCACHE_ETLS with a message when a file
 * cannot be loaded. */
rcache_status rcache__tls_ctx_new(const rcache__ctx *ctx, rcache__tls_ctx **out);
void rcache__tls_ctx_free(rcache__tls_ctx *t);

/* What a connect needs of the handle's options (rcache__sock_opts_of). */
typedef struct rcache__sock_opts {
  const char *dns_servers;     /* the resolver's servers; NULL: /etc/resolv.conf's */
  const char *tls_server_name; /* the name the certificate must carry; NULL: the host */
  bool tls_insecure;           /* no verification of the chain or the name */
  int command_timeout_ms;      /* a plain socket's SO_RCVTIMEO is half of it */
} rcache__sock_opts;

/* The connect options of a handle's options. */
rcache__sock_opts rcache__sock_opts_of(const rcache_options *opt);

/* Connects to a (TLS when tls != NULL: handshake, chain and host name verified unless
 * tls_insecure), by deadline_us (monotonic µs), the host name's DNS look-up included
 * (c-ares; o->dns_servers or the system's resolver configuration). Statuses:
 * RCACHE_OK, RCACHE_EUNAVAILABLE (refused, unreachable, name not resolved), RCACHE_ETIMEOUT
 * (the DNS look-up too), RCACHE_ETLS, RCACHE_ENOMEM.
 * The detail goes to rcache__errf. */
rcache_status rcache__sock_connect(rcache__sock *s, const rcache__sock_opts *o,
                                   rcache__tls_ctx *tls, const rcache__addr *a,
                                   int64_t deadline_us);

/* Whether `servers` ("host[:port],...", as rcache_options.dns_servers) can be used:
 * RCACHE_OK, or RCACHE_EINVAL with a message (RCACHE_ENOMEM). */
rcache_status rcache__dns_servers_check(const char *servers);

/* Writes all len bytes by deadline_us. RCACHE_OK, RCACHE_ETIMEOUT, RCACHE_EIO. */
rcache_status rcache__sock_write(rcache__sock *s, const char *buf, size_t len, int64_t deadline_us);

/* Reads what is available (at least one byte) by deadline_us into buf; *n gets the
 * count. RCACHE_OK, RCACHE_ETIMEOUT, RCACHE_EIO (closed by the peer, or an error). */
rcache_status rcache__sock_read(rcache__sock *s, char *buf, size_t cap, size_t *n,
                                int64_t deadline_us);

/* Marks a request about to be written: bytes read from now on until rcache__sock_answered
 * must have been received after this moment (s->early otherwise, on a stamped socket). The
 * first unanswered request's moment is kept. */
void rcache__sock_ask(rcache__sock *s);

/* Everything asked has been answered: the next request starts the check afresh. */
void rcache__sock_answered(rcache__sock *s);

/* True when TLS has decrypted bytes buffered that a read would return without the socket. */
bool rcache__sock_pending(rcache__sock *s);

/* True when the peer closed or bytes are waiting unasked (a dead pooled connection). */
bool rcache__sock_stale(rcache__sock *s);

void rcache__sock_close(rcache__sock *s);

/* Makes the calling thread's connects, name look-ups, reads and writes give up within
 * ~10 ms once *stop is true (connects with RCACHE_EUNAVAILABLE, reads and writes with
 * RCACHE_EIO, both saying the handle is closing); NULL (every thread's default): never.
 * For the background threads rcache_close must not wait for (first contact, prober,
 * listener, watchers): such a thread polls before each read instead of blocking in it, a
 * program's threads keep their two-syscall exchange. Returns the previous flag. */
const _Atomic bool *rcache__io_abort_on(const _Atomic bool *stop);

/* True when the calling thread's stop flag is up. */
bool rcache__io_aborted(void);

/* "host:port" or the socket path, for messages. */
void rcache__addr_str(const rcache__addr *a, char *buf, size_t size);

#endif
