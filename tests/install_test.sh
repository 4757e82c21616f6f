#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Installs the build into a temporary prefix, then builds a small program against it
# twice: with `pkg-config --cflags --libs rcache` and with CMake's find_package(rcache).
set -euo pipefail
build=$1 cc=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/pkgconfig | head -1 | xargs dirname)
cat >"$tmp/app.c" <<'C'
#include <rcache/rcache.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  rcache *c = NULL;
  if (rcache_open(&c, "memory://", NULL) != RCACHE_OK) return 1;
  if (rcache_set(c, "k", "v", 1, 0) != RCACHE_OK) return 2;
  rcache_value v = {0};
  int ok = rcache_get(c, "k", &v) == RCACHE_OK && v.len == 1 && memcmp(v.data, "v", 1) == 0;
  rcache_value_free(&v);
  rcache_close(c);
  printf("%s %s\n", rcache_version(), ok ? "ok" : "bad");
  return ok ? 0 : 3;
}
C
pass=0
export PKG_CONFIG_PATH="$libdir/pkgconfig"
"$cc" "$tmp/app.c" -o "$tmp/app_pc" $(pkg-config --cflags --libs rcache)
LD_LIBRARY_PATH="$libdir" "$tmp/app_pc" && pass=$((pass + 1))
# static: the archive in place of -lrcache, everything else from `pkg-config --static`
"$cc" "$tmp/app.c" -o "$tmp/app_static" $(pkg-config --cflags rcache) \
  $(pkg-config --static --libs rcache | sed "s|-lrcache|$libdir/librcache.a|")
"$tmp/app_static" && pass=$((pass + 1))
# SONAME comes from version.h
soname=$(objdump -p "$libdir/librcache.so" | awk '/SONAME/{print $2}')
major=$(awk '/#define RCACHE_SOVERSION/{print $3}' "$(dirname "$0")/../include/rcache/version.h")
[ "$soname" = "librcache.so.$major" ] && pass=$((pass + 1))
mkdir -p "$tmp/cm"
cp "$tmp/app.c" "$tmp/cm/app.c"
cat >"$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(app C)
find_package(rcache REQUIRED)
add_executable(app app.c)
target_link_libraries(app PRIVATE rcache::rcache)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/b" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm/b" >/dev/null
LD_LIBRARY_PATH="$libdir" "$tmp/cm/b/app" && pass=$((pass + 1))
echo "install_pkgconfig: $pass passed, $((4 - pass)) failed"
[ $pass -eq 4 ]
