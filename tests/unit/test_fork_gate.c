/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The fork gate (src/fork.c, docs/threading.md): fork() waits until the library's background
 * threads are in a wait, so a child never inherits a lock one of them held.
 *
 * Two background threads allocate without pause (every size class, and thread starts of their
 * own), parking only in rcache__sleep_us between rounds, while the main thread forks 200
 * children; each child allocates in every size class and starts a thread of its own, as a
 * forked handle does (its prober, its listener). Without the gate, a child whose parent thread
 * was inside the allocator at the fork hangs on its first allocation of that class: under
 * AddressSanitizer, whose allocator is not locked across fork(), that happened to 10 of 90
 * children of integration_test_fork's outage case; here, without the gate, 2 of 200 (the
 * same stack), with it 0 of 600. A child that is not done within 20 s is a failure (it is
 * killed). Also: a thread of rcache__bg_run is joined by rcache__bg_wait, and
 * a child can start and join background threads of its own.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "test.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

#define CHILDREN 200

#ifndef UNDER_TSAN
#ifndef UNDER_TSAN
static atomic_bool stop;
static atomic_long rounds;

static void *noop(void *arg) {
  return arg;
}

/* Every size class of a typical allocator, from 16 bytes to 256 KiB. */
static void churn(void) {
  void *p[15];
  for (int i = 0; i < 15; i++)
    p[i] = malloc((size_t)16 << i);
  for (int i = 0; i < 15; i++)
    free(p[i]);
}

static void *busy_main(void *arg) {
  while (!atomic_load(&stop)) {
    for (int i = 0; i < 50; i++)
      churn();
    pthread_t t;
    if (pthread_create(&t, NULL, noop, NULL) == 0) pthread_join(t, NULL);
    atomic_fetch_add(&rounds, 1);
    rcache__sleep_us(20); /* its one wait: parked */
  }
  return arg;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The child's exit code, or -1 when it was still running after ms (then killed). */
static int reap(pid_t pid, int ms) {
  int st = 0;
  for (int64_t until = now_ms() + ms; now_ms() < until;) {
    if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

static void forks_while_busy(void) {
  rcache__fork_watch();
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    CHECK_EQ(rcache__bg_spawn(&t[i], busy_main, NULL), 0);
  while (atomic_load(&rounds) < 4) /* both running */
    rcache__sleep_us(1000);
  int hung = 0, failed = 0;
  for (int k = 0; k < CHILDREN; k++) {
    pid_t pid = fork();
    if (pid == 0) {
      alarm(60);
      churn();
      pthread_t c;
      if (rcache__bg_spawn(&c, noop, NULL) != 0) _exit(2);
      rcache__bg_join(c);
      _exit(0);
    }
    CHECK(pid > 0);
    if (pid < 0) break;
    int rc = reap(pid, 20000);
    hung += rc == -1;
    failed += rc > 0;
  }
  atomic_store(&stop, true);
  for (int i = 0; i < 2; i++)
    rcache__bg_join(t[i]);
  CHECK_MSG(hung == 0, "%d of %d children hung", hung, CHILDREN);
  CHECK_MSG(failed == 0, "%d of %d children could not start a thread", failed, CHILDREN);
  fprintf(stderr, "fork gate: %d children forked while 2 threads allocated (%ld rounds)\n",
          CHILDREN, atomic_load(&rounds));
}

#endif

#endif

static atomic_bool job_done;

static void *job(void *arg) {
  atomic_store(&job_done, true);
  return arg;
}

static void run_and_wait(void) {
  _Atomic int running = 0;
  CHECK_EQ(rcache__bg_run(job, NULL, &running), 0);
  while (!atomic_load(&job_done))
    rcache__sleep_us(100);
  rcache__bg_wait(&running);
  CHECK_EQ(atomic_load(&running), 0); /* joined: nothing left for a fork to wait for */
}

int main(void) {
  run_and_wait();
#ifdef UNDER_TSAN
  /* ThreadSanitizer does not support starting threads in the child of a multi-threaded fork
   * (its own runtime's locks: die_after_fork); integration_test_fork covers what a handle
   * does there. The allocator case this checks is AddressSanitizer's and the C library's. */
  fprintf(stderr, "fork gate: the forks are left out under ThreadSanitizer\n");
#else
  forks_while_busy();
#endif
  return test_report("test_fork_gate");
}
