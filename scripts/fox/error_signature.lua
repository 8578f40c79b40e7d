-- Error signatures: the same error on different hosts, requests and times reduces to
-- the same text, so log lines can be grouped and compared with the error lines of
-- incidents (policies/correlate.lua uses `key` for that).
--
--   normalize(text) -> text with numbers, UUIDs/ULIDs, hex ids and hashes, IPv4/IPv6
--                      addresses, host names, URLs, e-mail addresses, timestamps and
--                      quoted values replaced by placeholders (<n>, <id>, <hash>,
--                      <host>, <url>, <email>, <time>, <str>); exception names (dotted
--                      Java names included) and HTTP status codes in an HTTP context
--                      are kept. Case is kept; at most 200 bytes.
--   key(text)       -> normalize(text):lower(): what two errors are compared by.
--   message(line)   -> the part of a raw log line that says what went wrong: the
--                      msg/error fields of a JSON or logfmt line, the exception line of
--                      a multi-line stack trace (Java, Python, Go, Node), the text after
--                      a leading timestamp / level / [thread] prefix.
--   signature(line) -> normalize(message(line)).
--   document_message(doc) -> message() of a decoded JSON document, or nil.
--   group(entries, opts) -> signatures with counts, first/last seen and an example.
--   field(t, name)  -> a field of a decoded JSON line by name or dotted path.
--
-- Pure functions, no I/O.
local json = require("fox.json")

local M = {}

local MAX_SIGNATURE = 200
-- Bytes of a line that are normalised. Several patterns below rescan a long word from
-- each of its characters (quadratic: 32 KB of letters took half a minute, and a task's
-- CPU limit cannot stop a running gsub); the signature keeps 200 bytes anyway.
local MAX_INPUT = 1024
M.MAX_INPUT = MAX_INPUT
local MAX_EXAMPLE = 500

---------------------------------------------------------------------------
-- normalisation
---------------------------------------------------------------------------

-- Words before or after a 3-digit number that make it an HTTP status code.
local HTTP_BEFORE = { http = true, status = true, code = true, returned = true, returning = true,
  returns = true, ["return"] = true, got = true, response = true, responses = true, error = true,
  errors = true, with = true, upstream = true, answers = true, answered = true, ingress = true,
  ["http/1.1"] = true, ["http/2"] = true, ["http/1.0"] = true }
local HTTP_AFTER = { ok = true, bad = true, unauthorized = true, forbidden = true, ["not"] = true,
  method = true, request = true, conflict = true, gone = true, too = true, internal = true,
  service = true, gateway = true, unavailable = true, timeout = true, error = true, errors = true,
  response = true, responses = true, status = true, from = true, on = true, ["for"] = true }

-- Quoted values ("...", '...') become <str>. A quote opens only where it does not
-- follow a letter or digit and closes only where no letter or digit follows, so the
-- apostrophes of "can't" and "don't" are not quotes.
local function strip_quotes(s)
  if not s:find("[\"']") then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = s:sub(i, i)
    local prev = i > 1 and s:sub(i - 1, i - 1) or " "
    local closing
    if (c == '"' or c == "'") and not prev:match("%w") then
      local j = i + 1
      while j <= n do
        local cj = s:sub(j, j)
        if cj == "\n" then break end
        if cj == "\\" then
          j = j + 1
        elseif cj == c and not s:sub(j + 1, j + 1):match("%w") then
          closing = j
          break
        end
        j = j + 1
      end
    end
    if closing and closing > i + 1 then
      out[#out + 1] = "<str>"
      i = closing + 1
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return table.concat(out)
end

-- IPv6 addresses (optionally [bracketed]:port, with a %zone): a run of hex groups and
-- colons with "::" or seven colons and at least one digit. "12:34:56" (no "::", two
-- colons) and C++/Ruby scopes (Foo::Bar, not hex) are left alone.
local function strip_ipv6(s)
  if not s:find(":", 1, true) then return s end -- every address below has one
  s = s:gsub("%[([%x:]+)%%?[%w]*%]:?%d*", function(addr)
    if addr:find("::", 1, true) or select(2, addr:gsub(":", "")) >= 7 then return "<host>" end
    return nil
  end)
  s = s:gsub("([%x]*:[%x:]*)%%%a[%w]*", "%1") -- zone ids (fe80::1%eth0)
  s = s:gsub("%f[%x:][%x:]*:[%x:]*%f[^%x:]", function(tok)
    local colons = select(2, tok:gsub(":", ""))
    if colons < 2 or not tok:find("%d") then return nil end
    if not (tok:find("::", 1, true) or colons == 7) then return nil end
    if tok:find(":::", 1, true) then return nil end
    for group in tok:gmatch("[^:]+") do
      if #group > 4 then return nil end
    end
    return "<host>"
  end)
  return s
end

-- Kubernetes pod names (deployment-<replica set hash>-<5 chars>): the deployment stays.
local function strip_pod_names(s)
  if not s:find("-", 1, true) then return s end
  return (s:gsub("(%l[%l%d%-]*)%-([%l%d]+)%-([%l%d]+)%f[^%w%-]", function(name, rs, pod)
    if #rs >= 8 and #rs <= 10 and #pod == 5 and rs:find("%d") then
      return name .. "-<pod>"
    end
    return nil
  end))
end

-- ISO-8601 timestamps and clock times inside a message.
local function strip_times(s)
  if not s:find(":", 1, true) then return s end
  s = s:gsub("%d%d%d%d%-%d%d%-%d%d[Tt ]%d%d:%d%d:%d%d[.,]?%d*[Zz]?[+-]?%d?%d?:?%d?%d?", " <time> ")
  s = s:gsub("%f[%d]%d%d:%d%d:%d%d[.,]?%d*", " <time> ")
  return s
end

local UUID = "%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x"

local function has(s, needle)
  return s:find(needle, 1, true) ~= nil
end

--- Replaces what varies between occurrences of one error by placeholders; keeps
-- exception names and HTTP status codes. Case is kept (see `key`).
function M.normalize(line)
  if type(line) ~= "string" then return "" end
  -- Each pass runs only when the text has what its pattern needs (has(...)): a gsub
  -- copies the text even when nothing matches, and most passes match nothing.
  local s = line
  if has(s, "`") then s = s:gsub("`", " ") end
  if s:find("[\r\n\t]") then s = s:gsub("[\r\n\t]+", " ") end
  if s:find("%s%s") then s = s:gsub("%s%s+", " ") end
  if #s > MAX_INPUT then s = s:sub(1, MAX_INPUT) end
  -- URLs and e-mail addresses
  if has(s, "://") then s = s:gsub("%a[%w+.-]*://[^%s\"'<>)]+", " <url> ") end
  if has(s, "@") then s = s:gsub("[%w._%%+-]+@[%w.-]+%.%a+", " <email> ") end
  s = strip_quotes(s)
  s = strip_times(s)
  -- UUIDs, ULIDs, long hex hashes
  if has(s, "-") then s = s:gsub(UUID, " <id> ") end
  s = s:gsub("%f[%w][0-7]" .. string.rep("[0-9A-HJKMNP-TV-Z]", 25) .. "%f[%W]", " <id> ")
  s = strip_ipv6(s)
  s = strip_pod_names(s)
  if has(s, "0x") then s = s:gsub("%f[%w]0x%x+%f[%W]", " <hash> ") end
  s = s:gsub("%f[%w](%x+)%f[%W]", function(h)
    if #h >= 7 and h:find("%d") and h:find("%a") then return "<hash>" end
    return nil
  end)
  -- IPv4 addresses (with port) and host names; dotted names ending in Exception/Error
  -- (java.net.SocketTimeoutException) are exception names and stay.
  local dotted = has(s, ".")
  if dotted then s = s:gsub("%f[%d]%d+%.%d+%.%d+%.%d+:?%d*", " <host> ") end
  if dotted then s = s:gsub("[%w_-]+%.[%w_.-]*[%w]:?%d*", function(name)
    local last = name:gsub(":%d*$", ""):match("([^.]+)$") or ""
    if last:find("Exception$") or last:find("Error$") or last:find("Exception%d*$") then return nil end
    if last:match("^%a+$") and name:find("%a") and not name:match("^%u") then return "<host>" end
    if name:match("^[%w-]+%.[%w.-]+:%d+$") then return "<host>" end
    return nil
  end) end
  if has(s, "<host>:") then s = s:gsub("<host>:%d+", "<host>") end
  -- Tokens mixing letters and digits (pod names, request IDs): IDs.
  local digits_left = s:find("%d")
  if digits_left then s = s:gsub("[%w_]+", function(w)
    if #w >= 5 and w:find("%d") and w:find("%a") and not w:find("^%d+%a*$")
      and not w:find("^%a+%d+$") then
      local letters = select(2, w:gsub("%a", ""))
      local digits = select(2, w:gsub("%d", ""))
      if digits >= 2 and letters >= 1 then return "<id>" end
    end
    return nil
  end) end
  -- HTTP status codes in an HTTP context are kept (behind a placeholder without
  -- digits while every other number is stripped). Without three digits in a row there
  -- is no code, and rejoining the words would only squeeze white space, which the end
  -- of this function does anyway.
  local words, kept = {}, {}
  if digits_left and s:find("%d%d%d") then
    for w in s:gmatch("%S+") do words[#words + 1] = w end
  end
  for i, w in ipairs(words) do
    local open, codes, suffix, close = w:match("^(%(?)(%d%d%d[/%d]*)(s?)([%),.:;]*)$")
    if codes and (codes:match("^%d%d%d$") or codes:match("^%d%d%d/[%d/]+$")) then
      local prev = (words[i - 1] or ""):lower():gsub("^%p+", ""):gsub("%p+$", "")
      local nxt = (words[i + 1] or ""):lower():gsub("^%p+", ""):gsub("%p+$", "")
      local all_http = true
      for c in codes:gmatch("[^/]+") do
        local n = tonumber(c)
        if not (#c == 3 and n and n >= 100 and n <= 599) then all_http = false end
      end
      if all_http and (HTTP_BEFORE[prev] or HTTP_AFTER[nxt] or suffix == "s") then
        local marks = {}
        for c in codes:gmatch("[^/]+") do
          kept[#kept + 1] = c
          marks[#marks + 1] = "\1"
        end
        words[i] = open .. table.concat(marks, "/") .. close
      end
    end
  end
  if #words > 0 then s = table.concat(words, " ") end
  if digits_left and s:find("%d") then s = s:gsub("%d+", "<n>") end
  if #kept > 0 then
    local idx = 0
    s = s:gsub("\1", function()
      idx = idx + 1
      return kept[idx]
    end)
  end
  if has(s, "<n>") then
    local prev_s
    repeat
      prev_s = s
      s = s:gsub("<n>[.:,/%-]?<n>", "<n>")
    until s == prev_s
  end
  s = s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  -- Placeholders were padded with spaces so they never fuse with the text around
  -- them; take the padding out again next to punctuation ("<host>:", "(<id>)").
  if has(s, "<") then
    s = s:gsub("(<%l+>) ([:;,%)%]])", "%1%2"):gsub("([%(%[]) (<%l+>)", "%1%2"):gsub("(<%l+>) %-> (<%l+>)", "%1->%2")
  end
  if #s > MAX_SIGNATURE then s = s:sub(1, MAX_SIGNATURE) end
  return s
end

--- The comparison key of an error text: its normal form, lower-cased.
function M.key(line)
  return (M.normalize(line):lower())
end

---------------------------------------------------------------------------
-- the message of a log line
---------------------------------------------------------------------------

local MESSAGE_FIELDS = { "msg", "message", "log", "text", "event" }
local ERROR_FIELDS = { "error", "err", "exception", "exc", "exc_info", "error.message",
  "error_message", "errorMessage", "stack_trace", "stacktrace", "stack" }

-- %s of Lua patterns in the C locale: space, \t \n \v \f \r.
local SPACE = { [32] = true, [9] = true, [10] = true, [11] = true, [12] = true, [13] = true }

local function trim(s)
  -- most text has nothing to trim: no copies then
  if not SPACE[s:byte(1)] and not SPACE[s:byte(-1)] then return s end
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- A line of a stack trace (not a message): Java "at ...", Python 'File "..."', Go
-- frames, "... 12 more", Node "    at fn (file.js:1:2)".
local function is_frame(line)
  return line:match("^%s+at%s") or line:match("^%s*File \"") or line:match("^%s*%.%.%.%s*%d+ more")
    or line:match("^%s+[%w_/.%-]+%.go:%d+") or line:match("^goroutine %d+")
    or line:match("^[%w_./%-]+%(.*%)$") or line:match("^%s*created by ")
    or line:match("^%s*%[signal ") or line:match("^%s*%^+%s*$")
    or line:match("^%s*~*%^~*%s*$") or line:match("^Traceback %(most recent call last%)")
    or line:match("^During handling of the above exception")
    or line:match("^The above exception was the direct cause")
end

local function looks_like_exception(line)
  return line:find("[%w_$]*Exception[%w_]*:?") or line:find("^[%u][%w_.]*Error[:%s]")
    or line:find("^[%u][%w_.]*Error$") or line:find("^[%w_.]+%.[%u][%w_]*:%s")
    or line:find("^panic: ") or line:find("^Caused by: ")
end

-- Picks the line that names the error in a multi-line message.
local function headline(text)
  if not text:find("\n", 1, true) then
    -- one line: itself (less a trailing \r) unless blank
    local l = text:byte(-1) == 13 and text:sub(1, -2) or text
    return l:find("%S") and l or ""
  end
  local lines = {}
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do
    l = l:gsub("\r$", "")
    if trim(l) ~= "" then lines[#lines + 1] = l end
  end
  if #lines <= 1 then return lines[1] or "" end
  if text:find("Traceback (most recent call last):", 1, true) then
    -- Python: the exception is the last line that is not part of a frame.
    for i = #lines, 1, -1 do
      local l = lines[i]
      if not is_frame(l) and not l:match("^%s") then return l end
    end
  end
  local first = lines[1]
  if looks_like_exception(first) or first:match("^panic: ") then return first end
  -- A log message followed by the exception on the next line: keep both.
  for i = 2, #lines do
    local l = lines[i]
    if not is_frame(l) and looks_like_exception(trim(l)) then
      return trim(first) .. ": " .. trim(l):gsub("^Caused by: ", "")
    end
  end
  return first
end

-- Leading "2024-05-01T10:00:00.123Z ERROR [main] com.acme.Foo - " and the like.
local LEVELS = { trace = true, debug = true, info = true, notice = true, warn = true,
  warning = true, error = true, err = true, fatal = true, critical = true, crit = true,
  severe = true, alert = true, emerg = true, panic = true }

-- s less the match of the ^-anchored pattern pat at its start (s:gsub(pat, "") without
-- copying s when nothing matches, which is nearly always).
local function cut(s, pat)
  local _, e = s:find(pat)
  if e then return s:sub(e + 1) end
  return s
end

local function strip_prefix(s)
  s = trim(s)
  local before
  repeat
    before = s
    -- timestamps: ISO, syslog ("May  1 10:00:00"), [bracketed], epoch
    s = cut(s, "^%[?%d%d%d%d[%-/]%d%d[%-/]%d%d[Tt ]%d%d:%d%d:%d%d[.,]?%d*%s?[Zz]?[+-]?%d?%d?:?%d?%d?%]?%s*")
    s = cut(s, "^%a%a%a%s+%d%d?%s+%d%d:%d%d:%d%d%s+")
    s = cut(s, "^%[?%d%d:%d%d:%d%d[.,]?%d*%]?%s+")
    s = cut(s, "^%d%d%d%d%d%d%d%d%d%d[.%d]*%s+")
    -- level words: ERROR, [error], <E>, E0501 (glog), level=error
    local word, rest = s:match("^%[?<?(%a+)>?%]?:?%s+()")
    if word and LEVELS[word:lower()] and (word == word:upper() or s:match("^[%[<]")) then s = s:sub(rest) end
    local glog, grest = s:match("^([IWEF]%d%d%d%d)%s+%d%d:%d%d:%d%d[.%d]*%s+%d+%s+[%w_.-]+:%d+%]%s*(.*)$")
    if glog then s = grest end
    s = cut(s, "^level=%a+%s+")
    -- [thread-name] then a logger name followed by " - " or ": "
    s = cut(s, "^%[[^%]]*%]%s*")
    s = cut(s, "^[%a_][%w_$.]*[%w_$]%s+%-%s+")
  until s == before
  return s
end

-- logfmt "k=v k2=\"quoted v\"": a map, or nil when the line is not logfmt.
local function parse_logfmt(s)
  if not s:match("^[%w_.%-]+=") then return nil end
  local out, n, pos = {}, 0, 1
  while pos <= #s do
    local k, after = s:match("^%s*([%w_.%-]+)=()", pos)
    if not k then return n > 0 and out or nil end
    local v
    if s:sub(after, after) == '"' then
      local i = after + 1
      local buf = {}
      while i <= #s do
        local c = s:sub(i, i)
        if c == "\\" and i < #s then
          local nc = s:sub(i + 1, i + 1)
          buf[#buf + 1] = (nc == "n") and "\n" or (nc == "t") and "\t" or nc
          i = i + 2
        elseif c == '"' then
          break
        else
          buf[#buf + 1] = c
          i = i + 1
        end
      end
      v = table.concat(buf)
      pos = i + 1
    else
      v, pos = s:match("^(%S*)()", after)
    end
    out[k] = v
    n = n + 1
  end
  return n > 0 and out or nil
end

--- The value of t's field name, a dotted name being a path when t has no such key
-- ("error.message"); json.null is nil.
function M.field(t, name)
  local v = t[name]
  if v == nil and name:find(".", 1, true) then
    local cur = t
    for part in name:gmatch("[^.]+") do
      if type(cur) ~= "table" then return nil end
      cur = cur[part]
    end
    v = cur
  end
  if v == json.null then return nil end
  return v
end
local field = M.field

-- The error text of a field value: strings as they are, ECS-style objects
-- ({type, message, stack_trace}) as "type: message".
local function error_text(v)
  if type(v) == "string" then return v ~= "" and v or nil end
  if type(v) == "table" then
    local typ = field(v, "type") or field(v, "kind") or field(v, "class")
    local msg = field(v, "message") or field(v, "msg")
    if type(typ) == "string" and type(msg) == "string" then
      if msg:sub(1, #typ) == typ then return msg end
      return typ .. ": " .. msg
    end
    if type(msg) == "string" then return msg end
    local st = field(v, "stack_trace") or field(v, "stack")
    if type(st) == "string" then return st end
  end
  return nil
end

-- Whether a field name is a dotted path for field(); the others are plain lookups
-- (json.null is not a string or a table, so error_text and the checks below drop it).
local DOTTED = {}
for _, f in ipairs(ERROR_FIELDS) do DOTTED[f] = f:find(".", 1, true) ~= nil end

local function from_fields(t)
  local msg, err
  for i = 1, #MESSAGE_FIELDS do
    local v = t[MESSAGE_FIELDS[i]]
    if type(v) == "string" and v ~= "" then msg = v; break end
  end
  for i = 1, #ERROR_FIELDS do
    local f = ERROR_FIELDS[i]
    local v = error_text(DOTTED[f] and field(t, f) or t[f])
    if v then err = v; break end
  end
  if msg and err then
    msg, err = headline(msg), headline(err)
    if msg == err or msg:find(err, 1, true) then return msg end
    if err:find(msg, 1, true) then return err end
    return msg .. ": " .. err
  end
  return msg or err
end

--- The part of a raw log line (or multi-line entry) that says what went wrong.
function M.message(line)
  if type(line) ~= "string" then return "" end
  local s = trim(line)
  if s:sub(1, 1) == "{" then
    local t = json.safe.decode(s)
    if type(t) == "table" then
      local m = from_fields(t)
      if m then return M.message(m) end
    end
  end
  -- "<prefix> {json}" (a timestamp before a JSON body)
  local jstart = s:find("{\"", 1, true)
  if jstart and jstart > 1 and s:sub(-1) == "}" then
    local t = json.safe.decode(s:sub(jstart))
    if type(t) == "table" then
      local m = from_fields(t)
      if m then return M.message(m) end
    end
  end
  local nl = s:find("\n", 1, true)
  local first_line = nl and s:sub(1, nl - 1) or s
  local kv = parse_logfmt(first_line)
  if kv and (kv.msg or kv.message or kv.err or kv.error) then
    local m = from_fields(kv)
    if m then return strip_prefix(headline(m)) end
  end
  return strip_prefix(headline(s))
end

--- The message of a decoded JSON log document (an Elasticsearch _source): what
-- message(json.encode(doc)) gives, or nil when no field names it (then the message is
-- the document's JSON text, which the caller encodes). Spares the encode and the decode.
function M.document_message(doc)
  local m = from_fields(doc)
  if m then return M.message(m) end
  return nil
end

--- The signature of a raw log line.
function M.signature(line)
  return M.normalize(M.message(line))
end

---------------------------------------------------------------------------
-- grouping
---------------------------------------------------------------------------

-- The same message normalises the same way, and the same errors recur within an
-- investigation and across the investigations of one generation: a bounded memo of
-- normalize, started afresh when full (short messages only, so it stays small: at most
-- MEMO_ENTRIES * (MEMO_MAX_MESSAGE + MAX_SIGNATURE) bytes of strings).
local MEMO_ENTRIES, MEMO_MAX_MESSAGE = 4096, 512
local memo, memo_size = {}, 0

local function memo_normalize(msg)
  local sig = memo[msg]
  if sig then return sig end
  sig = M.normalize(msg)
  if #msg <= MEMO_MAX_MESSAGE then
    if memo_size >= MEMO_ENTRIES then memo, memo_size = {}, 0 end
    memo[msg] = sig
    memo_size = memo_size + 1
  end
  return sig
end

--- Groups log entries by signature.
-- entries: array of {line = raw text, ts = unix seconds (may be fractional) or nil,
--   service = optional name}; instead of line, fields = a decoded JSON document (its
--   message as if it were the document's JSON text: document_message).
-- opts: max (signatures returned, default 20), incident_start (unix seconds: counts
--   before and after it are reported).
-- Returns {signatures = {{signature, count, first_seen, last_seen, example, services,
--   before_start, after_start}...} (most frequent first), total = entries counted,
--   distinct = number of signatures, omitted = signatures left out by max}.
function M.group(entries, opts)
  opts = opts or {}
  local max = opts.max or 20
  local start = opts.incident_start
  local by_key, list = {}, {}
  local total = 0
  for _, e in ipairs(entries or {}) do
    local line = type(e) == "string" and e or e.line
    local msg
    if line == nil and type(e) == "table" and type(e.fields) == "table" then
      msg = M.document_message(e.fields)
      if not msg then line = json.safe.encode(e.fields) end
    end
    if msg or (type(line) == "string" and line ~= "") then
      total = total + 1
      msg = msg or M.message(line)
      local sig = memo_normalize(msg)
      if sig == "" then sig = "<empty>" end
      local k = sig:lower()
      local g = by_key[k]
      if not g then
        g = { signature = sig, count = 0, services = {}, _services = {},
              before_start = start and 0 or nil, after_start = start and 0 or nil }
        by_key[k] = g
        list[#list + 1] = g
      end
      g.count = g.count + 1
      local ts = type(e) == "table" and tonumber(e.ts) or nil
      if ts then
        if not g.first_seen or ts < g.first_seen then
          g.first_seen = ts
          g.example = msg
        end
        if not g.last_seen or ts > g.last_seen then g.last_seen = ts end
        if start then
          if ts < start then g.before_start = g.before_start + 1 else g.after_start = g.after_start + 1 end
        end
      end
      if not g.example then g.example = msg end
      local svc = type(e) == "table" and e.service or nil
      if svc and not g._services[svc] then
        g._services[svc] = true
        g.services[#g.services + 1] = svc
      end
    end
  end
  return M.ranked(list, total, max)
end

-- Most frequent first, then earliest, then by text.
local function by_rank(a, b)
  if a.count ~= b.count then return a.count > b.count end
  if (a.first_seen or math.huge) ~= (b.first_seen or math.huge) then
    return (a.first_seen or math.huge) < (b.first_seen or math.huge)
  end
  return a.signature < b.signature
end

--- The result of group() from its groups (each with a `_services` set, removed here):
-- ranked, at most max of them, examples cut to MAX_EXAMPLE. Also what
-- sources.log_groups uses to merge groups made a page at a time.
function M.ranked(list, total, max)
  table.sort(list, by_rank)
  local out = {}
  for i = 1, math.min(#list, max) do
    local g = list[i]
    g._services = nil
    if #g.example > MAX_EXAMPLE then g.example = g.example:sub(1, MAX_EXAMPLE - 3) .. "..." end
    table.sort(g.services)
    out[i] = g
  end
  return { signatures = out, total = total, distinct = #list, omitted = math.max(0, #list - max) }
end

return M
