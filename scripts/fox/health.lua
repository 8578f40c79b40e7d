-- /healthz and the gauges of /metrics: what an operator (or a load balancer) needs to
-- know about a running `fox serve`.
--
-- Process-wide facts live in the shared dictionary so every generation reports the
-- same thing: "health:incidentio_error" (+ _at) is set when incident.io rejects the key
-- and cleared by the next successful call; "poll:last_ok", "poll:last_error" by the
-- poller; "serve:draining", "serve:started_at".
--
--   health.degrade(message) / health.recover()
--   health.report(env) -> http status, table
--   health.gauges(env) -> gauge families for metrics.render
local json = require("fox.json")
local log = require("fox.log")
local queue = require("fox.queue")
local shared = require("fox.shared")
local sys = require("fox.sys")
local vm = require("fox.vm")

local M = {}

--- incident.io rejected the key: keep running, say so on /healthz.
function M.degrade(message)
  local prev = shared.get("health:incidentio_error")
  shared.set("health:incidentio_error", message)
  shared.set("health:incidentio_error_at", sys.wall_time())
  if prev ~= message then log.error("health.degraded", { reason = message }) end
end

--- A call to incident.io succeeded: the key works.
function M.recover()
  if shared.get("health:incidentio_error") then
    shared.delete("health:incidentio_error")
    shared.delete("health:incidentio_error_at")
    log.info("health.recovered", {})
  end
end

function M.degraded()
  return shared.get("health:incidentio_error")
end

-- The reload error without the traceback: "file:line: message".
function M.reload_error(err)
  if type(err) ~= "string" or err == "" then return nil end
  err = err:gsub("\nstack traceback:.*$", "")
  return err
end

local function iso(t)
  if not t then return nil end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

--- The /healthz document. env: cfg, queue (may be nil when the state is unavailable).
function M.report(env)
  local problems = json.array({})
  local status = "ok"
  local last = vm.last_reload()
  local reload = { ok = last.ok, at = iso(last.at), reloads = last.reloads, failures = last.failures,
    error = M.reload_error(last.error) }
  if not last.ok then
    status = "degraded"
    problems[#problems + 1] = "the last reload failed, still serving generation " .. vm.current()
      .. ": " .. tostring(reload.error)
  end
  local api_err = shared.get("health:incidentio_error")
  if api_err then
    status = "degraded"
    problems[#problems + 1] = api_err
  end
  local depth, depth_err
  if env and env.queue then
    local ok, d = pcall(env.queue.depth, env.queue)
    if ok then depth = d else depth_err = tostring(d) end
  else
    depth_err = env and env.error or "state unavailable"
  end
  if depth_err then
    status = "degraded"
    problems[#problems + 1] = "durable state unavailable: " .. depth_err
  end
  local draining = shared.get("serve:draining") == true
  if draining then status = "draining" end
  local cfg = env and env.cfg or {}
  local doc = {
    status = status,
    problems = problems,
    generation = vm.current(),
    generations = {},
    last_reload = reload,
    queue = { depth = depth, running = queue.running() },
    last_poll = {
      enabled = cfg.poll == true,
      ok_at = iso(shared.get("poll:last_ok")),
      error = shared.get("poll:last_error"),
      error_at = iso(shared.get("poll:last_error_at")),
    },
    incidentio = { ok = api_err == nil, error = api_err, error_at = iso(shared.get("health:incidentio_error_at")) },
    uptime_s = shared.get("serve:started_at") and math.floor(sys.wall_time() - shared.get("serve:started_at")) or nil,
    pid = sys.pid(),
  }
  for _, g in ipairs(vm.generations()) do
    doc.generations[#doc.generations + 1] = { id = g.id, current = g.current, memory = g.memory }
  end
  return draining and 503 or 200, doc
end

--- Gauges computed at scrape time.
function M.gauges(env)
  local out = {}
  local function gauge(name, help, samples, gtype)
    out[#out + 1] = { name = name, help = help, type = gtype or "gauge", samples = samples }
  end
  local depth = 0
  if env and env.queue then
    local ok, d = pcall(env.queue.depth, env.queue)
    depth = ok and d or 0
  end
  gauge("fox_queue_depth", "Incidents queued and not yet finished (waiting or running).", { { value = depth } })
  gauge("fox_investigations_running", "Investigations running now, in every generation.",
    { { value = queue.running() } })
  local last = vm.last_reload()
  gauge("fox_reloads_total", "Reload attempts (SIGHUP).", { { value = last.reloads } }, "counter")
  gauge("fox_reload_failures_total", "Reloads rejected (the old generation kept serving).",
    { { value = last.failures } }, "counter")
  gauge("fox_last_reload_ok", "1 when the last reload succeeded (or none happened).",
    { { value = last.ok and 1 or 0 } })
  if not last.ok then
    -- The error itself, as an info-style series (file:line: message).
    local msg = (M.reload_error(last.error) or ""):gsub("\n.*$", ""):sub(1, 300)
    gauge("fox_last_reload_error_info", "The error of the last reload when it failed.",
      { { labels = { error = msg }, value = 1 } })
  end
  gauge("fox_generation", "The generation receiving new work.", { { value = vm.current() } })
  local mem = {}
  for _, g in ipairs(vm.generations()) do
    mem[#mem + 1] = { labels = { generation = tostring(g.id), current = tostring(g.current) }, value = g.memory }
  end
  gauge("fox_lua_memory_bytes", "Lua memory in use per generation.", mem)
  local rss = sys.rss_bytes()
  if rss then gauge("fox_process_resident_memory_bytes", "Resident memory of the process.", { { value = rss } }) end
  gauge("fox_incidentio_degraded", "1 while incident.io rejects the API key.",
    { { value = shared.get("health:incidentio_error") and 1 or 0 } })
  local last_ok = shared.get("poll:last_ok")
  if last_ok then
    gauge("fox_last_successful_poll_timestamp_seconds", "Unix time of the last successful poll.",
      { { value = last_ok } })
  end
  return out
end

return M
