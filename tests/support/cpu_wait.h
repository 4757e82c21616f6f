/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * How long the calling thread has waited, in all, to be given a CPU while it could run: the
 * second figure of /proc/thread-self/schedstat. On a shared 2-core machine one thread can
 * wait hundreds of ms while the rest of the process runs on, which a canary thread (a whole
 * process stall) does not see: a test that times something excuses that wait as the
 * machine's, never the library's. The same figure of a server's process, and of a helper
 * thread that records its own, says how long the machine kept them from serving a call.
 * Header-only.
 */
#ifndef RCACHE_TEST_CPU_WAIT_H
#define RCACHE_TEST_CPU_WAIT_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

/* Reads a schedstat file: the wait in us (the return), the time run in *on_cpu_us (may be
 * NULL); 0 when the kernel does not say. */
static inline int64_t cpu_sched_read(int fd, int64_t *on_cpu_us) {
  if (on_cpu_us) *on_cpu_us = 0;
  char buf[96];
  ssize_t n = fd >= 0 ? pread(fd, buf, sizeof buf - 1, 0) : -1;
  if (n <= 0) return 0;
  buf[n] = '\0';
  unsigned long long on_cpu = 0, waited = 0;
  if (sscanf(buf, "%llu %llu", &on_cpu, &waited) != 2) return 0;
  if (on_cpu_us) *on_cpu_us = (int64_t)(on_cpu / 1000);
  return (int64_t)(waited / 1000);
}

/* The calling thread's wait in us. *fd is the thread's own schedstat, opened on first use
 * (start it at -1; close it in that thread when done): a descriptor opened by one thread
 * names that thread for good. *on_cpu_us (may be NULL) gets the time the thread has run:
 * what is left of a stretch of wall time after both is the time the thread slept (on a
 * poll, a lock, a deadline). */
static inline int64_t cpu_sched_us(int *fd, int64_t *on_cpu_us) {
  if (*fd < 0) *fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
  return cpu_sched_read(*fd, on_cpu_us);
}

static inline int64_t cpu_wait_us(int *fd) {
  return cpu_sched_us(fd, NULL);
}

/* The wait in us of another process' main thread (a server a test started); 0 when pid is
 * 0 or the kernel does not say. */
static inline int64_t cpu_wait_of_pid_us(long pid) {
  if (pid <= 0) return 0;
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/schedstat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  int64_t w = cpu_sched_read(fd, NULL);
  if (fd >= 0) close(fd);
  return w;
}

#endif
