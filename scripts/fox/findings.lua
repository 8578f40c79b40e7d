-- Findings: the ONE structured result of an investigation, which every renderer
-- (render/slack.lua, render/text.lua, render/json.lua), the timeline entries and the AI
-- step read.
--
--   local findings = require("fox.findings")
--   local f = findings.build(input)
--
-- input = {
--   incident  = the normalised incident (fox.normalize.incident)
--   parsed    = policies.parse result of its summary (optional)
--   context   = fox.custom_context result (optional)
--   services  = the services investigated
--   results   = source results (sources.query_all): {ok, source, items, summary, error, elapsed}
--   suspects  = ranked suspects (sources.suspects), optional: the changes most likely to
--               have caused the incident, each {title, kind, confidence, reason, ...}
--   options   = {root_cause_threshold = 0.6, max_suspects = 5, max_metrics = 6,
--                max_logs = 5, max_similar = 3}
--   elapsed   = seconds the investigation took (optional)
-- }
--
-- The findings (plain data, JSON-encodable):
-- {
--   version = 1,
--   incident = {id, reference, name, url, severity, status, created_at, started_at,
--               slack_channel_id},  (started_at: from the description, else created_at)
--   title, summary, ai_summary = {text, model, ai_written = true} | nil,
--   priority, services, critical_services,
--   suspects = {{rank, title, kind, service, repository, at, url, author, confidence, reason}},
--   metrics  = {{service, name, kind, text, at, direction, before, after, ratio, url}},
--   logs     = {{service, signature, count, first_seen, example, source, url}},
--   similar  = {{reference, name, url, score, status, resolution, lead, postmortem_url, created_at}},
--   errors   = error messages from the description,
--   links    = {{kind, url, label}} dashboards, runbooks, PagerDuty from the description,
--   next_steps = {"..."},
--   confidence, confidence_label ("high" | "medium" | "low"),
--   root_cause = {identified = bool, threshold, suspect = <the top suspect> | nil},
--   failed_sources = {{source, error}},
--   sources = {{source, ok, elapsed, count, summary, error}},
--   elapsed, generated_at (RFC 3339),
-- }
local timerange = require("fox.timerange")

local M = {}

M.VERSION = 1

M.defaults = {
  root_cause_threshold = 0.6,
  max_suspects = 5,
  max_metrics = 6,
  max_logs = 5,
  max_similar = 3,
  max_next_steps = 8,
}

-- Which sources give which evidence.
M.metric_sources = { prometheus = true }
M.log_sources = { loki = true, elasticsearch = true, opensearch = true }
M.similar_sources = { similar = true }

local function str(v)
  if type(v) == "string" and v ~= "" then return v end
  if type(v) == "number" then return tostring(v) end
  return nil
end

-- The first line of a message, at most n bytes (error texts can carry tracebacks).
local function one_line(v, n)
  v = str(v)
  if not v then return nil end
  v = v:match("^[^\n]*"):gsub("%s+$", "")
  if #v > n then v = v:sub(1, n - 3):gsub("[\128-\191]*$", "") .. "..." end
  return v
end

local function num(v)
  return tonumber(v)
end

local function epoch(v)
  if type(v) == "number" then
    if v > 1e12 then return v / 1000 end
    return v
  end
  if type(v) == "string" then
    if v:match("^%d+%.?%d*$") then return epoch(tonumber(v)) end
    return timerange.parse_time(v)
  end
  return nil
end
M.epoch = epoch

local function clamp01(x)
  x = tonumber(x) or 0
  if x ~= x then return 0 end
  if x < 0 then return 0 end
  if x > 1 then return 1 end
  return x
end

local function round2(x)
  return math.floor(x * 100 + 0.5) / 100
end

--- "00:18 UTC"
function M.clock(t)
  t = epoch(t)
  if not t then return nil end
  return os.date("!%H:%M UTC", math.floor(t))
end

--- "6 min", "2 h 5 min", "40 s"
function M.duration(seconds)
  seconds = math.floor(math.abs(tonumber(seconds) or 0) + 0.5)
  if seconds < 60 then return seconds .. " s" end
  local minutes = math.floor(seconds / 60 + 0.5)
  if minutes < 90 then return minutes .. " min" end
  if minutes < 48 * 60 then
    local h, m = minutes // 60, minutes % 60
    return m == 0 and (h .. " h") or (h .. " h " .. m .. " min")
  end
  return math.floor(minutes / 1440 + 0.5) .. " days"
end

--- When the incident started: the time its description gives ("since 10:42 UTC",
-- "Started: ..."), else its creation.
function M.start(f)
  local inc = type(f) == "table" and f.incident or {}
  return epoch(inc.started_at) or epoch(inc.created_at)
end

--- "6 min before the incident" / "3 min after the incident started"
function M.relative(t, start)
  t, start = epoch(t), epoch(start)
  if not t or not start then return nil end
  local d = t - start
  if math.abs(d) < 30 then return "at the incident start" end
  if d < 0 then return M.duration(-d) .. " before the incident" end
  return M.duration(d) .. " after the incident started"
end

function M.confidence_label(c)
  c = tonumber(c) or 0
  if c >= 0.7 then return "high" end
  if c >= 0.4 then return "medium" end
  return "low"
end

local function percent(c)
  return math.floor(clamp01(c) * 100 + 0.5) .. "%"
end
M.percent = percent

-- Ends a sentence with a period unless it already ends with punctuation.
local function sentence(s)
  s = s:gsub("%s+$", "")
  if s:match("[.!?]$") then return s end
  return s .. "."
end

-- The first sentence of a text (for the summary; the full text is in the lists).
local function first_sentence(s)
  local first = s:match("^(.-[.!?])%s") or s
  return first
end


---------------------------------------------------------------------------
-- evidence from the source results
---------------------------------------------------------------------------
local function format_value(v, unit)
  v = tonumber(v)
  if not v then return "?" end
  if unit == "ratio" then
    local p = v * 100
    if p ~= 0 and math.abs(p) < 0.1 then return string.format("%.2f%%", p) end
    return string.format("%.1f%%", p)
  end
  local s
  if math.abs(v) >= 100 then
    s = string.format("%.0f", v)
  elseif math.abs(v) >= 10 then
    s = string.format("%.1f", v)
  else
    s = string.format("%.3g", v)
  end
  if unit and unit ~= "" then s = s .. (unit:match("^%a") and unit ~= "s" and " " or "") .. unit end
  return s
end
M.format_value = format_value

local METRIC_NAMES = { error_rate = "error rate", latency_p99 = "p99 latency", saturation = "CPU",
                       latency_p95 = "p95 latency", request_rate = "request rate" }

local function metric_item(item, start, source)
  if type(item) ~= "table" then return nil end
  local change = type(item.change) == "table" and item.change or nil
  if item.status ~= nil and item.status ~= "changed" then return nil end
  if not change and not str(item.text) then return nil end
  local name = str(item.name) or str(item.query) or "metric"
  local label = METRIC_NAMES[name] or name:gsub("_", " ")
  local m = {
    service = str(item.service), name = name, kind = str(item.kind), source = source,
    url = str(item.url), unit = str(item.unit),
  }
  if change then
    m.at = epoch(change.at or change.at_iso)
    m.direction = str(change.direction)
    m.before, m.after, m.ratio = num(change.before), num(change.after), num(change.ratio)
    local what = change.type == "spike" and "spiked" or (m.direction == "down" and "dropped" or "rose")
    local text = (m.service and (m.service .. " ") or "") .. label .. " " .. what .. " from "
      .. format_value(m.before, m.unit) .. " to " .. format_value(m.after, m.unit)
    if m.ratio and m.ratio >= 1.05 and m.ratio < 1000 then text = text .. string.format(" (%.0fx)", m.ratio) end
    if m.at then text = text .. " at " .. M.clock(m.at) .. " (" .. (M.relative(m.at, start) or "") .. ")" end
    m.text = text
  else
    m.text = item.text
    m.at = epoch(item.at)
  end
  m.magnitude = m.ratio or (m.before and m.after and m.before ~= 0 and math.abs(m.after / m.before)) or 1
  return m
end

local function log_item(item, source)
  if type(item) ~= "table" then return nil end
  local sig = str(item.signature) or str(item.pattern) or str(item.message) or str(item.text)
  if not sig then return nil end
  local service = str(item.service)
  if not service and type(item.services) == "table" then
    local names = {}
    for _, x in ipairs(item.services) do if type(x) == "string" then names[#names + 1] = x end end
    service = #names > 0 and table.concat(names, ", ") or nil
  end
  return {
    service = service, signature = sig, count = num(item.count) or 1,
    first_seen = epoch(item.first_seen or item.first_seen_iso),
    last_seen = epoch(item.last_seen or item.last_seen_iso),
    example = str(item.example) or str(item.sample), source = source, url = str(item.url),
    new = item.new == true or item.is_new == true or nil,
  }
end

local function resolution_text(item)
  local r = item.resolution
  local text
  if type(r) == "table" then
    text = str(r.summary) or str(r.text) or str(r.message) or str(r.root_cause)
  else
    text = str(r) or str(item.resolution_summary) or str(item.root_cause)
  end
  -- "Resolved: rolled back ..." -> "rolled back ..." (it is shown after "Resolved")
  if text then text = text:gsub("^%s*[Rr]esolved%s*[:%-]%s*", ""):gsub("^%l", string.upper) end
  return text
end

local function similar_item(item)
  if type(item) ~= "table" then return nil end
  local inc = type(item.incident) == "table" and item.incident or item
  local ref = str(inc.reference) or str(inc.id)
  if not ref then return nil end
  local lead = inc.lead or (type(item.resolution) == "table" and item.resolution.lead) or item.lead
  if type(lead) == "table" then lead = str(lead.name) end
  local res = type(item.resolution) == "table" and item.resolution or {}
  return {
    reference = ref, id = str(inc.id), name = str(inc.name), url = str(inc.permalink) or str(inc.url),
    score = num(item.score) or num(item.similarity), status = type(inc.status) == "table"
      and str(inc.status.name) or str(inc.status), resolution = resolution_text(item),
    lead = str(lead), postmortem_url = str(res.postmortem_url) or str(inc.postmortem_url),
    created_at = str(inc.created_at), duration = num(res.duration_seconds) or num(item.duration_seconds),
  }
end

-- Flags as a set, whether given as a list ({"config"}) or a set ({config = true}).
local function flag_set(flags)
  if type(flags) ~= "table" then return nil end
  local set = {}
  for k, v in pairs(flags) do
    if type(k) == "number" and type(v) == "string" then set[v] = true
    elseif type(k) == "string" and v then set[k] = true end
  end
  return next(set) and set or nil
end

local function suspect_item(s, i)
  if type(s) ~= "table" then return nil end
  local title = str(s.title) or str(s.summary) or str(s.description)
  if not title then return nil end
  return {
    rank = i, title = title, kind = str(s.kind) or str(s.type) or "change",
    service = str(s.service), repository = str(s.repository) or str(s.repo),
    at = epoch(s.at or s.at_iso or s.time or s.created_at), url = str(s.url),
    author = str(s.author) or str(s.actor), confidence = round2(clamp01(s.confidence)),
    reason = str(s.reason) or (type(s.reasons) == "table" and table.concat(s.reasons, "; ")) or nil,
    flags = type(s.flags) == "table" and s.flags or nil,
    source = str(s.source),
  }
end

---------------------------------------------------------------------------
-- building
---------------------------------------------------------------------------
local function incident_of(inc)
  inc = type(inc) == "table" and inc or {}
  local sev = type(inc.severity) == "table" and str(inc.severity.name) or str(inc.severity)
  local status = type(inc.status) == "table" and str(inc.status.name) or str(inc.status)
  return {
    id = str(inc.id), reference = str(inc.reference) or str(inc.id) or "incident", name = str(inc.name) or "",
    url = str(inc.permalink), severity = sev, status = status, created_at = str(inc.created_at),
    slack_channel_id = str(inc.slack_channel_id),
  }
end

local function next_steps(f, parsed, context)
  local steps = {}
  local function add(s)
    if s and #steps < M.defaults.max_next_steps then steps[#steps + 1] = s end
  end
  local top = f.suspects[1]
  local similar = f.similar[1]
  if top and top.confidence >= 0.4 then
    local flags = flag_set(top.flags) or {}
    if top.kind == "deploy" or top.kind == "deployment" or top.kind == "release" then
      add("Consider rolling back " .. top.title .. (top.at and (" (" .. M.relative(top.at, M.start(f)) .. ")") or "")
        .. " and watch whether the errors stop.")
    elseif top.kind == "config" or flags.config then
      add("Review and consider reverting the config change " .. top.title .. ".")
    elseif top.kind == "migration" or flags.migration then
      add("Check the migration " .. top.title .. " (locks, long-running statements) before rolling anything back.")
    else
      add("Review " .. top.title .. (top.url and (" (" .. top.url .. ")") or "") .. " and consider reverting it.")
    end
  end
  if similar and similar.resolution then
    add(sentence("Last time (" .. similar.reference .. "): " .. similar.resolution))
  end
  for _, l in ipairs(f.links) do
    if l.kind == "runbook" then add("Follow the runbook: " .. l.url) break end
  end
  if f.logs[1] then
    local l = f.logs[1]
    add("Look at the logs for \"" .. l.signature .. "\"" .. (l.service and (" in " .. l.service) or "")
      .. ".")
  end
  for _, l in ipairs(f.links) do
    if l.kind == "dashboard" then add("Watch the dashboard: " .. l.url) break end
  end
  if not top and #f.metrics == 0 and #f.logs == 0 then
    add("fox found no change, metric shift or new error around the incident start: look at dependencies, "
      .. "traffic and infrastructure.")
  elseif not top then
    add("No deploy or change in the window before the incident: check dependencies and traffic.")
  end
  if context then
    local ok, cc = pcall(require, "fox.custom_context")
    if ok then
      for _, r in ipairs(cc.rules_for(context, f.incident.severity, f.priority)) do add("Team rule: " .. r.text) end
    end
  end
  for _, fs in ipairs(f.failed_sources) do
    add("Check " .. fs.source .. " by hand: fox could not query it.")
  end
  local _ = parsed
  return steps
end

-- Overall confidence: the top suspect's, raised when independent evidence agrees with
-- it (a metric shift or a new error right after the change, a similar incident), and
-- lowered for every source that could not be asked.
local function overall_confidence(f)
  local top = f.suspects[1]
  local c
  if top then
    c = top.confidence
    local t = top.at
    if t then
      for _, m in ipairs(f.metrics) do
        if m.at and m.at >= t - 60 and m.at <= t + 3600 then c = c + 0.1 break end
      end
      for _, l in ipairs(f.logs) do
        if l.first_seen and l.first_seen >= t - 60 and l.first_seen <= t + 3600 then c = c + 0.05 break end
      end
    end
    if f.similar[1] and (f.similar[1].score or 0) >= 0.6 then c = c + 0.05 end
  else
    c = (#f.metrics > 0 or #f.logs > 0) and 0.3 or 0.1
  end
  c = c - 0.05 * #f.failed_sources
  return round2(math.max(0.05, math.min(0.97, c)))
end

local function summary_of(f, parsed)
  local parts = {}
  local svc = #f.services > 0 and table.concat(f.services, ", ") or nil
  local err = parsed and parsed.errors and parsed.errors[1]
  parts[#parts + 1] = sentence(f.incident.reference .. (svc and (" (" .. svc .. ")") or "") .. ": "
    .. f.incident.name .. (err and (" — " .. err) or ""))
  local top = f.suspects[1]
  if top then
    parts[#parts + 1] = sentence("Most likely cause: " .. top.title
      .. (top.at and (", " .. M.relative(top.at, M.start(f))) or "")
      .. " (confidence " .. percent(top.confidence) .. ")")
  else
    parts[#parts + 1] = "No suspect change found in the window before the incident."
  end
  if f.metrics[1] then parts[#parts + 1] = sentence("Metrics: " .. f.metrics[1].text) end
  if f.logs[1] then
    local l = f.logs[1]
    parts[#parts + 1] = "Top log signature: \"" .. l.signature .. "\" (" .. math.floor(l.count) .. "x"
      .. (l.first_seen and (", first seen " .. M.clock(l.first_seen)) or "") .. ")."
  end
  if f.similar[1] then
    local s = f.similar[1]
    parts[#parts + 1] = sentence("Similar: " .. s.reference .. (s.name and (" \"" .. s.name .. "\"") or "")
      .. (s.resolution and (", resolved: " .. first_sentence(s.resolution)) or ""))
  end
  if #f.failed_sources > 0 then
    local names = {}
    for _, fs in ipairs(f.failed_sources) do names[#names + 1] = fs.source end
    parts[#parts + 1] = "Could not query: " .. table.concat(names, ", ") .. "."
  end
  return table.concat(parts, " ")
end

--- Builds the findings from what the investigation gathered.
function M.build(input)
  input = input or {}
  local opts = {}
  for k, v in pairs(M.defaults) do opts[k] = v end
  for k, v in pairs(input.options or {}) do opts[k] = v end
  local inc = input.incident or {}
  local f = {
    version = M.VERSION,
    incident = incident_of(inc),
    priority = str(inc.priority),
    services = {}, critical_services = {}, suspects = {}, metrics = {}, logs = {}, similar = {},
    errors = {}, links = {}, next_steps = {}, failed_sources = {}, sources = {},
  }
  local start = epoch(inc.created_at)
  if input.parsed and input.parsed.fields and input.parsed.fields.started_at then
    start = input.parsed.fields.started_at
  end
  f.incident.started_at = start and timerange.format_time(start) or nil
  f.title = f.incident.reference .. ": " .. f.incident.name

  for _, s in ipairs(input.services or inc.services or {}) do
    if type(s) == "string" then f.services[#f.services + 1] = s end
  end
  if input.context then
    local ok, cc = pcall(require, "fox.custom_context")
    for _, s in ipairs(f.services) do
      if ok and cc.is_critical(input.context, s) then f.critical_services[#f.critical_services + 1] = s end
    end
  end

  -- sources
  for _, r in ipairs(input.results or {}) do
    if type(r) == "table" then
      local name = str(r.source) or "source"
      local items = type(r.items) == "table" and r.items or {}
      f.sources[#f.sources + 1] = { source = name, ok = r.ok ~= false, elapsed = num(r.elapsed),
                                    count = #items, summary = one_line(r.summary, 300),
                                    error = r.ok == false and (one_line(r.error, 300) or "failed") or nil }
      if r.ok == false then
        f.failed_sources[#f.failed_sources + 1] = { source = name, error = f.sources[#f.sources].error }
      elseif M.metric_sources[name] then
        for _, it in ipairs(items) do
          local m = metric_item(it, start, name)
          if m then f.metrics[#f.metrics + 1] = m end
        end
      elseif M.log_sources[name] then
        for _, it in ipairs(items) do
          local l = log_item(it, name)
          if l then f.logs[#f.logs + 1] = l end
        end
      elseif M.similar_sources[name] then
        for _, it in ipairs(items) do
          local s = similar_item(it)
          if s then f.similar[#f.similar + 1] = s end
        end
      end
    end
  end
  -- metrics: the biggest shifts first; logs: new and frequent first; similar: best first
  table.sort(f.metrics, function(a, b)
    if (a.magnitude or 1) ~= (b.magnitude or 1) then return (a.magnitude or 1) > (b.magnitude or 1) end
    return (a.at or 0) < (b.at or 0)
  end)
  -- A signature first seen shortly before the incident (or flagged new by its source)
  -- is news; one seen all along is background noise, however frequent.
  for _, l in ipairs(f.logs) do
    if l.new == nil and l.first_seen and start then l.new = l.first_seen >= start - 1800 or nil end
  end
  table.sort(f.logs, function(a, b)
    if (a.new and 1 or 0) ~= (b.new and 1 or 0) then return a.new == true end
    if a.count ~= b.count then return a.count > b.count end
    return a.signature < b.signature
  end)
  table.sort(f.similar, function(a, b) return (a.score or 0) > (b.score or 0) end)
  for i = #f.metrics, opts.max_metrics + 1, -1 do f.metrics[i] = nil end
  for i = #f.logs, opts.max_logs + 1, -1 do f.logs[i] = nil end
  for i = #f.similar, opts.max_similar + 1, -1 do f.similar[i] = nil end
  for _, m in ipairs(f.metrics) do m.magnitude = nil end

  -- suspects, ranked by the suspects policy (kept in its order)
  for _, s in ipairs(input.suspects or {}) do
    local item = suspect_item(s, #f.suspects + 1)
    if item then f.suspects[#f.suspects + 1] = item end
    if #f.suspects >= opts.max_suspects then break end
  end

  -- description
  local parsed = input.parsed
  if parsed then
    for i, e in ipairs(parsed.errors or {}) do
      if i > 5 then break end
      f.errors[#f.errors + 1] = e
    end
    for _, u in ipairs(parsed.urls or {}) do
      if u.kind ~= "other" and #f.links < 10 then
        f.links[#f.links + 1] = { kind = u.kind, url = u.url, label = u.label, provider = u.provider }
      end
    end
  end

  f.confidence = overall_confidence(f)
  f.confidence_label = M.confidence_label(f.confidence)
  local threshold = tonumber(opts.root_cause_threshold) or M.defaults.root_cause_threshold
  f.root_cause = { identified = f.suspects[1] ~= nil and f.confidence >= threshold, threshold = threshold,
                   suspect = f.confidence >= threshold and f.suspects[1] or nil }
  f.next_steps = next_steps(f, parsed, input.context)
  f.summary = summary_of(f, parsed)
  f.elapsed = num(input.elapsed)
  f.generated_at = timerange.format_time(input.now or os.time())
  return f
end

--- Adds an AI-written summary (kept apart from fox's own summary and marked as such).
function M.add_ai_summary(f, text, model)
  if type(f) ~= "table" or type(text) ~= "string" or text == "" then return f end
  f.ai_summary = { text = text, model = model, ai_written = true }
  return f
end

return M
