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

-- A custom field every incident fills with its services (a select field or a
-- catalog-backed one), e.g. "Affected services". When set, list_recent_incidents asks
-- the API for incidents whose field holds the service's option or catalog entry
-- (custom_field[<id>][one_of]=...) instead of reading every incident of the time range;
-- incidents naming the service only in their title or summary are then not listed.
-- nil: filter every incident of the time range with this policy.
M.api_filter_field = nil

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

-- "Payments API" -> "payments-api"; names not known keep their own slug. `known`
-- (optional) is the table of known services to use instead of M.known (see
-- M.merged_known).
local alias_cache, alias_source
local function alias_map(known)
  known = known or M.known
  if alias_source == known and alias_cache then return alias_cache end
  local map = {}
  for name, spec in pairs(known) do
    map[squash(name)] = name
    map[(squash(name):gsub(" ", "-"))] = name
    for _, a in ipairs(spec.aliases or {}) do
      map[squash(a)] = name
      map[(squash(a):gsub(" ", "-"))] = name
    end
  end
  if known == M.known then alias_cache, alias_source = map, known end
  return map
end

function M.canonical(name, known)
  if type(name) ~= "string" then return nil end
  local s = squash(name)
  if s == "" then return nil end
  local map = alias_map(known)
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

-- The phrases to look for in text, squashed once per version of M.known (`known`, when
-- given, is used instead of M.known and not cached).
local phrases_cache, phrases_source
local function text_phrases(known)
  known = known or M.known
  if phrases_source == known and phrases_cache then return phrases_cache end
  local out = {}
  for name, spec in pairs(known) do
    local list = {}
    if spec.match_name ~= false then list[#list + 1] = squash(name) end
    for _, a in ipairs(spec.aliases or {}) do list[#list + 1] = squash(a) end
    out[#out + 1] = { name = name, phrases = list }
  end
  if known == M.known then phrases_cache, phrases_source = out, known end
  return out
end

-- Services named in free text (title, summary), canonical names. `known`: as for
-- M.canonical.
function M.from_text(text, known)
  local found = {}
  if type(text) ~= "string" or text == "" then return found end
  local t = squash(text)
  for _, entry in ipairs(text_phrases(known)) do
    for _, phrase in ipairs(entry.phrases) do
      if contains_word(t, phrase) then
        found[#found + 1] = entry.name
        break
      end
    end
  end
  table.sort(found)
  return found
end

-- M.known plus the config's known services (name -> {aliases = {...}} or a list of
-- aliases) and plain names (from the custom context), for one investigation. Returns
-- M.known itself when there is nothing to add.
function M.merged_known(extra_known, extra_names)
  local has_known = type(extra_known) == "table" and next(extra_known) ~= nil
  local has_names = type(extra_names) == "table" and #extra_names > 0
  if not has_known and not has_names then return M.known end
  local k = {}
  for name, spec in pairs(M.known) do k[name] = spec end
  for name, spec in pairs(has_known and extra_known or {}) do
    if type(name) == "string" then
      local aliases = type(spec) == "table" and (spec.aliases or (spec[1] ~= nil and spec)) or {}
      local c = M.canonical(name) or name
      local cur = k[c]
      local merged = { match_name = type(spec) == "table" and spec.match_name or nil, aliases = {} }
      if cur then
        if merged.match_name == nil then merged.match_name = cur.match_name end
        for _, a in ipairs(cur.aliases or {}) do merged.aliases[#merged.aliases + 1] = a end
      end
      for _, a in ipairs(aliases) do
        if type(a) == "string" then merged.aliases[#merged.aliases + 1] = a end
      end
      k[c] = merged
    end
  end
  for _, name in ipairs(has_names and extra_names or {}) do
    if type(name) == "string" then
      local c = M.canonical(name, k)
      if c and not k[c] then k[c] = { aliases = {} } end
    end
  end
  return k
end

local function add(set, list, name)
  local c = M.canonical(name)
  if c and not set[c] then set[c] = true; list[#list + 1] = c end
end

-- Values of the service custom fields of a raw IncidentV2, canonical names, plus the
-- option or catalog entry each came from ({service -> {field_id, option_id|entry_id}}).
function M.from_custom_fields(incident)
  local set, list, refs = {}, {}, {}
  local entries = type(incident) == "table" and incident.custom_field_entries
  -- Values of an unexpected type (an API change, a hand-made payload) are skipped.
  for _, entry in ipairs(type(entries) == "table" and entries or {}) do
    local field = type(entry) == "table" and type(entry.custom_field) == "table" and entry.custom_field or {}
    local values = type(entry) == "table" and type(entry.values) == "table" and entry.values or {}
    if M.is_service_field(field.name) then
      for _, v in ipairs(values) do
        v = type(v) == "table" and v or {}
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
-- extra (optional, for investigations): parsed = names from the description's
-- "Service:" lines; known = the config's known services (name -> {aliases}); context =
-- service names from the custom context. Known and context services count when named
-- in the title or summary (whole words, aliases too).
function M.extract(incident, extra)
  if type(incident) ~= "table" then return {} end
  local known = extra and M.merged_known(extra.known, extra.context) or M.known
  local list, set = {}, {}
  local function add_name(s)
    if s and not set[s] then set[s] = true; list[#list + 1] = s end
  end
  for _, s in ipairs(M.from_custom_fields(incident)) do
    add_name(known ~= M.known and M.canonical(s, known) or s)
  end
  for _, name in ipairs(extra and type(extra.parsed) == "table" and extra.parsed or {}) do
    if type(name) == "string" then add_name(M.canonical(name, known)) end
  end
  local text = (type(incident.name) == "string" and incident.name or "") .. "\n"
    .. (type(incident.summary) == "string" and incident.summary or "")
  for _, s in ipairs(M.from_text(text, known)) do add_name(s) end
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
