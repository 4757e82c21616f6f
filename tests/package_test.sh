#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# `make package`'s Debian packages: builds them with cpack from BUILD_DIR, unpacks each into a
# throwaway root with `dpkg -x` (nothing is installed on the system), checks what each holds
# and depends on, then builds and runs a program against the unpacked -dev and library
# packages with pkg-config and runs the unpacked CLI.
# Usage: package_test.sh BUILD_DIR CC
set -euo pipefail
build=$1 cc=$2
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
check() { local what=$1; shift; if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what" >&2; fi; }

(cd "$build" && cpack -G DEB -B "$tmp/out" >"$tmp/cpack.log" 2>&1) || { cat "$tmp/cpack.log"; exit 1; }
so=$(awk '/#define RCACHE_SOVERSION/{print $3}' "$here/../include/rcache/version.h")
lib=$(ls "$tmp"/out/librcache"$so"_*.deb) dev=$(ls "$tmp"/out/librcache-dev_*.deb)
tools=$(ls "$tmp"/out/rcache-tools_*.deb)
root=$tmp/root
for d in "$lib" "$dev" "$tools"; do dpkg -x "$d" "$root"; done
# grep reads its whole input (no -q): under pipefail a writer cut off by an early exit of
# grep -q dies of SIGPIPE and fails the check at random (CI stop 22: the ldd check)
has() { dpkg-deb -c "$1" | awk '{print $6}' | grep -E "$2" >/dev/null; }
check "library package holds librcache.so.$so" has "$lib" "/usr/lib.*/librcache\.so\.$so\$"
check "library package holds no headers" eval '! has "$lib" "\.h$"'
check "-dev holds the headers" has "$dev" "/usr/include/rcache/json\.h$"
check "-dev holds rcache.pc" has "$dev" "/pkgconfig/rcache\.pc$"
check "-dev holds the CMake package" has "$dev" "/cmake/rcache/rcacheConfig\.cmake$"
check "-dev holds man3 pages" has "$dev" "/man3/rcache_open\.3"
check "-dev holds the .so link" has "$dev" "/librcache\.so$"
check "tools package holds the CLI" has "$tools" "/usr/bin/rcache$"
check "tools package holds rcache.1" has "$tools" "/man1/rcache\.1"
check "-dev depends on the library" eval 'dpkg-deb -f "$dev" Depends | grep "librcache$so (=" >/dev/null'
for d in "$lib" "$dev" "$tools"; do
  p=$(dpkg-deb -f "$d" Package)
  check "$p has /usr/share/doc/$p/copyright" has "$d" "/usr/share/doc/$p/copyright$"
done
check "library depends on jansson" eval 'dpkg-deb -f "$lib" Depends | grep libjansson >/dev/null'
check "library depends on c-ares" eval 'dpkg-deb -f "$lib" Depends | grep libc-ares >/dev/null'
# what lintian asks of a shared library package (policy 8.1.1, 8.6, 12.7)
check "library package has a shlibs file" eval 'dpkg-deb -I "$lib" shlibs | grep "^librcache $so " >/dev/null'
check "library package has the ldconfig trigger" \
  eval 'dpkg-deb -I "$lib" triggers | grep "^activate-noawait ldconfig" >/dev/null'
for d in "$lib" "$dev" "$tools"; do
  p=$(dpkg-deb -f "$d" Package)
  check "$p has a Debian changelog.gz" has "$d" "/usr/share/doc/$p/changelog\.gz$"
done
sofile=$(find "$root/usr/lib" -name "librcache.so.*" -type f)
check "the library is stripped (no .symtab)" eval '! readelf -S "$sofile" | grep "\.symtab" >/dev/null'

libdir=$(dirname "$(ls "$root"/usr/lib*/librcache.so | head -1)")
cat >"$tmp/app.c" <<'C'
#include <rcache/json.h>
#include <stdio.h>
int main(void) {
  rcache *c = NULL;
  if (rcache_open(&c, "memory://", NULL) != RCACHE_OK) return 1;
  json_t *in = json_integer(5), *out = NULL;
  int ok = rcache_set_json(c, "n", in, 0) == RCACHE_OK &&
           rcache_get_json(c, "n", &out) == RCACHE_OK && json_integer_value(out) == 5;
  json_decref(in);
  json_decref(out);
  rcache_close(c);
  printf("packaged %s %s\n", rcache_version(), ok ? "ok" : "bad");
  return ok ? 0 : 2;
}
C
# rcache.pc is relocatable (prefix from its own place), so the unpacked root needs no sysroot
export PKG_CONFIG_PATH="$libdir/pkgconfig"
check "pkg-config finds the unpacked prefix" eval 'pkg-config --cflags rcache | grep -- "-I$root/" >/dev/null'
"$cc" "$tmp/app.c" -o "$tmp/app" $(pkg-config --cflags --libs rcache) &&
  check "a program built against the packages runs" env LD_LIBRARY_PATH="$libdir" "$tmp/app" ||
  check "a program builds against the packages" false
check "the packaged library is what the program loads" eval \
  'LD_LIBRARY_PATH="$libdir" ldd "$tmp/app" | grep "$libdir/librcache.so.$so" >/dev/null'
check "the packaged CLI runs" "$root/usr/bin/rcache" --version
check "man pages are gzipped (Debian policy)" eval '! for d in "$dev" "$tools"; do dpkg-deb -c "$d"; done | grep -E "/man[1-9]/[^/]*\.[1-9]$" >/dev/null'
check "man3 page renders" eval 'MANWIDTH=80 man -l "$root"/usr/share/man/man3/rcache_open.3.gz 2>/dev/null | grep rcache_open >/dev/null'
check "a .so link page renders" eval '(cd "$root/usr/share/man" && MANWIDTH=80 man -l man3/rcache_options_init.3.gz 2>/dev/null | grep rcache_options_init_sized >/dev/null)'
echo "install_deb: $pass passed, $fail failed"
[ $fail -eq 0 ]
