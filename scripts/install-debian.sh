#!/usr/bin/env bash
# Installs one Debian package that the tests need, if missing, and is quiet unless something goes
# wrong:  install-debian.sh PACKAGE PATH_GLOB   (PATH_GLOB: a file the package provides).
# Used by `make browser` (chromium, for the headless browser tests in tests/test_web_page.py, which
# drive /usr/bin/chromium through Python playwright; we never run `playwright install`) and
# `make postgres` (postgresql, whose server binaries tests/pg_helpers.py starts a throwaway cluster
# from on a Unix socket; the package's own cluster is not used).
set -euo pipefail
package="$1"
provides="$2"
present() { compgen -G "$provides" >/dev/null; }
if present; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-debian: not root and no sudo; install $package yourself" >&2; exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "$package" >/dev/null
present || { echo "install-debian: $package installed but $provides is missing" >&2; exit 1; }
echo "install-debian: $package ($(compgen -G "$provides" | tail -1))"
