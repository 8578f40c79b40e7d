-- Finds the incidents most like a target among the indexed ones (fox.incident_index)
-- without scoring them all. The correlation policy bounds what a candidate can score
-- from what the posting lists say of it (`upper_bound`: which of the target's terms it
-- has, how far apart in time), so:
--   - an incident sharing no term with the target is never read when even the best it
--     could score that way is under the threshold (`upper_bound` with nothing shared:
--     time, severity and type, 0.2 of the score with the default weights). Otherwise,
--     or when the policy has no `upper_bound`, every incident of the window is a
--     candidate (a scan);
--   - the lists of very common terms are not read when the threshold allows: the bound
--     then counts those terms as shared by everyone;
--   - the index files incidents by period of creation: periods are read nearest to the
--     target first, candidates of a period best bound first, and the search stops when
--     no incident left (however alike, as far in time as the next period) can score
--     above the `limit`-th best score found, or the threshold.
-- The matches are those a full scan would return, in the same order.
local index = require("fox.incident_index")
local correlate = require("policies.correlate")

local M = {}

-- A term in more than this fraction of the incidents of the window is common: its
-- list is left out when the bound allows. Measured on the fake's large:50000 history
-- (docs/sources.md, "How correlate_incidents finds candidates"): higher reads more
-- postings for no fewer records scored, lower changes nothing.
M.common_fraction = 0.05

-- Scores are rounded to 3 decimals: a bound this far under a score cannot round up to
-- it (plus floating-point slack).
local MARGIN = 0.0005 + 1e-9

-- The order of matches: higher score, then newer, then by id (so ties are stable).
function M.better(a, b)
  if a.score ~= b.score then return a.score > b.score end
  local ta, tb = a.rec.t or 0, b.rec.t or 0
  if ta ~= tb then return ta > tb end
  return tostring(a.rec.id) < tostring(b.rec.id)
end

-- Keeps `top` the best `limit` matches, in order.
local function keep_best(top, m, limit)
  local n = #top
  if n >= limit then
    if not M.better(m, top[n]) then return end
    top[n] = nil
    n = n - 1
  end
  local i = n
  while i >= 1 and M.better(m, top[i]) do
    top[i + 1] = top[i]
    i = i - 1
  end
  top[i + 1] = m
end

local KINDS = { s = true, n = true, m = true, e = true }

local function no_hits()
  return { s = 0, n = 0, m = 0, e = {} }
end

-- Every term shared: the bound then depends on time alone.
local function all_hits(prep)
  local h = { s = math.huge, n = math.huge, m = math.huge, e = {}, has_error = false }
  for i = 1, #prep.error_line_sets do h.e[i] = math.huge end
  return h
end

-- Counts `term` as shared in h (all of its error lines for an error token).
local function count_term(prep, h, term)
  local kind, tok = term:sub(1, 1), term:sub(3)
  if kind == "e" then
    for i, ls in ipairs(prep.error_line_sets) do
      if ls.set[tok] then h.e[i] = (h.e[i] or 0) + 1 end
    end
  else
    h[kind] = h[kind] + 1
  end
end

local function copy_hits(h)
  local e = {}
  for i, v in pairs(h.e) do e[i] = v end
  return { s = h.s, n = h.n, m = h.m, e = e }
end

-- Which of the target's terms to read: all but the most common ones the bound can do
-- without. Returns the kept terms, their lists ({[term] = {[period] = list}}), the
-- hits counted for the others and the bound of an incident sharing none of the kept
-- terms; nil when the terms are not ones the bound understands.
local function choose_terms(client, prep, periods, threshold, total)
  local terms, lists, df = {}, {}, {}
  for _, term in ipairs(correlate.index_terms(prep.target)) do
    if not KINDS[term:sub(1, 1)] or term:sub(2, 2) ~= ":" then return nil end
    if not lists[term] then
      local by_period, n = {}, 0
      for _, period in ipairs(periods) do
        local list = index.postings(client, period, term)
        by_period[period] = list
        n = n + index.length(list)
      end
      lists[term], df[term] = by_period, n
      terms[#terms + 1] = term
    end
  end
  table.sort(terms, function(a, b)
    if df[a] ~= df[b] then return df[a] > df[b] end
    return a < b
  end)
  local dropped = no_hits()
  local kept = {}
  for _, term in ipairs(terms) do
    local keep = true
    if df[term] > M.common_fraction * total then
      local trial = copy_hits(dropped)
      count_term(prep, trial, term)
      if correlate.upper_bound(prep, trial) + MARGIN < threshold then
        dropped, keep = trial, false
      end
    end
    if keep then kept[#kept + 1] = term end
  end
  return kept, lists, dropped, correlate.upper_bound(prep, dropped)
end

-- Counts of the kept terms a candidate has, packed in one integer: services, name
-- tokens, summary tokens (error tokens are counted per error line).
local SHIFT = { s = 1, n = 1 << 16, m = 1 << 32 }
local MASK = (1 << 16) - 1

-- The candidates of one period ({d = docno, ub = bound}), from the kept terms' lists.
local function index_candidates(prep, kept, lists, period, dropped, opts, floor)
  local from, to, skip = opts.from, opts.to, opts.skip or {}
  local created, packed, has_error = {}, {}, {}
  local he = {}
  local n_lines = #prep.error_line_sets
  for i = 1, n_lines do he[i] = {} end
  for _, term in ipairs(kept) do
    local kind, tok = term:sub(1, 1), term:sub(3)
    local inc = SHIFT[kind]
    local lines = {}
    if kind == "e" then
      for i, ls in ipairs(prep.error_line_sets) do
        if ls.set[tok] then lines[#lines + 1] = he[i] end
      end
    end
    local n_hit_lines = #lines
    index.scan(lists[term][period], from, to, function(t, d)
      if skip[d] then return end
      local c = packed[d]
      if not c then
        c = 0
        created[d] = t
      end
      if inc then
        packed[d] = c + inc
      else
        packed[d] = c
        has_error[d] = true
        for j = 1, n_hit_lines do
          local counts = lines[j]
          counts[d] = (counts[d] or 0) + 1
        end
      end
    end)
  end
  local t0 = prep.target.t
  local h = { e = {} }
  local cands = {}
  for d, c in pairs(packed) do
    h.s = dropped.s + (c & MASK)
    h.n = dropped.n + ((c >> 16) & MASK)
    h.m = dropped.m + (c >> 32)
    for i = 1, n_lines do h.e[i] = (dropped.e[i] or 0) + (he[i][d] or 0) end
    h.has_error = has_error[d] or false
    h.dt = t0 and math.abs(created[d] - t0) or nil
    local ub = correlate.upper_bound(prep, h)
    if ub + MARGIN >= floor then cands[#cands + 1] = { d = d, ub = ub } end
  end
  return cands
end

-- Every incident of one period, bounded by time alone when the policy can bound.
local function scan_candidates(prep, list, opts, floor)
  local skip = opts.skip or {}
  local bounded = correlate.upper_bound ~= nil
  local h = all_hits(prep)
  local t0 = prep.target.t
  local cands = {}
  index.scan(list, opts.from, opts.to, function(t, d)
    if skip[d] then return end
    local ub = 1
    if bounded then
      h.dt = t0 and math.abs(t - t0) or nil
      ub = correlate.upper_bound(prep, h)
    end
    if ub + MARGIN >= floor then cands[#cands + 1] = { d = d, ub = ub } end
  end)
  return cands
end

local function by_bound(a, b)
  if a.ub ~= b.ub then return a.ub > b.ub end
  return a.d < b.d
end

-- opts: from, to (the window, unix seconds), threshold, limit, match (rec -> match
-- {rec, score, ...}), skip ({[docno] = true}: incidents the caller handles itself, the
-- target first), target_docno, scan (true: no lookup).
-- Returns {matches = the best `limit` scoring at least the threshold, in order,
-- considered = incidents in the window but the target, scored = records read and
-- scored, lookup = "index" | "scan", postings_read = posting entries read}.
function M.find(client, prep, opts)
  local from, to, limit, threshold = opts.from, opts.to, opts.limit, opts.threshold
  local t0 = prep.target.t
  local considered = index.count_window(client, from, to)
  local own = opts.target_docno and index.get(client, opts.target_docno)
  if own and own.t and own.t >= from and own.t <= to then
    considered = considered - 1 -- the target is filed like the rest
  end

  -- periods nearest to the target first
  local periods, dist = index.periods(from, to), {}
  for _, period in ipairs(periods) do dist[period] = index.distance(period, t0 or to, from, to) end
  local kept, lists, dropped, lookup
  if not opts.scan and correlate.upper_bound and correlate.index_terms then
    local bound
    kept, lists, dropped, bound = choose_terms(client, prep, periods, threshold, considered + 1)
    if kept and bound + MARGIN < threshold then lookup = "index" end
  end
  if lookup ~= "index" then
    lookup, kept, lists = "scan", nil, {}
  end
  table.sort(periods, function(a, b)
    if dist[a] ~= dist[b] then return dist[a] < dist[b] end
    return a < b
  end)

  local rest = correlate.upper_bound and all_hits(prep)
  local top, scored, postings_read = {}, 0, 0
  for _, period in ipairs(periods) do
    local floor = threshold
    if #top >= limit and top[limit].score > floor then floor = top[limit].score end
    if rest then
      -- whatever is left is at least this far from the target
      rest.dt = t0 and dist[period] or nil
      if correlate.upper_bound(prep, rest) + MARGIN < floor then break end
    end
    local cands
    if kept then
      for _, term in ipairs(kept) do postings_read = postings_read + index.length(lists[term][period]) end
      cands = index_candidates(prep, kept, lists, period, dropped, opts, floor)
    else
      local list = index.postings(client, period, index.ALL)
      postings_read = postings_read + index.length(list)
      cands = scan_candidates(prep, list, opts, floor)
    end
    table.sort(cands, by_bound)
    for _, c in ipairs(cands) do
      if #top >= limit and c.ub + MARGIN < top[limit].score then break end
      local rec = index.get(client, c.d)
      if rec and rec.t and rec.t >= from and rec.t <= to then
        scored = scored + 1
        local m = opts.match(rec)
        if m.score >= threshold then keep_best(top, m, limit) end
      end
    end
  end
  return { matches = top, considered = considered, scored = scored, lookup = lookup,
           postings_read = postings_read }
end

return M
