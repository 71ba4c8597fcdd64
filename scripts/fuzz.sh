#!/usr/bin/env bash
# Runs every Go fuzz target in the repository for a short, bounded time,
# so CI explores a little beyond the committed seed corpora on every run.
# Targets are found by grepping *_test.go for `func FuzzXxx(`, so a new
# target is picked up without editing this script.
#
# Usage: scripts/fuzz.sh [fuzztime]   (default 5s per target; env FUZZTIME too)
#
# FUZZ_JOBS targets run at once (default 2, one per core), each with one
# fuzzing worker: on two cores about 19 targets take a little over a minute.
# A crash leaves its input in <package>/testdata/fuzz/<FuzzXxx>/; commit it
# with the fix: plain `go test` then replays it as a regression seed.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${1:-${FUZZTIME:-5s}}"
jobs="${FUZZ_JOBS:-2}"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

targets=()
while IFS= read -r file; do
  for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
    targets+=("./$(dirname "$file") $target")
  done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | sort)

# Compile each package's fuzzing test binary once, serially, so the
# parallel runs below share the build cache instead of racing to fill it.
for pkg in $(printf '%s\n' "${targets[@]}" | cut -d' ' -f1 | sort -u); do
  go test "$pkg" -run '^$' -fuzz '^$' -count=1 >/dev/null 2>&1 || true
done

run() { # run <n> <dir> <target>
  if go test "$2" -run '^$' -fuzz "^$3\$" -fuzztime "$fuzztime" -parallel 1 >"$logs/$1.log" 2>&1; then
    printf 'ok    %-36s %s\n' "$2" "$3"
  elif grep -q 'context deadline exceeded' "$logs/$1.log" && ! grep -q 'Failing input written to' "$logs/$1.log"; then
    # The fuzzing engine lost its worker at the time limit without a
    # failing input (seen with string-heavy targets on a busy machine):
    # no crash to report, but say so instead of hiding it.
    printf 'stall %-36s %s (worker stopped answering; no failing input)\n' "$2" "$3"
  else
    printf 'FAIL  %-36s %s\n' "$2" "$3"
    tail -n 30 "$logs/$1.log"
    touch "$logs/failed"
  fi
}

start=$SECONDS
n=0
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  n=$((n + 1))
  # shellcheck disable=SC2086
  run "$n" $t &
done
wait

echo "fuzzed ${#targets[@]} targets in $((SECONDS - start))s ($fuzztime each, $jobs at a time)"
if [ -e "$logs/failed" ]; then
  echo "crashing inputs are in <package>/testdata/fuzz/<target>/: fix, then commit them as regression seeds"
  exit 1
fi
