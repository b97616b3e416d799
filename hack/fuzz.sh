#!/usr/bin/env bash
# Runs every Fuzz target in the module for a bounded number of executions each (default
# 20000x): a smoke run in CI, not a campaign. Usage: hack/fuzz.sh [BUDGET]
#
# The budget is a count (Nx), not a duration: Go 1.26's fuzz coordinator can fail a
# duration-bounded run with a bare "context deadline exceeded" at the deadline when a worker is
# mid-exec (golang/go#75804, fixed in Go 1.27). A count has no deadline to race. A duration
# (e.g. 30s) is still accepted for local campaigns.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-20000x}
n=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
while IFS= read -r file; do
  pkg=./$(dirname "$file")
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
    start=$SECONDS
    go test -tags "${TAGS:-}" -run='^$' -fuzz="^${target}\$" -fuzztime="$budget" -fuzzminimizetime=100x "$pkg" >"$log" 2>&1 || { cat "$log"; exit 1; }
    echo "fuzz $pkg $target ($budget, $((SECONDS-start))s)"
    n=$((n+1))
  done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | sort)
echo "fuzz: $n targets ran without failures"
