-- Similar past incidents, through the `correlate_incidents` tool (scripts/fox/tools/),
-- with how each was resolved: the tool's resolution facts (lead, duration, resolved
-- time, postmortem) plus, for the best matches, the update that resolved it
-- ("rolled back payments-api to v2.28.4 ...", without its "Resolved:").
--
-- config (all optional):
--   client       a fox.incidentio client (the playbook passes its own); default
--                incidentio.new(config.incidentio) from the environment
--   threshold    minimum similarity 0..1 (default 0.5)
--   time_range   how far back to compare (default "90d": "last month" must be in)
--   limit        matches returned (default 5)
--   resolutions  matches whose updates are read for the resolution text (default 3)
--
-- items, best first: {id, reference, name, score, signals, shared_services, link,
--   status = {name, category}, severity, priority, created_at, permalink,
--   resolution = {text, lead, duration_seconds, resolved_at, postmortem_url}}
local json = require("fox.json")
local task = require("fox.task")
local tools = require("fox.tools")
local incidentio = require("fox.incidentio")
local sources = require("sources")

local M = { name = "similar" }

local function value(v)
  if v == json.null then return nil end
  return v
end

local function err_text(err)
  if type(err) == "table" then return tostring(err.message or err.kind or "error") end
  return tostring(err)
end

--- The text that says how an incident was resolved, from its updates (raw incident.io
-- updates, any order): the message of the first update that moved it to a resolved
-- status (post-incident, closed, "Resolved", ...), else the last update whose
-- message starts with "Resolved" / "Fixed" / "Mitigated".
local function clean(message)
  return (message:gsub("^%s*[Rr]esolved%s*[:%-]%s*", ""):gsub("^%s*[Ff]ixed%s*[:%-]%s*", ""))
end

function M.resolution_text(updates)
  local list = {}
  for _, u in ipairs(updates or {}) do
    if type(u) == "table" and type(value(u.message)) == "string" and u.message ~= "" then list[#list + 1] = u end
  end
  table.sort(list, function(a, b) return tostring(a.created_at) < tostring(b.created_at) end)
  for _, u in ipairs(list) do
    local st = type(u.new_incident_status) == "table" and u.new_incident_status or {}
    local cat = tostring(value(st.category) or ""):lower()
    local name = tostring(value(st.name) or ""):lower()
    if cat == "learning" or cat == "closed" or name:find("resolv") or name:find("document") then
      if not u.message:lower():match("^postmortem") then return clean(u.message) end
    end
  end
  for i = #list, 1, -1 do
    local m = list[i].message:lower()
    if m:match("^resolved") or m:match("^fixed") or m:match("^mitigated") or m:match("^fix in place") then
      return clean(list[i].message)
    end
  end
  return nil
end

-- correlate_incidents reads the incident as the API returned it: given, it is not fetched again.
M.uses_raw_incident = true

function M.query(ctx)
  local config = ctx.config or {}
  local incident = ctx.incident or {}
  local id = value(incident.id) or value(incident.reference)
  if type(id) ~= "string" or id == "" then return nil, "similar: the incident has no id" end
  local deadline = sources.deadline(ctx)
  local client = config.client or incidentio.new(config.incidentio or {})
  local res, err = tools.call("correlate_incidents", {
    incident_id = id,
    similarity_threshold = config.threshold or 0.5,
    time_range = config.time_range or "90d",
    limit = math.min(100, (config.limit or 5) + 1),
  }, { client = client, now = ctx.now, incident = ctx.raw })
  if not res then return nil, "similar: correlate_incidents failed: " .. err_text(err) end
  local items = {}
  for _, m in ipairs(type(res.matches) == "table" and res.matches or {}) do
    if m.id ~= incident.id and m.reference ~= incident.reference and #items < (config.limit or 5) then
      local r = type(m.resolution) == "table" and m.resolution or {}
      items[#items + 1] = {
        id = m.id, reference = m.reference, name = m.name, score = m.score, signals = m.signals,
        shared_services = value(m.shared_services), link = value(m.link),
        status = value(m.status), severity = value(m.severity), priority = value(m.priority),
        created_at = m.created_at, permalink = value(m.permalink),
        resolution = {
          lead = value(r.lead), duration_seconds = value(r.duration_seconds),
          resolved_at = value(r.resolved_at), postmortem_url = value(r.postmortem_url),
        },
      }
    end
  end
  -- How the best matches were resolved, read at once.
  local n = math.min(#items, config.resolutions or 3)
  local fns = {}
  for i = 1, n do
    fns[i] = function()
      local updates, uerr = client:incident_updates(items[i].id)
      if not updates then error(err_text(uerr), 0) end
      items[i].resolution.text = M.resolution_text(updates)
      return true
    end
  end
  local warnings = {}
  if n > 0 then
    local left = sources.remaining(deadline) or 0.1
    local _, errors = task.gather(fns, { timeout = left })
    for i = 1, n do
      if errors[i] then
        warnings[#warnings + 1] = "similar: could not read how " .. tostring(items[i].reference)
          .. " was resolved: " .. tostring(errors[i])
      end
    end
  end
  local summary
  if #items == 0 then
    summary = "no similar incident in the last " .. tostring(config.time_range or "90d")
      .. " (threshold " .. tostring(config.threshold or 0.5) .. ")"
  else
    local top = items[1]
    summary = string.format("%d similar incident%s; best: %s %s (score %.2f)", #items, #items == 1 and "" or "s",
      tostring(top.reference), tostring(top.name), top.score or 0)
    if top.resolution.text then
      summary = summary .. ": " .. sources.excerpt(top.resolution.text, 160)
    end
  end
  return {
    ok = true, source = M.name, items = items, summary = summary,
    warnings = #warnings > 0 and warnings or nil,
    candidates_considered = res.candidates_considered,
  }
end

return M
