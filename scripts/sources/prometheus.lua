-- Prometheus: range queries from per-service templates around the incident start, and
-- which series changed (a step or a spike), when, and by how much.
--
-- config (all optional):
--   url        Prometheus base URL (default $PROMETHEUS_URL, else http://127.0.0.1:9090)
--   token      bearer token (default $PROMETHEUS_TOKEN); headers = extra headers
--              (X-Scope-OrgID for Cortex/Mimir/Thanos tenants)
--   queries    array of {name=, query=, kind=, unit=, min_delta=, direction=} or a map
--              name -> query string; {{service}} and any `vars` are filled in (escaped
--              for a double-quoted string). Default: error_rate, latency_p99, saturation.
--   services   per-service overrides: {["payments-api"] = {vars = {job = "pay"},
--              queries = {...} (replaces), extra_queries = {...} (adds)}}
--   lookback   seconds before the incident start to query (default 3600)
--   step       seconds between points (default: about 200 points over the window)
--   min_ratio  a change is at least this factor up (or down) (default 2)
--   min_points points needed on each side of a change (default 3)
--   max_series series analysed per query (default 10; the rest is counted)
--
-- items: one per series, changed ones first (largest change first):
--   {service, name, kind, unit, query, labels = {...}, status = "changed" | "steady" |
--    "no_data", points, last, baseline,
--    change = {type = "step" | "spike", direction = "up" | "down", at = epoch,
--              at_iso, before, after, ratio (absent when before is 0),
--              from_start = at - incident_start (s; negative: before the incident)}}
local json = require("fox.json")
local task = require("fox.task")
local sys = require("fox.sys")
local http = require("fox.http")
local sources = require("sources")

local M = { name = "prometheus" }

-- Statuses whose answer run_query explains itself (one table for every query).
local QUERY_ACCEPT_STATUS = { [400] = true, [422] = true, [503] = true }

M.DEFAULT_QUERIES = {
  { name = "error_rate", kind = "errors", unit = "ratio", min_delta = 0.001,
    query = 'sum(rate(http_requests_total{service="{{service}}",code=~"5.."}[5m]))'
      .. ' / sum(rate(http_requests_total{service="{{service}}"}[5m]))' },
  { name = "latency_p99", kind = "latency", unit = "s", min_delta = 0.01,
    query = 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket'
      .. '{service="{{service}}"}[5m])))' },
  { name = "saturation", kind = "saturation", unit = "cores", min_delta = 0.05,
    query = 'sum(rate(process_cpu_seconds_total{service="{{service}}"}[5m]))' },
}

local DEFAULT_LOOKBACK = 3600

---------------------------------------------------------------------------
-- change detection (pure)
---------------------------------------------------------------------------

-- The median of a scratch array, which it sorts in place.
local function median_in_place(tmp)
  table.sort(tmp)
  local n = #tmp
  if n == 0 then return nil end
  if n % 2 == 1 then return tmp[(n + 1) // 2] end
  return (tmp[n // 2] + tmp[n // 2 + 1]) / 2
end

local function median(values, i, j)
  local tmp, n = {}, 0
  for k = i, j do n = n + 1; tmp[n] = values[k] end
  return median_in_place(tmp)
end

local function mad(values, i, j, med)
  local dev, n = {}, 0
  local abs = math.abs
  for k = i, j do n = n + 1; dev[n] = abs(values[k] - med) end
  return median_in_place(dev) or 0
end

local function round(x, digits)
  if x == nil then return nil end
  local m = 10 ^ (digits or 4)
  local r = math.floor(x * m + 0.5) / m
  if r == 0 and x ~= 0 then
    return tonumber(string.format("%.3g", x))
  end
  return r
end

--- Finds the change of a series, if any.
-- points: array of {t, v} in time order (finite numbers).
-- opts: min_ratio (2), min_delta (0), min_points (3), incident_start.
-- Returns nil (steady or too short) or {type, direction, at, before, after, ratio}.
function M.detect(points, opts)
  opts = opts or {}
  local min_ratio = opts.min_ratio or 2
  local min_delta = opts.min_delta or 0
  local m = math.max(2, opts.min_points or 3)
  local n = #points
  if n < 2 * m then return nil end
  local v = {}
  for i = 1, n do v[i] = points[i][2] end

  -- The split that best explains the series as two flat segments (least squares).
  local pre, pre2 = { [0] = 0 }, { [0] = 0 }
  for i = 1, n do
    pre[i] = pre[i - 1] + v[i]
    pre2[i] = pre2[i - 1] + v[i] * v[i]
  end
  local best_k, best_cost
  for k = m, n - m do
    local s1, q1, c1 = pre[k], pre2[k], k
    local s2, q2, c2 = pre[n] - pre[k], pre2[n] - pre2[k], n - k
    local cost = (q1 - s1 * s1 / c1) + (q2 - s2 * s2 / c2)
    if not best_cost or cost < best_cost - 1e-12 then best_k, best_cost = k, cost end
  end

  local function verdict(before, after)
    local delta = after - before
    if math.abs(delta) < min_delta or delta == 0 then return nil end
    if delta > 0 then
      if before > 0 and after / before < min_ratio then return nil end
      if before < 0 then return nil end
      return "up"
    end
    if after < 0 or before <= 0 then return nil end
    if after > 0 and before / after < min_ratio then return nil end
    return "down"
  end

  if best_k then
    local before = median(v, 1, best_k)
    local after = median(v, best_k + 1, n)
    local dir = verdict(before, after)
    -- The gap must stand out from the noise of both segments.
    local noise_before = mad(v, 1, best_k, before)
    local noise = math.max(noise_before, mad(v, best_k + 1, n, after))
    if dir and math.abs(after - before) > 3 * noise then
      -- When: the onset, not the middle of the ramp (rate() over 5 m turns a step
      -- into a 5-minute ramp). Walk back from the split while the points still stand
      -- out from the old level.
      local sign = after > before and 1 or -1
      local gap = math.abs(after - before)
      local margin = math.max(3 * noise_before, 0.1 * gap)
      local function departed(i) return (v[i] - before) * sign > margin end
      local at_i = best_k + 1
      while not departed(at_i) and at_i < n do at_i = at_i + 1 end
      while at_i > 1 and departed(at_i - 1) do at_i = at_i - 1 end
      return { type = "step", direction = dir, at = points[at_i][1], before = before, after = after,
               ratio = (before > 0 and after > 0) and (dir == "up" and after / before or before / after) or nil }
    end
  end

  -- A spike: a run of points well above the level of the rest that did not last.
  local base = median(v, 1, n)
  local peak_i
  for i = 1, n do
    if not peak_i or v[i] > v[peak_i] then peak_i = i end
  end
  local peak = v[peak_i]
  if peak - base >= math.max(min_delta, 1e-12) and (base <= 0 or peak / base >= min_ratio) and base >= 0 then
    local threshold = base + (peak - base) / 2
    local first, count = nil, 0
    for i = 1, n do
      if v[i] >= threshold then
        first = first or i
        count = count + 1
      end
    end
    if count >= 2 then
      return { type = "spike", direction = "up", at = points[first][1], before = base, after = peak,
               ratio = base > 0 and peak / base or nil }
    end
  end
  return nil
end

---------------------------------------------------------------------------
-- queries
---------------------------------------------------------------------------

local function normalize_queries(q)
  if q == nil then return M.DEFAULT_QUERIES end
  local out = {}
  if q[1] ~= nil then
    for _, e in ipairs(q) do
      if type(e) == "string" then e = { query = e } end
      out[#out + 1] = e
    end
  else
    for _, name in ipairs(sources.sorted_keys(q)) do
      local e = q[name]
      if type(e) == "string" then e = { query = e } end
      local copy = {}
      for k, val in pairs(e) do copy[k] = val end
      copy.name = copy.name or name
      out[#out + 1] = copy
    end
  end
  for i, e in ipairs(out) do
    e.name = e.name or ("query_" .. i)
    e.kind = e.kind or e.name
  end
  return out
end

-- The queries for one service: its own list, or the common list plus its extras.
local function queries_for(config, service)
  local per = (config.services or {})[service] or {}
  local list = normalize_queries(per.queries or config.queries)
  if per.extra_queries then
    local extra = normalize_queries(per.extra_queries)
    local merged = {}
    for _, q in ipairs(list) do merged[#merged + 1] = q end
    for _, q in ipairs(extra) do merged[#merged + 1] = q end
    list = merged
  end
  return list, per.vars or {}
end

local function parse_points(values)
  local pts = {}
  if type(values) ~= "table" then return pts end
  for _, pair in ipairs(values) do
    if type(pair) == "table" then
      local t = tonumber(pair[1])
      local val = tonumber(pair[2]) -- "NaN", "+Inf", "-Inf" give nil
      if t and val and val == val and val ~= math.huge and val ~= -math.huge then
        pts[#pts + 1] = { t, val }
      end
    end
  end
  return pts
end

local function label_text(labels)
  local parts = {}
  for _, k in ipairs(sources.sorted_keys(labels)) do
    if k ~= "__name__" then parts[#parts + 1] = k .. "=" .. tostring(labels[k]) end
  end
  return table.concat(parts, ",")
end

-- One range query: items for its series, or nil, err.
local function run_query(state, service, q, vars)
  local all_vars = { service = service }
  for k, val in pairs(vars) do all_vars[k] = val end
  local expr, rerr = sources.render(q.query, all_vars)
  if not expr then return nil, service .. " " .. q.name .. ": " .. rerr end
  local body = http.build_query({
    query = expr, start = state.from, ["end"] = state.to, step = state.step,
  })
  local url = state.base .. "/api/v1/query_range"
  local decoded, err, resp = sources.request_json("prometheus", {
    method = "POST", url = url, body = body,
    headers = state.headers,
    accept_status = QUERY_ACCEPT_STATUS,
  }, state.deadline)
  if type(decoded) == "table" and decoded.status == "error" then
    return nil, service .. " " .. q.name .. ": " .. tostring(decoded.errorType or "error") .. ": "
      .. tostring(decoded.error or "no message") .. " (query: " .. expr .. ")"
  end
  if not decoded then
    if not err and resp then
      err = "prometheus: HTTP " .. resp.status .. " from " .. url .. ": " .. sources.excerpt(resp.body)
    end
    return nil, err
  end
  if resp and resp.status >= 300 then
    return nil, "prometheus: HTTP " .. resp.status .. " from " .. url
  end
  if type(decoded) ~= "table" or decoded.status ~= "success" or type(decoded.data) ~= "table" then
    return nil, "prometheus: unexpected answer from " .. url .. " (no status/data): "
      .. sources.excerpt(json.safe.encode(decoded) or "")
  end
  local data = decoded.data
  local warnings = {}
  for _, w in ipairs(type(decoded.warnings) == "table" and decoded.warnings or {}) do
    warnings[#warnings + 1] = service .. " " .. q.name .. ": " .. tostring(w)
  end
  local result = type(data.result) == "table" and data.result or {}
  if data.resultType ~= "matrix" and data.resultType ~= nil and #result > 0 then
    return nil, service .. " " .. q.name .. ": expected a matrix, got " .. tostring(data.resultType)
  end
  local base_item = { service = service, name = q.name, kind = q.kind, unit = q.unit, query = expr }
  local items = {}
  if #result == 0 then
    local item = {}
    for k, val in pairs(base_item) do item[k] = val end
    item.status, item.points, item.labels = "no_data", 0, {}
    items[1] = item
    return items, nil, warnings
  end
  local max_series = state.config.max_series or 10
  for i, series in ipairs(result) do
    if i > max_series then
      warnings[#warnings + 1] = string.format("%s %s: %d series, only the first %d analysed",
        service, q.name, #result, max_series)
      break
    end
    local pts = parse_points(series.values)
    local item = {}
    for k, val in pairs(base_item) do item[k] = val end
    item.labels = type(series.metric) == "table" and series.metric or {}
    item.series = label_text(item.labels)
    item.points = #pts
    if #pts == 0 then
      item.status = "no_data"
    else
      item.last = round(pts[#pts][2], 6)
      local change = M.detect(pts, {
        min_ratio = q.min_ratio or state.config.min_ratio,
        min_delta = q.min_delta or 0,
        min_points = state.config.min_points,
      })
      if change and q.direction and change.direction ~= q.direction then change = nil end
      if change then
        item.status = "changed"
        change.before, change.after = round(change.before, 6), round(change.after, 6)
        change.ratio = change.ratio and round(change.ratio, 2) or nil
        change.at_iso = sources.iso(change.at)
        change.from_start = math.floor(change.at - state.incident_start + 0.5)
        item.change = change
      else
        item.status = "steady"
      end
    end
    items[#items + 1] = item
  end
  return items, nil, warnings
end

local function magnitude(item)
  local c = item.change
  if not c then return 0 end
  return c.ratio or 1e9
end

local function describe_change(item)
  local c = item.change
  local what = item.service .. " " .. item.name
  if item.series and item.series ~= "" then what = what .. "{" .. item.series .. "}" end
  local how
  if c.ratio then
    how = string.format("%s %.1fx", c.direction == "up" and "rose" or "fell", c.ratio)
  else
    how = string.format("%s from %g to %g", c.direction == "up" and "rose" or "fell", c.before, c.after)
  end
  local when = c.from_start <= 0 and (sources.ago(c.from_start) .. " before the incident")
    or (sources.ago(c.from_start) .. " after the incident started")
  return string.format("%s %s (%s) at %s, %s", what, how, c.type, c.at_iso:sub(12, 16) .. "Z", when)
end
M.describe_change = describe_change

function M.query(ctx)
  local config = ctx.config or {}
  local services = sources.services(ctx)
  if #services == 0 then return nil, "prometheus: no services to query (the incident names none)" end
  local base = config.url or sys.getenv("PROMETHEUS_URL") or "http://127.0.0.1:9090"
  base = base:gsub("/+$", "")
  local w = sources.window(ctx, config.lookback or DEFAULT_LOOKBACK)
  local span = w.to - w.from
  local step = config.step or math.max(15, math.ceil(span / 200))
  local headers = sources.auth_headers(config.headers, config.token or sys.getenv("PROMETHEUS_TOKEN"))
  headers["Content-Type"] = "application/x-www-form-urlencoded"
  headers["Accept"] = "application/json"
  local state = {
    base = base, from = math.floor(w.from), to = math.floor(w.to), step = step,
    incident_start = w.incident_start, headers = headers, config = config,
    deadline = sources.deadline(ctx),
  }

  local jobs, fns = {}, {}
  for _, service in ipairs(services) do
    local list, vars = queries_for(config, service)
    for _, q in ipairs(list) do
      local job = { service = service, q = q }
      jobs[#jobs + 1] = job
      fns[#fns + 1] = function()
        job.items, job.err, job.warnings = run_query(state, service, q, vars)
        return true
      end
    end
  end
  if #jobs == 0 then return nil, "prometheus: no queries configured" end
  local _, errors = task.gather(fns)

  local items, warnings, failures = {}, {}, {}
  for i, job in ipairs(jobs) do
    if errors[i] then job.err = "prometheus: " .. job.service .. " " .. job.q.name .. ": " .. tostring(errors[i]) end
    if job.items then
      for _, it in ipairs(job.items) do items[#items + 1] = it end
      for _, wmsg in ipairs(job.warnings or {}) do warnings[#warnings + 1] = wmsg end
    else
      failures[#failures + 1] = job.err or "unknown error"
    end
  end
  if #items == 0 and #failures > 0 then
    local msg = failures[1]
    if not msg:match("^prometheus:") then msg = "prometheus: " .. msg end
    if #failures > 1 then msg = msg .. string.format(" (and %d more queries failed)", #failures - 1) end
    return nil, msg
  end
  for _, f in ipairs(failures) do warnings[#warnings + 1] = f end

  local order = { changed = 1, steady = 2, no_data = 3 }
  for i, it in ipairs(items) do it._i = i end
  table.sort(items, function(a, b)
    if order[a.status] ~= order[b.status] then return order[a.status] < order[b.status] end
    if magnitude(a) ~= magnitude(b) then return magnitude(a) > magnitude(b) end
    return a._i < b._i
  end)
  local changed, no_data = {}, 0
  for _, it in ipairs(items) do
    it._i = nil
    if it.status == "changed" then changed[#changed + 1] = it end
    if it.status == "no_data" then no_data = no_data + 1 end
  end
  local summary
  if #changed > 0 then
    summary = describe_change(changed[1])
    if #changed > 1 then summary = summary .. string.format(" (+%d more series changed)", #changed - 1) end
  else
    summary = string.format("no metric changed around the incident (%d series", #items)
      .. (no_data > 0 and string.format(", %d without data", no_data) or "") .. ")"
  end
  return {
    ok = true, source = M.name, items = items, summary = summary,
    changed = #changed, warnings = #warnings > 0 and warnings or nil,
    window = { from = state.from, to = state.to, step = step, incident_start = w.incident_start },
  }
end

return M
