#!/usr/bin/env bash
# The slow reliability suites:
#   - kill -9 during staging operations on real WordPress: a push, a reset from a template
#     and a reset's automatic backup, each killed at every pause point; live (or staging) is
#     whole and the activity ends `failed` "interrupted";
#   - kill -9 during ingest, on the real `sitetrail serve` binary: 20 rounds on SQLite and 3
#     on PostgreSQL; nothing acknowledged is lost or stored twice;
#   - a mixed load for SITETRAIL_LOAD_SECONDS (default 600) on PostgreSQL: no failed
#     request, 200 live streams that keep up, p50/p99 per request kind, the server's RSS
#     flat (SITETRAIL_LOAD_BACKEND=sqlite runs it on SQLite, where RSS is only reported).
# PostgreSQL and MariaDB are expected to be running (scripts/test.sh starts them).
set -euo pipefail
cd "$(dirname "$0")/.."

export SITETRAIL_LOAD_SECONDS="${SITETRAIL_LOAD_SECONDS:-600}"
export SITETRAIL_TEST_POSTGRES="${SITETRAIL_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
out=test-output/reliability
mkdir -p "$out"

printf '\n==> %s\n' "kill -9 during staging operations"
cargo test -p sitetrail-staging --test wordpress -- --ignored kill_9 --test-threads=1

printf '\n==> %s\n' "reliability suites (the load runs ${SITETRAIL_LOAD_SECONDS} s)"
cargo test -p sitetrail --test cli -- --ignored --test-threads=1 --nocapture

printf '\n==> %s\n' "figures in $out/"
ls -1 "$out"/*.json
