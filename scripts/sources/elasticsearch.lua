-- Elasticsearch / OpenSearch: the error logs of each service (`POST /<index>/_search`
-- with a bool query on service, level and time), grouped into normalised error
-- signatures (fox.error_signature) with counts, first and last seen and an example.
--
-- config (all optional):
--   url            base URL (default $ELASTICSEARCH_URL, else http://127.0.0.1:9200)
--   index          index or pattern (default "logs-*"); per service: services[s].index
--   api_key        sent as "Authorization: ApiKey ..." (default $ELASTICSEARCH_API_KEY);
--                  or token (bearer, $ELASTICSEARCH_TOKEN); or username/password
--                  ($ELASTICSEARCH_USERNAME / $ELASTICSEARCH_PASSWORD); headers
--   time_field     default "@timestamp"        (ECS names by default)
--   service_field  default "service.name"
--   level_field    default "log.level"
--   levels         default {"error", "ERROR", "Error", "fatal", "FATAL", "critical", "CRITICAL"}
--   services       per-service overrides: {["payments-api"] = {value = "payments",
--                  index = "payments-*"}} (value: what service_field holds)
--   filter         extra query clauses added to the bool filter (array of tables)
--   lookback       seconds before the incident start (default 3600)
--   max_hits       documents read per service (default 2000, at most 10000); past
--                  it the result is marked truncated
--   max_signatures signatures returned (default 10)
--
-- items: as loki.lua (signatures with count, first/last seen, example, services...).
-- extras: total (documents read), total_matching (what the cluster counted),
-- distinct, truncated.
local json = require("fox.json")
local sys = require("fox.sys")
local http = require("fox.http")
local task = require("fox.task")
local timerange = require("fox.timerange")
local sources = require("sources")

local M = { name = "elasticsearch" }

M.DEFAULT_LEVELS = { "error", "ERROR", "Error", "fatal", "FATAL", "critical", "CRITICAL" }

local function headers_for(config)
  local h = {}
  for k, v in pairs(config.headers or {}) do h[k] = v end
  local api_key = config.api_key or sys.getenv("ELASTICSEARCH_API_KEY")
  local token = config.token or sys.getenv("ELASTICSEARCH_TOKEN")
  local user = config.username or sys.getenv("ELASTICSEARCH_USERNAME")
  if api_key and api_key ~= "" then
    h["Authorization"] = "ApiKey " .. api_key
  elseif token and token ~= "" then
    h["Authorization"] = "Bearer " .. token
  elseif user and user ~= "" then
    h["Authorization"] = sources.basic_auth(user, config.password or sys.getenv("ELASTICSEARCH_PASSWORD"))
  end
  h["Content-Type"] = "application/json"
  h["Accept"] = "application/json"
  return h
end

-- "index_not_found_exception: no such index [logs-x]" from an error answer.
local function es_reason(decoded)
  if type(decoded) ~= "table" then return nil end
  local e = decoded.error
  if type(e) == "string" then return e end
  if type(e) ~= "table" then return nil end
  local rc = type(e.root_cause) == "table" and e.root_cause[1] or nil
  local typ = (type(rc) == "table" and rc.type) or e.type
  local reason = (type(rc) == "table" and rc.reason) or e.reason
  if type(e.caused_by) == "table" and e.caused_by.reason and not reason then reason = e.caused_by.reason end
  return tostring(typ or "error") .. ": " .. tostring(reason or "no reason given")
end

local function field(t, name)
  local v = t[name]
  if v == nil and name:find(".", 1, true) then
    local cur = t
    for part in name:gmatch("[^.]+") do
      if type(cur) ~= "table" then return nil end
      cur = cur[part]
    end
    v = cur
  end
  if v == json.null then return nil end
  return v
end

function M.search_body(config, service_value, from, to, size)
  local time_field = config.time_field or "@timestamp"
  local filter = {
    { term = { [config.service_field or "service.name"] = service_value } },
    { terms = { [config.level_field or "log.level"] = config.levels or M.DEFAULT_LEVELS } },
    { range = { [time_field] = { gte = sources.iso(from), lte = sources.iso(to),
                                 format = "strict_date_optional_time" } } },
  }
  for _, clause in ipairs(config.filter or {}) do filter[#filter + 1] = clause end
  return {
    size = size,
    track_total_hits = true,
    sort = { { [time_field] = { order = "asc" } } },
    query = { bool = { filter = filter } },
  }
end

local function read_service(state, service)
  local config = state.config
  local per = (config.services or {})[service] or {}
  local index = per.index or config.index or "logs-*"
  local size = math.min(config.max_hits or 2000, 10000)
  local body = M.search_body(config, per.value or service, state.from, state.to, size)
  local url = state.base .. "/" .. http.encode(index):gsub("%%2A", "*"):gsub("%%2C", ",") .. "/_search"
  local decoded, err, resp = sources.request_json("elasticsearch", {
    method = "POST", url = url, headers = state.headers, body = json.encode(body),
    accept_status = { [400] = true, [401] = true, [403] = true, [404] = true, [429] = true,
                      [500] = true, [503] = true },
  }, state.deadline)
  if resp and resp.status >= 300 then
    local reason = es_reason(decoded) or sources.excerpt(resp.body)
    local hint = ""
    if resp.status == 401 or resp.status == 403 then
      hint = " (check ELASTICSEARCH_API_KEY, ELASTICSEARCH_TOKEN or ELASTICSEARCH_USERNAME/PASSWORD)"
    elseif resp.status == 404 then
      hint = " (is the index pattern " .. index .. " right?)"
    end
    return nil, string.format("elasticsearch: HTTP %d from %s%s: %s", resp.status, sources.endpoint(url), hint,
      reason)
  end
  if not decoded then return nil, err end
  if type(decoded) ~= "table" or type(decoded.hits) ~= "table" then
    return nil, "elasticsearch: unexpected answer from " .. url .. " (no hits)"
  end
  local warnings = {}
  local shards = decoded._shards
  if type(shards) == "table" and tonumber(shards.failed) and tonumber(shards.failed) > 0 then
    local first = type(shards.failures) == "table" and shards.failures[1] or nil
    local why = type(first) == "table" and es_reason({ error = first.reason }) or nil
    warnings[#warnings + 1] = string.format("elasticsearch: %s: %d of %s shards failed%s", service,
      shards.failed, tostring(shards.total or "?"), why and (": " .. why) or "")
  end
  if decoded.timed_out == true then
    warnings[#warnings + 1] = "elasticsearch: " .. service .. ": the search timed out on the cluster (partial hits)"
  end
  local total = decoded.hits.total
  if type(total) == "table" then total = total.value end
  local hits = type(decoded.hits.hits) == "table" and decoded.hits.hits or {}
  local entries = {}
  local time_field = config.time_field or "@timestamp"
  for _, h in ipairs(hits) do
    local src = type(h._source) == "table" and h._source or {}
    local ts = field(src, time_field)
    ts = type(ts) == "number" and ts / 1000 or timerange.parse_time(ts)
    local msg_field = config.message_field
    local line
    if msg_field and type(field(src, msg_field)) == "string" then
      line = field(src, msg_field)
    else
      line = json.safe.encode(src) or ""
    end
    entries[#entries + 1] = { ts = ts, line = line, service = service }
  end
  total = tonumber(total) or #entries
  return { entries = entries, total = total, truncated = total > #entries, warnings = warnings }
end

function M.query(ctx)
  local config = ctx.config or {}
  local services = sources.services(ctx)
  if #services == 0 then return nil, "elasticsearch: no services to query (the incident names none)" end
  local w = sources.window(ctx, config.lookback or 3600)
  local state = {
    base = (config.url or sys.getenv("ELASTICSEARCH_URL") or "http://127.0.0.1:9200"):gsub("/+$", ""),
    headers = headers_for(config), config = config,
    from = math.floor(w.from), to = math.ceil(w.to), deadline = sources.deadline(ctx),
  }
  local results, fns = {}, {}
  for i, service in ipairs(services) do
    fns[i] = function()
      local r, err = read_service(state, service)
      results[i] = r or { err = err }
      return true
    end
  end
  local _, errors = task.gather(fns)
  local all, warnings, failures = {}, {}, {}
  local truncated, total_matching = false, 0
  for i, service in ipairs(services) do
    local r = results[i]
    if errors[i] or not r or r.err then
      failures[#failures + 1] = (r and r.err) or ("elasticsearch: " .. service .. ": " .. tostring(errors[i]))
    else
      for _, e in ipairs(r.entries) do all[#all + 1] = e end
      for _, wmsg in ipairs(r.warnings) do warnings[#warnings + 1] = wmsg end
      truncated = truncated or r.truncated
      total_matching = total_matching + r.total
    end
  end
  if #failures == #services then
    local msg = failures[1]
    if #failures > 1 and failures[2] ~= msg then
      msg = msg .. string.format(" (and %d more services failed)", #failures - 1)
    end
    return nil, msg
  end
  for _, f in ipairs(failures) do warnings[#warnings + 1] = f end
  table.sort(all, function(a, b) return (a.ts or 0) < (b.ts or 0) end)
  local res = sources.log_result(all, {
    name = M.name, incident_start = w.incident_start, max_signatures = config.max_signatures,
    truncated = truncated, services = services, warnings = warnings,
  })
  res.total_matching = total_matching
  res.window = { from = state.from, to = state.to, incident_start = w.incident_start }
  return res
end

return M
