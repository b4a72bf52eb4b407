#!/usr/bin/env bash
# The slow reliability suites (issue #6), on the real `sitetrail serve` binary:
#   - kill -9 during ingest, 20 rounds on SQLite (and 3 on PostgreSQL when
#     SITETRAIL_TEST_POSTGRES names a server): nothing acknowledged is lost or doubled;
#   - a mixed load for SITETRAIL_LOAD_SECONDS (default 600): no failed request, 200 live
#     streams that keep up, p50/p99 per request kind, the server's memory flat.
# PostgreSQL is expected to be running already (scripts/test.sh starts it).
set -euo pipefail
cd "$(dirname "$0")/.."

export SITETRAIL_LOAD_SECONDS="${SITETRAIL_LOAD_SECONDS:-600}"
out=test-output/reliability
mkdir -p "$out"

printf '\n==> %s\n' "reliability suites (load for ${SITETRAIL_LOAD_SECONDS} s)"
cargo test -p sitetrail --test cli -- --ignored --test-threads=1 --nocapture

printf '\n==> %s\n' "figures in $out/"
ls -1 "$out"/*.json
