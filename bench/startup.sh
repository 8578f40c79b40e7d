#!/usr/bin/env bash
# Start-up: spawning `fox serve` to its first 200 on /healthz (bench/startup.js), with a
# fresh state directory and again reusing it; RUNS times each. The config is the
# bench's (webhook secret set, polling off); nothing else runs.
#
#   bench/startup.sh [RUNS]
# Target: <= 50 ms.
source "$(dirname "$0")/lib.sh"
RUNS=${1:-10}
bench_init startup
write_config "$BW/fox.conf.lua" 8
mkdir -p "$BW/states"
node "$ROOT/bench/startup.js" "$FOX" "$BW/fox.conf.lua" "$BW/states" "$RUNS" > "$BW/startup.json"
for k in fresh restart; do
  jq -r ".${k}[]" "$BW/startup.json" > "$BW/$k"
  result "startup_${k}_p50_ms" "$(median < "$BW/$k" | xargs printf '%.1f')"
  result "startup_${k}_max_ms" "$(sort -n "$BW/$k" | tail -1 | xargs printf '%.1f')"
done
result startup_runs "$RUNS"
log "fresh: $(paste -sd' ' "$BW/fresh" | cut -c1-200)"
log "restart: $(paste -sd' ' "$BW/restart" | cut -c1-200)"
