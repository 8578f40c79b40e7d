-- Correlation policy: how alike two incidents are. Teams tune the weights and send
-- SIGHUP. Features are computed once per incident (the index stores them), so scoring a
-- candidate is a few set lookups.
local error_signature = require("fox.error_signature")

local M = {}

-- Bump when `features` or `index_terms` change shape or meaning: the index rebuilds
-- itself.
M.FEATURES_VERSION = 4

-- Weights of the signals. A signal counts only when it applies (the target incident
-- has services, error lines, a severity, a type); the score is the weighted mean of
-- the signals that apply, so an incident without error text is not penalised for it.
M.weights = {
  service = 0.30,
  error_pattern = 0.25,
  text = 0.25,
  time = 0.10,
  severity = 0.05,
  type = 0.05,
}

-- When the incident has error lines and a candidate none, the error signal counts as
-- 0 with this fraction of its weight.
M.missing_error_weight = 0.5

-- Closeness in time halves every this many seconds of distance.
M.time_half_life = 3 * 86400

-- An explicit link (related or merged incidents) lifts the score to at least this.
M.explicit_link_score = 0.95

local STOPWORDS = {}
for w in ([[a an and are as at be been but by for from has have in into is it its of on
  or that the their there this to was were will with we our after before during due not
  no yes some all any more less than then when while which who what where how why
  incident issue problem users user customers customer some being again also can could
  cannot should would may might about over under via per out off up down]]):gmatch("%a+") do
  STOPWORDS[w] = true
end

local function stem(w)
  if #w > 5 and w:sub(-3) == "ing" then return w:sub(1, -4) end
  if #w > 4 and w:sub(-2) == "ed" then return w:sub(1, -3) end
  if #w > 4 and w:sub(-2) == "es" and w:sub(-3, -3):match("[sxz]") then return w:sub(1, -3) end
  if #w > 3 and w:sub(-1) == "s" and w:sub(-2, -2) ~= "s" then return w:sub(1, -2) end
  return w
end

-- The token a word gives (false: none), kept for the words seen last (vocabulary is
-- small; forgotten all at once past this many words).
M.WORD_MEMO_MAX = 16384
local word_memo, word_memo_size = {}, 0

local function token_of(w)
  local tok = word_memo[w]
  if tok == nil then
    tok = #w >= 3 and not STOPWORDS[w] and not w:match("%d%d") and stem(w)
    if word_memo_size >= M.WORD_MEMO_MAX then word_memo, word_memo_size = {}, 0 end
    word_memo[w] = tok
    word_memo_size = word_memo_size + 1
  end
  return tok
end

-- Distinct content words of a text, lower-cased and lightly stemmed.
function M.tokens(text)
  local out, seen = {}, {}
  if type(text) ~= "string" then return out end
  for w in text:lower():gmatch("[%a][%w]*") do
    local tok = token_of(w)
    if tok and not seen[tok] then seen[tok] = true; out[#out + 1] = tok end
  end
  return out
end

---------------------------------------------------------------------------
-- error lines
---------------------------------------------------------------------------
-- Strong signs that a line is an error message (prose such as "users saw failures"
-- is not); weak signs count only inside `code spans`.
local STRONG_HINTS = {
  "error:", "exception:", "fatal:", "panic:", "traceback", "stack trace", "oomkilled",
  "out of memory", "timed out", "connection refused", "connection reset", "deadlock",
  "segfault", "crashloopbackoff", "errno", "5xx", "4xx", "status code", "http error",
}
local WEAK_HINTS = {
  "error", "fail", "timeout", "refused", "reset", "unavailable", "denied", "could not",
  "unable to", "cannot", "invalid", "exceeded", "killed",
}

local HTTP_BEFORE = { http = true, status = true, code = true, returned = true, returning = true,
  returns = true, ["return"] = true, got = true, response = true, responses = true, error = true,
  errors = true, with = true, upstream = true, answers = true, answered = true, ingress = true }

local function has_http_code(l)
  for prev, code in l:gmatch("(%a+)[ /(]+(%d%d%d)%f[%D]") do
    local n = tonumber(code)
    if n >= 400 and n <= 599 and HTTP_BEFORE[prev] and prev ~= "with" and prev ~= "error"
      and prev ~= "errors" then
      return true
    end
  end
  return l:find("%f[%d][45]%d%ds%f[%W]") ~= nil
end

local function looks_like_error(line, in_code)
  -- "ExceptionName: message" (CamelCase, possibly namespaced, then a colon)
  if line:find("^%s*[%w_.:]*%u%l+%u[%w_]*:%s") then return true end
  -- (the plain finds first: the patterns rescan every capitalised word)
  if (line:find("Exception", 1, true) and line:find("%u%w*Exception"))
    or (line:find("Error", 1, true) and line:find("%u%w*Error%f[%W]"))
    or line:find("%f[%w]E[A-Z][A-Z][A-Z]+%f[%W]") or (line:find("::", 1, true) and line:find("%w::%u")) then
    return true
  end
  local l = line:lower()
  for _, h in ipairs(STRONG_HINTS) do
    if l:find(h, 1, true) then return true end
  end
  if l:find("%d%d%d") and has_http_code(l) then return true end
  if in_code then
    for _, h in ipairs(WEAK_HINTS) do
      if l:find(h, 1, true) then return true end
    end
  end
  return false
end

-- Replaces hosts, URLs, IDs, hashes, quoted values and numbers by placeholders; keeps
-- exception names and HTTP status codes. Returns the normalised line (lower case).
-- The normaliser is shared with the log sources (fox.error_signature), so error lines
-- of incidents and log signatures compare alike.
function M.normalize_error_line(line)
  return error_signature.key(line)
end

-- Bytes of a line that are examined (an error line is shorter; the normaliser keeps
-- 1 KB of it).
M.MAX_LINE = 1024

-- A line (or code span) normalised when it is an error line, else false.
local function read_error_line(line, in_code)
  -- looks_like_error's patterns are quadratic in the length of a word: cut first.
  if #line > M.MAX_LINE then line = line:sub(1, M.MAX_LINE) end
  line = line:gsub("^%s*[-*>]+%s*", "")
  if #line < 4 or not looks_like_error(line, in_code) then return false end
  local n = M.normalize_error_line(line)
  -- "PagerDuty: <url>" and the like carry no error
  local words = 0
  for w in n:gsub("<%a+>", " "):gmatch("[%w_]+") do
    if #w >= 2 then words = words + 1 end
  end
  return words >= 3 and n
end

-- Lines repeat from one incident to the next (templates, alert text, headings, link
-- lines), and reading one is most of the cost of an incident's features when the
-- index loads: what a line gave is kept, up to this many lines (then all forgotten).
M.LINE_MEMO_MAX = 8192
local line_memo, line_memo_size = { [true] = {}, [false] = {} }, 0

local function error_line_of(line, in_code)
  in_code = in_code and true or false
  local memo = line_memo[in_code]
  local n = memo[line]
  if n == nil then
    n = read_error_line(line, in_code)
    if line_memo_size >= M.LINE_MEMO_MAX then
      line_memo, line_memo_size = { [true] = {}, [false] = {} }, 0
      memo = line_memo[in_code]
    end
    memo[line] = n
    line_memo_size = line_memo_size + 1
  end
  return n
end

-- The error lines of a text: lines (and `code spans`) that look like errors, each
-- normalised. Distinct, in order.
function M.error_lines(text)
  local out, seen = {}, {}
  if type(text) ~= "string" then return out end
  local function consider(line, in_code)
    local n = error_line_of(line, in_code)
    if n and not seen[n] then seen[n] = true; out[#out + 1] = n end
  end
  local in_block = false
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    if line:match("^%s*```") then
      in_block = not in_block
    else
      for span in line:gmatch("`([^`]+)`") do consider(span, true) end
      consider(line, in_block)
    end
  end
  if #out > 20 then
    for i = #out, 21, -1 do out[i] = nil end
  end
  return out
end

local PLACEHOLDERS = { n = true, id = true, hash = true, host = true, url = true, email = true }

local function line_tokens(line, out, seen)
  for w in line:gmatch("[%w_]+") do
    if #w >= 3 and not STOPWORDS[w] and not PLACEHOLDERS[w] and not seen[w] then
      seen[w] = true
      out[#out + 1] = w
    end
  end
  return out
end

M.MAX_SUMMARY_TOKENS = 40
M.MAX_ERROR_LINES = 8

-- Replaces each URL ("scheme://rest") by a space. Works from each "://" outwards, in
-- time linear in the text: the pattern "%a[%w+.-]*://..." would rescan a long word
-- from every one of its letters (a 256 KB token took minutes).
local function strip_links(text)
  if not text:find("://", 1, true) then return text end
  local out, pos = {}, 1
  while true do
    local s = text:find("://", pos, true)
    if not s then break end
    local b = s -- the scheme: the [%w+.-] run before "://", from its first letter
    while b > pos and text:find("^[%w+.-]", b - 1) do b = b - 1 end
    while b < s and not text:find("^%a", b) do b = b + 1 end
    local _, e = text:find("^[^%s)>\"']+", s + 3)
    if b < s and e then
      out[#out + 1] = text:sub(pos, b - 1)
      out[#out + 1] = " "
      pos = e + 1
    else
      out[#out + 1] = text:sub(pos, s + 2)
      pos = s + 3
    end
  end
  out[#out + 1] = text:sub(pos)
  return table.concat(out)
end

-- Features of an incident, stored by the index (kept small: the index holds tens of
-- thousands). `incident` has name, summary and, optionally, `extra_text` (update
-- messages) for the incident being correlated.
function M.features(incident)
  local summary = type(incident.summary) == "string" and incident.summary or ""
  local text = summary
  if type(incident.extra_text) == "string" then text = text .. "\n" .. incident.extra_text end
  local name = type(incident.name) == "string" and incident.name or ""
  local lines = M.error_lines(name .. "\n" .. text)
  local per_line = {}
  for i = 1, math.min(#lines, M.MAX_ERROR_LINES) do
    local toks = line_tokens(lines[i], {}, {})
    if #toks > 0 then per_line[#per_line + 1] = toks end
  end
  local summary_tokens = M.tokens(strip_links(summary))
  for i = #summary_tokens, M.MAX_SUMMARY_TOKENS + 1, -1 do summary_tokens[i] = nil end
  return {
    name_tokens = M.tokens(name),
    summary_tokens = summary_tokens,
    error_line_tokens = per_line,
  }
end

---------------------------------------------------------------------------
-- scoring
---------------------------------------------------------------------------
local function set_of(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[v] = true end
  return s
end

local function cosine(set_a, n_a, list_b)
  local n_b = #list_b
  if n_a == 0 or n_b == 0 then return 0 end
  local hits = 0
  for i = 1, n_b do
    if set_a[list_b[i]] then hits = hits + 1 end
  end
  return hits / math.sqrt(n_a * n_b)
end

-- Precomputes the target's sets once per correlation.
-- target: {services, severity={name,rank}, type, t (unix), features}
function M.prepare(target)
  local f = target.features or {}
  local line_sets, all = {}, {}
  for i, toks in ipairs(f.error_line_tokens or {}) do
    line_sets[i] = { set = set_of(toks), n = #toks }
    for _, t in ipairs(toks) do all[t] = true end
  end
  return {
    target = target,
    services = set_of(target.services), n_services = #(target.services or {}),
    name = set_of(f.name_tokens), n_name = #(f.name_tokens or {}),
    summary = set_of(f.summary_tokens), n_summary = #(f.summary_tokens or {}),
    error_line_sets = line_sets, n_error_lines = #line_sets, error_tokens = all,
  }
end

-- The error pattern: token Jaccard of the closest pair of error lines (1 when the
-- normalised lines are the same).
local function error_similarity(prep, cand_lines)
  local best = 0
  for _, toks in ipairs(cand_lines) do
    local any = false
    for i = 1, #toks do
      if prep.error_tokens[toks[i]] then any = true; break end
    end
    if any then
      for _, ls in ipairs(prep.error_line_sets) do
        local h = 0
        for i = 1, #toks do
          if ls.set[toks[i]] then h = h + 1 end
        end
        local u = ls.n + #toks - h
        if u > 0 and h / u > best then best = h / u end
      end
    end
  end
  return best
end

local function round(x)
  return math.floor(x * 1000 + 0.5) / 1000
end

-- Scores one candidate (same shape as the target). links: {[candidate id] = "related"
-- | "merged_into" | "merged_from"}. Returns score (0..1) and the signals that
-- contributed ({name = score}), plus the services both share.
function M.score(prep, cand, links)
  local t = prep.target
  local w = M.weights
  local total, weight = 0, 0
  local signals = {}
  local shared_services

  if prep.n_services > 0 then
    local cs = cand.services or {}
    local hits = 0
    for _, s in ipairs(cs) do
      if prep.services[s] then
        hits = hits + 1
        shared_services = shared_services or {}
        shared_services[#shared_services + 1] = s
      end
    end
    local v = 0
    if hits > 0 then v = (hits / prep.n_services + hits / #cs) / 2 end
    total, weight = total + w.service * v, weight + w.service
    if v > 0 then signals.service = round(v) end
  end

  local cf = cand.features or {}
  if prep.n_error_lines > 0 then
    local cl = cf.error_line_tokens or {}
    if #cl == 0 then
      -- the candidate shows no error text: weak evidence against, so part of the weight
      weight = weight + w.error_pattern * M.missing_error_weight
    else
      local v = error_similarity(prep, cl)
      total, weight = total + w.error_pattern * v, weight + w.error_pattern
      if v > 0 then signals.error_pattern = round(v) end
    end
  end

  do
    local vn = cosine(prep.name, prep.n_name, cf.name_tokens or {})
    local v = vn
    if prep.n_summary > 0 and #(cf.summary_tokens or {}) > 0 then
      local vs = cosine(prep.summary, prep.n_summary, cf.summary_tokens)
      v = 0.6 * vn + 0.4 * vs
    end
    total, weight = total + w.text * v, weight + w.text
    if v > 0 then signals.text = round(v) end
  end

  if t.t and cand.t then
    local v = 0.5 ^ (math.abs(t.t - cand.t) / M.time_half_life)
    total, weight = total + w.time * v, weight + w.time
    if v >= 0.001 then signals.time = round(v) end
  end

  if t.severity and t.severity.name then
    local v = 0
    local cs = cand.severity
    if cs and cs.name == t.severity.name then
      v = 1
    elseif cs and tonumber(cs.rank) and tonumber(t.severity.rank)
      and math.abs(cs.rank - t.severity.rank) == 1 then
      v = 0.5
    end
    total, weight = total + w.severity * v, weight + w.severity
    if v > 0 then signals.severity = v end
  end

  if t.type then
    local v = (cand.type == t.type) and 1 or 0
    total, weight = total + w.type * v, weight + w.type
    if v > 0 then signals.type = v end
  end

  local score = weight > 0 and total / weight or 0
  local link = links and links[cand.id]
  if link then
    signals.explicit_link = 1
    if score < M.explicit_link_score then score = M.explicit_link_score end
  end
  return round(score), signals, shared_services, link
end

---------------------------------------------------------------------------
-- candidate lookup: what the index files an incident under, and how high a
-- candidate can score from what the lookup knows of it
---------------------------------------------------------------------------
-- The terms under which the index files an incident (its posting lists). The prefix
-- says which signal a term feeds: s service, n name token, m summary token, e token of
-- an error line. An incident sharing none of a target's terms gets nothing from the
-- service, error and text signals (see upper_bound).
function M.index_terms(rec)
  local out, seen = {}, {}
  local function add(term)
    if not seen[term] then seen[term] = true; out[#out + 1] = term end
  end
  for _, s in ipairs(rec.services or {}) do add("s:" .. s) end
  local f = rec.features or {}
  for _, w in ipairs(f.name_tokens or {}) do add("n:" .. w) end
  for _, w in ipairs(f.summary_tokens or {}) do add("m:" .. w) end
  for _, toks in ipairs(f.error_line_tokens or {}) do
    for _, w in ipairs(toks) do add("e:" .. w) end
  end
  return out
end

-- The highest score `score` can give a candidate of which only the following is known
-- (read from the index's posting lists, not from the candidate's record):
--   h.s  how many of the target's services it has      h.n  of the target's name tokens
--   h.m  of the target's summary tokens                 h.e  {[i] = of the tokens of the
--        target's error line i (prep.error_line_sets[i]), in any of its error lines}
--   h.has_error  true when it surely has error lines (it has an error token)
--   h.dt  seconds between the two creations (nil: unknown)
-- Counts may be too high (unknown terms counted as shared), never too low. It follows
-- `score` signal by signal, so it must change with it (never under it, and never
-- growing with dt: the search reads the nearest periods first). With every count 0
-- and dt nil it is what an incident sharing nothing with the target can reach (time,
-- severity and type at most), which lets the index skip such incidents.
function M.upper_bound(prep, h)
  local t = prep.target
  local w = M.weights
  local total, weight = 0, 0
  if prep.n_services > 0 then
    local v = 0
    -- (hits/n_target + hits/n_candidate) / 2, the second at most 1
    if h.s > 0 then v = (math.min(1, h.s / prep.n_services) + 1) / 2 end
    total, weight = total + w.service * v, weight + w.service
  end
  do
    -- cosine: hits/sqrt(n_a*n_b) <= sqrt(hits/n_a), as n_b >= hits
    local vn = prep.n_name > 0 and math.sqrt(math.min(1, h.n / prep.n_name)) or 0
    local v = vn
    if prep.n_summary > 0 then
      local vs = math.sqrt(math.min(1, h.m / prep.n_summary))
      v = math.max(vn, 0.6 * vn + 0.4 * vs) -- without summary tokens the name alone counts
    end
    total, weight = total + w.text * v, weight + w.text
  end
  if t.t then
    local v = h.dt and 0.5 ^ (h.dt / M.time_half_life) or 1
    total, weight = total + w.time * v, weight + w.time
  end
  if t.severity and t.severity.name then total, weight = total + w.severity, weight + w.severity end
  if t.type then total, weight = total + w.type, weight + w.type end
  if prep.n_error_lines > 0 then
    -- Jaccard of a line pair h/(n_a + n_b - h) <= (shared tokens of line i) / n_i
    local ve = 0
    for i, ls in ipairs(prep.error_line_sets) do
      local x = math.min(1, (h.e[i] or 0) / ls.n)
      if x > ve then ve = x end
    end
    local weight_e = weight + w.error_pattern
    local with_lines = weight_e > 0 and (total + w.error_pattern * ve) / weight_e or 0
    if h.has_error then return with_lines end
    local weight_m = weight + w.error_pattern * M.missing_error_weight
    local without = weight_m > 0 and total / weight_m or 0
    return math.max(with_lines, without)
  end
  return weight > 0 and total / weight or 0
end

return M
