/* SPDX-License-Identifier: BSD-3-Clause */
/* The log lines of rcache handles, kept for a test to read. rcache logs from its background
 * threads too (prober, invalidation listener), so the buffer is written and read under one
 * lock; tests read it only through these functions. */
#ifndef RCACHE_TEST_LOG_CAPTURE_H
#define RCACHE_TEST_LOG_CAPTURE_H

#include <stdbool.h>

/* An rcache log_fn: appends "<level> <message>\n" (ud is unused). */
void lc_log(int level, const char *msg, void *ud);
/* Forgets every line kept so far. */
void lc_clear(void);
/* True when some line kept so far holds `text`. */
bool lc_has(const char *text);
/* A copy of every line kept so far, valid until the next lc_text() (one thread at a time). */
const char *lc_text(void);

#endif
