#!/usr/bin/env bash
# Fan-out latency: every fake answers after LATENCY ms (default 100); a signed webhook
# for a new incident goes to `fox serve`; the time from sending it to the findings post
# (answered by the Slack fake) is divided by the latency of the critical path (the
# calls that must happen one after another: bench/fanout_analyze.js). Then the same
# calls, one after another with curl (bench/serial.sh), in the same run.
#
#   bench/fanout.sh [TRIALS] [LATENCY_MS]        (BUILD=build by default)
# Targets: wall / critical path <= 1.15; serial / fox >= 4.
source "$(dirname "$0")/lib.sh"
TRIALS=${1:-5}
LAT=${2:-100}
bench_init fanout

start_all_fakes 0 demo
node "$ROOT/bench/webhooks.js" create --url "$INCIDENTIO_URL" --count $((TRIALS + 1)) --out "$BW/ids"
write_config "$BW/fox.conf.lua" 8
start_fox "$BW/fox.conf.lua"

# --warm: the client connects and warms up before it takes the "sent" time
send() { node "$ROOT/bench/webhooks.js" send --url "$FOX_URL/webhooks/incident-io" --id "$1" --warm 1; }

# Warm-up at zero latency: scripts loaded, the incident index built (as in a daemon
# that has been up for a while).
send "$(sed -n 1p "$BW/ids")" > /dev/null
wait_finished 1 30 || { log "warm-up investigation did not finish"; tail "$BW/fox.err" >&2; exit 1; }
set_latency "$LAT"

: > "$BW/trials"; : > "$BW/shares"
cpu0=$(cpu_ms "$FOX_PID")
for i in $(seq 1 "$TRIALS"); do
  id=$(sed -n "$((i + 1))p" "$BW/ids")
  clear_requests
  out=$(send "$id")
  sent=$(echo "$out" | awk '{ print $3 }')
  # polled slowly: rendering /metrics costs fox a few ms of its one thread, which would
  # land in the investigation being measured (the wall time comes from the fakes' logs)
  wait_finished $((i + 1)) 60 0.5 || { log "investigation $i did not finish"; tail "$BW/fox.err" >&2; exit 1; }
  sleep 0.3 # the pin after the post, so the logs are complete
  mkdir -p "$BW/t$i"
  for k in $FAKE_KINDS; do
    eval "url=\${${k^^}_URL}"
    curl -fsS "$url/_fake/requests" > "$BW/t$i/$k.json"
    echo "$url" > "$BW/t$i/$k.url"
  done
  node "$ROOT/bench/fanout_analyze.js" --dir "$BW/t$i" --sent-ms "$sent" --latency-ms "$LAT" \
    --incident "$id" --replay "$BW/t$i/calls.jsonl" > "$BW/t$i/summary.json"
  jq -c '{wall_ms, levels, ratio, critical_measured_ms, fox_share_ms, calls_before_post}' "$BW/t$i/summary.json" >&2
  jq -r '.wall_ms' "$BW/t$i/summary.json" >> "$BW/trials"
  jq -r '.fox_share_ms' "$BW/t$i/summary.json" >> "$BW/shares"
done
cpu1=$(cpu_ms "$FOX_PID")
(( $(failed_count) == 0 )) || { log "some investigations failed"; grep -i error "$BW/fox.err" | tail -5 >&2; }

# The serial baseline: the calls of the median trial, one after another.
med=$(median < "$BW/trials")
best=1
for i in $(seq 1 "$TRIALS"); do
  w=$(jq -r .wall_ms "$BW/t$i/summary.json")
  if awk -v a="$w" -v b="$(jq -r .wall_ms "$BW/t$best/summary.json")" -v m="$med" \
      'BEGIN { exit !((a - m) ^ 2 < (b - m) ^ 2) }'; then best=$i; fi
done
read -r serial_calls serial_ms < <("$ROOT/bench/serial.sh" "$BW/t$best/calls.jsonl")

S="$BW/t$best/summary.json"
levels=$(jq -r .levels "$S")
crit=$(jq -r .critical_ms "$S")
ratio=$(awk -v w="$med" -v c="$crit" 'BEGIN { printf "%.2f", w / c }')
speedup=$(awk -v s="$serial_ms" -v w="$med" 'BEGIN { printf "%.1f", s / w }')
result fanout_latency_ms "$LAT"
result fanout_trials "$TRIALS"
result fanout_wall_ms_median "$med"
result fanout_wall_ms_all "$(paste -sd, "$BW/trials")"
result fanout_levels "$levels"
result fanout_critical_ms "$crit"
result fanout_ratio "$ratio"
# what the calls of the chain really took at the fakes (latency + the fakes' own work),
# and the rest of the wall time: fox's share (bench/fanout_analyze.js)
result fanout_critical_measured_ms "$(jq -r .critical_measured_ms "$S")"
result fanout_fox_share_ms_median "$(median < "$BW/shares")"
result fanout_calls "$(jq -r .calls_before_post "$S")"
result fanout_calls_by_kind "$(jq -c .calls_by_kind "$S")"
result fanout_depth "$(jq -c .depth "$S")"
result fanout_fox_cpu_ms_per_investigation "$(( (cpu1 - cpu0) / TRIALS ))"
result serial_calls "$serial_calls"
result serial_ms "$serial_ms"
result serial_speedup "$speedup"
log "fox CPU $(( (cpu1 - cpu0) / TRIALS )) ms per investigation; fox's share of the wall (median) $(median < "$BW/shares") ms; fox median ${med} ms over a ${crit} ms critical path (${levels} levels): ${ratio}; serial ${serial_ms} ms for ${serial_calls} calls: fox ${speedup}x faster"
