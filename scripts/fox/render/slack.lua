-- Findings as a Slack message: Block Kit blocks within Slack's limits, plus the `text`
-- fallback Slack shows in notifications (and where blocks cannot be shown).
--
--   local render = require("fox.render.slack")
--   local msg = render.findings(findings)        -- {text=, blocks=}
--   local msg = render.investigating(incident, {sources = {"prometheus", ...}})
--   local s = render.as_text(msg)                 -- what the message says, as plain text
--
-- Limits (Slack's): at most 50 blocks; a section's text at most 3000 characters; a
-- header's 150 (plain text); a field's 2000 and at most 10 fields; 10 context elements.
-- Lengths are counted as Slack counts them (UTF-16 code units), and cut on character
-- boundaries. Whatever the findings hold, the message stays within the limits: long
-- lists are cut with "... N more", extra blocks are dropped with a note.
local findings_mod = require("fox.findings")

local M = {}

M.LIMITS = { blocks = 50, section = 3000, header = 150, field = 2000, fields = 10,
             context_elements = 10, context_text = 2000, text = 3000 }

---------------------------------------------------------------------------
-- text helpers
---------------------------------------------------------------------------

-- Length in UTF-16 code units (what Slack and JavaScript count). Invalid UTF-8 bytes
-- count one each.
local function u16len(s)
  local n = 0
  local ok = pcall(function()
    for _, c in utf8.codes(s) do n = n + (c > 0xFFFF and 2 or 1) end
  end)
  if not ok then return #s end
  return n
end
M.length = u16len

-- Cuts s to at most max UTF-16 units, ending with "…" when it was cut.
local function cut(s, max)
  s = tostring(s or "")
  if u16len(s) <= max then return s end
  local out, n = {}, 0
  local ok = pcall(function()
    for _, c in utf8.codes(s) do
      local w = c > 0xFFFF and 2 or 1
      if n + w > max - 1 then break end
      n = n + w
      out[#out + 1] = utf8.char(c)
    end
  end)
  if not ok then return s:sub(1, max - 3) .. "..." end
  return table.concat(out) .. "…"
end
M.cut = cut

-- mrkdwn escaping: Slack requires &, < and > escaped in text it should show as is.
local function esc(s)
  return (tostring(s or ""):gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"))
end
M.escape = esc

local function link(url, label)
  if type(url) ~= "string" or not url:match("^https?://") or url:find("[|<>%s]") then
    return esc(label or url or "")
  end
  if not label or label == "" then return "<" .. url .. ">" end
  return "<" .. url .. "|" .. esc(label):gsub("|", "¦") .. ">"
end
M.link = link

-- A code span that cannot be broken by the text inside it.
local function code(s)
  s = tostring(s or ""):gsub("`", "'"):gsub("\n", " ")
  return "`" .. esc(s) .. "`"
end

local function section(text)
  return { type = "section", text = { type = "mrkdwn", text = cut(text, M.LIMITS.section) } }
end

-- A titled list as one or more sections of at most 3000 characters, lines never split
-- (a line longer than a section is cut).
local function list_sections(title, lines, max_blocks)
  local blocks = {}
  local cur = "*" .. title .. "*"
  for i, line in ipairs(lines) do
    line = cut(line, M.LIMITS.section - 40)
    if u16len(cur) + 1 + u16len(line) > M.LIMITS.section then
      blocks[#blocks + 1] = section(cur)
      if #blocks >= max_blocks then
        blocks[#blocks] = section(cut(cur, M.LIMITS.section - 40) .. "\n_… " .. (#lines - i + 1) .. " more_")
        return blocks
      end
      cur = line
    else
      cur = cur .. "\n" .. line
    end
  end
  blocks[#blocks + 1] = section(cur)
  return blocks
end

local function pct(c)
  return findings_mod.percent(c)
end

---------------------------------------------------------------------------
-- findings
---------------------------------------------------------------------------
local CONFIDENCE_ICON = { high = ":large_red_square:", medium = ":large_orange_square:", low = ":white_large_square:" }

local function suspect_lines(f)
  local lines = {}
  for i, s in ipairs(f.suspects) do
    local meta = { pct(s.confidence), s.kind }
    if s.service then meta[#meta + 1] = s.service end
    if s.at then
      local rel = findings_mod.relative(s.at, findings_mod.start(f))
      meta[#meta + 1] = findings_mod.clock(s.at) .. (rel and (" (" .. rel .. ")") or "")
    end
    if s.author then meta[#meta + 1] = "by " .. esc(s.author) end
    local line = i .. ". " .. (i == 1 and "*" or "") .. link(s.url, cut(s.title, 200)) .. (i == 1 and "*" or "")
      .. " — " .. table.concat(meta, " · ")
    if s.reason then line = line .. "\n      _" .. esc(cut(s.reason, 600)):gsub("_", " ") .. "_" end
    lines[#lines + 1] = line
  end
  return lines
end

local function metric_lines(f)
  local lines = {}
  for _, m in ipairs(f.metrics) do
    local t = cut(m.text, 500)
    lines[#lines + 1] = "• " .. (m.url and link(m.url, t) or esc(t))
  end
  return lines
end

local function log_lines(f)
  local lines = {}
  for _, l in ipairs(f.logs) do
    local meta = { math.floor(l.count) .. "×" }
    if l.service then meta[#meta + 1] = esc(l.service) end
    if l.first_seen then meta[#meta + 1] = "first seen " .. findings_mod.clock(l.first_seen) end
    if l.source then meta[#meta + 1] = esc(l.source) end
    lines[#lines + 1] = "• " .. code(cut(l.signature, 300)) .. " — " .. table.concat(meta, " · ")
  end
  return lines
end

local function similar_lines(f)
  local lines = {}
  for _, s in ipairs(f.similar) do
    local head = "• " .. link(s.url, s.reference) .. (s.name and (" " .. esc(cut(s.name, 200))) or "")
    local meta = {}
    if s.score then meta[#meta + 1] = "similarity " .. pct(s.score) end
    if s.status then meta[#meta + 1] = esc(s.status) end
    if s.lead then meta[#meta + 1] = "lead " .. esc(s.lead) end
    if #meta > 0 then head = head .. " (" .. table.concat(meta, ", ") .. ")" end
    if s.resolution then head = head .. "\n      Resolved: " .. esc(cut(s.resolution, 600)) end
    if s.postmortem_url then head = head .. "\n      " .. link(s.postmortem_url, "Postmortem") end
    lines[#lines + 1] = head
  end
  return lines
end

local function source_context(f)
  local parts = {}
  for _, s in ipairs(f.sources) do
    if s.ok then
      parts[#parts + 1] = ":white_check_mark: " .. esc(s.source)
        .. (s.elapsed and string.format(" %.1fs", s.elapsed) or "")
    else
      parts[#parts + 1] = ":x: " .. esc(s.source) .. (s.error and (" — " .. esc(cut(s.error, 200))) or "")
    end
  end
  return parts
end

--- The findings message: {text=, blocks=}.
function M.findings(f, opts)
  opts = opts or {}
  local blocks = {}
  local inc = f.incident or {}
  local header = ":fox_face: " .. (inc.reference or "Incident") .. ": " .. (inc.name or "")
  blocks[#blocks + 1] = { type = "header",
                          text = { type = "plain_text", text = cut(header, M.LIMITS.header), emoji = true } }

  local label = f.confidence_label or findings_mod.confidence_label(f.confidence)
  blocks[#blocks + 1] = section("*Summary*\n" .. esc(f.summary or ""))
  if f.ai_summary and f.ai_summary.text then
    local model = f.ai_summary.model and (", " .. esc(f.ai_summary.model)) or ""
    blocks[#blocks + 1] = section("*AI summary* _(AI-written" .. model
      .. "; check it against the evidence)_\n" .. esc(f.ai_summary.text))
  end
  local fields = {
    { type = "mrkdwn", text = "*Priority*\n" .. esc(f.priority or (inc.severity or "unknown")) },
    { type = "mrkdwn",
      text = "*Confidence*\n" .. (CONFIDENCE_ICON[label] or "") .. " " .. pct(f.confidence) .. " (" .. label .. ")" },
    { type = "mrkdwn",
      text = "*Services*\n" .. esc(#f.services > 0 and table.concat(f.services, ", ") or "none identified") },
  }
  if #f.critical_services > 0 then
    fields[#fields + 1] = { type = "mrkdwn", text = "*Critical*\n" .. esc(table.concat(f.critical_services, ", ")) }
  end
  for _, fl in ipairs(fields) do fl.text = cut(fl.text, M.LIMITS.field) end
  blocks[#blocks + 1] = { type = "section", fields = fields }

  -- The body: every list gets a share of the block budget (the header, summary,
  -- fields, divider and the two context blocks take the rest).
  local reserved = #blocks + 3
  local lists = {
    { "Suspected changes", #f.suspects > 0 and suspect_lines(f)
      or { "_No deploy or change found in the window before the incident._" } },
    { "Metrics", metric_lines(f) },
    { "Logs", log_lines(f) },
    { "Similar incidents", similar_lines(f) },
  }
  local steps = {}
  for i, s in ipairs(f.next_steps or {}) do steps[#steps + 1] = i .. ". " .. esc(s) end
  lists[#lists + 1] = { "Next steps", steps }
  local links = {}
  for _, l in ipairs(f.links or {}) do
    local provider = l.provider and l.provider ~= l.kind and (" (" .. l.provider .. ")") or ""
    links[#links + 1] = link(l.url, (l.kind:gsub("^%l", string.upper)) .. provider)
  end
  if #links > 0 then lists[#lists + 1] = { "Links", { table.concat(links, " · ") } } end

  blocks[#blocks + 1] = { type = "divider" }
  local budget = M.LIMITS.blocks - reserved
  local nonempty = 0
  for _, l in ipairs(lists) do if #l[2] > 0 then nonempty = nonempty + 1 end end
  for _, l in ipairs(lists) do
    if #l[2] > 0 then
      local share = math.max(1, budget // math.max(1, nonempty))
      for _, b in ipairs(list_sections(l[1], l[2], share)) do
        if #blocks < M.LIMITS.blocks - 2 then blocks[#blocks + 1] = b end
      end
    end
  end

  -- sources (at most 10 elements) and the footer
  local ctx = source_context(f)
  if #ctx > 0 then
    local elements = {}
    local per = math.ceil(#ctx / (M.LIMITS.context_elements - 1))
    for i = 1, #ctx, per do
      local chunk = {}
      for j = i, math.min(#ctx, i + per - 1) do chunk[#chunk + 1] = ctx[j] end
      elements[#elements + 1] = { type = "mrkdwn", text = cut(table.concat(chunk, "   "), M.LIMITS.context_text) }
    end
    blocks[#blocks + 1] = { type = "context", elements = elements }
  end
  local footer = "fox investigated " .. esc(inc.reference or "the incident")
    .. (f.elapsed and string.format(" in %.1f s", f.elapsed) or "")
    .. (f.root_cause and f.root_cause.identified and " · root cause identified" or "")
    .. (opts.dry_run and " · dry run" or "")
  blocks[#blocks + 1] = { type = "context",
                          elements = { { type = "mrkdwn", text = cut(footer, M.LIMITS.context_text) } } }
  while #blocks > M.LIMITS.blocks do table.remove(blocks, #blocks - 1) end

  return { text = M.fallback_text(f), blocks = blocks }
end

--- The notification text of the findings (plain, short).
function M.fallback_text(f)
  local inc = f.incident or {}
  local parts = { "fox findings for " .. (inc.reference or "the incident") .. ": " .. (f.summary or "") }
  return cut(table.concat(parts, "\n"), M.LIMITS.text)
end

--- The "investigating" message posted as soon as the investigation starts.
function M.investigating(incident, opts)
  opts = opts or {}
  incident = incident or {}
  local ref = incident.reference or incident.id or "the incident"
  local what = ":mag: fox is investigating " .. ref .. (incident.name and (": " .. incident.name) or "")
  local detail = {}
  if opts.services and #opts.services > 0 then
    detail[#detail + 1] = "services " .. table.concat(opts.services, ", ")
  end
  if opts.sources and #opts.sources > 0 then detail[#detail + 1] = "asking " .. table.concat(opts.sources, ", ") end
  local text = cut(what, M.LIMITS.text)
  local blocks = { section(esc(what)) }
  if #detail > 0 then
    blocks[#blocks + 1] = { type = "context", elements = { { type = "mrkdwn",
      text = cut(esc(table.concat(detail, " · ")) .. " — findings will follow in this channel.",
                 M.LIMITS.context_text) } } }
  end
  return { text = text, blocks = blocks }
end

local function unescape(s)
  return (s:gsub("<(https?://[^|>]+)|([^>]*)>", "%2 (%1)"):gsub("<(https?://[^>]+)>", "%1")
    :gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&amp;", "&"))
end

--- A posted message (its blocks, else its text) as plain text, as a person reads it.
function M.as_text(msg)
  if type(msg) ~= "table" then return "" end
  local out = {}
  local blocks = type(msg.blocks) == "table" and msg.blocks or {}
  if #blocks == 0 then return unescape(tostring(msg.text or "")) end
  for _, b in ipairs(blocks) do
    if b.type == "header" and b.text then
      out[#out + 1] = b.text.text
      out[#out + 1] = ("="):rep(math.min(72, u16len(b.text.text)))
    elseif b.type == "section" then
      if b.text then out[#out + 1] = unescape(b.text.text) end
      if type(b.fields) == "table" then
        local fs = {}
        for _, fl in ipairs(b.fields) do fs[#fs + 1] = unescape(fl.text):gsub("\n", ": ") end
        out[#out + 1] = table.concat(fs, "  |  ")
      end
      out[#out + 1] = ""
    elseif b.type == "context" then
      local es = {}
      for _, e in ipairs(b.elements or {}) do es[#es + 1] = e.text and unescape(e.text) or "" end
      out[#out + 1] = table.concat(es, "  ")
    elseif b.type == "divider" then
      out[#out + 1] = ("-"):rep(72)
    end
  end
  return table.concat(out, "\n")
end

return M
