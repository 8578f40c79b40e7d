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

# --- secret hygiene (issue 8): canary secrets for the whole run. Every fox the tests
# start inherits them unless a test sets its own; at the end every captured output and
# every log file the run left behind is searched for them (see the end of this file).
INCIDENT_IO_API_KEY=canary-iio-key-7d1f0b2e93c4a8
SLACK_BOT_TOKEN=xoxb-canary-slack-token-5e8a2c61f0
INCIDENT_IO_WEBHOOK_SECRET=whsec_Y2FuYXJ5LXdlYmhvb2stc2VjcmV0LTNiOWU=
export INCIDENT_IO_API_KEY SLACK_BOT_TOKEN INCIDENT_IO_WEBHOOK_SECRET
touch "$log/started"
# --- end of canaries

# add_counts FILE: adds every "N passed, N failed" line of FILE to the totals; a suite
# that printed none (it crashed) counts as one failure.
add_counts() {
  cat "$1" >> "$log/all"   # kept for the canary search at the end
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
  cat "$log/out" >> "$log/all"
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

# Style is part of the suite: every Lua file luacheck clean (.luacheckrc).
if command -v luacheck >/dev/null 2>&1; then
  if luacheck -q --no-color scripts tests/lua > "$log/out" 2>&1; then
    echo "luacheck: 1 passed, 0 failed"; passed=$((passed + 1))
  else
    tail -n 20 "$log/out"; echo "luacheck: 0 passed, 1 failed"; failed=$((failed + 1))
  fi
fi

# --- secret hygiene: no canary in any output, nor in a log file left by this run
# (fox logs, not the fakes', which record what clients sent them).
leaks=0
self_out=$(readlink -f /proc/$$/fd/1 2>/dev/null)   # a file this run's own output goes to
for f in "$log/all" $(find "${TMPDIR:-/tmp}" "$PWD" -xdev -type f -name '*.log' -newer "$log/started" \
    ! -path '*/fakes/*' ! -path '*/node_modules/*' ! -path '*/.git/*' -size -64M 2>/dev/null); do
  [ "$f" = "$self_out" ] && continue
  for canary in "$INCIDENT_IO_API_KEY" "$SLACK_BOT_TOKEN" "$INCIDENT_IO_WEBHOOK_SECRET"; do
    if grep -qF -- "$canary" "$f" 2>/dev/null; then
      echo "secret hygiene: a canary secret ($(printf %s "$canary" | cut -c1-10)...) appears in $f"
      leaks=$((leaks + 1))
    fi
  done
done
echo "secret hygiene: $((leaks == 0 ? 1 : 0)) passed, $leaks failed"
passed=$((passed + (leaks == 0 ? 1 : 0))); failed=$((failed + leaks))
# --- end of secret hygiene

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
