#!/usr/bin/env bash
# Fuzzes the parsers that read hostile input, each for a bounded time: fuzz.sh [SECONDS]
# (default 30 per target). Targets: cursor (list cursors and query strings), token (viewer
# tokens) and wpconfig (wp-config.php) from fuzz/, and php-serial's parse_rewrite. Prints and writes test-output/fuzz/summary.json
# (executions per target); fails on any crash.
# Installs cargo-fuzz when it is missing; runs on stable (RUSTC_BOOTSTRAP=1 unlocks the
# sanitizer flags cargo-fuzz passes).
set -euo pipefail
seconds="${1:-30}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/test-output/fuzz"
mkdir -p "$out"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi

# Build everything first, so the time budget is spent fuzzing.
(cd "$root/fuzz" && cargo fuzz build)
(cd "$root/crates/php-serial/fuzz" && cargo fuzz build parse_rewrite)

failed=()
declare -A execs status
names=()
run() { # name dir target max_len [extra libFuzzer flags...]
  local name="$1" dir="$2" target="$3" max_len="$4"
  shift 4
  local corpus="$dir/corpus/$target" log="$out/$name.log"
  names+=("$name")
  mkdir -p "$corpus"
  cp "$dir/seeds/$target"/* "$corpus/" 2>/dev/null || cp "$dir/seeds"/* "$corpus/"
  echo "==> $name: ${seconds}s"
  if (cd "$dir" && cargo fuzz run "$target" "$corpus" -- \
        -max_total_time="$seconds" -max_len="$max_len" -timeout=10 \
        -print_final_stats=1 "$@") >"$log" 2>&1; then
    status[$name]=ok
  else
    status[$name]=crashed
    failed+=("$name")
    tail -n 40 "$log"
  fi
  execs[$name]="$(awk '/stat::number_of_executed_units/ {n=$2} END {print n+0}' "$log")"
  echo "    ${status[$name]}, ${execs[$name]} executions (log: ${log#"$root"/})"
}

run cursor "$root/fuzz" cursor 512
run token "$root/fuzz" token 2048
run wpconfig "$root/fuzz" wpconfig 8192
rm -rf "${TMPDIR:-/tmp}"/sitetrail-fuzz-wpconfig-* # the target's scratch docroots
run php-serial "$root/crates/php-serial/fuzz" parse_rewrite 4096 \
  -dict="$root/crates/php-serial/fuzz/parse_rewrite.dict"

{
  printf '{\n  "seconds_per_target": %s,\n  "targets": {\n' "$seconds"
  sep=""
  for name in "${names[@]}"; do
    printf '%s    "%s": {"executions": %s, "status": "%s"}' "$sep" "$name" "${execs[$name]}" "${status[$name]}"
    sep=$',\n'
  done
  printf '\n  }\n}\n'
} >"$out/summary.json"
cat "$out/summary.json"

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]} (inputs under the targets' artifacts/)" >&2
  exit 1
fi
