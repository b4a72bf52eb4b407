#!/usr/bin/env bash
# Shows that the release binary holds no test hooks: builds `sitetrail` in release mode
# without features and fails if `strings` finds a marker of the hooks in it (the pause
# points of the crash tests, the WordPress installers and the demo's admin password, which
# live behind sitetrail-staging's `testkit` feature, and the scratch databases of
# sitetrail-store-postgres's `testkit` feature). Then builds it (a debug build, which
# the tests have mostly built already) with `--features demo`, where the installers are meant
# to be, and fails unless the installer markers ARE found there: a check that cannot fail
# proves nothing.
#
# One release build: several minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."

# Strings only the hooks hold.
pause_markers=(
  "SITETRAIL_TEST_PAUSE_AT"           # the pause points' old environment variable
  "between_switches"                  # a pause point's name (testkit only)
  "a scratch database name is"        # the store's scratch PostgreSQL databases (testkit only)
)
installer_markers=(
  "correct horse battery staple"      # the demo's and the tests' WordPress admin password
  "define('WP_INSTALLING', true);"    # the installer's PHP
  "sendmail_path=/bin/true"           # how the installers run php -S
)
binary=target/release/sitetrail
text=$(mktemp)
trap 'rm -f "$text"' EXIT

# The binary's strings, read once per build (grep -q on a pipe would end `strings` early,
# and pipefail would then count a marker found as missing).
read_strings() {
  strings -n 4 "$binary" > "$text"
}

found_in() {
  grep -F -q -- "$1" "$text"
}

echo "release-check: cargo build --release -p sitetrail (no features)" >&2
cargo build --release -q -p sitetrail
read_strings
failed=0
for marker in "${pause_markers[@]}" "${installer_markers[@]}"; do
  if found_in "$marker"; then
    echo "release-check: FAIL: the release binary holds \"$marker\"" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || exit 1
echo "release-check: the release binary holds none of the hooks' markers" >&2

echo "release-check: cargo build -p sitetrail --features demo" >&2
cargo build -q -p sitetrail --features demo
binary=target/debug/sitetrail
read_strings
for marker in "${installer_markers[@]}"; do
  if ! found_in "$marker"; then
    echo "release-check: FAIL: the demo build lacks \"$marker\"; the check would not see the hooks" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || exit 1
echo "release-check: ok (the demo build holds the installer markers; the release build none)" >&2
