/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Noticing fork(): a pthread_atfork child handler bumps a process-wide generation, and
 * every call compares it with its handle's (one relaxed atomic load). Chosen over caching
 * getpid(): glibc no longer caches the PID, so getpid() is a system call on every check,
 * and a PID can repeat in a grandchild once its grandparent has exited. The handler is
 * async-signal-safe (one atomic add): the child's real work happens on its first call
 * (rcache.c), not in the handler, so a fork followed by exec costs nothing.
 */
#include <pthread.h>

#include "internal.h"

_Atomic uint64_t rcache__fork_generation;

static void child(void) {
  atomic_fetch_add_explicit(&rcache__fork_generation, 1, memory_order_relaxed);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void install(void) {
  (void)pthread_atfork(NULL, NULL, child); /* fails only without memory: then unwatched */
}

void rcache__fork_watch(void) {
  pthread_once(&once, install);
}
