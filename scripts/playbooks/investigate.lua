-- The default investigation playbook.
--
-- ENTRY POINT (what `fox serve`, `fox investigate`, `fox replay` and MCP call):
--
--   local playbook = require(config.playbook or "playbooks.investigate")
--   local findings, err = playbook.run(incident, ctx)
--
--   incident  the IncidentV2 as the API returns it (the daemon re-fetches it before the
--             run); a reference ("INC-123", "123", an ID) or {id=...} is fetched here.
--   ctx       (every field optional; docs/playbooks.md has the long form)
--     client    fox.incidentio client (default: incidentio.new(config.incidentio))
--     config    the loaded config (fox.config.load); options = config.playbook_options
--     options   the playbook's settings (see M.DEFAULTS); override config.playbook_options
--     dry_run   true: post nothing, write nothing (the findings are still returned)
--     once(key, fn), posted(key)   durable "posted" record of the daemon: fn runs unless
--               key was recorded for this incident (ns "posted", "<incident id>:<key>");
--               without them the playbook keeps the same record in fox.state itself
--               (config.state_dir) — so `fox investigate` and `fox serve` never post
--               the same message twice
--     slack     fox.slack client (default: fox.slack.new(options.slack))
--     log       {debug, info, warn, error}(event, fields) (default fox.log)
--     now       unix seconds (tests)
--   returns   the findings (fox.findings) with `delivery` (what was posted), or nil
--             and an error when the incident could not be fetched or the findings
--             message could not be posted for a reason worth retrying.
--
--   playbook.dry_run(ref, ctx) = run(ref, ctx with dry_run = true)   (MCP, replay)
--
-- The steps, each replaceable by a team's own playbook (examples/playbooks/):
--   1. context: the parse policy over the description, the services policy, the
--      config's custom_context
--   2. an "investigating" message in the incident's channel, at once
--   3. every configured evidence source at once, a timeout each; a failure is listed
--   4. suspects ranked, findings built, the optional AI summary added
--   5. the findings posted once; timeline entries through the API (write key, with
--      idempotency keys) or by pinning the findings message
local incidentio = require("fox.incidentio")
local normalize = require("fox.normalize")
local findings_mod = require("fox.findings")
local custom_context = require("fox.custom_context")
local json = require("fox.json")
local log = require("fox.log")
local task = require("fox.task")
local timerange = require("fox.timerange")
local parse_policy = require("policies.parse")
local services_policy = require("policies.services")

local M = {}

M.NS_POSTED = "posted"

-- Settings, read from config.playbook_options (and top-level config keys of the same
-- names), overridden by ctx.options.
M.DEFAULTS = {
  custom_context = "",          -- the team's notes (see fox.custom_context)
  known_services = {},          -- name -> {aliases = {...}}: added to the services policy
  parse_rules = nil,            -- a table, or a module/file returning one (policies.parse)
  severity = nil,               -- severity overrides: {priorities = {...}} or a module/file
                                -- returning them (policies.severity.configure)
  sources = nil,                -- name -> settings (false turns one off); nil: defaults
  lookback = 4 * 3600,          -- seconds before the incident start to look for changes
  source_timeout = 10,          -- seconds each source may take
  root_cause_threshold = 0.6,   -- confidence needed for "Root cause identified"
  similar_time_range = "90d",   -- how far back similar incidents are looked for
  channel_retries = 4,          -- re-fetches of the incident while its channel is empty
  channel_retry_delay = 1,      -- first delay (s), doubled each time
  slack = {                     -- also SLACK_BOT_TOKEN, SLACK_API_URL
    enabled = true,
    investigating_message = true,
    fallback_channel = nil,     -- channel ID used when the incident has none
  },
  timeline = {
    mode = "auto",              -- "auto" (API with a write key, else pin), "api", "pin", "off"
  },
  ai = { enabled = false },     -- see fox.ai (FOX_AI_URL, FOX_AI_MODEL, FOX_AI_API_KEY)
  record_ttl = 30 * 86400,      -- seconds a "posted" record is kept (CLI runs)
}

-- The names of the settings (DEFAULTS has nil for some).
M.SETTINGS = { "custom_context", "known_services", "parse_rules", "severity", "sources", "lookback",
               "source_timeout", "root_cause_threshold", "similar_time_range", "channel_retries",
               "channel_retry_delay", "slack", "timeline", "ai", "record_ttl" }

---------------------------------------------------------------------------
-- settings
---------------------------------------------------------------------------
local function merge(base, over)
  if type(over) ~= "table" then return base end
  local out = {}
  for k, v in pairs(base or {}) do out[k] = v end
  for k, v in pairs(over) do
    if type(v) == "table" and type(out[k]) == "table" and v[1] == nil and next(v) ~= nil then
      out[k] = merge(out[k], v)
    else
      out[k] = v
    end
  end
  return out
end

--- The playbook's settings for this run.
function M.options(ctx)
  ctx = ctx or {}
  local cfg = type(ctx.config) == "table" and ctx.config or {}
  local o = merge({}, M.DEFAULTS)
  local top = {}
  for _, k in ipairs(M.SETTINGS) do
    if cfg[k] ~= nil then top[k] = cfg[k] end
  end
  o = merge(o, top)
  o = merge(o, cfg.playbook_options)
  if ctx.options ~= cfg.playbook_options then o = merge(o, ctx.options) end
  -- settings that may name a module or a file (relative to the config)
  for _, k in ipairs({ "parse_rules", "severity" }) do
    if type(o[k]) == "string" then
      local ok, v = pcall(function() return require("fox.config").load_code(o[k], cfg) end)
      if not ok then log.warn("playbook.setting_unloadable", { setting = k, error = tostring(v) }) end
      o[k] = ok and type(v) == "table" and v or nil
    end
  end
  return o
end

---------------------------------------------------------------------------
-- the durable "posted" record
---------------------------------------------------------------------------

-- ctx.once/ctx.posted of the daemon, or the same record in fox.state for CLI runs.
-- Returns the record, or nil and why there is none (then nothing is posted: without
-- the record a second run could post again).
local function posted_record(ctx, opts, incident_id)
  if type(ctx.once) == "function" then
    return { once = ctx.once, posted = ctx.posted or function() return nil end }
  end
  local cfg = type(ctx.config) == "table" and ctx.config or {}
  local dir = cfg.state_dir or require("fox.sys").getenv("FOX_STATE_DIR") or "./var"
  local st, err = require("fox.state").open(dir)
  if not st then
    return nil, "durable state unavailable in " .. dir .. " (" .. tostring(err) .. "); fox posts only "
      .. "with it, so that nothing is posted twice (is `fox serve` using it? use --dry-run or --state-dir)"
  end
  local function key(k) return incident_id .. ":" .. k end
  local rec = { st = st }
  function rec.posted(k)
    local prev = st:get(M.NS_POSTED, key(k))
    if not prev then return nil end
    local v = json.safe.decode(prev)
    return type(v) == "table" and v.value or true
  end
  function rec.once(k, fn)
    local prev = rec.posted(k)
    if prev then return prev, true end
    local res, ferr = fn()
    if res == nil or res == false then return nil, ferr end
    local ok, encoded = pcall(json.encode, { value = res })
    local sok, serr = st:set(M.NS_POSTED, key(k), ok and encoded or '{"value":true}', opts.record_ttl)
    if not sok then log.error("playbook.record_failed", { incident = incident_id, key = k, error = tostring(serr) }) end
    return res, false
  end
  return rec
end

---------------------------------------------------------------------------
-- steps
---------------------------------------------------------------------------
local function logger(ctx)
  if type(ctx.log) == "table" and type(ctx.log.info) == "function" then return ctx.log end
  return log
end

-- The raw incident: fetched when only a reference was given.
local function resolve_incident(incident, client)
  if type(incident) == "table" and incident.id and incident.name and incident.created_at then
    return incident
  end
  local ref = type(incident) == "table" and (incident.id or incident.reference) or incident
  if ref == nil then return nil, incidentio.error("invalid_input", "no incident given") end
  return client:get_incident(ref)
end

--- Step 1: what the incident says: parsed description, services, custom context.
function M.extract_context(raw, opts)
  local created = timerange.parse_time(raw.created_at)
  local parsed = parse_policy.description(raw.summary, { rules = opts.parse_rules, reference_time = created })
  local context = custom_context.parse(opts.custom_context)
  local services = services_policy.extract(raw, {
    parsed = parsed.services, known = opts.known_services, context = context.services,
  })
  return { parsed = parsed, context = context, services = services }
end

-- The incident's Slack channel; re-fetches the incident while it is empty (incident.io
-- creates the channel asynchronously). Returns the channel ID or nil.
local function resolve_channel(raw, client, opts, lg)
  local channel = raw.slack_channel_id
  local delay = opts.channel_retry_delay
  local tries = 0
  while (channel == nil or channel == "") and tries < opts.channel_retries do
    tries = tries + 1
    task.sleep(delay)
    delay = delay * 2
    local fresh, err = client:get_incident(raw.id)
    if fresh then
      channel = fresh.slack_channel_id
    else
      lg.warn("playbook.refetch_failed", { incident = raw.reference, error = tostring(err) })
    end
  end
  if channel == nil or channel == "" then
    channel = opts.slack and opts.slack.fallback_channel
  end
  if channel == "" then channel = nil end
  return channel
end

--- The sources to ask: {{name, config, timeout}, ...} from opts.sources. `client`
-- (the playbook's incident.io client) is handed to the sources that ask incident.io.
function M.source_plan(opts, client)
  local ok, sources = pcall(require, "sources")
  local names = ok and type(sources.names) == "table" and sources.names or {}
  local cfg = type(opts.sources) == "table" and opts.sources or {}
  local plan = {}
  for _, name in ipairs(names) do
    local c = cfg[name]
    -- A source runs when it has settings; the similar-incidents source needs none
    -- (it asks incident.io) and runs unless turned off.
    if c ~= false and (c ~= nil or name == "similar") then
      local sc = {}
      for k, v in pairs(type(c) == "table" and c or {}) do sc[k] = v end
      if name == "similar" then
        if sc.client == nil then sc.client = client end
        -- "the same thing last month" should be found: look back further than the
        -- tool's 30 days unless told otherwise
        if sc.time_range == nil then sc.time_range = opts.similar_time_range end
      end
      plan[#plan + 1] = { name = name, config = sc, timeout = tonumber(sc.timeout) or opts.source_timeout }
    end
  end
  return plan
end

--- Step 3: every source at once. Returns the results (one per source, failures included).
function M.query_sources(plan, base)
  if #plan == 0 then return {} end
  return require("sources").query_all(plan, base)
end

--- Step 4a: suspects ranked from the change sources (sources.suspects), with the
-- metric shifts and new errors as onsets.
function M.rank_suspects(results, base)
  local ok, suspects = pcall(require, "sources.suspects")
  if not ok or type(suspects) ~= "table" or type(suspects.from_results) ~= "function" then return {} end
  local pok, list = pcall(suspects.from_results, results, {
    incident_start = base.window.incident_start, services = base.services,
  })
  if not pok then
    log.warn("playbook.suspects_failed", { error = tostring(list) })
    return {}
  end
  return type(list) == "table" and list or {}
end

-- Timeline entries: "api" with a write key, else "pin"; nil when off.
local function timeline_mode(opts, client)
  local mode = type(opts.timeline) == "table" and opts.timeline.mode or opts.timeline
  if mode == false or mode == "off" then return nil end
  local has_write = client.cfg and client.cfg.write_api_key ~= nil
  if mode == "api" then return has_write and "api" or "pin" end
  if mode == "pin" then return "pin" end
  return has_write and "api" or "pin"
end


---------------------------------------------------------------------------
-- the steps, on one investigation table `inv`:
--   inv.ctx, inv.opts, inv.log, inv.client, inv.raw (IncidentV2; from step 3 on only
--   the RAW_KEPT fields of it), inv.incident
--   (normalised), inv.info ({parsed, context, services}), inv.plan (sources),
--   inv.base (what each source gets), inv.results, inv.suspects, inv.findings,
--   inv.delivery ({dry_run, posted, already, errors, timeline}), inv.started (task.now())
---------------------------------------------------------------------------

--- Step 0+1: fetches (when needed) and reads the incident; prepares posting.
-- Returns inv, or nil and an error (the incident could not be fetched).
function M.prepare(incident, ctx)
  ctx = ctx or {}
  local inv = { ctx = ctx, started = task.now(), opts = M.options(ctx), log = logger(ctx) }
  local opts = inv.opts
  local cfg = type(ctx.config) == "table" and ctx.config or {}
  inv.client = ctx.client or incidentio.new(cfg.incidentio)
  local raw, ferr = resolve_incident(incident, inv.client)
  if not raw then return nil, ferr end
  inv.raw = raw
  inv.now = ctx.now or os.time()
  if opts.severity then require("policies.severity").configure(opts.severity) end
  local ok_norm, norm = pcall(normalize.incident, raw)
  if not ok_norm then return nil, incidentio.error("bad_response", "cannot read incident: " .. tostring(norm)) end
  inv.incident = norm
  inv.info = M.extract_context(raw, opts)
  norm.services = inv.info.services
  inv.plan = M.source_plan(opts, inv.client)
  local start = inv.info.parsed.fields.started_at or timerange.parse_time(raw.created_at) or inv.now
  inv.base = {
    incident = norm, services = inv.info.services, client = inv.client, now = ctx.now,
    window = { from = start - opts.lookback, to = inv.now, incident_start = start },
    timeout = opts.source_timeout, parsed = inv.info.parsed, context = inv.info.context,
  }

  -- posting: the durable record, Slack, the timeline mode (nothing of it in a dry run)
  local dry_run = ctx.dry_run == true
  inv.delivery = { dry_run = dry_run, posted = {}, already = {}, errors = {}, timeline = {} }
  if not dry_run then
    local record, rec_err = posted_record(ctx, opts, raw.id)
    if record then
      inv.record = record
      if opts.slack and opts.slack.enabled ~= false then
        local slack = ctx.slack or require("fox.slack").new(opts.slack)
        if slack:configured() then
          inv.slack = slack
        else
          inv.delivery.errors[#inv.delivery.errors + 1] = "not posted: no Slack token (SLACK_BOT_TOKEN)"
        end
      end
      inv.timeline_mode = timeline_mode(opts, inv.client)
    else
      inv.delivery.errors[#inv.delivery.errors + 1] = "not posted: " .. rec_err
    end
  end
  return inv
end

-- Posts a message once (record key `key`); returns {channel, ts} or nil.
local function post_once(inv, key, channel, msg)
  local res, err = inv.record.once(key, function()
    local body, perr = inv.slack:post_message({ channel = channel, text = msg.text, blocks = msg.blocks })
    if not body then return nil, perr end
    return { channel = body.channel or channel, ts = body.ts }
  end)
  local d = inv.delivery
  if res then
    d.posted[key] = res
    d.already[key] = err == true or nil
    return res
  end
  d.errors[#d.errors + 1] = key .. " message: " .. tostring(err)
  inv.log.warn("playbook.post_failed", { incident = inv.raw.reference, message = key, error = tostring(err) })
  return nil, err
end

-- A timeline item once, through the API (idempotency key "fox:<id>:<kind>").
local function timeline_once(inv, kind, title, description, at)
  local res, err = inv.record.once("timeline:" .. kind, function()
    local item, terr = inv.client:create_timeline_item({
      incident_id = inv.raw.id, title = title, description = description,
      timestamp = timerange.format_time(at or os.time()),
      idempotency_key = "fox:" .. inv.raw.id .. ":" .. kind,
    })
    if not item then return nil, terr end
    return { id = item.id or true }
  end)
  inv.delivery.timeline[kind] = res and true or tostring(err)
  if not res then
    inv.log.warn("playbook.timeline_failed", { incident = inv.raw.reference, entry = kind, error = tostring(err) })
  end
end

--- Step 2: finds the incident's channel and posts the "investigating" message, in a
-- task of its own (so the sources need not wait); adds "Investigation started" to the
-- timeline, in another. M.deliver waits for the first before the findings and for
-- the second before the last timeline entries.
function M.announce(inv)
  local opts = inv.opts
  if inv.slack then
    inv.announcer = task.spawn({ name = "announce " .. (inv.raw.reference or inv.raw.id) }, function()
      inv.channel = resolve_channel(inv.raw, inv.client, opts, inv.log)
      if not inv.channel then
        inv.delivery.errors[#inv.delivery.errors + 1] = "not posted: the incident has no Slack channel"
        return
      end
      if opts.slack.investigating_message ~= false then
        local names = {}
        for _, p in ipairs(inv.plan) do names[#names + 1] = p.name end
        post_once(inv, "investigating", inv.channel, require("fox.render.slack").investigating(inv.incident,
          { services = inv.info.services, sources = names }))
      end
    end)
  end
  if inv.timeline_mode == "api" then
    -- alongside the sources too: they need nothing from it
    inv.timeline_starter = task.spawn({ name = "timeline " .. (inv.raw.reference or inv.raw.id) }, function()
      local services = inv.info.services
      timeline_once(inv, "started", "Investigation started", "fox started investigating"
        .. (#services > 0 and (" " .. table.concat(services, ", ")) or "")
        .. (#inv.plan > 0 and (": asking " .. #inv.plan .. " evidence sources") or "") .. ".", inv.now)
    end)
  end
end

-- What of the IncidentV2 the playbook keeps once the sources start: what the steps
-- after them use (posting, timeline, logs). The rest (some 20 KiB of custom fields,
-- roles, timestamps) is in inv.incident, normalised, and an investigation mostly
-- waits on its sources: with a thousand in flight the full copies add up.
M.RAW_KEPT = { "id", "reference", "name", "slack_channel_id", "permalink" }

-- The ctx the sources get: inv.base and the full raw incident (sources.query_all
-- hands it only to the sources that read it, and lets go of it once they are done).
-- inv.raw keeps the RAW_KEPT fields from now on.
local function sources_ctx(inv)
  local ctx = {}
  for k, v in pairs(inv.base) do ctx[k] = v end
  local raw = inv.raw
  ctx.raw = raw
  local kept = {}
  for _, k in ipairs(M.RAW_KEPT) do kept[k] = raw[k] end
  inv.raw = kept
  return ctx
end

--- Step 3: every source at once, then the suspects.
function M.gather(inv)
  inv.results = M.query_sources(inv.plan, sources_ctx(inv))
  inv.suspects = M.rank_suspects(inv.results, inv.base)
  return inv.results
end

--- Step 4: the findings, with the AI summary when it is on.
function M.build_findings(inv)
  local info = inv.info
  local f = findings_mod.build({
    incident = inv.incident, parsed = info.parsed, context = info.context, services = info.services,
    results = inv.results or {}, suspects = inv.suspects or {}, now = inv.now,
    options = { root_cause_threshold = inv.opts.root_cause_threshold },
  })
  local ai = require("fox.ai")
  local ai_cfg = ai.config(inv.opts.ai)
  if ai_cfg.enabled and not inv.ctx.no_ai then
    local text, model_or_err = ai.summarize(ai_cfg, f, custom_context.prompt(info.context))
    if text then
      findings_mod.add_ai_summary(f, text, model_or_err)
    else
      f.ai_error = tostring(model_or_err)
      inv.log.warn("playbook.ai_failed", { incident = inv.raw.reference, error = tostring(model_or_err) })
    end
  end
  f.elapsed = task.now() - inv.started
  inv.findings = f
  return f
end

--- Step 5: posts the findings once, then the timeline entries (API) or the pin.
-- Returns nil, err when the findings could not be posted for a reason worth retrying.
function M.deliver(inv, f)
  f = f or inv.findings
  if inv.announcer then task.wait(inv.announcer) end
  local d = inv.delivery
  local retry_err
  if inv.slack and inv.channel then
    local res, err = post_once(inv, "findings", inv.channel, require("fox.render.slack").findings(f))
    local kind = not res and type(err) == "table" and err.kind
    if kind == "network" or kind == "server" or kind == "rate_limited" then retry_err = err end
  end
  if inv.timeline_mode == "api" then
    -- "Investigation started" first (the findings post need not wait for it)
    if inv.timeline_starter then task.wait(inv.timeline_starter) end
    local top = f.suspects[1]
    if f.root_cause.identified and top then
      timeline_once(inv, "root_cause", "Root cause identified", top.title .. " (confidence "
        .. findings_mod.percent(f.confidence) .. ")" .. (top.reason and (": " .. top.reason) or ""))
    end
    timeline_once(inv, "complete", "Investigation complete", f.summary)
  elseif inv.timeline_mode == "pin" and d.posted.findings then
    local p = d.posted.findings
    local res, err = inv.record.once("pin:findings", function()
      local pinned, perr = inv.slack:pin(p.channel, p.ts)
      if not pinned then return nil, perr end
      return { channel = p.channel, ts = p.ts }
    end)
    d.timeline.pinned = res and true or tostring(err)
    if not res then
      inv.log.warn("playbook.timeline_failed", { incident = inv.raw.reference, entry = "pin", error = tostring(err) })
    end
  end
  f.delivery = d
  f.elapsed = task.now() - inv.started
  inv.log.info("playbook.done", { incident = inv.raw.reference, suspects = #f.suspects, confidence = f.confidence,
    failed_sources = #f.failed_sources, posted = d.posted.findings ~= nil, dry_run = d.dry_run,
    ms = math.floor(f.elapsed * 1000) })
  if retry_err then return nil, retry_err end
  return f
end

--- The whole playbook: the steps above in order.
function M.run(incident, ctx)
  local inv, err = M.prepare(incident, ctx)
  if not inv then return nil, err end
  incident = nil -- luacheck: ignore (the raw incident, when given: held by inv until step 3)
  M.announce(inv)
  M.gather(inv)
  M.build_findings(inv)
  return M.deliver(inv)
end

--- The playbook in dry run: nothing posted, nothing written.
function M.dry_run(incident, ctx)
  local c = {}
  for k, v in pairs(ctx or {}) do c[k] = v end
  c.dry_run = true
  return M.run(incident, c)
end

return M
