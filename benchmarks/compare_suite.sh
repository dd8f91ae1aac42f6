#!/usr/bin/env bash
# Regenerate the committed leaderboard: run (or continue) the suite comparison, then copy its outputs
# into docs/benchmarks/compare/. Usage: bash benchmarks/compare_suite.sh [OUT] [JOBS]
# Resumable: after an interruption, run the same command again (finished runs are not repeated).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/compare-suite}
JOBS=${2:-2}
BIN=${BIN:-.venv/bin}
"$BIN/multifair" compare --config benchmarks/compare.yaml --output "$OUT" --jobs "$JOBS" --no-progress
mkdir -p docs/benchmarks/compare
cp "$OUT"/leaderboard.html "$OUT"/leaderboard.md "$OUT"/results.json "$OUT"/runs.jsonl "$OUT"/compare.yaml \
   docs/benchmarks/compare/
echo "copied the leaderboard to docs/benchmarks/compare/"
