# stage.cmake -- run by cpack (CPACK_PRE_BUILD_SCRIPTS, cmake/package.cmake) on the tree
# `cmake --install` staged for the Debian package, before it is packed.  It adds what a
# Debian package has and a plain install does not: manual pages compressed (gzip -9n, as
# Debian policy §12.1 wants), /usr/share/doc/mnemo/copyright and changelog.Debian.gz, and
# lintian's overrides (each with its reason) in /usr/share/lintian/overrides/mnemo.  It
# refuses a build the package must not be made from: one with CUDA (the package says it has
# none, and dpkg-shlibdeps would depend on the toolkit's libraries) or with sanitizers.
if(CPACK_MNEMO_CUDA)
  message(FATAL_ERROR "mnemo's Debian package is CUDA-free: package a build configured with "
                      "-DMNEMO_CUDA=OFF (docs/build.md)")
endif()
if(CPACK_MNEMO_SANITIZERS)
  message(FATAL_ERROR "mnemo's Debian package is not built with sanitizers "
                      "(${CPACK_MNEMO_SANITIZERS}): package a plain build")
endif()

# the staged root: CPACK_TEMPORARY_DIRECTORY holds usr/ (the packaging prefix is /usr)
set(root "${CPACK_TEMPORARY_DIRECTORY}${CPACK_PACKAGING_INSTALL_PREFIX}")
if(NOT EXISTS "${root}/bin/mnemod")
  message(FATAL_ERROR "stage.cmake: no ${root}/bin/mnemod: is the staging layout what it expects?")
endif()

file(GLOB pages "${root}/share/man/man[1-8]/*.[1-8]")
foreach(page IN LISTS pages)
  execute_process(COMMAND gzip -9nf "${page}" COMMAND_ERROR_IS_FATAL ANY)
endforeach()

set(doc "${root}/share/doc/${CPACK_PACKAGE_NAME}")
file(COPY "${CPACK_MNEMO_PACKAGING_DIR}/copyright" DESTINATION "${doc}" # COPY: INSTALL adds DESTDIR
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
execute_process(COMMAND gzip -9nc "${CPACK_MNEMO_PACKAGING_DIR}/changelog"
                OUTPUT_FILE "${doc}/changelog.Debian.gz" COMMAND_ERROR_IS_FATAL ANY)
file(CHMOD "${doc}/changelog.Debian.gz" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

set(overrides "${root}/share/lintian/overrides")
file(MAKE_DIRECTORY "${overrides}")
file(COPY_FILE "${CPACK_MNEMO_PACKAGING_DIR}/lintian-overrides" "${overrides}/${CPACK_PACKAGE_NAME}")
file(CHMOD "${overrides}/${CPACK_PACKAGE_NAME}" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
