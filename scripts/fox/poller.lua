-- The poller: every poll_interval lists the incidents created since the durable
-- cursor (minus an overlap, de-duplicated by id through the queue's records), oldest
-- first, and queues the new ones. After downtime it catches up (bounded by
-- max_catch_up); on its very first run it only sets the cursor to now.
--
-- Durable: state ns "cursor", key "poll" -> unix seconds (float) of the last poll's
-- start; key "poll_start" -> when the poller first ran. Process-wide (fox.shared):
-- "poll:last_ok" (wall time), "poll:last_error".
--
--   poller.poll_once{st=, client=, queue=, cfg=} -> {queued=, seen=} | nil, err
--   poller.run_loop(env)   until the generation is replaced or fox drains
local log = require("fox.log")
local metrics = require("fox.metrics")
local queue_mod = require("fox.queue")
local shared = require("fox.shared")
local sys = require("fox.sys")
local task = require("fox.task")
local timerange = require("fox.timerange")
local vm = require("fox.vm")

local M = {}

M.NS, M.KEY, M.KEY_START = "cursor", "poll", "poll_start"
M.MAX_INCIDENTS = 5000      -- per poll: a bound on the work of one catch-up

--- One poll. Returns a summary, or nil and the client's error.
function M.poll_once(env)
  local st, client, cfg = env.st, env.client, env.cfg
  local now = sys.wall_time()
  local cursor = tonumber((st:get(M.NS, M.KEY)))
  if not cursor then
    -- First run ever: start from now; what happened before fox existed is not its job.
    -- The start is kept too, so the overlap never reaches before it.
    local ok, err = st:set(M.NS, M.KEY_START, tostring(now))
    if ok then ok, err = st:set(M.NS, M.KEY, tostring(now)) end
    if not ok then return nil, err end
    log.info("poll.cursor_initialised", { at = timerange.format_time(now) })
    return { queued = 0, seen = 0, first = true }
  end
  local since = cursor - cfg.poll_overlap
  local first_run = tonumber((st:get(M.NS, M.KEY_START)))
  if first_run and since < first_run then since = first_run end
  local floor = now - cfg.max_catch_up
  if since < floor then
    log.warn("poll.catch_up_bounded", { down_since = timerange.format_time(cursor),
      from = timerange.format_time(floor), max_catch_up = cfg.max_catch_up })
    since = floor
  end
  -- The API filters by day; the exact bound is applied below.
  local incidents, err, meta = client:list_incidents({
    ["created_at[gte]"] = timerange.format_date(since),
    sort_by = "created_at_oldest_first",
  }, { limit = M.MAX_INCIDENTS })
  if not incidents then return nil, err end
  local fresh = {}
  for _, inc in ipairs(incidents) do
    local created = timerange.parse_time(inc.created_at)
    if type(inc.id) == "string" and (not created or created >= since) then
      fresh[#fresh + 1] = { inc = inc, created = created or now }
    end
  end
  table.sort(fresh, function(a, b)
    if a.created ~= b.created then return a.created < b.created end
    return a.inc.id < b.inc.id
  end)
  local queued = 0
  for _, f in ipairs(fresh) do
    local ok, why = env.queue:enqueue(f.inc.id, {
      source = "poller", reference = f.inc.reference, created_at_ts = f.created,
    })
    if ok then
      queued = queued + 1
      metrics.inc("fox_incidents_queued_total", { source = "poller" })
      log.info("incident.queued", { incident = f.inc.reference, id = f.inc.id, source = "poller" })
    elseif ok == nil then
      return nil, why
    end
  end
  -- The cursor moves only once everything seen is durably queued. A truncated listing
  -- moves it to the last incident seen, so the next poll continues from there.
  local next_cursor = now
  if type(meta) == "table" and meta.truncated and #fresh > 0 then
    next_cursor = fresh[#fresh].created + cfg.poll_overlap
  end
  local ok, serr = st:set(M.NS, M.KEY, tostring(next_cursor))
  if not ok then return nil, serr end
  return { queued = queued, seen = #fresh }
end

local function note(ok, err)
  if ok then
    shared.set("poll:last_ok", sys.wall_time())
    shared.delete("poll:last_error")
    metrics.inc("fox_polls_total", { outcome = "ok" })
  else
    shared.set("poll:last_error", tostring(err))
    shared.set("poll:last_error_at", sys.wall_time())
    metrics.inc("fox_polls_total", { outcome = "error" })
  end
end

--- Polls every cfg.poll_interval until this generation is replaced or fox drains.
-- env.on_error(err) is told about failures (auth errors degrade /healthz).
function M.run_loop(env)
  local interval = env.cfg.poll_interval
  while vm.is_current() and not queue_mod.draining() do
    local t0 = task.now()
    local ok, res, err = pcall(M.poll_once, env)
    if not ok then res, err = nil, res end
    note(res ~= nil, err)
    if res then
      if env.on_ok then env.on_ok() end
      if res.queued > 0 then
        log.info("poll.done", { queued = res.queued, seen = res.seen,
          duration_ms = math.floor((task.now() - t0) * 1000) })
      end
    else
      log.warn("poll.failed", { error = tostring(err) })
      if env.on_error then env.on_error(err) end
    end
    -- Sleep in short slices so a reload or a drain ends this loop promptly.
    local wake = t0 + interval
    while vm.is_current() and not queue_mod.draining() and task.now() < wake do
      task.sleep(math.min(0.2, math.max(0, wake - task.now())))
    end
  end
end

return M
