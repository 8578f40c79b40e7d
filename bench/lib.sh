# Shared by the bench scripts (sourced, not run). Every wait here is bounded.
#
#   bench_init NAME        work directory $BW (removed at exit unless BENCH_KEEP=1),
#                          $FOX, $ROOT, $RESULTS_DIR; a trap that stops what we started
#   start_fake KIND ARGS   starts tests/fakes/KIND/server.js (or bench/fakes/KIND.js) on a
#                          free port; sets ${KIND}_URL and remembers the pid
#   start_all_fakes LAT    the incident.io, Slack and six evidence-source fakes, LAT ms each
#   write_config FILE      a fox.conf.lua using the fakes
#   start_fox ARGS         `fox serve` in the background; sets FOX_PID, FOX_URL
#   sign_webhook ...       Standard Webhooks headers (see below)
#   cpu_ms PID             utime+stime of PID in milliseconds (/proc/PID/stat)
#   rss_kib PID [field]    VmRSS (or VmHWM...) of PID in KiB
#   now_ms                 wall clock in ms (date +%s%3N)
#   result KEY VALUE       appends "KEY=VALUE" to $RESULTS_DIR/NAME.env for run.sh
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
FOX="$BUILD/fox"
RESULTS_DIR=${RESULTS_DIR:-"$ROOT/bench/out"}
WEBHOOK_SECRET="whsec_$(printf 'fox-bench-webhook-secret-32bytes' | base64 -w0)"
export INCIDENT_IO_API_KEY=test-viewer-key
export SLACK_BOT_TOKEN=xoxb-test-token
export GITHUB_TOKEN=ghp_fox_test_token
export INCIDENT_IO_WEBHOOK_SECRET="$WEBHOOK_SECRET"

BENCH_PIDS=()

now_ms() { date +%s%3N; }

log() { printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "${BENCH_NAME:-bench}" "$*" >&2; }

bench_cleanup() {
  local p
  for p in "${BENCH_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${BENCH_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$p" 2>/dev/null
  done
  if [ "${BENCH_KEEP:-0}" != 1 ] && [ -n "${BW:-}" ]; then rm -rf "$BW"; fi
}

bench_init() {
  BENCH_NAME=$1
  BW=$(mktemp -d "/tmp/fox-bench-$1.XXXXXX")
  mkdir -p "$RESULTS_DIR"
  : > "$RESULTS_DIR/$1.env"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  [ -x "$FOX" ] || { log "no $FOX: run make first"; exit 1; }
}

result() { printf '%s=%s\n' "$1" "$2" >> "$RESULTS_DIR/$BENCH_NAME.env"; }

# wait_file FILE SECONDS: until FILE exists and is non-empty.
wait_file() {
  local i n=$(( $2 * 50 ))
  for ((i = 0; i < n; i++)); do
    [ -s "$1" ] && return 0
    sleep 0.02
  done
  return 1
}

# start_fake KIND [ARGS...]: KIND is a directory of tests/fakes, or prometheus.
start_fake() {
  local kind=$1; shift
  local script="$ROOT/tests/fakes/$kind/server.js"
  [ "$kind" = prometheus ] && script="$ROOT/bench/fakes/prometheus.js"
  local pf="$BW/$kind.port"
  rm -f "$pf"
  node "$script" --port 0 --port-file "$pf" --parent-pid $$ "$@" > "$BW/$kind.log" 2>&1 &
  BENCH_PIDS+=($!)
  eval "${kind^^}_PID=$!"
  if ! wait_file "$pf" 20; then
    log "the $kind fake did not start:"; cat "$BW/$kind.log" >&2; exit 1
  fi
  eval "${kind^^}_URL=http://127.0.0.1:$(head -1 "$pf")"
}

FAKE_KINDS="incidentio slack prometheus loki elasticsearch github cd"

# start_all_fakes LATENCY_MS [incident.io seed]: every fake, with a latency per answer.
start_all_fakes() {
  local lat=$1 seed=${2:-demo}
  local at; at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  start_fake incidentio --seed "$seed" --now "$at" --no-rate-limit --latency-ms "$lat"
  start_fake slack --seed "$seed" --now "$at" --any-channel --no-rate-limit --latency-ms "$lat"
  start_fake prometheus --now "$at" --latency-ms "$lat"
  start_fake loki --now "$at" --latency-ms "$lat"
  start_fake elasticsearch --now "$at" --latency-ms "$lat"
  start_fake github --now "$at" --latency-ms "$lat"
  start_fake cd --now "$at" --latency-ms "$lat"
}

# set_latency MS: every fake's latency, through its control API.
set_latency() {
  local k url
  for k in $FAKE_KINDS; do
    eval "url=\${${k^^}_URL}"
    curl -fsS -X POST -H 'Content-Type: application/json' -d "{\"latency_ms\": $1}" "$url/_fake/config" > /dev/null
  done
}

# clear_requests: empties every fake's request log.
clear_requests() {
  local k url
  for k in $FAKE_KINDS; do
    eval "url=\${${k^^}_URL}"
    curl -fsS -X DELETE "$url/_fake/requests" > /dev/null
  done
}

# write_config FILE [concurrency] [extra lua]: fox.conf.lua pointing at the fakes.
# LOG_CAP=N (env) caps what the log sources read: N lines per service (default: the
# sources' own limits, 1000 a page and 5000 lines for Loki, 2000 hits for Elasticsearch).
# BENCH_PLAYBOOK=NAME uses bench/playbooks/NAME.lua as the playbook.
# BENCH_PROFILE=FILE runs the playbook under the profiler (bench/playbooks/profiled.lua),
# its report in FILE. INV_TIMEOUT: investigation_timeout (default 60 s).
write_config() {
  local LOG_CAP_LOKI="" LOG_CAP_ES=""
  if [ -n "${LOG_CAP:-}" ]; then
    LOG_CAP_LOKI=", limit = $LOG_CAP, max_lines = $LOG_CAP"
    LOG_CAP_ES=", max_hits = $LOG_CAP"
  fi
  local PROFILE=""
  if [ -n "${BENCH_PLAYBOOK:-}" ]; then
    PROFILE="playbook = \"$ROOT/bench/playbooks/$BENCH_PLAYBOOK.lua\","
  fi
  if [ -n "${BENCH_PROFILE:-}" ]; then
    PROFILE="playbook = \"$ROOT/bench/playbooks/profiled.lua\", playbook_options = { profile_out = \"$BENCH_PROFILE\" },"
  fi
  cat > "$1" <<EOF
-- written by bench/lib.sh
return {
  listen = "127.0.0.1:0",
  state_dir = "$BW/state",
  webhook_secret = env("INCIDENT_IO_WEBHOOK_SECRET"),
  poll = false,
  concurrency = ${2:-8},
  investigation_timeout = ${INV_TIMEOUT:-60},
  log_level = "${FOX_BENCH_LOG_LEVEL:-warn}",
  incidentio = { base_url = "${INCIDENTIO_URL:-http://127.0.0.1:9}", timeout = 30 },
  slack = { base_url = "${SLACK_URL:-http://127.0.0.1:9}/api", investigating_message = true },
  channel_retries = 0,
  source_timeout = 30,
  sources = {
    prometheus = { url = "${PROMETHEUS_URL:-http://127.0.0.1:9}" },
    loki = { url = "${LOKI_URL:-http://127.0.0.1:9}"$LOG_CAP_LOKI },
    elasticsearch = { url = "${ELASTICSEARCH_URL:-http://127.0.0.1:9}"$LOG_CAP_ES },
    github = { api_url = "${GITHUB_URL:-http://127.0.0.1:9}", repos = {
      ["payments-api"] = "acme/payments-api", ["checkout-service"] = "acme/checkout-service" } },
    changes = { url = "${CD_URL:-http://127.0.0.1:9}/changes" },
    similar = { time_range = "90d" },
  },
  $PROFILE
  ${3:-}
}
EOF
}

# start_fox CONFIG [serve args...]: sets FOX_PID, FOX_PORT, FOX_URL once the port file
# is written (fox is ready). FOX_PRELOAD: an LD_PRELOAD for fox only (bench/experiment.sh).
start_fox() {
  local cfg=$1; shift
  rm -f "$BW/fox.port"
  LD_PRELOAD="${FOX_PRELOAD:-}" "$FOX" serve --config "$cfg" --port-file "$BW/fox.port" "$@" \
    > "$BW/fox.out" 2> "$BW/fox.err" &
  FOX_PID=$!
  BENCH_PIDS+=($FOX_PID)
  if ! wait_file "$BW/fox.port" 20; then
    log "fox serve did not start:"; cat "$BW/fox.err" >&2; exit 1
  fi
  FOX_PORT=$(head -1 "$BW/fox.port")
  FOX_URL="http://127.0.0.1:$FOX_PORT"
}

stop_pid() {
  local p=$1 i
  kill "$p" 2>/dev/null || return 0
  for ((i = 0; i < 200; i++)); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.05; done
  kill -9 "$p" 2>/dev/null
  return 0
}

cpu_ms() {
  # fields 14 and 15 of /proc/PID/stat (after the command in parentheses), in ticks
  local tck; tck=$(getconf CLK_TCK)
  awk -v t="$tck" '{ sub(/^.*\) /, ""); print int(($12 + $13) * 1000 / t) }' "/proc/$1/stat"
}

rss_kib() {
  awk -v f="${2:-VmRSS}:" '$1 == f { print $2 }' "/proc/$1/status"
}

# machine description for RESULTS.md
machine() {
  printf 'nproc %s; %s; %s MiB memory; Linux %s' "$(nproc)" \
    "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
    "$(awk '/^MemTotal/ { print int($2 / 1024) }' /proc/meminfo)" "$(uname -r)"
}

# finished_count: investigations fox finished (completed + failed + skipped), from /metrics.
finished_count() {
  curl -fsS --max-time 5 "$FOX_URL/metrics" 2>/dev/null | awk '
    /^fox_investigations_(completed|skipped)_total/ { n += $NF }
    /^fox_investigations_failed_total/ { n += $NF }
    END { print n + 0 }'
}

# wait_finished N SECONDS [STEP]: until finished_count >= N; fails on timeout.
wait_finished() {
  local deadline=$(( $(now_ms) + $2 * 1000 )) step=${3:-0.02}
  while [ "$(finished_count)" -lt "$1" ]; do
    [ "$(now_ms)" -ge "$deadline" ] && return 1
    sleep "$step"
  done
  return 0
}

# failed_count: investigations that failed (any reason).
failed_count() {
  curl -fsS --max-time 5 "$FOX_URL/metrics" 2>/dev/null | awk '
    /^fox_investigations_failed_total/ { n += $NF } END { print n + 0 }'
}

# median of numbers on stdin; pct P of numbers on stdin (nearest rank)
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
pct() { sort -n | awk -v p="$1" '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } i = int(p / 100 * NR + 0.999999); if (i < 1) i = 1; print a[i] }'; }
