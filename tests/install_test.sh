#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Installs the build into a temporary prefix, then builds programs against it the ways a user
# would: `pkg-config --cflags --libs rcache` (shared and static) and CMake's
# find_package(rcache) (rcache::rcache and rcache::rcache_static), each with a program that
# uses the JSON helpers (jansson comes with rcache: json_decref is inline and calls
# json_delete), plus a C++ program including every public header.
# Usage: install_test.sh BUILD_DIR CC [CXX|none]
set -euo pipefail
build=$1 cc=$2 cxx=${3:-none}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/pkgconfig | head -1 | xargs dirname)
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }

cat >"$tmp/app.c" <<'C'
#include <rcache/json.h>
#include <rcache/keys.h>
#include <rcache/rcache.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = "app:";
  rcache *c = NULL;
  if (rcache_open(&c, "memory://", &o) != RCACHE_OK) return 1;
  if (rcache_set(c, "k", "v", 1, 0) != RCACHE_OK) return 2;
  rcache_value v = {0};
  int ok = rcache_get(c, "k", &v) == RCACHE_OK && v.len == 1 && memcmp(v.data, "v", 1) == 0;
  rcache_value_free(&v);
  json_t *in = json_pack("{s:i}", "id", 7), *out = NULL;
  ok = ok && rcache_set_json(c, "j", in, 0) == RCACHE_OK;
  json_decref(in);
  ok = ok && rcache_get_json(c, "j", &out) == RCACHE_OK &&
       json_integer_value(json_object_get(out, "id")) == 7;
  json_decref(out); /* inline: calls json_delete, from libjansson */
  rcache_stats st;
  rcache_get_stats(c, &st);
  ok = ok && st.sets == 2 && st.size == sizeof st;
  char key[32];
  ok = ok && rcache_key_user(key, sizeof key, "42") == 7;
  rcache_close(c);
  printf("%s %s\n", rcache_version(), ok ? "ok" : "bad");
  return ok ? 0 : 3;
}
C
export PKG_CONFIG_PATH="$libdir/pkgconfig"
# no dependency's flags leak into a program's compile line (no public header includes hiredis)
cflags=$(pkg-config --cflags rcache)
check "pkg-config --cflags leaks hiredis: $cflags" eval '! grep -qE "hiredis|_FILE_OFFSET_BITS" <<<"$cflags"'
"$cc" "$tmp/app.c" -o "$tmp/app_pc" $(pkg-config --cflags --libs rcache) &&
  check "pkg-config shared" env LD_LIBRARY_PATH="$libdir" "$tmp/app_pc" || bad "pkg-config shared: link"
# static: the archive in place of -lrcache, everything else from `pkg-config --static`
"$cc" "$tmp/app.c" -o "$tmp/app_static" $(pkg-config --cflags rcache) \
  $(pkg-config --static --libs rcache | sed "s|-lrcache|$libdir/librcache.a|") &&
  check "pkg-config static" "$tmp/app_static" || bad "pkg-config static: link"
check "static program needs no librcache.so" eval '! objdump -p "$tmp/app_static" | grep "NEEDED.*librcache" >/dev/null'
# SONAME comes from version.h
soname=$(objdump -p "$libdir/librcache.so" | awk '/SONAME/{print $2}')
major=$(awk '/#define RCACHE_SOVERSION/{print $3}' "$here/../include/rcache/version.h")
check "SONAME $soname" test "$soname" = "librcache.so.$major"

mkdir -p "$tmp/cm"
cp "$tmp/app.c" "$tmp/cm/app.c"
cat >"$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(app C)
find_package(rcache REQUIRED)
add_executable(app app.c)
target_link_libraries(app PRIVATE rcache::rcache)
add_executable(app_static app.c)
target_link_libraries(app_static PRIVATE rcache::rcache_static)
CM
if cmake -S "$tmp/cm" -B "$tmp/cm/b" -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >"$tmp/cm.log" 2>&1 &&
  cmake --build "$tmp/cm/b" >>"$tmp/cm.log" 2>&1; then
  check "find_package rcache::rcache" env LD_LIBRARY_PATH="$libdir" "$tmp/cm/b/app"
  check "find_package rcache::rcache_static" "$tmp/cm/b/app_static"
  check "no hiredis flags in the CMake targets' compile lines" \
    eval '! grep -qE "hiredis|_FILE_OFFSET_BITS" "$tmp/cm/b/compile_commands.json"'
else
  cat "$tmp/cm.log" >&2
  bad "find_package: configure or build"
fi

if [ "$cxx" != none ]; then
  cat >"$tmp/app.cpp" <<'CPP'
#include <rcache/json.h>
#include <rcache/keys.h>
#include <rcache/rcache.h>
#include <rcache/version.h>
#include <cstdio>
int main() {
  rcache_options o;
  rcache_options_init(&o);
  rcache *c = nullptr;
  if (rcache_open(&c, "memory://", &o) != RCACHE_OK) return 1;
  json_t *in = json_string("x"), *out = nullptr;
  bool ok = rcache_set_json(c, "j", in, 0) == RCACHE_OK && rcache_get_json(c, "j", &out) == RCACHE_OK;
  json_decref(in);
  json_decref(out);
  rcache_stats st;
  rcache_get_stats(c, &st);
  rcache_close(c);
  std::printf("c++ %s\n", ok && st.sets == 1 ? "ok" : "bad");
  return ok && st.sets == 1 ? 0 : 1;
}
CPP
  "$cxx" -std=c++11 -Wall -Wextra -pedantic -Werror "$tmp/app.cpp" -o "$tmp/app_cpp" \
    $(pkg-config --cflags --libs rcache) &&
    check "C++ program" env LD_LIBRARY_PATH="$libdir" "$tmp/app_cpp" || bad "C++: compile"
else
  echo "install_pkgconfig: no C++ compiler found at configure time: C++ check not run"
fi
check "man3 pages installed" test -f "$tmp/prefix/share/man/man3/rcache_open.3" -a \
  -f "$tmp/prefix/share/man/man3/librcache.3"
echo "install_pkgconfig: $pass passed, $fail failed"
[ $fail -eq 0 ]
