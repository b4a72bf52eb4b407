#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, starts the
# services they use, then runs the Rust tests and the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# System packages the tests use, installed when missing (Debian; CI runs as root).
missing=()
command -v php >/dev/null 2>&1 || missing+=(php-cli)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# PostgreSQL: the store's contract tests and the API tests run on it as well as on SQLite.
# The local server (127.0.0.1:5432, trust auth) is started when it is not running; each test
# makes its own database and drops it.
export SITETRAIL_TEST_POSTGRES="${SITETRAIL_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  log "installing PostgreSQL"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  # A fresh install only takes passwords over TCP; the tests connect as postgres on loopback.
  for hba in /etc/postgresql/*/main/pg_hba.conf; do
    grep -q '^host all all 127.0.0.1/32 trust' "$hba" ||
      sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  done
fi
if ! pg_ready; then
  log "starting PostgreSQL"
  for version in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 60); do pg_ready && break; sleep 1; done
  pg_ready || { echo "PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }
fi
# Databases left by an interrupted earlier run.
psql "$SITETRAIL_TEST_POSTGRES" -Atqc \
  "SELECT datname FROM pg_database WHERE datname ~ '^sitetrail_(test|api_test)_[0-9a-f]+$'" |
  while read -r db; do psql "$SITETRAIL_TEST_POSTGRES" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"; done

log "formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

log "Rust tests (unit, property, store contract on SQLite and PostgreSQL, API integration on SQLite)"
cargo test --workspace

log "API integration tests on PostgreSQL"
SITETRAIL_TEST_BACKEND=postgres cargo test -p sitetrail-server --test api

if [ -f e2e/run.sh ]; then
  log "browser tests (headless Chromium)"
  bash e2e/run.sh
fi
