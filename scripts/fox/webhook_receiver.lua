-- POST /webhooks/incident-io: Standard Webhooks deliveries from incident.io.
--
-- Order of checks, each with its answer:
--   body over max_body                    413
--   no webhook secret configured          503 (incident.io retries for a day)
--   bad/missing signature, old timestamp  401
--   Content-Type other than JSON          415 (an absent one is read as JSON)
--   webhook-id already recorded           200 {"status":"duplicate"}, nothing else
--   body not JSON / no event_type         400
--   event type fox does not act on        200 {"status":"ignored"}
--   incident_created_v2 (public/private)  202 once the incident is durably queued
--                                         (200 "known" when it was already handled)
--   the state store failed                503 (nothing recorded: incident.io retries)
-- The incident is always re-fetched from the API before it is investigated: the
-- payload may be stale or arrive out of order, and private incidents carry only an id.
local json = require("fox.json")
local log = require("fox.log")
local metrics = require("fox.metrics")
local queue = require("fox.queue")
local shared = require("fox.shared")
local task = require("fox.task")
local webhook = require("fox.webhook")

local M = {}

M.NS = "webhooks"                 -- webhook-id -> incident id (or event type)
M.ID_TTL = 3 * 86400              -- Svix retries for about a day; keep ids longer
M.MAX_ID = 256

M.ACTIONS = {
  ["public_incident.incident_created_v2"] = true,
  ["private_incident.incident_created_v2"] = true,
}

local JSON_HEADERS = { ["Content-Type"] = "application/json" }

local function reply(status, fields)
  return { status = status, headers = JSON_HEADERS, body = json.encode(fields) .. "\n" }
end

-- One log line and one metric per delivery.
local function done(outcome, t0, fields, status, body)
  metrics.inc("fox_webhooks_total", { outcome = outcome })
  fields.outcome = outcome
  fields.status = status
  fields.duration_ms = math.floor((task.now() - t0) * 100000) / 100
  local level = (status >= 500 and "error") or (status >= 400 and "warn") or "info"
  log[level]("webhook", fields)
  return reply(status, body)
end

local function header(req, name)
  local v = req.headers and req.headers[name]
  if type(v) == "string" then return v end
  return nil
end

--- application/json, or any +json type, with parameters (charset=...).
function M.is_json_type(ctype)
  local t = ctype:match("^%s*([^;%s]+)")
  t = t and t:lower()
  return t == "application/json" or (t ~= nil and t:match("^application/[%w.%-]+%+json$") ~= nil)
end

--- Handles one delivery. env: cfg (webhook_secret, webhook_tolerance, max_body),
-- st (fox.state object), queue (fox.queue instance).
function M.handle(req, env)
  local t0 = task.now()
  local cfg = env.cfg
  local fields = {}
  if req.method ~= "POST" then
    return done("bad_request", t0, fields, 405, { error = "use POST" })
  end
  local body = req.body or ""
  if #body > cfg.max_body then
    fields.bytes = #body
    return done("too_large", t0, fields, 413, { error = "body larger than " .. cfg.max_body .. " bytes" })
  end
  if not cfg.webhook_secret then
    return done("unavailable", t0, fields, 503, {
      error = "webhooks are not configured: set INCIDENT_IO_WEBHOOK_SECRET (or webhook_secret in fox.conf.lua)",
    })
  end
  local wid = header(req, "webhook-id")
  fields.webhook_id = wid and wid:sub(1, M.MAX_ID) or nil
  local ok, reason = webhook.verify(cfg.webhook_secret, req.headers or {}, body,
    { tolerance = cfg.webhook_tolerance })
  if not ok then
    fields.reason = reason
    fields.remote = req.remote_addr
    return done("unauthorized", t0, fields, 401, { error = "signature verification failed" })
  end
  if #wid > M.MAX_ID or wid:find("[%c]") then
    return done("bad_request", t0, fields, 400, { error = "webhook-id is not a valid id" })
  end
  local ctype = header(req, "content-type")
  if ctype and not M.is_json_type(ctype) then
    fields.content_type = ctype:sub(1, 100)
    return done("bad_request", t0, fields, 415, { error = "Content-Type must be application/json" })
  end
  -- One delivery of a webhook id at a time: a retry that arrives while the first is
  -- still waiting for its commit waits for that outcome rather than being accepted too.
  local res, xerr = queue.exclusive("wh:" .. wid, M.record, env, t0, fields, wid, body)
  if res == nil then
    fields.error = tostring(xerr)
    return done("unavailable", t0, fields, 503, { error = "state store unavailable" })
  end
  return res
end

--- The rest of handle() for a verified delivery, run exclusively per webhook id: the
-- duplicate check, the payload, and the durable record.
function M.record(env, t0, fields, wid, body)
  -- Seen already? The shared dictionary answers most retries without touching disk;
  -- the durable record answers them after a restart.
  local seen = shared.get("wh:" .. wid)
  if seen == nil then
    local v, gerr = env.st:get(M.NS, wid)
    if gerr then
      fields.error = tostring(gerr)
      return done("unavailable", t0, fields, 503, { error = "state store unavailable" })
    end
    seen = v
  end
  if seen then
    return done("duplicate", t0, fields, 200, { status = "duplicate" })
  end
  local event, derr = json.safe.decode(body)
  if type(event) ~= "table" or type(event.event_type) ~= "string" then
    fields.reason = derr and "invalid JSON" or "no event_type"
    return done("bad_request", t0, fields, 400, { error = derr and "body is not valid JSON" or "no event_type" })
  end
  local etype = event.event_type
  fields.event_type = etype:sub(1, 100)
  if not M.ACTIONS[etype] then
    return done("ignored", t0, fields, 200, { status = "ignored" })
  end
  local payload = event[etype]
  local id = type(payload) == "table" and (payload.id or (type(payload.incident) == "table" and payload.incident.id))
  if type(id) ~= "string" or id == "" or #id > 256 or id:find("[%c]") then
    return done("bad_request", t0, fields, 400, { error = "no incident id in " .. etype })
  end
  fields.id = id
  fields.incident = type(payload.reference) == "string" and payload.reference or nil
  -- The webhook id is stored in the entry's transaction: both or neither are on disk
  -- when the answer goes out.
  local id_row = { M.NS, wid, id, M.ID_TTL }
  local queued, why = env.queue:enqueue(id, {
    source = "webhook", webhook_id = wid, event_type = etype, reference = fields.incident,
  }, { id_row })
  if queued == nil then
    fields.error = tostring(why)
    return done("unavailable", t0, fields, 503, { error = "could not record the event" })
  end
  if not queued then
    local rok, rerr = env.st:write({ id_row })
    if not rok then
      -- The incident is queued or done (and de-duplicated by id), so a retry is harmless.
      log.warn("webhook.id_not_recorded", { webhook_id = wid, error = tostring(rerr) })
    end
  end
  shared.set("wh:" .. wid, true, M.ID_TTL)
  if queued then
    metrics.inc("fox_incidents_queued_total", { source = "webhook" })
    if env.on_queued then env.on_queued(id) end
    return done("accepted", t0, fields, 202, { status = "queued", incident_id = id })
  end
  return done("known", t0, fields, 200, { status = why, incident_id = id })
end

return M
