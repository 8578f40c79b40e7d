-- The config's `custom_context`: free text in which a team tells fox about itself
-- ("Our critical services are payments-api, checkout-service, and user-auth. High
-- severity incidents automatically page the SRE on-call team."). fox reads service
-- names, critical services, owners and severity rules out of it, and hands the whole
-- text to the AI step.
--
--   local cc = require("fox.custom_context")
--   local c = cc.parse(text)
--   c.text               the text (trimmed, capped at M.max_bytes)
--   c.sentences          its sentences
--   c.services           every service named (canonical names, in order)
--   c.critical_services  services the text calls critical (tier 0/1, business critical...)
--   c.owners             service -> owning team ("payments-api is owned by the payments team")
--   c.teams              teams named ("SRE on-call team")
--   c.rules              {severity=, text=} sentences about a severity ("High severity
--                        incidents automatically page the SRE on-call team")
--   cc.is_critical(c, service), cc.rules_for(c, severity_name), cc.prompt(c)
--
-- Never raises; any text (or none) gives a result.
local M = {}

M.max_bytes = 16 * 1024

-- Words that make a sentence about critical services.
M.critical_words = { "critical", "tier 0", "tier-0", "tier0", "tier 1", "tier-1", "tier1",
                     "business-critical", "mission-critical", "most important", "revenue-critical",
                     "p0 services", "crown jewels" }

-- Suffixes that make a hyphenated word a service name ("payments-api", "user-auth").
M.service_suffixes = { "api", "service", "svc", "worker", "workers", "db", "database", "web",
                       "app", "gateway", "gw", "server", "proxy", "queue", "cache", "auth",
                       "frontend", "backend", "consumer", "producer", "cron", "job", "jobs",
                       "scheduler", "indexer", "store", "engine", "ui", "bff", "cluster", "pipeline",
                       "processor", "dispatcher", "router", "ingest", "ingestion" }

local SEVERITY_WORDS = { "critical", "high", "medium", "low", "major", "minor", "sev0", "sev1",
                         "sev2", "sev3", "sev 0", "sev 1", "sev 2", "sev 3", "p0", "p1", "p2", "p3",
                         "p4" }

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function services_policy()
  local ok, p = pcall(require, "policies.services")
  if ok and type(p) == "table" then return p end
  return nil
end

local function canonical(name)
  local p = services_policy()
  if p and p.canonical then
    local ok, c = pcall(p.canonical, name)
    if ok and c then return c end
  end
  return (name:lower():gsub("%s+", "-"))
end

local function has_suffix(word)
  local last = word:match("[-_](%w+)$")
  if not last then return false end
  last = last:lower()
  for _, s in ipairs(M.service_suffixes) do
    if last == s then return true end
  end
  return false
end

local function known_service(word)
  local p = services_policy()
  if not (p and type(p.known) == "table") then return nil end
  local c = canonical(word)
  if p.known[c] then return c end
  return nil
end

local function sentences_of(text)
  local out = {}
  -- Sentence ends: ". ", "! ", "? ", ";" and line breaks; a dot inside a word
  -- ("v2.3", "api.example.com") does not end one.
  local s = text:gsub("\r\n?", "\n"):gsub("([.!?])%s+", "%1\n"):gsub(";%s*", "\n")
  for line in (s .. "\n"):gmatch("([^\n]*)\n") do
    line = trim(line:gsub("^[-*+•]%s+", ""))
    if line ~= "" then out[#out + 1] = line end
  end
  return out
end

local function add(list, set, name)
  if name and name ~= "" and not set[name] then
    set[name] = true
    list[#list + 1] = name
  end
end

-- The items of an enumeration: "a, b, and c" / "a and b" / "a & b" / "a/b".
local function items_of(list_text)
  local out = {}
  local t = list_text:gsub("%s+and%s+", ","):gsub("%s*&%s*", ","):gsub("%s+or%s+", ",")
  for part in t:gmatch("[^,/]+") do
    local p = trim(part:gsub("[`*_\"']", ""))
    p = trim(p:gsub("^the%s+", ""):gsub("^our%s+", ""):gsub("[.!?:]+$", ""))
    p = trim(p:gsub("%s*%(.*%)$", ""))
    if p ~= "" and #p <= 60 and select(2, p:gsub("%S+", "")) <= 3 then out[#out + 1] = p end
  end
  return out
end

-- Names that look like services in a sentence: hyphenated words with a service
-- suffix, and names the services policy knows.
local function names_in(sentence)
  local out = {}
  for word in sentence:gmatch("[%w][%w_%-%.]*[%w]") do
    if (word:find("[-_]") and has_suffix(word)) or known_service(word) then
      out[#out + 1] = canonical(word)
    end
  end
  return out
end

-- "the SRE on-call team", "the payments team": up to four words after "the" ending
-- in "team".
local function teams_in(sentence)
  local out = {}
  local words = {}
  for w in sentence:gmatch("%S+") do words[#words + 1] = w end
  for i, w in ipairs(words) do
    if w:lower() == "the" then
      for j = i + 2, math.min(#words, i + 5) do
        local last = words[j]:lower():gsub("[%p]+$", "")
        if last == "team" or last == "teams" then
          local parts = {}
          for k = i + 1, j do parts[#parts + 1] = words[k] end
          out[#out + 1] = (table.concat(parts, " "):gsub("[%p]+$", ""))
          break
        end
        if words[j]:find("[,.;:!?]$") then break end
      end
    end
  end
  return out
end

local function mentions_critical(lower)
  if lower:find("not critical", 1, true) or lower:find("non%-critical") or lower:find("n't critical", 1, true)
    or lower:find("not business", 1, true) or lower:find("less critical", 1, true) then
    return false
  end
  for _, w in ipairs(M.critical_words) do
    if lower:find(w, 1, true) then return true end
  end
  return false
end

local function severity_of(lower)
  for _, w in ipairs(SEVERITY_WORDS) do
    local s, e = lower:find(w, 1, true)
    while s do
      local before, after = lower:sub(s - 1, s - 1), lower:sub(e + 1, e + 1)
      if not before:match("[%w]") and not after:match("[%w]") then
        local tail = lower:sub(e + 1, e + 24)
        -- "critical severity", "high-severity incidents", "SEV1 incidents", "P1s"
        if tail:match("^[%s-]*sev") or tail:match("^[%s-]*prio") or tail:match("^s?%s+incident")
          or w:match("^[sp]") then
          return w
        end
      end
      s, e = lower:find(w, e + 1, true)
    end
  end
  return nil
end

local function parse(text)
  local c = { text = "", sentences = {}, services = {}, critical_services = {}, owners = {},
              teams = {}, rules = {} }
  if type(text) ~= "string" then return c end
  if #text > M.max_bytes then text = text:sub(1, M.max_bytes) end
  if not utf8.len(text) then text = text:gsub("[\128-\255]", "?") end
  c.text = trim(text)
  c.sentences = sentences_of(c.text)
  local svc_set, crit_set, team_set = {}, {}, {}
  for _, sentence in ipairs(c.sentences) do
    local lower = sentence:lower()
    local found = names_in(sentence)
    -- "services are a, b and c" / "services: a, b" / "services include a and b"
    local list
    local at = sentence:find("[Ss]ervices?%f[%W]")
    if at then
      local after = sentence:sub(at)
      list = after:match("^[Ss]ervices?%s*:%s*(.+)$") or after:match("^[Ss]ervices?[^:]-%s+are%s+(.+)$")
        or after:match("^[Ss]ervices?[^:]-%s+includes?%s+(.+)$")
    end
    if list then
      for _, item in ipairs(items_of(list)) do
        if item:find("^[%w][%w_%-%.]*$") or known_service(item) then found[#found + 1] = canonical(item) end
      end
    end
    local is_critical = mentions_critical(lower) and (lower:find("service", 1, true) or list ~= nil
      or #found > 0) and not severity_of(lower)
    for _, name in ipairs(found) do
      add(c.services, svc_set, name)
      if is_critical then add(c.critical_services, crit_set, name) end
    end
    -- owners: "X is owned by the Y team", "the Y team owns X"
    local svc, team = sentence:match("^(.-)%s+is%s+owned%s+by%s+(.+)$")
    if not svc then team, svc = sentence:match("^(.-)%s+owns?%s+([%w][%w_%-]*[%w])") end
    if svc and team then
      svc = trim(svc:gsub("^[Tt]he%s+", ""):gsub("^[Oo]ur%s+", ""))
      team = trim(team:gsub("[.!?]+$", ""):gsub("^[Tt]he%s+", ""))
      if svc ~= "" and select(2, svc:gsub("%S+", "")) <= 3 then
        local name = canonical(svc)
        c.owners[name] = team
        add(c.services, svc_set, name)
      end
      if team ~= "" and select(2, team:gsub("%S+", "")) <= 5 then add(c.teams, team_set, team) end
    end
    for _, t in ipairs(teams_in(sentence)) do add(c.teams, team_set, t) end
    local sev = severity_of(lower)
    if sev then
      c.rules[#c.rules + 1] = { severity = sev, text = sentence }
    end
  end
  return c
end

function M.parse(text)
  local ok, res = pcall(parse, text)
  if ok then return res end
  return { text = type(text) == "string" and text:sub(1, M.max_bytes) or "", sentences = {}, services = {},
           critical_services = {}, owners = {}, teams = {}, rules = {}, error = tostring(res) }
end

function M.is_critical(c, service)
  if type(c) ~= "table" or type(service) ~= "string" then return false end
  local name = canonical(service)
  for _, s in ipairs(c.critical_services or {}) do
    if s == name then return true end
  end
  return false
end

-- The rules that apply to an incident of this severity name ("High", "SEV1") or
-- priority ("P1"). A rule's word must be one of them: fox does not guess whether a
-- team's SEV1 is its P0 or its P1.
function M.rules_for(c, severity_name, priority)
  local out = {}
  if type(c) ~= "table" then return out end
  local sev = type(severity_name) == "string" and severity_name:lower() or nil
  local pr = type(priority) == "string" and priority:lower() or nil
  for _, r in ipairs(c.rules or {}) do
    local rs = r.severity:gsub("%s", "")
    if rs == sev or rs == pr then out[#out + 1] = r end
  end
  return out
end

-- The text handed to the AI step.
function M.prompt(c)
  if type(c) ~= "table" or c.text == "" then return "" end
  local lines = { c.text }
  if #c.critical_services > 0 then
    lines[#lines + 1] = "Critical services: " .. table.concat(c.critical_services, ", ") .. "."
  end
  return table.concat(lines, "\n")
end

return M
