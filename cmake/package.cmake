# package.cmake -- the Debian package of mnemo, made by CPack: `cpack -G DEB` in a build
# configured with -DMNEMO_CUDA=OFF writes mnemo_VERSION-REVISION_ARCH.deb (docs/build.md).
#
# The package holds what `cmake --install --prefix /usr` installs (the programs, their pages,
# the completion, the systemd unit, the example configuration) plus, from packaging/deb/,
# the copyright file and changelog.Debian.gz, which packaging/deb/stage.cmake adds to the
# staged tree along with compressing the pages.  packaging/deb/ is deliberately not called
# debian/: this is no source package, and dpkg-buildpackage must not mistake it for one.
# tests/daemon/test_package.sh builds the package and runs lintian on it.

# the Debian revision of this upstream version; packaging/deb/changelog's first entry must
# be this version (checked below), so bump both together
set(MNEMO_DEB_REVISION 1)
set(MNEMO_DEB_VERSION ${PROJECT_VERSION}-${MNEMO_DEB_REVISION})
file(STRINGS ${CMAKE_SOURCE_DIR}/packaging/deb/changelog mnemo_changelog_head LIMIT_COUNT 1)
if(NOT mnemo_changelog_head MATCHES "^mnemo \\(${MNEMO_DEB_VERSION}\\) ")
  message(FATAL_ERROR "packaging/deb/changelog starts with \"${mnemo_changelog_head}\": its "
                      "first entry must be mnemo (${MNEMO_DEB_VERSION})")
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mnemo)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT
    "Seed 03c347f7 maintainers <maintainers@users.noreply.r-seed-03c347f7.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "keeps a multilingual language model fresh, every language guarded")
set(CPACK_PACKAGE_DESCRIPTION
    "mnemo refreshes a multilingual language model on fresh data without letting any
language fall behind: every candidate is judged on every language before an
operator approves it.  mnemod is the daemon (PostgreSQL holds its state),
mnemoctl the operators' command line, mnemo the compute worker.
.
This package is built without CUDA: the worker trains and evaluates on the CPU.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # mnemo_0.1.0-1_amd64.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE ${MNEMO_DEB_REVISION})
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# the repository names no home page, so the package has no Homepage field
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON) # dpkg-shlibdeps (dpkg-dev)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)

# read by packaging/deb/stage.cmake (every CPACK_ variable reaches cpack's scripts)
set(CPACK_PRE_BUILD_SCRIPTS ${CMAKE_SOURCE_DIR}/packaging/deb/stage.cmake)
set(CPACK_MNEMO_PACKAGING_DIR ${CMAKE_SOURCE_DIR}/packaging/deb)
set(CPACK_MNEMO_CUDA ${MNEMO_CUDA_ENABLED})
set(CPACK_MNEMO_SANITIZERS "${MNEMO_SAN_FLAGS}")

include(CPack)
