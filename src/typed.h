/* SPDX-License-Identifier: BSD-3-Clause */
/* Pure text forms of the typed helpers (typed.c), exposed to the unit tests. Internal. */
#ifndef RCACHE_TYPED_H
#define RCACHE_TYPED_H

#include "internal.h"

/* Room for any text rcache__dtoa writes, NUL included. */
#define RCACHE__DTOA_MAX 32

/* Writes "C"-locale decimal text that strtod reads back as exactly v, bit for bit (so -0.0
 * stays "-0"): the first of 15, 16 or 17 significant digits that does. "inf" / "-inf" for
 * infinities. v must not be NaN. Returns the length. */
size_t rcache__dtoa(double v, char buf[RCACHE__DTOA_MAX]);

/* Parses the whole of s[0..len) (s[len] == '\0') as a double in the "C" locale. RCACHE_OK,
 * RCACHE_ETYPE (not a number, "nan", spaces around, an embedded NUL), RCACHE_ERANGE
 * (overflow). */
rcache_status rcache__strtod(const char *s, size_t len, double *out);

#endif
