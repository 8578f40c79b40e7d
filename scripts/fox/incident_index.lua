-- In-memory index of recent incidents for correlation, kept in the core's shared
-- dictionary (survives hot reload, never written to disk). Incidents are stored as
-- compact records (with their correlation features precomputed) in one chunk per UTC
-- day of creation, so a correlation over 30 days decodes 30 chunks, whatever the size
-- of the history. The index grows backwards on demand (a wider time range than it
-- covers) and is refreshed incrementally by `updated_at`.
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
M.lock_ttl = 60           -- a refresher renews its lock after every page; a task that
                          -- died holding it releases it after this long
M.DAY = 86400

local function prefix(client)
  return "incidentio:idx:" .. client.scope .. ":"
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

local function day_key(client, t)
  return prefix(client) .. "day:" .. timerange.format_date(t)
end

local function load_day(key)
  local s = shared.get(key)
  if type(s) ~= "string" then return {} end
  local d = json.safe.decode(s)
  if type(d) ~= "table" then return {} end
  return d
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
-- small: the index holds tens of thousands of them.
function M.record(raw, opts)
  opts = opts or {}
  local sev = type(raw.severity) == "table" and raw.severity or nil
  local st = type(raw.incident_status) == "table" and raw.incident_status or {}
  local lead = normalize.lead(raw)
  local resolved_at = normalize.resolved_at(normalize.timestamps(raw))
  local t = timerange.parse_time(raw.created_at)
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
    up = timerange.parse_time(raw.updated_at) or 0,
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

-- Upserts raw incidents into their day chunks. Returns how many were new or changed,
-- and false when the shared dictionary refused a chunk (full). Records the days that
-- hold incidents in `days` (date -> true) when given.
local function upsert(client, raws, min_t, days)
  local by_day = {}
  for _, raw in ipairs(raws) do
    local t = timerange.parse_time(raw.created_at)
    if t and raw.id and (not min_t or t >= min_t) then
      local key = day_key(client, t)
      if days then days[timerange.format_date(t)] = true end
      local list = by_day[key] or {}
      list[#list + 1] = raw
      by_day[key] = list
    end
  end
  local changed, stored = 0, true
  for key, list in pairs(by_day) do
    local day = load_day(key)
    local n = 0
    for _, raw in ipairs(list) do
      local cur = day[raw.id]
      local up = timerange.parse_time(raw.updated_at) or 0
      if not cur or (cur.up or 0) < up then
        day[raw.id] = M.record(raw)
        n = n + 1
      end
    end
    if n > 0 then
      local ok, err = shared.set(key, json.encode(day))
      if not ok then
        stored = false
        log.warn("incident_index_full", { key = key, error = tostring(err),
          hint = "raise FOX_SHARED_MAX_BYTES or use a shorter time range" })
      end
      changed = changed + n
    end
  end
  return changed, stored
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
local function load_window(client, from, to, days)
  local filters = { ["created_at[gte]"] = timerange.format_date(from - M.DAY),
                    sort_by = "created_at_newest_first" }
  if to then filters["created_at[lte]"] = timerange.format_date(to + M.DAY) end
  local count, cursor = 0, 0
  local _, err = client:list_incidents(filters, { page_size = 250, collect = false,
    on_page = function(raws)
      local inside = {}
      for _, raw in ipairs(raws) do
        local t = timerange.parse_time(raw.created_at)
        if t and t >= from and (not to or t < to) then inside[#inside + 1] = raw end
      end
      upsert(client, inside, nil, days)
      renew_lock(client)
      count = count + #inside
      cursor = max_updated(raws, cursor)
    end })
  if err then return nil, err end
  return { count = count, cursor = cursor }
end

-- Days whose chunk the shared dictionary evicted (it is an LRU with a size cap):
-- reloaded from the API. Returns nil or an error.
local function reload_evicted(client, meta, from)
  local missing = {}
  for date in pairs(meta.days or {}) do
    local t = timerange.parse_time(date)
    if t and t + M.DAY > from and not shared.ttl(prefix(client) .. "day:" .. date) then
      missing[#missing + 1] = t
    end
  end
  if #missing == 0 then return nil end
  table.sort(missing)
  log.warn("incident_index_evicted", { days = #missing,
    hint = "the shared dictionary is too small for the history: raise FOX_SHARED_MAX_BYTES" })
  if #missing > 30 then
    local _, err = load_window(client, math.max(from, missing[1]), nil, meta.days)
    return err
  end
  for _, t in ipairs(missing) do
    local _, err = load_window(client, t, t + M.DAY, meta.days)
    if err then return err end
  end
  return nil
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

-- Makes sure the index covers incidents created since `from` and is fresh (at most
-- refresh_interval old, or `opts.force`). Returns the index meta
-- {from, cursor, refreshed_at, count} or nil, err.
function M.ensure(client, from, opts)
  opts = opts or {}
  return with_lock(client, function()
    local meta = load_meta(client)
    local now = os.time()
    local started = task.now()
    if not meta then
      local days = {}
      local loaded, err = load_window(client, from, nil, days)
      if not loaded then return nil, err end
      meta = { from = from, cursor = loaded.cursor, refreshed_at = now, count = loaded.count, days = days }
      save_meta(client, meta)
      log.info("incident_index_loaded", { incidents = loaded.count, since = timerange.format_time(from),
        ms = math.floor((task.now() - started) * 1000) })
      return meta
    end
    if from < meta.from then
      -- grow backwards: only the part not covered yet
      meta.days = meta.days or {}
      local loaded, err = load_window(client, from, meta.from, meta.days)
      if not loaded then return nil, err end
      meta.from = from
      meta.count = (meta.count or 0) + loaded.count
      meta.cursor = math.max(loaded.cursor, meta.cursor or 0)
      save_meta(client, meta)
    end
    if opts.force or now - (meta.refreshed_at or 0) >= M.refresh_interval then
      -- incremental: everything updated since the cursor's day (the API filters by
      -- date; records already current are skipped by upsert)
      local since = (meta.cursor or meta.from) - M.DAY
      local changed, cursor = 0, meta.cursor or 0
      local _, err = client:list_incidents({ ["updated_at[gte]"] = timerange.format_date(since) },
        { page_size = 250, collect = false, on_page = function(raws)
          meta.days = meta.days or {}
          changed = changed + upsert(client, raws, meta.from, meta.days)
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
    end
    local rerr = reload_evicted(client, meta, from)
    if rerr then return nil, rerr end
    return meta
  end)
end

-- Puts one incident (already fetched) into the index, e.g. the one being correlated.
function M.put(client, raw)
  local meta = load_meta(client)
  local changed = upsert(client, { raw }, nil, meta and meta.days)
  if meta then save_meta(client, meta) end
  return changed
end

-- Calls fn(record) for every indexed incident created in [from, to]. Returns the count.
function M.each(client, from, to, fn)
  local n = 0
  local day = (math.floor(from) // M.DAY) * M.DAY
  while day <= to do
    local chunk = load_day(day_key(client, day))
    for _, rec in pairs(chunk) do
      if rec.t and rec.t >= from and rec.t <= to then
        n = n + 1
        fn(rec)
      end
    end
    day = day + M.DAY
  end
  return n
end

-- Forgets the index of this client's server and key (tests, or after a policy change).
function M.clear(client)
  for _, k in ipairs(shared.keys(prefix(client))) do shared.delete(k) end
end

return M
