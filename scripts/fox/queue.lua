-- The investigation queue: durable entries in fox.state, a process-wide concurrency
-- limit, a deadline per run, claims so an incident runs once, and recovery of work
-- interrupted by a crash.
--
-- Durable namespaces (fox.state):
--   queue     incident id -> {id, source, webhook_id, enqueued_at, attempts, not_before}
--             present from the moment an incident is accepted until its result is recorded
--   incidents incident id -> {status = done|skipped|failed, reference, outcome, ...}
--             the recorded result; an incident with a record is never queued again
--   claims    incident id -> owner (this process) while a run is in progress
--
-- Process-wide (fox.shared, survives hot reload): "queue:running" (runs in progress in
-- any generation), "queue:run:<id>" (this id is running), "queue:dirty" (something to
-- dispatch), "serve:draining", "inflight:<key>" (queue.exclusive).
--
-- Writes that answer a sender (enqueue) use st:write: they share one commit with the
-- other deliveries of the same loop turn (group commit) and yield until it is durable.
--
--   local q = queue.new{st=, owner=, concurrency=, deadline=, max_attempts=, record_ttl=,
--                       job=function(item) -> result}
--   q:enqueue(id, meta [, rows]) -> true | false, "known"|"queued" | nil, err
--                       rows: more {ns, key, value, ttl} stored in the entry's transaction
--   queue.exclusive(key, fn, ...) runs fn while no other task runs one for key
--   q:pump()            starts what the concurrency limit allows (current generation)
--   q:run_loop()        dispatches until the generation is replaced or fox drains
--   q:recover()         at process start: frees claims left by a crashed process
--
-- A job returns a result table {status = "done"|"skipped"|"failed"|"retry", ...}; every
-- other field is kept in the record. "retry" puts the entry back (retry_in seconds),
-- counting the attempt unless result.free_retry.
local json = require("fox.json")
local log = require("fox.log")
local shared = require("fox.shared")
local sys = require("fox.sys")
local task = require("fox.task")
local vm = require("fox.vm")

local M = {}

M.NS_QUEUE, M.NS_RECORD, M.NS_CLAIM = "queue", "incidents", "claims"
M.MAX_LIST = 10000          -- entries read per dispatch (bounded work per pump)
M.TICK = 1                  -- longest idle wait; M.wake() notifies the dispatcher at once
M.FULL_PUMP_EVERY = 1.0     -- seconds between dispatches without a wake-up
M.PURGE_EVERY = 600         -- seconds between purges of expired rows (records, webhook ids)
M.PURGE_BATCH = 1000        -- rows deleted per purge (keeps one pass short)
M.INFLIGHT_TTL = 30         -- seconds a crashed holder's exclusive marker can block others

local Queue = {}
Queue.__index = Queue

function M.draining()
  return shared.get("serve:draining") == true
end

function M.running()
  return shared.get("queue:running") or 0
end

--- Marks the queue as having work; the dispatcher of the current generation runs it.
function M.wake()
  shared.set("queue:dirty", true)
  task.notify("fox.queue")
end

function M.new(opts)
  local self = setmetatable({}, Queue)
  for k, v in pairs(opts) do self[k] = v end
  assert(self.st and self.job and self.owner, "queue.new needs st, job and owner")
  self.concurrency = self.concurrency or 8
  self.deadline = self.deadline or 120
  self.max_attempts = self.max_attempts or 3
  self.record_ttl = self.record_ttl or 30 * 86400
  self.claim_ttl = self.claim_ttl or math.ceil(self.deadline + 60)
  return self
end

local function decode(s)
  if type(s) ~= "string" then return nil end
  local v = json.safe.decode(s)
  return type(v) == "table" and v or nil
end

function Queue:record(id)
  local v, err = self.st:get(M.NS_RECORD, id)
  if err then return nil, err end
  return decode(v)
end

-- Wall time to the millisecond: enough to order entries, and a number fox.json writes
-- at once (a microsecond float takes its exact-float path: half the cost of an entry).
local function wall_ms()
  return math.floor(sys.wall_time() * 1000 + 0.5) / 1000
end

-- Releases an exclusive marker when its holder ends, however it ends (error,
-- cancellation: a to-be-closed variable is closed by both).
local Inflight = { __close = function(self)
  shared.delete(self.name)
  task.notify(self.name)
end }

--- Runs fn(...) while holding the process-wide marker for key, and returns its results.
-- A task that calls it with the same key meanwhile waits until the first is done, then
-- runs its own fn, which then reads what the first stored. This keeps "look, then write"
-- exact although a write yields until its group commits: without it two deliveries of
-- one webhook could both find nothing stored and both be accepted.
function M.exclusive(key, fn, ...)
  local name = "inflight:" .. key
  local deadline = task.now() + M.INFLIGHT_TTL
  while not shared.add(name, true, M.INFLIGHT_TTL) do
    if task.now() >= deadline then return nil, "another task holds " .. key end
    task.wait_for(name, 1)
  end
  local _ <close> = setmetatable({ name = name }, Inflight)
  return fn(...)
end

-- The look-then-write of enqueue, run exclusively per incident id.
local function enqueue_once(self, id, meta, rows)
  local st = self.st
  local rec, rerr = st:get(M.NS_RECORD, id)
  if rerr then return nil, rerr end
  if rec then return false, "known" end
  local cur, qerr = st:get(M.NS_QUEUE, id)
  if qerr then return nil, qerr end
  if cur then return false, "queued" end
  local entry = { id = id, attempts = 0, enqueued_at = wall_ms() }
  for k, v in pairs(meta or {}) do entry[k] = v end
  local all = { { M.NS_QUEUE, id, json.encode(entry) } }
  for _, r in ipairs(rows or {}) do all[#all + 1] = r end
  local ok, err = st:write(all)
  if not ok then return nil, err end
  M.wake()
  return true
end

--- Durably queues incident `id` unless it already has a record or an entry. Returns
-- once the entry is on disk (true), or nil, err when it could not be stored.
-- meta: source ("webhook"|"poller"|...), webhook_id, created_at.
-- rows: more rows {ns, key, value [, ttl]} to store in the entry's transaction (the
-- receiver's webhook id), written only when the entry is.
function Queue:enqueue(id, meta, rows)
  return M.exclusive("queue:" .. id, enqueue_once, self, id, meta, rows)
end

--- Entries waiting or running, oldest first.
function Queue:entries()
  local rows, err = self.st:list(M.NS_QUEUE, nil, M.MAX_LIST)
  if not rows then return nil, err end
  local out = {}
  for _, r in ipairs(rows) do
    local e = decode(r.value)
    if e then
      e.id = e.id or r.key
      out[#out + 1] = e
    else
      log.warn("queue.bad_entry", { id = r.key })
      self.st:delete(M.NS_QUEUE, r.key)
    end
  end
  table.sort(out, function(a, b)
    local ta = a.created_at_ts or a.enqueued_at or 0
    local tb = b.created_at_ts or b.enqueued_at or 0
    if ta ~= tb then return ta < tb end
    return a.id < b.id
  end)
  return out
end

--- Queue depth: entries not yet finished (waiting + running).
function Queue:depth()
  local rows = self.st:list(M.NS_QUEUE, nil, M.MAX_LIST)
  return rows and #rows or 0
end

-- Writes the final record, then removes the entry, then the claim: a crash between two
-- steps leaves an entry whose record exists, which the next pump just removes.
function Queue:finish(entry, result)
  local rec = {}
  for k, v in pairs(result) do
    if k ~= "retry_in" and k ~= "free_retry" then rec[k] = v end
  end
  rec.id, rec.source, rec.attempts = entry.id, entry.source, entry.attempts
  rec.finished_at = sys.wall_time()
  local ok, err = self.st:set(M.NS_RECORD, entry.id, json.encode(rec), self.record_ttl)
  if not ok then
    log.error("queue.record_failed", { id = entry.id, error = tostring(err) })
    return false
  end
  self.st:delete(M.NS_QUEUE, entry.id)
  self.st:release(M.NS_CLAIM, entry.id, self.owner)
  return true
end

function Queue:put_back(entry, result)
  if result.free_retry then entry.attempts = math.max(0, entry.attempts - 1) end
  entry.not_before = sys.wall_time() + (result.retry_in or 30)
  entry.last_error = result.error
  self.st:set(M.NS_QUEUE, entry.id, json.encode(entry))
  self.st:release(M.NS_CLAIM, entry.id, self.owner)
end

-- Runs one claimed entry in its own task with the deadline; always accounts for it.
function Queue:start(entry)
  shared.incr("queue:running", 1, 0)
  task.spawn({ name = "investigate " .. entry.id }, function()
    local t0 = task.now()
    local runner = task.spawn({ name = "playbook " .. entry.id, timeout = self.deadline }, self.job, entry)
    local res = table.pack(task.wait(runner))
    local result
    if res[1] then
      result = type(res[2]) == "table" and res[2] or { status = "done" }
    else
      local err = tostring(res[2])
      local timed_out = err:find("timed out", 1, true) or err:find("deadline", 1, true)
      result = { status = "failed", outcome = timed_out and "deadline" or "error",
        error = timed_out and ("the investigation did not finish within " .. self.deadline .. " s") or err }
    end
    result.duration = result.duration or (task.now() - t0)
    local ok, perr = pcall(function()
      if result.status == "retry" then
        self:put_back(entry, result)
      else
        self:finish(entry, result)
      end
    end)
    if not ok then log.error("queue.finish_failed", { id = entry.id, error = tostring(perr) }) end
    if self.on_done then pcall(self.on_done, entry, result) end
    shared.delete("queue:run:" .. entry.id)
    shared.incr("queue:running", -1, 0)
    M.wake()
  end)
end

--- Starts as many waiting entries as the concurrency limit allows.
function Queue:pump()
  if M.draining() then return 0 end
  local free = self.concurrency - M.running()
  if free <= 0 then return 0 end
  local entries, err = self:entries()
  if not entries then
    log.error("queue.list_failed", { error = tostring(err) })
    return 0
  end
  local now = sys.wall_time()
  local started = 0
  for _, e in ipairs(entries) do
    if started >= free then break end
    if not shared.get("queue:run:" .. e.id) and (not e.not_before or e.not_before <= now) then
      local rec = self:record(e.id)
      if rec then
        -- Finished before a crash removed the entry: nothing to run.
        self.st:delete(M.NS_QUEUE, e.id)
      elseif e.attempts >= self.max_attempts then
        self:finish(e, { status = "failed", outcome = "gave_up",
          error = "gave up after " .. e.attempts .. " attempts" .. (e.last_error and (": " .. e.last_error) or "") })
        log.error("investigation.gave_up", { id = e.id, attempts = e.attempts })
        if self.on_done then pcall(self.on_done, e, { status = "failed", outcome = "gave_up", duration = 0 }) end
      else
        local claimed = self.st:claim(M.NS_CLAIM, e.id, self.owner, self.claim_ttl)
        if claimed and shared.add("queue:run:" .. e.id, true) then
          -- The attempt is durable before the run starts: a crash during it counts.
          e.attempts = e.attempts + 1
          e.not_before = nil
          local ok, serr = self.st:set(M.NS_QUEUE, e.id, json.encode(e))
          if ok then
            started = started + 1
            self:start(e)
          else
            shared.delete("queue:run:" .. e.id)
            log.error("queue.claim_failed", { id = e.id, error = tostring(serr) })
          end
        end
      end
    end
  end
  return started
end

--- Dispatches until this generation stops being current or fox drains. Bounded: each
-- turn does one cheap check and sleeps M.TICK.
function Queue:run_loop()
  local last = -math.huge
  while vm.is_current() and not M.draining() do
    local now = task.now()
    if shared.get("queue:dirty") or now - last >= M.FULL_PUMP_EVERY then
      shared.delete("queue:dirty")
      last = now
      local ok, err = pcall(self.pump, self)
      if not ok then log.error("queue.pump_failed", { error = tostring(err) }) end
    end
    -- Expired rows (old records, webhook ids) are deleted a batch at a time; the time
    -- of the last purge is process-wide so reloads do not multiply purges.
    local wall = sys.wall_time()
    if wall - (shared.get("queue:last_purge") or 0) >= M.PURGE_EVERY then
      shared.set("queue:last_purge", wall)
      local n = self.st:purge(M.PURGE_BATCH)
      if n and n > 0 then log.debug("state.purged", { rows = n }) end
    end
    -- Sleep until woken (a new entry) or the next periodic check.
    if not shared.get("queue:dirty") then task.wait_for("fox.queue", M.TICK) end
  end
end

--- At process start (this process holds the state directory's lock): claims left by
-- a process that crashed are stale; free them so their entries run again. Also makes
-- entries that were waiting for a retry eligible now.
function Queue:recover()
  local claims = self.st:list(M.NS_CLAIM, nil, M.MAX_LIST) or {}
  for _, c in ipairs(claims) do
    if c.value ~= self.owner then
      log.info("investigation.resumed", { id = c.key, previous_owner = c.value })
      self.st:delete(M.NS_CLAIM, c.key)
    end
  end
  return #claims
end

--- Entries put back for a retry become eligible at once (after a reload with a new key).
function Queue:retry_now()
  for _, e in ipairs(self:entries() or {}) do
    if e.not_before then
      e.not_before = nil
      self.st:set(M.NS_QUEUE, e.id, json.encode(e))
    end
  end
  M.wake()
end

return M
