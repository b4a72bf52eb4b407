#!/usr/bin/env bash
# Measures two builds of sitetrail side by side on the same machine in one sitting: the
# current tree and an earlier commit (default: the one BENCHMARKS.md compares with). Builds
# the earlier `sitetrail` in a worktree under target/, then runs the bench once against each
# binary, the current one first: bench-compare.sh [COMMIT] [bench arguments...]
# Reports land in test-output/bench/{current,COMMIT}.md. A 1M run is about 9 minutes a side.
set -euo pipefail
cd "$(dirname "$0")/.."
before="${1:-c0525a3}"
shift || true
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--activities 1000000)

out=test-output/bench
mkdir -p "$out"
tree="target/bench-compare/$before"
if [ ! -d "$tree" ]; then
  git worktree add --detach "$tree" "$before"
fi
(cd "$tree" && cargo build --release -q -p sitetrail)
cargo build --release -q -p sitetrail -p sitetrail-bench

target/release/sitetrail-bench "${args[@]}" --server-bin target/release/sitetrail |
  tee "$out/current.md"
target/release/sitetrail-bench "${args[@]}" --server-bin "$tree/target/release/sitetrail" |
  tee "$out/$before.md"
