#!/bin/sh
# Runs every test suite against the binaries in BUILD and prints one closing line
# "N passed, N failed" (C tests, busted specs, fake self-tests and integration tests
# added up). Exits non-zero when anything failed.
BUILD=${1:-build}
FOX="$BUILD/fox"
FOX_BIN="$FOX"; export FOX_BIN
passed=0
failed=0
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

# add_counts FILE: adds every "N passed, N failed" line of FILE to the totals; a suite
# that printed none (it crashed) counts as one failure.
add_counts() {
  counts=$(grep -E '^[a-z ./_:-]*[0-9]+ passed, [0-9]+ failed' "$1" | sed -E 's/^(.*[^0-9])?([0-9]+) passed, ([0-9]+) failed.*/\2 \3/')
  if [ -z "$counts" ]; then
    echo "  (no result line: counted as a failure)"
    failed=$((failed + 1))
    return
  fi
  echo "$counts" | { while read -r p f; do echo "$p $f"; done; } > "$log/counts"
  while read -r p f; do passed=$((passed + p)); failed=$((failed + f)); done < "$log/counts"
}

for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  "$t" > "$log/out" 2>&1
  rc=$?
  cat "$log/out"
  add_counts "$log/out"
  if [ $rc -ne 0 ] && ! grep -qE '[1-9][0-9]* failed' "$log/out"; then
    echo "  $t exited with status $rc"; failed=$((failed + 1))
  fi
done

for spec in tests/lua/*_spec.lua; do
  [ -f "$spec" ] || continue
  echo "== $spec"
  timeout 300 "$FOX" run tests/run_specs.lua "$spec" > "$log/out" 2>&1
  rc=$?
  grep -vE '^(●|○|✱|✗)+$' "$log/out" | tail -n 40
  add_counts "$log/out"
  if [ $rc -ne 0 ] && ! grep -qE '[1-9][0-9]* failed' "$log/out"; then
    echo "  $spec: fox exited with status $rc"; failed=$((failed + 1))
  fi
done

if ls tests/fakes/*.test.js >/dev/null 2>&1; then
  echo "== fakes self-test"
  timeout 120 node --test tests/fakes/ > "$log/out" 2>&1
  tail -n 12 "$log/out"
  p=$(sed -nE 's/^# pass ([0-9]+)/\1/p' "$log/out"); f=$(sed -nE 's/^# fail ([0-9]+)/\1/p' "$log/out")
  if [ -n "$p" ]; then passed=$((passed + p)); failed=$((failed + ${f:-0})); else failed=$((failed + 1)); fi
fi

for it in tests/integration/*.sh; do
  [ -f "$it" ] || continue
  echo "== $it"
  FOX="$FOX" timeout 300 sh "$it" > "$log/out" 2>&1
  cat "$log/out" | tail -n 30
  add_counts "$log/out"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
