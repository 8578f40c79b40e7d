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
local field = require("fox.error_signature").field
local timerange = require("fox.timerange")
local sources = require("sources")

local M = { name = "elasticsearch" }

-- Statuses whose answer read_service explains itself (one table for every search).
local SEARCH_ACCEPT_STATUS = { [400] = true, [401] = true, [403] = true, [404] = true, [429] = true,
                               [500] = true, [503] = true }

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
  -- encoded at once: the table need not live while the search runs
  local body = json.encode(M.search_body(config, per.value or service, state.from, state.to, size))
  local url = state.base .. "/" .. http.encode(index):gsub("%%2A", "*"):gsub("%%2C", ",") .. "/_search"
  local decoded, err, resp = sources.request_json("elasticsearch", {
    method = "POST", url = url, headers = state.headers, body = body, defer_decode = true,
    accept_status = SEARCH_ACCEPT_STATUS,
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
    if msg_field and type(field(src, msg_field)) == "string" then
      entries[#entries + 1] = { ts = ts, line = field(src, msg_field), service = service }
    else
      -- the decoded document itself: error_signature reads its fields without the
      -- JSON text round trip
      entries[#entries + 1] = { ts = ts, fields = src, service = service }
    end
  end
  total = tonumber(total) or #entries
  return { entries = entries, total = total, truncated = total > #entries, warnings = warnings }
end

function M.query(ctx)
  local config = ctx.config or {}
  return sources.query_logs(ctx, {
    name = M.name, headers = headers_for(config),
    base = config.url or sys.getenv("ELASTICSEARCH_URL") or "http://127.0.0.1:9200",
  }, read_service)
end

return M
