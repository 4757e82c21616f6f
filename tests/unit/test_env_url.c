/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rcache_open(NULL): which URL $REDIS_URL selects. An empty REDIS_URL (a deployment template
 * left unfilled) is treated as unset — the default redis://localhost:6379, with one warning —
 * and never turns caching off; only none:// in the variable, or "" passed by the program,
 * does. No server is needed: opening never waits for Redis, and the mode is known at once.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rcache/rcache.h"
#include "test.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int env_warnings, other_env_lines;

/* Counts the lines about REDIS_URL (the backend may log its own, from its threads too). */
static void log_fn(int level, const char *msg, void *ud) {
  (void)ud;
  if (!strstr(msg, "REDIS_URL")) return;
  pthread_mutex_lock(&mu);
  if (level == RCACHE_LOG_WARN && strstr(msg, "REDIS_URL is set but empty") &&
      strstr(msg, "redis://localhost:6379"))
    env_warnings++;
  else
    other_env_lines++;
  pthread_mutex_unlock(&mu);
}

/* Opens with url (NULL: the environment's), REDIS_URL set to env (NULL: unset), and checks the
 * backend's mode and the number of REDIS_URL warnings. */
static void opens(const char *env, const char *url, const char *mode, int warnings, int level) {
  if (env) {
    setenv("REDIS_URL", env, 1);
  } else {
    unsetenv("REDIS_URL");
  }
  rcache_options o;
  rcache_options_init(&o);
  o.log_fn = log_fn;
  o.log_level = level;
  o.connect_timeout_ms = 200; /* nothing listens on :6379 here, or something does: either way */
  pthread_mutex_lock(&mu);
  env_warnings = other_env_lines = 0;
  pthread_mutex_unlock(&mu);
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  CHECK_MSG(c && strcmp(rcache_mode(c), mode) == 0, "env \"%s\": mode %s, want %s",
            env ? env : "(unset)", c ? rcache_mode(c) : "-", mode);
  rcache_close(c); /* joins the backend's threads: no log line can follow */
  CHECK_MSG(env_warnings == warnings && other_env_lines == 0, "env \"%s\": %d warnings, %d other",
            env ? env : "(unset)", env_warnings, other_env_lines);
}

int main(void) {
  /* the empty variable: the default URL, standalone, one warning */
  opens("", NULL, "standalone", 1, RCACHE_LOG_WARN);
  opens("", NULL, "standalone", 1, RCACHE_LOG_DEBUG);
  opens("", NULL, "standalone", 0, RCACHE_LOG_ERROR); /* below the handle's log level */
  /* unset: the same URL, nothing to warn about */
  opens(NULL, NULL, "standalone", 0, RCACHE_LOG_WARN);
  /* only an explicit none:// in the variable, or "" from the program, turns caching off */
  opens("none://", NULL, "none", 0, RCACHE_LOG_WARN);
  opens("memory://", NULL, "memory", 0, RCACHE_LOG_WARN);
  opens("memory://", "", "none", 0, RCACHE_LOG_WARN);
  opens("", "", "none", 0, RCACHE_LOG_WARN); /* the argument wins: the variable is not read */
  opens("", "memory://", "memory", 0, RCACHE_LOG_WARN);
  /* a variable of spaces is not empty: a malformed URL, refused, never none:// */
  setenv("REDIS_URL", " ", 1);
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, NULL, NULL), RCACHE_EURL);
  CHECK(c == NULL);
  return test_report("test_env_url");
}
