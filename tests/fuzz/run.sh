#!/bin/sh
# Runs each libFuzzer target for a bounded time: `tests/fuzz/run.sh BUILD SECONDS TARGET...`
# (what `make fuzz` does). The corpus of target T is tests/fuzz/T/ (kept in git, read
# only here); what the run discovers goes to BUILD/corpus/T/, a crashing input to
# BUILD/artifacts/T-crash-*. To keep a discovered input, copy it into tests/fuzz/T/
# (or minimise first: BUILD/fuzz_T -merge=1 tests/fuzz/T BUILD/corpus/T).
# To replay one input: BUILD/fuzz_T FILE. Ends with "fuzz: N passed, N failed".
BUILD=${1:?usage: run.sh BUILD SECONDS TARGET...}
SECONDS_EACH=${2:?}
shift 2
export FOX_SCRIPT_PATH="${FOX_SCRIPT_PATH:-$PWD/scripts}"
passed=0
failed=0
for t in "$@"; do
  bin="$BUILD/fuzz_$t"
  corpus="$BUILD/corpus/$t"
  mkdir -p "$corpus" "$BUILD/artifacts"
  case "$t" in
    http) max_len=65536 ;;
    json) max_len=16384 ;;
    *) max_len=8192 ;;
  esac
  dict=""
  [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
  log="$BUILD/fuzz_$t.log"
  echo "== fuzz $t (${SECONDS_EACH} s)"
  # -timeout: one input may take at most 10 s; -rss_limit_mb: a leak or bomb fails.
  # The outer timeout is a backstop only.
  timeout $((SECONDS_EACH + 120)) "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 \
    -rss_limit_mb=2560 -max_len="$max_len" -print_final_stats=1 \
    -artifact_prefix="$BUILD/artifacts/$t-" $dict "$corpus" "tests/fuzz/$t" > "$log" 2>&1
  rc=$?
  runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
  cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -nE 's/.*cov: ([0-9]+).*/\1/p')
  if [ $rc -eq 0 ]; then
    echo "  ok: ${runs:-?} inputs, coverage ${cov:-?}, corpus $(ls "$corpus" | wc -l) new + $(ls "tests/fuzz/$t" | wc -l) kept"
    passed=$((passed + 1))
  else
    echo "  FAILED (exit $rc); the report:"
    grep -vE '^#[0-9]|^INFO:|^"|^[[:space:]]*$' "$log" | tail -n 40 | sed 's/^/    /'
    ls "$BUILD"/artifacts/"$t"-* 2>/dev/null | sed 's/^/  input: /'
    failed=$((failed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
