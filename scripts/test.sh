#!/usr/bin/env bash
# The test suite, from a fresh clone: installs what the tests need, starts the services they
# use (PostgreSQL, MariaDB), then runs the Rust tests and the browser tests on them. About
# ten minutes on two cores from a warm build. The long suites (fuzzing, Schemathesis, kill -9
# rounds, ten minutes of load) are scripts/long.sh; CI runs both (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
# Every test that needs PostgreSQL, MariaDB, PHP or Chromium fails here when it is missing
# (a plain `cargo test` without them skips such a test and says why).
export SITETRAIL_TEST_SERVICES=required

log() { printf '\n==> %s\n' "$*"; }

# System packages the tests use, installed when missing (Debian; CI runs as root).
missing=()
command -v php >/dev/null 2>&1 || missing+=(php-cli)
# Real WordPress for the staging engine's tests: Debian's package, a theme, PHP's MySQL
# driver, and MariaDB.
[ -f /usr/share/wordpress/wp-settings.php ] || missing+=(wordpress)
[ -d /usr/share/wordpress/wp-content/themes/twentytwentythree ] || missing+=(wordpress-theme-twentytwentythree)
php -m 2>/dev/null | grep -x mysqli >/dev/null || missing+=(php-mysql)
php -m 2>/dev/null | grep -x pdo_sqlite >/dev/null || missing+=(php-sqlite3)
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
command -v chattr >/dev/null 2>&1 || missing+=(e2fsprogs)
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

# MariaDB: the staging engine's tests make WordPress databases as root over 127.0.0.1.
mariadb_ready() { mariadb -uroot -h127.0.0.1 -P3306 -e 'SELECT 1' >/dev/null 2>&1; }
if ! mariadb_ready; then
  log "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  for _ in $(seq 1 60); do mariadb_ready && break; sleep 1; done
  mariadb_ready || { echo "MariaDB did not start on 127.0.0.1:3306" >&2; exit 1; }
fi
# WordPress databases left by an interrupted earlier run.
mariadb -uroot -h127.0.0.1 -P3306 -N -e "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'sitetrail\\_t\\_%'" |
  while read -r db; do mariadb -uroot -h127.0.0.1 -P3306 -e "DROP DATABASE IF EXISTS \`$db\`"; done

# WordPress's SQLite integration (WordPress on SQLite, the embedded default), cached.
log "WordPress's SQLite integration"
bash scripts/wordpress-sqlite-plugin.sh

log "formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --features sitetrail/demo --quiet -- -D warnings

log "Rust tests (unit, property, store contract on SQLite and PostgreSQL, API integration on SQLite, staging on real WordPress)"
cargo test --workspace --features sitetrail/demo

log "API integration tests on PostgreSQL"
SITETRAIL_TEST_BACKEND=postgres cargo test -p sitetrail-server --test api

if [ -f e2e/run.sh ]; then
  log "browser tests (headless Chromium)"
  bash e2e/run.sh
fi
