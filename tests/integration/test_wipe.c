/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * No copy of the password outlives rcache_close() in this process's memory, freed heap
 * included (issue 21: 2-4 copies, the formatted AUTH commands, used to remain). A user with
 * a random password is made on $RCACHE_TEST_URL_TCP's server over a raw socket from stack
 * buffers (so that the test itself leaves no copy in the heap); a handle with a pool and the
 * near cache (several AUTHs, from several threads) sets and reads, then closes; then every
 * readable, writable mapping but the main stack is scanned for the password.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rcache/rcache.h"
#include "test.h"

#define PWLEN 40

static unsigned char pw_x[PWLEN]; /* the password, XOR 0x5a: never in clear outside stacks */
static char user[48];

static void wipe(void *p, size_t n) {
  volatile unsigned char *v = p;
  while (n--)
    *v++ = 0;
}

static void reveal(char *out) {
  for (int i = 0; i < PWLEN; i++)
    out[i] = (char)(pw_x[i] ^ 0x5a);
  out[PWLEN] = '\0';
}

/* Sends one command of string arguments over a fresh connection; true on "+" or ":". */
static bool raw_cmd(int port, int argc, const char **argv) {
  char buf[1024], rep[256];
  size_t n = (size_t)snprintf(buf, sizeof buf, "*%d\r\n", argc);
  for (int i = 0; i < argc; i++)
    n += (size_t)snprintf(buf + n, sizeof buf - n, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
            write(fd, buf, n) == (ssize_t)n && read(fd, rep, sizeof rep) > 0 &&
            (rep[0] == '+' || rep[0] == ':');
  if (fd >= 0) close(fd);
  wipe(buf, sizeof buf);
  return ok;
}

/* Counts the password's occurrences in readable, writable mappings (not the main stack, not
 * sanitizer shadows: mappings above 1 GiB), but for the needle itself (under ASan's
 * detect_stack_use_after_return, stack frames live in such mappings). Not instrumented: freed
 * memory is read. */
#if defined(__clang__) || defined(__GNUC__)
__attribute__((no_sanitize("address", "thread")))
#endif
static int
count_in(const unsigned char *b, size_t len, const char *needle) {
  int hits = 0;
  for (size_t i = 0; i + PWLEN <= len; i++) {
    if (b[i] != (unsigned char)needle[0]) continue;
    size_t j = 1;
    while (j < PWLEN && b[i + j] == (unsigned char)needle[j])
      j++;
    if (j == PWLEN && b + i != (const unsigned char *)needle) hits++; /* not the needle itself */
  }
  return hits;
}

static int scan_memory(void) {
  char pw[PWLEN + 1];
  reveal(pw);
  FILE *f = fopen("/proc/self/maps", "r");
  char line[512];
  int hits = 0;
  while (f && fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    char perms[8];
    if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3) continue;
    if (perms[0] != 'r' || perms[1] != 'w' || strstr(line, "[stack]") || strstr(line, "[v")) {
      continue;
    }
    if (hi - lo > (1ul << 30)) continue;
    hits += count_in((const unsigned char *)lo, hi - lo, pw);
  }
  if (f) fclose(f);
  wipe(pw, sizeof pw);
  return hits;
}

int main(void) {
  test_env_url("RCACHE_TEST_URL_TCP");
  const char *p = getenv("RCACHE_TEST_PORT");
  int port = p ? atoi(p) : 0;
  FILE *r = fopen("/dev/urandom", "rb");
  unsigned char rnd[PWLEN];
  CHECK(r && fread(rnd, 1, sizeof rnd, r) == sizeof rnd);
  if (r) fclose(r);
  for (int i = 0; i < PWLEN; i++)
    pw_x[i] =
        (unsigned char)("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"[rnd[i] % 57] ^
                        0x5a);
  snprintf(user, sizeof user, "wipe-%d", (int)getpid());

  char pw[PWLEN + 1], rule[PWLEN + 2], url[256];
  reveal(pw);
  snprintf(rule, sizeof rule, ">%s", pw);
  const char *setuser[] = {"ACL", "SETUSER", user, "on", rule, "~wipe:*", "+@all", "allchannels"};
  CHECK(raw_cmd(port, 8, setuser));
  snprintf(url, sizeof url, "redis://%s:%s@127.0.0.1:%d?key_prefix=wipe:", user, pw, port);
  wipe(pw, sizeof pw);
  wipe(rule, sizeof rule);

  rcache_options o;
  rcache_options_init(&o);
  o.pool_size = 3;
  o.near_cache_bytes = 1 << 20;
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  wipe(url, sizeof url);
  if (c) {
    CHECK_EQ(rcache_set(c, "k", "v", 1, 60), RCACHE_OK);
    rcache_value v;
    for (int i = 0; i < 3; i++) {
      CHECK_EQ(rcache_get(c, "k", &v), RCACHE_OK);
      rcache_value_free(&v);
    }
    rcache_health h;
    CHECK_EQ(rcache_health_check(c, &h), RCACHE_OK);
    rcache_delete(c, "k");
    rcache_close(c);
  }
  int hits = scan_memory();
  printf("copies of the password in memory after rcache_close: %d\n", hits);
  CHECK_EQ(hits, 0);

  const char *deluser[] = {"ACL", "DELUSER", user};
  CHECK(raw_cmd(port, 3, deluser));
  return test_report("test_wipe");
}
