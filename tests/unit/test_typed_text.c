/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The text forms of the typed helpers, without a backend: doubles written as text that
 * reads back bit for bit (edges: -0.0, denormals, DBL_MAX, infinities; and 300000 random
 * bit patterns), and the strict parser that refuses what is not a number.
 */
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "test.h"
#include "typed.h"

static bool same_bits(double a, double b) {
  return memcmp(&a, &b, sizeof a) == 0;
}

static void dtoa_table(void) {
  static const struct {
    double v;
    const char *text;
  } t[] = {
      {0.0, "0"},
      {-0.0, "-0"},
      {0.1, "0.1"},
      {-2.5e-3, "-0.0025"},
      {42.0, "42"},
      {100.0, "100"},
      {1.0 / 3, "0.3333333333333333"},
      {0.1 + 0.2, "0.30000000000000004"},
      {1e300, "1e+300"},
      {1e21, "1e+21"},
      {9007199254740992.0, "9007199254740992"}, /* 2^53 */
      {123456789012345678.0, "1.2345678901234568e+17"},
      {DBL_MAX, "1.7976931348623157e+308"},
      {-DBL_MAX, "-1.7976931348623157e+308"},
      {DBL_MIN, "2.2250738585072014e-308"},
      {DBL_TRUE_MIN, "4.94065645841247e-324"},            /* the smallest denormal */
      {DBL_MIN - DBL_TRUE_MIN, "2.225073858507201e-308"}, /* the largest denormal */
      {INFINITY, "inf"},
      {-INFINITY, "-inf"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    char buf[RCACHE__DTOA_MAX];
    size_t n = rcache__dtoa(t[i].v, buf);
    CHECK_STR(buf, t[i].text);
    CHECK_EQ(n, strlen(t[i].text));
    double back;
    CHECK_EQ(rcache__strtod(buf, n, &back), RCACHE_OK);
    CHECK_MSG(same_bits(back, t[i].v), "%s did not read back bit for bit", t[i].text);
  }
}

/* Every finite double and both infinities survive the round trip, bit for bit. */
static void dtoa_random(void) {
  uint64_t x = 0x9e3779b97f4a7c15u;
  int bad = 0, tried = 0;
  for (int i = 0; i < 300000; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    double v;
    memcpy(&v, &x, sizeof v);
    if (isnan(v)) continue;
    tried++;
    char buf[RCACHE__DTOA_MAX];
    size_t n = rcache__dtoa(v, buf);
    double back = 0;
    if (n >= RCACHE__DTOA_MAX || rcache__strtod(buf, n, &back) != RCACHE_OK ||
        !same_bits(back, v)) {
      if (bad++ < 5) fprintf(stderr, "round trip failed for %a (%s)\n", v, buf);
    }
  }
  CHECK(tried > 270000);
  CHECK_EQ(bad, 0);
}

static void strtod_table(void) {
  static const struct {
    const char *text;
    rcache_status want;
    double v;
  } t[] = {
      {"0.1", RCACHE_OK, 0.1},
      {"42", RCACHE_OK, 42},
      {"-7", RCACHE_OK, -7},
      {"1e3", RCACHE_OK, 1000},
      {"1E+300", RCACHE_OK, 1e300},
      {"-2.5e-3", RCACHE_OK, -2.5e-3},
      {".5", RCACHE_OK, 0.5},
      {"inf", RCACHE_OK, INFINITY},
      {"-inf", RCACHE_OK, -INFINITY},
      {"Infinity", RCACHE_OK, INFINITY}, /* JavaScript's String(1/0) */
      {"-Infinity", RCACHE_OK, -INFINITY},
      {"4.9406564584124654e-324", RCACHE_OK, DBL_TRUE_MIN},
      {"1e-400", RCACHE_OK, 0.0}, /* underflow: the nearest double */
      {"1e999", RCACHE_ERANGE, 0},
      {"-1e999", RCACHE_ERANGE, 0},
      {"", RCACHE_ETYPE, 0},
      {"nan", RCACHE_ETYPE, 0},
      {"NaN", RCACHE_ETYPE, 0},
      {"-nan", RCACHE_ETYPE, 0},
      {"abc", RCACHE_ETYPE, 0},
      {" 1", RCACHE_ETYPE, 0},
      {"\t1", RCACHE_ETYPE, 0},
      {"1 ", RCACHE_ETYPE, 0},
      {"1\n", RCACHE_ETYPE, 0},
      {"1,5", RCACHE_ETYPE, 0},
      {"1.5.", RCACHE_ETYPE, 0},
      {"--1", RCACHE_ETYPE, 0},
      {"e5", RCACHE_ETYPE, 0},
      {"{\"a\":1}", RCACHE_ETYPE, 0},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    double v = 99;
    rcache_status s = rcache__strtod(t[i].text, strlen(t[i].text), &v);
    CHECK_MSG(s == t[i].want, "\"%s\": status %d, want %d", t[i].text, (int)s, (int)t[i].want);
    if (t[i].want == RCACHE_OK) {
      CHECK_MSG(same_bits(v, t[i].v), "\"%s\" read as %.17g", t[i].text, v);
    } else {
      CHECK_MSG(v == 0, "\"%s\": out not zeroed on failure", t[i].text);
    }
  }
  /* "-0" keeps its sign */
  double z = 1;
  CHECK_EQ(rcache__strtod("-0", 2, &z), RCACHE_OK);
  CHECK(z == 0 && signbit(z));
  /* an embedded NUL is not a number: "1\0" is two bytes */
  CHECK_EQ(rcache__strtod("1\0", 2, &z), RCACHE_ETYPE);
}

/* A program running with a decimal comma (de_DE) still writes and reads "0.5". The locale is
 * compiled into a temporary directory with localedef when the system has none. */
static void comma_locale(void) {
  char dir[] = "/tmp/rcache-locale-XXXXXX", cmd[256];
  const char *loc = setlocale(LC_NUMERIC, "de_DE.UTF-8");
  bool made = false;
  if (!loc && mkdtemp(dir)) {
    made = true;
    snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", dir);
    if (system(cmd) == 0) {
      setenv("LOCPATH", dir, 1);
      loc = setlocale(LC_NUMERIC, "de_DE.UTF-8");
    }
  }
  if (!loc) {
    printf("test_typed_text: note: no de_DE locale (no localedef?), locale check not run\n");
  } else {
    char buf[RCACHE__DTOA_MAX];
    snprintf(buf, sizeof buf, "%g", 0.5);
    CHECK_STR(buf, "0,5"); /* the locale is really in effect */
    rcache__dtoa(0.5, buf);
    CHECK_STR(buf, "0.5");
    rcache__dtoa(-1.25e-300, buf);
    CHECK_STR(buf, "-1.25e-300");
    double d = 0;
    CHECK_EQ(rcache__strtod("0.25", 4, &d), RCACHE_OK);
    CHECK(d == 0.25);
    CHECK_EQ(rcache__strtod("0,25", 4, &d), RCACHE_ETYPE);
    snprintf(buf, sizeof buf, "%g", 0.5);
    CHECK_STR(buf, "0,5"); /* the caller's locale is left as it was */
    setlocale(LC_NUMERIC, "C");
  }
  if (made) {
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
  }
}

int main(void) {
  dtoa_table();
  dtoa_random();
  strtod_table();
  comma_locale();
  return test_report("test_typed_text");
}
