#!/usr/bin/env bash
# The long suites, after scripts/test.sh (which installs and starts what they use):
#   - safe push's real-WordPress tests beyond the live-keeps test the test command runs
#     (the command line's run with the kill -9 rounds, as its other ignored tests do);
#   - the parsers fuzzed for SITETRAIL_FUZZ_SECONDS each (default 20; scripts/fuzz.sh);
#   - Schemathesis against the OpenAPI document on a running server (scripts/schemathesis.sh);
#   - kill -9 rounds during ingest and during staging operations, then ten minutes of mixed
#     load with 200 live streams (scripts/reliability.sh; SITETRAIL_LOAD_SECONDS shortens it);
#   - the release binary holds no test hook (scripts/release-check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export SITETRAIL_TEST_SERVICES=required

log() { printf '\n==> %s\n' "$*"; }

log "safe push on real WordPress: the long tests (the test command runs the live-keeps test)"
cargo test -p sitetrail-staging --test wordpress -- --ignored --skip kill_9 --skip child --test-threads=2
cargo test -p sitetrail-server --test api -- --ignored safe_push_wordpress
log "fuzzing (${SITETRAIL_FUZZ_SECONDS:-20} s per target)"
bash scripts/fuzz.sh "${SITETRAIL_FUZZ_SECONDS:-20}"
log "Schemathesis against the OpenAPI document"
bash scripts/schemathesis.sh
bash scripts/reliability.sh
if [ -f scripts/release-check.sh ]; then
  log "the release binary holds no test hook"
  bash scripts/release-check.sh
fi
