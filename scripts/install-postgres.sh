#!/usr/bin/env bash
# Installs Debian's PostgreSQL server for the store tests on both engines (tests/pg_helpers.py
# starts a throwaway cluster from it on a Unix socket; the Debian package's own cluster is not
# used), if missing. Quiet unless something goes wrong.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-postgres: not root and no sudo; install postgresql yourself" >&2; exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
echo "install-postgres: $(ls -d /usr/lib/postgresql/*/bin | tail -1)"
