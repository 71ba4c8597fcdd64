#!/usr/bin/env bash
# Runs every Go fuzz target in the repository for a short, bounded time,
# so CI explores a little beyond the committed seed corpora on every run.
# Targets are found by grepping *_test.go for `func FuzzXxx(`, so a new
# target is picked up without editing this script.
#
# Usage: scripts/fuzz.sh [fuzztime]      (default 5s per target; env FUZZTIME too)
#
# A crash leaves its input in <package>/testdata/fuzz/<FuzzXxx>/; commit it
# with the fix: plain `go test` then replays it as a regression seed.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${1:-${FUZZTIME:-5s}}"
# Two fuzzing workers: the machines this runs on have two cores.
workers="${FUZZ_WORKERS:-2}"

failed=()
count=0
start=$SECONDS
while IFS= read -r file; do
  dir="./$(dirname "$file")"
  for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
    count=$((count + 1))
    printf '== %-45s %s\n' "$dir" "$target"
    if ! go test "$dir" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -parallel "$workers" 2>&1 | tail -n 20; then
      failed+=("$dir $target")
    fi
  done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | sort)

echo
echo "fuzzed $count targets in $((SECONDS - start))s ($fuzztime each)"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  echo "crashing inputs are in <package>/testdata/fuzz/<target>/: fix, then commit them as regression seeds"
  exit 1
fi
