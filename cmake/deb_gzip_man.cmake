# SPDX-License-Identifier: BSD-3-Clause
# CPACK_PRE_BUILD_SCRIPTS: Debian ships man pages gzip-compressed (policy 12.1); man-db reads
# them, and follows the `.so` link pages to compressed targets.
# The same for each package's changelogs (policy 12.7).
file(GLOB_RECURSE _pages "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*.[1-9]"
     "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*/changelog" "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*/CHANGELOG.md")
list(FILTER _pages INCLUDE REGEX "(/man/man[1-9]/[^/]+\\.[1-9]|/doc/[^/]+/(changelog|CHANGELOG\\.md))$")
foreach(p ${_pages})
  execute_process(COMMAND gzip -9nf "${p}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gzip ${p} failed")
  endif()
endforeach()
