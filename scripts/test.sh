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

log "formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

log "Rust tests (unit, property, store contract, API integration)"
cargo test --workspace

if [ -f e2e/run.sh ]; then
  log "browser tests (headless Chromium)"
  bash e2e/run.sh
fi
