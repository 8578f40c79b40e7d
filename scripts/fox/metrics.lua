-- Metrics in the Prometheus text format (version 0.0.4).
--
-- Counters and histograms live in the shared dictionary (fox.shared), so they survive
-- hot reload and every generation adds to the same numbers; gauges are computed when
-- /metrics is scraped (collectors). Names and help texts are declared in FAMILIES.
--
--   metrics.inc(name [, labels [, delta]])
--   metrics.observe(name, labels, value)      histogram (buckets of the family)
--   metrics.get(name [, labels])              current counter value (tests, /healthz)
--   metrics.render(gauges)                    -> text; gauges: array of
--       {name=, help=, type="gauge", samples={{labels=, value=}, ...}}
--   metrics.listener()                        the HTTP listener's families (C counters),
--                                             which render always adds
local http = require("fox.http")
local shared = require("fox.shared")

local M = {}

local PREFIX = "m|"

M.DURATION_BUCKETS = { 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300 }

-- Every family fox exports: type and help.
M.FAMILIES = {
  fox_investigations_started_total = { "counter", "Investigations started (each attempt)." },
  fox_investigations_completed_total = { "counter", "Investigations that finished and recorded their result." },
  fox_investigations_failed_total = { "counter",
    "Investigations that failed (error, deadline, incident not fetched), by reason." },
  fox_investigations_skipped_total = { "counter", "Incidents not investigated because of the skip policy." },
  fox_investigation_duration_seconds = { "histogram", "Wall time of investigations, by outcome.",
    buckets = M.DURATION_BUCKETS },
  fox_webhooks_total = { "counter", "Webhook deliveries by outcome." },
  fox_incidents_queued_total = { "counter", "Incidents queued for investigation, by source." },
  fox_incidentio_requests_total = { "counter", "incident.io API calls by endpoint and status (after retries)." },
  fox_incidentio_rate_limit_waits_total = { "counter", "Times an incident.io call waited for the rate limit." },
  fox_incidentio_rate_limit_wait_seconds_total = { "counter", "Seconds spent waiting for the incident.io rate limit." },
  fox_polls_total = { "counter", "Polls of incident.io by outcome." },
  fox_http_requests_total = { "counter", "Requests to fox's HTTP listener by path and status." },
}

local function escape(v)
  return (tostring(v):gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub("\"", "\\\""))
end

-- Canonical label text: sorted k="v" pairs joined by commas ("" when none).
local function label_text(labels)
  if not labels then return "" end
  local keys = {}
  for k in pairs(labels) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=\"" .. escape(labels[k]) .. "\"" end
  return table.concat(parts, ",")
end
M.label_text = label_text

-- Keys of counters with one or two string labels, memoised: every webhook delivery
-- bumps three counters, and building a key (sort, escape, concat) costs more than the
-- increment. Nested by name, then each label name and value in the order pairs() gives
-- them (any order maps to the same canonical key), so a lookup allocates nothing.
-- Bounded: past KEY_CACHE_MAX keys, new ones are built each time.
local KEY_CACHE_MAX = 4096
local key_cache, key_cache_size = {}, 0

local function build_key(name, labels)
  return PREFIX .. name .. "|" .. label_text(labels)
end

-- t[a][b]..., creating the levels.
local function level(t, k)
  local sub = t[k]
  if not sub then
    sub = {}
    t[k] = sub
  end
  return sub
end

local function key_of(name, labels)
  if not labels then return build_key(name) end
  local k1, v1 = next(labels)
  if type(v1) ~= "string" then return build_key(name, labels) end
  local k2, v2 = next(labels, k1)
  if k2 == nil then
    k2, v2 = "", ""
  elseif type(v2) ~= "string" or next(labels, k2) ~= nil then
    return build_key(name, labels)
  end
  local n = key_cache[name]
  n = n and n[k1]
  n = n and n[v1]
  n = n and n[k2]
  local key = n and n[v2]
  if key then return key end
  key = build_key(name, labels)
  if key_cache_size < KEY_CACHE_MAX then
    key_cache_size = key_cache_size + 1
    level(level(level(level(key_cache, name), k1), v1), k2)[v2] = key
  end
  return key
end

--- Adds delta (default 1) to a counter.
function M.inc(name, labels, delta)
  shared.incr(key_of(name, labels), delta or 1, 0)
end

function M.get(name, labels)
  return shared.get(key_of(name, labels)) or 0
end

--- Records one observation in a histogram.
function M.observe(name, labels, value)
  local fam = M.FAMILIES[name]
  local buckets = fam and fam.buckets or M.DURATION_BUCKETS
  local lt = label_text(labels)
  local sep = lt == "" and "" or ","
  -- Every bucket is written (0 when the value is above it) so each series of the
  -- histogram has all its buckets.
  for _, le in ipairs(buckets) do
    shared.incr(PREFIX .. name .. "_bucket|" .. lt .. sep .. "le=\"" .. le .. "\"", value <= le and 1 or 0, 0)
  end
  shared.incr(PREFIX .. name .. "_bucket|" .. lt .. sep .. "le=\"+Inf\"", 1, 0)
  shared.incr(PREFIX .. name .. "_sum|" .. lt, value, 0)
  shared.incr(PREFIX .. name .. "_count|" .. lt, 1, 0)
end

local function number_text(v)
  if math.type(v) == "integer" then return tostring(v) end
  if v ~= v then return "NaN" end
  if v == math.huge then return "+Inf" end
  if v == -math.huge then return "-Inf" end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
  return string.format("%.17g", v)
end

-- The family a sample name belongs to (histogram suffixes stripped).
local function family_of(sample)
  if M.FAMILIES[sample] then return sample end
  for _, suffix in ipairs({ "_bucket", "_sum", "_count" }) do
    local base = sample:sub(1, -#suffix - 1)
    if sample:sub(-#suffix) == suffix and M.FAMILIES[base] then return base end
  end
  return sample
end

local function le_value(labels)
  local le = labels:match('le="([^"]*)"')
  if not le then return -1 end
  if le == "+Inf" then return math.huge end
  return tonumber(le) or -1
end

--- The HTTP listener's own numbers, kept in C (fox.http.stats): what it refused or cut
-- before any request reached a handler, so no Lua counter sees them.
function M.listener()
  local st = http.stats()
  local replies = { { labels = { status = "413" }, value = st.listener_replies[413] or 0 } }
  for status, n in pairs(st.listener_replies) do
    if status ~= 413 then replies[#replies + 1] = { labels = { status = tostring(status) }, value = n } end
  end
  table.sort(replies, function(a, b) return a.labels.status < b.labels.status end)
  return {
    { name = "fox_http_connections_open", type = "gauge", help = "Connections open to the HTTP listener.",
      samples = { { value = st.connections } } },
    { name = "fox_http_connections_accepted_total", type = "counter",
      help = "Connections the HTTP listener accepted (within max_connections).",
      samples = { { value = st.connections_accepted } } },
    { name = "fox_http_connections_rejected_total", type = "counter",
      help = "Connections closed at once because max_connections were open.",
      samples = { { labels = { reason = "max_connections" }, value = st.connections_rejected } } },
    { name = "fox_http_requests_timed_out_total", type = "counter",
      help = "Clients cut off for not sending a whole request within request_timeout (slow-loris).",
      samples = { { value = st.requests_timed_out } } },
    { name = "fox_http_listener_replies_total", type = "counter",
      help = "Replies the HTTP listener sent itself, before a handler saw the request "
        .. "(413 body over the listener's cap, 400 malformed, 501 unknown method), by status.",
      samples = replies },
  }
end

--- The whole exposition: shared counters and histograms, the gauges given, then the
-- listener's families.
function M.render(gauges)
  local families, order = {}, {}
  local function family(name, ftype, help)
    local f = families[name]
    if not f then
      local decl = M.FAMILIES[name]
      f = { name = name, type = ftype or (decl and decl[1]) or "untyped",
            help = help or (decl and decl[2]) or name, lines = {} }
      families[name] = f
      order[#order + 1] = name
    end
    return f
  end
  local keys = shared.keys(PREFIX)
  local samples = {}
  for _, k in ipairs(keys) do
    local name, labels = k:match("^m|([^|]+)|(.*)$")
    if name then
      local v = shared.get(k)
      if type(v) == "number" then samples[#samples + 1] = { name = name, labels = labels, value = v } end
    end
  end
  -- Sort by family, then series labels (le removed), then sample kind, then le.
  table.sort(samples, function(a, b)
    local fa, fb = family_of(a.name), family_of(b.name)
    if fa ~= fb then return fa < fb end
    local la, lb = a.labels:gsub(',?le="[^"]*"', ""), b.labels:gsub(',?le="[^"]*"', "")
    if la ~= lb then return la < lb end
    if a.name ~= b.name then
      local rank = { _bucket = 1, _sum = 2, _count = 3 }
      return (rank[a.name:match("_%a+$")] or 0) < (rank[b.name:match("_%a+$")] or 0)
    end
    return le_value(a.labels) < le_value(b.labels)
  end)
  for _, s in ipairs(samples) do
    local f = family(family_of(s.name))
    f.lines[#f.lines + 1] = s.name .. (s.labels ~= "" and ("{" .. s.labels .. "}") or "") .. " " .. number_text(s.value)
  end
  local all = {}
  for _, g in ipairs(gauges or {}) do all[#all + 1] = g end
  for _, g in ipairs(M.listener()) do all[#all + 1] = g end
  for _, g in ipairs(all) do
    local f = family(g.name, g.type or "gauge", g.help)
    for _, s in ipairs(g.samples or {}) do
      local lt = label_text(s.labels)
      f.lines[#f.lines + 1] = g.name .. (lt ~= "" and ("{" .. lt .. "}") or "") .. " " .. number_text(s.value)
    end
  end
  local out = {}
  for _, name in ipairs(order) do
    local f = families[name]
    out[#out + 1] = "# HELP " .. name .. " " .. f.help
    out[#out + 1] = "# TYPE " .. name .. " " .. f.type
    for _, l in ipairs(f.lines) do out[#out + 1] = l end
  end
  return table.concat(out, "\n") .. "\n"
end

--- Removes every counter (tests).
function M.reset()
  for _, k in ipairs(shared.keys(PREFIX)) do shared.delete(k) end
end

return M
