#!/usr/bin/env bash
# Webhook ingest: wrk against POST /webhooks/incident-io of `fox serve`, every request
# a public_incident.incident_created_v2 delivery with a valid signature and a unique
# webhook-id (a new incident each), then the same against bench/node_receiver.js (the
# same verification, nothing durable), in the same run, same wrk settings.
# fox answers 202 once the incident is queued durably (SQLite WAL, synchronous=FULL);
# its dispatcher is kept idle (concurrency 1, the one investigation waiting on an
# incident.io fake that answers after 120 s) so only ingest is measured.
#
#   bench/ingest.sh [SECONDS] [CONNECTIONS]      (INGEST_SIDES=fox: fox only)
# wrk is Debian's package; installed here with apt-get when missing.
# Targets: fox >= 2x Node's requests/s; fox's p99 < 10 ms.
# Also reported: deliveries per group commit (fox's /metrics, over the measured run) and
# the latency of one synchronous 4 KiB write on the state directory's filesystem (dd
# oflag=dsync, before the runs): with group commit, fox's ingest is bounded by
# CPU per delivery and by how many deliveries one fsync covers.
source "$(dirname "$0")/lib.sh"
DUR=${1:-8}
CONNS=${2:-32}
bench_init ingest

if ! command -v wrk > /dev/null; then
  log "installing wrk (apt-get)"
  { apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }; } > "$BW/apt.log" 2>&1 \
    || { log "cannot install wrk"; cat "$BW/apt.log" >&2; exit 1; }
fi

# An IncidentV2-shaped payload of about 1.5 KB.
cat > "$BW/template.json" <<'EOF'
{"reference":"INC-4242","name":"Payments failing at checkout: PaymentGatewayTimeout (upstream 504)","mode":"standard","visibility":"public","summary":"Service: payments-api\nError: PaymentGatewayTimeout: upstream 504 from acquirer-eu (POST /v3/authorisations, 2000ms)\n\n**Impact**\n- about 30% of card payments fail at checkout\n- retries succeed after 10-20 s\n\nDashboard: https://grafana.example/d/payments","incident_status":{"id":"01J7ZFCB47FMCDANZ5C79QTN4H","name":"Investigating","category":"live","rank":2},"severity":{"id":"01JRDH7VNSS2ZRQDVZCF55EX20","name":"Critical","rank":4},"incident_type":{"id":"01J9JTEX4N4F7DDS0GFYMXAYH8","name":"Default","create_in_triage":"optional","private_incidents_only":false},"creator":{"alert":{"id":"01JALERT0000000000000000001","title":"payments-api 5xx > 5%"}},"slack_channel_id":"C06X1HEBMR8","slack_channel_name":"inc-4242-payments-failing","slack_team_id":"T04ACMEPAY","permalink":"https://app.incident.io/acme-pay/incidents/4242","call_url":"https://meet.example/inc-4242","created_at":"2026-01-01T10:00:00.000000Z","updated_at":"2026-01-01T10:00:00.000000Z","custom_field_entries":[],"incident_role_assignments":[],"incident_timestamp_values":[],"duration_metrics":[],"has_debrief":false}
EOF

# fox: incident.io answers only after 120 s, one investigation at a time.
start_fake incidentio --seed empty --no-rate-limit --latency-ms 120000
write_config "$BW/fox.conf.lua" 1
sed -i 's/log_level = "[a-z]*"/log_level = "info"/' "$BW/fox.conf.lua"
start_fox "$BW/fox.conf.lua"
node "$ROOT/bench/node_receiver.js" --port-file "$BW/node.port" --parent-pid $$ > "$BW/node.log" 2>&1 &
NODE_PID=$!
BENCH_PIDS+=($NODE_PID)
wait_file "$BW/node.port" 10 || { log "the Node receiver did not start"; exit 1; }
NODE_URL="http://127.0.0.1:$(head -1 "$BW/node.port")"

metric() { # NAME: a sample of fox's /metrics (0 when absent)
  curl -fsS "$FOX_URL/metrics" | awk -v n="$1" '$1 == n { v = $2 } END { print v + 0 }'
}

# One synchronous write's latency on the filesystem of the state directory ($BW).
dsync_ms=$(dd if=/dev/zero of="$BW/dsync.test" bs=4k count=500 oflag=dsync 2>&1 \
  | awk '/copied/ { for (i = 1; i <= NF; i++) if ($i ~ /^s,?$/) s = $(i - 1); print s * 1000 / 500 }')
rm -f "$BW/dsync.test"

run_wrk() { # NAME URL PID
  local name=$1 url=$2 pid=$3 lines c0 c1
  # enough unique deliveries for 30k/s; a fresh timestamp for each run
  lines=$(( DUR * 30000 ))
  node "$ROOT/bench/webhooks.js" gen --count "$lines" --template "$BW/template.json" --out "$BW/$name.tsv"
  # a short warm-up with other ids (connections, caches, JIT), then the measured run
  node "$ROOT/bench/webhooks.js" gen --count 2000 --template "$BW/template.json" --out "$BW/$name.warm.tsv"
  wrk -t1 -c"$CONNS" -d2s -s "$ROOT/bench/wrk_webhooks.lua" "$url/webhooks/incident-io" -- "$BW/$name.warm.tsv" > /dev/null
  c0=$(cpu_ms "$pid")
  [ "$name" = fox ] && { k0=$(metric fox_state_group_commits_total); w0=$(metric fox_state_group_writes_total); }
  wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -s "$ROOT/bench/wrk_webhooks.lua" "$url/webhooks/incident-io" \
    -- "$BW/$name.tsv" > "$BW/$name.wrk" 2>&1
  c1=$(cpu_ms "$pid")
  [ "$name" = fox ] && { k1=$(metric fox_state_group_commits_total); w1=$(metric fox_state_group_writes_total); }
  grep WRK_RESULT "$BW/$name.wrk" | sed 's/^WRK_RESULT //' | tr ' ' '\n' > "$BW/$name.kv"
  echo "cpu_ms=$((c1 - c0))" >> "$BW/$name.kv"
  log "$name: $(tr '\n' ' ' < "$BW/$name.kv")"
}
kv() { awk -F= -v k="$2" '$1 == k { print $2 }' "$BW/$1.kv"; }

SIDES=${INGEST_SIDES:-fox node}
run_wrk fox "$FOX_URL" "$FOX_PID"
case " $SIDES " in *" node "*) run_wrk node "$NODE_URL" "$NODE_PID" ;; esac

accepted=$(curl -fsS "$FOX_URL/metrics" | awk '/^fox_webhooks_total\{outcome="accepted"\}/ { print $2 }')
for side in $SIDES; do
  for k in rps p50_ms p90_ms p99_ms max_ms requests errors non2xx repeated cpu_ms; do
    result "ingest_${side}_$k" "$(kv $side $k)"
  done
done
result ingest_fox_accepted_total "${accepted:-0}"
result ingest_fox_group_commits "$((k1 - k0))"
result ingest_fox_writes_per_commit "$(awk -v w=$((w1 - w0)) -v k=$((k1 - k0)) 'BEGIN { printf "%.1f", k ? w / k : 0 }')"
result ingest_disk_dsync_write_ms "$dsync_ms"
result ingest_seconds "$DUR"
result ingest_connections "$CONNS"
for side in $SIDES; do
  result "ingest_${side}_cpu_us_per_request" "$(awk -v c="$(kv $side cpu_ms)" -v n="$(kv $side requests)" 'BEGIN { printf "%.1f", c * 1000 / n }')"
done
[ "$SIDES" = fox ] && exit 0
result ingest_ratio "$(awk -v a="$(kv fox rps)" -v b="$(kv node rps)" 'BEGIN { printf "%.2f", a / b }')"
