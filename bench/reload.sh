#!/usr/bin/env bash
# Reload under load: signed webhooks for new incidents stream in at RATE a second for
# SECONDS while fox gets a SIGHUP every second (a new generation each time). Counts the
# deliveries that failed (not 2xx, or no answer), the events lost (answered 2xx but the
# incident never investigated: no Slack post naming it once everything has finished),
# and the reload times fox logs ("built in X ms"), p50 and max; and the time from each
# SIGHUP to /healthz showing the new generation.
# The playbook is bench/playbooks/light.lua (one Slack post per incident), so that the
# stream measures the daemon rather than the evidence sources.
#
#   bench/reload.sh [SECONDS] [RATE]
# Targets: 0 failed, 0 lost.
source "$(dirname "$0")/lib.sh"
SECS=${1:-10}
RATE=${2:-100}
N=$((SECS * RATE))
bench_init reload

start_fake incidentio --seed empty --no-rate-limit
start_fake slack --seed none --any-channel --no-rate-limit
node "$ROOT/bench/webhooks.js" create --url "$INCIDENTIO_URL" --count "$N" --out "$BW/ids"
write_config "$BW/fox.conf.lua" 16 "playbook = \"$ROOT/bench/playbooks/light.lua\","
sed -i 's/log_level = "[a-z]*"/log_level = "info"/' "$BW/fox.conf.lua"
start_fox "$BW/fox.conf.lua"
node "$ROOT/bench/webhooks.js" gen --count "$N" --ids "$BW/ids" --out "$BW/run.tsv"

generation() { curl -fsS --max-time 2 "$FOX_URL/healthz" 2>/dev/null | jq -r '.generation // empty'; }

node "$ROOT/bench/webhooks.js" blast --url "$FOX_URL/webhooks/incident-io" --file "$BW/run.tsv" \
  --concurrency 8 --rate "$RATE" --accepted "$BW/accepted" > "$BW/blast.json" &
BLAST=$!
: > "$BW/swap_ms"
sleep 0.5
for i in $(seq 1 "$SECS"); do
  kill -0 "$BLAST" 2>/dev/null || break
  g0=$(generation)
  t0=$(now_ms)
  kill -HUP "$FOX_PID"
  # time until /healthz reports the new generation (bounded: 2 s)
  while [ "$(generation)" = "$g0" ] && [ $(( $(now_ms) - t0 )) -lt 2000 ]; do sleep 0.005; done
  echo $(( $(now_ms) - t0 )) >> "$BW/swap_ms"
  sleep 0.98
done
wait "$BLAST"
wait_finished "$(wc -l < "$BW/accepted")" 120 0.1 || log "not every accepted incident finished within 120 s"
sleep 0.5

curl -fsS "$SLACK_URL/_fake/messages" | jq -r '.messages[].text' | grep -o 'fox saw [0-9A-Z]*' | awk '{ print $3 }' | sort -u > "$BW/posted"
sort -u "$BW/accepted" > "$BW/accepted.sorted"
lost=$(comm -23 "$BW/accepted.sorted" "$BW/posted" | wc -l)
sent=$(jq -r .sent "$BW/blast.json")
ok2xx=$(wc -l < "$BW/accepted")
failed=$(( sent - ok2xx ))
grep 'event=reload.ok' "$BW/fox.err" | sed -n 's/.*built in \([0-9.]*\) ms.*/\1/p' > "$BW/reload_ms"
reloads=$(wc -l < "$BW/reload_ms")
rejected=$(grep -c 'event=reload.failed' "$BW/fox.err")
result reload_seconds "$SECS"
result reload_rate "$RATE"
result reload_sent "$sent"
result reload_failed "$failed"
result reload_webhook_status "$(jq -c '.by_status' "$BW/blast.json")"
result reload_webhook_errors "$(jq -r '.errors' "$BW/blast.json")"
result reload_webhook_ms "$(jq -c '.ms' "$BW/blast.json")"
result reload_lost "$lost"
result reload_posted "$(wc -l < "$BW/posted")"
result reload_reloads "$reloads"
result reload_rejected "$rejected"
result reload_build_p50_ms "$(median < "$BW/reload_ms")"
result reload_build_max_ms "$(sort -n "$BW/reload_ms" | tail -1)"
result reload_swap_p50_ms "$(median < "$BW/swap_ms")"
result reload_swap_max_ms "$(sort -n "$BW/swap_ms" | tail -1)"
result reload_generations "$(generation)"
log "$sent sent, $failed failed, $lost lost; $reloads reloads, built in p50 $(median < "$BW/reload_ms") ms; SIGHUP to serving p50 $(median < "$BW/swap_ms") ms"
