-- Evidence sources: what the investigation playbook asks about an incident.
--
-- THE CONTRACT (docs/sources.md has the long form)
--
-- A source is a module `sources.NAME` with
--
--   source.name                      "prometheus", "loki", ...
--   source.query(ctx) -> result | nil, err
--
-- ctx = {
--   incident = the normalised incident (fox.normalize.incident): id, reference, name,
--              summary, created_at, services, ...
--   services = {"payments-api", ...}   services to look at (the playbook decides)
--   window   = {from = epoch s, to = epoch s, incident_start = epoch s}
--              the playbook's default window; a source may look further back from
--              incident_start with its own `lookback` (GitHub and the change feed
--              look 4 h back, metrics 1 h)
--   config   = this source's table from the config (URLs, per-service templates,
--              tokens read from the environment by the config)
--   timeout  = seconds this source may take in all (each HTTP call gets what is left)
--   now      = optional epoch s (tests); default os.time()
--   raw      = the incident as the API returned it (IncidentV2), only for a source whose
--              module sets `uses_raw_incident = true` (query_all leaves it out of the
--              others' ctx: it is some 20 KiB, held for as long as the source runs)
-- }
--
-- result = {
--   ok = true, source = NAME,
--   items = {...},              plain data (strings, numbers, booleans, tables), the
--                               shape each source documents at its top
--   summary = "one line a responder can read",
--   warnings = {"..."},         optional: partial failures (one query of five failed)
--   ...                         source-specific extras (signatures, suspects, ...)
-- }
--
-- Failure is `nil, err` with err a one-line string a person can act on ("github:
-- token rejected (401 Bad credentials): check GITHUB_TOKEN"). A source never raises
-- for an operational failure and never blocks: every call goes through fox.http and
-- yields. Items and summaries never contain a credential.
--
-- This module also runs sources for the playbook:
--
--   sources.run(name_or_module, ctx) -> result table, ALWAYS (never nil, never raises):
--       the source's result with `elapsed` (s), or
--       {ok = false, source = NAME, error = "...", elapsed = s, items = {}}
--       A source that overruns ctx.timeout (+ a small grace) is cancelled.
--   sources.query_all(list, base_ctx) -> array of results in the order of list
--       list = {{name = "prometheus", config = {...}, timeout = 5}, ...}: all at once
--       (fox.task.gather), each with its own timeout; wall time is the slowest.
--
-- and holds the helpers the sources share (request_json, render, deadlines).
local http = require("fox.http")
local json = require("fox.json")
local task = require("fox.task")
local timerange = require("fox.timerange")

local M = {}

M.names = { "prometheus", "loki", "elasticsearch", "github", "changes", "similar" }

M.DEFAULT_TIMEOUT = 10
-- Answers at least this large are decoded a loop turn later when the caller allows it
-- (request_json's defer_decode): about a millisecond of decoding.
M.DEFER_DECODE_BYTES = 64 * 1024
-- How long past its timeout a source may run before it is cancelled (it should have
-- returned its own "timed out" error by then).
M.GRACE = 0.25

local function load(name_or_module)
  if type(name_or_module) == "table" then return name_or_module end
  if type(name_or_module) ~= "string" or not name_or_module:match("^[%w_]+$") then
    return nil, "sources: bad source name " .. tostring(name_or_module)
  end
  local ok, mod = pcall(require, "sources." .. name_or_module)
  if not ok then return nil, "sources: cannot load sources." .. name_or_module .. ": " .. tostring(mod) end
  return mod
end
M.load = load

local function shallow_copy(t)
  local out = {}
  for k, v in pairs(t or {}) do out[k] = v end
  return out
end

-- Starts one source in a task of its own (its timeout is that task's deadline).
-- Returns the pending run for finish_source(), and why it could not start, if so.
local function start_source(name_or_module, ctx)
  local started = task.now()
  local mod, lerr = load(name_or_module)
  local name = type(name_or_module) == "string" and name_or_module or (mod and mod.name) or "source"
  local pending = { name = name, started = started }
  if not mod then return pending, lerr end
  if type(mod.query) ~= "function" then return pending, "sources." .. name .. " has no query function" end
  ctx = ctx or {}
  pending.timeout = tonumber(ctx.timeout) or M.DEFAULT_TIMEOUT
  pending.task = task.spawn({ name = "source:" .. name, timeout = pending.timeout + M.GRACE }, function()
    return mod.query(ctx)
  end)
  return pending
end

-- Waits for a started source; always returns a result table.
local function finish_source(pending, start_err)
  local name = pending.name
  local function failed(err)
    return { ok = false, source = name, error = tostring(err), items = {},
             elapsed = task.now() - pending.started }
  end
  if start_err then return failed(start_err) end
  local ok, res, err = task.wait(pending.task)
  if not ok then
    local msg = tostring(res)
    if msg:find("timed out", 1, true) or msg:find("deadline", 1, true) then
      return failed(name .. ": no answer within " .. string.format("%g", pending.timeout) .. " s")
    end
    return failed(name .. ": failed: " .. msg)
  end
  if type(res) ~= "table" then
    return failed(err or (name .. ": returned nothing"))
  end
  res.source = res.source or name
  if res.ok == nil then res.ok = true end
  res.items = res.items or {}
  res.elapsed = task.now() - pending.started
  return res
end

--- Runs one source; always returns a result table (see the contract above).
function M.run(name_or_module, ctx)
  return finish_source(start_source(name_or_module, ctx))
end

--- Runs every source of list at once; results in the order of list. Each source is
-- one task (no second task per source just to wait for it: a waiting task holds a
-- coroutine with its stack, about 2 KB, for as long as the investigation runs).
-- When the investigation ends while its sources run (cancelled, past its deadline),
-- the sources' tasks end with it rather than run on for nobody.
local CANCEL_UNFINISHED = {
  __close = function(runs)
    for _, r in ipairs(runs) do
      if r.pending and r.pending.task then task.cancel(r.pending.task, "cancelled: the investigation ended") end
    end
  end,
}

function M.query_all(list, base_ctx)
  local runs = setmetatable({}, CANCEL_UNFINISHED)
  local _ <close> = runs
  for i, spec in ipairs(list) do
    local ctx = shallow_copy(base_ctx)
    ctx.config = spec.config or ctx.config or {}
    ctx.timeout = spec.timeout or ctx.timeout
    local mod = load(spec.module or spec.name)
    if not (type(mod) == "table" and mod.uses_raw_incident) then ctx.raw = nil end
    local ok, pending, err = pcall(start_source, spec.module or spec.name, ctx)
    runs[i] = ok and { pending = pending, err = err } or { raised = pending }
  end
  -- the sources have their own ctx now: base_ctx (and the raw incident in it) need not
  -- live on in this frame while they run
  base_ctx = nil -- luacheck: ignore
  local out = {}
  for i, spec in ipairs(list) do
    local r = runs[i]
    if r.raised ~= nil then
      out[i] = { ok = false, source = spec.name, items = {}, error = tostring(r.raised) }
    else
      out[i] = finish_source(r.pending, r.err)
    end
  end
  return out
end

---------------------------------------------------------------------------
-- helpers for the sources
---------------------------------------------------------------------------

--- A deadline ctx.timeout seconds from now (task.now() clock).
function M.deadline(ctx)
  return task.now() + (tonumber(ctx and ctx.timeout) or M.DEFAULT_TIMEOUT)
end

--- Seconds left before deadline (nil when it has passed).
function M.remaining(deadline)
  local left = deadline - task.now()
  if left <= 0.001 then return nil end
  return left
end

--- The incident start of ctx (window.incident_start, else the incident's created_at,
-- else window.to, else now).
function M.incident_start(ctx)
  local w = ctx.window or {}
  if tonumber(w.incident_start) then return tonumber(w.incident_start) end
  local inc = ctx.incident or {}
  local t = timerange.parse_time(inc.created_at)
  if t then return t end
  return tonumber(w.to) or ctx.now or os.time()
end

--- {from, to, incident_start} for a source: `lookback` seconds before the incident
-- start (when given) else window.from; `after` seconds past the start (when given)
-- else window.to, else now.
function M.window(ctx, lookback, after)
  local w = ctx.window or {}
  local start = M.incident_start(ctx)
  local now = ctx.now or os.time()
  local from = lookback and (start - lookback) or tonumber(w.from) or (start - 3600)
  local to
  if after then
    to = math.min(now, start + after)
  else
    to = tonumber(w.to) or now
  end
  if to <= from then to = from + 1 end
  return { from = from, to = to, incident_start = start }
end

--- The services of ctx (ctx.services, else the incident's).
function M.services(ctx)
  local list = ctx.services
  if type(list) ~= "table" or #list == 0 then
    list = type(ctx.incident) == "table" and ctx.incident.services or {}
  end
  local out = {}
  for _, s in ipairs(type(list) == "table" and list or {}) do
    if type(s) == "string" and s ~= "" then out[#out + 1] = s end
  end
  return out
end

-- Escapes a value for a double-quoted string of PromQL / LogQL.
local function quote_escape(v)
  return (tostring(v):gsub("\\", "\\\\"):gsub('"', '\\"'))
end
M.quote_escape = quote_escape

--- Fills {{name}} placeholders of template from vars; values are escaped for a
-- double-quoted PromQL/LogQL string unless raw is true. An unknown placeholder is an
-- error (nil, message) rather than a query that silently matches nothing.
function M.render(template, vars, raw)
  if type(template) ~= "string" then return nil, "template is not a string" end
  local missing
  local out = template:gsub("{{%s*([%w_]+)%s*}}", function(k)
    local v = vars[k]
    if v == nil then
      missing = missing or k
      return ""
    end
    return raw and tostring(v) or quote_escape(v)
  end)
  if missing then return nil, "template uses {{" .. missing .. "}} which has no value" end
  return out
end

--- RFC 3339 UTC time of epoch seconds.
M.iso = timerange.format_time

--- Epoch seconds of an RFC 3339 time, epoch seconds or epoch milliseconds.
function M.to_epoch(v)
  if type(v) == "number" then
    if v > 1e12 then return v / 1000 end
    return v
  end
  if type(v) == "string" then
    if v:match("^%d+%.?%d*$") then return M.to_epoch(tonumber(v)) end
    return timerange.parse_time(v)
  end
  return nil
end

-- A short, single-line excerpt of a body for an error message.
function M.excerpt(body, n)
  n = n or 160
  if type(body) ~= "string" then return "" end
  local s = body:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  if #s > n then s = s:sub(1, n - 3) .. "..." end
  return s
end

-- The URL without its query string (errors name the endpoint, never its parameters,
-- which may carry tokens).
function M.endpoint(url)
  return (tostring(url):gsub("%?.*$", ""))
end

--- One HTTP call that expects JSON.
-- req: {method, url, headers, body, max_body, defer_decode}; deadline from M.deadline;
-- label names the call in errors ("prometheus"). defer_decode: the answer is the
-- caller's last (nothing it asks next depends on it), so decoding a large one may wait
-- for a turn of the event loop.
-- Returns decoded, nil, response — or nil, err, response (response when there was one).
-- A non-2xx status is an error unless req.accept_status[status] is true, in which case
-- the decoded body (or nil) and the response are returned for the caller to inspect.
function M.request_json(label, req, deadline)
  local method, url, accept_status, defer_decode = req.method or "GET", req.url, req.accept_status, req.defer_decode
  local left = M.remaining(deadline)
  if not left then
    return nil, label .. ": out of time before calling " .. M.endpoint(url)
  end
  local headers, body, max_body = req.headers, req.body, req.max_body or 16 * 1048576
  -- the call waits as long as the server takes: req (and what only it holds) need not
  -- live that long; a source with many requests in flight holds one per request
  req = nil -- luacheck: ignore
  local resp, err = http.request({
    method = method, url = url, headers = headers, body = body, timeout = left, max_body = max_body,
  })
  if not resp then
    return nil, label .. ": " .. method .. " " .. M.endpoint(url) .. ": " .. tostring(err)
  end
  local ok_status = resp.status >= 200 and resp.status < 300
  if not ok_status and not (accept_status and accept_status[resp.status]) then
    return nil, label .. ": HTTP " .. resp.status .. " from " .. M.endpoint(url)
      .. (resp.body ~= "" and (": " .. M.excerpt(resp.body)) or ""), resp
  end
  if resp.body == "" then
    if ok_status then
      return nil, label .. ": empty answer from " .. M.endpoint(url), resp
    end
    return nil, nil, resp
  end
  -- fox has one thread: a large answer whose decoding leads to no further request
  -- waits one turn of the event loop, so the requests other sources just made go
  -- out before it rather than after it
  if defer_decode and #resp.body >= M.DEFER_DECODE_BYTES then task.sleep(0) end
  local decoded, derr = json.safe.decode(resp.body)
  if decoded == nil then
    if not ok_status then return nil, nil, resp end
    return nil, label .. ": malformed JSON from " .. M.endpoint(url) .. " ("
      .. tostring(derr):gsub("^Expected", "expected") .. ")", resp
  end
  return decoded, nil, resp
end

--- A bearer Authorization header when token is set.
function M.auth_headers(headers, token)
  local h = shallow_copy(headers)
  if type(token) == "string" and token ~= "" then
    h["Authorization"] = "Bearer " .. token
  end
  return h
end

--- Authorization header value for HTTP basic auth.
function M.basic_auth(user, password)
  local crypto = require("fox.crypto")
  return "Basic " .. crypto.base64_encode(tostring(user) .. ":" .. tostring(password or ""))
end

--- Minutes as text ("3 min", "2 h 5 min", "40 s").
function M.ago(seconds)
  seconds = math.floor(math.abs(seconds) + 0.5)
  if seconds < 60 then return seconds .. " s" end
  local minutes = math.floor(seconds / 60 + 0.5)
  if minutes < 90 then return minutes .. " min" end
  local h, m = minutes // 60, minutes % 60
  if m == 0 then return h .. " h" end
  return h .. " h " .. m .. " min"
end

-- 1234567 -> "1,234,567"
function M.thousands(n)
  local s = tostring(math.floor(n))
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""):gsub("^%-,", "-"))
end

--- The result of a log source: its lines grouped into error signatures
-- (fox.error_signature). entries: {line, ts, service} to group, or nil with
-- opts.grouped, what error_signature.group (or sources.log_groups) already made of
-- them. opts: name, incident_start, max_signatures, truncated (some lines were not
-- read), services (queried), warnings, grouped.
function M.log_result(entries, opts)
  local g = opts.grouped
  if not g then
    g = require("fox.error_signature").group(entries, { max = opts.max_signatures or 10,
                                                         incident_start = opts.incident_start })
  end
  local items = {}
  for i, s in ipairs(g.signatures) do
    s.first_seen_iso = s.first_seen and M.iso(s.first_seen) or nil
    s.last_seen_iso = s.last_seen and M.iso(s.last_seen) or nil
    if s.first_seen and opts.incident_start then
      s.from_start = math.floor(s.first_seen - opts.incident_start + 0.5)
    end
    items[i] = s
  end
  local where = table.concat(opts.services or {}, ", ")
  local summary
  if g.total == 0 then
    summary = "no error lines" .. (where ~= "" and (" for " .. where) or "") .. " in the window"
  else
    local top = items[1]
    summary = string.format("%s error line%s%s in %d signature%s; top: %s (%s", M.thousands(g.total)
      .. (opts.truncated and "+" or ""), g.total == 1 and "" or "s",
      where ~= "" and (" from " .. where) or "", g.distinct, g.distinct == 1 and "" or "s",
      top.signature, M.thousands(top.count) .. "x")
    if top.from_start then
      summary = summary .. ", first seen " .. M.ago(top.from_start)
        .. (top.from_start <= 0 and " before" or " after") .. " the incident start"
    end
    summary = summary .. ")"
  end
  return {
    ok = true, source = opts.name, items = items, summary = summary,
    total = g.total, distinct = g.distinct, truncated = opts.truncated or false,
    warnings = (opts.warnings and #opts.warnings > 0) and opts.warnings or nil,
  }
end

--- The query of a log source (loki, elasticsearch): read(state, service, add) for
-- every service of ctx at once, their lines grouped into error signatures. opts: name,
-- base (URL), headers. state = {base, headers, config, from, to, deadline} over the
-- window `lookback` (default 3600) seconds before the incident start. read hands each
-- page of lines ({{line, ts, [ns], service}...}) to add(entries) as soon as it has it
-- (they are grouped while it waits for the next page: sources.log_groups), and returns
-- {truncated =, warnings = optional, total = optional (what the backend matched: the
-- result's total_matching), entries = optional (lines not handed to add)} or nil, err.
-- A failed service is a warning (its lines are left out); every service failing is the
-- error.
function M.query_logs(ctx, opts, read)
  local config = ctx.config or {}
  local services = M.services(ctx)
  if #services == 0 then return nil, opts.name .. ": no services to query (the incident names none)" end
  local w = M.window(ctx, config.lookback or 3600)
  local state = {
    base = opts.base:gsub("/+$", ""), headers = opts.headers, config = config,
    from = math.floor(w.from), to = math.ceil(w.to), deadline = M.deadline(ctx),
  }
  local groups = require("sources.log_groups").new({ incident_start = w.incident_start })
  local results, fns = {}, {}
  for i, service in ipairs(services) do
    fns[i] = function()
      local r, err = read(state, service, function(entries) groups:add(service, entries) end)
      if r and r.entries then groups:add(service, r.entries) end
      results[i] = r or { err = err }
      return true
    end
  end
  local _, errors = task.gather(fns)
  local warnings, failures = {}, {}
  local truncated, total_matching = false, nil
  for i, service in ipairs(services) do
    local r = results[i]
    if not r or r.err then
      groups:drop(service)
      failures[#failures + 1] = r and r.err
        or (opts.name .. ": " .. service .. ": " .. tostring(errors[i] or "no result"))
    else
      for _, wmsg in ipairs(r.warnings or {}) do warnings[#warnings + 1] = wmsg end
      truncated = truncated or r.truncated
      if r.total then total_matching = (total_matching or 0) + r.total end
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
  local res = M.log_result(nil, {
    name = opts.name, incident_start = w.incident_start, max_signatures = config.max_signatures,
    truncated = truncated, services = services, warnings = warnings,
    grouped = groups:result(config.max_signatures or 10),
  })
  res.total_matching = total_matching
  res.window = { from = state.from, to = state.to, incident_start = w.incident_start }
  return res
end

--- Sorted keys of a table (deterministic iteration over per-service maps).
function M.sorted_keys(t)
  local keys = {}
  for k in pairs(t or {}) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

return M
