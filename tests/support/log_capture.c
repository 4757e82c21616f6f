/* SPDX-License-Identifier: BSD-3-Clause */
#include "log_capture.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char lines[16384], copy[sizeof lines];

void lc_log(int level, const char *msg, void *ud) {
  (void)ud;
  pthread_mutex_lock(&mu);
  size_t l = strlen(lines);
  snprintf(lines + l, sizeof lines - l, "%d %s\n", level, msg);
  pthread_mutex_unlock(&mu);
}

void lc_clear(void) {
  pthread_mutex_lock(&mu);
  lines[0] = '\0';
  pthread_mutex_unlock(&mu);
}

bool lc_has(const char *text) {
  pthread_mutex_lock(&mu);
  bool yes = strstr(lines, text) != NULL;
  pthread_mutex_unlock(&mu);
  return yes;
}

const char *lc_text(void) {
  pthread_mutex_lock(&mu);
  memcpy(copy, lines, sizeof copy);
  pthread_mutex_unlock(&mu);
  return copy;
}
