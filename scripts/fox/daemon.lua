-- The daemon behind `fox serve`: the boot module of every generation.
--
--   load()        validates the config and loads every script this generation runs
--                 (the playbook, the skip policy, the daemon's modules). No network I/O.
--                 An error rejects the generation (SIGHUP keeps the old one serving).
--   start()       runs as a task once the generation is current: opens the durable
--                 state, starts the dispatcher and the poller of this generation.
--   handle_http(req)  the listener's handler, resolved in the current generation.
--   env()         this generation's {cfg, st, client, queue, playbook, skip}.
--
-- What must outlive a generation lives in fox.shared (counters, running set, health) or
-- fox.state (queue, records, cursor); this module's upvalues are per generation. The
-- options of the process (--config, --listen, --state-dir) are in fox.shared under
-- "serve:opt:*", set by fox.cli.serve.
local changes = require("sources.changes")
local config = require("fox.config")
local health = require("fox.health")
local incidentio = require("fox.incidentio")
local json = require("fox.json")
local log = require("fox.log")
local mcp = require("fox.mcp")
local metrics = require("fox.metrics")
local poller = require("fox.poller")
local queue = require("fox.queue")
local receiver = require("fox.webhook_receiver")
local shared = require("fox.shared")
local state = require("fox.state")
local sys = require("fox.sys")
local task = require("fox.task")
local vm = require("fox.vm")

local M = {}

M.NS_POSTED = "posted"     -- "<incident id>:<key>" -> what ctx.once recorded
M.NS_PLAYBOOK = "playbook" -- "<incident id>:<key>" -> ctx.state values

local loaded        -- {cfg, playbook, skip} from load()
local env_cache     -- env() of this generation

--- The process options fox.cli.serve recorded.
function M.options()
  return {
    config = shared.get("serve:opt:config"),
    listen = shared.get("serve:opt:listen"),
    state_dir = shared.get("serve:opt:state_dir"),
  }
end

local function overrides()
  local o = M.options()
  local out = {}
  if o.listen then out.listen = o.listen end
  if o.state_dir then out.state_dir = o.state_dir end
  return out
end

-- A playbook is a module table with run(incident, ctx), or a function.
local function playbook_runner(pb, name)
  if type(pb) == "function" then return pb end
  if type(pb) == "table" and type(pb.run) == "function" then
    return function(incident, ctx) return pb.run(incident, ctx) end
  end
  error("playbook '" .. name .. "' must return a function or a table with run(incident, ctx)", 0)
end

--- Validates the config and loads every script. Raises "file:line: message".
function M.load()
  local o = M.options()
  local path = config.resolve_path(o.config)
  local cfg, errs = config.load(path, { overrides = overrides() })
  if not cfg then error(table.concat(errs, "\n"), 0) end
  local pb = config.load_code(cfg.playbook, cfg)
  local run = playbook_runner(pb, cfg.playbook)
  local skip = config.load_code(cfg.skip_policy, cfg)
  if type(skip) ~= "function" then
    error("skip_policy '" .. cfg.skip_policy .. "' must return a function(incident, opts)", 0)
  end
  loaded = { cfg = cfg, run = run, skip = skip }
  env_cache = nil
  return loaded
end

-- "/v2/incidents/01ABC..." -> "/v2/incidents/{id}": bounded label values.
local function endpoint_of(method, path)
  local parts = {}
  for seg in path:gmatch("[^/]+") do
    if seg:match("%d") and (#seg >= 6 or seg:match("^%d+$")) and not seg:match("^v%d+$") then
      seg = "{id}"
    end
    parts[#parts + 1] = seg
  end
  return method .. " /" .. table.concat(parts, "/")
end
M.endpoint_of = endpoint_of

-- The incident.io client with metrics and health around every call.
local function instrumented_client(cfg)
  local o = {}
  for k, v in pairs(cfg.incidentio or {}) do o[k] = v end
  local client = incidentio.new(o)
  local request, acquire = client.request, client.acquire_token
  client.request = function(self, method, path, opts)
    local res, resp = request(self, method, path, opts)
    local status
    if res then
      status = type(resp) == "table" and resp.status or 200
      health.recover()
    else
      status = type(resp) == "table" and (resp.status or resp.kind) or "error"
      if type(resp) == "table" and resp.kind == "auth" then health.degrade(tostring(resp)) end
    end
    metrics.inc("fox_incidentio_requests_total", { endpoint = endpoint_of(method, path), status = tostring(status) })
    return res, resp
  end
  client.acquire_token = function(self, bucket)
    local waited = acquire(self, bucket)
    if type(waited) == "number" and waited > 0 then
      metrics.inc("fox_incidentio_rate_limit_waits_total")
      metrics.inc("fox_incidentio_rate_limit_wait_seconds_total", nil, waited)
    end
    return waited
  end
  return client
end

--- This generation's environment; opens the durable state on first use.
-- Returns env, or nil and an error (the state directory is locked or corrupt).
function M.env()
  if env_cache then return env_cache end
  if not loaded then M.load() end
  local cfg = loaded.cfg
  local st, err = state.open(cfg.state_dir)
  if not st then return nil, err end
  local e = { cfg = cfg, st = st, run = loaded.run, skip = loaded.skip }
  e.client = instrumented_client(cfg)
  e.owner = shared.get("serve:owner") or (sys.hostname() or "fox") .. ":" .. sys.pid()
  e.queue = queue.new({
    st = st, owner = e.owner, concurrency = cfg.concurrency, deadline = cfg.investigation_timeout,
    max_attempts = cfg.max_attempts, record_ttl = cfg.record_ttl,
    job = function(entry) return M.investigate(e, entry) end,
    on_done = function(entry, result) M.finished(e, entry, result) end,
  })
  -- What the webhook receiver needs, built once per generation rather than per delivery.
  e.receiver = {
    cfg = cfg, st = st, queue = e.queue,
    -- Start the investigation right after the answer rather than at the next
    -- dispatcher tick; one pending dispatch at a time, however many deliveries.
    on_queued = function()
      if vm.is_current() and shared.add("queue:pump_pending", true, 5) then
        task.spawn({ name = "dispatch" }, function()
          shared.delete("queue:pump_pending")
          e.queue:pump()
        end)
      end
    end,
  }
  env_cache = e
  return e
end

---------------------------------------------------------------------------
-- investigations
---------------------------------------------------------------------------

-- The ctx a playbook receives. See docs/configuration.md ("Playbook context").
local function make_ctx(e, entry, incident)
  local id = incident.id or entry.id
  local ref = incident.reference or id
  local function key(k)
    assert(type(k) == "string" and k ~= "", "ctx: keys are non-empty strings")
    return id .. ":" .. k
  end
  local ctx = {
    incident_id = id, reference = ref, source = entry.source, attempt = entry.attempts,
    client = e.client, config = e.cfg, options = e.cfg.playbook_options or {},
    deadline = task.now() + e.cfg.investigation_timeout, dry_run = false,
  }
  ctx.log = {}
  for _, level in ipairs({ "debug", "info", "warn", "error" }) do
    ctx.log[level] = function(event, fields)
      local f = {}
      for k, v in pairs(fields or {}) do f[k] = v end
      f.incident = ref
      log[level](event, f)
    end
  end
  --- ctx.once(key, fn): runs fn unless key was recorded for this incident; records
  -- fn's first result durably. A message recorded as posted is never posted again.
  function ctx.once(k, fn)
    local prev = e.st:get(M.NS_POSTED, key(k))
    if prev then
      local v = json.safe.decode(prev)
      return type(v) == "table" and v.value or true, true
    end
    local res, err = fn()
    if res == nil or res == false then return nil, err end
    local ok, encoded = pcall(json.encode, { value = res })
    if not ok then encoded = json.encode({ value = true }) end
    local sok, serr = e.st:set(M.NS_POSTED, key(k), encoded, e.cfg.record_ttl)
    if not sok then log.error("playbook.record_failed", { incident = ref, key = k, error = tostring(serr) }) end
    return res, false
  end
  function ctx.posted(k)
    local prev = e.st:get(M.NS_POSTED, key(k))
    if not prev then return nil end
    local v = json.safe.decode(prev)
    return type(v) == "table" and v.value or true
  end
  ctx.state = {
    get = function(k) return e.st:get(M.NS_PLAYBOOK, key(k)) end,
    set = function(k, v, ttl) return e.st:set(M.NS_PLAYBOOK, key(k), v, ttl or e.cfg.record_ttl) end,
  }
  return ctx
end

-- Re-fetch errors: which are worth a retry, and whether the attempt counts.
local RETRY_KINDS = { network = true, server = true, rate_limited = true, bad_response = true, internal = true }

--- The queue's job: re-fetch, apply the skip policy, run the playbook.
function M.investigate(e, entry)
  metrics.inc("fox_investigations_started_total")
  local t0 = task.now()
  local incident, err = e.client:get_incident(entry.id)
  if not incident then
    local kind = type(err) == "table" and err.kind or "internal"
    local msg = tostring(err)
    if kind == "auth" or kind == "config" then
      health.degrade(msg)
      return { status = "retry", free_retry = true, retry_in = e.cfg.retry_delay, error = msg, outcome = kind }
    end
    if RETRY_KINDS[kind] then
      return { status = "retry", retry_in = math.min(e.cfg.retry_delay, 5 * 2 ^ (entry.attempts - 1)),
        error = msg, outcome = kind }
    end
    return { status = "failed", outcome = kind, error = msg, duration = task.now() - t0 }
  end
  entry.reference = incident.reference or entry.reference
  local skip, why = e.skip(incident, e.cfg.skip)
  if skip then
    return { status = "skipped", outcome = "skipped", reason = tostring(why or "skip policy"),
      reference = entry.reference, duration = task.now() - t0 }
  end
  local ctx = make_ctx(e, entry, incident)
  local ok, findings, perr = pcall(e.run, incident, ctx)
  local duration = task.now() - t0
  if not ok then
    -- A playbook that ran out of memory left its garbage behind: collect it now rather
    -- than when the next allocation anywhere in this generation hits the cap.
    if tostring(findings):find("not enough memory", 1, true) then collectgarbage() end
    return { status = "failed", outcome = "error", error = tostring(findings), reference = entry.reference,
      duration = duration }
  end
  if findings == nil and perr ~= nil then
    return { status = "failed", outcome = "error", error = tostring(perr), reference = entry.reference,
      duration = duration }
  end
  local summary = type(findings) == "table" and findings.summary or nil
  return { status = "done", outcome = "ok", reference = entry.reference, duration = duration,
    summary = type(summary) == "string" and summary:sub(1, 500) or nil }
end

--- After each run (any generation): one log line, the metrics.
function M.finished(_, entry, result)
  local outcome = result.outcome or result.status
  local fields = {
    incident = entry.reference or result.reference, id = entry.id, source = entry.source,
    attempt = entry.attempts, status = result.status, outcome = outcome,
    duration_ms = math.floor((result.duration or 0) * 1000), error = result.error, reason = result.reason,
    generation = vm.generation(),
  }
  if result.status == "done" then
    metrics.inc("fox_investigations_completed_total")
    metrics.observe("fox_investigation_duration_seconds", { outcome = "ok" }, result.duration or 0)
    log.info("investigation", fields)
  elseif result.status == "skipped" then
    metrics.inc("fox_investigations_skipped_total")
    log.info("investigation", fields)
  elseif result.status == "retry" then
    fields.retry_in = result.retry_in
    log.warn("investigation", fields)
  else
    metrics.inc("fox_investigations_failed_total", { reason = outcome })
    metrics.observe("fox_investigation_duration_seconds", { outcome = "failed" }, result.duration or 0)
    log.error("investigation", fields)
  end
end

---------------------------------------------------------------------------
-- HTTP
---------------------------------------------------------------------------
local function text(status, body, ctype)
  return { status = status, headers = { ["Content-Type"] = ctype or "text/plain; charset=utf-8" }, body = body }
end

local ROUTES = {
  ["/webhooks/incident-io"] = true, ["/healthz"] = true, ["/metrics"] = true,
  ["/v1/changes"] = true, ["/mcp"] = true,
}

-- Group commits of the durable state (fox.state st:write): how many deliveries share
-- one fsync is the figure that explains webhook throughput on a given disk.
local function state_counters(e)
  local s = e.st:stats()
  local function counter(name, help, value)
    return { name = name, help = help, type = "counter", samples = { { value = value } } }
  end
  return {
    counter("fox_state_group_commits_total", "Group commits of durable writes (one fsync each).", s.commits),
    counter("fox_state_group_commit_failures_total", "Group commits that failed (none of their rows stored).",
      s.failed),
    counter("fox_state_group_writes_total", "Durable writes (one per accepted delivery) committed in groups.",
      s.writes),
  }
end

--- /metrics gauges: health's, and the state's group-commit counters.
function M.gauges(e)
  local out = health.gauges(e)
  if e and e.st then
    for _, g in ipairs(state_counters(e)) do out[#out + 1] = g end
  end
  return out
end

--- The listener's handler (string handler "fox.daemon.handle_http": resolved in the
-- current generation for every request).
function M.handle_http(req)
  local e, err = M.env()
  local path = req.path or "/"
  local resp
  if path == "/webhooks/incident-io" then
    if not e then
      resp = text(503, "durable state unavailable\n")
    else
      resp = receiver.handle(req, e.receiver)
    end
  elseif path == "/healthz" then
    local status, doc = health.report(e or { error = tostring(err) })
    resp = { status = status, headers = { ["Content-Type"] = "application/json" }, body = json.encode(doc) .. "\n" }
  elseif path == "/metrics" then
    resp = text(200, metrics.render(M.gauges(e)), "text/plain; version=0.0.4; charset=utf-8")
  elseif path == "/v1/changes" then
    -- CI/CD pushes deploy events here (bearer FOX_CHANGES_TOKEN; 503 until it is set).
    resp = changes.handle_push(req)
  elseif path == "/mcp" and mcp.http_enabled() then
    -- MCP Streamable HTTP: off unless FOX_MCP_TOKEN is set.
    resp = mcp.handle_http(req, { ctx = { config = e and e.cfg } })
  else
    resp = text(404, "not found\n")
  end
  metrics.inc("fox_http_requests_total", { path = ROUTES[path] and path or "other", status = tostring(resp.status) })
  return resp
end

---------------------------------------------------------------------------
-- start
---------------------------------------------------------------------------

--- Starts this generation's loops (a task; returns once they are spawned).
function M.start()
  local e, err = M.env()
  if not e then
    log.error("generation.start_failed", { generation = vm.generation(), error = tostring(err) })
    return
  end
  local cfg = e.cfg
  if cfg.log_level then log.set_level(cfg.log_level) end
  if cfg.log_format then log.set_format(cfg.log_format) end
  local bound = shared.get("serve:listen_bound")
  if bound and bound ~= cfg.listen and not M.options().listen then
    log.warn("config.listen_changed", { listening = bound, configured = cfg.listen,
      hint = "restart fox to listen on the new address" })
  end
  task.spawn({ name = "dispatcher" }, function() e.queue:run_loop() end)
  if cfg.poll then
    task.spawn({ name = "poller" }, function()
      poller.run_loop({ st = e.st, client = e.client, queue = e.queue, cfg = cfg })
    end)
  end
  if health.degraded() then
    -- A reload may carry a new key: check it now rather than at the next poll.
    task.spawn({ name = "key-check" }, function()
      local id = e.client:identity()
      if id then e.queue:retry_now() end
    end)
  end
  log.info("generation.started", { generation = vm.generation(), playbook = cfg.playbook,
    poll = cfg.poll, webhooks = cfg.webhook_secret ~= nil, concurrency = cfg.concurrency })
end

--- Closes this generation's state object (drain).
function M.close()
  if env_cache and env_cache.st then env_cache.st:close() end
  env_cache = nil
end

-- Exposed for tests.
M._make_ctx = make_ctx
M._instrumented_client = instrumented_client

return M
