/* SPDX-License-Identifier: BSD-3-Clause */
/* rcache__url_parse, rcache__url_parse_secret, rcache__redact, and the public rcache_open's answer
 * to a bad URL. */
#include <stdint.h>

#include "internal.h"
#include "test.h"

/* Every field of *u in one line, so that a table row checks all of them. */
static void dump(const rcache__url *u, char *out, size_t n) {
  static const char *names[] = {"redis", "rediss", "unix", "sentinel", "memory", "none"};
  char hosts[512] = "";
  size_t hl = 0;
  for (size_t i = 0; i < u->nhosts && hl < sizeof hosts; i++)
    hl += (size_t)snprintf(hosts + hl, sizeof hosts - hl, "%s%s/%d", i ? "," : "", u->hosts[i].host,
                           u->hosts[i].port);
#define S(x) ((x) ? (x) : "-")
  snprintf(out, n,
           "%s tls=%d user=%s pass=%s hosts=%s path=%s master=%s db=%d ct=%d cmd=%d pool=%d "
           "max=%lld ca=%s cert=%s key=%s sni=%s insecure=%d name=%s prefix=%s | %s",
           names[u->scheme], u->tls, S(u->user), S(u->password), u->nhosts ? hosts : "-",
           S(u->path), S(u->master), u->db, u->connect_timeout_ms, u->command_timeout_ms,
           u->pool_size, (long long)u->max_bytes, S(u->tls_ca), S(u->tls_cert), S(u->tls_key),
           S(u->tls_server_name), u->tls_insecure, S(u->client_name), S(u->key_prefix),
           S(u->redacted));
#undef S
}

/* The part of a dump that is the same for most rows. */
#define OPTS_NONE "ct=-1 cmd=-1 pool=-1 max=-1 ca=- cert=- key=- sni=- insecure=-1 name=- prefix=-"

typedef struct {
  const char *url, *want;
} good_case;

static const good_case good[] = {
    {"", "none tls=0 user=- pass=- hosts=- path=- master=- db=0 " OPTS_NONE " | "},
    {"none://", "none tls=0 user=- pass=- hosts=- path=- master=- db=0 " OPTS_NONE " | none://"},
    {"memory://",
     "memory tls=0 user=- pass=- hosts=- path=- master=- db=0 " OPTS_NONE " | memory://"},
    {"memory://?max_bytes=1048576&key_prefix=app%3A",
     "memory tls=0 user=- pass=- hosts=- path=- master=- db=0 ct=-1 cmd=-1 pool=-1 max=1048576 "
     "ca=- cert=- key=- sni=- insecure=-1 name=- prefix=app: | "
     "memory://?max_bytes=1048576&key_prefix=app%3A"},
    {"redis://localhost",
     "redis tls=0 user=- pass=- hosts=localhost/6379 path=- master=- db=0 " OPTS_NONE
     " | redis://localhost"},
    {"redis://localhost:6380/", "redis tls=0 user=- pass=- hosts=localhost/6380 path=- master=- "
                                "db=0 " OPTS_NONE " | redis://localhost:6380/"},
    {"redis://127.0.0.1:6379/3", "redis tls=0 user=- pass=- hosts=127.0.0.1/6379 path=- master=- "
                                 "db=3 " OPTS_NONE " | redis://127.0.0.1:6379/3"},
    {"redis://u:s3cret@h:1234/5", "redis tls=0 user=u pass=s3cret hosts=h/1234 path=- master=- "
                                  "db=5 " OPTS_NONE " | redis://u:***@h:1234/5"},
    {"redis://:s3cret@h",
     "redis tls=0 user=- pass=s3cret hosts=h/6379 path=- master=- db=0 " OPTS_NONE
     " | redis://:***@h"},
    {"redis://alice@h", "redis tls=0 user=alice pass=- hosts=h/6379 path=- master=- db=0 " OPTS_NONE
                        " | redis://alice@h"},
    {"redis://u:@h",
     "redis tls=0 user=u pass=- hosts=h/6379 path=- master=- db=0 " OPTS_NONE " | redis://u:***@h"},
    /* percent-decoding, and a password holding ':', '/' and '@' as they are */
    {"redis://u%40x:p%3Ass%2F%3F%25@h", "redis tls=0 user=u@x pass=p:ss/?% hosts=h/6379 path=- "
                                        "master=- db=0 " OPTS_NONE " | redis://u%40x:***@h"},
    {"redis://u:p@ss:w/rd@h:7000/1", "redis tls=0 user=u pass=p@ss:w/rd hosts=h/7000 path=- "
                                     "master=- db=1 " OPTS_NONE " | redis://u:***@h:7000/1"},
    {"rediss://h:6380?tls_ca=/etc/ca.pem&tls_cert=/c.pem&tls_key=/k%20k.pem&tls_server_name=r.ex"
     "&tls_insecure=0",
     "rediss tls=1 user=- pass=- hosts=h/6380 path=- master=- db=0 ct=-1 cmd=-1 pool=-1 max=-1 "
     "ca=/etc/ca.pem cert=/c.pem key=/k k.pem sni=r.ex insecure=0 name=- prefix=- | "
     "rediss://h:6380?tls_ca=/etc/ca.pem&tls_cert=/c.pem&tls_key=/k%20k.pem&tls_server_name=r.ex"
     "&tls_insecure=0"},
    {"rediss://h?tls_insecure=1", "rediss tls=1 user=- pass=- hosts=h/6379 path=- master=- db=0 "
                                  "ct=-1 cmd=-1 pool=-1 max=-1 ca=- cert=- key=- sni=- insecure=1 "
                                  "name=- prefix=- | rediss://h?tls_insecure=1"},
    {"redis://h?connect_timeout_ms=250&command_timeout_ms=100&pool=16&client_name=svc-a"
     "&key_prefix=app:v1:",
     "redis tls=0 user=- pass=- hosts=h/6379 path=- master=- db=0 ct=250 cmd=100 pool=16 max=-1 "
     "ca=- cert=- key=- sni=- insecure=-1 name=svc-a prefix=app:v1: | "
     "redis://h?connect_timeout_ms=250&command_timeout_ms=100&pool=16&client_name=svc-a"
     "&key_prefix=app:v1:"},
    {"redis://h?pool=1024&key_prefix=a=b", "redis tls=0 user=- pass=- hosts=h/6379 path=- "
                                           "master=- db=0 ct=-1 cmd=-1 pool=1024 max=-1 ca=- "
                                           "cert=- key=- sni=- insecure=-1 name=- prefix=a=b | "
                                           "redis://h?pool=1024&key_prefix=a=b"},
    {"redis://[::1]:7000",
     "redis tls=0 user=- pass=- hosts=::1/7000 path=- master=- db=0 " OPTS_NONE
     " | redis://[::1]:7000"},
    {"redis://[fe80::1:2]/2", "redis tls=0 user=- pass=- hosts=fe80::1:2/6379 path=- master=- "
                              "db=2 " OPTS_NONE " | redis://[fe80::1:2]/2"},
    {"redis://h1:7000,h2:7001,[::1]:7002",
     "redis tls=0 user=- pass=- "
     "hosts=h1/7000,h2/7001,::1/7002 path=- master=- db=0 " OPTS_NONE
     " | redis://h1:7000,h2:7001,[::1]:7002"},
    {"redis://u:s3cret@h1,h2/0", "redis tls=0 user=u pass=s3cret hosts=h1/6379,h2/6379 path=- "
                                 "master=- db=0 " OPTS_NONE " | redis://u:***@h1,h2/0"},
    {"unix:///run/redis.sock", "unix tls=0 user=- pass=- hosts=- path=/run/redis.sock master=- "
                               "db=0 " OPTS_NONE " | unix:///run/redis.sock"},
    {"unix:///run/redis.sock?db=2&key_prefix=x", "unix tls=0 user=- pass=- hosts=- "
                                                 "path=/run/redis.sock master=- db=2 ct=-1 "
                                                 "cmd=-1 pool=-1 max=-1 ca=- cert=- key=- sni=- "
                                                 "insecure=-1 name=- prefix=x | "
                                                 "unix:///run/redis.sock?db=2&key_prefix=x"},
    {"redis+unix:///tmp/a%20b.sock", "unix tls=0 user=- pass=- hosts=- path=/tmp/a b.sock "
                                     "master=- db=0 " OPTS_NONE " | redis+unix:///tmp/a%20b.sock"},
    {"unix://u:s3cret@/run/r.sock", "unix tls=0 user=u pass=s3cret hosts=- path=/run/r.sock "
                                    "master=- db=0 " OPTS_NONE " | unix://u:***@/run/r.sock"},
    {"unix:///run/redis@main/r.sock",
     "unix tls=0 user=- pass=- hosts=- "
     "path=/run/redis@main/r.sock master=- db=0 " OPTS_NONE " | unix:///run/redis@main/r.sock"},
    /* a path shaped like credentials is a path, but never shown in u->redacted */
    {"unix:///u:pw@/r.sock",
     "unix tls=0 user=- pass=- hosts=- path=/u:pw@/r.sock master=- db=0 " OPTS_NONE
     " | unix:///u:***@/r.sock"},
    {"redis+sentinel://s1,s2:26380/mymaster",
     "sentinel tls=0 user=- pass=- "
     "hosts=s1/26379,s2/26380 path=- master=mymaster "
     "db=0 " OPTS_NONE " | redis+sentinel://s1,s2:26380/mymaster"},
    {"redis+sentinel://u:s3cret@s1:26379/my%2Dmaster/2?command_timeout_ms=50",
     "sentinel tls=0 user=u pass=s3cret hosts=s1/26379 path=- master=my-master db=2 ct=-1 cmd=50 "
     "pool=-1 max=-1 ca=- cert=- key=- sni=- insecure=-1 name=- prefix=- | "
     "redis+sentinel://u:***@s1:26379/my%2Dmaster/2?command_timeout_ms=50"},
    {"rediss+sentinel://s1/m/", "sentinel tls=1 user=- pass=- hosts=s1/26379 path=- master=m "
                                "db=0 " OPTS_NONE " | rediss+sentinel://s1/m/"},
    {"REDIS://H:1",
     "redis tls=0 user=- pass=- hosts=H/1 path=- master=- db=0 " OPTS_NONE " | REDIS://H:1"},
    {"redis://h?",
     "redis tls=0 user=- pass=- hosts=h/6379 path=- master=- db=0 " OPTS_NONE " | redis://h?"},
    {"redis://h?db=4",
     "redis tls=0 user=- pass=- hosts=h/6379 path=- master=- db=4 " OPTS_NONE " | redis://h?db=4"},
    {"redis://my_host.local-1:65535/2147483646",
     "redis tls=0 user=- pass=- "
     "hosts=my_host.local-1/65535 path=- master=- "
     "db=2147483646 " OPTS_NONE " | redis://my_host.local-1:65535/2147483646"},
    {"redis://h/0?client_name=me@prod", "redis tls=0 user=- pass=- hosts=h/6379 path=- master=- "
                                        "db=0 ct=-1 cmd=-1 pool=-1 max=-1 ca=- cert=- key=- "
                                        "sni=- insecure=-1 name=me@prod prefix=- | "
                                        "redis://h/0?client_name=me@prod"},
};

typedef struct {
  const char *url, *needle; /* the message must contain needle */
} bad_case;

static const bad_case bad[] = {
    {"redis://", "no host"},
    {"redis://:s3cret@", "no host"},
    {"redis://u:s3cret@:6379", "empty host"},
    {"redis://h:0", "port 0 out of range (1-65535)"},
    {"redis://u:s3cret@h:70000", "port 70000 out of range (1-65535)"},
    {"redis://u:s3cret@h:99999999999999999999", "port 99999999999999999999 out of range"},
    {"redis://h:abc", "port 'abc' is not a number"},
    {"redis://h:", "empty port after ':'"},
    {"redis://h:-1", "port '-1' is not a number"},
    {"redis://[::1]:0", "port 0 out of range"},
    {"redis://h/x", "db 'x' is not a number"},
    {"redis://u:s3cret@h/-1", "db -1 out of range"},
    {"redis://h/99999999999", "db 99999999999 out of range"},
    {"redis://h/2147483647", "db 2147483647 out of range"},
    {"redis://u:s3cret@h?db=x", "db 'x' is not a number"},
    {"http://u:s3cret@h", "unknown scheme 'http'"},
    {"rediss+unix:///x", "unknown scheme 'rediss+unix'"},
    {"localhost:6379", "missing scheme"},
    {"u:s3cret@localhost:6379", "missing scheme"},
    {"redis:/h", "missing scheme"},
    {"redis://[::1", "unterminated '['"},
    {"redis://[::1]x", "unexpected 'x' after ']'"},
    {"redis://[]:6379", "empty IPv6 address"},
    {"redis://[fe80::1%25eth0]", "bad IPv6 address"},
    {"redis://::1", "host '::1' has more than one ':' (IPv6 addresses go in brackets"},
    {"redis://h:6379:1", "go in brackets"},
    {"redis://ho$t:6379", "bad character '$' in host 'ho$t'"},
    {"redis://u:s3cret@h?foo=1", "unknown option 'foo'"},
    {"redis://h?pool", "option 'pool' has no value"},
    {"redis://h?pool=", "option 'pool' has an empty value"},
    {"redis://h?connect_timeout_ms=abc", "connect_timeout_ms 'abc' is not a number"},
    {"redis://h?connect_timeout_ms=0", "connect_timeout_ms 0 out of range"},
    {"redis://h?connect_timeout_ms=2147483648", "connect_timeout_ms 2147483648 out of range"},
    {"redis://u:s3cret@h?command_timeout_ms=-5", "command_timeout_ms -5 out of range"},
    {"redis://h?pool=0", "pool 0 out of range (1-1024)"},
    {"redis://h?pool=1025", "pool 1025 out of range (1-1024)"},
    {"redis://h?pool=2&pool=3", "option 'pool' given twice"},
    {"redis://h?publish_stats_s=86401", "publish_stats_s 86401 out of range (0-86400)"},
    {"redis://h?publish_stats_s=-1", "publish_stats_s -1 out of range"},
    {"memory://?publish_stats_s=5", "option 'publish_stats_s' does not apply to memory://"},
    {"redis://h?pool=2&&db=1", "stray '&'"},
    {"redis://h?pool=2&", "stray '&'"},
    {"redis://u:s3cret%zz@h", "bad percent-escape '***' in password"},
    {"redis://u:s3cret%4@h", "bad percent-escape '***' in password"},
    {"redis://u:s3cret%00@h", "percent-escape %00 (NUL) in password"},
    {"redis://us%zzer:s3cret@h", "bad percent-escape '%zz' in user name"},
    {"redis://u%00:s3cret@h", "percent-escape %00 (NUL) in user name"},
    {"redis://h?key_prefix=%", "bad percent-escape '%' in key_prefix"},
    {"redis://h?key_prefix=a%4", "bad percent-escape '%4' in key_prefix"},
    {"unix://", "unix:// needs a socket path"},
    {"unix:///", "unix:// needs a socket path"},
    {"unix://relative.sock", "absolute socket path"},
    {"unix:///run/r.sock?pool=0", "pool 0 out of range"},
    {"unix:///run/r.sock?tls_ca=/ca.pem", "option 'tls_ca' needs a TLS scheme"},
    {"redis+sentinel://h:26379", "needs a master name"},
    {"redis+sentinel://u:s3cret@h:26379/", "needs a master name"},
    {"redis+sentinel:///mymaster", "no sentinel hosts"},
    {"redis+sentinel://u:s3cret@h/m/1/2", "unexpected path '/2' after the db"},
    {"redis://h1:7000,h2:7001,", "trailing ','"},
    {"redis://h1,,h2", "empty host"},
    {"redis://h?tls_ca=/ca.pem", "option 'tls_ca' needs a TLS scheme"},
    {"redis://h?tls_insecure=1", "option 'tls_insecure' needs a TLS scheme"},
    {"redis+sentinel://h/m?tls_key=/k.pem", "option 'tls_key' needs a TLS scheme"},
    {"rediss://h?tls_insecure=yes", "tls_insecure must be 0 or 1, not 'yes'"},
    {"rediss://h?tls_insecure=2", "tls_insecure must be 0 or 1"},
    {"rediss://u:s3cret@h?tls_cert=/c.pem", "tls_cert and tls_key go together"},
    {"redis://h/3/x", "unexpected path '/x' after the db"},
    {"redis://h//", "unexpected path '/' after the db"},
    {"redis://h/1?db=2", "db given twice"},
    {"redis://h1,h2/3", "a Redis Cluster has only db 0"},
    {"memory://u:s3cret@", "memory:// takes no user or password"},
    {"none://u@", "none:// takes no user or password"},
    {"memory://localhost", "memory:// takes no host or path, found 'localhost'"},
    {"memory://?pool=4", "option 'pool' does not apply to memory://"},
    {"memory://?db=1", "option 'db' does not apply to memory://"},
    {"memory://?foo=1", "unknown option 'foo'"},
    {"memory://?max_bytes=0", "max_bytes 0 out of range"},
    {"memory://?max_bytes=abc", "max_bytes 'abc' is not a number"},
    {"redis://h?max_bytes=10", "option 'max_bytes' applies only to memory://"},
    {"unix:///tmp/s.sock?dns=127.0.0.1", "option 'dns' does not apply to unix://"},
    {"memory://?dns=127.0.0.1", "option 'dns' does not apply to memory://"},
    {"none://?key_prefix=x", "none:// takes no options"},
    {"redis://h b", "space at offset 9"},
    {"redis://u:s3cret@h\t", "control character at offset 18 in redis://u:***@h?"},
    {"redis://h?client_name=a%20b", "client_name 'a%20b' may hold only printable"},
    {"REDIS://h:70000", "port 70000 out of range"},
    /* a '?' in a password must be encoded; whatever goes wrong, the password stays hidden */
    {"redis://u:s3cret?x@h", "port '***' is not a number"},
    {"redis://u:s3c?ret@h:6379", "port '***' is not a number"},
};

static void test_good(void) {
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    rcache__url u;
    char err[512] = "untouched", got[2048];
    rcache_status st = rcache__url_parse(good[i].url, &u, err, sizeof err);
    CHECK_MSG(st == RCACHE_OK, "\"%s\" failed: %s", good[i].url, err);
    CHECK_STR(err, "");
    if (st == RCACHE_OK) {
      dump(&u, got, sizeof got);
      CHECK_MSG(strcmp(got, good[i].want) == 0, "\"%s\"\n  got  %s\n  want %s", good[i].url, got,
                good[i].want);
    }
    rcache__url_free(&u);
    CHECK(u.hosts == NULL && u.redacted == NULL && u.password == NULL); /* free zeroes */
  }
  /* 64 hosts is the limit, inclusive */
  char big[2048] = "redis://";
  for (int i = 0; i < RCACHE__URL_MAX_HOSTS; i++)
    snprintf(big + strlen(big), sizeof big - strlen(big), "%sn%d:%d", i ? "," : "", i, 7000 + i);
  rcache__url u;
  char err[512];
  CHECK_EQ(rcache__url_parse(big, &u, err, sizeof err), RCACHE_OK);
  CHECK_EQ(u.nhosts, RCACHE__URL_MAX_HOSTS);
  if (u.nhosts == RCACHE__URL_MAX_HOSTS) {
    CHECK_STR(u.hosts[63].host, "n63");
    CHECK_EQ(u.hosts[63].port, 7063);
  }
  rcache__url_free(&u);
  rcache__url_free(&u); /* twice is harmless */
}

static void check_bad(const char *url, const char *needle) {
  rcache__url u;
  char err[512] = "";
  rcache_status st = rcache__url_parse(url, &u, err, sizeof err);
  CHECK_MSG(st == RCACHE_EURL, "\"%s\" was accepted (status %d)", url, st);
  CHECK_MSG(strncmp(err, "URL: ", 5) == 0, "\"%s\": message \"%s\"", url, err);
  CHECK_MSG(strstr(err, needle) != NULL, "\"%s\": message \"%s\" lacks \"%s\"", url, err, needle);
  CHECK_MSG(strstr(err, "s3cret") == NULL && strstr(err, "s3c") == NULL,
            "\"%s\": message \"%s\" shows the password", url, err);
  if (strstr(url, "s3c"))
    CHECK_MSG(strstr(err, "***") != NULL, "\"%s\": message \"%s\" has no ***", url, err);
  /* a failed parse leaves nothing to free and the documented defaults */
  CHECK(u.hosts == NULL && u.nhosts == 0 && u.user == NULL && u.password == NULL);
  CHECK(u.redacted == NULL && u.key_prefix == NULL && u.path == NULL);
  CHECK(u.connect_timeout_ms == -1 && u.pool_size == -1 && u.max_bytes == -1);
  rcache__url_free(&u);
}

static void test_bad(void) {
  CHECK(sizeof bad / sizeof bad[0] >= 25);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    check_bad(bad[i].url, bad[i].needle);

  char big[2048] = "redis://u:s3cret@";
  for (int i = 0; i <= RCACHE__URL_MAX_HOSTS; i++)
    snprintf(big + strlen(big), sizeof big - strlen(big), "%sn%d", i ? "," : "", i);
  check_bad(big, "65 hosts, more than the 64 allowed");

  /* a socket path longer than a sockaddr_un holds: refused, never cut short (the 107 bytes
   * before the cut named another socket, which rcache connected to) */
  char lp[300] = "unix:///tmp/";
  while (strlen(lp) < 8 + 121)
    strcat(lp, "a");
  strcat(lp, ".sock");
  check_bad(lp, "longer than the 107 a Unix socket address holds");
  lp[7 + 107 - 5] = '\0'; /* a path of 107 bytes with ".sock": accepted */
  strcat(lp, ".sock");
  rcache__url lu;
  CHECK_EQ(rcache__url_parse(lp, &lu, NULL, 0), RCACHE_OK);
  CHECK_EQ(strlen(lu.path), 107);
  rcache__url_free(&lu);
  char v6[400] = "redis://[";
  for (int i = 0; i < 64; i++)
    strcat(v6, "abcd:");
  strcat(v6, "1]:6379");
  check_bad(v6, "IPv6 address longer than 255 bytes");

  /* the whole message, once, as the README promises it */
  rcache__url u;
  char err[512];
  CHECK_EQ(rcache__url_parse("redis://u:s3cret@h:70000", &u, err, sizeof err), RCACHE_EURL);
  CHECK_STR(err, "URL: port 70000 out of range (1-65535) in redis://u:***@h:70000");

  /* a short or absent message buffer is fine */
  char tiny[12];
  CHECK_EQ(rcache__url_parse("redis://u:s3cret@h:0", &u, tiny, sizeof tiny), RCACHE_EURL);
  CHECK_EQ(strlen(tiny), sizeof tiny - 1);
  CHECK_EQ(rcache__url_parse("redis://h:0", &u, NULL, 0), RCACHE_EURL);
  CHECK_EQ(rcache__url_parse("redis://h:0", &u, err, 0), RCACHE_EURL);
  CHECK_EQ(rcache__url_parse(NULL, &u, err, sizeof err), RCACHE_EURL);
}

/* rcache__url_parse_secret: where the password is, as the fuzz oracle relies on. */
static void secret_at(const char *url, rcache_status want, const char *span, const char *err_want) {
  rcache__url u;
  char err[512] = "";
  rcache__span sp = {99, 99};
  CHECK_MSG(rcache__url_parse_secret(url, &u, err, sizeof err, &sp) == want, "\"%s\": status", url);
  CHECK_MSG(sp.b <= sp.e && sp.e <= strlen(url), "\"%s\": span [%zu, %zu)", url, sp.b, sp.e);
  char got[256];
  snprintf(got, sizeof got, "%.*s", (int)(sp.e - sp.b), url + sp.b);
  CHECK_MSG(strcmp(got, span) == 0, "\"%s\": span \"%s\", want \"%s\"", url, got, span);
  if (err_want) CHECK_STR(err, err_want);
  if (want == RCACHE_OK && *span) { /* the redacted form masks exactly that span */
    char red[512];
    snprintf(red, sizeof red, "%.*s***%s", (int)sp.b, url, url + sp.e);
    CHECK_STR(u.redacted, red);
  }
  rcache__url_free(&u);
}

static void test_secret_span(void) {
  secret_at("redis://u:s3cret@h:1/0", RCACHE_OK, "s3cret", NULL);
  secret_at("redis://:s3%2Fcret@h", RCACHE_OK, "s3%2Fcret", NULL);   /* as written, encoded */
  secret_at("redis://u:p@ss:w@h?pool=2", RCACHE_OK, "p@ss:w", NULL); /* to the last '@' */
  secret_at("unix://u:s3cret@/run/r.sock", RCACHE_OK, "s3cret", NULL);
  secret_at("rediss+sentinel://u:pw@s1,s2/m", RCACHE_OK, "pw", NULL);
  secret_at("redis://alice@h", RCACHE_OK, "", NULL); /* no password */
  secret_at("redis://u:@h", RCACHE_OK, "", NULL);    /* an empty one */
  secret_at("redis://h:6379", RCACHE_OK, "", NULL);
  secret_at("memory://", RCACHE_OK, "", NULL);
  /* not parsed: the span the message masks, from the first ':' to the last '@' */
  secret_at("redis://u:s3cret@h:70000", RCACHE_EURL, "s3cret",
            "URL: port 70000 out of range (1-65535) in redis://u:***@h:70000");
  secret_at("redis://u:s3c@h:1/x@y:0", RCACHE_EURL, "s3c@h:1/x",
            "URL: port 0 out of range (1-65535) in redis://u:***@y:0");
  secret_at("redis://h:0", RCACHE_EURL, "", "URL: port 0 out of range (1-65535) in redis://h:0");
  /* the input of issue 14 that the old oracle, guessing over the message's words, took
   * for a leak: no "://", so the span runs from the first ':' to the last '@' */
  secret_at("x st in @y: in @z", RCACHE_EURL, " in ",
            "URL: space at offset 1 (write it as %20) in x st in @y:***@z");
  rcache__url u;
  rcache__span sp = {7, 7};
  CHECK_EQ(rcache__url_parse_secret(NULL, &u, NULL, 0, &sp), RCACHE_EURL);
  CHECK(sp.b == 0 && sp.e == 0);
  CHECK_EQ(rcache__url_parse_secret("redis://u:pw@h", &u, NULL, 0, NULL), RCACHE_OK);
  rcache__url_free(&u);
}

static void redacts(const char *in, const char *want) {
  char out[512];
  rcache__redact(in, out, sizeof out);
  CHECK_MSG(strcmp(out, want) == 0, "redact(\"%s\") = \"%s\", want \"%s\"", in, out, want);
  char again[512];
  rcache__redact(out, again, sizeof again); /* idempotent */
  CHECK_STR(again, out);
}

static void test_redact(void) {
  redacts("", "");
  redacts("no URL in here: a:b@c", "no URL in here: a:b@c");
  redacts("redis://u:s3cret@h:1/0", "redis://u:***@h:1/0");
  redacts("redis://:s3cret@h", "redis://:***@h");
  redacts("redis://alice@h", "redis://alice@h");
  redacts("redis://h:6379/0", "redis://h:6379/0");
  redacts("a redis://u:s3cret@h1 and rediss://:pw2@h2/0 end",
          "a redis://u:***@h1 and rediss://:***@h2/0 end");
  redacts("redis://a:b@h1,redis://c:d@h2", "redis://a:***@h1,redis://c:***@h2");
  redacts("connect redis://u:p@ss@h failed", "connect redis://u:***@h failed");
  redacts("url=\"redis://u:s3cret@h\" x@y", "url=\"redis://u:***@h\" x@y");
  redacts("redis+sentinel://u:s3cret@s1,s2/m", "redis+sentinel://u:***@s1,s2/m");
  redacts("unix://u:s3cret@/run/r.sock", "unix://u:***@/run/r.sock");
  redacts("redis://u:***@h", "redis://u:***@h");
  redacts("://", "://");
  redacts("redis://", "redis://");
  redacts("redis://:@", "redis://:***@");
  redacts("x://a:b@", "x://a:***@");
  redacts("line1 redis://u:s3cret@h\nline2 redis://v:t0p@g",
          "line1 redis://u:***@h\nline2 redis://v:***@g");

  /* truncation never lets a password byte through */
  const char *in = "redis://u:s3cret@h";
  for (size_t n = 0; n <= strlen(in) + 4; n++) {
    char out[64];
    memset(out, 'Z', sizeof out);
    rcache__redact(in, out, n);
    if (n == 0) {
      CHECK_EQ(out[0], 'Z');
      continue;
    }
    CHECK(strlen(out) < n);
    CHECK_MSG(strncmp(out, "redis://u:***@h", strlen(out)) == 0, "n=%zu: \"%s\"", n, out);
  }
  char out[16];
  rcache__redact(NULL, out, sizeof out);
  CHECK_STR(out, "");
}

/* Random edits anywhere except inside ":s3cret@": whatever the parser makes of the result,
 * neither its message nor u->redacted nor rcache__redact() may show the password. */
static void test_password_never_leaks(void) {
  static const char *bases[] = {
      "redis://u:s3cret@h:6379/1?pool=2", "rediss+sentinel://u:s3cret@s1,s2/m/1",
      "unix://u:s3cret@/run/r.sock?db=1", "redis://:s3cret@[::1]:7000,h2", "memory://u:s3cret@"};
  static const char edits[] = "?@/:%[],&= #ax0";
  uint32_t r = 2463534242u;
  int leaks = 0;
  for (int t = 0; t < 30000; t++) {
    char url[128];
    const char *base = bases[t % 5];
    snprintf(url, sizeof url, "%s", base);
    for (int k = 0; k < 1 + t % 3; k++) {
      r ^= r << 13, r ^= r >> 17, r ^= r << 5;
      size_t len = strlen(url), pos = r % (len + 1);
      const char *sec = strstr(url, ":s3cret@");
      size_t sb = (size_t)(sec - url), se = sb + 8;
      if (pos > sb && pos < se) continue; /* never inside the secret */
      char c = edits[(r >> 8) % (sizeof edits - 1)];
      if ((r >> 16) % 3 == 0 && pos < len && (pos < sb || pos >= se)) {
        memmove(url + pos, url + pos + 1, len - pos); /* delete */
      } else if (len + 1 < sizeof url) {
        memmove(url + pos + 1, url + pos, len - pos + 1); /* insert */
        url[pos] = c;
      }
    }
    rcache__url u;
    char err[512], red[256];
    rcache_status st = rcache__url_parse(url, &u, err, sizeof err);
    rcache__redact(url, red, sizeof red);
    /* free text is only understood as scheme://user:pass@ with no space in between */
    const char *sep = strstr(url, "://"), *sec = strstr(url, ":s3cret@");
    bool url_like = sep && sep < sec && !memchr(sep, ' ', (size_t)(sec - sep));
    bool leak = url_like && strstr(red, "s3cret") != NULL;
    if (st == RCACHE_OK)
      leak |= strstr(u.redacted, "s3cret") != NULL;
    else
      leak |= strstr(err, "s3cret") != NULL || strstr(err, "***") == NULL;
    if (leak && leaks++ < 5)
      fprintf(stderr, "leak for \"%s\": %s / %s\n", url, st == RCACHE_OK ? u.redacted : err, red);
    rcache__url_free(&u);
  }
  CHECK_EQ(leaks, 0);
}

static void test_public_api(void) {
  rcache *c = (rcache *)(uintptr_t)1; /* must come back NULL */
  CHECK_EQ(rcache_open(&c, "redis://h:70000", NULL), RCACHE_EURL);
  CHECK(c == NULL);
  const char *m = rcache_errmsg(NULL);
  CHECK_MSG(strstr(m, "port 70000 out of range") != NULL, "errmsg \"%s\"", m);
  CHECK_EQ(rcache_open(&c, "redis://u:s3cret@h:70000/0", NULL), RCACHE_EURL);
  m = rcache_errmsg(NULL);
  CHECK_MSG(strstr(m, "port 70000") && strstr(m, "***") && !strstr(m, "s3cret"), "errmsg \"%s\"",
            m);
  CHECK_EQ(rcache_open(&c, "memory://?pool=3", NULL), RCACHE_EURL);
  CHECK(strstr(rcache_errmsg(NULL), "does not apply to memory://") != NULL);
  rcache_options o; /* the option's bound holds for the struct as for the URL */
  rcache_options_init(&o);
  CHECK_EQ(o.publish_stats_s, 0);
  o.publish_stats_s = 86401;
  CHECK_EQ(rcache_open(&c, "memory://", &o), RCACHE_EINVAL);
  CHECK(strstr(rcache_errmsg(NULL), "publish_stats_s must be 0..86400") != NULL);
}

/* dns= is taken as it is (percent-decoded); rcache_open checks the list (test_dns.c). */
static void test_dns(void) {
  rcache__url u;
  char err[256];
  CHECK_EQ(rcache__url_parse("rediss://h?dns=10.0.0.2,%5B::1%5D:5353", &u, err, sizeof err),
           RCACHE_OK);
  CHECK_STR(u.dns, "10.0.0.2,[::1]:5353");
  rcache__url_free(&u);
  CHECK_EQ(rcache__url_parse("redis://h", &u, err, sizeof err), RCACHE_OK);
  CHECK(u.dns == NULL);
  rcache__url_free(&u);
}

int main(void) {
  test_good();
  test_dns();
  test_bad();
  test_secret_span();
  test_redact();
  test_password_never_leaks();
  test_public_api();
  return test_report("test_url");
}
