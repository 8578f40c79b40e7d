-- Loki: the error logs of each service (`/loki/api/v1/query_range` with a LogQL
-- template), grouped into normalised error signatures (fox.error_signature) with
-- counts, first and last seen and an example line.
--
-- config (all optional):
--   url       Loki base URL (default $LOKI_URL, else http://127.0.0.1:3100)
--   token     bearer token (default $LOKI_TOKEN); or username/password for basic auth
--             (default $LOKI_USERNAME / $LOKI_PASSWORD); tenant: X-Scope-OrgID;
--             headers: extra headers
--   query     LogQL template; {{service}} (and `vars`) filled in, escaped for a
--             double-quoted string. Default:
--             {service="{{service}}"} |~ "(?i)(error|exception|fatal|panic)"
--   services  per-service overrides: {["payments-api"] = {query = ..., vars = {...}}}
--   lookback  seconds before the incident start (default 3600); the window ends at
--             ctx.window.to (else now)
--   limit     lines per request (default 1000); max_lines per service (default 5000;
--             past it the result is marked truncated)
--   max_signatures  signatures returned (default 10)
--
-- items: signatures, most frequent first:
--   {signature, count, first_seen, first_seen_iso, last_seen, last_seen_iso, example,
--    services, before_start, after_start, from_start (first_seen - incident start, s)}
-- extras: total (lines read), distinct, truncated.
local sys = require("fox.sys")
local http = require("fox.http")
local sources = require("sources")

local M = { name = "loki" }

-- Statuses whose answer read_service explains itself (one table for every query).
local QUERY_ACCEPT_STATUS = { [400] = true, [401] = true, [403] = true, [429] = true, [500] = true,
                              [502] = true, [503] = true, [504] = true }

M.DEFAULT_QUERY = '{service="{{service}}"} |~ "(?i)(error|exception|fatal|panic)"'

local NS = 1000000000

local function headers_for(config)
  local h = {}
  for k, v in pairs(config.headers or {}) do h[k] = v end
  local token = config.token or sys.getenv("LOKI_TOKEN")
  local user = config.username or sys.getenv("LOKI_USERNAME")
  if token and token ~= "" then
    h["Authorization"] = "Bearer " .. token
  elseif user and user ~= "" then
    h["Authorization"] = sources.basic_auth(user, config.password or sys.getenv("LOKI_PASSWORD"))
  end
  if config.tenant then h["X-Scope-OrgID"] = config.tenant end
  h["Accept"] = "application/json"
  return h
end

-- Loki answers errors as text/plain ("parse error at line 1, col 5: ..."): name the
-- endpoint, the status and what Loki said.
local function describe_error(url, resp)
  local what = sources.excerpt(resp.body, 200)
  if resp.status == 401 or resp.status == 403 then
    return string.format("loki: HTTP %d from %s (check LOKI_TOKEN / LOKI_USERNAME and the tenant): %s",
      resp.status, url, what)
  end
  if resp.status == 429 then
    return "loki: rate limited by " .. url .. " (HTTP 429): " .. what
  end
  return string.format("loki: HTTP %d from %s: %s", resp.status, url, what)
end

-- Reads the error lines of one service, handing each page to add (grouped while the
-- next page is asked for): {truncated} or nil, err.
local function read_service(state, service, add)
  local per = (state.config.services or {})[service] or {}
  local vars = { service = service }
  for k, v in pairs(per.vars or state.config.vars or {}) do vars[k] = v end
  local logql, rerr = sources.render(per.query or state.config.query or M.DEFAULT_QUERY, vars)
  if not logql then return nil, "loki: " .. service .. ": " .. rerr end
  local url = state.base .. "/loki/api/v1/query_range"
  local limit = state.config.limit or 1000
  local max_lines = state.config.max_lines or 5000
  local read = 0
  local start_ns = state.from * NS
  local end_ns = state.to * NS
  while true do
    local ask = math.min(limit, max_lines - read)
    local q = http.build_query({
      query = logql, start = start_ns, ["end"] = end_ns, limit = ask, direction = "forward",
    })
    local decoded, err, resp = sources.request_json("loki", {
      url = url .. "?" .. q, headers = state.headers,
      accept_status = QUERY_ACCEPT_STATUS,
    }, state.deadline)
    if resp and resp.status >= 300 then
      if type(decoded) == "table" and decoded.message then
        resp = { status = resp.status, body = tostring(decoded.message) }
      end
      return nil, describe_error(url, resp)
    end
    if not decoded then return nil, err end
    if type(decoded) ~= "table" or decoded.status ~= "success" or type(decoded.data) ~= "table" then
      return nil, "loki: unexpected answer from " .. url .. " (no status/data)"
    end
    local data = decoded.data
    if data.resultType ~= nil and data.resultType ~= "streams" then
      return nil, "loki: " .. service .. ": the query returns " .. tostring(data.resultType)
        .. ", not log lines (a metric query?): " .. logql
    end
    local page, last_ns = {}, nil
    for _, stream in ipairs(type(data.result) == "table" and data.result or {}) do
      for _, pair in ipairs(type(stream.values) == "table" and stream.values or {}) do
        local ns = math.tointeger(tonumber(pair[1]))
        local line = pair[2]
        if ns and type(line) == "string" then
          page[#page + 1] = { ts = ns / NS, ns = ns, line = line, service = service }
          if not last_ns or ns > last_ns then last_ns = ns end
        end
      end
    end
    read = read + #page
    add(page)
    if #page < ask or not last_ns then
      return { truncated = false }
    end
    if read >= max_lines then
      return { truncated = true }
    end
    start_ns = last_ns + 1
    if start_ns >= end_ns then return { truncated = false } end
  end
end

function M.query(ctx)
  local config = ctx.config or {}
  return sources.query_logs(ctx, {
    name = M.name, headers = headers_for(config),
    base = config.url or sys.getenv("LOKI_URL") or "http://127.0.0.1:3100",
  }, read_service)
end

return M
