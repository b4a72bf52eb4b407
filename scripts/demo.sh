#!/usr/bin/env bash
# The demo dashboard on the embedded default (SQLite in ./sitetrail-demo), with one site
# (acme-shop) running real WordPress on SQLite so that the staging actions work. Installs
# what WordPress needs when missing (Debian packages; root), then runs
# `cargo run -p sitetrail --features demo -- demo`. Extra arguments go to the demo (--listen, --data-dir).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v php >/dev/null 2>&1 || missing+=(php-cli)
[ -f /usr/share/wordpress/wp-settings.php ] || missing+=(wordpress)
[ -d /usr/share/wordpress/wp-content/themes/twentytwentythree ] || missing+=(wordpress-theme-twentytwentythree)
php -m 2>/dev/null | grep -x pdo_sqlite >/dev/null || missing+=(php-sqlite3)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} ..." >&2
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "not root: the demo runs without WordPress (the log works; staging actions do not)" >&2
  fi
fi
bash scripts/wordpress-sqlite-plugin.sh >/dev/null 2>&1 ||
  echo "WordPress's SQLite integration could not be fetched; the demo runs without WordPress" >&2
exec cargo run -q -p sitetrail --features demo -- demo "$@"
