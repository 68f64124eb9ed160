#!/usr/bin/env bash
# test_package.sh BUILD -- the Debian package (cmake/package.cmake): cpack -G DEB from BUILD
# makes mnemo_VERSION_ARCH.deb; lintian finds no error and no warning in it (lintian's
# overrides, if ever any, must be in the package with a reason); it holds every program,
# manual page (compressed), the completion, the systemd unit, the example configuration,
# the copyright and changelog.Debian.gz; its unit's ExecStart names a program it holds; its
# programs are stripped and depend on what dpkg-shlibdeps found.  The package is CUDA-free:
# a build with CUDA or sanitizers is skipped (exit 77), not packaged.
set -euo pipefail
build=$1
tmp=$(mktemp -d /tmp/mnemo-test-package-XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
for t in cpack:cmake dpkg-deb:dpkg lintian:lintian dpkg-shlibdeps:dpkg-dev; do
  command -v "${t%%:*}" >/dev/null || fail "${t%%:*} is missing (${t#*:}): run scripts/setup"
done

# cmake/package.cmake writes the build's CUDA and sanitizers into CPackConfig.cmake
if grep -qx 'set(CPACK_MNEMO_CUDA "ON")' "$build/CPackConfig.cmake" ||
  grep -q '^set(CPACK_MNEMO_SANITIZERS "-' "$build/CPackConfig.cmake"; then
  echo "SKIP: the package is made from a build without CUDA and sanitizers (-DMNEMO_CUDA=OFF)"
  exit 77
fi

(cd "$build" && cpack -G DEB -B "$tmp/out") >"$tmp/cpack.log" 2>&1 ||
  fail "cpack failed: $(cat "$tmp/cpack.log")"
debs=("$tmp"/out/mnemo_*.deb)
if [ ${#debs[@]} -ne 1 ] || [ ! -f "${debs[0]}" ]; then
  fail "cpack made no single mnemo_*.deb: ${debs[*]}"
fi
deb=${debs[0]}
version=$(sed -n 's/^project(mnemo VERSION \([0-9.]*\).*/\1/p' "$(dirname "$0")/../../CMakeLists.txt")
case $(basename "$deb") in
  mnemo_"$version"-*_"$(dpkg --print-architecture)".deb) ;;
  *) fail "the package is called $(basename "$deb"), not mnemo_$version-REVISION_ARCH.deb" ;;
esac

# lintian: no error, no warning; info tags are shown, not failed on
lintian --fail-on error,warning --info "$deb" >"$tmp/lintian" 2>&1 ||
  fail "lintian: $(grep -v 'running with root privileges' "$tmp/lintian")"
grep -v 'running with root privileges' "$tmp/lintian" || true

dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/files"
for f in /usr/bin/mnemo /usr/bin/mnemoctl /usr/bin/mnemod /usr/share/man/man1/mnemo.1.gz \
  /usr/share/man/man1/mnemoctl.1.gz /usr/share/man/man8/mnemod.8.gz \
  /usr/share/man/man5/mnemo.yaml.5.gz /usr/share/bash-completion/completions/mnemoctl \
  /usr/share/bash-completion/completions/mnemo /usr/share/zsh/vendor-completions/_mnemoctl \
  /usr/share/zsh/vendor-completions/_mnemo \
  /usr/lib/systemd/system/mnemod.service /usr/share/doc/mnemo/mnemo.example.yaml \
  /usr/share/doc/mnemo/copyright /usr/share/doc/mnemo/changelog.Debian.gz; do
  grep -qxF "$f" "$tmp/files" || fail "the package lacks $f"
done
! grep -q '^/usr/local\|\.[1-8]$' "$tmp/files" || fail "the package holds /usr/local or uncompressed pages"

dpkg-deb -x "$deb" "$tmp/root"
exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$tmp/root/usr/lib/systemd/system/mnemod.service")
[ "$exec_start" = /usr/bin/mnemod ] || fail "the unit's ExecStart is \"$exec_start\", not /usr/bin/mnemod"
[ -x "$tmp/root$exec_start" ] || fail "the unit's ExecStart $exec_start is not in the package"
"$tmp/root/usr/bin/mnemoctl" --version >/dev/null || fail "the packaged mnemoctl does not run"
"$tmp/root/usr/bin/mnemo" --version >/dev/null || fail "the packaged mnemo does not run"

dpkg-deb -f "$deb" Depends | grep -q 'libpq5' || fail "Depends lacks libpq5 (dpkg-shlibdeps)"
dpkg-deb -f "$deb" Description | grep -q 'without CUDA' || fail "the description does not say CUDA-free"
dpkg-deb -f "$deb" Depends | grep -qi 'cuda\|cublas\|nccl' && fail "the package depends on CUDA"
echo "package: $(basename "$deb"), $(grep -c . "$tmp/files") entries: 1 passed, 0 failed"
