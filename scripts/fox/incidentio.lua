-- incident.io API client: read-only by default, bearer auth, cursor pagination,
-- bracketed filters, cached severity/status lookups, a process-wide token bucket per
-- key, retries, and errors a person can act on.
--
-- Error convention (used by every fox.* Lua module built on this client and by the
-- tools): operational failures return `nil, err` where err is a table
-- {kind=, message=, status=?, request_id=?, retry_after=?} whose tostring is its
-- message. `kind` is one of: config, read_only, invalid_input, auth, forbidden,
-- not_found, invalid_request, rate_limited, server, network, bad_response, internal.
-- invalid_input is the caller's mistake (a CLI exits 2); every other kind is a failure
-- to get the data (exit 1).
local http = require("fox.http")
local task = require("fox.task")
local json = require("fox.json")
local log = require("fox.log")
local shared = require("fox.shared")
local crypto = require("fox.crypto")
local env = require("fox.env")
local timerange = require("fox.timerange")

local M = {}

M.DEFAULT_BASE_URL = "https://api.incident.io"
M.PAGE_SIZE_MAX = 250          -- the documented maximum of every list we page
M.CACHE_TTL = 300              -- severities, statuses, custom fields (seconds)
M.TIMELINE_ITEMS_PATH = "/v2/incident_timeline_items"

local DEFAULTS = {
  timeout = 15,            -- seconds per HTTP request
  max_attempts = 5,        -- attempts for 5xx, timeouts, resets, malformed bodies
  connect_attempts = 2,    -- attempts when the host cannot be reached at all
  max_429 = 4,             -- 429 answers tolerated for one call before giving up
  max_retry_time = 30,     -- seconds one call may spend waiting and retrying
  backoff_base = 0.5,      -- first backoff (seconds), doubled each attempt, jittered
  backoff_max = 8,
  rate_capacity = 1200,    -- incident.io: 1200 per minute per key ...
  rate_refill = 20,        -- ... as a bucket refilled at 20/s
  rate_safety = 0.9,       -- use 90% of the bucket and of the refill: requests paced
                           -- exactly at the server's rate would reach it early whenever
                           -- the network jitters
  max_pages = 2000,        -- guard against a server that never stops paginating
}

---------------------------------------------------------------------------
-- errors
---------------------------------------------------------------------------
local Error = {}
Error.__index = Error
Error.__tostring = function(e) return e.message end

-- Builds an error of the module's convention (tools use it too).
function M.error(kind, message, fields)
  local e = setmetatable(fields or {}, Error)
  e.kind, e.message = kind, message
  return e
end

function M.is_error(v)
  return getmetatable(v) == Error
end

---------------------------------------------------------------------------
-- configuration
---------------------------------------------------------------------------
local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- Resolves the configuration: explicit values in `overrides` win, then the
-- environment (INCIDENT_IO_BASE_URL, INCIDENT_IO_API_KEY[_FILE],
-- INCIDENT_IO_WRITE_API_KEY[_FILE]).
function M.config(overrides)
  overrides = overrides or {}
  local cfg = {}
  for k, v in pairs(DEFAULTS) do cfg[k] = v end
  for k, v in pairs(overrides) do cfg[k] = v end
  cfg.base_url = (overrides.base_url or env.get("INCIDENT_IO_BASE_URL") or M.DEFAULT_BASE_URL):gsub("/+$", "")
  if overrides.api_key then
    cfg.api_key, cfg.key_source = overrides.api_key, "config"
  else
    local key, source, err = env.secret("INCIDENT_IO_API_KEY")
    if not key and source == "INCIDENT_IO_API_KEY_FILE" and not err then
      err = "the file named by " .. source .. " (" .. env.get(source) .. ") is empty"
    end
    cfg.api_key, cfg.key_source, cfg.key_error = key, key and source, err
  end
  cfg.write_api_key = overrides.write_api_key or (env.secret("INCIDENT_IO_WRITE_API_KEY"))
  return cfg
end

---------------------------------------------------------------------------
-- client
---------------------------------------------------------------------------
local Client = {}
Client.__index = Client

local function fingerprint(s)
  return crypto.hex(crypto.sha256(s)):sub(1, 16)
end

-- Creates a client. Never fails: a missing key is reported by the first request
-- (so `fox doctor` can still check the host).
function M.new(overrides)
  local cfg = M.config(overrides)
  local self = setmetatable({ cfg = cfg, base_url = cfg.base_url }, Client)
  if cfg.api_key then log.redact(cfg.api_key) end
  if cfg.write_api_key then log.redact(cfg.write_api_key) end
  self.host = cfg.base_url:match("^%a[%w+.-]*://([^/:?#]+)") or cfg.base_url
  -- Shared-dictionary scopes: the bucket is per key; caches per server and key.
  self.bucket_id = cfg.api_key and fingerprint(cfg.api_key) or "nokey"
  self.write_bucket_id = cfg.write_api_key and fingerprint(cfg.write_api_key) or nil
  self.scope = fingerprint(cfg.base_url .. "\0" .. (cfg.api_key or ""))
  return self
end

function Client:has_key()
  return self.cfg.api_key ~= nil
end

function Client:key_source()
  return self.cfg.key_source
end

local function scrub(self, s)
  if type(s) ~= "string" then return s end
  for _, k in ipairs({ self.cfg.api_key, self.cfg.write_api_key }) do
    if k and #k >= 4 then
      local pos = s:find(k, 1, true)
      while pos do
        s = s:sub(1, pos - 1) .. "[redacted]" .. s:sub(pos + #k)
        pos = s:find(k, 1, true)
      end
    end
  end
  return s
end

---------------------------------------------------------------------------
-- rate limiting: one token bucket per API key for the whole process, kept in the
-- shared dictionary so it survives hot reload and is shared by every task. Taking a
-- token never yields between the read and the write, so it is atomic on the loop
-- thread. A request takes its token even when the bucket is empty (the balance goes
-- negative) and then sleeps until its token would have been refilled: waiters are
-- served in order without polling.
---------------------------------------------------------------------------
function Client:acquire_token(bucket_id)
  local prefix = "incidentio:rl:" .. bucket_id
  local cap = self.cfg.rate_capacity * self.cfg.rate_safety
  local rate = self.cfg.rate_refill * self.cfg.rate_safety
  local now = task.now()
  local tokens = tonumber(shared.get(prefix .. ":tokens"))
  local ts = tonumber(shared.get(prefix .. ":ts"))
  if not tokens or not ts then tokens, ts = cap, now end
  tokens = math.min(cap, tokens + math.max(0, now - ts) * rate) - 1
  shared.set(prefix .. ":tokens", tokens)
  shared.set(prefix .. ":ts", now)
  local wait = tokens < 0 and (-tokens / rate) or 0
  local paused = tonumber(shared.get(prefix .. ":until"))
  if paused and paused > now then wait = math.max(wait, paused - now) end
  if wait > 0 then task.sleep(wait) end
  return wait
end

-- The server says fewer requests remain than we think (another process shares the
-- key): believe it.
function Client.observe_remaining(_, bucket_id, headers)
  local remaining = tonumber(headers and headers["x-ratelimit-remaining"])
  if not remaining then return end
  local key = "incidentio:rl:" .. bucket_id .. ":tokens"
  local tokens = tonumber(shared.get(key))
  if tokens and remaining < tokens then shared.set(key, remaining) end
end

function Client.pause_bucket(_, bucket_id, seconds)
  local key = "incidentio:rl:" .. bucket_id .. ":until"
  local untl = task.now() + seconds
  local cur = tonumber(shared.get(key))
  if not cur or cur < untl then shared.set(key, untl, math.ceil(seconds) + 1) end
end

-- Forgets the bucket of this client's keys (tests; or after the key was rotated).
function Client:reset_rate_limit()
  for _, id in ipairs({ self.bucket_id, self.write_bucket_id }) do
    for _, suffix in ipairs({ ":tokens", ":ts", ":until" }) do
      shared.delete("incidentio:rl:" .. id .. suffix)
    end
  end
end

-- Forgets the cached severities, statuses and custom fields of this server and key.
function Client:clear_cache()
  for _, k in ipairs(shared.keys("incidentio:cache:" .. self.scope .. ":")) do shared.delete(k) end
end

---------------------------------------------------------------------------
-- Retry-After: integer seconds, or an HTTP date; the body's rate_limit.retry_after
-- may be RFC 3339 or an HTTP-date-like string.
---------------------------------------------------------------------------
function M.retry_after_seconds(headers, body, now)
  now = now or os.time()
  local h = headers and headers["retry-after"]
  if type(h) == "string" then
    h = trim(h)
    local n = tonumber(h)
    if n then return math.max(0, n) end
    local t = timerange.parse_http_date(h) or timerange.parse_time(h)
    if t then return math.max(0, t - now) end
  end
  if type(body) == "table" and type(body.rate_limit) == "table" then
    local ra = body.rate_limit.retry_after
    if type(ra) == "number" then return math.max(0, ra) end
    if type(ra) == "string" then
      local t = timerange.parse_time(ra) or timerange.parse_http_date(ra)
      if t then return math.max(0, t - now) end
    end
  end
  return nil
end

---------------------------------------------------------------------------
-- the actionable errors
---------------------------------------------------------------------------
local function api_detail(body)
  if type(body) ~= "table" then return nil end
  local parts = {}
  for _, e in ipairs(type(body.errors) == "table" and body.errors or {}) do
    if type(e) == "table" and type(e.message) == "string" then
      local field = type(e.source) == "table" and e.source.field
      parts[#parts + 1] = e.message .. (type(field) == "string" and (" [" .. field .. "]") or "")
    end
  end
  if #parts == 0 then return nil end
  return table.concat(parts, "; ")
end

local function permission_for(method, path)
  if method ~= "GET" and path == M.TIMELINE_ITEMS_PATH then
    return "permission to create timeline items"
  end
  if path:find("^/v3/catalog") then
    return 'the "View catalog" permission (catalog_viewer)'
  end
  return 'the "View data" permission (viewer)'
end

local function status_label(status, body)
  local t = type(body) == "table" and type(body.type) == "string" and (" " .. body.type) or ""
  return tostring(status) .. t
end

function Client:http_error(method, path, resp, body, ctx)
  local status = resp.status
  local detail = api_detail(body)
  local request_id = type(body) == "table" and type(body.request_id) == "string" and body.request_id or nil
  local fields = { status = status, request_id = request_id, method = method, path = path }
  local label = status_label(status, body) .. (detail and (": " .. scrub(self, detail)) or "")
  local key_var = ctx.write and "INCIDENT_IO_WRITE_API_KEY" or "INCIDENT_IO_API_KEY"
  if status == 401 then
    return M.error("auth", "incident.io rejected the API key (" .. label .. "): the key is invalid or "
      .. "expired. Check Settings > API keys in incident.io and update " .. key_var
      .. (ctx.write and "" or " (or the file named by INCIDENT_IO_API_KEY_FILE)") .. ".", fields)
  elseif status == 403 then
    fields.permission = permission_for(method, path)
    return M.error("forbidden", "the incident.io API key lacks " .. fields.permission .. " needed for "
      .. method .. " " .. path .. " (" .. label .. "). Give the key that permission in Settings > "
      .. "API keys, or create a new key with it and update " .. key_var .. ".", fields)
  elseif status == 404 then
    if ctx.incident_ref then
      return M.error("not_found", "incident " .. ctx.incident_ref .. " not found (404): check the "
        .. "incident ID and the time range, and that the key may see it.", fields)
    end
    return M.error("not_found", method .. " " .. path .. " not found on the incident.io API ("
      .. label .. "): check INCIDENT_IO_BASE_URL (" .. self.base_url .. ").", fields)
  elseif status == 400 or status == 422 then
    return M.error("invalid_request", "the incident.io API rejected " .. method .. " " .. path
      .. " (" .. label .. "). The request fox built is wrong or this server does not support "
      .. "that filter; please report it.", fields)
  elseif status >= 500 then
    return M.error("server", "the incident.io API failed on " .. method .. " " .. path .. " ("
      .. label .. (request_id and (", request_id " .. request_id) or "") .. ") after "
      .. ctx.attempts .. " attempts. Try again later; if it persists check https://status.incident.io.",
      fields)
  end
  return M.error("invalid_request", "unexpected answer from the incident.io API to " .. method
    .. " " .. path .. " (" .. label .. ").", fields)
end

local function network_reason(err)
  if type(err) == "table" then return tostring(err.message or err.error or err.code or "network error") end
  return tostring(err or "network error")
end

-- Failures to reach the host at all (DNS, refused): retried less than resets and
-- timeouts, which are usually transient.
local function is_connect_failure(reason)
  local r = reason:lower()
  return r:find("resolve", 1, true) or r:find("refused", 1, true)
    or r:find("couldn't connect", 1, true) or r:find("could not connect", 1, true)
    or r:find("no route", 1, true) or r:find("unreachable", 1, true)
    or r:find("certificate", 1, true) or r:find("max_body", 1, true)
end

function Client:network_error(reason, attempts)
  return M.error("network", "unable to connect to the incident.io API at " .. self.base_url
    .. " (" .. scrub(self, reason) .. ", after " .. attempts .. " attempt"
    .. (attempts == 1 and "" or "s") .. "): outbound HTTPS to " .. self.host
    .. " must be allowed (check the firewall, proxy and DNS, and INCIDENT_IO_BASE_URL).",
    { reason = scrub(self, reason) })
end

---------------------------------------------------------------------------
-- the request loop
---------------------------------------------------------------------------
local function backoff(cfg, attempt)
  local d = math.min(cfg.backoff_max, cfg.backoff_base * 2 ^ (attempt - 1))
  return d * (0.5 + math.random() * 0.5)
end

local function encode_query(query)
  if query == nil then return "" end
  if type(query) == "string" then return query ~= "" and ("?" .. query) or "" end
  local q = http.build_query(query)
  if q == nil or q == "" then return "" end
  return "?" .. q
end

-- Performs one API call. opts: query (table for fox.http.build_query, or a string),
-- body (table, JSON-encoded), incident_ref (names the incident in a 404).
-- Returns the decoded body and the response, or nil and an error.
function Client:request(method, path, opts)
  opts = opts or {}
  local cfg = self.cfg
  local write = method ~= "GET"
  local key, bucket
  if write then
    if not (method == "POST" and path == M.TIMELINE_ITEMS_PATH) then
      return nil, M.error("read_only", "fox uses the incident.io API read-only and refuses "
        .. method .. " " .. path .. "; the only write it makes is POST " .. M.TIMELINE_ITEMS_PATH
        .. " with INCIDENT_IO_WRITE_API_KEY.")
    end
    if not cfg.write_api_key then
      return nil, M.error("read_only", "creating timeline items needs a separate key allowed to "
        .. "create them in INCIDENT_IO_WRITE_API_KEY; INCIDENT_IO_API_KEY is used read-only.")
    end
    key, bucket = cfg.write_api_key, self.write_bucket_id
  else
    if not cfg.api_key then
      return nil, M.error("config", cfg.key_error and ("no incident.io API key: " .. cfg.key_error)
        or ("no incident.io API key: set INCIDENT_IO_API_KEY or INCIDENT_IO_API_KEY_FILE to a "
          .. "read-only key (the \"View data\" role) from Settings > API keys in incident.io."))
    end
    key, bucket = cfg.api_key, self.bucket_id
  end

  local url = self.base_url .. path .. encode_query(opts.query)
  local headers = {
    ["Authorization"] = "Bearer " .. key,
    ["Accept"] = "application/json",
    ["User-Agent"] = "fox-incidentfox",
  }
  local body_s
  if opts.body ~= nil then
    body_s = json.encode(opts.body)
    headers["Content-Type"] = "application/json"
  end

  local started = task.now()
  local deadline = started + cfg.max_retry_time
  local attempts, n429, connect_failures = 0, 0, 0
  local last_retry_after
  local ctx = { write = write, incident_ref = opts.incident_ref }
  while true do
    attempts = attempts + 1
    self:acquire_token(bucket)
    local t0 = task.now()
    local resp, nerr = http.request({
      method = method, url = url, headers = headers, body = body_s,
      timeout = opts.timeout or cfg.timeout,
    })
    local retry_in, failure
    if not resp then
      local reason = network_reason(nerr)
      log.warn("incidentio_network_error", { method = method, path = path, attempt = attempts,
        reason = reason })
      local connect = is_connect_failure(reason)
      if connect then connect_failures = connect_failures + 1 end
      failure = function() return self:network_error(reason, attempts) end
      if (connect and connect_failures < cfg.connect_attempts)
        or (not connect and attempts < cfg.max_attempts) then
        retry_in = backoff(cfg, attempts)
      end
    else
      self:observe_remaining(bucket, resp.headers)
      local status = resp.status
      local decoded, derr
      if resp.body and resp.body ~= "" then decoded, derr = json.safe.decode(resp.body) end
      log.debug("incidentio_request", { method = method, path = path, status = status,
        attempt = attempts, ms = math.floor((task.now() - t0) * 1000) })
      if status >= 200 and status < 300 then
        if type(decoded) == "table" then return decoded, resp end
        if status == 204 then return {}, resp end
        local reason = derr or "empty body"
        failure = function()
          return M.error("bad_response", "the incident.io API answered " .. method .. " " .. path
            .. " with a body that is not valid JSON (" .. tostring(reason) .. ") after " .. attempts
            .. " attempts: check that INCIDENT_IO_BASE_URL (" .. self.base_url .. ") is the API and "
            .. "that no proxy rewrites the answer.", { status = status })
        end
        if attempts < cfg.max_attempts then retry_in = backoff(cfg, attempts) end
      elseif status == 429 then
        n429 = n429 + 1
        local ra = M.retry_after_seconds(resp.headers, decoded)
        last_retry_after = ra
        local wait = ra or backoff(cfg, n429)
        self:pause_bucket(bucket, wait)
        log.warn("incidentio_rate_limited", { method = method, path = path, retry_after = wait })
        failure = function()
          return M.error("rate_limited", "incident.io rate limit exceeded (429 on " .. n429
            .. " attempt" .. (n429 == 1 and "" or "s")
            .. (last_retry_after and (", retry after " .. math.ceil(last_retry_after) .. "s") or "")
            .. "): narrow the filters (a shorter time range, a service or severity, a lower "
            .. "limit) or try again later.", { status = 429, retry_after = last_retry_after })
        end
        if n429 < cfg.max_429 then retry_in = wait end
      elseif status >= 500 or status == 408 then
        failure = function()
          return self:http_error(method, path, resp, decoded, { write = write, attempts = attempts,
            incident_ref = opts.incident_ref })
        end
        if attempts < cfg.max_attempts then retry_in = backoff(cfg, attempts) end
        log.warn("incidentio_server_error", { method = method, path = path, status = status,
          attempt = attempts })
      else
        ctx.attempts = attempts
        return nil, self:http_error(method, path, resp, decoded, ctx)
      end
    end
    if not retry_in or task.now() + retry_in > deadline then
      return nil, failure()
    end
    if retry_in > 0 then task.sleep(retry_in) end
  end
end

function Client:get(path, query, opts)
  opts = opts or {}
  opts.query = query
  return self:request("GET", path, opts)
end

---------------------------------------------------------------------------
-- pagination
---------------------------------------------------------------------------
local function copy(t)
  local c = {}
  for k, v in pairs(t or {}) do c[k] = v end
  return c
end

-- Pages through a list endpoint. opts: key (the list's field, e.g. "incidents"),
-- limit (stop after this many records), page_size (default: the limit, at most 250),
-- on_page(records) (return false to stop early), collect (false: do not keep the
-- records, on_page consumes them).
-- Returns records, nil, {truncated=bool, pages=n, total=total_record_count?} or nil, err.
function Client:paginate(path, query, opts)
  opts = opts or {}
  local key = opts.key
  local limit = opts.limit
  local page_size = opts.page_size or math.min(M.PAGE_SIZE_MAX, limit or M.PAGE_SIZE_MAX)
  page_size = math.max(1, math.min(M.PAGE_SIZE_MAX, math.floor(page_size)))
  local out, after, pages, total = {}, nil, 0, nil
  local seen_cursors = {}
  local more = false
  while true do
    local q = copy(query)
    q.page_size = page_size
    q.after = after
    local body, err = self:get(path, q, { incident_ref = opts.incident_ref })
    if not body then return nil, err end
    pages = pages + 1
    local records = type(body[key]) == "table" and body[key] or {}
    local meta = type(body.pagination_meta) == "table" and body.pagination_meta or {}
    total = tonumber(meta.total_record_count) or total
    local stop = false
    if opts.on_page and opts.on_page(records) == false then stop = true end
    for _, r in ipairs(opts.collect == false and {} or records) do
      if limit and #out >= limit then
        more = true
        break
      end
      out[#out + 1] = r
    end
    local nxt = meta.after
    if type(nxt) ~= "string" or nxt == "" or #records == 0 or seen_cursors[nxt] then nxt = nil end
    if nxt then seen_cursors[nxt] = true end
    if nxt and limit and #out >= limit then more = true end
    if not nxt or stop or (limit and #out >= limit) or pages >= self.cfg.max_pages then
      if nxt and (stop or pages >= self.cfg.max_pages) then more = true end
      break
    end
    after = nxt
  end
  return out, nil, { truncated = more, pages = pages, total = total }
end

---------------------------------------------------------------------------
-- cached settings: severities, statuses, custom fields (shared dictionary with a TTL,
-- so the cache survives hot reload)
---------------------------------------------------------------------------
function Client:cached(path, key)
  local ck = "incidentio:cache:" .. self.scope .. ":" .. path
  local cached = shared.get(ck)
  if type(cached) == "string" then
    local v = json.safe.decode(cached)
    if type(v) == "table" then return v end
  end
  local body, err = self:get(path)
  if not body then return nil, err end
  local list = type(body[key]) == "table" and body[key] or {}
  shared.set(ck, json.encode(list), M.CACHE_TTL)
  return list
end

function Client:severities()
  local list, err = self:cached("/v1/severities", "severities")
  if not list then return nil, err end
  table.sort(list, function(a, b) return (tonumber(a.rank) or 0) > (tonumber(b.rank) or 0) end)
  return list
end

function Client:incident_statuses()
  return self:cached("/v1/incident_statuses", "incident_statuses")
end

function Client:custom_fields()
  return self:cached("/v2/custom_fields", "custom_fields")
end

local function names_of(list)
  local names = {}
  for _, s in ipairs(list) do names[#names + 1] = tostring(s.name) end
  return table.concat(names, ", ")
end

-- A severity by name (case-insensitive), ID or priority ("P1", via the severity
-- policy). Returns the severity {id, name, rank} or nil, err (invalid_input).
function Client:resolve_severity(wanted)
  local list, err = self:severities()
  if not list then return nil, err end
  local w = tostring(wanted):lower()
  for _, s in ipairs(list) do
    if s.id == wanted or (type(s.name) == "string" and s.name:lower() == w) then return s end
  end
  if w:match("^p%d$") then
    local s = require("policies.severity").from_priority(w, list)
    if s then return s end
  end
  return nil, M.error("invalid_input", "severity: unknown severity \"" .. tostring(wanted)
    .. "\"; the account has " .. names_of(list) .. ".", { field = "severity" })
end

-- A status by name (case-insensitive) or ID. Returns the status or nil, err.
function Client:resolve_status(wanted)
  local list, err = self:incident_statuses()
  if not list then return nil, err end
  local w = tostring(wanted):lower()
  for _, s in ipairs(list) do
    if s.id == wanted or (type(s.name) == "string" and s.name:lower() == w) then return s end
  end
  return nil, M.error("invalid_input", "status: unknown status \"" .. tostring(wanted)
    .. "\"; use active, resolved, all, a status category (triage, live, paused, learning, "
    .. "closed, declined, canceled, merged) or one of the account's statuses: "
    .. names_of(list) .. ".", { field = "status" })
end

---------------------------------------------------------------------------
-- incidents
---------------------------------------------------------------------------

-- "INC-123", "inc-123", "123", "#123" -> "123" (the API takes the numeric part of the
-- reference); anything else that looks like an ID is passed through. Returns the path
-- segment and a display form, or nil and a message.
function M.parse_reference(ref)
  if type(ref) == "number" and ref == math.floor(ref) and ref > 0 then
    ref = string.format("%d", ref)
  end
  if type(ref) ~= "string" then return nil, "an incident reference must be a string" end
  ref = trim(ref)
  local n = ref:match("^[Ii][Nn][Cc]%-(%d+)$") or ref:match("^#?(%d+)$")
  if n then
    n = n:gsub("^0+(%d)", "%1")
    return n, "INC-" .. n
  end
  if #ref > 0 and #ref <= 128 and ref:match("^[%w_%-]+$") then return ref, ref end
  return nil, "\"" .. ref:sub(1, 40) .. "\" is not an incident reference: use INC-123, 123 or the incident's ID"
end

function Client:get_incident(ref)
  local seg, display = M.parse_reference(ref)
  if not seg then return nil, M.error("invalid_input", "incident_id: " .. display, { field = "incident_id" }) end
  local body, err = self:get("/v2/incidents/" .. http.encode(seg), nil, { incident_ref = display })
  if not body then return nil, err end
  if type(body.incident) ~= "table" then
    return nil, M.error("bad_response", "the incident.io API answered GET /v2/incidents/" .. seg
      .. " without an incident.")
  end
  return body.incident
end

-- filters: query parameters in the API's bracketed form, e.g.
-- {["status_category[one_of]"] = {"triage", "live"}, ["severity[one_of]"] = id,
--  ["created_at[gte]"] = "2025-01-01", sort_by = "created_at_newest_first"}.
function Client:list_incidents(filters, opts)
  opts = opts or {}
  return self:paginate("/v2/incidents", filters, {
    key = "incidents", limit = opts.limit, page_size = opts.page_size, on_page = opts.on_page,
    collect = opts.collect,
  })
end

-- Every update of an incident (all pages).
function Client:incident_updates(incident_id)
  return self:paginate("/v2/incident_updates", { incident_id = incident_id },
    { key = "incident_updates", page_size = M.PAGE_SIZE_MAX })
end

-- Timeline items (newer API). On an older server (404) returns {}, nil, {supported=false}.
function Client:timeline_items(incident_id)
  local items, err, meta = self:paginate(M.TIMELINE_ITEMS_PATH, { incident_id = incident_id },
    { key = "incident_timeline_items", page_size = M.PAGE_SIZE_MAX })
  if not items then
    if err.kind == "not_found" then return {}, nil, { supported = false } end
    return nil, err
  end
  meta.supported = true
  return items, nil, meta
end

-- Related incidents (explicit links). {} when the server does not have the endpoint.
function Client:incident_relationships(incident_id)
  local rel, err = self:paginate("/v1/incident_relationships", { incident_id = incident_id },
    { key = "incident_relationships", page_size = M.PAGE_SIZE_MAX })
  if not rel then
    if err.kind == "not_found" then return {} end
    return nil, err
  end
  return rel
end

function Client:identity()
  local body, err = self:get("/v1/identity")
  if not body then return nil, err end
  if type(body.identity) ~= "table" then
    return nil, M.error("bad_response", "the incident.io API answered GET /v1/identity without an identity.")
  end
  return body.identity
end

-- The options of a select custom field. /v2/custom_fields does not list them, but
-- every incident embeds its fields with their options: read them from the newest
-- incident that has the field (cached like the other settings).
function Client:custom_field_options(field_id)
  local ck = "incidentio:cache:" .. self.scope .. ":options:" .. field_id
  local cached = shared.get(ck)
  if type(cached) == "string" then
    local v = json.safe.decode(cached)
    if type(v) == "table" then return v end
  end
  local body, err = self:get("/v2/incidents", { page_size = 1 })
  if not body then return nil, err end
  local options = {}
  for _, inc in ipairs(type(body.incidents) == "table" and body.incidents or {}) do
    for _, e in ipairs(inc.custom_field_entries or {}) do
      if type(e.custom_field) == "table" and e.custom_field.id == field_id then
        for _, o in ipairs(e.custom_field.options or {}) do
          if o.id and o.value then options[#options + 1] = { id = o.id, value = o.value } end
        end
      end
    end
  end
  shared.set(ck, json.encode(options), M.CACHE_TTL)
  return options
end

-- A catalog entry of a catalog type by identifier (ID, external ID, alias or name).
function Client:catalog_entry(catalog_type_id, identifier)
  local body, err = self:get("/v3/catalog_entries", {
    catalog_type_id = catalog_type_id, identifier = identifier, page_size = 25,
  })
  if not body then return nil, err end
  local entries = type(body.catalog_entries) == "table" and body.catalog_entries or {}
  return entries[1]
end

-- The one write fox makes, with the separate write key. fields: incident_id, title,
-- timestamp (RFC 3339; default now), description?, idempotency_key? (default random).
function Client:create_timeline_item(fields)
  local body = {
    idempotency_key = fields.idempotency_key or crypto.hex(crypto.random_bytes(16)),
    incident_id = fields.incident_id,
    title = fields.title,
    timestamp = fields.timestamp or timerange.format_time(os.time()),
    description = fields.description,
  }
  local res, err = self:request("POST", M.TIMELINE_ITEMS_PATH, { body = body })
  if not res then return nil, err end
  return res.incident_timeline_item or res
end

return M
