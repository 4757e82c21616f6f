/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Hostile replies cost bounded memory and time at every reader (issue 21): a server that
 * streams an endless array ("*100000000\r\n" then ":1\r\n" forever) or an endless bulk
 * string ("$1000000000\r\n" then bytes forever), at the data path (a GET) and at the near
 * cache's invalidation listener (after SUBSCRIBE). With default limits each must cost the
 * process less than 64 MiB of resident memory (peak, VmHWM after clearing it) and the call
 * must return by its deadline. The server is a fake on a Unix socket (fake_resp.h): a real
 * Redis never sends such replies.
 */
#include <fcntl.h>
#include <time.h>

#include "fake_resp.h"
#include "log_capture.h"
#include "rcache/rcache.h"
#include "test.h"

#define RSS_BOUND_KB (64 * 1024)

/* VmRSS or VmHWM of this process, in KiB. */
static long proc_kb(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  size_t fl = strlen(field);
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, field, fl) == 0 && line[fl] == ':') kb = atol(line + fl + 1);
  if (f) fclose(f);
  return kb;
}

/* Resets VmHWM to the current RSS (Linux: "5" to clear_refs). */
static bool reset_peak(void) {
  int fd = open("/proc/self/clear_refs", O_WRONLY);
  bool ok = fd >= 0 && write(fd, "5", 1) == 1;
  if (fd >= 0) close(fd);
  return ok;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static rcache *open_fake(const fake_resp *f, size_t near_bytes) {
  char url[160];
  snprintf(url, sizeof url, "unix://%s", f->path);
  rcache_options o;
  rcache_options_init(&o);
  o.command_timeout_ms = 1000;
  o.near_cache_bytes = near_bytes;
  o.log_fn = lc_log;
  o.log_level = RCACHE_LOG_INFO;
  rcache *c = NULL;
  rcache_status s = rcache_open(&c, url, &o);
  CHECK_MSG(s == RCACHE_OK, "open %s: %s", url, rcache_errmsg(NULL));
  return c;
}

/* A GET answered by the endless reply: RCACHE_ETOOBIG, bounded memory, by the deadline. */
static void data_path(const char *name, const char *head, const char *body) {
  fake_resp f = {.trigger = "GET", .head = head, .body = body};
  if (!fr_start(&f, name)) {
    CHECK_MSG(false, "fake server %s did not start", name);
    return;
  }
  rcache *c = open_fake(&f, 0);
  if (c) {
    CHECK(reset_peak());
    long before = proc_kb("VmRSS");
    double t0 = now_ms();
    rcache_value v;
    rcache_status s = rcache_get(c, "k", &v);
    double took = now_ms() - t0;
    long grew = proc_kb("VmHWM") - before;
    CHECK_MSG(s == RCACHE_ETOOBIG, "%s: %s (%s)", name, rcache_strerror(s), rcache_errmsg(c));
    CHECK_MSG(grew < RSS_BOUND_KB, "%s: the process grew by %ld KiB", name, grew);
    /* the deadline is 1 s; 3 s leaves room for a loaded machine, not for a 1 GiB parse */
    CHECK_MSG(took < 3000, "%s: the call took %.0f ms", name, took);
    printf("%s (data path): %s in %.0f ms, peak RSS +%ld KiB, %llu hostile bytes sent\n", name,
           rcache_strerror(s), took, grew, (unsigned long long)atomic_load(&f.streamed));
    rcache_close(c);
  }
  fr_stop(&f);
}

/* The listener subscribed and got the endless reply: it must give up on it (logged, the
 * near cache flushed) without growing; closing the handle is prompt. */
static void listener(const char *name, const char *head, const char *body) {
  fake_resp f = {.trigger = "SUBSCRIBE", .head = head, .body = body};
  if (!fr_start(&f, name)) {
    CHECK_MSG(false, "fake server %s did not start", name);
    return;
  }
  lc_clear();
  CHECK(reset_peak());
  long before = proc_kb("VmRSS");
  rcache *c = open_fake(&f, 1 << 20);
  if (c) {
    rcache_stats st = {0};
    /* until the listener has given up twice (it reconnects after each), at most 10 s */
    for (int i = 0; i < 1000; i++) {
      rcache_get_stats(c, &st);
      if (st.near_flushes >= 2 && lc_has("larger than the maximum")) break;
      usleep(10000);
    }
    long grew = proc_kb("VmHWM") - before;
    const char *lines = lc_text();
    CHECK_MSG(strstr(lines, "invalidation listener lost (reply larger than the maximum") != NULL,
              "%s: lines:\n%s", name, lines);
    char warn[64];
    snprintf(warn, sizeof warn, "%d near cache: invalidation listener lost", RCACHE_LOG_WARN);
    CHECK_MSG(strstr(lines, warn) != NULL, "%s: not a warning:\n%s", name, lines);
    CHECK_MSG(grew < RSS_BOUND_KB, "%s: the process grew by %ld KiB", name, grew);
    printf("%s (listener): %llu flushes, peak RSS +%ld KiB, %llu hostile bytes sent\n", name,
           (unsigned long long)st.near_flushes, grew, (unsigned long long)atomic_load(&f.streamed));
    double t0 = now_ms();
    rcache_close(c);
    CHECK_MSG(now_ms() - t0 < 3000, "%s: close took %.0f ms", name, now_ms() - t0);
  }
  fr_stop(&f);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  data_path("hostile-array", "*100000000\r\n", ":1\r\n");
  data_path("hostile-bulk", "$1000000000\r\n", "xxxxxxxxxxxxxxxx");
  /* arrays each within the budget, their sum not: the heap cost of the whole reply counts */
  static char nested[8192];
  size_t n = (size_t)snprintf(nested, sizeof nested, "*1000\r\n");
  for (int i = 0; i < 1000; i++)
    n += (size_t)snprintf(nested + n, sizeof nested - n, ":1\r\n");
  data_path("hostile-nested", "*100000\r\n", nested);
  listener("hostile-array-l", "*100000000\r\n", ":1\r\n");
  listener("hostile-bulk-l",
           "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$1000000000\r\n",
           "xxxxxxxxxxxxxxxx");
  return test_report("test_hostile");
}
