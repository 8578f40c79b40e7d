#!/bin/sh
# `make soak`: the long variants of the hardening tests (issue 8), with FOX_SOAK=1:
#   crash_spec         300 incidents by webhook and poller, five kill -9 and restarts
#   api_faults_spec    60 incidents through the fault storm
#   hostile_webhooks   4000 slow-loris clients (plus slow bodies, idle and flooding ones) for 30 s
#   policies_fuzz      5000 random documents and incidents per policy
#   valgrind.sh        the valgrind subset with more specs, fox serve under valgrind
# Everything targets 127.0.0.1 and stops by itself. Ends with "soak: N passed, N failed".
BUILD=${1:-build}
FOX="$BUILD/fox"
FOX_BIN="$FOX"
FOX_SOAK=1
FOX_FUZZ_CASES=${FOX_FUZZ_CASES:-5000}
export FOX_BIN FOX_SOAK FOX_FUZZ_CASES
passed=0
failed=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

tally() {
  counts=$(grep -E '^[a-z ./_:-]*[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1 |
    sed -E 's/^(.*[^0-9])?([0-9]+) passed, ([0-9]+) failed.*/\2 \3/')
  if [ -z "$counts" ]; then
    echo "  (no result line: counted as a failure)"
    failed=$((failed + 1))
    return
  fi
  set -- $counts
  passed=$((passed + $1))
  failed=$((failed + $2))
}

for spec in crash api_faults hostile_webhooks hostile_playbooks policies_fuzz secrets; do
  echo "== soak: ${spec}_spec"
  timeout 1800 "$FOX" run tests/run_specs.lua "tests/lua/${spec}_spec.lua" > "$out" 2>&1
  grep -vE '^(●|○|✱|✗|\+|-|\*)+$' "$out" | tail -n 25
  tally
done
echo "== soak: valgrind"
FOX="$FOX" timeout 3000 sh tests/integration/valgrind.sh > "$out" 2>&1
tail -n 40 "$out"
tally

echo "soak: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
