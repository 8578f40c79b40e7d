-- Parse policy: what fox reads out of an incident's description (its summary), which
-- responders write by hand, in a template, or paste from another tool.
--
--   local parse = require("policies.parse")
--   local p = parse.description(text [, opts])
--
-- opts: rules (a team's extra rules, see below), reference_time (unix seconds, for
-- "Started: 10:42 UTC"), max_bytes (input cap, default M.max_bytes).
--
-- Result (every list present, possibly empty):
--   fields        canonical key -> value of the recognised `Key: value` lines
--                 (service, impact, error, started, region, customer_impact, runbook,
--                 dashboard, pagerduty, change, plus the keys a team adds); `started_at`
--                 (unix seconds) when `started` could be read as a time
--   pairs         every `Key: value` line, {key=, value=, field=?}, in order
--   services      service names from service fields, as written
--   errors        error messages: the Error field, error and stack-trace code blocks,
--                 error-looking `code spans`; distinct, in order
--   code_blocks   fenced blocks {lang=, text=, kind="stack_trace"|"error"|"code"}
--   stack_traces  the texts of the stack-trace blocks
--   sections      markdown sections {title=, level=, text=, bullets={texts}}
--   bullets       every bullet {text=, level= (1 = top), section=}
--   urls          {url=, kind="dashboard"|"runbook"|"pagerduty"|"github"|"other",
--                 provider=, label=, github={owner, repo, type, number}?}
--   links         kind -> list of url records (dashboards, runbooks, pagerduty, github, other)
--   text          the description as plain text (HTML and markdown marks removed)
--   truncated     true when the input was longer than max_bytes
--
-- Free text never breaks it: any input (binary, invalid UTF-8, HTML, megabytes) yields a
-- result. A team's rules run protected; a failing rule is reported in `rule_errors`.
--
-- Team rules (config key `parse_rules`, see examples/policies/parse_rules.lua):
--   keys     = { canonical = { "alias", ... } }     extra `Key: value` keys
--   urls     = { {kind=, provider=, host=pattern, path=pattern} }  tried before ours
--   sections = { {title=pattern, field=name} }        a section's text fills a field
--   patterns = { {field=, pattern=, all=bool} }       Lua patterns over the plain text
--   extract  = function(result, text) ... end          anything else
local M = {}

M.max_bytes = 256 * 1024   -- descriptions beyond this are cut (incident.io allows far less)
M.max_items = 200          -- cap of every list in the result
M.max_key_len = 40
M.max_line = 4000          -- longer lines are cut for analysis

-- Canonical keys and the spellings teams use for them (matched case-insensitively,
-- with spaces, dashes and underscores treated alike, trailing "(s)" ignored).
M.keys = {
  service = { "service", "services", "service(s)", "affected service", "affected services",
              "impacted service", "impacted services", "component", "components", "system",
              "application", "app" },
  impact = { "impact", "user impact", "business impact", "what is broken" },
  error = { "error", "errors", "error message", "exception", "error code", "alert" },
  started = { "started", "started at", "start", "start time", "impact started", "since",
              "first seen", "began", "detected at", "onset" },
  region = { "region", "regions", "zone", "datacenter", "data center", "location",
             "environment", "env", "cluster" },
  customer_impact = { "customer impact", "customers impacted", "customers affected",
                      "affected customers", "customer facing", "customer-facing" },
  runbook = { "runbook", "run book", "playbook", "sop", "procedure" },
  dashboard = { "dashboard", "dashboards", "grafana", "datadog", "graph", "metrics" },
  pagerduty = { "pagerduty", "pager duty", "pd", "pd incident", "page", "pagerduty incident" },
  change = { "change", "recent change", "recent deploy", "deploy", "deployment", "release",
             "suspected change" },
}

-- Section titles that fill a field when no `Key: value` line did.
M.sections = {
  { title = "^customer impact", field = "customer_impact" },
  { title = "impact", field = "impact" },
  { title = "^errors?$", field = "error" },
  { title = "^error message", field = "error" },
  { title = "^runbook", field = "runbook" },
}

-- URL classification, tried in order after a team's rules. host/path are Lua patterns
-- over the lower-cased host and path.
M.urls = {
  { kind = "pagerduty", provider = "pagerduty", host = "pagerduty%.com$" },
  { kind = "pagerduty", provider = "pagerduty", host = "^pagerduty%." },
  { kind = "github", provider = "github", host = "^github%.com$" },
  { kind = "github", provider = "github", host = "^www%.github%.com$" },
  { kind = "github", provider = "github", host = "^github%." },
  { kind = "dashboard", provider = "grafana", host = "grafana" },
  { kind = "dashboard", provider = "grafana", path = "^/d/" },
  { kind = "dashboard", provider = "datadog", host = "datadoghq%." },
  { kind = "dashboard", provider = "datadog", host = "datadog" },
  { kind = "dashboard", provider = "new_relic", host = "newrelic%.com$" },
  { kind = "dashboard", provider = "honeycomb", host = "honeycomb%.io$" },
  { kind = "dashboard", provider = "kibana", host = "kibana" },
  { kind = "dashboard", provider = "kibana", path = "/app/kibana" },
  { kind = "dashboard", provider = "lightstep", host = "lightstep" },
  { kind = "dashboard", provider = "chronosphere", host = "chronosphere" },
  { kind = "dashboard", provider = "signalfx", host = "signalfx" },
  { kind = "dashboard", provider = "cloudwatch", host = "console%.aws%.amazon%.com$", path = "cloudwatch" },
  { kind = "dashboard", provider = "gcp_monitoring", host = "console%.cloud%.google%.com$", path = "monitoring" },
  { kind = "dashboard", provider = "prometheus", host = "prometheus" },
  { kind = "dashboard", provider = "dashboard", host = "dashboard" },
  { kind = "dashboard", provider = "dashboard", path = "dashboard" },
  { kind = "runbook", provider = "runbook", host = "runbook" },
  { kind = "runbook", provider = "runbook", path = "runbook" },
  { kind = "runbook", provider = "runbook", path = "playbook" },
  { kind = "runbook", provider = "confluence", host = "atlassian%.net$", path = "/wiki/" },
  { kind = "runbook", provider = "confluence", host = "confluence" },
  { kind = "runbook", provider = "wiki", host = "^wiki%." },
  { kind = "other", provider = "sentry", host = "sentry" },
  { kind = "other", provider = "opsgenie", host = "opsgenie" },
  { kind = "other", provider = "statuspage", host = "statuspage%.io$" },
  { kind = "other", provider = "jira", host = "atlassian%.net$", path = "/browse/" },
  { kind = "other", provider = "notion", host = "notion%.so$" },
}

-- Field -> URL kind: a URL on a `Runbook:` line is a runbook whatever its host.
local FIELD_KIND = { runbook = "runbook", dashboard = "dashboard", pagerduty = "pagerduty" }

local LINK_LIST = { dashboard = "dashboards", runbook = "runbooks", pagerduty = "pagerduty",
                    github = "github", other = "other" }

---------------------------------------------------------------------------
-- small helpers
---------------------------------------------------------------------------
local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- Lower case, "_"/"-" as spaces, one space between words, no "(s)" and no trailing
-- punctuation: the form keys are compared in.
local function key_form(s)
  s = s:lower():gsub("%(s%)", "s"):gsub("[_%-]+", " "):gsub("%s+", " ")
  s = s:gsub("^[%s%p]+", ""):gsub("[%s%.%?!]+$", "")
  return s
end

local function push(list, v, cap)
  if #list < (cap or M.max_items) then list[#list + 1] = v end
end

local function push_unique(list, seen, v)
  if v and v ~= "" and not seen[v] then
    seen[v] = true
    push(list, v)
  end
end

-- Replaces invalid UTF-8 bytes by "?" so every string of the result can be encoded as
-- JSON and shown in Slack.
local function valid_utf8(s)
  local out, i = {}, 1
  while true do
    local n, bad = utf8.len(s, i)
    if n then
      out[#out + 1] = s:sub(i)
      return table.concat(out)
    end
    out[#out + 1] = s:sub(i, bad - 1)
    out[#out + 1] = "?"
    i = bad + 1
  end
end

local ENTITIES = { amp = "&", lt = "<", gt = ">", quot = '"', apos = "'", nbsp = " ", ndash = "-",
                   mdash = "-", hellip = "...", rsquo = "'", lsquo = "'", rdquo = '"', ldquo = '"' }

local function decode_entities(s)
  return (s:gsub("&(#?[%w]+);", function(e)
    if ENTITIES[e] then return ENTITIES[e] end
    local n = e:match("^#(%d+)$")
    local hex = e:match("^#[xX](%x+)$")
    local cp = n and tonumber(n) or hex and tonumber(hex, 16)
    if cp and cp > 0 and cp < 0x110000 and not (cp >= 0xD800 and cp <= 0xDFFF) then
      return utf8.char(cp)
    end
    return nil
  end))
end

local function looks_like_html(s)
  local head = s:sub(1, 4096):lower()
  return head:find("<%s*/?%s*p[%s>]") or head:find("<%s*br%s*/?>") or head:find("<%s*div[%s>]")
    or head:find("<%s*li[%s>]") or head:find("<%s*h[1-6][%s>]") or head:find("<%s*pre[%s>]")
    or head:find("<%s*a%s+href") or head:find("</%a+>")
end

-- HTML (pasted from a web form or an email) to markdown-ish text. A single pass over
-- the tags with plain finds, so hostile input costs linear time.
local BLOCK_TAGS = { p = true, div = true, tr = true, ul = true, ol = true, table = true,
                     blockquote = true, section = true, article = true, header = true, footer = true }

local function html_to_text(s)
  local lower = s:lower()
  local out, pos, n = {}, 1, #s
  local href, href_at, in_pre = nil, nil, false
  while pos <= n do
    local lt = s:find("<", pos, true)
    if not lt then
      out[#out + 1] = s:sub(pos)
      break
    end
    out[#out + 1] = s:sub(pos, lt - 1)
    if s:sub(lt, lt + 3) == "<!--" then
      local e = s:find("-->", lt + 4, true)
      pos = e and e + 3 or n + 1
    else
      local gt = s:find(">", lt + 1, true)
      if not gt then
        -- no tag closes after here: the rest is text
        out[#out + 1] = s:sub(lt)
        break
      end
      local tag = s:sub(lt + 1, gt - 1)
      local closing, name = tag:match("^%s*(/?)%s*(%a%w*)")
      if not name or #tag > 2000 then
        out[#out + 1] = "<"
        pos = lt + 1
      else
        name = name:lower()
        pos = gt + 1
        if name == "script" or name == "style" then
          if closing == "" then
            local e = lower:find("</" .. name, gt, true)
            local e2 = e and s:find(">", e, true)
            pos = e2 and e2 + 1 or n + 1
          end
        elseif name == "br" then
          out[#out + 1] = "\n"
        elseif name == "li" then
          if closing == "" then out[#out + 1] = "\n- " end
        elseif name:match("^h[1-6]$") then
          out[#out + 1] = closing == "" and ("\n" .. ("#"):rep(tonumber(name:sub(2))) .. " ") or "\n"
        elseif name == "pre" then
          in_pre = closing == ""
          out[#out + 1] = "\n```\n"
        elseif name == "code" then
          if not in_pre then out[#out + 1] = "`" end
        elseif name == "strong" or name == "b" then
          out[#out + 1] = "**"
        elseif name == "a" then
          if closing == "" then
            href = tag:match("[hH][rR][eE][fF]%s*=%s*\"([^\"]*)\"") or tag:match("[hH][rR][eE][fF]%s*=%s*'([^']*)'")
            if href then
              out[#out + 1] = "["
              href_at = #out
            end
          elseif href then
            local label = trim(table.concat(out, "", href_at + 1, #out))
            if label == "" or label == href then
              -- a bare link: just the address
              for k = href_at, #out do out[k] = nil end
              out[#out + 1] = " " .. href .. " "
            else
              out[#out + 1] = "](" .. href .. ")"
            end
            href = nil
          end
        elseif BLOCK_TAGS[name] then
          out[#out + 1] = "\n"
        end
      end
    end
  end
  return decode_entities(table.concat(out))
end

---------------------------------------------------------------------------
-- keys
---------------------------------------------------------------------------
local function key_index(rules)
  local idx = {}
  local function add(canonical, aliases)
    idx[key_form(canonical)] = canonical
    for _, a in ipairs(aliases) do idx[key_form(a)] = canonical end
  end
  for canonical, aliases in pairs(M.keys) do add(canonical, aliases) end
  if rules and type(rules.keys) == "table" then
    for canonical, aliases in pairs(rules.keys) do
      if type(canonical) == "string" then add(canonical, type(aliases) == "table" and aliases or {}) end
    end
  end
  return idx
end

-- "**Service:** payments-api", "- Dashboard: https://...", "__Impact__: x",
-- "Impact started: 10:42" -> key, value; nil when the line is not a key-value line.
local function match_key_value(line)
  local head = line:sub(1, 200)
  local body = head:gsub("^%s*[-*+>]%s+", ""):gsub("^%s*\xE2\x80\xA2%s*", ""):gsub("^%s*%d+[.)]%s+", "")
  body = body:gsub("^%*%*", ""):gsub("^__", "")
  local key, rest = body:match("^([^:*`]-)%**%s*:[*_]*%s+(.*)$")
  if not key then key, rest = body:match("^([^:*`]-)%**%s*\xEF\xBC\x9A[*_]*%s*(.*)$") end
  if not key then return nil end
  key = trim((key:gsub("_+$", "")))
  if key == "" or #key > M.max_key_len or not key:find("^%a[%w%s%-_()/&'.]*$") then return nil end
  -- The rest of the line past the 200 bytes examined belongs to the value.
  rest = trim((rest .. line:sub(201)):gsub("^[*_]+%s*", ""))
  if rest == "" then return nil end
  return key, rest
end

---------------------------------------------------------------------------
-- URLs
---------------------------------------------------------------------------
local function split_url(url)
  local host, path = url:match("^%a[%w+.-]*://([^/?#]+)([^?#]*)")
  host = (host or ""):gsub("^[^@]*@", ""):gsub(":%d+$", ""):lower()
  return host, (path or ""):lower()
end

local function github_ref(url)
  local owner, repo, rest = url:match("^https?://[^/]+/([%w_.-]+)/([%w_.-]+)(.*)$")
  if not owner then return nil end
  local ref = { owner = owner, repo = repo, type = "repository" }
  local kind, num = rest:match("^/(%a+)/(%d+)")
  if kind == "pull" then
    ref.type, ref.number = "pull_request", tonumber(num)
  elseif kind == "issues" then
    ref.type, ref.number = "issue", tonumber(num)
  else
    local sha = rest:match("^/commit/(%x+)")
    if sha then
      ref.type, ref.sha = "commit", sha
    elseif rest:find("^/actions") then
      ref.type = "workflow_run"
    elseif rest:find("^/releases") then
      ref.type = "release"
      ref.tag = rest:match("^/releases/tag/([^/?#]+)")
    elseif rest:find("^/compare/") then
      ref.type = "compare"
    end
  end
  return ref
end

local function classify_url(url, rules, hint)
  local host, path = split_url(url)
  local function try(list)
    for _, r in ipairs(list) do
      if type(r) == "table" and (r.host or r.path)
        and (not r.host or host:find(r.host)) and (not r.path or path:find(r.path)) then
        return r.kind or "other", r.provider
      end
    end
  end
  local kind, provider
  if rules and type(rules.urls) == "table" then kind, provider = try(rules.urls) end
  if not kind then kind, provider = try(M.urls) end
  kind = kind or "other"
  -- A label ("Runbook:", a "Dashboard" bullet) wins over the host, except that a
  -- PagerDuty or GitHub address stays what it is.
  if hint and kind ~= "pagerduty" and kind ~= "github" then kind = hint end
  return kind, provider or host
end

local function clean_url(u)
  -- trailing punctuation of the sentence, and unbalanced closing brackets
  u = u:gsub("[.,;:!?*_]+$", "")
  while true do
    local last = u:sub(-1)
    local open = last == ")" and "%(" or last == "]" and "%[" or nil
    if not open then break end
    local opens = select(2, u:gsub(open, ""))
    local closes = select(2, u:gsub("%" .. last, ""))
    if closes <= opens then break end
    u = u:sub(1, -2):gsub("[.,;:!?*_]+$", "")
  end
  return u
end

-- URLs of a line with their labels: markdown [label](url), Slack <url|label>, or bare.
-- Bare URLs are found from each "://" (plain finds), so long lines cost linear time.
local function urls_of_line(line)
  local found, taken = {}, {}
  for label, url in line:gmatch("%[([^%[%]]*)%]%((%a[%w+.-]*://[^%s)]+)%)") do
    url = clean_url(url)
    if not taken[url] then
      found[#found + 1] = { url = url, label = label ~= "" and trim(label) or nil }
      taken[url] = true
    end
  end
  -- bare URLs, in the line without its markdown links
  line = line:gsub("%[[^%[%]]*%]%(%a[%w+.-]*://[^%s)]+%)", " ")
  local pos = 1
  while #found < 50 do
    local p = line:find("://", pos, true)
    if not p then break end
    pos = p + 3
    local scheme = line:sub(math.max(1, p - 16), p - 1):match("(%a[%w+.-]*)$")
    local rest = line:match("^[^%s<>\"'`|]+", p + 3)
    if scheme and rest then
      local url = clean_url(scheme .. "://" .. rest)
      local after = line:sub(p + 3 + #rest, p + 3 + #rest)
      local label
      if after == "|" then label = line:match("^|([^>]*)>", p + 3 + #rest) end
      if not taken[url] and #url > #scheme + 4 then
        found[#found + 1] = { url = url, label = label and trim(label) ~= "" and trim(label) or nil }
        taken[url] = true
      end
      pos = p + 3 + #rest
    end
  end
  return found
end

---------------------------------------------------------------------------
-- errors and code
---------------------------------------------------------------------------
local STACK_HINTS = {
  "^%s+at%s+[%w_$.<]",           -- JavaScript, Java, C#
  "^%s*Traceback %(most recent call last%)",
  "^%s*File \"[^\"]+\", line %d+",
  "^goroutine %d+ %[",
  "^%s*panic:",
  "^%s*#%d+%s+0x%x+",            -- gdb / C++
  "^%s+from%s+[%w_/.-]+:%d+",    -- Ruby
  "%.go:%d+",
  "%.java:%d+%)",
  "%.py\", line %d+",
  "%.[jt]sx?:%d+:%d+",
  "%.rb:%d+:in ",
  "^%s*Caused by:",
}

local ERROR_WORDS = { "error:", "fatal:", "panic:", "exception:", "timed out", "timeout",
                      "oomkilled", "deadlock", "refused", "connection reset", "segmentation fault",
                      "out of memory", "failed to", "failure:", "unavailable" }

local function looks_like_error(s)
  s = s:sub(1, 400)
  if s:find("%f[%w]%u%w*Error%f[%W]") or s:find("%f[%w]%u%w*Exception%f[%W]")
    or s:find("%f[%w]ERROR%f[%W]") or s:find("%f[%w]FATAL%f[%W]") or s:find("%f[%w]PANIC%f[%W]") then
    return true
  end
  local l = s:lower()
  for _, h in ipairs(ERROR_WORDS) do
    if l:find(h, 1, true) then return true end
  end
  return s:find("%f[%d][45]%d%d%f[%D]") ~= nil
    and (l:find("http", 1, true) or l:find("upstream", 1, true) or l:find("status", 1, true)) ~= nil
end

local function classify_block(text)
  local stack_lines = 0
  local lines = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    lines = lines + 1
    if lines > 400 then break end
    for _, p in ipairs(STACK_HINTS) do
      if line:find(p) then
        stack_lines = stack_lines + 1
        break
      end
    end
  end
  if stack_lines >= 1 and (stack_lines >= 2 or lines <= 3) then return "stack_trace" end
  if looks_like_error(text:sub(1, 2000)) then return "error" end
  return "code"
end

-- The line of a block that names the error: the first error-looking line that is not a
-- stack frame, else the first non-empty line.
local function error_line_of_block(text)
  local first
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local l = trim(line)
    if l ~= "" then
      first = first or l
      local frame = false
      for _, p in ipairs(STACK_HINTS) do
        if line:find(p) and not l:find("^panic:") then frame = true; break end
      end
      if not frame and looks_like_error(l) then return l end
    end
  end
  return first
end

---------------------------------------------------------------------------
-- started: "2025-01-02T10:42:00Z", "10:42 UTC", "10:42"
---------------------------------------------------------------------------
local function parse_started(value, reference_time)
  local timerange = require("fox.timerange")
  local v = trim(value)
  local iso = v:match("(%d%d%d%d%-%d%d%-%d%d[T ]%d%d:%d%d[:%d.]*[Zz]?[+-]?[%d:]*)")
  if iso then
    local t = timerange.parse_time((iso:gsub(" ", "T", 1)))
    if t then return t end
  end
  local h, m = v:match("^~?%s*(%d%d?):(%d%d)")
  if not h then h, m = v:match("%f[%d](%d%d?):(%d%d)%s*UTC") end
  if h and reference_time then
    h, m = tonumber(h), tonumber(m)
    if h > 23 or m > 59 then return nil end
    local day = reference_time - reference_time % 86400
    local t = day + h * 3600 + m * 60
    if t > reference_time + 3600 then t = t - 86400 end
    return t
  end
  return nil
end

---------------------------------------------------------------------------
-- the parser
---------------------------------------------------------------------------
local function new_result()
  return {
    fields = {}, pairs = {}, services = {}, errors = {}, code_blocks = {}, stack_traces = {},
    sections = {}, bullets = {}, urls = {},
    links = { dashboards = {}, runbooks = {}, pagerduty = {}, github = {}, other = {} },
    text = "", truncated = false, rule_errors = {},
  }
end

local function split_services(value)
  local out = {}
  value = value:gsub("%s+and%s+", ","):gsub("%s*&%s*", ",")
  for part in value:gmatch("[^,;/\n]+") do
    local p = trim(part:gsub("[`*_]", ""))
    p = trim(p:gsub("%s*%(.*%)$", ""))
    if p ~= "" and #p <= 80 then out[#out + 1] = p end
  end
  return out
end

local function add_url(res, seen_urls, rec, rules, hint)
  if seen_urls[rec.url] then
    -- A later labelled mention may say what an unlabelled one is.
    local prev = seen_urls[rec.url]
    if hint and not prev.label and rec.label then prev.label = rec.label end
    return prev
  end
  local kind, provider = classify_url(rec.url, rules, hint)
  rec.kind, rec.provider = kind, provider
  if kind == "github" then rec.github = github_ref(rec.url) end
  seen_urls[rec.url] = rec
  push(res.urls, rec)
  push(res.links[LINK_LIST[kind] or "other"], rec)
  return rec
end

local function run(text, opts)
  local rules = opts.rules
  local res = new_result()
  if type(text) ~= "string" then return res end
  local max = opts.max_bytes or M.max_bytes
  if #text > max then
    text = text:sub(1, max)
    res.truncated = true
  end
  text = valid_utf8(text)
  text = text:gsub("\r\n?", "\n"):gsub("\xC2\xA0", " "):gsub("\xE2\x80[\x8B\x8C\x8D]", ""):gsub("\xEF\xBB\xBF", "")
  text = text:gsub("%z", "")
  if looks_like_html(text) then text = html_to_text(text) end
  text = text:gsub("\t", "    ")

  local keys = key_index(rules)
  local seen_err, seen_svc, seen_urls = {}, {}, {}
  local section = nil
  local plain = {}
  local in_fence, fence_mark, fence_lang, fence_lines = false, nil, nil, nil
  local indent_stack = {}

  local function close_fence()
    local body = table.concat(fence_lines, "\n")
    local kind = classify_block(body)
    push(res.code_blocks, { lang = fence_lang, text = body, kind = kind })
    if kind == "stack_trace" then push(res.stack_traces, body) end
    if kind ~= "code" then push_unique(res.errors, seen_err, error_line_of_block(body)) end
    plain[#plain + 1] = body
    in_fence, fence_lines = false, nil
  end

  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    if #line > M.max_line then
      line = line:sub(1, M.max_line)
      res.truncated = true
    end
    if in_fence then
      local closing = line:match("^%s*([`~][`~][`~]+)%s*$")
      if closing and closing:sub(1, 1) == fence_mark:sub(1, 1) and #closing >= #fence_mark then
        close_fence()
      elseif #fence_lines < 2000 then
        fence_lines[#fence_lines + 1] = line
      end
    else
      local mark, lang = line:match("^%s*([`~][`~][`~]+)%s*([%w_+.#-]*)")
      if mark and (mark:sub(1, 1) ~= "`" or not line:match("^%s*```.*```")) and mark == mark:sub(1, 1):rep(#mark) then
        in_fence, fence_mark, fence_lang, fence_lines = true, mark, lang ~= "" and lang:lower() or nil, {}
      else
        local level, title
        if #line <= 300 then level, title = line:match("^%s*(#+)%s+(.-)%s*#*%s*$") end
        if not level then
          -- "**Impact**" or "__Impact__" alone on a line acts as a heading.
          if #line <= 300 then
            title = line:match("^%s*%*%*([^*]+)%*%*:?%s*$") or line:match("^%s*__([^_]+)__:?%s*$")
          end
          level = title and "###" or nil
        end
        if level and #level <= 6 and title and title ~= "" then
          section = { title = trim(title), level = #level, lines = {}, bullets = {} }
          push(res.sections, section)
          plain[#plain + 1] = trim(title)
          indent_stack = {}
        else
          local indent, bullet_text = line:match("^(%s*)[-*+•]%s+(.+)$")
          if not indent then indent, bullet_text = line:match("^(%s*)%d+[.)]%s+(.+)$") end
          if bullet_text and not line:match("^%s*[-*_]%s*[-*_]%s*[-*_][-*_%s]*$") then
            local width = #indent
            while #indent_stack > 0 and indent_stack[#indent_stack] > width do
              indent_stack[#indent_stack] = nil
            end
            if #indent_stack == 0 or indent_stack[#indent_stack] < width then
              indent_stack[#indent_stack + 1] = width
            end
            local b = { text = trim(bullet_text), level = #indent_stack, section = section and section.title or nil }
            push(res.bullets, b)
            if section then push(section.bullets, b.text) end
          elseif trim(line) == "" then
            indent_stack = {}
          end
          if section then push(section.lines, line, 2000) end
          plain[#plain + 1] = line

          -- Key: value
          local key, value = match_key_value(line)
          local field
          if key then
            field = keys[key_form(key)]
            if field == "error" then value = trim((value:gsub("^`+(.-)`+$", "%1"))) end
            push(res.pairs, { key = key, value = value, field = field })
            if field and res.fields[field] == nil then res.fields[field] = value end
            if field == "service" then
              for _, s in ipairs(split_services(value)) do push_unique(res.services, seen_svc, s) end
            elseif field == "error" then
              push_unique(res.errors, seen_err, value)
            end
          end
          -- URLs, labelled by their field or by a bullet's label
          if line:find("://", 1, true) then
            local hint = field and FIELD_KIND[field]
            if not hint and key then hint = FIELD_KIND[keys[key_form(key)] or ""] end
            for _, rec in ipairs(urls_of_line(line)) do
              local h = hint
              if not h and rec.label then h = FIELD_KIND[keys[key_form(rec.label)] or ""] end
              rec.label = rec.label or key
              add_url(res, seen_urls, rec, rules, h)
            end
          end
          -- error-looking `code spans` in prose
          if line:find("`", 1, true) then
            for span in line:gmatch("`([^`\n]+)`") do
              if #span >= 8 and looks_like_error(span) then push_unique(res.errors, seen_err, trim(span)) end
            end
          end
        end
      end
    end
  end
  if in_fence then close_fence() end

  -- sections: their text, and the fields they stand for
  local section_rules = {}
  if rules and type(rules.sections) == "table" then
    for _, r in ipairs(rules.sections) do section_rules[#section_rules + 1] = r end
  end
  for _, r in ipairs(M.sections) do section_rules[#section_rules + 1] = r end
  for _, s in ipairs(res.sections) do
    s.text = trim(table.concat(s.lines, "\n"))
    s.lines = nil
    local t = key_form(s.title)
    for _, r in ipairs(section_rules) do
      if type(r) == "table" and type(r.title) == "string" and type(r.field) == "string" and t:find(r.title) then
        if res.fields[r.field] == nil and s.text ~= "" then
          res.fields[r.field] = #s.bullets > 0 and table.concat(s.bullets, "; ") or s.text
        end
        break
      end
    end
  end

  -- plain text: markdown marks removed
  local plain_text = table.concat(plain, "\n")
  plain_text = plain_text:gsub("%[([^%]]*)%]%((%a[%w+.-]*://[^%s)]+)%)", "%1 (%2)")
  plain_text = plain_text:gsub("%*%*", ""):gsub("__", ""):gsub("`", "")
  res.text = trim(plain_text:gsub("\n\n\n+", "\n\n"))

  -- started
  if res.fields.started then
    res.fields.started_at = parse_started(res.fields.started, opts.reference_time)
  else
    local since = res.text:match("[Ss]ince%s+(%d%d?:%d%d%s*UTC)")
    if since then res.fields.started_at = parse_started(since, opts.reference_time) end
  end
  -- region: a cloud region named anywhere in the region/environment value
  if res.fields.region then
    local r = res.fields.region:match("%f[%w](%l%l%-%l+%-%d)%f[%W]")
      or res.fields.region:match("%f[%w](%l+%-%l+%d)%f[%W]")
    if r then res.fields.region_code = r end
  end

  -- team patterns and extractor
  if rules and type(rules.patterns) == "table" then
    for _, p in ipairs(rules.patterns) do
      if type(p) == "table" and type(p.pattern) == "string" and type(p.field) == "string" then
        local ok, err = pcall(function()
          if p.all then
            local list, seen = {}, {}
            for m in res.text:gmatch(p.pattern) do push_unique(list, seen, m) end
            if #list > 0 then res.fields[p.field] = list end
          elseif res.fields[p.field] == nil then
            res.fields[p.field] = res.text:match(p.pattern)
          end
        end)
        if not ok then push(res.rule_errors, "pattern for " .. p.field .. ": " .. tostring(err)) end
      end
    end
  end
  if rules and type(rules.extract) == "function" then
    local ok, err = pcall(rules.extract, res, res.text)
    if not ok then push(res.rule_errors, "extract: " .. tostring(err)) end
  end
  return res
end

--- Parses a description. Never raises: an internal failure yields an empty result
-- with the failure in rule_errors.
function M.description(text, opts)
  opts = opts or {}
  local ok, res = pcall(run, text, opts)
  if ok then return res end
  local empty = new_result()
  empty.text = type(text) == "string" and valid_utf8(text:sub(1, M.max_bytes)) or ""
  empty.rule_errors[1] = "parse failed: " .. tostring(res)
  return empty
end

-- Exposed for the services policy and tests.
M.classify_url = function(url, rules) return classify_url(url, rules) end
M.key_form = key_form

return M
