#!/usr/bin/env bash
# The Lua heap per investigation while it waits on its evidence sources, and what
# holds it (bench/lua/heap.lua): N dry runs at once, the evidence fakes answering
# after HOLD_MS.
#   bench/lua_heap.sh [N] [HOLD_MS]
source "$(dirname "$0")/lib.sh"
N=${1:-50}
HOLD=${2:-6000}
LOG_CAP=${LOG_CAP:-100}
bench_init lua_heap
start_all_fakes 0 demo
write_config "$BW/fox.conf.lua" 8
for k in prometheus loki elasticsearch github cd; do
  eval "url=\${${k^^}_URL}"
  curl -fsS -X POST -H 'Content-Type: application/json' -d "{\"latency_ms\": $HOLD}" "$url/_fake/config" > /dev/null
done
"$FOX" run "$ROOT/bench/lua/heap.lua" "$BW/fox.conf.lua" INC-2 "$N" "$(awk -v h="$HOLD" 'BEGIN { print h / 2000 }')" 40
