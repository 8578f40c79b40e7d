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
M.lock_ttl = 300          -- a crashed refresher's lock expires after this long
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

-- The compact record kept for each incident (the shape correlate.score reads).
function M.record(raw, opts)
  opts = opts or {}
  local sev = type(raw.severity) == "table" and raw.severity or nil
  local st = type(raw.incident_status) == "table" and raw.incident_status or {}
  local ts = normalize.timestamps(raw)
  local lead = normalize.lead(raw)
  local features_input = raw
  if opts.extra_text then
    features_input = { name = raw.name, summary = raw.summary, extra_text = opts.extra_text }
  end
  return {
    id = raw.id,
    reference = raw.reference,
    name = raw.name,
    t = timerange.parse_time(raw.created_at),
    created_at = raw.created_at,
    up = timerange.parse_time(raw.updated_at) or 0,
    severity = sev and { name = sev.name, rank = sev.rank } or nil,
    status = { name = st.name, category = st.category },
    type = type(raw.incident_type) == "table" and raw.incident_type.name or nil,
    mode = raw.mode,
    services = services_policy.extract(raw),
    lead = lead and { name = lead.name, email = lead.email } or nil,
    durations = normalize.durations(raw),
    resolved_at = normalize.resolved_at(ts),
    postmortem_url = type(raw.postmortem_document_url) == "string" and raw.postmortem_document_url ~= ""
      and raw.postmortem_document_url or nil,
    permalink = raw.permalink,
    features = correlate_policy.features(features_input),
  }
end

-- Upserts raw incidents into their day chunks. Returns how many were new or changed.
local function upsert(client, raws, min_t)
  local by_day = {}
  for _, raw in ipairs(raws) do
    local t = timerange.parse_time(raw.created_at)
    if t and raw.id and (not min_t or t >= min_t) then
      local key = day_key(client, t)
      local list = by_day[key] or {}
      list[#list + 1] = raw
      by_day[key] = list
    end
  end
  local changed = 0
  for key, list in pairs(by_day) do
    local day = load_day(key)
    for _, raw in ipairs(list) do
      local cur = day[raw.id]
      local up = timerange.parse_time(raw.updated_at) or 0
      if not cur or (cur.up or 0) < up or cur.features == nil then
        day[raw.id] = M.record(raw)
        changed = changed + 1
      end
    end
    shared.set(key, json.encode(day))
  end
  return changed
end

local function max_updated(raws, cur)
  for _, raw in ipairs(raws) do
    local up = timerange.parse_time(raw.updated_at)
    if up and up > cur then cur = up end
  end
  return cur
end

-- Loads every incident created in [from, to) (`to` nil: up to now) into the index,
-- page by page (a large history is never held in memory at once). Returns
-- {count=, cursor=} or nil, err.
local function load_window(client, from, to)
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
      upsert(client, inside)
      count = count + #inside
      cursor = max_updated(raws, cursor)
    end })
  if err then return nil, err end
  return { count = count, cursor = cursor }
end

local function with_lock(client, fn)
  local key = prefix(client) .. "lock"
  local waited = 0
  while not shared.add(key, true, M.lock_ttl) do
    -- another task is refreshing: wait for it, then use what it loaded
    task.sleep(0.05)
    waited = waited + 0.05
    if waited > M.lock_ttl then break end
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
      local loaded, err = load_window(client, from, nil)
      if not loaded then return nil, err end
      meta = { from = from, cursor = loaded.cursor, refreshed_at = now, count = loaded.count }
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
      -- incremental: everything updated since the cursor's day (the API filters by
      -- date; records already current are skipped by upsert)
      local since = (meta.cursor or meta.from) - M.DAY
      local changed, cursor = 0, meta.cursor or 0
      local _, err = client:list_incidents({ ["updated_at[gte]"] = timerange.format_date(since) },
        { page_size = 250, collect = false, on_page = function(raws)
          changed = changed + upsert(client, raws, meta.from)
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
    return meta
  end)
end

-- Puts one incident (already fetched) into the index, e.g. the one being correlated.
function M.put(client, raw)
  return upsert(client, { raw })
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
