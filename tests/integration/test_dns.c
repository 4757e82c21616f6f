/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Host names are resolved within the connect deadline (issue 19, point 7), against a DNS
 * server that never answers: a UDP socket on 127.0.0.1 that takes the queries and says
 * nothing, named by the URL's dns= option (rcache_options.dns_servers).
 *  - a name only DNS could answer: open succeeds, the first get answers
 *    RCACHE_EUNAVAILABLE by its deadline, the health check and the next get say the DNS
 *    look-up timed out; the queries reached the silent server, so the option is honoured;
 *  - the same with dns_servers given in rcache_options;
 *  - an address (RCACHE_TEST_URL_TCP) with the same silent server works, and no query is
 *    sent: an address never reaches the resolver;
 *  - "localhost" (in /etc/hosts) with the same silent server works: the hosts file first;
 *  - a dns= that is not a list of addresses fails rcache_open with RCACHE_EINVAL.
 * Durations are printed, not asserted.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rcache/rcache.h"
#include "test.h"

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The silent DNS server: a bound UDP socket nobody reads until queries() counts them. */
static int silent_fd = -1;
static int silent_port;

static void silent_start(void) {
  silent_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (silent_fd < 0 || bind(silent_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      getsockname(silent_fd, (struct sockaddr *)&sa, &len) != 0) {
    fprintf(stderr, "cannot bind a UDP socket on 127.0.0.1\n");
    exit(1);
  }
  silent_port = ntohs(sa.sin_port);
}

/* Datagrams received (and dropped) since the last call. */
static int queries(void) {
  char buf[1500];
  int n = 0;
  while (recv(silent_fd, buf, sizeof buf, MSG_DONTWAIT) >= 0)
    n++;
  return n;
}

static void quiet(int level, const char *msg, void *ud) {
  (void)level;
  (void)msg;
  (void)ud;
}

static void base_options(rcache_options *o) {
  rcache_options_init(o);
  o->connect_timeout_ms = 300;
  o->command_timeout_ms = 300;
  o->log_fn = quiet;
}

/* A name only the silent server could answer. The first get may come while the first
 * contact is still waiting for DNS (it then says so); the health check waits for that
 * contact and reports why it failed, and so does the next get. */
static void unanswered(const char *url, const rcache_options *o, const char *what) {
  queries();
  rcache *c = NULL;
  int64_t t = now_ms();
  CHECK_EQ(rcache_open(&c, url, o), RCACHE_OK);
  int64_t open_ms = now_ms() - t;
  if (!c) return;
  rcache_value v = {0};
  t = now_ms();
  CHECK_EQ(rcache_get(c, "k", &v), RCACHE_EUNAVAILABLE);
  int64_t get_ms = now_ms() - t;
  printf("%s: open %lld ms, first get %lld ms: %s\n", what, (long long)open_ms, (long long)get_ms,
         rcache_errmsg(c));
  rcache_health h;
  t = now_ms();
  CHECK(rcache_health_check(c, &h) != RCACHE_OK);
  CHECK(!h.healthy);
  CHECK_MSG(strstr(h.error, "DNS look-up of rcache-dns-test.invalid timed out") != NULL,
            "%s: health error '%s'", what, h.error);
  printf("%s: health %lld ms: %s\n", what, (long long)(now_ms() - t), h.error);
  CHECK_EQ(rcache_get(c, "k", &v), RCACHE_EUNAVAILABLE);
  const char *msg = rcache_errmsg(c);
  CHECK_MSG(strstr(msg, "DNS look-up of rcache-dns-test.invalid") != NULL, "%s: message '%s'", what,
            msg);
  printf("%s: next get: %s\n", what, msg);
  rcache_close(c);
  int n = queries();
  CHECK_MSG(n >= 1, "%s: the silent DNS server got no query", what);
  printf("%s: %d queries reached the silent server\n", what, n);
}

/* A URL that needs no DNS answer: a set and a get work, *sent gets the queries sent. */
static void answered(const char *url, const char *what, int *sent) {
  queries();
  rcache_options o;
  base_options(&o);
  o.key_prefix = "dns-test:";
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  if (!c) return;
  CHECK_EQ(rcache_set(c, "k", "v", 1, 60), RCACHE_OK);
  rcache_value v = {0};
  CHECK_EQ(rcache_get(c, "k", &v), RCACHE_OK);
  CHECK(v.len == 1 && v.data && v.data[0] == 'v');
  rcache_value_free(&v);
  rcache_health h;
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_OK);
  rcache_close(c);
  *sent = queries();
  printf("%s: works, %d DNS queries\n", what, *sent);
}

int main(void) {
  const char *tcp = getenv("RCACHE_TEST_URL_TCP");
  const char *port = getenv("RCACHE_TEST_PORT");
  CHECK_MSG(tcp && port, "RCACHE_TEST_URL_TCP and RCACHE_TEST_PORT must be set");
  if (!tcp || !port) return test_report("integration_test_dns");
  silent_start();

  char url[512];
  rcache_options o;
  base_options(&o);
  snprintf(url, sizeof url, "redis://rcache-dns-test.invalid:%s?dns=127.0.0.1:%d", port,
           silent_port);
  unanswered(url, &o, "dns= in the URL");
  base_options(&o);
  char servers[64];
  snprintf(servers, sizeof servers, "127.0.0.1:%d", silent_port);
  o.dns_servers = servers;
  snprintf(url, sizeof url, "redis://rcache-dns-test.invalid:%s", port);
  unanswered(url, &o, "rcache_options.dns_servers");

  int sent = -1;
  snprintf(url, sizeof url, "%s%sdns=127.0.0.1:%d", tcp, strchr(tcp, '?') ? "&" : "?", silent_port);
  answered(url, "an address", &sent);
  CHECK_EQ(sent, 0);
  snprintf(url, sizeof url, "redis://localhost:%s?dns=127.0.0.1:%d", port, silent_port);
  answered(url, "localhost (/etc/hosts)", &sent);

  rcache *c = NULL;
  base_options(&o);
  snprintf(url, sizeof url, "redis://127.0.0.1:%s?dns=not-an-address", port);
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_EINVAL);
  CHECK(c == NULL);
  printf("dns=not-an-address: %s\n", rcache_errmsg(NULL));
  CHECK(strstr(rcache_errmsg(NULL), "dns_servers") != NULL);
  CHECK_EQ(rcache_open(&c, "unix:///tmp/x.sock?dns=127.0.0.1", &o), RCACHE_EURL);
  close(silent_fd);
  return test_report("integration_test_dns");
}
