-- In-memory index of recent incidents for correlation, kept in the core's shared
-- dictionary (survives hot reload, never written to disk). Each incident is a compact
-- record (its correlation features precomputed) under its own key, and is filed in
-- posting lists, one per term (policies/correlate.lua `index_terms`: its services and
-- the tokens of its name, summary and error lines), so a correlation reads the lists of
-- the target's terms and decodes only the incidents they name, whatever the size of the
-- history. The index grows backwards on demand (a wider time range than it covers) and
-- is refreshed incrementally by `updated_at`.
--
-- Keys, under "incidentio:idx:v<FEATURES_VERSION>:<scope>:":
--   meta        JSON {from, cursor, refreshed_at, count, evictions, checked_at,
--               features_version}
--   seq         the last document number given to an incident
--   id:<id>     "<docno> <updated_at>" of an incident
--   rec:<docno> its record (JSON)
--   post:<period>:<term>  the posting list of a term for the incidents created in one
--               period of PERIOD seconds (number period = created // PERIOD): 8-byte
--               entries string.pack("<I4I4", created, docno), in no order. "*" lists
--               every incident, "x:merged" the merged ones. Periods let a search read
--               the incidents closest in time first, and stop when the rest cannot
--               score high enough.
--   terms       how many posting lists exist (with seq: how many keys the index has,
--               which tells whether the dictionary evicted some)
local json = require("fox.json")
local shared = require("fox.shared")
local task = require("fox.task")
local log = require("fox.log")
local timerange = require("fox.timerange")
local normalize = require("fox.normalize")
local services_policy = require("policies.services")
local correlate_policy = require("policies.correlate")

local M = {}

M.refresh_interval = 30   -- seconds between incremental refreshes
M.stale_after = 4         -- refresh intervals after which a call waits for the refresh
                          -- instead of reading the index while it runs in the background
M.lock_ttl = 60           -- a refresher renews its lock after every page; a task that
                          -- died holding it releases it after this long
M.DAY = 86400
-- Posting entries a load buffers before appending them to their lists: a list is
-- rewritten on every append, so appending page by page would copy the long lists of
-- common terms once per page of 250.
M.flush_entries = 200000

M.ALL = "*"               -- the posting list of every incident
M.MERGED = "x:merged"     -- of the incidents merged into another
M.PERIOD = 14 * 86400
local ENTRY = "<I4I4"
local ENTRY_SIZE = 8
local MAX_T = 0xFFFFFFFF

local function prefix(client)
  return "incidentio:idx:v" .. correlate_policy.FEATURES_VERSION .. ":" .. client.scope .. ":"
end

local function load_meta(client)
  local s = shared.get(prefix(client) .. "meta")
  if type(s) ~= "string" then return nil end
  local m = json.safe.decode(s)
  if type(m) ~= "table" or m.features_version ~= correlate_policy.FEATURES_VERSION then return nil end
  return m
end

local function save_meta(client, meta)
  meta.features_version = correlate_policy.FEATURES_VERSION
  shared.set(prefix(client) .. "meta", json.encode(meta))
end

-- Evictions the shared dictionary has made so far (tests replace it to simulate one).
function M.evictions()
  return shared.stats().evictions
end

-- How long an incident took, from its duration metrics (preferring the ones named
-- below), else from its resolution timestamp.
M.duration_metrics = { "Duration", "Time to resolve", "Lasted" }

local function duration_of(durations, created, resolved_at)
  for _, name in ipairs(M.duration_metrics) do
    if tonumber(durations[name]) then return tonumber(durations[name]) end
  end
  local names = {}
  for name in pairs(durations) do names[#names + 1] = name end
  table.sort(names)
  if names[1] then return tonumber(durations[names[1]]) end
  local resolved = resolved_at and timerange.parse_time(resolved_at)
  if resolved and created then return math.floor(resolved - created) end
  return nil
end

-- The compact record kept for each incident (the shape correlate.score reads). Kept
-- small: the index holds tens of thousands of them. opts: extra_text (update messages,
-- for the incident being correlated), t and up (created_at and updated_at already read).
function M.record(raw, opts)
  opts = opts or {}
  local sev = type(raw.severity) == "table" and raw.severity or nil
  local st = type(raw.incident_status) == "table" and raw.incident_status or {}
  local lead = normalize.lead(raw)
  local resolved_at = normalize.resolved_at(normalize.timestamps(raw))
  -- (the caller may have read both times already: parsing them is not free at 100k)
  local t = opts.t or timerange.parse_time(raw.created_at)
  local features_input = raw
  if opts.extra_text then
    features_input = { name = raw.name, summary = raw.summary, extra_text = opts.extra_text }
  end
  local pm = raw.postmortem_document_url
  return {
    id = raw.id,
    reference = raw.reference,
    name = raw.name,
    t = t,
    created_at = raw.created_at,
    up = opts.up or timerange.parse_time(raw.updated_at) or 0,
    severity = sev and { name = sev.name, rank = sev.rank } or nil,
    status = { name = st.name, category = st.category },
    type = type(raw.incident_type) == "table" and raw.incident_type.name or nil,
    services = services_policy.extract(raw),
    lead = lead and { name = lead.name, email = lead.email } or nil,
    duration = duration_of(normalize.durations(raw), t, resolved_at),
    resolved_at = resolved_at,
    postmortem_url = type(pm) == "string" and pm ~= "" and pm or nil,
    permalink = raw.permalink,
    features = correlate_policy.features(features_input),
  }
end

local function clamp_t(t)
  return math.max(0, math.min(MAX_T, math.floor(t)))
end

local function entry_of(t, docno)
  return string.pack(ENTRY, clamp_t(t), docno)
end

-- The period of a creation time (see the keys above).
function M.period(t)
  return clamp_t(t) // M.PERIOD
end

-- The list a term's entry for an incident created at t goes to: "<period>:<term>".
local function list_name(t, term)
  return M.period(t) .. ":" .. term
end

-- The terms an incident is filed under.
local function terms_of(rec)
  local terms = correlate_policy.index_terms and correlate_policy.index_terms(rec) or {}
  terms[#terms + 1] = M.ALL
  if rec.status and rec.status.category == "merged" then terms[#terms + 1] = M.MERGED end
  return terms
end

local function get_record(client, docno)
  local s = shared.get(prefix(client) .. "rec:" .. docno)
  if type(s) ~= "string" then return nil end
  local rec = json.safe.decode(s)
  return type(rec) == "table" and rec or nil
end

-- Posting entries waiting to be appended: {adds = {term -> {entry, ...}}, n = count}.
local function new_batch()
  return { adds = {}, n = 0 }
end

local function add_entry(batch, term, entry)
  local list = batch.adds[term]
  if not list then list = {}; batch.adds[term] = list end
  list[#list + 1] = entry
  batch.n = batch.n + 1
end

-- Appends the batch to the posting lists. Returns false when the shared dictionary
-- refused one (full).
local function flush(client, batch)
  if batch.n == 0 then return true end
  local p = prefix(client)
  local stored = true
  for term, list in pairs(batch.adds) do
    local key = p .. "post:" .. term
    local cur = shared.get(key)
    if type(cur) ~= "string" then
      shared.incr(p .. "terms", 1, 0)
      cur = ""
    end
    local ok, err = shared.set(key, cur .. table.concat(list))
    if not ok then
      stored = false
      log.warn("incident_index_full", { key = key, error = tostring(err),
        hint = "raise FOX_SHARED_MAX_BYTES or use a shorter time range" })
    end
  end
  batch.adds, batch.n = {}, 0
  return stored
end

-- Takes one entry out of a posting list (entries are 8 bytes: only a match at an
-- entry boundary counts).
local function remove_entry(client, term, entry)
  local key = prefix(client) .. "post:" .. term
  local s = shared.get(key)
  if type(s) ~= "string" then return end
  local pos = 1
  while true do
    local i = s:find(entry, pos, true)
    if not i then return end
    if (i - 1) % ENTRY_SIZE == 0 then
      shared.set(key, s:sub(1, i - 1) .. s:sub(i + ENTRY_SIZE))
      return
    end
    pos = i + 1
  end
end

-- Files a changed record again: out of the lists of the terms it lost, into those
-- it gained (all of them when its creation time moved).
local function refile(client, docno, old, rec, batch)
  local old_entry = old and entry_of(old.t or 0, docno)
  local new_entry = entry_of(rec.t, docno)
  local had = {}
  if old then
    for _, term in ipairs(terms_of(old)) do had[term] = true end
  end
  local has = {}
  for _, term in ipairs(terms_of(rec)) do
    has[term] = true
    if not (had[term] and old_entry == new_entry) then
      add_entry(batch, list_name(rec.t, term), new_entry)
    end
  end
  for term in pairs(had) do
    if not (has[term] and old_entry == new_entry) then
      remove_entry(client, list_name(old.t or 0, term), old_entry)
    end
  end
end

-- Upserts raw incidents: their records, their ids and their posting entries (into
-- `batch` when given, which the caller flushes; else flushed here). Returns how many
-- were new or changed, and false when the shared dictionary refused a value (full).
local function upsert(client, raws, min_t, batch)
  local own = not batch
  batch = batch or new_batch()
  local p = prefix(client)
  local changed, stored = 0, true
  for _, raw in ipairs(raws) do
    local t = timerange.parse_time(raw.created_at)
    if t and type(raw.id) == "string" and (not min_t or t >= min_t) then
      local up = timerange.parse_time(raw.updated_at) or 0
      local id_key = p .. "id:" .. raw.id
      local cur = shared.get(id_key)
      local docno, cur_up
      if type(cur) == "string" then
        local d, u = cur:match("^(%d+) (%S+)$")
        docno, cur_up = tonumber(d), tonumber(u)
      end
      if not docno or (cur_up or 0) < up then
        local rec = M.record(raw, { t = t, up = up })
        if docno then
          -- the lists must hold every entry of this incident before it is refiled
          if not flush(client, batch) then stored = false end
          refile(client, docno, get_record(client, docno), rec, batch)
        else
          docno = shared.incr(p .. "seq", 1, 0)
          local entry = entry_of(t, docno)
          for _, term in ipairs(terms_of(rec)) do add_entry(batch, list_name(t, term), entry) end
        end
        local ok, err = shared.set(p .. "rec:" .. docno, json.encode(rec))
        if ok then ok, err = shared.set(id_key, docno .. " " .. tostring(up)) end
        if not ok then
          stored = false
          log.warn("incident_index_full", { key = id_key, error = tostring(err),
            hint = "raise FOX_SHARED_MAX_BYTES or use a shorter time range" })
        end
        changed = changed + 1
      end
    end
  end
  if own and not flush(client, batch) then stored = false end
  return changed, stored
end

-- Whether every key the index wrote is still there: one record and one id per
-- document number, and the posting lists counted in `terms`.
local function intact(client)
  local p = prefix(client)
  local docs = tonumber(shared.get(p .. "seq")) or 0
  local terms = tonumber(shared.get(p .. "terms")) or 0
  local n = 0
  for _, k in ipairs(shared.keys(p)) do
    local kind = k:match("^(%a+):", #p + 1)
    if kind == "id" or kind == "rec" or kind == "post" then n = n + 1 end
  end
  return n == 2 * docs + terms
end

local function max_updated(raws, cur)
  for _, raw in ipairs(raws) do
    local up = timerange.parse_time(raw.updated_at)
    if up and up > cur then cur = up end
  end
  return cur
end

-- Renews the refresh lock (called after every page, so a long load keeps it).
local function renew_lock(client)
  shared.set(prefix(client) .. "lock", true, M.lock_ttl)
end

-- Loads every incident created in [from, to) (`to` nil: up to now) into the index,
-- page by page (a large history is never held in memory at once). Returns
-- {count=, cursor=} or nil, err.
local function load_window(client, from, to)
  local filters = { ["created_at[gte]"] = timerange.format_date(from - M.DAY),
                    sort_by = "created_at_newest_first" }
  if to then filters["created_at[lte]"] = timerange.format_date(to + M.DAY) end
  local count, cursor = 0, 0
  local batch = new_batch()
  local _, err = client:list_incidents(filters, { page_size = 250, collect = false,
    on_page = function(raws)
      local inside = {}
      for _, raw in ipairs(raws) do
        local t = timerange.parse_time(raw.created_at)
        if t and t >= from and (not to or t < to) then inside[#inside + 1] = raw end
      end
      upsert(client, inside, nil, batch)
      if batch.n >= M.flush_entries then flush(client, batch) end
      renew_lock(client)
      count = count + #inside
      cursor = max_updated(raws, cursor)
    end })
  flush(client, batch)
  if err then return nil, err end
  return { count = count, cursor = cursor }
end

-- Deletes every key of the index but the refresh lock (held by the caller).
local function clear_data(client)
  local lock = prefix(client) .. "lock"
  for _, k in ipairs(shared.keys(prefix(client))) do
    if k ~= lock then shared.delete(k) end
  end
end

local function with_lock(client, fn)
  local key = prefix(client) .. "lock"
  while not shared.add(key, true, M.lock_ttl) do
    -- another task is refreshing: wait for it (it renews the lock while it makes
    -- progress), then use what it loaded
    task.sleep(0.05)
  end
  local ok, a, b = pcall(fn)
  shared.delete(key)
  if not ok then error(a, 0) end
  return a, b
end

-- Incremental refresh: everything updated since the cursor's day (the API filters by
-- date; records already current are skipped by upsert). The caller holds the lock.
local function refresh_incremental(client, meta, now)
  local since = (meta.cursor or meta.from) - M.DAY
  local changed, cursor = 0, meta.cursor or 0
  local _, err = client:list_incidents({ ["updated_at[gte]"] = timerange.format_date(since) },
    { page_size = 250, collect = false, on_page = function(raws)
      changed = changed + upsert(client, raws, meta.from)
      renew_lock(client)
      cursor = max_updated(raws, cursor)
    end })
  if err then return nil, err end
  meta.cursor = cursor
  meta.refreshed_at = now
  if changed > 0 then
    log.debug("incident_index_refreshed", { changed = changed })
  end
  save_meta(client, meta)
  return true
end

-- The index as it is, unless the shared dictionary (an LRU with a size cap) evicted
-- part of it since it was last checked: then nil (it is rebuilt from the API). The
-- check lists the index's keys: when the dictionary is full and evicts all the time,
-- it runs at most once per refresh_interval.
local function checked_meta(client)
  local meta = load_meta(client)
  if not meta then return nil end
  local evictions = M.evictions()
  if meta.evictions == evictions then return meta end
  local now = os.time()
  if now - (meta.checked_at or 0) < M.refresh_interval then return meta end
  meta.checked_at = now
  if not intact(client) then
    log.warn("incident_index_evicted", { since = timerange.format_time(meta.from),
      hint = "the shared dictionary is too small for the history: raise FOX_SHARED_MAX_BYTES" })
    return nil, meta.from
  end
  meta.evictions = evictions
  save_meta(client, meta)
  return meta
end

-- A call does not wait for a due incremental refresh: it reads the index as it is
-- (at most a refresh interval and one refresh old) while one task refreshes it in the
-- background. Only an index older than stale_after intervals, one that does not
-- cover `from`, or one the dictionary may have evicted from takes the locked path.
local function current_meta(client, from)
  local meta = load_meta(client)
  if not meta or from < meta.from or meta.evictions ~= M.evictions() then return nil end
  local age = os.time() - (meta.refreshed_at or 0)
  if age < M.refresh_interval then return meta end
  if age >= M.refresh_interval * M.stale_after then return nil end
  local lock = prefix(client) .. "lock"
  if shared.add(lock, true, M.lock_ttl) then
    task.spawn({ name = "incident index refresh" }, function()
      local ok, err = pcall(function()
        local m = load_meta(client)
        if m then
          local done, rerr = refresh_incremental(client, m, os.time())
          if not done then log.warn("incident_index_refresh_failed", { error = tostring(rerr) }) end
        end
      end)
      shared.delete(lock)
      if not ok then log.warn("incident_index_refresh_failed", { error = tostring(err) }) end
    end)
  end
  return meta
end

-- Makes sure the index covers incidents created since `from` and is fresh (at most
-- refresh_interval old, or `opts.force`). Returns the index meta
-- {from, cursor, refreshed_at, count} or nil, err.
function M.ensure(client, from, opts)
  opts = opts or {}
  local fresh = not opts.force and current_meta(client, from)
  if fresh then return fresh end
  return with_lock(client, function()
    local meta, damaged_from = checked_meta(client)
    local now = os.time()
    local started = task.now()
    if not meta then
      if damaged_from then from = math.min(from, damaged_from) end
      clear_data(client)
      local loaded, err = load_window(client, from, nil)
      if not loaded then return nil, err end
      -- current as of the end of the load (a long one would otherwise be due for a
      -- refresh at once); what changed during it is caught by the next refresh, which
      -- starts a day before the cursor
      meta = { from = from, cursor = loaded.cursor, refreshed_at = os.time(), count = loaded.count,
               evictions = M.evictions() }
      if not intact(client) then
        log.warn("incident_index_incomplete", { incidents = loaded.count,
          hint = "the shared dictionary evicted part of the index while it loaded: raise FOX_SHARED_MAX_BYTES" })
      end
      save_meta(client, meta)
      log.info("incident_index_loaded", { incidents = loaded.count, since = timerange.format_time(from),
        ms = math.floor((task.now() - started) * 1000) })
      return meta
    end
    if from < meta.from then
      -- grow backwards: only the part not covered yet
      local loaded, err = load_window(client, from, meta.from)
      if not loaded then return nil, err end
      meta.from = from
      meta.count = (meta.count or 0) + loaded.count
      meta.cursor = math.max(loaded.cursor, meta.cursor or 0)
      save_meta(client, meta)
    end
    if opts.force or now - (meta.refreshed_at or 0) >= M.refresh_interval then
      local ok, err = refresh_incremental(client, meta, now)
      if not ok then return nil, err end
    end
    return meta
  end)
end

-- Puts one incident (already fetched) into the index, e.g. the one being correlated.
function M.put(client, raw)
  return (upsert(client, { raw }))
end

-- The posting list of a term for one period: a string of 8-byte entries ("" when no
-- incident of the period has it).
function M.postings(client, period, term)
  local s = shared.get(prefix(client) .. "post:" .. period .. ":" .. term)
  return type(s) == "string" and s or ""
end

-- The periods that hold incidents created in [from, to], in order.
function M.periods(from, to)
  local out = {}
  for p = M.period(from), M.period(to) do out[#out + 1] = p end
  return out
end

-- The distance in seconds from t to the nearest instant of a period within [from, to].
function M.distance(period, t, from, to)
  local a = math.max(period * M.PERIOD, from)
  local b = math.min((period + 1) * M.PERIOD - 1, to)
  if t < a then return a - t end
  if t > b then return t - b end
  return 0
end

-- How many entries a posting list has.
function M.length(list)
  return #list // ENTRY_SIZE
end

local UNPACK_RUN = 100
local run_formats = {}

-- Calls fn(created, docno) for every entry of a posting list created in [from, to].
-- Entries are unpacked a hundred at a time (one string.unpack call each).
function M.scan(list, from, to, fn)
  local n, pos = #list // ENTRY_SIZE, 1
  while n > 0 do
    local k = math.min(n, UNPACK_RUN)
    local fmt = run_formats[k]
    if not fmt then fmt = "<" .. ("I4I4"):rep(k); run_formats[k] = fmt end
    local v = { string.unpack(fmt, list, pos) }
    for i = 1, 2 * k, 2 do
      local t = v[i]
      if t >= from and t <= to then fn(t, v[i + 1]) end
    end
    pos = v[2 * k + 1]
    n = n - k
  end
end

local count_formats = {}

-- How many entries of a posting list were created in [from, to].
function M.count(list, from, to)
  local n, pos, total = #list // ENTRY_SIZE, 1, 0
  while n > 0 do
    local k = math.min(n, UNPACK_RUN)
    local fmt = count_formats[k]
    if not fmt then fmt = "<" .. ("I4xxxx"):rep(k); count_formats[k] = fmt end
    local v = { string.unpack(fmt, list, pos) }
    for i = 1, k do
      local t = v[i]
      if t >= from and t <= to then total = total + 1 end
    end
    pos = v[k + 1]
    n = n - k
  end
  return total
end

-- The record of a document number, or nil.
function M.get(client, docno)
  return get_record(client, docno)
end

-- The document number of an incident id, or nil.
function M.docno(client, id)
  local cur = shared.get(prefix(client) .. "id:" .. tostring(id))
  return type(cur) == "string" and tonumber(cur:match("^(%d+) ")) or nil
end

-- Calls fn(record, docno) for every indexed incident created in [from, to]. Returns
-- the count.
function M.each(client, from, to, fn)
  local n = 0
  for _, period in ipairs(M.periods(from, to)) do
    M.scan(M.postings(client, period, M.ALL), from, to, function(_, docno)
      local rec = get_record(client, docno)
      if rec and rec.t and rec.t >= from and rec.t <= to then
        n = n + 1
        fn(rec, docno)
      end
    end)
  end
  return n
end

-- How many incidents were created in [from, to] (periods wholly inside are counted
-- by their length, without reading them).
function M.count_window(client, from, to)
  local n = 0
  for _, period in ipairs(M.periods(from, to)) do
    local list = M.postings(client, period, M.ALL)
    if period * M.PERIOD >= from and (period + 1) * M.PERIOD - 1 <= to then
      n = n + #list // ENTRY_SIZE
    else
      n = n + M.count(list, from, to)
    end
  end
  return n
end

-- Forgets the index of this client's server and key (tests, or after a policy change).
function M.clear(client)
  for _, k in ipairs(shared.keys(prefix(client))) do shared.delete(k) end
end

return M
