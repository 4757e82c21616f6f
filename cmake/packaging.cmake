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
set(CPACK_PACKAGE_CONTACT "rcache maintainers <rcache@invalid>")
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
set(CPACK_DEBIAN_LIB_PACKAGE_GENERATE_SHLIBS ON) # shlibs file + ldconfig trigger
set(CPACK_COMPONENT_LIB_DESCRIPTION "rcache shared library (librcache.so.${RCACHE_SOVERSION})")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME librcache-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
# <rcache/json.h> includes <jansson.h>; rcache.pc names jansson, libssl and libcrypto, and the
# static library needs hiredis
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libjansson-dev, libssl-dev, libhiredis-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_RECOMMENDS "pkg-config")
set(CPACK_COMPONENT_DEV_DESCRIPTION "rcache development files: headers, static library, pkg-config and CMake files, man3 pages")

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME rcache-tools)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SHLIBDEPS ON)
set(CPACK_COMPONENT_TOOLS_DESCRIPTION "rcache command-line tool")
# /usr/share/doc/<package>/copyright in each package (Debian policy 12.5); EXCLUDE_FROM_ALL
# keeps it out of a plain `cmake --install`, cpack asks for each component by name.
foreach(_c lib:librcache${RCACHE_SOVERSION} dev:librcache-dev tools:rcache-tools)
  string(REPLACE ":" ";" _c "${_c}")
  list(GET _c 0 _comp)
  list(GET _c 1 _pkg)
  install(FILES "${PROJECT_SOURCE_DIR}/LICENSE" DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${_pkg}
          RENAME copyright COMPONENT ${_comp} EXCLUDE_FROM_ALL)
endforeach()
set(CPACK_PRE_BUILD_SCRIPTS "${CMAKE_CURRENT_LIST_DIR}/deb_gzip_man.cmake")
include(CPack)
