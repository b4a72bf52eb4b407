#!/usr/bin/env bash
# Runs the parse_rewrite fuzz target for a bounded time: run.sh [SECONDS] (default 30).
# Installs cargo-fuzz when it is missing. Uses the stable toolchain (RUSTC_BOOTSTRAP=1
# unlocks the sanitizer flags cargo-fuzz passes).
set -euo pipefail
seconds="${1:-30}"
cd "$(dirname "$0")"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
mkdir -p corpus/parse_rewrite
cp seeds/* corpus/parse_rewrite/
RUSTC_BOOTSTRAP=1 cargo fuzz run parse_rewrite corpus/parse_rewrite -- \
    -max_total_time="$seconds" -max_len=4096 -timeout=10 -dict=parse_rewrite.dict -print_final_stats=1
