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
M.SETTINGS = { "custom_context", "known_services", "parse_rules", "sources", "lookback", "source_timeout",
               "root_cause_threshold", "similar_time_range", "channel_retries", "channel_retry_delay",
               "slack", "timeline", "ai", "record_ttl" }

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
  if type(o.parse_rules) == "string" then
    local ok, rules = pcall(function() return require("fox.config").load_code(o.parse_rules, cfg) end)
    o.parse_rules = ok and type(rules) == "table" and rules or nil
    if not ok then log.warn("playbook.parse_rules_unloadable", { error = tostring(rules) }) end
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

local function timeline_item(client, raw, kind, title, description, at)
  return client:create_timeline_item({
    incident_id = raw.id, title = title, description = description,
    timestamp = timerange.format_time(at or os.time()),
    idempotency_key = "fox:" .. raw.id .. ":" .. kind,
  })
end

---------------------------------------------------------------------------
-- run
---------------------------------------------------------------------------
function M.run(incident, ctx)
  ctx = ctx or {}
  local t0 = task.now()
  local opts = M.options(ctx)
  local lg = logger(ctx)
  local cfg = type(ctx.config) == "table" and ctx.config or {}
  local client = ctx.client or incidentio.new(cfg.incidentio)
  local dry_run = ctx.dry_run == true

  local raw, ferr = resolve_incident(incident, client)
  if not raw then return nil, ferr end
  local now = ctx.now or os.time()
  local ok_norm, inc = pcall(normalize.incident, raw)
  if not ok_norm then return nil, incidentio.error("bad_response", "cannot read incident: " .. tostring(inc)) end

  -- 1. context
  local info = M.extract_context(raw, opts)
  inc.services = info.services
  local delivery = { dry_run = dry_run, posted = {}, already = {}, errors = {}, timeline = {} }
  local record, rec_err
  if not dry_run then
    record, rec_err = posted_record(ctx, opts, raw.id)
    if not record then
      delivery.errors[#delivery.errors + 1] = "not posted: " .. rec_err
      dry_run = true
    end
  end
  local slack
  if not dry_run and opts.slack and opts.slack.enabled ~= false then
    slack = ctx.slack or require("fox.slack").new(opts.slack)
    if not slack:configured() then
      delivery.errors[#delivery.errors + 1] = "not posted: no Slack token (SLACK_BOT_TOKEN)"
      slack = nil
    end
  end
  local plan = M.source_plan(opts, client)
  local tl_mode = not dry_run and timeline_mode(opts, client) or nil

  -- 2. the "investigating" message (and the Slack channel), while the sources run
  local channel
  local announcer
  if slack then
    announcer = task.spawn({ name = "announce " .. (raw.reference or raw.id) }, function()
      channel = resolve_channel(raw, client, opts, lg)
      if not channel then
        delivery.errors[#delivery.errors + 1] = "not posted: the incident has no Slack channel"
        return
      end
      if opts.slack.investigating_message ~= false then
        local names = {}
        for _, p in ipairs(plan) do names[#names + 1] = p.name end
        local msg = require("fox.render.slack").investigating(inc, { services = info.services, sources = names })
        local res, err = record.once("investigating", function()
          local body, perr = slack:post_message({ channel = channel, text = msg.text, blocks = msg.blocks })
          if not body then return nil, perr end
          return { channel = body.channel or channel, ts = body.ts }
        end)
        if res then
          delivery.posted.investigating = res
          delivery.already.investigating = err == true or nil
        else
          delivery.errors[#delivery.errors + 1] = "investigating message: " .. tostring(err)
          lg.warn("playbook.post_failed", { incident = raw.reference, message = "investigating",
            error = tostring(err) })
        end
      end
    end)
  end
  if tl_mode == "api" then
    local res, err = record.once("timeline:started", function()
      local item, terr = timeline_item(client, raw, "started", "Investigation started",
        "fox started investigating" .. (#info.services > 0 and (" " .. table.concat(info.services, ", ")) or "")
        .. (#plan > 0 and (": asking " .. #plan .. " evidence sources") or "") .. ".", now)
      if not item then return nil, terr end
      return { id = item.id or true }
    end)
    delivery.timeline.started = res and true or tostring(err)
  end

  -- 3. evidence, all at once
  local start = (info.parsed.fields and info.parsed.fields.started_at) or timerange.parse_time(raw.created_at) or now
  local base = {
    incident = inc, services = info.services, client = client, now = ctx.now,
    window = { from = start - opts.lookback, to = now, incident_start = start },
    timeout = opts.source_timeout, parsed = info.parsed, context = info.context,
    config = nil,
  }
  local results = M.query_sources(plan, base)
  local suspects = M.rank_suspects(results, base)

  -- 4. findings
  local f = findings_mod.build({
    incident = inc, parsed = info.parsed, context = info.context, services = info.services,
    results = results, suspects = suspects, now = now,
    options = { root_cause_threshold = opts.root_cause_threshold },
  })
  local ai_cfg = require("fox.ai").config(opts.ai)
  if ai_cfg.enabled and not ctx.no_ai then
    local text, model_or_err = require("fox.ai").summarize(ai_cfg, f, custom_context.prompt(info.context))
    if text then
      findings_mod.add_ai_summary(f, text, model_or_err)
    else
      f.ai_error = tostring(model_or_err)
      lg.warn("playbook.ai_failed", { incident = raw.reference, error = tostring(model_or_err) })
    end
  end
  f.elapsed = task.now() - t0

  -- 5. post the findings, then the timeline
  if announcer then task.wait(announcer) end
  local retry_err
  if slack and channel then
    local msg = require("fox.render.slack").findings(f)
    local res, err = record.once("findings", function()
      local body, perr = slack:post_message({ channel = channel, text = msg.text, blocks = msg.blocks })
      if not body then return nil, perr end
      return { channel = body.channel or channel, ts = body.ts }
    end)
    if res then
      delivery.posted.findings = res
      delivery.already.findings = err == true or nil
    else
      delivery.errors[#delivery.errors + 1] = "findings message: " .. tostring(err)
      lg.warn("playbook.post_failed", { incident = raw.reference, message = "findings", error = tostring(err) })
      local kind = type(err) == "table" and err.kind
      if kind == "network" or kind == "server" or kind == "rate_limited" then retry_err = err end
    end
  end
  if tl_mode == "api" then
    if f.root_cause.identified then
      local top = f.suspects[1]
      local res, err = record.once("timeline:root_cause", function()
        local item, terr = timeline_item(client, raw, "root_cause", "Root cause identified",
          top.title .. " (confidence " .. findings_mod.percent(f.confidence) .. ")"
            .. (top.reason and (": " .. top.reason) or ""))
        if not item then return nil, terr end
        return { id = item.id or true }
      end)
      delivery.timeline.root_cause = res and true or tostring(err)
    end
    local res, err = record.once("timeline:complete", function()
      local item, terr = timeline_item(client, raw, "complete", "Investigation complete", f.summary)
      if not item then return nil, terr end
      return { id = item.id or true }
    end)
    delivery.timeline.complete = res and true or tostring(err)
  elseif tl_mode == "pin" and delivery.posted.findings then
    local p = delivery.posted.findings
    local res, err = record.once("pin:findings", function()
      local pinned, perr = slack:pin(p.channel, p.ts)
      if not pinned then return nil, perr end
      return { channel = p.channel, ts = p.ts }
    end)
    delivery.timeline.pinned = res and true or tostring(err)
  end
  for k, v in pairs(delivery.timeline) do
    if v ~= true then
      lg.warn("playbook.timeline_failed", { incident = raw.reference, entry = k, error = v })
    end
  end
  f.delivery = delivery
  f.elapsed = task.now() - t0
  lg.info("playbook.done", { incident = raw.reference, suspects = #f.suspects, confidence = f.confidence,
    failed_sources = #f.failed_sources, posted = delivery.posted.findings ~= nil, dry_run = dry_run,
    ms = math.floor(f.elapsed * 1000) })
  if retry_err then return nil, retry_err end
  return f
end

--- The playbook in dry run: nothing posted, nothing written.
function M.dry_run(incident, ctx)
  local c = {}
  for k, v in pairs(ctx or {}) do c[k] = v end
  c.dry_run = true
  return M.run(incident, c)
end

return M
