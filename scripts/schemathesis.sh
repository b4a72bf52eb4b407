#!/usr/bin/env bash
# Runs Schemathesis against a sitetrail server's own OpenAPI document: every operation with
# generated valid and invalid input, checking that no answer is a 5xx and that every answer
# matches the documented schema. Publisher operations get a publisher key, viewer
# operations a viewer token (the document's two security schemes). The server streams
# (the live stream) are left out: an open stream never ends.
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]   (default 100 per operation and phase)
#
# SITETRAIL_DATABASE=postgres://... runs the server on that (empty) PostgreSQL database
# instead of SQLite in a scratch data dir.
#
# Installs Schemathesis from PyPI into target/schemathesis-venv when it is missing. Writes
# the reports (JUnit, JSON) and the server's log to test-output/schemathesis/; exits non-zero
# when Schemathesis found a failure.
set -euo pipefail
examples="${1:-100}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/test-output/schemathesis"
venv="$root/target/schemathesis-venv"
mkdir -p "$out"

log() { printf '\n==> %s\n' "$*"; }

# CPython 3.11 and 3.12 sometimes raise "SystemError: AST constructor recursion depth
# mismatch" from ast.parse inside Hypothesis (python/cpython#106905), which stops a run
# without any check having failed: use a CPython 3.13 or later when the machine has one (on
# PATH, or installed by pyenv), else python3.
python=python3
for candidate in python3.14 python3.13; do
  if "$candidate" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    python="$candidate"
    break
  fi
done
if [ "$python" = python3 ] && command -v pyenv >/dev/null 2>&1; then
  for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[3-9]|[2-9][0-9])\.[0-9]+$' | sort -V -r); do
    if "$(pyenv root)/versions/$version/bin/python3" -c 'import ensurepip, venv' >/dev/null 2>&1; then
      python="$(pyenv root)/versions/$version/bin/python3"
      break
    fi
  done
fi
wanted="$("$python" -c 'import sys; print(sys.version.split()[0])')"
if [ -x "$venv/bin/python" ] && [ "$("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])')" != "$wanted" ]; then
  rm -rf "$venv"
fi

if [ ! -x "$venv/bin/schemathesis" ]; then
  log "installing Schemathesis into ${venv#"$root"/} (Python $wanted)"
  if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3-venv >/dev/null
  fi
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet 'schemathesis>=4,<5'
fi
"$venv/bin/schemathesis" --version

log "building sitetrail"
(cd "$root" && cargo build --quiet -p sitetrail)
bin="$root/target/debug/sitetrail"

data="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$data"
}
trap cleanup EXIT

# A key and a viewer token before the server starts (the token command makes the signing
# key the server then reads). The viewer is a support person of acme, internal audience.
key="$("$bin" keys create --name schemathesis --data-dir "$data/state" | tail -n 1)"
token="$("$bin" token --account acme --audience internal --actor-kind support \
  --actor-email sam.rivera@partner.example --actor-name "Sam Rivera" --ttl 7200 \
  --data-dir "$data/state")"

log "starting sitetrail serve"
# No rate limits: Schemathesis measures conformance, not the limiter.
SITETRAIL_RATE_PUBLISHER=0 SITETRAIL_RATE_VIEWER=0 SITETRAIL_SITE_ACTIVITIES_PER_MINUTE=0 \
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$data/state" >"$out/server.log" 2>&1 &
server=$!
base=""
for _ in $(seq 1 100); do
  base="$(grep -o 'listening on http://[0-9.:]*' "$out/server.log" | head -n 1 | sed 's/listening on //')" || true
  [ -n "$base" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$out/server.log"; exit 1; }
  sleep 0.2
done
[ -n "$base" ] || { echo "the server did not start" >&2; cat "$out/server.log"; exit 1; }
echo "$base"

# What the generated requests can find: two accounts, sites with docroots (empty, so that
# staging operations start and fail at once, logged), and a few activities.
api() { # METHOD PATH BODY
  curl -sS -o /dev/null -w '%{http_code}' -X "$1" "$base$2" -H "authorization: Bearer $key" \
    -H 'content-type: application/json' --data "$3"
}
mkdir -p "$data/www"
for a in acme globex; do
  [ "$(api PUT "/api/v1/accounts/$a" '{"name":"'"$a"'","partner":"Agency"}')" = 200 ]
done
for s in shop:acme blog:acme portal:globex; do
  site="${s%%:*}"
  [ "$(api PUT "/api/v1/sites/$site" '{"account_id":"'"${s##*:}"'","name":"'"$site"'",
    "live":{"url":"https://'"$site"'.example","docroot":"'"$data/www/$site-live"'"},
    "staging":{"url":"https://staging.'"$site"'.example","docroot":"'"$data/www/$site-staging"'"}}')" = 200 ]
done
for i in 1 2 3; do
  [ "$(api POST /api/v1/activities '{"id":"seed-'"$i"'","account_id":"acme","site_id":"shop",
    "environment":"live","service":"staging","activity":"push_staging_to_live",
    "actor":{"kind":"support","email":"sam.rivera@partner.example","name":"Sam Rivera"},
    "description":"Pushing staging to live"}')" = 201 ]
done
[ "$(api POST /api/v1/activities/seed-2/complete '{"description":"Pushed"}')" = 200 ]

cat >"$data/schemathesis.toml" <<'TOML'
# Known ids most of the time, generated ones the rest.
[dictionaries.sites]
values = ["shop", "blog", "portal", "nowhere"]

[dictionaries.accounts]
values = ["acme", "globex", "initech"]

[dictionaries.activities]
values = ["seed-1", "seed-2", "seed-3", "no-such-activity"]

[parameters]
"path.site" = { dictionary = "sites", probability = 0.7 }
"path.account" = { dictionary = "accounts", probability = 0.7 }
"path.id" = { dictionary = "activities", probability = 0.7 }

[auth.openapi.publisher_key]
bearer = "${SITETRAIL_PUBLISHER_KEY}"

[auth.openapi.viewer_token]
bearer = "${SITETRAIL_VIEWER_TOKEN}"
TOML

run_schemathesis() {
  SITETRAIL_PUBLISHER_KEY="$key" SITETRAIL_VIEWER_TOKEN="$token" \
    "$venv/bin/schemathesis" --config-file "$data/schemathesis.toml" --no-color \
    run "$base/api/v1/openapi.json" \
    --checks not_a_server_error,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$examples" \
    --exclude-path '/api/v1/sites/{site}/activities/stream' \
    --workers 2 \
    --request-timeout 20 \
    --seed "${SCHEMATHESIS_SEED:-20261125}" \
    --generation-database none \
    --report junit,json \
    --report-dir "$out" 2>&1 | tee "$out/output.txt"
  return "${PIPESTATUS[0]}"
}

# True when the run failed only on an error inside Schemathesis itself: a "Runtime Error"
# with no failed check and no request that failed to reach the server (the interpreter bug
# above, where no newer Python is at hand); that says nothing about sitetrail.
tool_error_only() {
  grep -q 'Runtime Error' "$out/output.txt" &&
    ! grep -q 'FAILURES' "$out/output.txt" &&
    ! grep -Eq 'Network Error|Timeout|Connection (refused|reset)' "$out/output.txt"
}

log "schemathesis: at most $examples examples per operation and phase"
set +e
run_schemathesis
status=$?
if [ "$status" != 0 ] && tool_error_only; then
  cp "$out/output.txt" "$out/output-first-try.txt"
  log "Schemathesis stopped on an error of its own, not on a failed check (see output-first-try.txt); running it once more"
  run_schemathesis
  status=$?
fi
set -e

# Operations on the empty docroots fail (logged as WARN); an ERROR is a request that failed.
errors="$(grep -c 'ERROR' "$out/server.log" || true)"
echo "server log: $errors ERROR lines"
if [ "$errors" != 0 ]; then
  grep 'ERROR' "$out/server.log" | head -n 20
  [ "$status" != 0 ] || status=1
fi
echo "reports: ${out#"$root"/}/"
exit "$status"
