-- Services policy: which services an incident is about. Teams edit the field names and
-- the known services below and send SIGHUP.
local M = {}

-- Custom fields that name services: Lua patterns matched against the field name in
-- lower case. Their values may be catalog entries, select options or free text
-- (comma separated).
M.fields = {
  "^affected services?%f[%W]", "^impacted services?%f[%W]", "^services?%f[%W]",
  "^affected components?%f[%W]", "^components?%f[%W]",
}

-- Known services: canonical name -> aliases. A name or alias found as a whole word in
-- the title or summary counts. `match_name = false` stops a common word (here
-- "search") from matching on its own; only its aliases match in text.
M.known = {
  ["payments-api"] = { aliases = { "payments api", "payment api", "payments service",
                                   "payment service", "payments", "pay-api", "svc-payments" } },
  ["checkout-service"] = { aliases = { "checkout service", "checkout api", "checkout",
                                       "svc-checkout" } },
  ["user-auth"] = { aliases = { "user auth", "auth service", "authentication service",
                                "login service", "auth", "login", "svc-auth" } },
  ["search"] = { match_name = false,
                 aliases = { "search service", "search api", "search-api", "search cluster",
                             "search index", "svc-search" } },
  ["notifications"] = { aliases = { "notification service", "notifications service",
                                    "notifications-service", "push notifications", "notify",
                                    "svc-notifications" } },
  ["inventory-api"] = { aliases = { "inventory api", "inventory service", "inventory",
                                    "svc-inventory" } },
}

local function squash(s)
  return (s:lower():gsub("[%s_]+", " "):gsub("^ ", ""):gsub(" $", ""))
end

-- "Payments API" -> "payments-api"; names not known keep their own slug.
local alias_cache, alias_source
local function alias_map()
  if alias_source == M.known and alias_cache then return alias_cache end
  local map = {}
  for name, spec in pairs(M.known) do
    map[squash(name)] = name
    map[(squash(name):gsub(" ", "-"))] = name
    for _, a in ipairs(spec.aliases or {}) do
      map[squash(a)] = name
      map[(squash(a):gsub(" ", "-"))] = name
    end
  end
  alias_cache, alias_source = map, M.known
  return map
end

function M.canonical(name)
  if type(name) ~= "string" then return nil end
  local s = squash(name)
  if s == "" then return nil end
  local map = alias_map()
  return map[s] or map[(s:gsub(" ", "-"))] or (s:gsub(" ", "-"))
end

function M.is_service_field(field_name)
  if type(field_name) ~= "string" then return false end
  local n = squash(field_name)
  for _, f in ipairs(M.fields) do
    if n:find(f) then return true end
  end
  return false
end

local function is_word_char(c)
  return c ~= "" and c:match("[%w_%-]") ~= nil
end

-- Whole-word search of a lower-cased, space-squashed phrase in a squashed text.
local function contains_word(text, phrase)
  local init = 1
  while true do
    local s, e = text:find(phrase, init, true)
    if not s then return false end
    if not is_word_char(text:sub(s - 1, s - 1)) and not is_word_char(text:sub(e + 1, e + 1)) then
      return true
    end
    init = s + 1
  end
end

-- Services named in free text (title, summary), canonical names.
function M.from_text(text)
  local found = {}
  if type(text) ~= "string" or text == "" then return found end
  local t = squash(text)
  for name, spec in pairs(M.known) do
    local hit = spec.match_name ~= false and contains_word(t, squash(name))
    if not hit then
      for _, a in ipairs(spec.aliases or {}) do
        if contains_word(t, squash(a)) then hit = true; break end
      end
    end
    if hit then found[#found + 1] = name end
  end
  table.sort(found)
  return found
end

local function add(set, list, name)
  local c = M.canonical(name)
  if c and not set[c] then set[c] = true; list[#list + 1] = c end
end

-- Values of the service custom fields of a raw IncidentV2, canonical names, plus the
-- option or catalog entry each came from ({service -> {field_id, option_id|entry_id}}).
function M.from_custom_fields(incident)
  local set, list, refs = {}, {}, {}
  for _, entry in ipairs(type(incident) == "table" and incident.custom_field_entries or {}) do
    local field = entry.custom_field or {}
    if M.is_service_field(field.name) then
      for _, v in ipairs(entry.values or {}) do
        if type(v.value_catalog_entry) == "table" then
          local ce = v.value_catalog_entry
          add(set, list, ce.name)
          refs[M.canonical(ce.name) or ""] = { field_id = field.id, catalog_entry_id = ce.id }
        elseif type(v.value_option) == "table" then
          add(set, list, v.value_option.value)
          refs[M.canonical(v.value_option.value) or ""] = { field_id = field.id, option_id = v.value_option.id }
        elseif type(v.value_text) == "string" then
          for part in v.value_text:gmatch("[^,;\n]+") do add(set, list, part) end
        end
      end
    end
  end
  refs[""] = nil
  return list, refs
end

-- All services of a raw IncidentV2: custom fields first, then known services in the
-- name and summary. Sorted, canonical.
function M.extract(incident)
  if type(incident) ~= "table" then return {} end
  local list = M.from_custom_fields(incident)
  local set = {}
  for _, s in ipairs(list) do set[s] = true end
  local text = (type(incident.name) == "string" and incident.name or "") .. "\n"
    .. (type(incident.summary) == "string" and incident.summary or "")
  for _, s in ipairs(M.from_text(text)) do
    if not set[s] then set[s] = true; list[#list + 1] = s end
  end
  table.sort(list)
  return list
end

-- True when `services` (canonical list) includes the wanted service (any spelling).
function M.matches(services, wanted)
  local w = M.canonical(wanted)
  for _, s in ipairs(services or {}) do
    if s == w then return true end
  end
  return false
end

return M
