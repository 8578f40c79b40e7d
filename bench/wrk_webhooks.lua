-- wrk script for the webhook-ingest benchmark: each request is the next delivery of a
-- file written by `node bench/webhooks.js gen` (one per line: webhook-id, timestamp,
-- signature, body, tab-separated), so every request has a valid signature and a unique
-- webhook-id. Use one wrk thread (the file is read per thread). After the last line the
-- deliveries start again (then as duplicates) and the summary says how many were.
-- luacheck: globals wrk setup init request response done
--
--   wrk -t1 -c32 -d10s -s bench/wrk_webhooks.lua URL/webhooks/incident-io -- FILE
local deliveries = {}
local n = 0
local i = 0
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    local id, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    if id then
      n = n + 1
      deliveries[n] = wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
        ["webhook-id"] = id,
        ["webhook-timestamp"] = ts,
        ["webhook-signature"] = sig,
      }, body)
    end
  end
  f:close()
end

function request()
  i = i + 1
  return deliveries[(i - 1) % n + 1]
end

function response()
  -- keeps the counts readable from done() (wrk.thread:get)
  wrk.thread:set("i", i)
  wrk.thread:set("n", n)
end

function done(summary, latency)
  local repeated = 0
  for _, t in ipairs(threads) do
    local sent, lines = tonumber(t:get("i")) or 0, tonumber(t:get("n")) or 0
    if sent > lines then repeated = repeated + sent - lines end
  end
  io.write(string.format("WRK_RESULT repeated=%d requests=%d duration_us=%d rps=%.1f p50_ms=%.3f "
    .. "p90_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%d non2xx=%d\n",
    repeated, summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
