-- Findings as terminal text: what `fox investigate` prints.
--
--   local render = require("fox.render.text")
--   render.findings(f [, {width = 100}]) -> string (ends with a newline)
local findings_mod = require("fox.findings")

local M = {}

M.width = 100

-- Word-wraps text at width: the first line starts with `first`, the others with
-- `indent`; paragraphs (newlines) are kept.
local function wrap(text, width, first, indent)
  text = tostring(text or "")
  first = first or ""
  indent = indent or first:gsub(".", " ")
  local lines = {}
  for para in (text .. "\n"):gmatch("([^\n]*)\n") do
    local line = #lines == 0 and first or indent
    local empty = true
    for word in para:gmatch("%S+") do
      local candidate = empty and (line .. word) or (line .. " " .. word)
      if not empty and (utf8.len(candidate) or #candidate) > width then
        lines[#lines + 1] = line
        line = indent .. word
      else
        line = candidate
      end
      empty = false
    end
    lines[#lines + 1] = line
  end
  return table.concat(lines, "\n")
end
M.wrap = wrap

local function pct(c)
  return findings_mod.percent(c)
end

function M.findings(f, opts)
  opts = opts or {}
  local width = opts.width or M.width
  local out = {}
  local function add(s) out[#out + 1] = s end
  local function item(prefix, text, indent)
    add(wrap(text, width, prefix, indent))
  end
  local inc = f.incident or {}
  local title = (inc.reference or "incident") .. ": " .. (inc.name or "")
  add(title)
  add(("="):rep(math.min(width, utf8.len(title) or #title)))
  local meta = { "Priority " .. (f.priority or inc.severity or "unknown"),
                 "Confidence " .. pct(f.confidence) .. " (" .. (f.confidence_label or "low") .. ")" }
  if #f.services > 0 then meta[#meta + 1] = "Services " .. table.concat(f.services, ", ") end
  if #f.critical_services > 0 then meta[#meta + 1] = "Critical " .. table.concat(f.critical_services, ", ") end
  add(wrap(table.concat(meta, " | "), width, "", "  "))
  if inc.url then add(inc.url) end
  add("")
  add("Summary")
  item("  ", f.summary or "")
  if f.ai_summary and f.ai_summary.text then
    add("")
    add("AI summary (AI-written" .. (f.ai_summary.model and (", " .. f.ai_summary.model) or "") .. ")")
    item("  ", f.ai_summary.text)
  end

  add("")
  add("Suspected changes")
  if #f.suspects == 0 then item("  ", "none found in the window before the incident") end
  for i, s in ipairs(f.suspects) do
    local meta_s = { s.kind }
    if s.service then meta_s[#meta_s + 1] = s.service end
    if s.at then
      local rel = findings_mod.relative(s.at, findings_mod.start(f))
      meta_s[#meta_s + 1] = findings_mod.clock(s.at) .. (rel and (", " .. rel) or "")
    end
    if s.author then meta_s[#meta_s + 1] = "by " .. s.author end
    item("  " .. i .. ". ", "[" .. pct(s.confidence) .. "] " .. s.title .. " (" .. table.concat(meta_s, "; ") .. ")",
      "     ")
    if s.reason then item("     ", "why: " .. s.reason) end
    if s.url then add("     " .. s.url) end
  end

  if #f.metrics > 0 then
    add("")
    add("Metrics")
    for _, m in ipairs(f.metrics) do item("  - ", m.text) end
  end
  if #f.logs > 0 then
    add("")
    add("Logs")
    for _, l in ipairs(f.logs) do
      local meta_l = { math.floor(l.count) .. "x" }
      if l.service then meta_l[#meta_l + 1] = l.service end
      if l.first_seen then meta_l[#meta_l + 1] = "first seen " .. findings_mod.clock(l.first_seen) end
      if l.source then meta_l[#meta_l + 1] = l.source end
      item("  - ", "\"" .. l.signature .. "\" (" .. table.concat(meta_l, ", ") .. ")")
    end
  end
  if #f.similar > 0 then
    add("")
    add("Similar incidents")
    for _, s in ipairs(f.similar) do
      local meta_s = {}
      if s.score then meta_s[#meta_s + 1] = "similarity " .. pct(s.score) end
      if s.status then meta_s[#meta_s + 1] = s.status end
      if s.lead then meta_s[#meta_s + 1] = "lead " .. s.lead end
      item("  - ", s.reference .. (s.name and (" " .. s.name) or "")
        .. (#meta_s > 0 and (" (" .. table.concat(meta_s, ", ") .. ")") or ""))
      if s.resolution then item("    ", "Resolved: " .. s.resolution) end
      if s.url then add("    " .. s.url) end
    end
  end
  if #f.next_steps > 0 then
    add("")
    add("Next steps")
    for i, s in ipairs(f.next_steps) do item("  " .. i .. ". ", s) end
  end
  if #f.links > 0 then
    add("")
    add("Links")
    for _, l in ipairs(f.links) do add("  " .. l.kind .. ": " .. l.url) end
  end
  if #f.sources > 0 then
    add("")
    add("Sources")
    for _, s in ipairs(f.sources) do
      if s.ok then
        item("  ", string.format("%-14s ok", s.source) .. (s.elapsed and string.format("  %.2f s", s.elapsed) or "")
          .. "  " .. s.count .. " item" .. (s.count == 1 and "" or "s") .. (s.summary and (": " .. s.summary) or ""),
          (" "):rep(20))
      else
        item("  ", string.format("%-14s FAILED", s.source) .. (s.error and (": " .. s.error) or ""), (" "):rep(20))
      end
    end
  end
  if f.elapsed then
    add("")
    add(string.format("Investigated in %.2f s", f.elapsed)
      .. (f.root_cause and f.root_cause.identified and "; root cause identified" or ""))
  end
  return table.concat(out, "\n") .. "\n"
end

return M
