#!/usr/bin/env bash
# Make sure what the tests talk to is there: PostgreSQL at 127.0.0.1:5432
# (user postgres, database test, trust auth), Chromium for the browser tests,
# poppler-utils (pdftoppm, pdftotext, pdfsig) for PDF scans and signatures,
# certutil to trust the attestation CA in a throwaway NSS database, and the npm
# verifier of credentials. Installs what is missing with apt when we are root;
# otherwise says what is missing.
set -euo pipefail

apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing $* with apt"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "error: $* missing and cannot be installed here (need root and apt)" >&2
        exit 1
    fi
}

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v pdftoppm >/dev/null && command -v pdfsig >/dev/null || missing+=(poppler-utils)
command -v certutil >/dev/null || missing+=(libnss3-tools)
fc-list 2>/dev/null | grep -qi dejavu || missing+=(fonts-dejavu-core)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

# The standard credential verifier tests/test_credential.py runs (versions pinned by
# tests/js/package-lock.json; node_modules is not committed).
command -v npm >/dev/null || apt_install nodejs npm
js_dir="$(dirname "$0")/../tests/js"
if [ ! -d "$js_dir/node_modules/@digitalbazaar/vc" ]; then
    (cd "$js_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi

PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres

pg_ready() {
    python3 - <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(2)
try:
    s.connect(("127.0.0.1", 5432))
except OSError:
    sys.exit(1)
PY
}

if ! pg_ready; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "PostgreSQL not running on 127.0.0.1:5432: installing/starting it"
        ls /etc/postgresql/*/main >/dev/null 2>&1 || apt_install postgresql
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        conf=/etc/postgresql/$version/main
        grep -q "ledger-tests" "$conf/pg_hba.conf" || sed -i '1i host all all 127.0.0.1/32 trust # ledger-tests\nlocal all all trust # ledger-tests' "$conf/pg_hba.conf"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster "$version" main start
        for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
    else
        echo "error: PostgreSQL is not reachable at 127.0.0.1:5432 and cannot be installed here" >&2
        exit 1
    fi
fi

if command -v psql >/dev/null; then
    if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
        psql -h 127.0.0.1 -U postgres -d postgres -c 'create database test' >/dev/null
    fi
fi
echo "PostgreSQL ready at 127.0.0.1:5432"

redis_ready() {
    python3 - <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(2)
try:
    s.connect(("127.0.0.1", 6379))
except OSError:
    sys.exit(1)
PY
}

if ! redis_ready; then
    command -v redis-server >/dev/null || apt_install redis-server
    redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' >/dev/null
    for _ in $(seq 1 30); do redis_ready && break; sleep 1; done
fi
redis_ready || { echo "error: Redis is not reachable at 127.0.0.1:6379" >&2; exit 1; }
echo "Redis ready at 127.0.0.1:6379"
