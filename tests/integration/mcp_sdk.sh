#!/bin/sh
# Interoperability: the official MCP TypeScript SDK client (tests/mcp-client, installed
# here with npm when missing) against `fox mcp` over stdio and against the Streamable
# HTTP transport (POST /mcp), with the fake incident.io behind fox. Every tool is called
# through MCP and compared with what `fox tool` prints.
# usage: FOX=build/fox sh tests/integration/mcp_sdk.sh   (ends with "mcp_sdk: N passed, N failed")
FOX=${FOX:-build/fox}
case "$FOX" in /*) ;; *) FOX="$(pwd)/$FOX" ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CLIENT="$ROOT/tests/mcp-client"
tmp=$(mktemp -d)
passed=0
failed=0
fake_pid=
http_pid=

cleanup() {
  [ -n "$http_pid" ] && kill "$http_pid" 2>/dev/null
  [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

fail() {
  echo "not ok - $1"
  failed=$((failed + 1))
}

# Adds the "# MODE: N passed, N failed" line of the client's output to the totals.
count() {
  line=$(sed -nE 's/^# [a-z]+: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$1" | tail -n 1)
  if [ -z "$line" ]; then
    fail "$2: the client printed no result"
    return
  fi
  set -- $line
  passed=$((passed + $1))
  failed=$((failed + $2))
}

# Bounds for hung processes only (a normal run takes seconds; under ASan on a loaded
# machine several times that). Both modes together stay under run-tests.sh's 300 s.
MCP_SDK_TIMEOUT_S=${MCP_SDK_TIMEOUT_S:-100}
export MCP_SDK_TIMEOUT_S
client_timeout=$((MCP_SDK_TIMEOUT_S + 10))

# wait_file FILE PID: waits until the process PID wrote FILE (its readiness signal);
# fails at once when PID has exited, else after 60 s.
wait_file() {
  i=0
  while [ ! -s "$1" ] && [ $i -lt 600 ]; do
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
    i=$((i + 1))
  done
  [ -s "$1" ]
}

finish() {
  echo "mcp_sdk: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  fail "node and npm are needed for the MCP SDK interoperability test"
  finish
fi
if [ ! -f "$CLIENT/node_modules/@modelcontextprotocol/sdk/package.json" ]; then
  echo "== installing the MCP TypeScript SDK (npm ci in tests/mcp-client)"
  if ! (cd "$CLIENT" && npm ci --no-audit --no-fund --loglevel=error >"$tmp/npm.log" 2>&1); then
    tail -n 20 "$tmp/npm.log"
    fail "npm ci in tests/mcp-client"
    finish
  fi
fi

node "$ROOT/tests/fakes/incidentio/server.js" --port 0 --port-file "$tmp/fake.port" \
  --parent-pid $$ >"$tmp/fake.log" 2>&1 &
fake_pid=$!
if ! wait_file "$tmp/fake.port" "$fake_pid"; then
  cat "$tmp/fake.log"
  fail "the fake incident.io did not start"
  finish
fi
INCIDENT_IO_BASE_URL="http://127.0.0.1:$(cat "$tmp/fake.port")"
INCIDENT_IO_API_KEY=test-viewer-key
export INCIDENT_IO_BASE_URL INCIDENT_IO_API_KEY
unset INCIDENT_IO_API_KEY_FILE INCIDENT_IO_WRITE_API_KEY INCIDENT_IO_WRITE_API_KEY_FILE

cd "$ROOT" || exit 1

# 1. stdio: the SDK spawns `fox mcp` itself.
timeout "$client_timeout" node "$CLIENT/interop.mjs" stdio "$FOX" >"$tmp/stdio.out" 2>&1
cat "$tmp/stdio.out"
count "$tmp/stdio.out" stdio

# 2. Streamable HTTP: /mcp mounted on a fox HTTP server, as `fox serve` does.
FOX_MCP_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export FOX_MCP_TOKEN
"$FOX" run "$CLIENT/serve_http.lua" "$tmp/http.port" >"$tmp/http.log" 2>&1 &
http_pid=$!
if wait_file "$tmp/http.port" "$http_pid"; then
  url="http://127.0.0.1:$(cat "$tmp/http.port")/mcp"
  timeout "$client_timeout" node "$CLIENT/interop.mjs" http "$url" "$FOX_MCP_TOKEN" "$FOX" >"$tmp/http.out" 2>&1
  cat "$tmp/http.out"
  count "$tmp/http.out" http
  # The HTTP rules that need no SDK: 401 without the token or with a wrong one, 405 for
  # GET, 403 for a foreign Origin, 400 for a request outside a session.
  ping='{"jsonrpc":"2.0","id":1,"method":"ping"}'
  json_ct="Content-Type: application/json"
  auth="Authorization: Bearer $FOX_MCP_TOKEN"
  http_check() {
    want=$1 name=$2
    shift 2
    got=$(curl -s --max-time 60 -o "$tmp/http.body" -w '%{http_code}' "$@" "$url")
    if [ "$got" = "$want" ]; then
      echo "ok - http: $name -> $want"
      passed=$((passed + 1))
    else
      fail "http: $name: want $want, got $got: $(head -c 300 "$tmp/http.body")"
    fi
  }
  http_check 401 "no token" -X POST -H "$json_ct" -d "$ping"
  http_check 401 "a wrong token" -X POST -H "$json_ct" -H "Authorization: Bearer wrong" -d "$ping"
  http_check 405 "GET" -H "$auth"
  http_check 403 "a foreign Origin" -X POST -H "$json_ct" -H "$auth" -H "Origin: http://evil.example" -d "$ping"
  http_check 400 "no session" -X POST -H "$json_ct" -H "$auth" -d "$ping"
  http_check 404 "an unknown session" -X POST -H "$json_ct" -H "$auth" -H "Mcp-Session-Id: 00ff" -d "$ping"
  http_check 400 "invalid JSON" -X POST -H "$json_ct" -H "$auth" -d '{"jsonrpc":'
  kill "$http_pid" 2>/dev/null
  wait "$http_pid" 2>/dev/null
  http_pid=
else
  cat "$tmp/http.log"
  fail "the MCP HTTP host did not start"
fi

finish
