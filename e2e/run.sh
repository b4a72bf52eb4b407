#!/usr/bin/env bash
# The dashboard in a real browser. Builds sitetrail, serves it on a free port with a fresh
# data dir, seeds it through the publisher API, and runs the tests in e2e/tests with node's
# test runner, playwright-core driving Debian's Chromium. Non-interactive: it installs what
# is missing (as root on Debian) and exits non-zero when a test fails.
# sitetrail is built with the demo feature: tests/first-hour.test.mjs starts `sitetrail demo`
# itself (its own port and data dir), with acme-shop on real WordPress on SQLite.
# Screenshots land in test-output/screenshots/ at the repository's root.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

log() { printf '\n==> %s\n' "$*"; }

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# The first-hour test's WordPress (as scripts/demo.sh installs it).
command -v php >/dev/null 2>&1 || missing+=(php-cli)
[ -f /usr/share/wordpress/wp-settings.php ] || missing+=(wordpress)
[ -d /usr/share/wordpress/wp-content/themes/twentytwentythree ] || missing+=(wordpress-theme-twentytwentythree)
php -m 2>/dev/null | grep -x pdo_sqlite >/dev/null || missing+=(php-sqlite3)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

log "installing playwright-core (npm ci)"
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

log "fetching WordPress's SQLite integration (cached)"
bash "$root/scripts/wordpress-sqlite-plugin.sh" >/dev/null

log "building sitetrail (with the demo)"
cargo build -p sitetrail --features demo --quiet
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
bin="$target/debug/sitetrail"

out="$root/test-output"
mkdir -p "$out/screenshots" "$out/downloads"
data="$(mktemp -d "${TMPDIR:-/tmp}/sitetrail-e2e.XXXXXX")"
server=""
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$data"
}
trap cleanup EXIT

key="$("$bin" keys create --name e2e --data-dir "$data" 2>/dev/null | tail -n 1)"

log "starting sitetrail serve"
# Plain http on loopback: the session cookie may go without Secure (a browser keeps no
# Secure cookie from an http page).
"$bin" serve --listen 127.0.0.1:0 --data-dir "$data" --insecure-cookies-on-loopback \
  >"$out/server.log" 2>&1 &
server=$!
base=""
for _ in $(seq 1 300); do
  base="$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$out/server.log" | head -n 1)"
  [ -n "$base" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$out/server.log"; echo "the server did not start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$base" ] || { cat "$out/server.log"; echo "the server did not say where it listens" >&2; exit 1; }
echo "serving on $base"

export E2E_BASE_URL="$base"
export E2E_API_KEY="$key"
export E2E_SITETRAIL="$bin"
export E2E_DATA_DIR="$data"
export E2E_SCREENSHOTS="$out/screenshots"
export E2E_DOWNLOADS="$out/downloads"

log "seeding through the publisher API"
node "$here/seed.mjs"

log "browser tests"
status=0
# E2E_ONLY=name runs tests/name.test.mjs alone (a glob works too: E2E_ONLY='staging*').
node --test --test-concurrency=1 --test-reporter=spec "$here"/tests/${E2E_ONLY:-*}.test.mjs || status=$?
echo "screenshots: $out/screenshots"

# After a whole run (ingest, pages, exports, staging actions, backups): everything sitetrail
# keeps in its data dir is private.
loose="$(find "$data" -perm /077)"
if [ -n "$loose" ]; then
  echo "sitetrail's own files are not private:" >&2
  echo "$loose" >&2
  status=1
else
  echo "data dir: every file 0600, every directory 0700"
fi
exit "$status"
