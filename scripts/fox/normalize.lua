-- IncidentV2 (and incident updates / timeline items) -> the normalised shapes the tools
-- return. Tolerates missing optional fields and unknown enum values.
local json = require("fox.json")
local timerange = require("fox.timerange")
local severity_policy = require("policies.severity")
local services_policy = require("policies.services")

local M = {}

local null = json.null

local function str(v)
  if type(v) == "string" and v ~= "" then return v end
  return nil
end

local function or_null(v)
  if v == nil then return null end
  return v
end

local function person(user)
  if type(user) ~= "table" then return nil end
  return { name = user.name or null, email = user.email or null }
end

-- Who did something: a user's name, else the API key, workflow or alert.
function M.actor(a)
  if type(a) ~= "table" then return nil end
  if type(a.user) == "table" and a.user.name then return a.user.name end
  if type(a.api_key) == "table" and a.api_key.name then return "API key: " .. a.api_key.name end
  if type(a.workflow) == "table" and a.workflow.name then return "workflow: " .. a.workflow.name end
  if type(a.alert) == "table" and a.alert.title then return "alert: " .. a.alert.title end
  return nil
end

function M.lead(raw)
  for _, a in ipairs(raw.incident_role_assignments or {}) do
    if type(a.role) == "table" and a.role.role_type == "lead" then
      return person(a.assignee)
    end
  end
  return nil
end

local function custom_value(v)
  if type(v.value_option) == "table" then return v.value_option.value end
  if type(v.value_catalog_entry) == "table" then return v.value_catalog_entry.name end
  if v.value_text ~= nil then return v.value_text end
  if v.value_link ~= nil then return v.value_link end
  if v.value_numeric ~= nil then return tonumber(v.value_numeric) or v.value_numeric end
  return nil
end

function M.custom_fields(raw)
  local out = {}
  for _, e in ipairs(raw.custom_field_entries or {}) do
    local name = type(e.custom_field) == "table" and e.custom_field.name
    if name then
      local values = out[name] or {}
      for _, v in ipairs(e.values or {}) do
        local cv = custom_value(v)
        if cv ~= nil then values[#values + 1] = cv end
      end
      out[name] = values
    end
  end
  for name, values in pairs(out) do
    if #values == 0 then out[name] = json.empty_array end
  end
  return out
end

function M.timestamps(raw)
  local out = {}
  for _, tv in ipairs(raw.incident_timestamp_values or {}) do
    local ts = tv.incident_timestamp
    if type(ts) == "table" and ts.name and type(tv.value) == "table" and str(tv.value.value) then
      out[ts.name] = tv.value.value
    end
  end
  return out
end

function M.durations(raw)
  local out = {}
  for _, dm in ipairs(raw.duration_metrics or {}) do
    local m = dm.duration_metric
    if type(m) == "table" and m.name and tonumber(dm.value_seconds) then
      out[m.name] = tonumber(dm.value_seconds)
    end
  end
  return out
end

-- When the incident was resolved, from its timestamps: a "resolved" timestamp wins over
-- a "fixed" one, which wins over "closed"; the earliest of a kind (deterministic).
function M.resolved_at(timestamps)
  for _, word in ipairs({ "resolved", "fixed", "closed" }) do
    local best
    for name, t in pairs(timestamps or {}) do
      if name:lower():find(word, 1, true) and (best == nil or t < best) then best = t end
    end
    if best then return best end
  end
  return nil
end

-- opts.severities: the account's severities, so an unknown severity is placed by rank.
function M.incident(raw, opts)
  opts = opts or {}
  local status = type(raw.incident_status) == "table" and raw.incident_status or {}
  local sev = type(raw.severity) == "table" and raw.severity or nil
  local priority = sev and severity_policy.to_priority(sev, opts.severities) or nil
  local lead = M.lead(raw)
  local timestamps = M.timestamps(raw)
  local roles = {}
  for _, a in ipairs(raw.incident_role_assignments or {}) do
    if type(a.role) == "table" then
      roles[#roles + 1] = {
        role = a.role.name or null,
        shortform = a.role.shortform or null,
        type = a.role.role_type or null,
        assignee = or_null(person(a.assignee)),
      }
    end
  end
  local itype = type(raw.incident_type) == "table" and raw.incident_type.name or nil
  local cf = M.custom_fields(raw)
  local services = services_policy.extract(raw)
  return {
    id = raw.id,
    reference = raw.reference,
    name = raw.name,
    summary = or_null(str(raw.summary)),
    status = { name = status.name or null, category = status.category or null },
    severity = sev and { name = sev.name or null, rank = sev.rank or null } or null,
    priority = or_null(priority),
    incident_type = or_null(itype),
    mode = or_null(raw.mode),
    visibility = or_null(raw.visibility),
    created_at = raw.created_at,
    updated_at = raw.updated_at,
    permalink = or_null(str(raw.permalink)),
    slack_channel_id = or_null(str(raw.slack_channel_id)),
    slack_channel_name = or_null(str(raw.slack_channel_name)),
    lead = or_null(lead),
    roles = next(roles) and roles or json.empty_array,
    custom_fields = cf,
    services = next(services) and services or json.empty_array,
    timestamps = timestamps,
    durations = M.durations(raw),
    postmortem_url = or_null(str(raw.postmortem_document_url)),
    call_url = or_null(str(raw.call_url)),
  }
end

local function sort_key(t)
  return timerange.parse_time(t) or math.huge
end

-- Merges incident updates and timeline items into one list in time order:
-- {at, kind = "update"|"timeline_item", text, status?, severity?, actor?}.
function M.timeline(updates, items)
  local out = {}
  for i, u in ipairs(updates or {}) do
    local status = type(u.new_incident_status) == "table" and u.new_incident_status.name or nil
    local sev = type(u.new_severity) == "table" and u.new_severity.name or nil
    local text = str(u.message)
    if not text then
      text = status and ("Status: " .. status) or "Incident updated"
      if sev then text = text .. ", severity: " .. sev end
    end
    out[#out + 1] = {
      at = u.created_at, kind = "update", text = text,
      status = status, severity = sev, actor = M.actor(u.updater),
      _order = i, _t = sort_key(u.created_at),
    }
  end
  -- A status change appears both as an update and as a timeline item carrying the
  -- same message: keep the update (it has the status and severity).
  local messages = {}
  for _, e in ipairs(out) do
    if e.text then
      local list = messages[e.text] or {}
      list[#list + 1] = e._t
      messages[e.text] = list
    end
  end
  local function duplicate(text, t)
    for _, ut in ipairs(text and messages[text] or {}) do
      if math.abs(ut - t) <= 120 then return true end
    end
    return false
  end
  local base = #out
  for i, it in ipairs(items or {}) do
    local at = str(it.timestamp) or it.created_at
    local text = str(it.title) or ""
    if str(it.description) then
      text = text ~= "" and (text .. ": " .. it.description) or it.description
    end
    if not duplicate(str(it.description), sort_key(at)) then
      out[#out + 1] = {
        at = at, kind = "timeline_item", text = text, actor = M.actor(it.creator),
        _order = base + i, _t = sort_key(at),
      }
    end
  end
  table.sort(out, function(a, b)
    if a._t ~= b._t then return a._t < b._t end
    return a._order < b._order
  end)
  for _, e in ipairs(out) do e._order, e._t = nil, nil end
  return out
end

return M
