-- A generic change feed: deploys, config changes, migrations... from
--   (a) the team's CD system: an HTTP JSON endpoint answering an array of changes or
--       {changes: [...]}, and
--   (b) changes pushed to fox itself: `POST /v1/changes` on `fox serve` (handle_push),
--       kept 24 h in fox.shared so they survive hot reload.
--
-- A change: {service, kind, description, at, author, url, version, environment, id}
--   service      required: [A-Za-z0-9][A-Za-z0-9._/-]*, at most 100 characters
--   kind         "deploy" (default), "config", "migration", "rollback", "feature_flag", ...
--   at           RFC 3339 or epoch seconds/milliseconds; default: when it was received
--   id           optional: a change pushed twice with the same id is stored once
--                (without an id, the same service/kind/at/version/description is)
--
-- config (the source):
--   url          the CD feed (default $FOX_CHANGE_FEED_URL; none: pushed changes only)
--   token        bearer token for the feed (default $FOX_CHANGE_FEED_TOKEN[_FILE])
--   params       send since/until/service as query parameters (default true)
--   pushed       include changes pushed to fox (default true)
--   lookback     seconds before the incident start (default 4 h)
--
-- items (newest first): {kind, source = "feed" | "push", service, at, at_iso,
--   before_start, title, description, author, url, version, environment, flags, id}
--
-- Push API (mounted by the daemon):
--   changes.handle_push(req [, opts]) -> {status, headers, body}
--     req: {method, headers (lower-case names), body}; opts.token overrides
--     $FOX_CHANGES_TOKEN[_FILE]; opts.now for tests.
--     Body: one change, an array, or {changes: [...]} (at most 100; all or nothing).
--     202 {accepted, ids}; 400 not JSON; 401 bad token; 405 not POST; 413 too big;
--     415 not JSON content type; 422 invalid change (the message names the field);
--     503 when no token is configured (pushing is off until one is set).
--   changes.recent(service_or_nil, since [, until]) -> array of stored changes.
local json = require("fox.json")
local shared = require("fox.shared")
local crypto = require("fox.crypto")
local sys = require("fox.sys")
local http = require("fox.http")
local sources = require("sources")

local M = { name = "changes" }

-- Statuses whose answer read_feed explains itself (one table for every request).
local FEED_ACCEPT_STATUS = { [401] = true, [403] = true }

M.TTL = 24 * 3600
M.MAX_BODY = 256 * 1024
M.MAX_PER_REQUEST = 100
M.MAX_FUTURE = 300
M.KEY_PREFIX = "changes:"
M.DEFAULT_LOOKBACK = 4 * 3600

local KIND_FLAGS = {
  config = "config", configuration = "config", feature_flag = "config", flag = "config",
  ["feature-flag"] = "config", rollback = "revert", revert = "revert", hotfix = "hotfix",
  migration = "migration", schema = "migration", dependency = "dependency",
}

---------------------------------------------------------------------------
-- validation
---------------------------------------------------------------------------

local LIMITS = { service = 100, kind = 40, description = 2000, author = 200, url = 2000, version = 200,
                 environment = 100, id = 200 }

local function opt_string(c, name, path)
  local v = c[name]
  if v == nil or v == json.null then return nil end
  if type(v) == "number" and (name == "version" or name == "id") then v = tostring(math.tointeger(v) or v) end
  if type(v) ~= "string" then return nil, path .. name .. " must be a string" end
  if #v > LIMITS[name] then return nil, path .. name .. " must be at most " .. LIMITS[name] .. " bytes" end
  if v == "" then return nil end
  return v
end

--- Validates one change. Returns the normalised change or nil, message.
-- opts: now (epoch s), strict (push API: age and future limits), path ("changes[2].")
function M.validate(c, opts)
  opts = opts or {}
  local path = opts.path or ""
  local now = opts.now or os.time()
  if type(c) ~= "table" or (c[1] ~= nil) then
    return nil, (path ~= "" and path:sub(1, -2) or "change") .. " must be an object"
  end
  local out = {}
  local service = c.service
  if type(service) ~= "string" or service == "" then return nil, path .. "service is required (a string)" end
  if #service > LIMITS.service or not service:match("^[%w][%w._/%-]*$") then
    return nil, path .. "service must be letters, digits and . _ / - (at most 100)"
  end
  out.service = service
  for _, name in ipairs({ "kind", "description", "author", "url", "version", "environment", "id" }) do
    local v, err = opt_string(c, name, path)
    if err then return nil, err end
    out[name] = v
  end
  out.kind = (out.kind or "deploy"):lower()
  if not out.kind:match("^[%w_.%-]+$") then return nil, path .. "kind must be a single word (deploy, config, ...)" end
  if out.url and not out.url:match("^https?://[^%s]+$") then return nil, path .. "url must be an http(s) URL" end
  if out.id and not out.id:match("^[%w._:%-]+$") then return nil, path .. "id must be letters, digits and . _ : -" end
  local at = c.at
  if at == nil or at == json.null then
    at = now
  else
    local t = sources.to_epoch(at)
    if not t then return nil, path .. "at must be an RFC 3339 time or epoch seconds (got " .. tostring(at) .. ")" end
    at = t
  end
  if opts.strict then
    if at < now - M.TTL then return nil, path .. "at is more than 24 h ago" end
    if at > now + M.MAX_FUTURE then return nil, path .. "at is in the future" end
  end
  out.at = at
  return out
end

local function change_id(c)
  if c.id then return c.id end
  local raw = table.concat({ c.service, c.kind, string.format("%.3f", c.at), c.version or "",
                             c.description or "" }, "\0")
  return crypto.hex(crypto.sha256(raw)):sub(1, 20)
end

local function key_of(service, id)
  return M.KEY_PREFIX .. service:lower() .. ":" .. id
end

---------------------------------------------------------------------------
-- push API
---------------------------------------------------------------------------

local function reply(status, body, extra)
  local headers = { ["Content-Type"] = "application/json" }
  for k, v in pairs(extra or {}) do headers[k] = v end
  return { status = status, headers = headers, body = json.encode(body) }
end

--- Stores changes (already validated). Returns their ids.
function M.store(list, now)
  local ids = {}
  for i, c in ipairs(list) do
    c.id = change_id(c)
    c.received_at = now or os.time()
    local ok, err = shared.set(key_of(c.service, c.id), json.encode(c), M.TTL)
    if not ok then return nil, "cannot store change " .. c.id .. ": " .. tostring(err) end
    ids[i] = c.id
  end
  return ids
end

function M.handle_push(req, opts)
  opts = opts or {}
  if req.method ~= "POST" then
    return reply(405, { error = "use POST" }, { Allow = "POST" })
  end
  local token = opts.token
  if token == nil then token = sys.secret("FOX_CHANGES_TOKEN") end
  if type(token) ~= "string" or token == "" then
    return reply(503, { error = "pushing changes is disabled: set FOX_CHANGES_TOKEN (or FOX_CHANGES_TOKEN_FILE)" })
  end
  local headers = req.headers or {}
  local auth = headers["authorization"] or ""
  local given = auth:match("^[Bb]earer%s+(%S+)%s*$")
  if not given or not crypto.equal(given, token) then
    return reply(401, { error = given and "invalid token" or "missing bearer token (Authorization: Bearer ...)" },
      { ["WWW-Authenticate"] = 'Bearer realm="fox"' })
  end
  local body = req.body or ""
  if #body > M.MAX_BODY then
    return reply(413, { error = "body larger than " .. M.MAX_BODY .. " bytes" })
  end
  local ctype = headers["content-type"]
  if ctype and ctype ~= "" and not ctype:lower():find("json", 1, true) then
    return reply(415, { error = "send JSON (Content-Type: application/json), not " .. ctype })
  end
  local decoded, derr = json.safe.decode(body)
  if decoded == nil then
    return reply(400, { error = "body is not JSON: " .. tostring(derr) })
  end
  local list
  if type(decoded) == "table" and decoded.changes ~= nil then
    list = decoded.changes
    if type(list) ~= "table" or (next(list) ~= nil and list[1] == nil) then
      return reply(422, { error = "changes must be an array" })
    end
  elseif type(decoded) == "table" and decoded[1] ~= nil then
    list = decoded
  elseif type(decoded) == "table" and next(decoded) ~= nil then
    list = { decoded }
  else
    return reply(422, { error = "expected a change object, an array of changes or {\"changes\": [...]}" })
  end
  if #list == 0 then return reply(422, { error = "no changes in the body" }) end
  if #list > M.MAX_PER_REQUEST then
    return reply(413, { error = "at most " .. M.MAX_PER_REQUEST .. " changes per request (got " .. #list .. ")" })
  end
  local now = opts.now or os.time()
  local valid = {}
  for i, c in ipairs(list) do
    local path = #list > 1 and ("changes[" .. (i - 1) .. "].") or ""
    local v, verr = M.validate(c, { now = now, strict = true, path = path })
    if not v then return reply(422, { error = verr }) end
    valid[i] = v
  end
  local ids, serr = M.store(valid, now)
  if not ids then return reply(503, { error = serr }) end
  return reply(202, { accepted = #ids, ids = ids })
end

--- Changes pushed to fox for service (any service when nil) since `since`, newest first.
function M.recent(service, since, untl)
  local prefix = M.KEY_PREFIX .. (service and (service:lower() .. ":") or "")
  local out = {}
  for _, k in ipairs(shared.keys(prefix) or {}) do
    local raw = shared.get(k)
    local c = type(raw) == "string" and json.safe.decode(raw) or nil
    if type(c) == "table" and tonumber(c.at) and (not since or c.at >= since) and (not untl or c.at <= untl) then
      out[#out + 1] = c
    end
  end
  table.sort(out, function(a, b)
    if a.at ~= b.at then return a.at > b.at end
    return tostring(a.id) < tostring(b.id)
  end)
  return out
end

---------------------------------------------------------------------------
-- the source
---------------------------------------------------------------------------

local function to_item(c, source, start)
  local flags = {}
  local kf = KIND_FLAGS[c.kind]
  local github = require("sources.github")
  local from_text = github.flags({ c.description })
  local seen = {}
  if kf then flags[1] = kf; seen[kf] = true end
  for _, f in ipairs(from_text) do
    if not seen[f] then flags[#flags + 1] = f; seen[f] = true end
  end
  local title = c.description
  if not title then
    title = c.kind .. " " .. c.service .. (c.version and (" " .. c.version) or "")
  end
  return {
    kind = c.kind, source = source, service = c.service, at = c.at, at_iso = sources.iso(c.at),
    before_start = math.floor(start - c.at + 0.5), title = title, description = c.description,
    author = c.author, url = c.url, version = c.version, environment = c.environment, flags = flags,
    id = c.id,
  }
end

local function read_feed(config, services, w, deadline)
  local url = config.url or sys.getenv("FOX_CHANGE_FEED_URL")
  if not url or url == "" then return nil end
  local token = config.token
  if token == nil then token = sys.secret("FOX_CHANGE_FEED_TOKEN") end
  local headers = sources.auth_headers(config.headers, token)
  headers["Accept"] = "application/json"
  if config.params ~= false then
    url = url .. (url:find("?", 1, true) and "&" or "?") .. http.build_query({
      since = sources.iso(w.from), ["until"] = sources.iso(w.to), service = services })
  end
  local decoded, err, resp = sources.request_json("changes", {
    url = url, headers = headers, accept_status = FEED_ACCEPT_STATUS,
  }, deadline)
  if resp and (resp.status == 401 or resp.status == 403) then
    return nil, string.format("changes: HTTP %d from the change feed %s: check the feed token "
      .. "(FOX_CHANGE_FEED_TOKEN)", resp.status, sources.endpoint(url))
  end
  if decoded == nil then return nil, err end
  local list = decoded
  if type(decoded) == "table" and decoded.changes ~= nil then list = decoded.changes end
  if type(list) ~= "table" or (next(list) ~= nil and list[1] == nil) then
    return nil, "changes: the change feed " .. sources.endpoint(url)
      .. " answered neither an array nor {\"changes\": [...]}"
  end
  local out, skipped = {}, 0
  for _, c in ipairs(list) do
    local v = M.validate(c, { now = w.to })
    if v then out[#out + 1] = v else skipped = skipped + 1 end
  end
  return out, skipped
end

function M.query(ctx)
  local config = ctx.config or {}
  local services = sources.services(ctx)
  local start = sources.incident_start(ctx)
  local lookback = config.lookback or M.DEFAULT_LOOKBACK
  local w = { from = start - lookback, to = start + (config.after or 0) }
  local wanted = {}
  for _, s in ipairs(services) do wanted[s:lower()] = true end
  local function relevant(c)
    return (#services == 0 or wanted[c.service:lower()]) and c.at >= w.from and c.at <= w.to
  end

  local warnings = {}
  local items, seen = {}, {}
  local function add(c, source)
    local dedupe = c.service:lower() .. "|" .. c.kind .. "|" .. (c.version or c.description or "")
    for _, other in ipairs(seen[dedupe] or {}) do
      if math.abs(other - c.at) <= 120 then return end
    end
    seen[dedupe] = seen[dedupe] or {}
    table.insert(seen[dedupe], c.at)
    items[#items + 1] = to_item(c, source, start)
  end

  local feed, ferr = read_feed(config, services, w, sources.deadline(ctx))
  if config.pushed ~= false then
    if #services == 0 then
      for _, c in ipairs(M.recent(nil, w.from, w.to)) do add(c, "push") end
    else
      for _, s in ipairs(services) do
        for _, c in ipairs(M.recent(s, w.from, w.to)) do add(c, "push") end
      end
    end
  end
  if feed then
    for _, c in ipairs(feed) do
      if relevant(c) then add(c, "feed") end
    end
    if ferr and ferr > 0 then
      warnings[#warnings + 1] = string.format("changes: skipped %d malformed entr%s of the change feed", ferr,
        ferr == 1 and "y" or "ies")
    end
  elseif ferr then
    if #items == 0 then return nil, ferr end
    warnings[#warnings + 1] = ferr
  end
  table.sort(items, function(a, b)
    if a.at ~= b.at then return a.at > b.at end
    return tostring(a.id or a.title) < tostring(b.id or b.title)
  end)
  local summary
  if #items == 0 then
    summary = "no deploys or other changes recorded in the " .. sources.ago(lookback) .. " before the incident"
  else
    local top = items[1]
    summary = string.format("%d change%s in the %s before the incident; latest: %s %s (%s before)", #items,
      #items == 1 and "" or "s", sources.ago(lookback), top.kind, top.title, sources.ago(top.before_start))
  end
  return {
    ok = true, source = M.name, items = items, summary = summary,
    warnings = #warnings > 0 and warnings or nil,
    window = { from = w.from, to = w.to, incident_start = start },
  }
end


return M
