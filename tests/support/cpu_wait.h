/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * How long the calling thread has waited, in all, to be given a CPU while it could run: the
 * second figure of /proc/thread-self/schedstat. On a shared 2-core machine one thread can
 * wait hundreds of ms while the rest of the process runs on, which a canary thread (a whole
 * process stall) does not see: a test that times something excuses that wait as the
 * machine's, never the library's. Header-only.
 */
#ifndef RCACHE_TEST_CPU_WAIT_H
#define RCACHE_TEST_CPU_WAIT_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

/* The calling thread's wait in us; 0 when the kernel does not say. *fd is the thread's own
 * schedstat, opened on first use (start it at -1; close it in that thread when done): a
 * descriptor opened by one thread names that thread for good. */
static inline int64_t cpu_wait_us(int *fd) {
  if (*fd < 0) *fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
  char buf[96];
  ssize_t n = *fd >= 0 ? pread(*fd, buf, sizeof buf - 1, 0) : -1;
  if (n <= 0) return 0;
  buf[n] = '\0';
  unsigned long long on_cpu = 0, waited = 0;
  if (sscanf(buf, "%llu %llu", &on_cpu, &waited) != 2) return 0;
  return (int64_t)(waited / 1000);
}

#endif
