/* SPDX-License-Identifier: BSD-3-Clause */
/* A tiny test harness: CHECK() records a failure and goes on; TEST_MAIN prints the
 * "N passed, N failed" line that CTest's log and .ci read, and sets the exit code. */
#ifndef RCACHE_TEST_H
#define RCACHE_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_passed, t_failed;

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (cond) {                                                                                    \
      t_passed++;                                                                                  \
    } else {                                                                                       \
      t_failed++;                                                                                  \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                              \
    }                                                                                              \
  } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
  do {                                                                                             \
    if (cond) {                                                                                    \
      t_passed++;                                                                                  \
    } else {                                                                                       \
      t_failed++;                                                                                  \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                              \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
    }                                                                                              \
  } while (0)

/* CHECK_EQ for integers, printing both sides on failure. */
#define CHECK_EQ(a, b)                                                                             \
  do {                                                                                             \
    long long _a = (long long)(a), _b = (long long)(b);                                            \
    if (_a == _b) {                                                                                \
      t_passed++;                                                                                  \
    } else {                                                                                       \
      t_failed++;                                                                                  \
      fprintf(stderr, "FAIL %s:%d: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, #b, _a,     \
              _b);                                                                                 \
    }                                                                                              \
  } while (0)

#define CHECK_STR(a, b)                                                                            \
  do {                                                                                             \
    const char *_a = (a), *_b = (b);                                                               \
    if (_a && _b && strcmp(_a, _b) == 0) {                                                         \
      t_passed++;                                                                                  \
    } else {                                                                                       \
      t_failed++;                                                                                  \
      fprintf(stderr, "FAIL %s:%d: %s == %s (\"%s\" != \"%s\")\n", __FILE__, __LINE__, #a, #b,     \
              _a ? _a : "(null)", _b ? _b : "(null)");                                             \
    }                                                                                              \
  } while (0)

static inline int test_report(const char *name) {
  printf("%s: %d passed, %d failed\n", name, t_passed, t_failed);
  return t_failed ? 1 : 0;
}

/* Reads a URL from an environment variable; exits with a failure (not a skip) when it is
 * missing, so a test that needs a server can never pass without one. */
static inline const char *test_env_url(const char *var) {
  const char *u = getenv(var);
  if (!u || !*u) {
    fprintf(stderr, "FAIL: %s is not set (run through `make test`, which starts the servers)\n",
            var);
    printf("%s: 0 passed, 1 failed\n", var);
    exit(1);
  }
  return u;
}

#endif
