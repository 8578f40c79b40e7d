#!/usr/bin/env bash
# Memory: RSS of `fox serve` idle (just started, and again after a few investigations),
# and with N (default 1000) investigations in flight at once: concurrency N, N new
# incidents delivered as webhooks, the evidence fakes answering after HOLD_MS so that
# every investigation is started and waiting before the first one finishes. RSS and
# the number running (/metrics fox_investigations_running) and the Lua heaps (/healthz
# generations[].memory) are sampled every 100 ms
# until all have finished; VmHWM is the peak. Then RSS once more after AFTER_IDLE
# (default 8) seconds of quiet: fox serve gives memory back once it is quiet for two
# checks 2 s apart (src/memtrim.c).
#
#   bench/memory.sh [N] [HOLD_MS]
# The log sources read at most LOG_CAP (default 100) lines per service, so the run
# fits in the bench's time (see RESULTS.md: the CPU per log line).
# Targets: idle <= 10 MiB, N=1000 in flight <= 100 MiB.
source "$(dirname "$0")/lib.sh"
N=${1:-1000}
HOLD=${2:-8000}
LOG_CAP=${LOG_CAP:-100}
INV_TIMEOUT=${INV_TIMEOUT:-240}
bench_init memory

start_all_fakes 0 demo
node "$ROOT/bench/webhooks.js" create --url "$INCIDENTIO_URL" --count $((N + 2)) --out "$BW/ids"
head -n 2 "$BW/ids" > "$BW/warm.ids"
tail -n "$N" "$BW/ids" > "$BW/run.ids"
write_config "$BW/fox.conf.lua" "$N"
start_fox "$BW/fox.conf.lua"

smaps() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/smaps_rollup"; }
sleep 1
idle_rss=$(rss_kib "$FOX_PID"); idle_pss=$(smaps "$FOX_PID" Pss); idle_anon=$(smaps "$FOX_PID" Pss_Anon)
log "idle: RSS $idle_rss KiB, PSS $idle_pss KiB, anonymous $idle_anon KiB"

node "$ROOT/bench/webhooks.js" gen --count 2 --ids "$BW/warm.ids" --out "$BW/warm.tsv"
node "$ROOT/bench/webhooks.js" blast --url "$FOX_URL/webhooks/incident-io" --file "$BW/warm.tsv" > /dev/null
wait_finished 2 60 || { log "warm-up did not finish"; exit 1; }
sleep 2
warm_rss=$(rss_kib "$FOX_PID"); warm_pss=$(smaps "$FOX_PID" Pss)
log "idle after 2 investigations: RSS $warm_rss KiB, PSS $warm_pss KiB"

# Hold every evidence source (not incident.io, not Slack) for HOLD ms.
for k in prometheus loki elasticsearch github cd; do
  eval "url=\${${k^^}_URL}"
  curl -fsS -X POST -H 'Content-Type: application/json' -d "{\"latency_ms\": $HOLD}" "$url/_fake/config" > /dev/null
done
node "$ROOT/bench/webhooks.js" gen --count "$N" --ids "$BW/run.ids" --out "$BW/run.tsv"
: > "$BW/samples"
(
  end=$(( $(now_ms) + 240000 ))
  while [ "$(now_ms)" -lt "$end" ] && kill -0 "$FOX_PID" 2>/dev/null; do
    running=$(curl -fsS --max-time 2 "$FOX_URL/metrics" 2>/dev/null | awk '/^fox_investigations_running / { print $2 }')
    lua=$(curl -fsS --max-time 2 "$FOX_URL/healthz" 2>/dev/null | jq '[.generations[].memory] | add / 1024 | floor' 2>/dev/null)
    echo "$(now_ms) $(rss_kib "$FOX_PID") ${running:-?} ${lua:-?}" >> "$BW/samples"
    sleep 0.1
  done
) &
SAMPLER=$!
BENCH_PIDS+=($SAMPLER)
t0=$(now_ms)
node "$ROOT/bench/webhooks.js" blast --url "$FOX_URL/webhooks/incident-io" --file "$BW/run.tsv" \
  --concurrency 8 > "$BW/blast.json"
t_sent=$(now_ms)
ok=1
wait_finished $((N + 2)) 240 0.2 || { ok=0; log "not every investigation finished within 240 s"; }
t1=$(now_ms)
kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null

hwm=$(rss_kib "$FOX_PID" VmHWM)
max_running=$(awk '$3 != "?" && $3 > m { m = $3 } END { print m + 0 }' "$BW/samples")
# the largest RSS seen while every investigation was in flight
rss_all=$(awk -v n="$N" '$3 != "?" && $3 >= n && $2 > m { m = $2 } END { print m + 0 }' "$BW/samples")
after=$(rss_kib "$FOX_PID")
sleep "${AFTER_IDLE:-8}"
after_idle=$(rss_kib "$FOX_PID")
lua_peak=$(awk '$4 != "?" && $4 > m { m = $4 } END { print m + 0 }' "$BW/samples")
failed=$(failed_count)
result mem_idle_rss_kib "$idle_rss"
result mem_idle_pss_kib "$idle_pss"
result mem_idle_anon_kib "$idle_anon"
result mem_warm_rss_kib "$warm_rss"
result mem_warm_pss_kib "$warm_pss"
result mem_n "$N"
result mem_hold_ms "$HOLD"
result mem_log_cap "$LOG_CAP"
result mem_max_running "$max_running"
result mem_rss_all_in_flight_kib "$rss_all"
result mem_hwm_kib "$hwm"
result mem_after_kib "$after"
result mem_after_idle_kib "$after_idle"
result mem_lua_peak_kib "$lua_peak"
result mem_send_ms $((t_sent - t0))
result mem_run_ms $((t1 - t0))
result mem_failed "$failed"
result mem_fail_example "$(grep -m1 'status=failed' "$BW/fox.err" | sed -n 's/.*error="\([^"]*\)".*/\1/p' | cut -c1-150)"
result mem_finished "$ok"
result mem_webhooks "$(jq -c '{by_status, errors, ms}' "$BW/blast.json")"
log "$N in flight: $max_running running at most; RSS with all in flight $rss_all KiB, peak (VmHWM) $hwm KiB; Lua heaps at most $lua_peak KiB; after $after KiB, after ${AFTER_IDLE:-8} s quiet $after_idle KiB; failed $failed; $((t1 - t0)) ms"
