#!/bin/sh
# `make demo`: fox end to end on this machine, in well under a minute, with nothing
# left running afterwards.
#
#   1. starts the fakes with the demo scenario: incident.io (INC-2 in payments-api,
#      created 20 minutes ago, 20 minutes after a deploy; INC-1, the same failure last
#      month, resolved by a rollback), Slack, GitHub and Loki; and a real Prometheus
#      loaded with the demo metrics when the machine has one
#   2. writes a config and runs `fox serve` against them
#   3. delivers a signed incident.io webhook (Standard Webhooks, signed here with node's
#      crypto, independently of fox), waits for fox's findings in the incident's Slack
#      channel and prints them as text; delivers it again to show nothing is posted twice
#   4. prints the same findings with `fox investigate INC-2 --dry-run`
#   5. says how to point fox at a real incident.io account, and cleans up
#
# usage: scripts/demo.sh [BUILD_DIR]      (make demo runs it after building)
set -eu

BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
FOX="$ROOT/$BUILD/fox"
[ -x "$FOX" ] || { echo "demo: $FOX is missing; run 'make' first" >&2; exit 1; }
command -v node >/dev/null 2>&1 || { echo "demo: node is needed for the fakes (make deps installs it)" >&2; exit 1; }

START=$(date +%s)
DIR=$(mktemp -d "${TMPDIR:-/tmp}/fox-demo.XXXXXX")
PIDS=""
PROM_DIR=""
SERVE_PID=""

cleanup() {
  status=$?
  trap - EXIT INT TERM
  if [ -n "$SERVE_PID" ] && kill -0 "$SERVE_PID" 2>/dev/null; then
    kill -TERM "$SERVE_PID" 2>/dev/null || true
    i=0
    while kill -0 "$SERVE_PID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    kill -9 "$SERVE_PID" 2>/dev/null || true
  fi
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  for p in $PIDS; do
    i=0
    while kill -0 "$p" 2>/dev/null && [ $i -lt 40 ]; do sleep 0.05; i=$((i + 1)); done
    kill -9 "$p" 2>/dev/null || true
  done
  [ -n "$PROM_DIR" ] && rm -rf "$PROM_DIR"
  if [ "${FOX_DEMO_KEEP:-}" = "" ]; then rm -rf "$DIR"; else echo "demo files kept in $DIR"; fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# wait_port FILE NAME: waits (at most 20 s) for a fake's port file; prints the port.
wait_port() {
  i=0
  while [ ! -s "$1" ]; do
    i=$((i + 1))
    if [ $i -gt 400 ]; then echo "demo: $2 did not start; its log:" >&2; cat "$DIR/$2.log" >&2; exit 1; fi
    sleep 0.05
  done
  head -n 1 "$1"
}

# start_fake NAME ARGS...: starts tests/fakes/NAME/server.js; sets PORT.
start_fake() {
  name=$1
  shift
  node "tests/fakes/$name/server.js" --port 0 --port-file "$DIR/$name.port" --parent-pid $$ "$@" \
    > "$DIR/$name.log" 2>&1 &
  PIDS="$PIDS $!"
  PORT=$(wait_port "$DIR/$name.port" "$name")
}

NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
NOW_EPOCH=$(date -u +%s)
INCIDENT_AT=$((NOW_EPOCH - 1200))
SECRET="whsec_ZGVtby13ZWJob29rLXNlY3JldC1mb3ItZm94"   # base64("demo-webhook-secret-for-fox")

say "1. the demo scenario"
start_fake incidentio --seed demo --now "$NOW"
INCIDENTIO="http://127.0.0.1:$PORT"
start_fake slack --seed demo --now "$NOW" --incidentio-url "$INCIDENTIO"
SLACK="http://127.0.0.1:$PORT"
start_fake github --scenario demo --now "$NOW"
GITHUB="http://127.0.0.1:$PORT"
start_fake loki --scenario demo --now "$NOW"
LOKI="http://127.0.0.1:$PORT"
echo "fake incident.io  $INCIDENTIO   (INC-2 in payments-api, created 20 min ago; INC-1 last month)"
echo "fake Slack        $SLACK"
echo "fake GitHub       $GITHUB   (acme/payments-api: v2.35.0 deployed 20 min before INC-2)"
echo "fake Loki         $LOKI"

PROMETHEUS=""
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  if "$FOX" run tests/lua/helpers/prometheus.lua --scenario demo --now "$NOW_EPOCH" --incident-at "$INCIDENT_AT" \
      --port-file "$DIR/prometheus.port" --parent-pid $$ > "$DIR/prometheus.out" 2>&1; then
    PROMETHEUS="http://127.0.0.1:$(head -n 1 "$DIR/prometheus.port")"
    PROM_PID=$(sed -n 's/.*, pid \([0-9]*\)).*/\1/p' "$DIR/prometheus.out")
    PROM_DIR=$(sed -n 's/.*(data in \(.*\), pid [0-9]*).*/\1/p' "$DIR/prometheus.out")
    [ -n "$PROM_PID" ] && PIDS="$PIDS $PROM_PID"
    echo "Prometheus        $PROMETHEUS   (real, with the demo metrics: payments-api 5xx up 10x after the deploy)"
  else
    echo "Prometheus could not start (the metrics source is left out):" >&2
    tail -n 5 "$DIR/prometheus.out" >&2
  fi
else
  echo "Prometheus is not installed (apt-get install prometheus): the metrics source is left out"
fi

say "2. fox serve"
PROM_SOURCE=""
[ -n "$PROMETHEUS" ] && PROM_SOURCE="prometheus = { url = env(\"PROMETHEUS_URL\") },"
cat > "$DIR/fox.conf.lua" <<EOF
-- The demo's config. Secrets and addresses come from the environment (env()).
return {
  listen = "127.0.0.1:0",
  state_dir = "$DIR/state",
  custom_context = "Our critical services are payments-api, checkout-service, and user-auth. "
    .. "High severity incidents automatically page the SRE on-call team.",
  sources = {
    $PROM_SOURCE
    loki = { url = env("LOKI_URL") },
    github = { repos = { ["payments-api"] = "acme/payments-api" } },
  },
  -- no write key: the findings message is pinned, and incident.io puts it on the timeline
  timeline = { mode = "auto" },
}
EOF
export INCIDENT_IO_BASE_URL="$INCIDENTIO" INCIDENT_IO_API_KEY=test-viewer-key
export INCIDENT_IO_WEBHOOK_SECRET="$SECRET"
export SLACK_API_URL="$SLACK/api" SLACK_BOT_TOKEN=xoxb-test-token
export GITHUB_API_URL="$GITHUB" GITHUB_TOKEN=ghp_fox_test_token
export LOKI_URL="$LOKI" PROMETHEUS_URL="$PROMETHEUS"
unset INCIDENT_IO_WRITE_API_KEY FOX_AI_ENABLED 2>/dev/null || true
"$FOX" serve --config "$DIR/fox.conf.lua" --port-file "$DIR/fox.port" > "$DIR/fox.log" 2>&1 &
SERVE_PID=$!
FOX_URL="http://127.0.0.1:$(wait_port "$DIR/fox.port" fox)"
echo "fox serve         $FOX_URL   (config $DIR/fox.conf.lua)"

say "3. incident.io sends a signed webhook: INC-2 was created"
cat > "$DIR/send-webhook.js" <<'EOF'
// Builds incident.io's incident_created_v2 webhook for an incident of the fake and
// delivers it to fox, signed as Standard Webhooks (Svix) sign: HMAC-SHA256 over
// "id.timestamp.body" keyed with the base64-decoded secret after "whsec_".
const crypto = require('node:crypto');
const [incidentio, number, foxUrl, secret, id] = process.argv.slice(2);
(async () => {
  const r = await fetch(`${incidentio}/v2/incidents/${number}`, { headers: { Authorization: 'Bearer test-viewer-key' } });
  const { incident } = await r.json();
  const type = 'public_incident.incident_created_v2';
  const body = JSON.stringify({ event_type: type, [type]: incident });
  const ts = Math.floor(Date.now() / 1000);
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const sig = crypto.createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64');
  const t0 = process.hrtime.bigint();
  const res = await fetch(`${foxUrl}/webhooks/incident-io`, {
    method: 'POST', body,
    headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': `v1,${sig}` },
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(`POST /webhooks/incident-io  webhook-id ${id}  webhook-signature v1,${sig.slice(0, 12)}...  -> HTTP ${res.status} ${(await res.text()).trim()} in ${ms.toFixed(1)} ms`);
})().catch((e) => { console.error(e); process.exit(1); });
EOF
node "$DIR/send-webhook.js" "$INCIDENTIO" 2 "$FOX_URL" "$SECRET" msg_demo_inc2_created

cat > "$DIR/show.lua" <<'EOF'
-- Waits for fox's findings in the incident's channel (fake Slack), then prints what
-- fox posted there as text.
local http = require("fox.http")
local json = require("fox.json")
local task = require("fox.task")
local render = require("fox.render.slack")
local incidentio, slack, mode = ...
local inc = json.decode(assert(http.request({ url = incidentio .. "/v2/incidents/2",
  headers = { Authorization = "Bearer test-viewer-key" } })).body).incident
local channel = inc.slack_channel_id
local function messages()
  local r = assert(http.request({ url = slack .. "/_fake/messages?channel=" .. channel }))
  return json.decode(r.body).messages
end
local function findings_posts(list)
  local n, last = 0, nil
  for _, m in ipairs(list) do
    if m.text:find("^fox findings") then n, last = n + 1, m end
  end
  return n, last
end
local deadline = task.now() + 40
local list, n, last
repeat
  list = messages()
  n, last = findings_posts(list)
  if n > 0 then break end
  task.sleep(0.1)
until task.now() > deadline
if n == 0 then
  io.stderr:write("no findings in #" .. tostring(inc.slack_channel_name) .. " after 40 s\n")
  os.exit(1)
end
if mode == "count" then
  print(string.format("#%s (%s): %d messages from fox, %d of them the findings", inc.slack_channel_name, channel,
    #list, n))
  return
end
for _, m in ipairs(list) do
  if m ~= last then print("[" .. m.ts .. "] " .. m.text) end
end
print("[" .. last.ts .. "] (the findings, pinned: " .. tostring(last.pinned) .. ")")
print(render.as_text(last))
-- the pinned message on the incident's timeline
local items = json.decode(assert(http.request({ url = incidentio .. "/v2/incident_timeline_items?incident_id=" .. inc.id,
  headers = { Authorization = "Bearer test-viewer-key" } })).body).incident_timeline_items
for _, it in ipairs(items) do
  if it.title:find("incidentfox", 1, true) then print("incident.io timeline of INC-2: \"" .. it.title .. "\" at " .. it.timestamp) end
end
EOF
echo
echo "what fox posted in INC-2's Slack channel:"
"$FOX" run "$DIR/show.lua" "$INCIDENTIO" "$SLACK"

say "   the same delivery again (incident.io retries): nothing is posted twice"
node "$DIR/send-webhook.js" "$INCIDENTIO" 2 "$FOX_URL" "$SECRET" msg_demo_inc2_created
"$FOX" run "$DIR/show.lua" "$INCIDENTIO" "$SLACK" count

say "4. the same findings on a terminal: fox investigate INC-2 --dry-run"
FOX_LOG_LEVEL=warn "$FOX" investigate INC-2 --dry-run --config "$DIR/fox.conf.lua"

ELAPSED=$(( $(date +%s) - START ))
say "5. with a real incident.io account"
cat <<EOF
Everything above ran against fakes on 127.0.0.1 in ${ELAPSED} s. To run fox for real:

  export INCIDENT_IO_API_KEY=...        # a read-only key ("View data"): Settings > API keys
  export INCIDENT_IO_WEBHOOK_SECRET=whsec_...   # Settings > Webhooks (incident created)
  export SLACK_BOT_TOKEN=xoxb-...       # a Slack app with chat:write and pins:write, invited
                                        # to incident channels (or chat:write.public)
  export GITHUB_TOKEN=...               # optional: deployments, PRs and commits
  export INCIDENT_IO_WRITE_API_KEY=...  # optional: timeline entries through the API
                                        # (without it fox pins its findings instead)
  cp examples/fox.conf.lua fox.conf.lua # set custom_context, sources (Prometheus, Loki,
                                        # GitHub repos per service)
  $BUILD/fox doctor                     # checks keys, tokens and connectivity
  $BUILD/fox investigate INC-123 --dry-run   # try it on a past incident
  $BUILD/fox serve                      # and point the incident.io webhook at
                                        # https://<your host>/webhooks/incident-io

Docs: docs/configuration.md (fox serve), docs/playbooks.md (the playbook and its API).
EOF
say "cleaning up"
