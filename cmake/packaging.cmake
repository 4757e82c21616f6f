# SPDX-License-Identifier: BSD-3-Clause
# `make package` (cpack -G DEB in the build directory): three Debian packages made from the
# install components of CMakeLists.txt, named as Debian names them:
#   librcache<SOVERSION>  the shared library (lib)
#   librcache-dev         headers, static library, .so link, rcache.pc, CMake package, man3 (dev)
#   rcache-tools          the rcache CLI and its man page (tools)
# cpack (and `make install` inside the build directory) install what is built, without first
# walking every target again: `make package` and `make install` build before they install.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME rcache)
set(CPACK_PACKAGE_VERSION ${RCACHE_VERSION})
set(CPACK_PACKAGE_VENDOR rcache)
# A placeholder (lintian: bogus-mail-host): whoever publishes the packages sets theirs.
set(RCACHE_PACKAGE_CONTACT "rcache maintainers <rcache@invalid>" CACHE STRING
    "Maintainer field of the Debian packages")
set(CPACK_PACKAGE_CONTACT "${RCACHE_PACKAGE_CONTACT}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Redis-backed application cache for C that degrades gracefully")
set(CPACK_RESOURCE_FILE_LICENSE "${PROJECT_SOURCE_DIR}/LICENSE")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_COMPONENTS_ALL lib dev tools)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)
set(CPACK_COMPONENT_DEV_DEPENDS lib)

set(CPACK_DEBIAN_LIB_PACKAGE_NAME librcache${RCACHE_SOVERSION})
set(CPACK_DEBIAN_LIB_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_LIB_PACKAGE_SHLIBDEPS ON)
# the shlibs file and the ldconfig trigger (lintian: no-shlibs, lacks-ldconfig-trigger);
# CPack knows this setting for all packages only, and writes them where there is a library
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
# ldconfig by trigger as well (policy 8.1.1; lintian: lacks-ldconfig-trigger). CPack 3.25 still
# writes a postinst and postrm that call ldconfig (lintian: maintscript-calls-ldconfig); they
# are harmless, and empty scripts in their place only trade it for maintainer-script-empty: the
# package says so in a lintian override.
set(CPACK_DEBIAN_LIB_PACKAGE_CONTROL_EXTRA "${CMAKE_CURRENT_LIST_DIR}/deb-lib/triggers")
configure_file("${CMAKE_CURRENT_LIST_DIR}/deb-lib/lintian-overrides"
               "${CMAKE_CURRENT_BINARY_DIR}/lintian/librcache${RCACHE_SOVERSION}" @ONLY)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/lintian/librcache${RCACHE_SOVERSION}"
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/lintian/overrides COMPONENT lib EXCLUDE_FROM_ALL)
set(CPACK_DEBIAN_LIB_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Debian ships binaries stripped (lintian: unstripped-binary-or-object)
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENT_LIB_DESCRIPTION "rcache shared library (librcache.so.${RCACHE_SOVERSION})")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME librcache-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
# <rcache/json.h> includes <jansson.h>; rcache.pc names jansson, libssl, libcrypto and
# libcares, and the static library needs hiredis
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libjansson-dev, libssl-dev, libhiredis-dev, libc-ares-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_RECOMMENDS "pkg-config")
set(CPACK_COMPONENT_DEV_DESCRIPTION "rcache development files: headers, static library,
pkg-config and CMake files, man3 pages")

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME rcache-tools)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SHLIBDEPS ON)
set(CPACK_COMPONENT_TOOLS_DESCRIPTION "rcache command-line tool")
# /usr/share/doc/<package>/copyright in each package (Debian policy 12.5); EXCLUDE_FROM_ALL
# keeps it out of a plain `cmake --install`, cpack asks for each component by name.
# The Debian changelog: one entry for this version, dated as CHANGELOG.md dates its release
# (the configure date while it is unreleased), pointing at CHANGELOG.md for the changes.
file(STRINGS "${PROJECT_SOURCE_DIR}/CHANGELOG.md" _rc_rel REGEX "^## \\[${RCACHE_VERSION}\\] - ")
string(REGEX MATCH "[0-9]+-[0-9]+-[0-9]+" _rc_day "${_rc_rel}")
set(_rc_date "")
if(_rc_day)
  execute_process(COMMAND date -R -u -d "${_rc_day}" OUTPUT_VARIABLE _rc_date
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
endif()
if(NOT _rc_date)
  string(TIMESTAMP _rc_date "%a, %d %b %Y %H:%M:%S +0000" UTC)
endif()
file(WRITE "${PROJECT_BINARY_DIR}/deb/changelog"
     "rcache (${RCACHE_VERSION}) unstable; urgency=medium\n\n"
     "  * Release ${RCACHE_VERSION}: the changes are in CHANGELOG.md.gz, next to this file.\n\n"
     " -- ${CPACK_PACKAGE_CONTACT}  ${_rc_date}\n")

foreach(_c lib:librcache${RCACHE_SOVERSION} dev:librcache-dev tools:rcache-tools)
  string(REPLACE ":" ";" _c "${_c}")
  list(GET _c 0 _comp)
  list(GET _c 1 _pkg)
  install(FILES "${PROJECT_SOURCE_DIR}/LICENSE" DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${_pkg}
          RENAME copyright COMPONENT ${_comp} EXCLUDE_FROM_ALL)
  # a native package's changelog.gz in Debian's format (policy 12.7), and the project's own
  # (both gzipped by deb_gzip_man.cmake)
  install(FILES "${PROJECT_BINARY_DIR}/deb/changelog" "${PROJECT_SOURCE_DIR}/CHANGELOG.md"
          DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${_pkg} COMPONENT ${_comp} EXCLUDE_FROM_ALL)
endforeach()
set(CPACK_PRE_BUILD_SCRIPTS "${CMAKE_CURRENT_LIST_DIR}/deb_gzip_man.cmake")
include(CPack)
