/* SPDX-License-Identifier: BSD-3-Clause */
/* Which sanitizer a test is built with, for GCC (__SANITIZE_*__) and Clang (__has_feature):
 * TEST_ASAN, TEST_TSAN, and TEST_SANITIZER_HEAP when malloc is the sanitizer's. */
#ifndef RCACHE_TEST_SANITIZERS_H
#define RCACHE_TEST_SANITIZERS_H

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(TEST_ASAN)
#define TEST_ASAN 1
#endif
#if __has_feature(thread_sanitizer) && !defined(TEST_TSAN)
#define TEST_TSAN 1
#endif
#endif
#if defined(TEST_ASAN) || defined(TEST_TSAN)
#define TEST_SANITIZER_HEAP 1
#endif

#endif
