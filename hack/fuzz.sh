#!/usr/bin/env bash
# Runs every Fuzz target in the module for a short time each (default 5s): a smoke run in CI,
# not a campaign. Usage: hack/fuzz.sh [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-5s}
n=0
while IFS= read -r file; do
  pkg=./$(dirname "$file")
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
    echo "fuzz $pkg $target ($fuzztime)"
    go test -tags "${TAGS:-}" -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime=1s "$pkg" >/tmp/moat-fuzz.log 2>&1 || { cat /tmp/moat-fuzz.log; exit 1; }
    n=$((n+1))
  done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | sort)
echo "fuzz: $n targets ran without failures"
