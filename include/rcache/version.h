/* SPDX-License-Identifier: BSD-3-Clause */
/* rcache — version: the single source of truth (CMake reads these lines). */
#ifndef RCACHE_VERSION_H
#define RCACHE_VERSION_H

#define RCACHE_VERSION_MAJOR 0
#define RCACHE_VERSION_MINOR 1
#define RCACHE_VERSION_PATCH 0
#define RCACHE_VERSION_STRING "0.1.0"

/* The shared library's SONAME is librcache.so.RCACHE_SOVERSION. Bump it on any ABI break. */
#define RCACHE_SOVERSION 1

#endif /* RCACHE_VERSION_H */
