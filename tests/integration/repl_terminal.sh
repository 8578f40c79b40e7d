#!/bin/sh
# `fox repl` on a real terminal (a pty from script(1)): line editing mode, multi-line
# input, Ctrl-C stopping a waiting chunk and a busy one without ending the REPL, and
# Ctrl-D leaving it. fox is exec'd so that no wrapper shell (dash when SHELL is unset,
# as in CI) also receives the Ctrl-C and exits 130. Prints "repl_terminal: N passed, N failed".
FOX=${FOX:-build/fox}
passed=0
failed=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

{
  printf 'x = 41\nfunction f(a,\n  b) return a * b end\nf(x, 2)\n'
  printf 'require("fox.task").sleep(30)\n'; sleep 0.8; printf '\003'; sleep 0.4
  printf 'while true do end\n'; sleep 0.8; printf '\003'; sleep 0.4
  printf '"still " .. "here"\n'; sleep 0.4
  printf '\004'; sleep 0.4
} | HOME=$(dirname "$out") timeout 30 script -qfec "exec $FOX repl" /dev/null > "$out" 2>&1
status=$?

check() { # check NAME PATTERN
  if grep -q -- "$2" "$out"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $1"; fi
}
check "multi-line function and expression" "^82"
check "Ctrl-C interrupts chunks" "interrupted"
[ "$(grep -c 'interrupted' "$out")" -eq 2 ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL both interrupts"; }
check "the REPL carries on after Ctrl-C" "^still here"
check "continuation prompt" "^>> "
if [ "$status" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL exit status $status"; fi
[ "$failed" -eq 0 ] || cat -v "$out"
echo "repl_terminal: $passed passed, $failed failed"
