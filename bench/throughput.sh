#!/usr/bin/env bash
# Throughput and cost: zero-latency fakes, N new incidents delivered as signed webhooks
# as fast as fox takes them, every investigation run by the default playbook to its
# findings post. Investigations per second = N / (last finished - first sent); fox's
# CPU = utime+stime of the fox process (/proc/PID/stat) over the same span, per
# investigation; the fakes' CPU the same way (they share the two cores).
#
#   bench/throughput.sh [N] [CONCURRENCY] [LABEL]
#   LOG_CAP=100 bench/throughput.sh ...   the log sources read at most 100 lines per
#                                         service (default: the demo's ~1,100 per service)
# Targets: >= 300 investigations/s, <= 3 ms of fox CPU each.
source "$(dirname "$0")/lib.sh"
N=${1:-40}
CONC=${2:-16}
LABEL=${3:-full}
WARM=2
bench_init "throughput_$LABEL"

start_all_fakes 0 demo
node "$ROOT/bench/webhooks.js" create --url "$INCIDENTIO_URL" --count $((N + WARM)) --out "$BW/ids"
head -n "$WARM" "$BW/ids" > "$BW/warm.ids"
tail -n "$N" "$BW/ids" > "$BW/run.ids"
write_config "$BW/fox.conf.lua" "$CONC"
start_fox "$BW/fox.conf.lua"

node "$ROOT/bench/webhooks.js" gen --count "$WARM" --ids "$BW/warm.ids" --out "$BW/warm.tsv"
node "$ROOT/bench/webhooks.js" blast --url "$FOX_URL/webhooks/incident-io" --file "$BW/warm.tsv" > /dev/null
wait_finished "$WARM" 60 || { log "warm-up did not finish"; tail "$BW/fox.err" >&2; exit 1; }

node "$ROOT/bench/webhooks.js" gen --count "$N" --ids "$BW/run.ids" --out "$BW/run.tsv"
fakes_cpu() {
  local k p s=0
  for k in $FAKE_KINDS; do eval "p=\${${k^^}_PID}"; s=$((s + $(cpu_ms "$p"))); done
  echo "$s"
}
c0=$(cpu_ms "$FOX_PID"); f0=$(fakes_cpu); t0=$(now_ms)
node "$ROOT/bench/webhooks.js" blast --url "$FOX_URL/webhooks/incident-io" --file "$BW/run.tsv" \
  --concurrency 8 > "$BW/blast.json"
wait_finished $((N + WARM)) 300 0.01 || { log "the run did not finish"; tail "$BW/fox.err" >&2; exit 1; }
t1=$(now_ms); c1=$(cpu_ms "$FOX_PID"); f1=$(fakes_cpu)
failed=$(failed_count)
posts=$(curl -fsS "$SLACK_URL/_fake/requests?path=/api/chat.postMessage" | jq '[.requests[] | select(.status == 200)] | length')

rate=$(awk -v n="$N" -v ms=$((t1 - t0)) 'BEGIN { printf "%.1f", n * 1000 / ms }')
cpu=$(awk -v c=$((c1 - c0)) -v n="$N" 'BEGIN { printf "%.1f", c / n }')
fcpu=$(awk -v c=$((f1 - f0)) -v n="$N" 'BEGIN { printf "%.1f", c / n }')
result "tp_${LABEL}_n" "$N"
result "tp_${LABEL}_concurrency" "$CONC"
result "tp_${LABEL}_log_cap" "${LOG_CAP:-none}"
result "tp_${LABEL}_wall_ms" $((t1 - t0))
result "tp_${LABEL}_per_s" "$rate"
result "tp_${LABEL}_fox_cpu_ms" "$cpu"
result "tp_${LABEL}_fakes_cpu_ms" "$fcpu"
result "tp_${LABEL}_failed" "$failed"
result "tp_${LABEL}_slack_posts" "$posts"
log "$N investigations in $((t1 - t0)) ms: $rate/s; fox CPU $cpu ms each, fakes $fcpu ms each; failed $failed; Slack posts $posts"
