#!/usr/bin/env bash
# The Activity Logs page at scale: fills a SQLite data dir with N activities (default
# 10,000,000; one site holds 1 in 12 of them, the rest spread over 100,000 sites of 1,000
# accounts), serves it with the release build, and times the dashboard page, the API page and
# the raw SELECT behind them, each 300 times after 10 to warm up; prints medians.
#
#   bash crates/sitetrail-server/benches/page-at-scale.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../../.."
n="${1:-10000000}"
dir="${SITETRAIL_BENCH_DIR:-/tmp/sitetrail-page-bench}"
cargo build -q --release -p sitetrail
bin=target/release/sitetrail
rm -rf "$dir" && mkdir -p "$dir"
# Schema and migrations from the binary itself; the server stops at once.
SITETRAIL_LISTEN=127.0.0.1:0 timeout 5 "$bin" serve --data-dir "$dir" >/dev/null 2>&1 || true
db="$dir/sitetrail.db"
echo "generating $n activities ..." >&2
start=$(date +%s)
sqlite3 "$db" <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -1000000;
INSERT INTO accounts VALUES ('acct-big', 'Big Bakery', 'Agency', '{}', 0, 0);
INSERT INTO sites VALUES ('big', 'acct-big', 'Big Bakery Shop', 'https://big.example', NULL, NULL, NULL, 0, 0);
BEGIN;
WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $n)
INSERT INTO activities (id, account_id, site_id, environment, service, activity, status,
  actor_kind, actor_email, actor_name, description, error, details, created_at, completed_at,
  change_no, request_sha256, search_internal, search_client)
SELECT printf('gen-%d', i),
  CASE WHEN i % 12 = 0 THEN 'acct-big' ELSE printf('acct-%d', i % 1000) END,
  CASE WHEN i % 12 = 0 THEN 'big' ELSE printf('site-%d', i % 100000) END,
  'live', 'staging', 'push_staging_to_live',
  CASE WHEN i % 50 = 0 THEN 'in_progress' WHEN i % 20 = 0 THEN 'failed' ELSE 'completed' END,
  CASE WHEN i % 10 = 0 THEN 'support' ELSE 'user' END,
  CASE WHEN i % 10 = 0 THEN 'sam@partner.example' ELSE 'owner@example.com' END, NULL,
  'Successfully pushed staging to live',
  CASE WHEN i % 20 = 0 AND i % 50 != 0 THEN 'The database server went away' ELSE NULL END,
  '{"scope":"site","keep_staging":false,"backup":"live-20261125T101500Z-a1b2","files":{"files":3012,"bytes":61234567},"database":{"tables":12,"rows":24867,"rewritten_cells":5012}}',
  1700000000000 + i * 6000,
  CASE WHEN i % 50 = 0 THEN NULL ELSE 1700000000000 + i * 6000 + 90000 END,
  i, X'00',
  'owner@example.com' || char(10) || 'push staging to live' || char(10) || 'successfully pushed staging to live',
  NULL
FROM k;
UPDATE counters SET value = $n WHERE name = 'change';
COMMIT;
SQL
echo "generated in $(( $(date +%s) - start )) s; $(du -h "$db" | cut -f1)" >&2
port=$(( 20000 + RANDOM % 20000 ))
"$bin" serve --listen 127.0.0.1:$port --data-dir "$dir" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.2; done
token=$("$bin" token --account acct-big --audience client --actor-kind user --actor-email owner@example.com --data-dir "$dir")
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_url() { # URL [header]: median of 300 requests' total time, in ms
  for _ in $(seq 10); do curl -s -o /dev/null "$@"; done
  for _ in $(seq 300); do curl -s -o /dev/null -w '%{time_total}\n' "$@"; done | awk '{print $1 * 1000}' | median
}
page=$(time_url -b "sitetrail_session=$token" "http://127.0.0.1:$port/sites/big/advanced-tools/activity-logs")
filtered=$(time_url -b "sitetrail_session=$token" "http://127.0.0.1:$port/sites/big/advanced-tools/activity-logs?status=failed&activity=push_staging_to_live")
api=$(time_url -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/sites/big/activities")
rows=$(curl -s -b "sitetrail_session=$token" "http://127.0.0.1:$port/sites/big/advanced-tools/activity-logs" | grep -c '<tr id="activity-' || true)
kill $server; trap - EXIT
raw=$(for _ in $(seq 100); do
  s=$(date +%s%N)
  sqlite3 "$db" "SELECT * FROM activities WHERE site_id = 'big' AND account_id = 'acct-big' ORDER BY created_at DESC, seq DESC LIMIT 51" >/dev/null
  echo $(( ($(date +%s%N) - s) / 1000 ))
done | median)
echo
echo "Activity Logs page at $n activities (the site holds $(( n / 12 ))); medians of 300 requests, ms, end to end over loopback (curl)"
echo "| what | median ms |"
echo "|---|---|"
echo "| dashboard page, first 50 rows ($rows rows rendered) | $page |"
echo "| dashboard page filtered by activity and status | $filtered |"
echo "| API first page (JSON) | $api |"
echo "| raw SELECT of the same page, sqlite3 CLI process included ($(( raw ))) µs | $(awk "BEGIN {print $raw / 1000}") |"
