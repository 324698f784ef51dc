# The Debian package of voicebot-server, built by CPack's DEB generator
# (docs/packaging.md): `./scripts/build-deb`, or
# `cmake --build build --target package`, writes
# build/voicebot-server_<version>_<arch>.deb. Included at the end of the top
# CMakeLists.txt, after the targets it installs.
#
# The install() rules below are the package's contents. Paths under /usr are
# relative to the packaging prefix (/usr); /etc and /lib are absolute, so
# `cmake --install` without DESTDIR would write there: install through the
# package.
#
# The packaging files are in conf/debian/: the systemd unit, the maintainer
# scripts (postinst, prerm, postrm), conffiles, copyright and the changelog.
# tests/integration/test_package.py builds the package with cpack and checks
# it with dpkg-deb, lintian and systemd-analyze.

set(VB_DEB_DIR ${CMAKE_CURRENT_SOURCE_DIR}/conf/debian)
set(VB_DEB_MAINTAINER "voicebot-server developers <voicebot-server@example.org>"
    CACHE STRING "Maintainer field of the Debian package (Name <address>)")
set(VB_DOC_DIR share/doc/voicebot-server)
file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/packaging)

# Stripped binaries at the packaging prefix: /usr/bin.
install(TARGETS voicebot-server voicebot-provider RUNTIME DESTINATION bin)

# The configuration, a conffile (conf/debian/conffiles): dpkg keeps local
# changes on upgrade and asks when the packaged default changed too.
install(FILES conf/voicebot-server.json DESTINATION /etc/voicebot-server)

# The unit. /lib/systemd/system is where bookworm's systemd 252 packages put
# theirs (and what deb-systemd-helper looks at).
install(FILES ${VB_DEB_DIR}/voicebot-server.service DESTINATION /lib/systemd/system)

# Manual pages (lintian: no-manual-page), compressed as Debian policy wants.
foreach(page voicebot-server.1 voicebot-provider.1)
  execute_process(COMMAND gzip -9nc ${VB_DEB_DIR}/${page}
                  OUTPUT_FILE ${CMAKE_CURRENT_BINARY_DIR}/packaging/${page}.gz
                  RESULT_VARIABLE vb_gzip_result)
  if(NOT vb_gzip_result EQUAL 0)
    message(FATAL_ERROR "packaging: gzip ${page}: ${vb_gzip_result}")
  endif()
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/packaging/${page}.gz DESTINATION share/man/man1)
endforeach()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${VB_DEB_DIR}/voicebot-server.1 ${VB_DEB_DIR}/voicebot-provider.1)

# /usr/share/doc/voicebot-server: the DEP-5 copyright file, the changelog,
# and the operator's documents. The version is native (no Debian revision:
# voicebot-server_0.1.0_amd64.deb), so the changelog is changelog.gz, not
# changelog.Debian.gz (Debian policy 12.7; lintian:
# wrong-name-for-changelog-of-native-package).
configure_file(${VB_DEB_DIR}/changelog.in ${CMAKE_CURRENT_BINARY_DIR}/packaging/changelog @ONLY)
execute_process(COMMAND gzip -9nc ${CMAKE_CURRENT_BINARY_DIR}/packaging/changelog
                OUTPUT_FILE ${CMAKE_CURRENT_BINARY_DIR}/packaging/changelog.gz
                RESULT_VARIABLE vb_gzip_result)
if(NOT vb_gzip_result EQUAL 0)
  message(FATAL_ERROR "packaging: gzip changelog: ${vb_gzip_result}")
endif()
install(FILES ${VB_DEB_DIR}/copyright ${CMAKE_CURRENT_BINARY_DIR}/packaging/changelog.gz
              README.md docs/operations.md docs/packaging.md docs/security.md
        DESTINATION ${VB_DOC_DIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME voicebot-server)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${VB_DEB_MAINTAINER}")
set(CPACK_PACKAGE_VENDOR "voicebot-server developers")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "coordinator of AI voice bots, lobbies and bot providers")
set(CPACK_STRIP_FILES ON)
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Only the package: the source tarball targets are not wanted.
set(CPACK_SOURCE_GENERATOR "")

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${VB_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# dpkg-shlibdeps adds the shared libraries' packages (libcaf-*0.17,
# libspdlog1.10, libfmt9, libprometheus-cpp-core, libstdc++6, libc6, ...);
# adduser runs in postinst. libjwt0 from bookworm's security update at
# least: it compares token signatures in constant time (CVE-2024-25189;
# shlibdeps alone would accept 1.9.0).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, libjwt0 (>= 1.10.2-1+deb12u1)")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
"voicebot-server coordinates AI voice bots. Web frontends list lobbies and
bots and ask the server to make a bot join a lobby; bot providers (separate
services that host the bots) register with the server over HTTP or CAF and
receive those joins. Providers and lobbies are durable (snapshots and
journals), so a restart of the server or of a provider is invisible to the
frontends. An optional cluster mode keeps the state in etcd.

This package runs the server as the sandboxed systemd service
voicebot-server.service under the system user voicebot-server, with its
state in /var/lib/voicebot-server. It also contains voicebot-provider, a
bot provider speaking the CAF provider protocol.")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${VB_DEB_DIR}/postinst ${VB_DEB_DIR}/prerm ${VB_DEB_DIR}/postrm
    ${VB_DEB_DIR}/conffiles)
# postinst, prerm, postrm 0755, conffiles 0644, whatever the checkout's modes.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
